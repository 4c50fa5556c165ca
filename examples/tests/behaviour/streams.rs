//! Bytes at the edges of the handshake (a first frame in the same packet as
//! the request, leftover bytes handed out by `into_parts`), input split at
//! every byte, and the names every adapter exports.

macro_rules! streams_scenarios {
    () => {
        /// The upgrade request followed by a masked text frame, in one
        /// buffer (one write).
        fn request_and_first_frame(addr: &str) -> (Vec<u8>, Vec<u8>) {
            let frame = raw::frame(0x81, b"early bird");
            let mut both = raw::upgrade_request(addr, "/", "").into_bytes();
            both.extend_from_slice(&frame);
            (both, frame)
        }

        #[test]
        fn first_frame_in_the_upgrade_packet_is_received() {
            let (tx, rx) = mpsc::channel();
            let addr = background(move |listener| async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut socket = ws::accept(tcp).await.unwrap();
                let first = within(Duration::from_secs(5), socket.recv()).await;
                tx.send(format!("{first:?}")).unwrap();
                // Keep the connection until the client is done.
                let _ = within(Duration::from_secs(5), socket.recv()).await;
            });
            let (both, _) = request_and_first_frame(&addr);
            let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            tcp.write_all(&both).unwrap();
            let head = raw::read_head(&mut tcp);
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            let first = wait(&rx, 5);
            let expected = format!("{:?}", Some(Ok::<_, Error>(Message::from("early bird"))));
            assert_eq!(first, expected);
        }

        #[test]
        fn into_parts_returns_the_bytes_after_the_head() {
            let (tx, rx) = mpsc::channel();
            let addr = background(move |listener| async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let incoming = ws::read_request(tcp, Config::default()).await.unwrap();
                let (_stream, request, leftover) = incoming.into_parts();
                tx.send((request.path().to_owned(), leftover.to_vec()))
                    .unwrap();
            });
            let (both, frame) = request_and_first_frame(&addr);
            let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
            tcp.write_all(&both).unwrap();
            let (path, leftover) = wait(&rx, 5);
            assert_eq!(path, "/");
            assert_eq!(leftover, frame, "exactly the frame that followed the head");
        }

        /// The application's task reads the connection itself only while it
        /// waits in `recv`: once that future is dropped (a `select!` that
        /// took the other branch) and the task goes on with other work, the
        /// connection's driver task answers pings again.
        #[test]
        fn pings_are_answered_while_the_application_is_busy_elsewhere() {
            let (tx, rx) = mpsc::channel::<()>();
            let addr = background(move |listener| async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut socket = ws::accept(tcp).await.unwrap();
                // One cancelled recv: its task polled the I/O itself.
                {
                    let recv = socket.recv();
                    let tick = sleep(Duration::from_millis(100));
                    pin_mut!(recv, tick);
                    assert!(matches!(select(recv, tick).await, Either::Right(_)));
                }
                // Busy with something else, never receiving, until told.
                let _ = tx.send(());
                sleep(Duration::from_secs(5)).await;
                drop(socket);
            });
            let mut tcp = raw::upgrade(&addr);
            wait(&rx, 5);
            tcp.write_all(&raw::frame(0x89, b"are you there")).unwrap();
            let (opcode, payload) = raw::read_frame(&mut tcp).expect("a pong within 5 s");
            assert_eq!(
                (opcode & 0x0f, payload.as_slice()),
                (0xA, b"are you there".as_slice())
            );
        }

        /// A raw server writes 1,000 text frames one byte per write, so
        /// frames and messages are split everywhere, while the client's
        /// `recv` is cancelled by a timer over and over: none is lost,
        /// none is repeated.
        #[test]
        fn cancel_safe_recv_with_input_split_at_every_byte() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            std::thread::spawn(move || {
                let mut tcp = raw::accept_upgrade(&listener);
                let mut stream = Vec::new();
                for i in 0..1000u32 {
                    let payload = format!("message {i}");
                    stream.push(0x81);
                    stream.push(payload.len() as u8);
                    stream.extend_from_slice(payload.as_bytes());
                }
                for byte in stream.chunks(1) {
                    if tcp.write_all(byte).is_err() {
                        return;
                    }
                    std::thread::yield_now();
                }
                std::thread::sleep(Duration::from_secs(10));
            });
            block_on(async move {
                let (mut client, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                within(Duration::from_secs(30), async {
                    let mut got = 0u32;
                    while got < 1000 {
                        let recv = client.recv();
                        let tick = sleep(Duration::from_millis(1));
                        pin_mut!(recv, tick);
                        if let Either::Left((msg, _)) = select(recv, tick).await {
                            assert_eq!(
                                msg.unwrap().unwrap(),
                                Message::from(format!("message {got}"))
                            );
                            got += 1;
                        }
                    }
                })
                .await;
            });
        }

        /// `recv` ends as soon as the peer's close frame arrives; `closed`
        /// returns only after our answer was written and the transport shut,
        /// so a client that moves on (or exits) after it has not cut its
        /// goodbye short. The raw server reads our close frame only after a
        /// pause, then closes the socket.
        #[test]
        fn closed_waits_until_the_peer_has_our_close_answer() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let (answered, got_answer) = mpsc::channel();
            std::thread::spawn(move || {
                let mut tcp = raw::accept_upgrade(&listener);
                // A close frame, code 1000, unmasked (server to client).
                tcp.write_all(&[0x88, 0x02, 0x03, 0xe8]).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                let mut frame = [0u8; 8];
                std::io::Read::read_exact(&mut tcp, &mut frame).unwrap();
                answered.send(frame).unwrap();
                // Dropping the socket ends the connection.
            });
            block_on(async move {
                let (mut client, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                assert!(within(Duration::from_secs(5), client.recv())
                    .await
                    .is_none());
                within(Duration::from_secs(5), client.closed()).await;
                let frame = got_answer.try_recv().expect("the server had our answer");
                // A masked close frame echoing code 1000.
                assert_eq!(frame[..2], [0x88, 0x82]);
                let code = [frame[6] ^ frame[2], frame[7] ^ frame[3]];
                assert_eq!(u16::from_be_bytes(code), 1000);
                // Once ended, it stays ended.
                within(Duration::from_secs(1), client.closed()).await;
                assert!(!client.sender().is_open());
            });
        }

        /// Every adapter exports the same names, and its aliases need no
        /// runtime annotation: switching runtime changes an import.
        #[test]
        fn adapter_exports_the_whole_api() {
            #[allow(unused_imports)]
            use ws::{
                accept, accept_with, client_over, connect, connect_with, from_upgraded,
                read_request, serve, Accept, Backoff, Bytes, ClientRequest, CloseCode, CloseFrame,
                Config, Error, HttpResponse, Hub, Incoming, Jitter, LagPolicy, Member, MemberEnd,
                Message, Negotiated, OriginAllowList, Outcome, PreparedMessage, Receiver,
                Reconnect, Request, Response, Role, Room, RoomConfig, RoomError, RoomEvent,
                RoomMessage, SeedSource, Sender, ServeConfig, Server, SseConfig, SseEnd, SseEvent,
                SseParser, SseStream, Subscription, TrySendError, Utf8Bytes, WebSocket,
            };
            let hub = Hub::default();
            let room = hub.room("a").unwrap();
            assert_eq!(room.publish("x"), 0);
            assert_eq!(Hub::new(RoomConfig::default()).rooms(), 0);
            let client = Reconnect::new("ws://127.0.0.1:9/").unwrap();
            assert_eq!(client.attempts(), 0);
            // The aliases are the generic types with this runtime.
            let generic: wavecast_runtime::Hub<Rt> = hub.clone();
            assert_eq!(generic.rooms(), 1);
        }
    };
}
