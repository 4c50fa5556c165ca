//! Echo server on fastwebsockets + hyper 1, written as its `echo_server`
//! example: hyper upgrade, `FragmentCollector`, auto-close/auto-pong defaults.
//!
//! `--broadcast`: fastwebsockets has no rooms, so this is a naive fan-out
//! written for the benchmark: a `tokio::sync::broadcast` channel (capacity
//! 256, like wavecast's default room); `/sub` subscribes before the upgrade
//! response is returned and writes every message (one `write_frame` each);
//! what `/pub` sends is sent into the channel. A subscriber that lags by
//! more than 256 messages is disconnected.

use std::sync::OnceLock;

use fastwebsockets::{upgrade, FragmentCollector, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

static ROOM: OnceLock<broadcast::Sender<Bytes>> = OnceLock::new();

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn naive_broadcast(
    fut: upgrade::UpgradeFut,
    tx: broadcast::Sender<Bytes>,
    rx: Option<broadcast::Receiver<Bytes>>,
) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    let Some(mut rx) = rx else {
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Close => return Ok(()),
                OpCode::Text | OpCode::Binary => {
                    let _ = tx.send(Bytes::copy_from_slice(&frame.payload));
                }
                _ => {}
            }
        }
    };
    // Lagged or closed: drop the connection.
    while let Ok(msg) = rx.recv().await {
        ws.write_frame(Frame::binary(Payload::Borrowed(&msg)))
            .await?;
    }
    Ok(())
}

async fn server_upgrade(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    if let Some(tx) = ROOM.get() {
        let rx = (req.uri().path() != "/pub").then(|| tx.subscribe());
        let tx = tx.clone();
        tokio::task::spawn(async move {
            let _ = naive_broadcast(fut, tx, rx).await;
        });
        return Ok(response);
    }
    tokio::task::spawn(async move {
        let _ = tokio::task::unconstrained(handle_client(fut)).await;
    });
    Ok(response)
}

fn main() {
    wavecast_bench::raise_nofile();
    let addr = wavecast_bench::addr();
    if wavecast_bench::flag("broadcast") {
        let _ = ROOM.set(broadcast::channel(256).0);
    }
    wavecast_bench::runtime().block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = http1::Builder::new()
                    .serve_connection(io, service_fn(server_upgrade))
                    .with_upgrades();
                let _ = conn.await;
            });
        }
    });
}
