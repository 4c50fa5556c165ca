//! `wavecast_tokio::WebSocketUpgrade` as an axum extractor, over real
//! loopback sockets: an axum server in this process, wavecast clients and
//! raw HTTP/1.1 requests.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use support::http;
use wavecast_tokio::{
    connect, connect_with, Accept, ClientRequest, Config, Hub, Message, OriginAllowList, Room,
    UpgradeRejection, WebSocketUpgrade,
};

const WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct App {
    room: Room,
    origins: Arc<OriginAllowList>,
}

/// `/room`: joins the room before the `101`, then publishes a greeting at
/// once, before the client has even seen the response; relays after that.
async fn room(ws: WebSocketUpgrade, State(app): State<App>) -> Response {
    let room = app.room.clone();
    let response = ws.on_upgrade_then(
        |ws| (room.join(ws.sender()), room),
        |ws, (member, room)| async move {
            let _ = room.chat(ws, member).await;
        },
    );
    app.room.publish("welcome");
    response
}

/// `/echo`: checks the origin, picks the `chat` subprotocol when offered,
/// runs with a small message limit, and echoes.
async fn echo(ws: WebSocketUpgrade, State(app): State<App>) -> Result<Response, UpgradeRejection> {
    app.origins.check(ws.request())?;
    let offered = ws.subprotocols().contains(&"chat");
    let accept = if offered {
        Accept::new().subprotocol("chat").expect("a token")
    } else {
        Accept::new()
    };
    let config = Config::default().with_max_message_size(1024);
    Ok(ws
        .config(config)
        .accept(accept)
        .on_upgrade(|mut ws| async move {
            while let Some(Ok(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        }))
}

/// Serves the test app on a free port; returns its address.
async fn start() -> String {
    let app = App {
        room: Hub::default().room("test").expect("room name"),
        origins: Arc::new(OriginAllowList::new(["http://good.example"])),
    };
    let router = Router::new()
        .route("/room", get(room))
        .route("/echo", get(echo))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    addr
}

async fn next(ws: &mut wavecast_tokio::WebSocket) -> Message {
    tokio::time::timeout(WAIT, ws.recv())
        .await
        .expect("a message in time")
        .expect("open")
        .expect("a message")
}

#[tokio::test]
async fn rooms_joined_in_setup_miss_nothing_published_before_the_101() {
    let addr = start().await;
    let (mut a, _) = connect(&format!("ws://{addr}/room"))
        .await
        .expect("connect a");
    // The greeting was published before `a` saw its 101.
    assert_eq!(next(&mut a).await, Message::from("welcome"));
    let (mut b, _) = connect(&format!("ws://{addr}/room"))
        .await
        .expect("connect b");
    assert_eq!(next(&mut b).await, Message::from("welcome"));
    assert_eq!(next(&mut a).await, Message::from("welcome"));
    // Broadcast to everyone, the sender included.
    a.send("hi all").await.expect("send");
    assert_eq!(next(&mut a).await, Message::from("hi all"));
    assert_eq!(next(&mut b).await, Message::from("hi all"));
}

#[tokio::test]
async fn subprotocol_origin_config_and_deflate_as_with_accept() {
    let addr = start().await;
    let url = format!("ws://{addr}/echo");
    let (request, _) = ClientRequest::from_url(&url).expect("url");
    let request = request
        .subprotocol("other")
        .and_then(|r| r.subprotocol("chat"))
        .and_then(|r| r.origin("http://good.example"))
        .expect("request");
    let (mut ws, response) = connect_with(&url, request, Config::default())
        .await
        .expect("connect");
    assert_eq!(response.subprotocol.as_deref(), Some("chat"));
    let extensions = response.headers.get("sec-websocket-extensions");
    assert!(
        extensions.is_some_and(|e| e.contains("permessage-deflate")),
        "{extensions:?}"
    );
    ws.send("hello axum").await.expect("send");
    assert_eq!(next(&mut ws).await, Message::from("hello axum"));
    // The config given to the extractor: over 1024 bytes closes with 1009.
    ws.send("x".repeat(2000)).await.expect("send big");
    let end = tokio::time::timeout(WAIT, ws.recv())
        .await
        .expect("in time");
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
    assert_eq!(ws.close_frame().map(|f| f.code.0), Some(1009));

    // A disallowed origin is an ordinary 403.
    let (request, _) = ClientRequest::from_url(&url).expect("url");
    let request = request.origin("http://evil.example").expect("origin");
    let refused = connect_with(&url, request, Config::default()).await;
    assert!(refused.is_err(), "evil origin accepted");
}

/// A handshake request for `path` with `extra` lines, closed after the
/// answer.
fn upgrade_head(method: &str, path: &str, version: &str, extra: &str) -> String {
    format!("{method} {path} {version}\r\nHost: x\r\nConnection: Upgrade, close\r\n{extra}\r\n")
}

const GOOD: &str = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[test]
fn rejections_are_ordinary_http_responses() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = rt.block_on(start());
    // Not an upgrade at all: 426 and the version we speak.
    let (status, text) = http(&addr, &upgrade_head("GET", "/echo", "HTTP/1.1", ""));
    assert_eq!(status, 426, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("sec-websocket-version: 13"), "{text}");
    // A bad key: 400 with the reason.
    let bad_key = GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
    let (status, text) = http(&addr, &upgrade_head("GET", "/echo", "HTTP/1.1", &bad_key));
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Key"), "{text}");
    // The wrong WebSocket version: 426.
    let v8 = GOOD.replace("Version: 13", "Version: 8");
    let (status, _) = http(&addr, &upgrade_head("GET", "/echo", "HTTP/1.1", &v8));
    assert_eq!(status, 426);
    // HTTP/1.0 cannot upgrade: 505.
    let (status, _) = http(&addr, &upgrade_head("GET", "/echo", "HTTP/1.0", GOOD));
    assert_eq!(status, 505);
    // A disallowed origin: 403, from the handler's own check.
    let evil = format!("{GOOD}Origin: http://evil.example\r\n");
    let (status, _) = http(&addr, &upgrade_head("GET", "/echo", "HTTP/1.1", &evil));
    assert_eq!(status, 403);
    // The 101 itself, with the RFC 6455 §1.3 accept key.
    let mut tcp = TcpStream::connect(&addr).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    let head = upgrade_head("GET", "/echo", "HTTP/1.1", GOOD);
    tcp.write_all(head.as_bytes()).expect("write");
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        tcp.read_exact(&mut byte).expect("a full 101 head");
        response.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{text}");
}

/// Outside a server (no upgrade handle in the request) the checks still
/// run first, and a valid upgrade that cannot be carried out is a 500.
#[test]
fn requests_without_an_upgrade_handle() {
    use axum::http::Request;
    let mut plain = Request::new(());
    let rejection = WebSocketUpgrade::from_request(&mut plain).expect_err("not an upgrade");
    assert_eq!(rejection.status(), 426);
    let mut valid = Request::builder()
        .uri("/ws?room=a")
        .header("host", "x")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(())
        .expect("request");
    let rejection = WebSocketUpgrade::from_request(&mut valid).expect_err("no handle");
    assert_eq!(rejection.status(), 500);
    let response: axum::http::Response<Vec<u8>> = rejection.into_response();
    let body = String::from_utf8_lossy(response.body());
    assert!(body.contains("with_upgrades"), "{body}");
}
