//! Echo server on tokio-tungstenite, written as its `echo-server` example:
//! `accept_async`, split, forward the text/binary messages back.
//!
//! `--broadcast`: tungstenite has no rooms, so this is a naive fan-out
//! written for the benchmark: a `tokio::sync::broadcast` channel (capacity
//! 256, like wavecast's default room); `/sub` subscribes in the handshake
//! callback (before the 101 is written) and `send`s every message (a flush
//! each); what `/pub` sends is sent into the channel. A subscriber that lags
//! by more than 256 messages is disconnected.

use std::sync::OnceLock;

use futures_util::SinkExt;
use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

static ROOM: OnceLock<broadcast::Sender<Message>> = OnceLock::new();

async fn naive_broadcast(stream: TcpStream, tx: broadcast::Sender<Message>) {
    let _ = stream.set_nodelay(true);
    let mut rx = None;
    // The callback's signature (and its large error response) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        if req.uri().path() != "/pub" {
            rx = Some(tx.subscribe());
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    match rx {
        None => {
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_binary() || msg.is_text() {
                    let _ = tx.send(msg);
                }
            }
        }
        // Lagged or closed: drop the connection.
        Some(mut rx) => {
            while let Ok(msg) = rx.recv().await {
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
        }
    }
}

async fn accept_connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
}

fn main() {
    wavecast_bench::raise_nofile();
    let addr = wavecast_bench::addr();
    let room = wavecast_bench::flag("broadcast").then(|| broadcast::channel(256).0);
    if let Some(tx) = room {
        let _ = ROOM.set(tx);
    }
    wavecast_bench::runtime().block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            match ROOM.get() {
                Some(tx) => tokio::spawn(naive_broadcast(stream, tx.clone())),
                None => tokio::spawn(accept_connection(stream)),
            };
        }
    });
}
