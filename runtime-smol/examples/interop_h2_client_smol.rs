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
    use std::future::Future;
    use std::time::Duration;

    pub(crate) use wavecast_smol as ws;

    /// The program's name in its messages.
    pub(crate) const NAME: &str = "interop_h2_client_smol";

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
