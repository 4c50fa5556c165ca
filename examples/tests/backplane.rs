//! The Redis backplane against real `redis-server` processes, on every
//! runtime: three nodes (each a `StreamHub` with its own runtime thread,
//! Redis connection and WebSocket server) sharing a room; a client moving
//! to another node and catching up; Redis restarting under the nodes; Redis
//! missing at start.
//!
//! Runs with `--features redis-tests` (`.ci/redis` installs Redis and does
//! that). Each test starts its own `redis-server` on a free loopback port
//! (`$WAVECAST_REDIS_SERVER`, or `redis-server` on the `PATH`), without
//! persistence, so that a restart loses the history as a crash would.

mod support;
use support::redis::RedisServer;

#[path = "support/runtimes.rs"]
#[macro_use]
mod runtimes;
use runtimes::{rt_async_std, rt_smol, rt_tokio, wait};

#[path = "behaviour/history.rs"]
#[macro_use]
#[allow(unused_macros)] // Its in-process scenarios run in tests/behaviour.rs.
mod history;

macro_rules! backplane_suite {
    ($suite:ident, $rt:ident) => {
        mod $suite {
            use std::future::Future;
            use std::sync::mpsc;
            use std::time::Duration;

            use futures_util::future::{select, Either};
            use futures_util::pin_mut;

            use super::$rt::{block_on, sleep, spawn, ws, Rt, TcpListener};
            use super::{wait, RedisServer};
            use ws::{Accept, Config, Message};

            suite_helpers!();
            stream_support!();

            fn history() -> HistoryConfig {
                HistoryConfig::default().with_size(100)
            }

            /// How long the nodes remember publication ids.
            const DEDUP_WINDOW: Duration = Duration::from_millis(400);

            /// A node: a hub on Redis, in a runtime of its own (a thread).
            fn node(redis: &RedisServer) -> ws::StreamHub<Rt> {
                let config =
                    ws::RedisConfig::new(redis.url()).with_presence_ttl(Duration::from_millis(300));
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    block_on(async move {
                        let hub = ws::StreamHub::<Rt>::redis(
                            config,
                            ws::RoomConfig::default(),
                            history(),
                        )
                        .await
                        .expect("connect to Redis")
                        .with_presence(quick_presence())
                        .with_dedup(DEDUP_WINDOW, 64)
                        .with_envelope(Tagged);
                        tx.send(hub).unwrap();
                        // The connection's task lives on this runtime.
                        std::future::pending::<()>().await;
                    })
                });
                wait(&rx, 10)
            }

            /// Reads `count` tagged publications and checks they continue
            /// `after` without a gap; returns them.
            async fn read_run(
                client: &mut ws::WebSocket,
                after: StreamPosition,
                count: u64,
            ) -> Vec<(StreamPosition, String)> {
                let mut got = Vec::new();
                for i in 1..=count {
                    let (pos, text) = tagged(&next_text(client).await);
                    assert_eq!(
                        pos,
                        StreamPosition::new(after.epoch, after.offset + i),
                        "{text}"
                    );
                    got.push((pos, text));
                }
                got
            }

            #[test]
            fn three_nodes_deliver_every_publication_once_in_order() {
                let redis = RedisServer::start();
                let nodes = [node(&redis), node(&redis), node(&redis)];
                let addrs: Vec<String> = nodes
                    .iter()
                    .map(|n| stream_server(n.clone(), "town"))
                    .collect();
                block_on(async move {
                    let mut rooms = Vec::new();
                    for n in &nodes {
                        rooms.push(n.room("town").await.unwrap());
                    }
                    let start = rooms[0].position().await.unwrap();
                    let mut clients = Vec::new();
                    for addr in addrs.iter().chain(addrs.iter()) {
                        clients.push(join(addr, None).await);
                    }
                    for room in &rooms {
                        wait_for(|| room.local().members() == 2).await;
                    }
                    // Publishers on every node at once: Redis orders them.
                    let mut acked = Vec::new();
                    for i in 0..30 {
                        acked.push(rooms[i % 3].publish(format!("m{i}")).await.unwrap());
                    }
                    let mut offsets: Vec<u64> = acked.iter().map(|p| p.offset).collect();
                    offsets.sort_unstable();
                    assert_eq!(
                        offsets,
                        (start.offset + 1..=start.offset + 30).collect::<Vec<_>>()
                    );
                    let mut first: Option<Vec<(StreamPosition, String)>> = None;
                    for client in &mut clients {
                        let run = read_run(client, start, 30).await;
                        // Exactly once: nothing more is waiting.
                        let more = within(Duration::from_secs(5), async {
                            let timer = sleep(Duration::from_millis(200));
                            pin_mut!(timer);
                            let next = client.recv();
                            pin_mut!(next);
                            matches!(select(next, timer).await, Either::Left(_))
                        })
                        .await;
                        assert!(!more, "a publication came twice");
                        match &first {
                            None => first = Some(run),
                            Some(first) => assert_eq!(&run, first, "every member sees one order"),
                        }
                    }
                    let first = first.unwrap();
                    for (pos, text) in &first {
                        let i: usize = text[1..].parse().unwrap();
                        assert_eq!(acked[i], *pos, "the ack is the delivered position");
                    }
                });
            }

            /// Whether another message arrives within 200 ms.
            async fn more_arrives(client: &mut ws::WebSocket) -> bool {
                within(Duration::from_secs(5), async {
                    let timer = sleep(Duration::from_millis(200));
                    pin_mut!(timer);
                    let next = client.recv();
                    pin_mut!(next);
                    matches!(select(next, timer).await, Either::Left(_))
                })
                .await
            }

            #[test]
            fn a_publication_id_is_published_once_across_nodes() {
                let redis = RedisServer::start();
                let nodes = [node(&redis), node(&redis)];
                let addrs: Vec<String> = nodes
                    .iter()
                    .map(|n| stream_server(n.clone(), "twice"))
                    .collect();
                block_on(async move {
                    let a = nodes[0].room("twice").await.unwrap();
                    let b = nodes[1].room("twice").await.unwrap();
                    let mut clients = Vec::new();
                    for addr in &addrs {
                        clients.push(join(addr, None).await);
                    }
                    for room in [&a, &b] {
                        wait_for(|| room.local().members() == 1).await;
                    }
                    // Sent on A; the resend reaches B (the page moved).
                    let first = a.publish_with_id("ada:m1", "hello").await.unwrap();
                    let resent = b.publish_with_id("ada:m1", "hello").await.unwrap();
                    assert_eq!(resent, first, "acked with the original position");
                    // The id's key holds the position for the window.
                    let key = "{wavecast:twice}:i:ada:m1";
                    let stored = format!("{} {:x}", first.offset, first.epoch);
                    assert_eq!(
                        redis.command(&["GET", key]),
                        format!("${}\r\n{stored}\r\n", stored.len())
                    );
                    let ttl: u64 = redis.command(&["PTTL", key])[1..].trim().parse().unwrap();
                    assert!((1..=400).contains(&ttl), "expires with the window: {ttl}");
                    // Sent to both nodes at once: Redis lets one through.
                    let (x, y) = futures_util::future::join(
                        a.publish_with_id("ada:m2", "race"),
                        b.publish_with_id("ada:m2", "race"),
                    )
                    .await;
                    let raced = x.unwrap();
                    assert_eq!(y.unwrap(), raced);
                    assert_eq!(raced, StreamPosition::new(first.epoch, first.offset + 1));
                    // Plain publishes are not deduplicated.
                    let plain = [
                        a.publish("same").await.unwrap(),
                        b.publish("same").await.unwrap(),
                    ];
                    assert_eq!(plain[1].offset, plain[0].offset + 1);
                    for client in &mut clients {
                        let mut got = Vec::new();
                        for _ in 0..4 {
                            got.push(tagged(&next_text(client).await));
                        }
                        assert_eq!(
                            got,
                            [
                                (first, "hello".to_owned()),
                                (raced, "race".to_owned()),
                                (plain[0], "same".to_owned()),
                                (plain[1], "same".to_owned()),
                            ]
                        );
                        assert!(!more_arrives(client).await, "a publication came twice");
                    }
                    // After the window the id is forgotten: published again.
                    sleep(DEDUP_WINDOW + Duration::from_millis(200)).await;
                    assert_eq!(redis.command(&["EXISTS", key]), ":0\r\n");
                    let later = b.publish_with_id("ada:m1", "hello").await.unwrap();
                    assert_eq!(later.offset, plain[1].offset + 1);
                    for client in &mut clients {
                        assert_eq!(
                            tagged(&next_text(client).await),
                            (later, "hello".to_owned())
                        );
                    }
                    match a
                        .publish_with_id(&"x".repeat(ws::MAX_PUBLISH_ID_LEN + 1), "no")
                        .await
                    {
                        Err(ws::BackplaneError::InvalidId(_)) => {}
                        other => panic!("{other:?}"),
                    }
                });
            }

            #[test]
            fn a_client_leaving_one_node_catches_up_on_another() {
                let redis = RedisServer::start();
                let nodes = [node(&redis), node(&redis), node(&redis)];
                let addrs: Vec<String> = nodes
                    .iter()
                    .map(|n| stream_server(n.clone(), "move"))
                    .collect();
                block_on(async move {
                    let room = nodes[1].room("move").await.unwrap();
                    let start = room.position().await.unwrap();
                    let mut client = join(&addrs[0], None).await;
                    let first_room = nodes[0].room("move").await.unwrap();
                    wait_for(|| first_room.local().members() == 1).await;
                    for i in 0..5 {
                        room.publish(format!("a{i}")).await.unwrap();
                    }
                    let seen = read_run(&mut client, start, 5).await;
                    // The node goes away under the client (its connection
                    // drops); publications go on elsewhere meanwhile.
                    drop(client);
                    wait_for(|| first_room.local().members() == 0).await;
                    for i in 0..7 {
                        room.publish(format!("b{i}")).await.unwrap();
                    }
                    let last = seen.last().unwrap().0;
                    let mut moved = join(&addrs[2], Some(last)).await;
                    let caught = read_run(&mut moved, last, 7).await;
                    let texts: Vec<&str> = caught.iter().map(|(_, t)| t.as_str()).collect();
                    assert_eq!(texts, ["b0", "b1", "b2", "b3", "b4", "b5", "b6"]);
                    let current = caught.last().unwrap().0;
                    assert_eq!(next_text(&mut moved).await, format!("recovered {current}"));
                    room.publish("live").await.unwrap();
                    read_run(&mut moved, current, 1).await;
                });
            }

            #[test]
            fn a_redis_restart_changes_the_epoch_and_clients_are_told() {
                let mut redis = RedisServer::start();
                let hub = node(&redis);
                let addr = stream_server(hub.clone(), "restart");
                block_on(async move {
                    let room = hub.room("restart").await.unwrap();
                    let before = room.publish("before").await.unwrap();
                    let mut client = join(&addr, Some(before)).await;
                    assert_eq!(next_text(&mut client).await, format!("recovered {before}"));
                    redis.kill();
                    wait_for(|| !hub.is_connected()).await;
                    match room.publish("lost").await {
                        Err(
                            ws::BackplaneError::Unavailable(_) | ws::BackplaneError::Timeout(_),
                        ) => {}
                        other => panic!("a publish while Redis is down must fail, got {other:?}"),
                    }
                    redis.restart();
                    within(Duration::from_secs(15), async {
                        while !hub.is_connected() {
                            sleep(Duration::from_millis(20)).await;
                        }
                    })
                    .await;
                    let after = room.publish("after").await.unwrap();
                    assert_ne!(after.epoch, before.epoch, "history was lost: a new epoch");
                    assert_eq!(after.offset, 1);
                    // The member still connected learns it lost the thread
                    // (the resubscribed node keeps delivering): the new epoch
                    // continues from its start...
                    let restart = StreamPosition::new(after.epoch, 0);
                    assert_eq!(
                        next_text(&mut client).await,
                        format!("not_recovered {restart}")
                    );
                    assert_eq!(
                        tagged(&next_text(&mut client).await),
                        (after, "after".to_owned())
                    );
                    // ...and so does one reconnecting with an old position.
                    let mut late = join(&addr, Some(before)).await;
                    assert_eq!(next_text(&mut late).await, format!("not_recovered {after}"));
                });
            }

            #[test]
            fn a_node_cut_off_from_redis_refills_what_it_missed() {
                let redis = RedisServer::start();
                let publisher = node(&redis);
                let before: Vec<u64> = redis.client_ids();
                let cut = node(&redis);
                let addr = stream_server(cut.clone(), "blip");
                block_on(async move {
                    let room = publisher.room("blip").await.unwrap();
                    let cut_room = cut.room("blip").await.unwrap();
                    let start = room.position().await.unwrap();
                    let mut client = join(&addr, None).await;
                    wait_for(|| cut_room.local().members() == 1).await;
                    for i in 0..3 {
                        room.publish(format!("a{i}")).await.unwrap();
                    }
                    let seen = read_run(&mut client, start, 3).await;
                    // Redis drops the node's connection (as it does to a
                    // subscriber past its output buffer limit); the room
                    // goes on meanwhile.
                    let ids: Vec<u64> = redis
                        .client_ids()
                        .into_iter()
                        .filter(|id| !before.contains(id))
                        .collect();
                    assert_eq!(ids.len(), 1, "the cut node's one connection");
                    let kill = ids[0].to_string();
                    assert_eq!(redis.command(&["CLIENT", "KILL", "ID", &kill]), ":1\r\n");
                    wait_for(|| !cut.is_connected()).await;
                    for i in 0..5 {
                        room.publish(format!("b{i}")).await.unwrap();
                    }
                    within(Duration::from_secs(15), async {
                        while !cut.is_connected() {
                            sleep(Duration::from_millis(10)).await;
                        }
                    })
                    .await;
                    for i in 0..2 {
                        room.publish(format!("c{i}")).await.unwrap();
                    }
                    // The member saw no gap: the node read the missed ones
                    // from the history before the live ones.
                    let last = seen.last().unwrap().0;
                    let rest = read_run(&mut client, last, 7).await;
                    let texts: Vec<&str> = rest.iter().map(|(_, t)| t.as_str()).collect();
                    assert_eq!(texts, ["b0", "b1", "b2", "b3", "b4", "c0", "c1"]);
                });
            }

            #[test]
            fn presence_spans_nodes_and_a_dead_nodes_entries_expire() {
                let redis = RedisServer::start();
                let nodes = [node(&redis), node(&redis), node(&redis)];
                let addr = stream_server(nodes[2].clone(), "plaza");
                block_on(async move {
                    let watched = nodes[2].room("plaza").await.unwrap();
                    let mut watcher = join(&addr, None).await;
                    wait_for(|| watched.local().members() == 1).await;
                    let first = nodes[0].room("plaza").await.unwrap();
                    let second = nodes[1].room("plaza").await.unwrap();
                    let ann = first.enter("c1", "ann").await.unwrap();
                    let _bob = second.enter("c2", "bob").await.unwrap();
                    // One notice per node and window, naming who joined there.
                    let mut notices =
                        vec![next_text(&mut watcher).await, next_text(&mut watcher).await];
                    notices.sort();
                    assert_eq!(notices, ["presence +ann -", "presence +bob -"]);
                    // A node that died left entries nobody refreshes.
                    let zset = "{wavecast:plaza}:pz";
                    let hash = "{wavecast:plaza}:ph";
                    assert_eq!(redis.command(&["ZADD", zset, "1", "ghost"]), ":1\r\n");
                    assert_eq!(redis.command(&["HSET", hash, "ghost", "boo"]), ":1\r\n");
                    // Some node finds it expired and announces it gone.
                    assert_eq!(next_text(&mut watcher).await, "presence + -boo");
                    // Live entries outlive their ttl (300 ms) by refreshes.
                    sleep(Duration::from_millis(900)).await;
                    let mut present = watched.presence().await.unwrap();
                    present.sort();
                    assert_eq!(
                        present,
                        [("c1".into(), "ann".into()), ("c2".into(), "bob".into())]
                    );
                    assert_eq!(redis.command(&["HEXISTS", hash, "ghost"]), ":0\r\n");
                    drop(ann);
                    assert_eq!(next_text(&mut watcher).await, "presence + -ann");
                    assert_eq!(
                        watched.presence().await.unwrap(),
                        [("c2".into(), "bob".into())]
                    );
                });
            }

            #[test]
            fn an_unreachable_redis_is_a_clear_error_at_start() {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .unwrap()
                    .port();
                let config = ws::RedisConfig::new(format!("redis://127.0.0.1:{port}/"));
                block_on(async move {
                    let started = std::time::Instant::now();
                    let result =
                        ws::StreamHub::<Rt>::redis(config, ws::RoomConfig::default(), history())
                            .await;
                    let error = result.err().expect("no Redis there");
                    assert!(
                        matches!(error, ws::BackplaneError::Unavailable(_)),
                        "{error:?}"
                    );
                    assert!(error.to_string().contains(&port.to_string()), "{error}");
                    assert!(started.elapsed() < Duration::from_secs(3));
                    let bad = ws::StreamHub::<Rt>::redis(
                        ws::RedisConfig::new("http://nope"),
                        ws::RoomConfig::default(),
                        history(),
                    )
                    .await;
                    assert!(matches!(bad, Err(ws::BackplaneError::Unavailable(_))));
                });
            }
        }
    };
}

backplane_suite!(tokio_runtime, rt_tokio);
backplane_suite!(smol_runtime, rt_smol);
backplane_suite!(async_std_runtime, rt_async_std);
