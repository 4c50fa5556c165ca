//! HTTP/2 interop client on smol: the scenario list in
//! `interop/h2_client.rs`, shared with the tokio and async-std programs (see
//! `.ci/interop`).
//!
//! Usage: `interop_h2_client_smol wss://localhost:PORT CERT_PEM [PEER_NAME]`
//! (needs the `rustls` and `http2` features).

#[path = "../../interop/h2_client.rs"]
mod client;

/// What the shared client needs from smol.
mod rt {
    pub(crate) use wavecast_smol as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_h2_client_smol";

    include!("support/timeout.rs");
}

fn main() {
    smol::block_on(client::main());
}
