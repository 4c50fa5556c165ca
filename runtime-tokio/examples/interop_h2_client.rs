//! HTTP/2 interop client on tokio: runs the scenario list in
//! `interop/h2_client.rs` (shared with the smol and async-std programs)
//! against a third-party server of WebSockets over HTTP/2 (see
//! `.ci/interop`) and exits non-zero if any scenario fails.
//!
//! Usage: `interop_h2_client wss://localhost:PORT CERT_PEM [PEER_NAME]`
//! (needs the `rustls` and `http2` features).

#[path = "../../interop/h2_client.rs"]
mod client;

/// What the shared client needs from tokio.
mod rt {
    pub(crate) use tokio::time::timeout;
    pub(crate) use wavecast_tokio as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_h2_client";
}

#[tokio::main]
async fn main() {
    client::main().await;
}
