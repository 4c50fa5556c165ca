//! Interop client on smol: runs the scenario list in `interop/client.rs`
//! (shared with the tokio and async-std programs) against a third-party
//! echo server (see `.ci/interop`) and exits non-zero if any scenario fails.
//!
//! Usage: `interop_client_smol ws://HOST:PORT [PEER_NAME]`

#[path = "../../interop/client.rs"]
mod client;

/// What the shared client needs from smol.
mod rt {
    pub(crate) use wavecast_smol as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_client_smol";

    include!("support/timeout.rs");
}

fn main() {
    smol::block_on(client::main());
}
