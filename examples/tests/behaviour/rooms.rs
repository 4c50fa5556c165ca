//! Broadcast rooms over real TCP: delivery to every member, messages
//! published at accept time, slow members under both lag policies, chat,
//! and rooms leaving their hub.

macro_rules! rooms_scenarios {
    () => {
        /// What a room server learned about each connection: its path, its
        /// sending half and its membership.
        type Joined = Arc<Mutex<Vec<(String, ws::Sender, ws::Member)>>>;

        /// A server that joins every connection to `room` before its `101`
        /// and keeps it open until the client leaves.
        fn room_server(room: ws::Room, config: Config) -> (String, Joined) {
            let joined: Joined = Arc::default();
            let list = joined.clone();
            let addr = background(move |listener| async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let (room, list, config) = (room.clone(), list.clone(), config.clone());
                    spawn(async move {
                        let Ok(incoming) = ws::read_request(tcp, config).await else {
                            return;
                        };
                        let path = incoming.request().path().to_owned();
                        let mut member = None;
                        let Ok(socket) = incoming.accept_then(Accept::new(), |socket| {
                            member = Some(room.join(socket.sender()))
                        }) else {
                            return;
                        };
                        let (sender, mut receiver) = socket.split();
                        let member = member.expect("joined in the hook");
                        list.lock().unwrap().push((path, sender, member));
                        while let Some(Ok(_)) = receiver.recv().await {}
                    });
                }
            });
            (addr, joined)
        }

        #[test]
        fn room_members_receive_every_message_in_order() {
            let hub = ws::Hub::new(ws::RoomConfig::default());
            let room = hub.room("news").unwrap();
            let (addr, _joined) = room_server(room.clone(), Config::default());
            block_on(async move {
                let mut clients = Vec::new();
                for _ in 0..5 {
                    clients.push(ws::connect(&format!("ws://{addr}/")).await.unwrap().0);
                }
                wait_for(|| room.members() == 5).await;
                for i in 0..100 {
                    assert_eq!(room.publish(format!("m{i}")), 5);
                }
                for mut client in clients {
                    for i in 0..100 {
                        let got = within(Duration::from_secs(5), client.recv()).await;
                        assert_eq!(got.unwrap().unwrap(), Message::from(format!("m{i}")));
                    }
                }
            });
        }

        /// Each client receives the message published the instant its
        /// server-side hook returned (the `101` may not even be written
        /// then), without sending anything first.
        #[test]
        fn message_published_at_accept_reaches_each_client() {
            let hub = ws::Hub::default();
            let room = hub.room("instant").unwrap();
            let addr = background(move |listener| async move {
                let mut n = 0u32;
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let room = room.clone();
                    let i = n;
                    n += 1;
                    spawn(async move {
                        let incoming = ws::read_request(tcp, Config::default()).await.unwrap();
                        let mut member = None;
                        let socket = incoming
                            .accept_then(Accept::new(), |socket| {
                                member = Some(room.join(socket.sender()))
                            })
                            .unwrap();
                        room.publish(format!("hello {i}"));
                        let (_sender, mut receiver) = socket.split();
                        while let Some(Ok(_)) = receiver.recv().await {}
                        drop(member);
                    });
                }
            });
            block_on(async move {
                within(Duration::from_secs(30), async {
                    for n in 0..200 {
                        let (mut client, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                        let got = client.recv().await.unwrap().unwrap();
                        assert_eq!(got, Message::from(format!("hello {n}")));
                    }
                })
                .await
            });
        }

        /// Publishes `count` 16 KiB messages, paced by a fast client only,
        /// while a member whose client never reads sits in the room; checks
        /// that the room and the stalled connection's output stay bounded:
        /// the member stops taking messages once its unwritten output
        /// (queued or staged) reaches the room's member queue (4 KiB), so
        /// it holds at most that plus one message, not its write limit.
        /// Returns the stalled member and its raw client.
        async fn flood_with_stalled_member(
            policy: ws::LagPolicy,
            count: u64,
        ) -> (ws::Room, ws::Member, std::net::TcpStream) {
            let capacity = 16;
            let write_limit = 64 << 10;
            let hub = ws::Hub::new(
                ws::RoomConfig::default()
                    .with_capacity(capacity)
                    .with_lag_policy(policy),
            );
            let room = hub.room("flood").unwrap();
            let config = Config::default()
                .with_write_buffer_limit(write_limit)
                .with_close_timeout(Duration::from_millis(200));
            let (addr, joined) = room_server(room.clone(), config);
            let stalled = raw::upgrade_small(&addr, "/stall");
            let (mut fast, _) = ws::connect(&format!("ws://{addr}/fast")).await.unwrap();
            wait_for(|| room.members() == 2).await;

            let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let seen = received.clone();
            spawn(async move {
                for i in 0..count {
                    let msg = fast.recv().await.unwrap().unwrap();
                    assert_eq!(
                        &msg.as_bytes()[..8],
                        &i.to_be_bytes(),
                        "in order, none lost"
                    );
                    seen.store(i + 1, std::sync::atomic::Ordering::Release);
                }
                // Stay connected while the test looks at the other member.
                sleep(Duration::from_secs(30)).await;
                drop(fast);
            });
            let stalled_sender = {
                let list = joined.lock().unwrap();
                list.iter().find(|(p, ..)| p == "/stall").unwrap().1.clone()
            };
            let payload = vec![7u8; 16 << 10];
            let (mut max_queued, mut max_room) = (0, 0);
            within(Duration::from_secs(30), async {
                for i in 0..count {
                    // Pace by the fast member only: it never falls 8 behind.
                    while i >= received.load(std::sync::atomic::Ordering::Acquire) + 8 {
                        yield_now().await;
                    }
                    let mut msg = payload.clone();
                    msg[..8].copy_from_slice(&i.to_be_bytes());
                    room.publish(msg);
                    max_room = max_room.max(room.queued());
                    max_queued = max_queued.max(stalled_sender.queued_bytes());
                }
                // The fast member got everything.
                while received.load(std::sync::atomic::Ordering::Acquire) < count {
                    sleep(Duration::from_millis(2)).await;
                }
            })
            .await;
            assert!(max_room <= capacity, "room queue {max_room}");
            let member_queue = ws::RoomConfig::default().member_queue;
            assert!(
                max_queued < member_queue + (16 << 10) + 14,
                "stalled output queue {max_queued}"
            );
            let member = {
                let mut list = joined.lock().unwrap();
                let at = list.iter().position(|(p, ..)| p == "/stall").unwrap();
                list.remove(at).2
            };
            (room, member, stalled)
        }

        #[test]
        fn stalled_member_skips_ahead_while_others_keep_full_speed() {
            block_on(async {
                let (_room, member, mut stalled) =
                    flood_with_stalled_member(ws::LagPolicy::SkipAhead, 1500).await;
                assert!(!member.is_finished(), "skip-ahead keeps the member");
                // The stalled client reads again: its member finds the gap,
                // skips ahead and reports how many messages it lost.
                std::thread::spawn(move || {
                    raw::drains_to_close(&mut stalled, Duration::from_secs(20))
                });
                wait_for(|| member.skipped() > 0).await;
                assert!(member.skipped() < 1500);
                assert!(!member.is_finished());
            });
        }

        #[test]
        fn stalled_member_is_disconnected_with_1013() {
            block_on(async {
                let (_room, member, _stalled) =
                    flood_with_stalled_member(ws::LagPolicy::Disconnect, 1500).await;
                let end = within(Duration::from_secs(5), member.wait()).await;
                assert_eq!(end, ws::MemberEnd::Evicted(CloseCode::TRY_AGAIN_LATER));
            });
        }

        #[test]
        fn chat_forwards_both_ways_and_rooms_go_away() {
            let hub = ws::Hub::default();
            let server_hub = hub.clone();
            let addr = background(move |listener| async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let hub = server_hub.clone();
                    spawn(async move {
                        let incoming = ws::read_request(tcp, Config::default()).await.unwrap();
                        let room = hub.room(incoming.request().path()).unwrap();
                        let mut member = None;
                        let socket = incoming
                            .accept_then(Accept::new(), |socket| {
                                member = Some(room.join(socket.sender()))
                            })
                            .unwrap();
                        let _ = room.chat(socket, member.unwrap()).await;
                    });
                }
            });
            block_on(async move {
                let url = format!("ws://{addr}/lobby");
                let (mut a, _) = ws::connect(&url).await.unwrap();
                let (mut b, _) = ws::connect(&url).await.unwrap();
                a.send("hi from a").await.unwrap();
                for client in [&mut a, &mut b] {
                    let got = within(Duration::from_secs(5), client.recv()).await;
                    assert_eq!(got.unwrap().unwrap(), Message::from("hi from a"));
                }
                assert_eq!(hub.rooms(), 1);
                a.close(CloseCode::NORMAL, "").await.unwrap();
                b.close(CloseCode::NORMAL, "").await.unwrap();
                wait_for(|| hub.rooms() == 0).await;
            });
        }

        #[test]
        fn empty_rooms_are_removed() {
            let hub = ws::Hub::default();
            let room = hub.room("a").unwrap();
            let sub = room.subscribe();
            let again = hub.room("a").unwrap();
            assert_eq!(hub.rooms(), 1);
            assert_eq!(again.publish("x"), 1);
            assert_eq!(sub.pending(), 1);
            drop(room);
            drop(again);
            assert_eq!(hub.rooms(), 1, "the subscription keeps it");
            drop(sub);
            assert_eq!(hub.rooms(), 0);
            assert!(hub.room("").is_err());
        }
    };
}
