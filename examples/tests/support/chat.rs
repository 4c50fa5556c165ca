//! Talking to the chat example: refusals and the SSE member list.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use wavecast_tokio::{connect, CloseCode};

/// Connects to `url` and expects the server to close with 1008 within
/// `wait`; returns the reason it gave (never empty).
pub(crate) async fn refused(url: &str, wait: Duration) -> String {
    let (mut ws, _) = connect(url).await.expect("the handshake itself succeeds");
    let end = tokio::time::timeout(wait, ws.recv())
        .await
        .expect("closed in time");
    assert!(!matches!(end, Some(Ok(_))), "expected a close, got {end:?}");
    let frame = ws.close_frame().expect("a close frame");
    assert_eq!(frame.code, CloseCode(1008), "{url}");
    assert!(!frame.reason.is_empty(), "the close says why");
    frame.reason.to_string()
}

/// Reads SSE lines until a `data:` line containing `needle`; returns every
/// line read.
pub(crate) fn sse_until(reader: impl BufRead, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap_or_else(|e| panic!("SSE read failed after {seen:?}: {e}"));
        let found = line.starts_with("data:") && line.contains(needle);
        seen.push(line);
        if found {
            return seen;
        }
    }
    panic!("SSE stream ended without {needle:?}: {seen:?}");
}

/// Opens an SSE stream on `room` and returns the data of its first event
/// (the member list), reading for at most `wait` between lines.
pub(crate) fn sse_first_event(addr: &str, room: &str, wait: Duration) -> Value {
    let mut tcp = TcpStream::connect(addr).expect("connect SSE");
    tcp.set_read_timeout(Some(wait)).unwrap();
    write!(
        tcp,
        "GET /sse/{room} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let seen = sse_until(BufReader::new(tcp), "\"type\"");
    let data = seen.last().expect("a data line");
    serde_json::from_str(data.trim_start_matches("data:").trim()).expect("JSON")
}
