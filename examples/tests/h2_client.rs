//! The `wss://` client over HTTP/2 (RFC 8441) on every runtime, against a
//! loopback hyper server (hyper-util's HTTP/1.1 + HTTP/2 server with
//! `WebSocketUpgrade`, tokio-rustls with an `rcgen` self-signed
//! certificate): `cargo test -p wavecast-examples --features rustls --test h2_client`.
//!
//! The server runs on a tokio runtime of its own thread; the client
//! scenarios are written once over `wavecast_runtime::Runtime` and run on
//! tokio, smol and async-std. Each server counts the WebSockets it accepted
//! per HTTP version, so a scenario checks both ends agree on the version.
#![cfg(feature = "rustls")]

mod support;

use support::{loopback_tls, within};

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use wavecast_runtime::rustls;
use wavecast_runtime::{
    Accept, ClientRequest, CloseCode, Config, Error, HandshakeError, HttpVersion, Message, Runtime,
};

/// What the loopback server does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// ALPN `h2` and `http/1.1`, SETTINGS_ENABLE_CONNECT_PROTOCOL on: echo.
    H2,
    /// ALPN `h2` and `http/1.1`, but HTTP/2 without the connect protocol.
    H2WithoutConnect,
    /// ALPN `http/1.1` only.
    Http11Only,
    /// Like `H2`, but every request is answered 403.
    Forbidden,
    /// Completes TLS (choosing `h2`) and then never sends a byte.
    Silent,
}

/// A running loopback server: its port, and the WebSockets it accepted
/// over HTTP/1.1 and over HTTP/2.
struct Server {
    port: u16,
    http11: Arc<AtomicUsize>,
    http2: Arc<AtomicUsize>,
}

impl Server {
    fn counts(&self) -> (usize, usize) {
        (
            self.http11.load(Ordering::SeqCst),
            self.http2.load(Ordering::SeqCst),
        )
    }
}

/// Starts a server in `mode` on a tokio runtime in a thread of its own;
/// returns it and the client's TLS config.
fn start_server(mode: Mode) -> (Server, Arc<rustls::ClientConfig>) {
    let alpn: &[&[u8]] = match mode {
        Mode::Http11Only => &[b"http/1.1"],
        _ => &[b"h2", b"http/1.1"],
    };
    let (server_tls, client_tls) = loopback_tls(alpn);
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (http11, http2) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counters = (http11.clone(), http2.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let mut held = Vec::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                if mode == Mode::Silent {
                    held.push(tls);
                    continue;
                }
                let counters = counters.clone();
                tokio::spawn(serve_connection(mode, tls, counters));
            }
        });
    });
    let server = Server {
        port,
        http11,
        http2,
    };
    (server, client_tls)
}

/// Serves one TLS connection with hyper-util's auto server (HTTP/1.1 or
/// HTTP/2, as ALPN chose): `/echo` upgrades and echoes, choosing the
/// subprotocol `chat` when offered.
async fn serve_connection(
    mode: Mode,
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    (http11, http2): (Arc<AtomicUsize>, Arc<AtomicUsize>),
) {
    let service = service_fn(move |mut request: Request<hyper::body::Incoming>| {
        let (http11, http2) = (http11.clone(), http2.clone());
        async move {
            if mode == Mode::Forbidden {
                let mut response = Response::new(Full::<Bytes>::from("go away"));
                *response.status_mut() = StatusCode::FORBIDDEN;
                return Ok::<_, Infallible>(response);
            }
            let upgrade = match wavecast_tokio::WebSocketUpgrade::from_request(&mut request) {
                Ok(upgrade) => upgrade,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            let accept = if upgrade.subprotocols().contains(&"chat") {
                Accept::new().subprotocol("chat").unwrap()
            } else {
                Accept::new()
            };
            let counter = match upgrade.request().version() {
                // RFC 8441 §5: no key over HTTP/2 (the stream is the proof).
                HttpVersion::Http2 if upgrade.request().header("sec-websocket-key").is_some() => {
                    let mut response = Response::new(Full::<Bytes>::from("a key over h2"));
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    return Ok(response);
                }
                HttpVersion::Http2 => http2,
                _ => http11,
            };
            Ok(match upgrade.accept(accept).respond() {
                Ok((response, mut ws)) => {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        while let Some(Ok(message)) = ws.recv().await {
                            if ws.send(message).await.is_err() {
                                break;
                            }
                        }
                    });
                    response
                }
                Err(rejection) => rejection.into_response(),
            })
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if mode != Mode::H2WithoutConnect {
        builder.http2().enable_connect_protocol();
    }
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await;
}

async fn connect<R: Runtime>(
    server: &Server,
    client_tls: &Arc<rustls::ClientConfig>,
    request: impl FnOnce(ClientRequest) -> ClientRequest,
    config: Config,
) -> Result<(wavecast_runtime::WebSocket, wavecast_runtime::Response), Error> {
    let url = format!("wss://localhost:{}/echo", server.port);
    let (base, _) = ClientRequest::from_url(&url).unwrap();
    let connecting =
        wavecast_runtime::connect_tls_with::<R>(&url, request(base), config, client_tls.clone());
    within::<R, _>(Duration::from_secs(10), connecting).await
}

/// Sends `message` and expects it back.
async fn round_trip<R: Runtime>(ws: &mut wavecast_runtime::WebSocket, message: Message) {
    within::<R, _>(Duration::from_secs(30), async {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), message);
    })
    .await;
}

