//! A WebSocket echo server on tokio: every text or binary message comes back.
//!
//! Run: `cargo run -p wavecast-tokio --example echo -- 127.0.0.1:9001`, then
//! connect a client to `ws://127.0.0.1:9001/`.

use tokio::net::TcpListener;
use wavecast_tokio::{accept_with, Accept, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("echo server listening on ws://{}", listener.local_addr()?);
    // Large enough for the conformance suite's 16 MiB messages.
    // One shared config: cloning an `Arc` per connection costs nothing.
    let config = std::sync::Arc::new(
        Config::default()
            .with_max_message_size(16 << 20)
            .with_max_frame_size(16 << 20),
    );
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = accepted?;
                tcp.set_nodelay(true)?;
                let config = config.clone();
                tokio::spawn(async move {
                    let mut ws = match accept_with(tcp, config, |_| Ok(Accept::new())).await {
                        Ok(ws) => ws,
                        Err(e) => return eprintln!("{peer}: handshake failed: {e}"),
                    };
                    while let Some(Ok(message)) = ws.recv().await {
                        if ws.send(message).await.is_err() {
                            break;
                        }
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => {
                println!("shutting down");
                return Ok(());
            }
        }
    }
}
