//! `serve` (connection cap, graceful shutdown, plain HTTP and origin checks
//! on the WebSocket port, allowed hosts against DNS rebinding, fast refusal
//! of bytes that are not HTTP),
//! Server-Sent Events from rooms, and the reconnecting client.

macro_rules! serving_scenarios {
    () => {
        /// Runs `ws::serve` on a thread of its own running this runtime and
        /// hands back the `Server`.
        fn serve_in_background<H, F>(options: ws::ServeConfig, handler: H) -> ws::Server
        where
            H: Fn(ws::Incoming) -> F + Send + Sync + 'static,
            F: Future<Output = ()> + Send + 'static,
        {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    tx.send(ws::serve(listener, options, handler).unwrap())
                        .unwrap();
                    // Keep this runtime (and the serve loop on it) alive.
                    std::future::pending::<()>().await
                })
            });
            wait(&rx, 5)
        }

        /// `serve` answering every request with an SSE stream that forwards
        /// `room` under `config` (after a `hello` event naming the client's
        /// `Last-Event-ID` when `greet`); each stream's end is sent back.
        fn serve_room_as_sse(
            room: &ws::Room,
            config: ws::SseConfig,
            greet: bool,
        ) -> (ws::Server, mpsc::Receiver<ws::SseEnd>) {
            let server_room = room.clone();
            let (ended_tx, ended) = mpsc::channel();
            let ended_tx = Mutex::new(ended_tx);
            let server = serve_in_background(ws::ServeConfig::default(), move |incoming| {
                let room = server_room.clone();
                let ended_tx = ended_tx.lock().unwrap().clone();
                let config = config.clone();
                async move {
                    // Subscribed before the response head is written.
                    let mut sub = room.subscribe();
                    let Ok(mut sse) = ws::SseStream::respond(incoming, config).await else {
                        return;
                    };
                    if greet {
                        let resume = sse.last_event_id().unwrap_or("none").to_owned();
                        let hello = ws::SseEvent::data(format!("resume after {resume}")).event("hello");
                        sse.send(&hello).await.unwrap();
                    }
                    let _ = ended_tx.send(sse.forward(&mut sub).await);
                }
            });
            (server, ended)
        }

        /// An echo server under `serve` that also answers plain HTTP (`/`
        /// is a page, anything else 404) and refuses foreign origins.
        fn serve_echo(max: usize) -> ws::Server {
            let options = ws::ServeConfig::default()
                .with_max_connections(max)
                .with_shutdown_timeout(Duration::from_secs(2));
            let origins = OriginAllowList::new(["https://chat.example"]);
            serve_in_background(options, move |incoming| {
                let origins = origins.clone();
                async move {
                    if incoming.is_websocket_upgrade() {
                        if let Err(refusal) = origins.check(incoming.request()) {
                            let _ = incoming.reject(refusal).await;
                            return;
                        }
                        let Ok(mut socket) = incoming.accept(Accept::new()).await else {
                            return;
                        };
                        while let Some(Ok(msg)) = socket.recv().await {
                            if socket.send(msg).await.is_err() {
                                break;
                            }
                        }
                    } else {
                        let response = match incoming.request().path() {
                            "/" => HttpResponse::html(200, "<h1>chat</h1>"),
                            _ => HttpResponse::not_found(),
                        };
                        let _ = incoming.respond(response).await;
                    }
                }
            })
        }

        /// Sends `request` on a raw socket and reads until the server closes.
        fn raw_exchange(server: &ws::Server, request: &str) -> String {
            let mut tcp = raw::send_head(&server.local_addr().to_string(), request);
            raw::read_all(&mut tcp)
        }

        #[test]
        fn serve_over_the_cap_gets_503_not_a_hang() {
            let server = serve_echo(2);
            let addr = server.local_addr().to_string();
            let url = format!("ws://{addr}/");
            // One `block_on` for the whole test: the clients' drivers run
            // on its runtime (the raw exchange blocks this thread only).
            block_on(async {
                let (mut a, _) = ws::connect(&url).await.unwrap();
                let (mut b, _) = ws::connect(&url).await.unwrap();
                a.send("a").await.unwrap();
                b.send("b").await.unwrap();
                assert!(a.recv().await.unwrap().is_ok());
                assert!(b.recv().await.unwrap().is_ok());
                assert_eq!(server.active(), 2);
                let answer = raw_exchange(&server, &raw::upgrade_request(&addr, "/", ""));
                assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
                assert!(answer.contains("Retry-After: 1"), "{answer}");
                let refused = within(Duration::from_secs(5), ws::connect(&url)).await;
                assert!(refused.is_err());
                // A slot frees up when a connection ends.
                a.close(CloseCode::NORMAL, "").await.unwrap();
                wait_for(|| server.active() < 2).await;
                assert!(ws::connect(&url).await.is_ok());
                drop(b);
            });
        }

        #[test]
        fn serve_graceful_shutdown_closes_with_1001() {
            let server = serve_echo(100);
            let url = format!("ws://{}/", server.local_addr());
            block_on(async move {
                let mut clients = Vec::new();
                for _ in 0..3 {
                    let (mut client, _) = ws::connect(&url).await.unwrap();
                    client.send("x").await.unwrap();
                    client.recv().await.unwrap().unwrap();
                    clients.push(client);
                }
                let (done_tx, done_rx) = mpsc::channel();
                spawn(async move {
                    done_tx.send(server.shutdown().await).unwrap();
                });
                for client in clients {
                    let (_sender, mut receiver) = client.split();
                    let end = within(Duration::from_secs(5), receiver.recv()).await;
                    assert!(end.is_none(), "clean close: {end:?}");
                    assert_eq!(receiver.close_frame().unwrap().code, CloseCode::GOING_AWAY);
                }
                let drained = within(Duration::from_secs(5), async {
                    loop {
                        if let Ok(drained) = done_rx.try_recv() {
                            break drained;
                        }
                        sleep(Duration::from_millis(5)).await;
                    }
                })
                .await;
                assert!(drained, "every handler finished in time");
                assert!(ws::connect(&url).await.is_err(), "no longer accepting");
            });
        }

        #[test]
        fn serve_plain_http_and_origin_checks_on_the_same_port() {
            let server = serve_echo(10);
            let addr = server.local_addr().to_string();
            let page = raw_exchange(&server, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(page.starts_with("HTTP/1.1 200"), "{page}");
            assert!(page.contains("Connection: close"), "{page}");
            assert!(page.ends_with("<h1>chat</h1>"), "{page}");
            let head = raw_exchange(&server, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(head.ends_with("\r\n\r\n"), "head only: {head}");
            let missing = raw_exchange(&server, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
            let body = raw_exchange(
                &server,
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            );
            assert!(body.starts_with("HTTP/1.1 413"), "{body}");
            let foreign = raw::upgrade_request(&addr, "/", "Origin: https://evil.example\r\n");
            let refused = raw_exchange(&server, &foreign);
            assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
        }

        /// A server that answers to `localhost` only and takes browsers
        /// from its own host (`same_host`): a DNS-rebinding request, whose
        /// `Host` and `Origin` both name the attacker's site, passes the
        /// origin check but not the host list.
        #[test]
        fn allowed_hosts_refuse_dns_rebinding() {
            let hosts = HostAllowList::new(["localhost"]);
            let server = serve_in_background(ws::ServeConfig::default(), move |incoming| {
                let hosts = hosts.clone();
                async move {
                    let checked = hosts
                        .check(incoming.request())
                        .and_then(|()| OriginAllowList::same_host().check(incoming.request()));
                    if let Err(refusal) = checked {
                        let _ = incoming.reject(refusal).await;
                        return;
                    }
                    let Ok(mut socket) = incoming.accept(Accept::new()).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = socket.recv().await {
                        if socket.send(msg).await.is_err() {
                            break;
                        }
                    }
                }
            });
            let addr = server.local_addr().to_string();
            let port = server.local_addr().port();
            // `upgrade_request` sends `Host: {addr}`; this one sets its own.
            let upgrade = |host: &str, origin: &str| {
                format!(
                    "GET / HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Key: {}\r\n\
                     Sec-WebSocket-Version: 13\r\n\r\n",
                    raw::UPGRADE_KEY
                )
            };
            let rebound = upgrade("evil.example", "http://evil.example");
            let refused = raw_exchange(&server, &rebound);
            assert!(refused.starts_with("HTTP/1.1 421 Misdirected Request"), "{refused}");
            let other_port = upgrade(
                &format!("evil.example:{port}"),
                &format!("http://evil.example:{port}"),
            );
            let refused = raw_exchange(&server, &other_port);
            assert!(refused.starts_with("HTTP/1.1 421"), "{refused}");
            let no_host = raw_exchange(&server, "GET / HTTP/1.1\r\n\r\n");
            assert!(no_host.starts_with("HTTP/1.1 400"), "{no_host}");
            // The same request by the allowed name is upgraded.
            let local = format!("localhost:{port}");
            let mut tcp = raw::send_head(&addr, &upgrade(&local, &format!("http://{local}")));
            let head = raw::read_head(&mut tcp);
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            tcp.write_all(&raw::frame(0x81, b"hi")).unwrap();
            assert_eq!(raw::read_frame(&mut tcp), Some((0x81, b"hi".to_vec())));
        }

        /// Bytes that cannot be an HTTP/1.1 request get a 400 and the
        /// connection closed at once, not after the 10 s handshake timeout.
        #[test]
        fn serve_answers_non_http_bytes_with_400_at_once() {
            let server = serve_echo(10);
            let addr = server.local_addr().to_string();
            let cases: [(&[u8], &str); 3] = [
                // The first bytes of a TLS ClientHello (record header, then
                // the handshake type and length).
                (b"\x16\x03\x01\x02\x00\x01", "TLS"),
                (b"\x00\xff\x13\x37", "method"),
                (b"GET / HTTP/1.1\nHost: x\n", "bare LF"),
            ];
            for (bytes, says) in cases {
                let started = Instant::now();
                let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                tcp.write_all(bytes).unwrap();
                let answer = raw::read_all(&mut tcp);
                let took = started.elapsed();
                assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
                assert!(answer.contains(says), "{answer}");
                assert!(took < Duration::from_secs(1), "answered after {took:?}");
            }
        }

        /// Reads from a raw SSE client until `parser` yields an event
        /// (comments included).
        fn next_event(tcp: &mut std::net::TcpStream, parser: &mut ws::SseParser) -> ws::SseEvent {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            loop {
                if let Some(event) = parser.poll_event().unwrap() {
                    return event;
                }
                let n = tcp.read(&mut buf).expect("an event within 5 s");
                assert!(n > 0, "stream ended");
                parser.feed(&buf[..n]);
            }
        }

        #[test]
        fn sse_client_parses_room_events_and_shutdown_ends_the_stream() {
            let hub = ws::Hub::default();
            let room = hub.room("feed").unwrap();
            let config = ws::SseConfig::default().with_keep_alive(Duration::from_millis(100));
            let (server, ended) = serve_room_as_sse(&room, config, true);
            let mut tcp = raw::send_head(
                &server.local_addr().to_string(),
                "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 41\r\n\r\n",
            );
            let head = raw::read_head(&mut tcp);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(head.contains("Content-Type: text/event-stream"), "{head}");

            let mut parser = ws::SseParser::new().with_comments(true);
            let hello = next_event(&mut tcp, &mut parser);
            assert_eq!(hello.event_type(), "hello");
            assert_eq!(hello.data.as_deref(), Some("resume after 41"));

            assert_eq!(room.members(), 1);
            room.publish("first\nline two");
            room.publish(Message::from(vec![1u8, 2, 3])); // binary: not sent over SSE
            room.publish("second");
            let first = next_event(&mut tcp, &mut parser);
            assert_eq!(first.data.as_deref(), Some("first\nline two"));
            assert_eq!(first.id.as_deref(), Some("1"));
            let second = next_event(&mut tcp, &mut parser);
            assert_eq!(second.data.as_deref(), Some("second"));
            assert_eq!(second.id.as_deref(), Some("3"));
            assert_eq!(parser.last_event_id(), "3");

            // Quiet stream: a keep-alive comment arrives.
            let ping = next_event(&mut tcp, &mut parser);
            assert!(ping.data.is_none() && ping.comment.is_some(), "{ping:?}");

            // Graceful shutdown ends the stream.
            let drained = block_on(within(Duration::from_secs(5), server.shutdown()));
            assert!(drained, "the SSE handler finished in time");
            assert_eq!(wait(&ended, 5), ws::SseEnd::Shutdown);
            assert!(raw::drains_to_close(&mut tcp, Duration::from_secs(5)));
        }

        #[test]
        fn sse_client_leaving_ends_the_subscription() {
            let hub = ws::Hub::default();
            let room = hub.room("feed").unwrap();
            let (server, ended) = serve_room_as_sse(&room, ws::SseConfig::default(), false);
            let mut tcp = raw::send_head(
                &server.local_addr().to_string(),
                "GET /events HTTP/1.1\r\nHost: x\r\n\r\n",
            );
            let head = raw::read_head(&mut tcp);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert_eq!(room.members(), 1);
            drop(tcp);
            assert_eq!(wait(&ended, 5), ws::SseEnd::Disconnected);
            block_on(async {
                wait_for(|| room.members() == 0 && server.active() == 0).await;
                assert!(within(Duration::from_secs(5), server.shutdown()).await);
            });
        }

        /// A greeter on its own runtime thread: accepts one connection at
        /// `addr` (or a fresh port), greets it, echoes until `stop` fires,
        /// then drops the connection and the listener.
        fn greeter(
            addr: Option<std::net::SocketAddr>,
            greeting: &'static str,
            delay: Duration,
        ) -> (String, mpsc::Sender<()>) {
            let (stop_tx, stop) = mpsc::channel::<()>();
            let (addr_tx, addr_rx) = mpsc::channel();
            std::thread::spawn(move || {
                block_on(async move {
                    sleep(delay).await;
                    let at = addr.map_or("127.0.0.1:0".to_owned(), |a| a.to_string());
                    let listener = TcpListener::bind(at).await.unwrap();
                    let _ = addr_tx.send(listener.local_addr().unwrap().to_string());
                    let (tcp, _) = listener.accept().await.unwrap();
                    let mut socket = ws::accept(tcp).await.unwrap();
                    socket.send(greeting).await.unwrap();
                    // Poll for the stop signal while answering.
                    loop {
                        if stop.try_recv().is_ok() {
                            break;
                        }
                        let got = {
                            let recv = socket.recv();
                            let tick = sleep(Duration::from_millis(10));
                            pin_mut!(recv, tick);
                            match select(recv, tick).await {
                                Either::Left((msg, _)) => Some(msg),
                                Either::Right(_) => None,
                            }
                        };
                        match got {
                            None => {}
                            Some(Some(Ok(m))) => {
                                let _ = socket.send(m).await;
                            }
                            Some(_) => break,
                        }
                    }
                })
            });
            if addr.is_some() {
                // The caller knows the address; do not wait for the delay.
                return (String::new(), stop_tx);
            }
            (wait(&addr_rx, 5), stop_tx)
        }

        fn test_backoff() -> ws::Backoff {
            ws::Backoff::new()
                .with_initial(Duration::from_millis(20))
                .with_max_delay(Duration::from_millis(100))
                .with_jitter(ws::Jitter::None)
                .with_max_attempts(Some(30))
        }

        #[test]
        fn reconnects_after_the_server_restarts() {
            let (addr, stop_first) = greeter(None, "first", Duration::ZERO);
            let sock_addr: std::net::SocketAddr = addr.parse().unwrap();
            block_on(async move {
                let mut client = ws::Reconnect::new(&format!("ws://{addr}/"))
                    .unwrap()
                    .with_backoff(test_backoff());
                let (mut socket, _) = client.connect().await.unwrap();
                assert_eq!(socket.recv().await.unwrap().unwrap(), Message::from("first"));

                // The server goes away; it comes back on the same port later.
                stop_first.send(()).unwrap();
                let end = within(Duration::from_secs(5), socket.recv()).await;
                assert!(!matches!(end, Some(Ok(_))), "{end:?}");
                drop(socket);
                let (_, stop_second) = greeter(Some(sock_addr), "second", Duration::from_millis(300));
                let started = Instant::now();
                let (mut socket, _) = within(Duration::from_secs(10), client.connect())
                    .await
                    .unwrap();
                assert!(started.elapsed() >= Duration::from_millis(200), "waited for the restart");
                assert_eq!(client.attempts(), 0, "the schedule starts over");
                assert_eq!(socket.recv().await.unwrap().unwrap(), Message::from("second"));
                stop_second.send(()).unwrap();
            });
        }

        #[test]
        fn reconnect_gives_up_after_the_attempt_limit() {
            // Bind then drop to find a port nobody listens on.
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            block_on(async move {
                let mut client = ws::Reconnect::new(&format!("ws://{addr}/"))
                    .unwrap()
                    .with_backoff(test_backoff().with_max_attempts(Some(3)));
                let started = Instant::now();
                let result = within(Duration::from_secs(10), client.connect()).await;
                assert!(result.is_err());
                // 20 + 40 + 80 ms of backoff between four attempts.
                assert!(started.elapsed() >= Duration::from_millis(140));
            });
        }
    };
}
