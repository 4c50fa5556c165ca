//! Interop client on tokio: runs the scenario list in `interop/client.rs`
//! (shared with the smol and async-std programs) against a third-party
//! echo server (see `.ci/interop`) and exits non-zero if any scenario fails.
//!
//! Usage: `interop_client ws://HOST:PORT [PEER_NAME]`

#[path = "../../interop/client.rs"]
mod client;

/// What the shared client needs from tokio.
mod rt {
    pub(crate) use tokio::time::timeout;
    pub(crate) use wavecast_tokio as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_client";
}

#[tokio::main]
async fn main() {
    client::main().await;
}
