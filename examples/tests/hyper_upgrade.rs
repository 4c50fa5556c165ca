//! The `hyper-upgrade` binary on every runtime: plain HTTP from hyper, and a
//! WebSocket echo on `/ws` after hyper hands the upgraded stream to wavecast.

mod support;

use std::time::Duration;

use support::{free_addr, get, tokio_rt, Program};
use wavecast_tokio::{connect, CloseCode, Message};

fn check(runtime: &str) {
    let addr = free_addr();
    let server = Program::start_server(
        "hyper-upgrade",
        env!("CARGO_BIN_EXE_hyper-upgrade"),
        &["--runtime", runtime, "--addr", &addr],
    );

    let (status, page) = get(&addr, "/", "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("/ws"), "{page}");
    assert_eq!(get(&addr, "/nope", "").0, 404);
    // A plain GET of /ws is not an upgrade: wavecast's negotiation refuses it.
    assert_eq!(get(&addr, "/ws", "").0 / 100, 4);
    // Nor is an HTTP/1.0 request with upgrade headers.
    let (status, _) = support::http(
        &addr,
        "GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(status >= 400, "HTTP/1.0 upgrade answered {status}");

    tokio_rt().block_on(async {
        let url = format!("ws://{addr}/ws");
        let (mut ws, _) = connect(&url).await.expect("connect");
        for message in [
            Message::from("hello hyper"),
            Message::Binary(vec![1u8, 2, 3].into()),
        ] {
            ws.send(message.clone()).await.expect("send");
            let echoed = tokio::time::timeout(Duration::from_secs(5), ws.recv())
                .await
                .expect("echo in time")
                .expect("open")
                .expect("message");
            assert_eq!(echoed, message);
        }
        // A message bigger than hyper's read buffer, in one frame.
        let big = "x".repeat(300_000);
        ws.send(big.as_str()).await.expect("send big");
        let echoed = ws.recv().await.expect("open").expect("message");
        assert_eq!(echoed, Message::from(big.as_str()));
        ws.close(CloseCode::NORMAL, "done").await.expect("close");
    });

    server.interrupt_and_check();
}

#[test]
fn hyper_upgrade_on_tokio() {
    check("tokio");
}

#[test]
fn hyper_upgrade_on_async_std() {
    check("async-std");
}

#[test]
fn hyper_upgrade_on_smol() {
    check("smol");
}
