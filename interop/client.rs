//! The interop client, written once for every runtime: a fixed scenario
//! list run against a third-party echo server (see `.ci/interop`).
//!
//! Each adapter's example (`interop_client`, `interop_client_smol`,
//! `interop_client_async_std`) includes this file as a module and supplies
//! the runtime in a sibling module `rt`: the adapter crate as `ws`, an async
//! `timeout(limit, future)` that returns `Err` when `limit` passes first,
//! and the program's `NAME` for its messages. Then it runs [`main`] on
//! that runtime.
//!
//! Usage: `NAME ws://HOST:PORT [PEER_NAME]`
//!
//! The peer server must echo text and binary messages on any path and:
//! - answer the text `send-fragmented` with the text `alpha-beta-gamma`
//!   sent as three fragments, and `send-fragmented-binary` with the bytes
//!   `0..=255` sent as fragments;
//! - answer `ping-me` by pinging us, waiting for our pong, then sending
//!   `pong-ok` (or `pong-missing`);
//! - answer `ping-count?` with `pings=N`, the pings it received on this
//!   connection;
//! - refuse `/reject` with 403;
//! - close `/close` with 4001 "bye";
//! - on `/last-close`, send `"<code> <reason>"` of the last close frame a
//!   client sent it, then close.
//!
//! Prints `PASS <scenario>` or `FAIL <scenario>: <why>` for each scenario
//! and exits with 1 if any failed (2 on a usage error).

use std::future::Future;
use std::time::Duration;

use crate::rt::ws::HandshakeError;

use crate::rt::ws::{
    connect_with, ClientRequest, CloseCode, Config, Error, Message, Outcome, Response, WebSocket,
};
use crate::rt::{timeout, NAME};

type Res = Result<(), String>;

const STEP: Duration = Duration::from_secs(10);

fn base_config() -> Config {
    Config::default()
        .with_max_message_size(16 << 20)
        .with_max_frame_size(16 << 20)
}

async fn open(base: &str, path: &str, config: Config) -> Result<WebSocket, String> {
    Ok(open_with_response(base, path, config).await?.0)
}

async fn open_with_response(
    base: &str,
    path: &str,
    config: Config,
) -> Result<(WebSocket, Response), String> {
    let url = format!("{base}{path}");
    let (request, _) = ClientRequest::from_url(&url).map_err(|e| format!("bad url {url}: {e}"))?;
    let (ws, response) = timeout(STEP, connect_with(&url, request, config))
        .await
        .map_err(|_| format!("connect to {url} timed out"))?
        .map_err(|e| format!("connect to {url} failed: {e}"))?;
    Ok((ws, response))
}

/// Both sides offer permessage-deflate by default: the peer must accept it
/// (silently declining it fails), and compressed echoes must round-trip.
async fn deflate_negotiated(base: &str) -> Res {
    let (mut ws, response) = open_with_response(base, "/echo", base_config()).await?;
    let ext = response
        .headers
        .get("sec-websocket-extensions")
        .unwrap_or("")
        .to_owned();
    if !ext.starts_with("permessage-deflate") {
        return Err(format!(
            "expected permessage-deflate, the peer answered {ext:?}"
        ));
    }
    let msg = Message::from("compress me ".repeat(5000));
    ws.send(msg.clone()).await.map_err(|e| e.to_string())?;
    let got = recv(&mut ws).await?;
    if got != msg {
        return Err("the compressed echo differs".into());
    }
    Ok(())
}

async fn recv(ws: &mut WebSocket) -> Result<Message, String> {
    match timeout(STEP, ws.recv()).await {
        Err(_) => Err("timed out waiting for a message".into()),
        Ok(None) => Err("connection closed while waiting for a message".into()),
        Ok(Some(Err(e))) => Err(format!("receive failed: {e}")),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

async fn send(ws: &mut WebSocket, msg: impl Into<Message>) -> Res {
    timeout(STEP, ws.send(msg))
        .await
        .map_err(|_| "send timed out".to_string())?
        .map_err(|e| format!("send failed: {e}"))
}

fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) if t.len() <= 64 => format!("text {:?}", &**t),
        Message::Text(t) => format!("text of {} bytes", t.len()),
        Message::Binary(b) => format!("binary of {} bytes", b.len()),
    }
}

