//! HTTP/2 interop client on async-std: the scenario list in
//! `interop/h2_client.rs`, shared with the tokio and smol programs (see
//! `.ci/interop`).
//!
//! Usage: `interop_h2_client_async_std wss://localhost:PORT CERT_PEM [PEER_NAME]`
//! (needs the `rustls` and `http2` features).

#[path = "../../interop/h2_client.rs"]
mod client;

/// What the shared client needs from async-std.
mod rt {
    pub(crate) use async_std::future::timeout;
    pub(crate) use wavecast_async_std as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_h2_client_async_std";
}

fn main() {
    async_std::task::block_on(client::main());
}
