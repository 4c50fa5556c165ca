//! The `serve` loop over real TCP on 127.0.0.1: connection cap, graceful
//! shutdown, and plain HTTP on the WebSocket port.

use std::future::Future;
use std::time::Duration;

use async_io::Timer;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use wavecast_smol::{
    connect, serve, Accept, CloseCode, HttpResponse, OriginAllowList, ServeConfig, Server,
};

async fn timeout<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    smol::future::or(f, async {
        Timer::after(limit).await;
        panic!("timed out after {limit:?}")
    })
    .await
}

async fn start(max: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = ServeConfig::default()
        .with_max_connections(max)
        .with_shutdown_timeout(Duration::from_secs(1));
    let origins = OriginAllowList::new(["https://chat.example"]);
    serve(listener, options, move |incoming| {
        let origins = origins.clone();
        async move {
            if incoming.is_websocket_upgrade() {
                if let Err(refusal) = origins.check(incoming.request()) {
                    let _ = incoming.reject(refusal).await;
                    return;
                }
                let Ok(mut ws) = incoming.accept(Accept::new()).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.recv().await {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
            } else {
                let response = match incoming.request().path() {
                    "/" => HttpResponse::html(200, "<h1>chat</h1>"),
                    _ => HttpResponse::not_found(),
                };
                let _ = incoming.respond(response).await;
            }
        }
    })
    .unwrap()
}

/// Sends raw bytes and reads until the server closes.
async fn raw(server: &Server, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    timeout(Duration::from_secs(1), tcp.read_to_end(&mut out))
        .await
        .unwrap();
    String::from_utf8(out).unwrap()
}

const UPGRADE: &[u8] =
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn over_the_cap_gets_503_not_a_hang() {
    smol::block_on(async {
        let server = start(2).await;
        let url = format!("ws://{}/", server.local_addr());
        let (mut a, _) = connect(&url).await.unwrap();
        let (mut b, _) = connect(&url).await.unwrap();
        a.send("a").await.unwrap();
        b.send("b").await.unwrap();
        assert!(a.recv().await.unwrap().is_ok());
        assert!(b.recv().await.unwrap().is_ok());
        assert_eq!(server.active(), 2);
        let answer = raw(&server, UPGRADE).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("Retry-After: 1"), "{answer}");
        assert!(timeout(Duration::from_secs(1), connect(&url))
            .await
            .is_err());
        a.close(CloseCode::NORMAL, "").await.unwrap();
        timeout(Duration::from_secs(1), async {
            while server.active() > 1 {
                Timer::after(Duration::from_millis(2)).await;
            }
        })
        .await;
        assert!(connect(&url).await.is_ok());
    })
}

#[test]
fn graceful_shutdown_closes_with_1001() {
    smol::block_on(async {
        let server = start(100).await;
        let url = format!("ws://{}/", server.local_addr());
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (mut ws, _) = connect(&url).await.unwrap();
            ws.send("x").await.unwrap();
            ws.recv().await.unwrap().unwrap();
            clients.push(ws);
        }
        let shutdown = smol::spawn(server.shutdown());
        for ws in clients {
            let (_sender, mut receiver) = ws.split();
            let end = timeout(Duration::from_secs(1), receiver.recv()).await;
            assert!(end.is_none(), "clean close: {end:?}");
            assert_eq!(receiver.close_frame().unwrap().code, CloseCode::GOING_AWAY);
        }
        let drained = timeout(Duration::from_secs(2), shutdown).await;
        assert!(drained, "every handler finished in time");
        assert!(connect(&url).await.is_err(), "no longer accepting");
    })
}

#[test]
fn plain_http_and_origin_checks_on_the_same_port() {
    smol::block_on(async {
        let server = start(10).await;
        let page = raw(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("Connection: close"));
        assert!(page.ends_with("<h1>chat</h1>"));
        let head = raw(&server, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(head.ends_with("\r\n\r\n"), "head only: {head}");
        let missing = raw(&server, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let body = raw(
            &server,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        )
        .await;
        assert!(body.starts_with("HTTP/1.1 413"), "{body}");
        let mut foreign = UPGRADE[..UPGRADE.len() - 2].to_vec();
        foreign.extend_from_slice(b"Origin: https://evil.example\r\n\r\n");
        let refused = raw(&server, &foreign).await;
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    })
}
