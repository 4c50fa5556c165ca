//! Interop client on smol: runs the scenario list in `interop/client.rs`
//! (shared with the tokio and async-std programs) against a third-party
//! echo server (see `.ci/interop`) and exits non-zero if any scenario fails.
//!
//! Usage: `interop_client_smol ws://HOST:PORT [PEER_NAME]`

#[path = "../../interop/client.rs"]
mod client;

/// What the shared client needs from smol.
mod rt {
    use std::future::Future;
    use std::time::Duration;

    pub(crate) use wavecast_smol as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_client_smol";

    /// The deadline of [`timeout`] passed.
    #[derive(Debug)]
    pub(crate) struct Elapsed;

    /// `f`, unless `limit` passes first (smol has no timeout of its own).
    pub(crate) async fn timeout<T>(
        limit: Duration,
        f: impl Future<Output = T>,
    ) -> Result<T, Elapsed> {
        smol::future::or(async { Ok(f.await) }, async {
            smol::Timer::after(limit).await;
            Err(Elapsed)
        })
        .await
    }
}

fn main() {
    smol::block_on(client::main());
}
