//! Rooms with history ([`StreamHub`](wavecast_runtime::StreamHub)) over
//! real TCP: acknowledged publishes, a member that reconnects with its last
//! position catching up without gaps or duplicates, a member beyond the
//! history told so, and SSE resuming from `Last-Event-ID`.
//!
//! `stream_support!` (the server and client helpers) is shared with the
//! Redis suite (tests/backplane.rs); `history_scenarios!` runs on the
//! in-process backplane.

macro_rules! stream_support {
    () => {
        use ws::{HistoryConfig, StreamPosition};

        /// Publications as `<position> <text>`, notices as
        /// `recovered <position>` and `not_recovered <position>`.
        struct Tagged;

        impl ws::Envelope for Tagged {
            fn publication(&self, position: StreamPosition, message: &Message) -> Message {
                let text = std::str::from_utf8(message.as_bytes()).unwrap_or("<binary>");
                Message::from(format!("{position} {text}"))
            }

            fn recovered(&self, current: StreamPosition) -> Option<Message> {
                Some(Message::from(format!("recovered {current}")))
            }

            fn not_recovered(&self, current: StreamPosition) -> Option<Message> {
                Some(Message::from(format!("not_recovered {current}")))
            }

            fn presence(&self, change: &ws::PresenceChange) -> Option<Message> {
                Some(Message::from(format!(
                    "presence +{} -{}",
                    change.joined.join(","),
                    change.left.join(",")
                )))
            }
        }

        /// Serves room `name` of `hub`: `/ws?since=<position>` joins as a
        /// WebSocket member resuming after `since`; `/sse` streams the room
        /// as SSE resuming after `Last-Event-ID`. Returns the address.
        fn stream_server(hub: ws::StreamHub<Rt>, name: &'static str) -> String {
            background(move |listener| async move {
                let room = hub.room(name).await.expect("room");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let room = room.clone();
                    spawn(async move {
                        let Ok(incoming) = ws::read_request(tcp, Config::default()).await else {
                            return;
                        };
                        let target = incoming.request().target().to_owned();
                        if target.starts_with("/sse") {
                            let config = ws::SseConfig::default();
                            let Ok(mut sse) = ws::SseStream::respond(incoming, config).await else {
                                return;
                            };
                            let mut sub = room.subscribe(sse.resume_position());
                            sse.forward_stream(&mut sub).await;
                            return;
                        }
                        let since = target
                            .split_once("since=")
                            .and_then(|(_, pos)| pos.parse::<StreamPosition>().ok());
                        let mut member = None;
                        let Ok(socket) = incoming.accept_then(Accept::new(), |socket| {
                            member = Some(room.join(socket.sender(), since))
                        }) else {
                            return;
                        };
                        let (_sender, mut receiver) = socket.split();
                        while let Some(Ok(_)) = receiver.recv().await {}
                        drop(member);
                    });
                }
            })
        }

        /// The next text message, within 5 s.
        async fn next_text(ws: &mut ws::WebSocket) -> String {
            match within(Duration::from_secs(5), ws.recv()).await {
                Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
                other => panic!("expected a text message, got {other:?}"),
            }
        }

        /// Splits a tagged publication into its position and text.
        fn tagged(line: &str) -> (StreamPosition, String) {
            let (pos, text) = line.split_once(' ').expect("tagged publication");
            let pos = pos.parse().unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
            (pos, text.to_owned())
        }

        /// Presence windows short enough for tests.
        fn quick_presence() -> ws::PresenceConfig {
            ws::PresenceConfig::default().with_interval(Duration::from_millis(50))
        }

        /// Connects to `addr` resuming after `since`.
        async fn join(addr: &str, since: Option<StreamPosition>) -> ws::WebSocket {
            let url = match since {
                Some(since) => format!("ws://{addr}/ws?since={since}"),
                None => format!("ws://{addr}/ws"),
            };
            ws::connect(&url).await.expect("connect").0
        }
    };
}

