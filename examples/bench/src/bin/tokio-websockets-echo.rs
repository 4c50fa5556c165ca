//! Echo server on tokio-websockets, written the way its `echo-server`
//! example is: `ServerBuilder::accept`, then `next`/`send` in the
//! connection's own task, text and binary messages sent back. Limits are
//! raised so the 1 MiB workload fits (its default frame and message limits
//! are smaller). Echo only: it has no `--broadcast`.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_websockets::{Limits, ServerBuilder};

fn main() {
    wavecast_bench::raise_nofile();
    let addr = wavecast_bench::addr();
    wavecast_bench::runtime().block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok((_request, mut ws)) = ServerBuilder::new()
                    .limits(Limits::default().max_payload_len(Some(16 << 20)))
                    .accept(stream)
                    .await
                else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
}
