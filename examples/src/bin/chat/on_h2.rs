//! `chat --https`: the chat server on tokio behind TLS, speaking HTTP/2
//! and HTTP/1.1 on one port (ALPN picks), through hyper. Over HTTP/2 the
//! page's WebSockets arrive as extended `CONNECT` requests (RFC 8441) and
//! each runs on one stream of the page's connection; the SSE listeners are
//! ordinary streaming responses. The routing, the rooms and the members
//! are the ones every other runtime's server uses (`chat.rs`).
//!
//! The certificate is self-signed, made at start for the names the server
//! answers to: a browser warns once (or takes `--ignore-certificate-errors`
//! in a test).

#[cfg(feature = "rustls")]
pub(crate) use tls::run;

#[cfg(not(feature = "rustls"))]
pub(crate) fn run(_: crate::Options) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "--https needs TLS, which is behind the examples' `rustls` feature: \
         cargo run -p wavecast-examples --features rustls --bin chat -- --https",
    ))
}

#[cfg(feature = "rustls")]
mod tls {
    use std::convert::Infallible;
    use std::io;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use bytes::Bytes;
    use futures_lite::{stream, StreamExt};
    use hyper::body::Incoming;
    use hyper::http;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use tokio::net::TcpListener;
    use tokio::sync::Semaphore;
    use tokio_rustls::rustls;
    use tokio_rustls::TlsAcceptor;
    use wavecast_core::sse::keep_alive;
    use wavecast_examples::cannot_listen;
    use wavecast_tokio::{
        request_from_http, CloseCode, HostAllowList, HttpResponse, SseConfig, SseEvent, StreamHub,
        StreamRoom, StreamSubscription, Tokio, UpgradeRejection, WebSocketUpgrade,
    };

    use crate::chat::{self, Route, Seats};
    use crate::Options;

    /// How long a client may take over its TLS handshake.
    const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    /// What every request's handler shares.
    struct State {
        hub: StreamHub<Tokio>,
        seats: Seats,
        hosts: HostAllowList,
    }

