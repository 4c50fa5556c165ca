//! Interop echo server on tokio: the server in `interop/server.rs` (shared
//! with the smol and async-std programs), for interop tests against
//! third-party WebSocket clients (see `.ci/interop`).
//!
//! Usage: `interop_server [ADDR] [TIMEOUT_SECS]` (defaults `127.0.0.1:9001`,
//! 120). Prints `listening on ADDR` once bound; exits on Ctrl-C or after the
//! timeout.

#[path = "../../interop/server.rs"]
mod server;

/// What the shared server needs from tokio.
mod rt {
    use std::future::Future;
    use std::time::Duration;

    pub(crate) use tokio::net::TcpListener;
    pub(crate) use wavecast_tokio as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_server";

    /// Runs `f` as a task of its own.
    pub(crate) fn spawn(f: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(f);
    }

    pub(crate) async fn sleep(d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Finishes on Ctrl-C, so that the server says why it exits (or at
    /// once, should the handler fail to install).
    pub(crate) async fn interrupted() {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() {
    server::main().await;
}
