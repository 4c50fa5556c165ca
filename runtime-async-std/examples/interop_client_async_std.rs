//! Interop client on async-std: runs the scenario list in
//! `interop/client.rs` (shared with the tokio and smol programs) against a
//! third-party echo server (see `.ci/interop`) and exits non-zero if any
//! scenario fails.
//!
//! Usage: `interop_client_async_std ws://HOST:PORT [PEER_NAME]`

#[path = "../../interop/client.rs"]
mod client;

/// What the shared client needs from async-std.
mod rt {
    pub(crate) use async_std::future::timeout;
    pub(crate) use wavecast_async_std as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_client_async_std";
}

fn main() {
    async_std::task::block_on(client::main());
}
