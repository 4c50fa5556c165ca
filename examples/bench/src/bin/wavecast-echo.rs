//! Echo server on wavecast-tokio: one worker thread, limits raised to 16 MiB,
//! no heartbeats (the default), every text/binary message sent back.
//!
//! Diagnostic flags (off by default, so the plain usage is what is measured):
//! `--box-handshake` awaits `accept_with` through `Box::pin`, so the
//! handshake's state is freed once it completes instead of sizing the
//! connection task for its whole life; `--shared-config` passes one
//! `Arc<Config>` to every connection instead of a `Config` per connection.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use wavecast_tokio::{accept_with, Accept, Config};

fn main() {
    wavecast_bench::raise_nofile();
    let addr = wavecast_bench::addr();
    let config = Config::default()
        .with_max_message_size(16 << 20)
        .with_max_frame_size(16 << 20);
    let box_handshake = wavecast_bench::flag("box-handshake");
    let shared = wavecast_bench::flag("shared-config").then(|| Arc::new(config.clone()));
    wavecast_bench::runtime().block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let config: Arc<Config> = match &shared {
                Some(arc) => arc.clone(),
                None => Arc::new(config.clone()),
            };
            let _ = tcp.set_nodelay(true);
            if box_handshake {
                tokio::spawn(echo_boxed_handshake(tcp, config));
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

async fn echo_boxed_handshake(tcp: TcpStream, config: Arc<Config>) {
    let Ok(mut ws) = Box::pin(accept_with(tcp, config, |_req| Ok(Accept::new()))).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.recv().await {
        if ws.send(msg).await.is_err() {
            break;
        }
    }
}
