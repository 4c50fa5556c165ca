//! Echo server on wavecast-tokio: one worker thread, limits raised to 16 MiB,
//! no heartbeats (the default), every text/binary message sent back.
//!
//! Written the way the docs show: one `Arc<Config>` shared by all
//! connections (`config.clone()` per connection), `accept_with` awaited in
//! the connection's task (the library boxes the handshake's state and frees
//! it when the handshake ends, so the task stays small while idle).
//!
//! Diagnostic flag (off by default): `--config-per-conn` passes a `Config`
//! by value per connection, so each connection allocates its own
//! `Arc<Config>` (≈ 170 B more per connection).
//!
//! `--stream`: streaming on (`with_stream_messages`), each chunk echoed as it
//! arrives (`recv_chunk` / `send_chunk`, as `examples/src/bin/echo --stream`
//! does), so a message of any size passes through without being held whole.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use wavecast_tokio::{accept_with, Accept, Config};

/// `--broadcast`: a room instead of echo (see the module).
#[path = "../tokio_broadcast.rs"]
mod tokio_broadcast;

fn main() {
    wavecast_bench::raise_nofile();
    let addr = wavecast_bench::addr();
    let config = Arc::new(
        Config::default()
            .with_max_message_size(16 << 20)
            .with_max_frame_size(16 << 20)
            .with_stream_messages(wavecast_bench::flag("stream")),
    );
    let per_conn = wavecast_bench::flag("config-per-conn");
    if wavecast_bench::flag("broadcast") {
        return tokio_broadcast::serve(addr, config);
    }
    wavecast_bench::runtime().block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let config = if per_conn {
                Arc::new(Config::clone(&config))
            } else {
                config.clone()
            };
            if config.stream_messages {
                tokio::spawn(echo_chunks(tcp, config));
            } else {
                tokio::spawn(echo(tcp, config));
            }
        }
    });
}

async fn echo(tcp: TcpStream, config: Arc<Config>) {
    let Ok(mut ws) = accept_with(tcp, config, |_req| Ok(Accept::new())).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.recv().await {
        if ws.send(msg).await.is_err() {
            break;
        }
    }
}

/// `--stream`: a separate task body, so the plain echo task (whose size the
/// idle-memory workload measures) stays as the docs write it.
async fn echo_chunks(tcp: TcpStream, config: Arc<Config>) {
    let Ok(mut ws) = accept_with(tcp, config, |_req| Ok(Accept::new())).await else {
        return;
    };
    while let Some(Ok(chunk)) = ws.recv_chunk().await {
        if ws.send_chunk(chunk.data, chunk.last).await.is_err() {
            break;
        }
    }
}