async fn expect(ws: &mut WebSocket, want: &Message) -> Res {
    let got = recv(ws).await?;
    if &got != want {
        return Err(format!(
            "expected {}, got {}",
            describe(want),
            describe(&got)
        ));
    }
    Ok(())
}

async fn echo(base: &str, config: Config, msg: Message) -> Res {
    let mut ws = open(base, "/echo", config).await?;
    send(&mut ws, msg.clone()).await?;
    expect(&mut ws, &msg).await?;
    close_normally(&mut ws).await
}

async fn close_normally(ws: &mut WebSocket) -> Res {
    match timeout(STEP, ws.close(CloseCode::NORMAL, "")).await {
        Err(_) => Err("close timed out".into()),
        Ok(Err(e)) => Err(format!("close failed: {e}")),
        Ok(Ok(Outcome::Clean { .. })) => Ok(()),
        Ok(Ok(other)) => Err(format!("close was not clean: {other:?}")),
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Text of about `len` bytes with multi-byte characters, so fragment
/// boundaries fall inside UTF-8 sequences.
fn multibyte_text(len: usize) -> String {
    let unit = "héllo wörld ✓ 🦀 ";
    let mut s = String::with_capacity(len + unit.len());
    while s.len() < len {
        s.push_str(unit);
    }
    s
}

async fn text(base: &str) -> Res {
    echo(base, base_config(), Message::from("hello, interop ✓")).await
}

async fn binary(base: &str) -> Res {
    echo(
        base,
        base_config(),
        Message::from(vec![0u8, 1, 2, 0xfe, 0xff]),
    )
    .await
}

async fn one_mib(base: &str) -> Res {
    echo(base, base_config(), Message::from(pattern(1 << 20))).await?;
    echo(base, base_config(), Message::from(multibyte_text(1 << 20))).await
}

async fn fragmented_to_peer(base: &str) -> Res {
    let cfg = base_config().with_fragment_size(Some(1000));
    echo(base, cfg.clone(), Message::from(multibyte_text(100_000))).await?;
    echo(base, cfg, Message::from(pattern(100_000))).await
}

async fn fragmented_from_peer(base: &str) -> Res {
    let mut ws = open(base, "/echo", base_config()).await?;
    send(&mut ws, "send-fragmented").await?;
    expect(&mut ws, &Message::from("alpha-beta-gamma")).await?;
    send(&mut ws, "send-fragmented-binary").await?;
    expect(&mut ws, &Message::from((0..=255u8).collect::<Vec<u8>>())).await?;
    close_normally(&mut ws).await
}

async fn ping_to_peer(base: &str) -> Res {
    // The peer reports the pings it saw.
    let mut ws = open(base, "/echo", base_config()).await?;
    ws.ping(&b"wavecast-ping"[..])
        .await
        .map_err(|e| format!("ping failed: {e}"))?;
    send(&mut ws, "ping-count?").await?;
    expect(&mut ws, &Message::from("pings=1")).await?;
    close_normally(&mut ws).await?;
    // Pongs are not surfaced to the application, so observe them through
    // the heartbeat: we ping every 100 ms and give up after 600 ms of
    // silence, while the peer sends nothing but pongs for 1.5 s.
    let cfg = base_config()
        .with_heartbeat_interval(Some(Duration::from_millis(100)))
        .with_idle_timeout(Some(Duration::from_millis(600)));
    let mut ws = open(base, "/echo", cfg).await?;
    match timeout(Duration::from_millis(1500), ws.recv()).await {
        Err(_) => {}
        Ok(other) => {
            return Err(format!(
                "heartbeat: expected silence answered by pongs, got {other:?}"
            ))
        }
    }
    send(&mut ws, "still alive").await?;
    expect(&mut ws, &Message::from("still alive")).await?;
    close_normally(&mut ws).await
}

async fn ping_from_peer(base: &str) -> Res {
    let mut ws = open(base, "/echo", base_config()).await?;
    send(&mut ws, "ping-me").await?;
    expect(&mut ws, &Message::from("pong-ok")).await?;
    close_normally(&mut ws).await
}

async fn close_by_us(base: &str) -> Res {
    let mut ws = open(base, "/echo", base_config()).await?;
    let outcome = timeout(STEP, ws.close(CloseCode(4001), "bye"))
        .await
        .map_err(|_| "close timed out".to_string())?
        .map_err(|e| format!("close failed: {e}"))?;
    match outcome {
        Outcome::Clean {
            locally_initiated: true,
            ..
        } => {}
        other => return Err(format!("expected a clean close we started, got {other:?}")),
    }
    let mut ws = open(base, "/last-close", base_config()).await?;
    expect(&mut ws, &Message::from("4001 bye")).await
}

async fn close_by_peer(base: &str) -> Res {
    let ws = open(base, "/close", base_config()).await?;
    let (_tx, mut rx) = ws.split();
    match timeout(STEP, rx.recv()).await {
        Err(_) => return Err("timed out waiting for the peer's close".into()),
        Ok(None) => {}
        Ok(Some(other)) => return Err(format!("expected a clean close, got {other:?}")),
    }
    match rx.close_frame() {
        Some(f) if f.code == CloseCode(4001) && &*f.reason == "bye" => Ok(()),
        other => Err(format!("expected close 4001 \"bye\", got {other:?}")),
    }
}

async fn rejected(base: &str) -> Res {
    let url = format!("{base}/reject");
    let (request, _) = ClientRequest::from_url(&url).map_err(|e| e.to_string())?;
    match timeout(STEP, connect_with(&url, request, base_config())).await {
        Err(_) => Err("connect timed out".into()),
        Ok(Ok(_)) => Err("handshake succeeded, expected 403".into()),
        Ok(Err(Error::Handshake(HandshakeError::Rejected { status: 403, .. }))) => Ok(()),
        Ok(Err(e)) => Err(format!("expected a 403 rejection, got: {e} ({e:?})")),
    }
}

async fn run(name: &str, f: impl Future<Output = Res>, failures: &mut u32) {
    let start = std::time::Instant::now();
    let res = match timeout(Duration::from_secs(30), f).await {
        Ok(r) => r,
        Err(_) => Err("scenario timed out after 30 s".into()),
    };
    let ms = start.elapsed().as_millis();
    match res {
        Ok(()) => println!("PASS {name} ({ms} ms)"),
        Err(e) => {
            *failures += 1;
            println!("FAIL {name}: {e}");
        }
    }
}

/// Parses the arguments, runs every scenario in order and exits non-zero if
/// any failed.
pub(crate) async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(base) = args.next() else {
        eprintln!("usage: {NAME} ws://HOST:PORT [PEER_NAME]");
        std::process::exit(2);
    };
    let base = base.trim_end_matches('/').to_owned();
    let peer = args.next().unwrap_or_else(|| "peer".into());
    let b = base.as_str();
    let name = |scenario: &str| format!("wavecast client -> {peer} server: {scenario}");
    let mut failures = 0;
    let f = &mut failures;
    run(
        &name("permessage-deflate negotiated"),
        deflate_negotiated(b),
        f,
    )
    .await;
    run(&name("text"), text(b), f).await;
    run(&name("binary"), binary(b), f).await;
    run(&name("1 MiB"), one_mib(b), f).await;
    run(&name("fragmented (we send)"), fragmented_to_peer(b), f).await;
    run(&name("fragmented (peer sends)"), fragmented_from_peer(b), f).await;
    run(&name("ping (we ping)"), ping_to_peer(b), f).await;
    run(&name("ping (peer pings)"), ping_from_peer(b), f).await;
    run(&name("close 4001 (we close)"), close_by_us(b), f).await;
    run(&name("close 4001 (peer closes)"), close_by_peer(b), f).await;
    run(&name("rejected handshake 403"), rejected(b), f).await;
    if failures > 0 {
        eprintln!("{NAME}: {failures} scenario(s) failed against {peer} at {base}");
        std::process::exit(1);
    }
}