/// Over HTTP/2: echo, a subprotocol, messages larger than the stream's
/// receive window (so the window must be given back as the driver reads),
/// a clean close; then `http1_only` on the same server takes HTTP/1.1.
async fn echo_over_http2<R: Runtime>() {
    let (server, client_tls) = start_server(Mode::H2);
    let (mut ws, response) = connect::<R>(
        &server,
        &client_tls,
        |r| r.subprotocol("chat").unwrap(),
        Config::default(),
    )
    .await
    .unwrap();
    assert_eq!(response.http_version, HttpVersion::Http2);
    assert_eq!(response.subprotocol.as_deref(), Some("chat"));
    assert_eq!(server.counts(), (0, 1));
    round_trip::<R>(&mut ws, Message::from("over h2")).await;
    // Incompressible (permessage-deflate is on), so each crosses the
    // window several times over.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for k in 0..3usize {
        let big: Vec<u8> = (0..900_000 + k)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        round_trip::<R>(&mut ws, Message::from(big)).await;
    }
    within::<R, _>(Duration::from_secs(10), ws.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap();

    let (mut ws, response) =
        connect::<R>(&server, &client_tls, |r| r.http1_only(), Config::default())
            .await
            .unwrap();
    assert_eq!(response.http_version, HttpVersion::Http11);
    assert_eq!(server.counts(), (1, 1));
    round_trip::<R>(&mut ws, Message::from("over h1")).await;
}

/// A server that speaks HTTP/2 without RFC 8441, and one that offers only
/// HTTP/1.1: both end up with a working HTTP/1.1 WebSocket.
async fn falls_back_to_http11<R: Runtime>() {
    for mode in [Mode::H2WithoutConnect, Mode::Http11Only] {
        let (server, client_tls) = start_server(mode);
        let (mut ws, response) = connect::<R>(&server, &client_tls, |r| r, Config::default())
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(response.http_version, HttpVersion::Http11, "{mode:?}");
        assert_eq!(server.counts(), (1, 0), "{mode:?}");
        round_trip::<R>(&mut ws, Message::from("fell back")).await;
    }
}

/// A 403 to the extended CONNECT is the same error as a refused HTTP/1.1
/// upgrade: `Rejected` with the status and headers.
async fn refused_connect_is_rejected<R: Runtime>() {
    let (server, client_tls) = start_server(Mode::Forbidden);
    let result = connect::<R>(&server, &client_tls, |r| r, Config::default()).await;
    match result {
        Err(Error::Handshake(HandshakeError::Rejected { status, .. })) => assert_eq!(status, 403),
        other => panic!("expected a 403 rejection, got {:?}", other.map(|_| ())),
    }
    // The same server over HTTP/1.1 refuses the same way.
    let result = connect::<R>(&server, &client_tls, |r| r.http1_only(), Config::default()).await;
    assert!(
        matches!(
            result,
            Err(Error::Handshake(HandshakeError::Rejected {
                status: 403,
                ..
            }))
        ),
        "{:?}",
        result.map(|_| ())
    );
}

/// A server that completes TLS choosing `h2` and then sends nothing (no
/// SETTINGS): the connect fails with the handshake timeout, in time.
async fn silent_h2_server_times_out<R: Runtime>() {
    let (server, client_tls) = start_server(Mode::Silent);
    let config = Config::default().with_handshake_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let result = connect::<R>(&server, &client_tls, |r| r, config).await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(Error::Handshake(HandshakeError::Timeout))),
        "{:?}",
        result.map(|_| ())
    );
    assert!(
        took >= Duration::from_millis(400),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "gave up late: {took:?}");
}

/// The same scenarios for one runtime: `$block_on` runs a future.
macro_rules! h2_suite {
    ($suite:ident, $rt:ty, $block_on:expr) => {
        mod $suite {
            use super::*;

            #[test]
            fn echo_over_http2_then_http1_only() {
                ($block_on)(echo_over_http2::<$rt>());
            }

            #[test]
            fn falls_back_to_http11_without_connect_protocol_or_h2_alpn() {
                ($block_on)(falls_back_to_http11::<$rt>());
            }

            #[test]
            fn refused_extended_connect_is_a_rejection() {
                ($block_on)(refused_connect_is_rejected::<$rt>());
            }

            #[test]
            fn silent_h2_server_fails_the_connect_in_time() {
                ($block_on)(silent_h2_server_times_out::<$rt>());
            }
        }
    };
}

fn tokio_block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

h2_suite!(tokio_runtime, wavecast_tokio::Tokio, tokio_block_on);
h2_suite!(smol_runtime, wavecast_smol::Smol, smol::block_on);
h2_suite!(
    async_std_runtime,
    wavecast_async_std::AsyncStd,
    async_std::task::block_on
);
