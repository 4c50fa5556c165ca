//! WebSockets over HTTP/2 (RFC 8441) through `wavecast_tokio::WebSocketUpgrade`,
//! over real loopback sockets in cleartext (h2c, prior knowledge): an axum
//! router and a plain hyper service (hyper-util's HTTP/1.1 + HTTP/2 server),
//! driven by hyper's HTTP/2 client sending extended `CONNECT`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http2::SendRequest;
use hyper::ext::Protocol;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use wavecast_tokio::{
    connect, from_upgraded, CloseCode, Config, HttpVersion, Message, Negotiated, Role, WebSocket,
    WebSocketUpgrade,
};

const WAIT: Duration = Duration::from_secs(5);

/// Echoes every message until the peer closes.
async fn echo(mut ws: WebSocket) {
    while let Some(Ok(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// An axum router with `/echo` routed for every method, so that both the
/// HTTP/1.1 `GET` and the HTTP/2 `CONNECT` reach the extractor.
async fn start_axum() -> String {
    let router = Router::new().route(
        "/echo",
        any(|ws: WebSocketUpgrade| async move { ws.on_upgrade(echo) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    addr
}

/// A plain hyper service: `/ws` upgrades (counting HTTP/2 WebSockets),
/// anything else answers `plain`.
async fn start_hyper(h2_sockets: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.expect("accept");
            let counter = h2_sockets.clone();
            let service = service_fn(move |mut request: Request<hyper::body::Incoming>| {
                let counter = counter.clone();
                async move {
                    if request.uri().path() != "/ws" {
                        return Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("plain")));
                    }
                    let upgrade = match WebSocketUpgrade::from_request(&mut request) {
                        Ok(upgrade) => upgrade,
                        Err(rejection) => return Ok(rejection.into_response()),
                    };
                    if upgrade.request().version() == HttpVersion::Http2 {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(match upgrade.respond() {
                        Ok((response, ws)) => {
                            tokio::spawn(echo(ws));
                            response
                        }
                        Err(rejection) => rejection.into_response(),
                    })
                }
            });
            tokio::spawn(async move {
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http2().enable_connect_protocol();
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// An HTTP/2 connection without TLS (prior knowledge).
async fn h2c(addr: &str) -> SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

/// Sends an extended `CONNECT` (`:protocol` = `protocol`, if any) for
/// `path`; returns the response, and the WebSocket on the stream when the
/// answer is 2xx.
async fn extended_connect(
    send: &mut SendRequest<Empty<Bytes>>,
    addr: &str,
    path: &str,
    protocol: Option<&'static str>,
    version: Option<&str>,
) -> (StatusCode, String, Option<WebSocket>) {
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri(format!("http://{addr}{path}"));
    if let Some(version) = version {
        request = request.header("sec-websocket-version", version);
    }
    let mut request = request.body(Empty::new()).expect("request");
    if let Some(protocol) = protocol {
        request
            .extensions_mut()
            .insert(Protocol::from_static(protocol));
    }
    send.ready().await.expect("h2 ready");
    let mut response = tokio::time::timeout(WAIT, send.send_request(request))
        .await
        .expect("a response in time")
        .expect("a response");
    let status = response.status();
    if !status.is_success() {
        let body = response.into_body().collect().await.expect("body");
        let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
        return (status, body, None);
    }
    let upgraded = hyper::upgrade::on(&mut response).await.expect("upgraded");
    let ws = from_upgraded(
        TokioIo::new(upgraded),
        Role::Client,
        Config::default(),
        &Negotiated::with_subprotocol(None),
        Bytes::new(),
    );
    (status, String::new(), Some(ws))
}

async fn next(ws: &mut WebSocket) -> Message {
    tokio::time::timeout(WAIT, ws.recv())
        .await
        .expect("a message in time")
        .expect("open")
        .expect("a message")
}

/// Echo round trips, including a message bigger than HTTP/2's initial
/// flow-control window (65 535 bytes), then a clean close.
async fn echo_round_trips(ws: &mut WebSocket) {
    for message in [
        Message::from("hello h2"),
        Message::Binary(vec![1u8, 2, 3].into()),
    ] {
        ws.send(message.clone()).await.expect("send");
        assert_eq!(next(ws).await, message);
    }
    let big = "x".repeat(300_000);
    ws.send(big.as_str()).await.expect("send big");
    assert_eq!(next(ws).await, Message::from(big.as_str()));
}

#[tokio::test]
async fn axum_extractor_accepts_extended_connect_and_http11_on_one_route() {
    let addr = start_axum().await;
    let mut send = h2c(&addr).await;
    let (status, body, ws) =
        extended_connect(&mut send, &addr, "/echo", Some("websocket"), Some("13")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut ws = ws.expect("a WebSocket");
    echo_round_trips(&mut ws).await;
    ws.close(CloseCode::NORMAL, "done").await.expect("close");
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));

    // The same route still upgrades HTTP/1.1.
    let (mut ws, _) = connect(&format!("ws://{addr}/echo"))
        .await
        .expect("HTTP/1.1 connect");
    ws.send("hello h1").await.expect("send");
    assert_eq!(next(&mut ws).await, Message::from("hello h1"));
}

#[tokio::test]
async fn h2_requests_that_are_not_websocket_connects_are_refused() {
    let addr = start_axum().await;
    let mut send = h2c(&addr).await;
    // Another protocol over extended CONNECT: 426.
    let (status, body, ws) =
        extended_connect(&mut send, &addr, "/echo", Some("webtransport"), Some("13")).await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED, "{body}");
    assert!(ws.is_none());
    // The wrong WebSocket version: 426 as well.
    let (status, _, _) =
        extended_connect(&mut send, &addr, "/echo", Some("websocket"), Some("8")).await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
    let (status, _, _) = extended_connect(&mut send, &addr, "/echo", Some("websocket"), None).await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
    // A GET over HTTP/2 cannot become a WebSocket: 405, naming CONNECT.
    let request = Request::get(format!("http://{addr}/echo"))
        .version(Version::HTTP_2)
        .body(Empty::new())
        .expect("request");
    let response = send.send_request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.headers().get("allow").map(|v| v.as_bytes()),
        Some(&b"CONNECT"[..])
    );
    // The connection survived every refusal.
    let (status, _, ws) =
        extended_connect(&mut send, &addr, "/echo", Some("websocket"), Some("13")).await;
    assert_eq!(status, StatusCode::OK);
    let mut ws = ws.expect("a WebSocket");
    ws.send("still here").await.expect("send");
    assert_eq!(next(&mut ws).await, Message::from("still here"));
}

#[tokio::test]
async fn hyper_service_runs_websockets_on_streams_beside_plain_requests() {
    let h2_sockets = Arc::new(AtomicUsize::new(0));
    let addr = start_hyper(h2_sockets.clone()).await;
    let mut send = h2c(&addr).await;
    let (status, _, a) =
        extended_connect(&mut send, &addr, "/ws", Some("websocket"), Some("13")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, b) =
        extended_connect(&mut send, &addr, "/ws", Some("websocket"), Some("13")).await;
    assert_eq!(status, StatusCode::OK);
    let (mut a, mut b) = (a.expect("a"), b.expect("b"));
    // Both streams and a plain request share the one connection.
    let request = Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .expect("request");
    let response = send.send_request(request).await.expect("response");
    let body = response.into_body().collect().await.expect("body");
    assert_eq!(&body.to_bytes()[..], b"plain");
    let (sa, sb) = tokio::join!(a.send("to a"), b.send("to b"));
    sa.expect("send a");
    sb.expect("send b");
    assert_eq!(next(&mut b).await, Message::from("to b"));
    assert_eq!(next(&mut a).await, Message::from("to a"));
    echo_round_trips(&mut a).await;
    // Closing one stream leaves the other working.
    a.close(CloseCode::NORMAL, "bye").await.expect("close a");
    b.send("after a").await.expect("send b");
    assert_eq!(next(&mut b).await, Message::from("after a"));
    assert_eq!(h2_sockets.load(Ordering::SeqCst), 2);

    // HTTP/1.1 on the same listener still upgrades, and is not counted.
    let (mut ws, _) = connect(&format!("ws://{addr}/ws"))
        .await
        .expect("HTTP/1.1 connect");
    ws.send("hello h1").await.expect("send");
    assert_eq!(next(&mut ws).await, Message::from("hello h1"));
    assert_eq!(h2_sockets.load(Ordering::SeqCst), 2);
}