macro_rules! history_scenarios {
    () => {
        stream_support!();

        fn local_hub(history: HistoryConfig) -> ws::StreamHub<Rt> {
            ws::StreamHub::local(ws::RoomConfig::default(), history)
                .with_presence(quick_presence())
                .with_envelope(Tagged)
        }

        #[test]
        fn presence_is_listed_and_announced_once_per_window() {
            let hub = local_hub(HistoryConfig::default());
            let addr = stream_server(hub.clone(), "lobby");
            block_on(async move {
                let room = hub.room("lobby").await.unwrap();
                let mut watcher = join(&addr, None).await;
                wait_for(|| room.local().members() == 1).await;
                let ann = room.enter("c1", "ann").await.unwrap();
                let bob = room.enter("c2", "bob").await.unwrap();
                assert_eq!(next_text(&mut watcher).await, "presence +ann,bob -");
                let mut present = room.presence().await.unwrap();
                present.sort();
                assert_eq!(
                    present,
                    [("c1".into(), "ann".into()), ("c2".into(), "bob".into())]
                );
                drop(ann);
                assert_eq!(next_text(&mut watcher).await, "presence + -ann");
                assert_eq!(
                    room.presence().await.unwrap(),
                    [("c2".into(), "bob".into())]
                );
                drop(bob);
                assert_eq!(next_text(&mut watcher).await, "presence + -bob");
                assert!(room.presence().await.unwrap().is_empty());
            });
        }

        #[test]
        fn stream_publishes_are_acknowledged_with_consecutive_positions() {
            let hub = local_hub(HistoryConfig::default().with_size(64));
            block_on(async move {
                let room = hub.room("acks").await.unwrap();
                let first = room.publish("a").await.unwrap();
                let second = room.publish("b").await.unwrap();
                assert_eq!(first.offset, 1);
                assert_eq!(second, StreamPosition::new(first.epoch, 2));
                assert_eq!(room.position().await.unwrap(), second);
                // Another hub (a restarted process) starts another epoch.
                let other = local_hub(HistoryConfig::default().with_size(64));
                let again = other
                    .room("acks")
                    .await
                    .unwrap()
                    .publish("c")
                    .await
                    .unwrap();
                assert_ne!(again.epoch, first.epoch);
            });
        }

        #[test]
        fn a_publication_id_is_published_once_within_the_window() {
            let hub = local_hub(HistoryConfig::default().with_size(64))
                .with_dedup(Duration::from_millis(300), 16);
            let addr = stream_server(hub.clone(), "once");
            block_on(async move {
                let room = hub.room("once").await.unwrap();
                let mut member = join(&addr, None).await;
                wait_for(|| room.local().members() == 1).await;
                let first = room.publish_with_id("ada:m1", "hello").await.unwrap();
                // The resend: acknowledged with the first position, not
                // published.
                let again = room.publish_with_id("ada:m1", "hello").await.unwrap();
                assert_eq!(again, first);
                // Another id is another publication.
                let other = room.publish_with_id("ada:m2", "world").await.unwrap();
                assert_eq!(other, StreamPosition::new(first.epoch, first.offset + 1));
                assert_eq!(room.position().await.unwrap(), other);
                let got = [next_text(&mut member).await, next_text(&mut member).await];
                assert_eq!(
                    got.map(|line| tagged(&line)),
                    [(first, "hello".to_owned()), (other, "world".to_owned())]
                );
                // Ids are client input: bounded.
                for bad in [String::new(), "x".repeat(ws::MAX_PUBLISH_ID_LEN + 1)] {
                    match room.publish_with_id(&bad, "no").await {
                        Err(ws::BackplaneError::InvalidId(len)) => assert_eq!(len, bad.len()),
                        other => panic!("{other:?}"),
                    }
                }
                let longest = "y".repeat(ws::MAX_PUBLISH_ID_LEN);
                let kept = room.publish_with_id(&longest, "long").await.unwrap();
                assert_eq!(kept.offset, other.offset + 1);
                // Once the window has passed the id publishes again.
                sleep(Duration::from_millis(400)).await;
                let later = room.publish_with_id("ada:m1", "hello").await.unwrap();
                assert_eq!(later.offset, kept.offset + 1);
                for (pos, text) in [(kept, "long"), (later, "hello")] {
                    assert_eq!(
                        tagged(&next_text(&mut member).await),
                        (pos, text.to_owned())
                    );
                }
            });
        }

        #[test]
        fn a_room_remembers_at_most_its_cap_of_ids() {
            let hub = local_hub(HistoryConfig::default().with_size(64))
                .with_dedup(Duration::from_secs(60), 2);
            block_on(async move {
                let room = hub.room("capped").await.unwrap();
                let a = room.publish_with_id("a", "1").await.unwrap();
                assert_eq!(room.publish_with_id("a", "1").await.unwrap(), a);
                room.publish_with_id("b", "2").await.unwrap();
                room.publish_with_id("c", "3").await.unwrap();
                // "a" was the oldest of three: forgotten, published again.
                let again = room.publish_with_id("a", "1").await.unwrap();
                assert_eq!(again.offset, a.offset + 3);
                // The same id in another room is another message.
                let elsewhere = hub.room("other").await.unwrap();
                assert_eq!(elsewhere.publish_with_id("a", "1").await.unwrap().offset, 1);
            });
        }

        #[test]
        fn a_member_resuming_gets_exactly_what_it_missed_then_live() {
            let hub = local_hub(HistoryConfig::default().with_size(64));
            let addr = stream_server(hub.clone(), "resume");
            block_on(async move {
                let room = hub.room("resume").await.unwrap();
                let mut first = join(&addr, None).await;
                wait_for(|| room.local().members() == 1).await;
                for i in 0..5 {
                    room.publish(format!("m{i}")).await.unwrap();
                }
                let mut last = None;
                for i in 0..5 {
                    let (pos, text) = tagged(&next_text(&mut first).await);
                    assert_eq!(text, format!("m{i}"));
                    assert_eq!(pos.offset, i + 1);
                    last = Some(pos);
                }
                drop(first);
                wait_for(|| room.local().members() == 0).await;
                for i in 5..10 {
                    room.publish(format!("m{i}")).await.unwrap();
                }
                let mut again = join(&addr, last).await;
                for i in 5..10 {
                    let (pos, text) = tagged(&next_text(&mut again).await);
                    assert_eq!((pos.offset, text), (i + 1, format!("m{i}")));
                }
                let current = room.position().await.unwrap();
                assert_eq!(next_text(&mut again).await, format!("recovered {current}"));
                room.publish("live").await.unwrap();
                let (pos, text) = tagged(&next_text(&mut again).await);
                assert_eq!((pos.offset, text.as_str()), (11, "live"));
            });
        }

        /// The position in a [`Tagged`] message, for `Reconnect`.
        fn position_in(message: &Message) -> Option<StreamPosition> {
            let text = std::str::from_utf8(message.as_bytes()).ok()?;
            let (first, rest) = text.split_once(' ')?;
            match first {
                "recovered" | "not_recovered" => rest.parse().ok(),
                _ => first.parse().ok(),
            }
        }

        #[test]
        fn a_reconnecting_client_resumes_where_it_left_off() {
            let hub = local_hub(HistoryConfig::default().with_size(64));
            let addr = stream_server(hub.clone(), "again");
            block_on(async move {
                let room = hub.room("again").await.unwrap();
                let mut client = ws::Reconnect::new(&format!("ws://{addr}/ws"))
                    .unwrap()
                    .with_backoff(ws::Backoff::new().with_initial(Duration::from_millis(10)))
                    .with_resume("since", position_in);
                let (mut first, _) = client.connect().await.unwrap();
                wait_for(|| room.local().members() == 1).await;
                for i in 0..3 {
                    room.publish(format!("a{i}")).await.unwrap();
                }
                for i in 0..3 {
                    let message = within(Duration::from_secs(5), first.recv())
                        .await
                        .unwrap()
                        .unwrap();
                    let seen = client.saw(&message).expect("a position");
                    assert_eq!(seen.offset, i + 1);
                }
                drop(first);
                wait_for(|| room.local().members() == 0).await;
                for i in 0..3 {
                    room.publish(format!("b{i}")).await.unwrap();
                }
                let (mut second, _) = client.connect().await.unwrap();
                for i in 0..3 {
                    let message = within(Duration::from_secs(5), second.recv())
                        .await
                        .unwrap()
                        .unwrap();
                    client.saw(&message);
                    assert_eq!(
                        tagged(std::str::from_utf8(message.as_bytes()).unwrap()).1,
                        format!("b{i}")
                    );
                }
                let current = room.position().await.unwrap();
                assert_eq!(next_text(&mut second).await, format!("recovered {current}"));
                assert_eq!(client.position(), Some(current));
            });
        }

        #[test]
        fn a_member_beyond_the_history_is_told_not_recovered() {
            let hub = local_hub(HistoryConfig::default().with_size(4));
            let addr = stream_server(hub.clone(), "short");
            block_on(async move {
                let room = hub.room("short").await.unwrap();
                let start = room.publish("first").await.unwrap();
                for i in 0..10 {
                    room.publish(format!("m{i}")).await.unwrap();
                }
                let current = room.position().await.unwrap();
                let mut late = join(&addr, Some(start)).await;
                assert_eq!(
                    next_text(&mut late).await,
                    format!("not_recovered {current}")
                );
                // A position from another epoch (another process's) as well.
                let foreign = StreamPosition::new(current.epoch ^ 1, 3);
                let mut stranger = join(&addr, Some(foreign)).await;
                assert_eq!(
                    next_text(&mut stranger).await,
                    format!("not_recovered {current}")
                );
                room.publish("after").await.unwrap();
                for client in [&mut late, &mut stranger] {
                    let (pos, text) = tagged(&next_text(client).await);
                    assert_eq!((pos.offset, text.as_str()), (current.offset + 1, "after"));
                }
            });
        }

        #[test]
        fn sse_resumes_from_last_event_id() {
            let hub = local_hub(HistoryConfig::default().with_size(64));
            let addr = stream_server(hub.clone(), "feed");
            block_on(async move {
                let room = hub.room("feed").await.unwrap();
                let mut positions = Vec::new();
                for i in 0..4 {
                    positions.push(room.publish(format!("e{i}")).await.unwrap());
                }
                let head = format!(
                    "GET /sse HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
                     Last-Event-ID: {}\r\n\r\n",
                    positions[1]
                );
                let mut tcp = raw::send_head(&addr, &head);
                let status = raw::read_head(&mut tcp);
                assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                let want = format!(
                    "id: {p2}\ndata: {p2} e2\n\nid: {p3}\ndata: {p3} e3\n\n\
                     event: recovered\nid: {p3}\ndata: {p3}\n\n",
                    p2 = positions[2],
                    p3 = positions[3],
                );
                let mut got = Vec::new();
                let mut buf = [0u8; 512];
                while got.len() < want.len() {
                    let n = std::io::Read::read(&mut tcp, &mut buf).expect("read events");
                    assert!(
                        n > 0,
                        "stream ended after {:?}",
                        String::from_utf8_lossy(&got)
                    );
                    got.extend_from_slice(&buf[..n]);
                }
                let got = String::from_utf8(got).unwrap();
                // Keep-alive comments may come in between.
                let events: String = got
                    .split("\n\n")
                    .filter(|e| !e.is_empty() && !e.starts_with(':'))
                    .map(|e| format!("{e}\n\n"))
                    .collect();
                assert_eq!(events, want);
            });
        }
    };
}
