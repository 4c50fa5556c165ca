//! Deadlines against peers that stop reading or never answer: the write
//! stall of a WebSocket, of an SSE stream and of a plain HTTP answer, and
//! the connect deadline of a client.

macro_rules! deadlines_scenarios {
    () => {
        /// A peer upgrades, then never reads while the server keeps
        /// sending 16 KiB messages (write timeout 1 s). Returns the error
        /// `send` ended with, how many messages it queued first, how long
        /// that took, and the stalled peer.
        fn stall_the_server() -> (Error, u64, Duration, std::net::TcpStream) {
            let (tx, rx) = mpsc::channel();
            let addr = background(move |listener| async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let config = Config::default()
                    .with_write_timeout(Duration::from_secs(1))
                    .with_close_timeout(Duration::from_secs(1))
                    .with_write_buffer_limit(64 << 10);
                let mut socket = ws::accept_with(tcp, config, |_| Ok(Accept::new()))
                    .await
                    .unwrap();
                let started = Instant::now();
                let payload = vec![3u8; 16 << 10];
                let mut sent = 0u64;
                let error = loop {
                    if let Err(e) = socket.send(payload.clone()).await {
                        break e;
                    }
                    sent += 1;
                };
                tx.send((error, sent, started.elapsed())).unwrap();
            });
            let stalled = raw::upgrade_small(&addr, "/");
            // The server task ends: `send` gave up instead of waiting.
            let (error, sent, after) = wait(&rx, 20);
            (error, sent, after, stalled)
        }

        /// Once the socket and the output queue are full and no byte moved
        /// for the write timeout, `send` fails instead of waiting forever
        /// and the server closes the socket.
        #[test]
        fn write_stall_fails_the_connection() {
            let (error, sent, after, mut stalled) = stall_the_server();
            assert!(sent > 0, "the socket took some messages first");
            assert!(after < Duration::from_secs(15), "{error:?} after {after:?}");
            // The server gives the socket up (after its linger): reading
            // now reaches its end.
            assert!(
                raw::drains_to_close(&mut stalled, Duration::from_secs(10)),
                "the server closed the stalled connection"
            );
        }

        /// The error `send` reports after a write stall says what happened
        /// (the peer stopped reading), not that the application misused
        /// the connection.
        #[test]
        fn write_stall_is_reported_as_a_timeout() {
            let (error, _, _, stalled) = stall_the_server();
            assert!(matches!(error, Error::Timeout(_)), "{error:?}");
            drop(stalled);
        }

        /// A client that never finishes its request head: the server's
        /// `accept_with` returns the handshake timeout (and the client got
        /// a 408, which `handshake_timeout_drops_slowloris` checks).
        #[test]
        fn slowloris_accept_returns_the_handshake_timeout() {
            let (tx, rx) = mpsc::channel();
            let addr = background(move |listener| async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let config = Config::default().with_handshake_timeout(Duration::from_millis(300));
                let started = Instant::now();
                let result = ws::accept_with(tcp, config, |_| Ok(Accept::new())).await;
                tx.send((result.map(|_| ()), started.elapsed())).unwrap();
            });
            let mut tcp = raw::send_head(&addr, "GET / HTTP/1.1\r\nHost: x\r\n");
            let (result, took) = wait(&rx, 10);
            assert!(
                matches!(result, Err(Error::Handshake(ws::HandshakeError::Timeout))),
                "{result:?}"
            );
            assert!(
                took >= Duration::from_millis(250),
                "gave up early: {took:?}"
            );
            let out = raw::read_all(&mut tcp);
            assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        }

        /// A server that accepts TCP connections and never says a word;
        /// the sockets stay open as long as the thread lives.
        fn silent_server() -> String {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for tcp in listener.incoming() {
                    held.push(tcp);
                }
            });
            addr
        }

        #[test]
        fn connect_deadline_against_a_silent_server() {
            let addr = silent_server();
            block_on(async move {
                let url = format!("ws://{addr}/");
                let config = Config::default().with_handshake_timeout(Duration::from_millis(500));
                let (request, _) = ws::ClientRequest::from_url(&url).unwrap();
                let started = Instant::now();
                let result = within(
                    Duration::from_secs(10),
                    ws::connect_with(&url, request, config.clone()),
                )
                .await;
                let took = started.elapsed();
                assert!(
                    matches!(result, Err(Error::Handshake(ws::HandshakeError::Timeout))),
                    "{:?}",
                    result.map(|_| ())
                );
                assert!(
                    took >= Duration::from_millis(400),
                    "gave up early: {took:?}"
                );
                assert!(took < Duration::from_secs(5), "gave up late: {took:?}");

                // The reconnecting client: every attempt times out, then it
                // runs out of attempts instead of hanging.
                let mut client = ws::Reconnect::new(&url)
                    .unwrap()
                    .with_config(config)
                    .with_backoff(
                        ws::Backoff::new()
                            .with_initial(Duration::from_millis(20))
                            .with_jitter(ws::Jitter::None)
                            .with_max_attempts(Some(2)),
                    );
                let started = Instant::now();
                let result = within(Duration::from_secs(20), client.connect()).await;
                let took = started.elapsed();
                assert!(
                    matches!(result, Err(Error::Handshake(ws::HandshakeError::Timeout))),
                    "{:?}",
                    result.map(|_| ())
                );
                // Three attempts of 500 ms each, 20 + 40 ms apart.
                assert!(
                    took >= Duration::from_millis(1200),
                    "gave up early: {took:?}"
                );
                assert!(took < Duration::from_secs(10), "gave up late: {took:?}");
            });
        }

        /// An SSE client that never reads, on a room that keeps
        /// publishing: its writes stall, the stream's write timeout ends
        /// the handler, and `serve` frees the slot.
        #[test]
        fn sse_write_deadline_drops_a_client_that_never_reads() {
            // Skip-ahead: a slow reader is never evicted for lagging, so only
            // the write deadline can end its stream.
            let hub = ws::Hub::new(
                ws::RoomConfig::default()
                    .with_capacity(8)
                    .with_lag_policy(ws::LagPolicy::SkipAhead),
            );
            let room = hub.room("busy").unwrap();
            let (server, ended) = serve_room_as_sse(
                &room,
                ws::SseConfig::default()
                    .with_write_timeout(Duration::from_millis(500))
                    .with_linger(Duration::from_millis(500)),
                false,
            );
            let addr = server.local_addr().to_string();
            let mut tcp = raw::connect_small(&addr);
            tcp.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let head = raw::read_head(&mut tcp);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            // From now on the client reads nothing.
            let event = "x".repeat(16 << 10);
            let freed = block_on(async {
                wait_for(|| room.members() == 1).await;
                within(Duration::from_secs(20), async {
                    let started = Instant::now();
                    loop {
                        room.publish(event.as_str());
                        sleep(Duration::from_millis(2)).await;
                        if server.active() == 0 {
                            break started.elapsed();
                        }
                    }
                })
                .await
            });
            assert!(
                freed < Duration::from_secs(15),
                "slot freed after {freed:?}"
            );
            let end = wait(&ended, 5);
            assert!(
                matches!(end, ws::SseEnd::Disconnected | ws::SseEnd::WriteTimeout),
                "{end:?}"
            );
            drop(tcp);
        }

        /// A plain HTTP answer with a large body to a client that never
        /// reads: `respond` gives up after the write timeout.
        #[test]
        fn respond_obeys_the_write_deadline() {
            let (tx, rx) = mpsc::channel();
            let addr = background(move |listener| async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let config = Config::default().with_write_timeout(Duration::from_millis(500));
                let incoming = ws::read_request(tcp, config).await.unwrap();
                let started = Instant::now();
                let body = "y".repeat(32 << 20);
                let result = incoming.respond(HttpResponse::html(200, body)).await;
                tx.send((result, started.elapsed())).unwrap();
            });
            let mut tcp = raw::connect_small(&addr);
            tcp.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let (result, took) = wait(&rx, 20);
            assert!(result.is_err(), "a 32 MiB body fit into a stalled socket");
            assert!(took < Duration::from_secs(10), "gave up after {took:?}");
            drop(tcp);
        }

        /// Without TLS support (the examples' `rustls` feature off, so no
        /// adapter has it), `wss://` fails at once with a TLS error rather
        /// than trying plain TCP or hanging. With it, `--test tls` runs.
        #[cfg(not(feature = "rustls"))]
        #[test]
        fn wss_without_the_rustls_feature_fails_promptly() {
            let addr = silent_server();
            block_on(async move {
                let started = Instant::now();
                let result = within(
                    Duration::from_secs(5),
                    ws::connect(&format!("wss://{addr}/")),
                )
                .await;
                assert!(
                    matches!(result, Err(Error::Tls(_))),
                    "{:?}",
                    result.map(|_| ())
                );
                assert!(started.elapsed() < Duration::from_secs(2));
            });
        }

        /// The client's own receive limit (1 MiB by default) applies to
        /// what the server sends back.
        #[test]
        fn client_rejects_a_reply_over_its_limit() {
            let addr = echo_server(big_config());
            block_on(async move {
                let (mut client, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                let big: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
                client.send(big).await.unwrap();
                let got = within(Duration::from_secs(10), client.recv()).await;
                assert!(matches!(got, Some(Err(Error::Protocol(_)))), "{got:?}");
            });
        }
    };
}