    pub(crate) fn run(options: Options) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let listener = TcpListener::bind(&options.addr)
                .await
                .map_err(cannot_listen(&options.addr))?;
            let acceptor = acceptor(&options)?;
            let hub = chat::open_hub(options.redis.as_deref()).await?;
            println!(
                "chat (tokio, HTTPS: HTTP/2 and HTTP/1.1): open https://{}/ in a browser \
                 (the certificate is self-signed: the browser asks once)",
                listener.local_addr()?
            );
            let state = Arc::new(State {
                hub,
                seats: Seats::default(),
                hosts: chat::allowed_hosts(&options.addr, &options.allow_hosts),
            });
            let mut http = auto::Builder::new(TokioExecutor::new());
            http.http1().timer(TokioTimer::new());
            // Without this setting browsers never send an extended CONNECT
            // and fall back to a second, HTTP/1.1 connection.
            http.http2()
                .timer(TokioTimer::new())
                .enable_connect_protocol();
            let slots = Arc::new(Semaphore::new(options.max_connections));
            let accepting = async {
                loop {
                    let (tcp, _) = match listener.accept().await {
                        Ok(accepted) => accepted,
                        // Out of file descriptors or similar: try again soon.
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let slot = slots.clone().try_acquire_owned().ok();
                    let (acceptor, http, state) = (acceptor.clone(), http.clone(), state.clone());
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                        let Ok(Ok(tls)) = handshake.await else {
                            return;
                        };
                        let io = TokioIo::new(tls);
                        if slot.is_some() {
                            let service = service_fn(move |request| handle(request, state.clone()));
                            let _ = http.serve_connection_with_upgrades(io, service).await;
                        } else {
                            // Over the cap: every request on it gets 503.
                            let service = service_fn(|_| async {
                                Ok::<_, Infallible>(answer(HttpResponse::text(
                                    503,
                                    "server busy\n",
                                )))
                            });
                            let _ = http.serve_connection(io, service).await;
                        }
                        drop(slot);
                    });
                }
            };
            tokio::select! {
                () = accepting => {}
                _ = tokio::signal::ctrl_c() => println!("chat: shutting down"),
            }
            Ok(())
        })
    }

    /// TLS with a fresh self-signed certificate for the names the server
    /// answers to, offering HTTP/2 first.
    fn acceptor(options: &Options) -> io::Result<TlsAcceptor> {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let listen_host = options.addr.rsplit_once(':').map(|(host, _)| host);
        for host in listen_host
            .into_iter()
            .chain(options.allow_hosts.iter().map(String::as_str))
        {
            let host = host.split(':').next().unwrap_or(host);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if !host.is_empty() && !names.iter().any(|n| n == host) {
                names.push(host.to_owned());
            }
        }
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| io::Error::other(format!("cannot make a certificate: {e}")))?;
        let cert = certified.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(vec![cert], key))
            .map_err(|e| io::Error::other(format!("cannot set up TLS: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    async fn handle(
        mut request: http::Request<Incoming>,
        state: Arc<State>,
    ) -> Result<http::Response<Body>, Infallible> {
        let parsed = match request_from_http(&request) {
            Ok(parsed) => parsed,
            Err(e) => return Ok(answer(HttpResponse::from_handshake_error(&e))),
        };
        Ok(match chat::route(&parsed, &state.hosts) {
            Route::Page => answer(HttpResponse::html(200, chat::PAGE)),
            Route::Respond(response) => answer(response),
            Route::Listen { room: name } => {
                let Ok(room) = state.hub.room(&name).await else {
                    return Ok(answer(HttpResponse::text(503, "too many rooms\n")));
                };
                // The member list first, then everything from that moment
                // on, after what the listener missed (see `listen_since`).
                let since = chat::listen_since(&parsed);
                let subscription = room.subscribe(since);
                let list = chat::member_list(&room).await;
                // The stream holds the room, which keeps this process
                // subscribed to it on the backplane.
                event_stream(SseEvent::data(list).encode(), subscription, room)
            }
            Route::Echo => match upgrade(&mut request).and_then(|u| u.respond()) {
                Ok((response, mut ws)) => {
                    tokio::spawn(async move {
                        while let Some(Ok(message)) = ws.recv().await {
                            if ws.send(message).await.is_err() {
                                break;
                            }
                        }
                    });
                    response
                }
                Err(refused) => refused.into_response(),
            },
            Route::Refuse(reason) => match upgrade(&mut request).and_then(|u| u.respond()) {
                Ok((response, mut ws)) => {
                    tokio::spawn(async move {
                        let _ = ws.close(CloseCode(chat::REFUSED), &reason).await;
                    });
                    response
                }
                Err(refused) => refused.into_response(),
            },
            Route::Chat(chatter) => {
                let Ok(room) = state.hub.room(&chatter.room).await else {
                    return Ok(answer(HttpResponse::text(503, "too many rooms\n")));
                };
                let since = chatter.resume_from(&room).await;
                let taken = chatter.take_seat(&room, &state.seats).await;
                let mut seated = None;
                let answered = upgrade(&mut request).and_then(|u| {
                    u.respond_then(|ws| {
                        seated = Some(chatter.seat(ws, &room, since, taken, parsed.version()));
                    })
                });
                match (answered, seated) {
                    (Ok((response, ws)), Some(seated)) => {
                        tokio::spawn(async move {
                            chatter.converse(ws, seated, &room).await;
                        });
                        response
                    }
                    (Err(refused), _) => refused.into_response(),
                    // `respond_then` ran the setup if it answered.
                    (Ok((response, _)), None) => response,
                }
            }
        })
    }

    /// The WebSocket handshake of `request` (HTTP/1.1 upgrade or HTTP/2
    /// extended `CONNECT`), with the chat's connection settings.
    fn upgrade(
        request: &mut http::Request<Incoming>,
    ) -> Result<WebSocketUpgrade, UpgradeRejection> {
        Ok(WebSocketUpgrade::from_request(request)?.config(chat::config()))
    }

    fn answer(response: HttpResponse) -> http::Response<Body> {
        UpgradeRejection::from(response).into_response()
    }

    /// An SSE response: `first`, then the room's events as they come, a
    /// keep-alive comment after every quiet stretch. hyper stops polling it
    /// when the client goes away (the stream is reset or the connection
    /// closes) and while the client does not take what was sent (flow
    /// control), so the room's lag policy covers a stalled listener.
    fn event_stream(
        first: Bytes,
        subscription: StreamSubscription<Tokio>,
        room: StreamRoom<Tokio>,
    ) -> http::Response<Body> {
        let every = SseConfig::default().keep_alive;
        let events = stream::unfold(
            (subscription, room),
            move |(mut subscription, room)| async move {
                loop {
                    let event = tokio::time::timeout(every, subscription.recv()).await;
                    let Ok(event) = event else {
                        return Some((keep_alive(), (subscription, room)));
                    };
                    match event.sse_bytes() {
                        Ok(Some(bytes)) => return Some((bytes, (subscription, room))),
                        // Binary messages have no SSE form.
                        Ok(None) => {}
                        // Evicted by the room's lag policy: end the stream.
                        Err(_) => return None,
                    }
                }
            },
        );
        let body = stream::once(first).chain(events).map(Ok::<_, Infallible>);
        http::Response::builder()
            .header(http::header::CONTENT_TYPE, "text/event-stream")
            .header(http::header::CACHE_CONTROL, "no-cache")
            .header("x-accel-buffering", "no")
            .body(Body::from_stream(body))
            .unwrap_or_else(|_| answer(HttpResponse::text(500, "cannot answer\n")))
    }
}
