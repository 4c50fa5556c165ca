//! Interop echo server on smol: the server in `interop/server.rs` (shared
//! with the tokio and async-std programs), for interop tests against
//! third-party WebSocket clients (see `.ci/interop`).
//!
//! Usage: `interop_server_smol [ADDR] [TIMEOUT_SECS]` (defaults
//! `127.0.0.1:9001`, 120). Prints `listening on ADDR` once bound; exits on
//! Ctrl-C (the default signal action) or after the timeout.

#[path = "../../interop/server.rs"]
mod server;

/// What the shared server needs from smol.
mod rt {
    use std::future::Future;
    use std::time::Duration;

    pub(crate) use smol::net::TcpListener;
    pub(crate) use wavecast_smol as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_server_smol";

    /// Runs `f` as a task of its own.
    pub(crate) fn spawn(f: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(f).detach();
    }

    pub(crate) async fn sleep(d: Duration) {
        smol::Timer::after(d).await;
    }

    /// Never finishes: smol has no signal handling, so Ctrl-C keeps its
    /// default action and ends the process.
    pub(crate) async fn interrupted() {
        std::future::pending().await
    }
}

fn main() {
    smol::block_on(server::main());
}
