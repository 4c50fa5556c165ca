//! TLS (`wss://`) on every runtime, against a loopback futures-rustls
//! server with an `rcgen` self-signed certificate:
//! `cargo test -p wavecast-examples --features rustls --test tls`.
//!
//! The scenarios are written once over `wavecast_runtime::Runtime` (TLS
//! itself is written once, in `wavecast-runtime`); each runtime only says
//! how to block on a future and bind a listener.
#![cfg(feature = "rustls")]

mod support;

use support::{loopback_tls, within};

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_rustls::TlsAcceptor;
use wavecast_runtime::rustls;
use wavecast_runtime::{ClientRequest, Config, Error, HandshakeError, Message, Runtime};

/// A server config for a fresh self-signed `localhost` certificate, and a
/// client config that trusts exactly that certificate.
fn loopback_configs() -> (TlsAcceptor, Arc<rustls::ClientConfig>) {
    let (server, client) = loopback_tls(&[]);
    (TlsAcceptor::from(server), client)
}

/// A TLS echo server on `listener`, accepting on `R` and serving each
/// connection with `wavecast_runtime::accept` over the TLS stream.
fn spawn_tls_echo<R: Runtime>(listener: R::Listener, acceptor: TlsAcceptor) {
    R::spawn(Box::pin(async move {
        loop {
            let Ok(tcp) = R::accept(&listener).await else {
                return;
            };
            let acceptor = acceptor.clone();
            R::spawn(Box::pin(async move {
                // A client that does not trust us aborts the TLS handshake.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = wavecast_runtime::accept::<R, _>(tls).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.recv().await {
                    if ws.send(m).await.is_err() {
                        break;
                    }
                }
            }));
        }
    }));
}

/// Echo over TLS, then four 900 KB messages two in flight (payloads are
/// read straight into message buffers and written slice by slice: TLS
/// streams do not write vectored), then a refusal by the default roots.
async fn loopback_large_messages<R: Runtime>(listener: R::Listener) {
    let port = R::local_addr(&listener).unwrap().port();
    let (acceptor, client_config) = loopback_configs();
    spawn_tls_echo::<R>(listener, acceptor);

    let url = format!("wss://localhost:{port}/secure");
    let (request, _) = ClientRequest::from_url(&url).unwrap();
    let connecting =
        wavecast_runtime::connect_tls_with::<R>(&url, request, Config::default(), client_config);
    let (mut ws, _) = within::<R, _>(Duration::from_secs(10), connecting)
        .await
        .unwrap();
    ws.send("over tls").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("over tls"));

    let big: Vec<Message> = (0..4usize)
        .map(|k| {
            Message::from(
                (0..900_000 - k * 1000)
                    .map(|i| (i * 7 + k) as u8)
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();
    within::<R, _>(Duration::from_secs(30), async {
        for pair in big.chunks(2) {
            for m in pair {
                ws.send(m.clone()).await.unwrap();
            }
            for m in pair {
                assert_eq!(&ws.recv().await.unwrap().unwrap(), m);
            }
        }
    })
    .await;

    // The default roots do not trust our certificate.
    let refused = within::<R, _>(
        Duration::from_secs(10),
        wavecast_runtime::connect::<R>(&url),
    )
    .await;
    assert!(refused.is_err());
}

/// A TCP server that accepts and never answers (no TLS `ServerHello`):
/// both ways to connect to `wss://` give up after the configured handshake
/// timeout.
async fn connect_deadline_against_a_silent_server<R: Runtime>() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for tcp in listener.incoming() {
            held.push(tcp);
        }
    });
    let url = format!("wss://localhost:{port}/");
    let config = Config::default().with_handshake_timeout(Duration::from_millis(500));
    let (_, client_config) = loopback_configs();
    for custom_roots in [true, false] {
        let (request, _) = ClientRequest::from_url(&url).unwrap();
        let started = Instant::now();
        let result = if custom_roots {
            let connecting = wavecast_runtime::connect_tls_with::<R>(
                &url,
                request,
                config.clone(),
                client_config.clone(),
            );
            within::<R, _>(Duration::from_secs(10), connecting).await
        } else {
            let connecting = wavecast_runtime::connect_with::<R>(&url, request, config.clone());
            within::<R, _>(Duration::from_secs(10), connecting).await
        };
        let took = started.elapsed();
        assert!(
            matches!(result, Err(Error::Handshake(HandshakeError::Timeout))),
            "custom roots {custom_roots}: {:?}",
            result.map(|_| ())
        );
        assert!(
            took >= Duration::from_millis(400),
            "gave up early: {took:?}"
        );
        assert!(took < Duration::from_secs(5), "gave up late: {took:?}");
    }
}

/// The same scenarios for one runtime: `$block_on` runs a future,
/// `$bind` binds a listener on 127.0.0.1 inside it.
macro_rules! tls_suite {
    ($suite:ident, $rt:ty, $block_on:expr, $bind:expr) => {
        mod $suite {
            use super::*;

            #[test]
            fn wss_large_messages_two_in_flight() {
                ($block_on)(async {
                    let listener = ($bind)("127.0.0.1:0").await.unwrap();
                    loopback_large_messages::<$rt>(listener).await;
                });
            }

            #[test]
            fn wss_connect_deadline_against_a_silent_server() {
                ($block_on)(connect_deadline_against_a_silent_server::<$rt>());
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

tls_suite!(
    tokio_runtime,
    wavecast_tokio::Tokio,
    tokio_block_on,
    tokio::net::TcpListener::bind
);
tls_suite!(
    smol_runtime,
    wavecast_smol::Smol,
    smol::block_on,
    smol::net::TcpListener::bind
);
tls_suite!(
    async_std_runtime,
    wavecast_async_std::AsyncStd,
    async_std::task::block_on,
    async_std::net::TcpListener::bind
);
