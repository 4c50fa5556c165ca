//! Real TCP on 127.0.0.1: echo, large messages, close, rejections, timeouts.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wavecast_tokio::{
    accept, accept_with, connect, CloseCode, Config, Error, HttpResponse, Message, OriginAllowList,
    Outcome,
};

async fn echo_server(config: Config) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let config = config.clone();
            tokio::spawn(async move {
                let allow = OriginAllowList::new(["http://good.example"]);
                let Ok(mut ws) = accept_with(tcp, config, |req| {
                    allow.check(req)?;
                    if req.path() == "/missing" {
                        return Err(HttpResponse::not_found());
                    }
                    Ok(Default::default())
                })
                .await
                else {
                    return;
                };
                while let Some(Ok(msg)) = ws.recv().await {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    format!("ws://{addr}")
}

#[tokio::test]
async fn echo_text_binary_and_large() {
    let url = echo_server(
        Config::default()
            .with_max_message_size(8 << 20)
            .with_max_frame_size(8 << 20),
    )
    .await;
    let (mut ws, _) = connect(&format!("{url}/echo")).await.unwrap();
    ws.send("hello").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("hello"));
    ws.send(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::from(vec![1u8, 2, 3])
    );
    let big: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
    ws.send(big.clone()).await.unwrap();
    // The client's default limit is 1 MiB; this reply is larger.
    let got = ws.recv().await.unwrap();
    assert!(matches!(got, Err(Error::Protocol(_))), "{got:?}");
}

#[tokio::test]
async fn large_messages_within_limits() {
    let cfg = Config::default()
        .with_max_message_size(8 << 20)
        .with_max_frame_size(8 << 20);
    let url = echo_server(cfg.clone()).await;
    let (request, _) = wavecast_tokio::ClientRequest::from_url(&url).unwrap();
    let (mut ws, _) = wavecast_tokio::connect_with(&url, request, cfg)
        .await
        .unwrap();
    let big: Vec<u8> = (0..(5 << 20)).map(|i| (i % 251) as u8).collect();
    ws.send(big.clone()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from(big));
    let outcome = ws.close(CloseCode::NORMAL, "done").await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Clean {
                locally_initiated: true,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn origin_and_path_rejections() {
    let url = echo_server(Config::default()).await;
    let addr = url.trim_start_matches("ws://");
    for (path, origin, status) in [
        ("/", "http://evil.example", "403"),
        ("/missing", "http://good.example", "404"),
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with(&format!("HTTP/1.1 {status}")), "{out}");
    }
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 426"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{out}"
    );
}

#[tokio::test]
async fn server_closes_and_client_sees_code() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = accept(tcp).await.unwrap();
        let outcome = ws.close(CloseCode(4000), "bye").await.unwrap();
        assert!(matches!(outcome, Outcome::Clean { .. }));
    });
    let (ws, _) = connect(&format!("ws://{addr}/")).await.unwrap();
    let (_tx, mut rx) = ws.split();
    assert!(rx.recv().await.is_none());
    let frame = rx.close_frame().unwrap();
    assert_eq!(frame.code, CloseCode(4000));
    assert_eq!(&*frame.reason, "bye");
}

#[tokio::test]
async fn handshake_timeout_drops_slowloris() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let cfg = Config::default().with_handshake_timeout(Duration::from_millis(200));
        accept_with(tcp, cfg, |_| Ok(Default::default())).await
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            res,
            Err(Error::Handshake(wavecast_core::HandshakeError::Timeout))
        ),
        "{res:?}"
    );
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out).await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
}

#[tokio::test]
async fn dead_peer_dropped_by_heartbeat() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let cfg = Config::default()
            .with_heartbeat_interval(Some(Duration::from_millis(100)))
            .with_idle_timeout(Some(Duration::from_millis(300)));
        let mut ws = accept_with(tcp, cfg, |_| Ok(Default::default()))
            .await
            .unwrap();
        ws.recv().await
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    // Then stop reading and writing, socket still open.
    let res = tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(res, Some(Err(Error::Timeout(_)))), "{res:?}");
    drop(tcp);
}

#[tokio::test]
async fn cancel_safe_recv_under_select() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // A raw peer writing 1,000 masked frames one byte at a time.
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim()
            .to_owned();
        let accept = wavecast_core::handshake::accept_key(key.as_bytes());
        tcp.write_all(
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut stream = Vec::new();
        for i in 0..1000u32 {
            let payload = format!("message {i}");
            stream.push(0x81);
            stream.push(payload.len() as u8);
            stream.extend_from_slice(payload.as_bytes());
        }
        // One byte per write, so frames and messages split everywhere.
        for chunk in stream.chunks(1) {
            tcp.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let (mut ws, _) = connect(&format!("ws://{addr}/")).await.unwrap();
    let mut got = 0u32;
    while got < 1000 {
        tokio::select! {
            msg = ws.recv() => {
                assert_eq!(msg.unwrap().unwrap(), Message::from(format!("message {got}")));
                got += 1;
            }
            _ = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
    }
}
