//! Interop echo server on async-std: the server in `interop/server.rs`
//! (shared with the tokio and smol programs), for interop tests against
//! third-party WebSocket clients (see `.ci/interop`).
//!
//! Usage: `interop_server_async_std [ADDR] [TIMEOUT_SECS]` (defaults
//! `127.0.0.1:9001`, 120). Prints `listening on ADDR` once bound; exits on
//! Ctrl-C (the default signal action) or after the timeout.

#[path = "../../interop/server.rs"]
mod server;

/// What the shared server needs from async-std.
mod rt {
    use std::future::Future;
    use std::time::Duration;

    pub(crate) use async_std::net::TcpListener;
    pub(crate) use wavecast_async_std as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_server_async_std";

    /// Runs `f` as a task of its own.
    pub(crate) fn spawn(f: impl Future<Output = ()> + Send + 'static) {
        async_std::task::spawn(f);
    }

    pub(crate) async fn sleep(d: Duration) {
        async_std::task::sleep(d).await;
    }

    /// Never finishes: async-std has no signal handling, so Ctrl-C keeps
    /// its default action and ends the process.
    pub(crate) async fn interrupted() {
        std::future::pending().await
    }
}

fn main() {
    async_std::task::block_on(server::main());
}
