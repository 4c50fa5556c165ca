// The `timeout` the shared interop clients take from their runtime: smol
// has none of its own. Included by the smol interop clients (`include!`),
// so it is not an example itself.

/// The deadline of [`timeout`] passed.
#[derive(Debug)]
pub(crate) struct Elapsed;

/// `f`, unless `limit` passes first.
pub(crate) async fn timeout<T>(
    limit: std::time::Duration,
    f: impl std::future::Future<Output = T>,
) -> Result<T, Elapsed> {
    smol::future::or(async { Ok(f.await) }, async {
        smol::Timer::after(limit).await;
        Err(Elapsed)
    })
    .await
}
