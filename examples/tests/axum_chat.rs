//! The `axum-chat` binary over real sockets: broadcast to everyone,
//! heartbeats that keep answering clients connected, and a silent peer
//! pinged, then dropped after the idle timeout.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{free_addr, tokio_rt, Program};
use wavecast_tokio::{connect, Message, WebSocket};

const WAIT: Duration = Duration::from_secs(5);

async fn next(ws: &mut WebSocket) -> Message {
    tokio::time::timeout(WAIT, ws.recv())
        .await
        .expect("a message in time")
        .expect("open")
        .expect("a message")
}

#[test]
fn axum_chat_broadcasts_pings_and_drops_silent_peers() {
    let addr = free_addr();
    let args = ["--addr", addr.as_str(), "--ping", "0.2", "--idle", "0.6"];
    let _server = Program::start_server("axum-chat", env!("CARGO_BIN_EXE_axum-chat"), &args);
    let url = format!("ws://{addr}/ws");

    // A raw client that completes the handshake and then never answers.
    let mut silent = TcpStream::connect(&addr).expect("connect");
    silent.set_read_timeout(Some(WAIT)).expect("timeout");
    let head = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    silent.write_all(head.as_bytes()).expect("write");
    let started = Instant::now();

    tokio_rt().block_on(async {
        let (mut a, _) = connect(&url).await.expect("connect a");
        let (mut b, _) = connect(&url).await.expect("connect b");
        a.send("hello from a").await.expect("send");
        assert_eq!(next(&mut a).await, Message::from("hello from a"));
        assert_eq!(next(&mut b).await, Message::from("hello from a"));
        // Past several idle timeouts: clients that answer pings stay.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        b.send("still here").await.expect("send after idle");
        assert_eq!(next(&mut a).await, Message::from("still here"));
        assert_eq!(next(&mut b).await, Message::from("still here"));
    });

    // The silent peer saw the 101, pings (opcode 0x9), and then the end.
    let mut seen = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match silent.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let dropped_after = started.elapsed();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let head_end = text.find("\r\n\r\n").expect("a full head") + 4;
    let frames = &seen[head_end..];
    let has = |bytes: &[u8]| frames.windows(bytes.len()).any(|w| w == bytes);
    // It was a member: the broadcast reached it too.
    assert!(has(b"hello from a"), "{frames:?}");
    // Empty pings, then a close with 1011 "idle timeout".
    assert!(has(&[0x89, 0x00]), "no ping in {frames:?}");
    assert!(
        has(b"\x88\x0e\x03\xf3idle timeout"),
        "no idle close in {frames:?}"
    );
    assert!(
        dropped_after < Duration::from_secs(4),
        "the silent peer was dropped after {dropped_after:?}"
    );
}
