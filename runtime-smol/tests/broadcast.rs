//! Broadcast rooms over real TCP on 127.0.0.1.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_io::Timer;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use wavecast_smol::{
    connect, read_request, Accept, CloseCode, Config, Hub, LagPolicy, Member, MemberEnd, Message,
    Room, RoomConfig, Sender,
};

async fn timeout<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    smol::future::or(f, async {
        Timer::after(limit).await;
        panic!("timed out after {limit:?}")
    })
    .await
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    timeout(Duration::from_secs(2), async {
        while !cond() {
            Timer::after(Duration::from_millis(2)).await;
        }
    })
    .await
}

type Joined = Arc<Mutex<Vec<(String, Sender, Member)>>>;

/// A server that joins every connection to `room` before its `101`.
async fn room_server(room: Room, config: Config) -> (String, Joined) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let joined: Joined = Arc::default();
    let list = joined.clone();
    smol::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (room, list, config) = (room.clone(), list.clone(), config.clone());
            smol::spawn(async move {
                let incoming = read_request(tcp, config).await.unwrap();
                let path = incoming.request().path().to_owned();
                let mut member = None;
                let ws = incoming
                    .accept_then(Accept::new(), |ws| member = Some(room.join(ws.sender())))
                    .unwrap();
                let (sender, mut receiver) = ws.split();
                list.lock().unwrap().push((path, sender, member.unwrap()));
                while let Some(Ok(_)) = receiver.recv().await {}
            })
            .detach();
        }
    })
    .detach();
    (format!("ws://{addr}"), joined)
}

#[test]
fn every_member_receives_every_message_in_order() {
    smol::block_on(async {
        let hub = Hub::new(RoomConfig::default());
        let room = hub.room("news").unwrap();
        let (url, _joined) = room_server(room.clone(), Config::default()).await;
        let mut clients = Vec::new();
        for _ in 0..5 {
            clients.push(connect(&url).await.unwrap().0);
        }
        wait_for(|| room.members() == 5).await;
        for i in 0..100 {
            assert_eq!(room.publish(format!("m{i}")), 5);
        }
        for mut ws in clients {
            for i in 0..100 {
                let got = timeout(Duration::from_secs(2), ws.recv()).await;
                assert_eq!(got.unwrap().unwrap(), Message::from(format!("m{i}")));
            }
        }
    })
}

#[test]
fn message_published_at_accept_is_received_without_sending() {
    smol::block_on(async {
        let hub = Hub::default();
        let room = hub.room("instant").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_room = room.clone();
        smol::spawn(async move {
            let mut n = 0u32;
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let room = server_room.clone();
                let i = n;
                n += 1;
                smol::spawn(async move {
                    let incoming = read_request(tcp, Config::default()).await.unwrap();
                    let mut member = None;
                    let ws = incoming
                        .accept_then(Accept::new(), |ws| member = Some(room.join(ws.sender())))
                        .unwrap();
                    // Published the instant the hook returned: the 101 may
                    // not even be written yet.
                    room.publish(format!("hello {i}"));
                    let (_sender, mut receiver) = ws.split();
                    while let Some(Ok(_)) = receiver.recv().await {}
                    drop(member);
                })
                .detach();
            }
        })
        .detach();
        let url = format!("ws://{addr}/");
        timeout(Duration::from_secs(4), async {
            for n in 0..200 {
                let (mut ws, _) = connect(&url).await.unwrap();
                let got = ws.recv().await.unwrap().unwrap();
                assert_eq!(got, Message::from(format!("hello {n}")));
            }
        })
        .await;
    })
}

/// A client that completes the handshake and then never reads, with a
/// small receive buffer so the server's writes stall quickly.
async fn stalled_client(addr: &str) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let sock_addr: std::net::SocketAddr = addr.parse().unwrap();
    socket.connect(&sock_addr.into()).unwrap();
    let mut tcp = TcpStream::try_from(std::net::TcpStream::from(socket)).unwrap();
    tcp.write_all(
        b"GET /stall HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    tcp
}

/// Publishes `count` large messages, paced by the fast client only, while
/// a stalled member sits in the room; checks both queues stay bounded.
async fn flood_with_stalled_member(policy: LagPolicy, count: u64) -> (Room, Member, TcpStream) {
    let capacity = 16;
    let write_limit = 64 << 10;
    let hub = Hub::new(
        RoomConfig::default()
            .with_capacity(capacity)
            .with_lag_policy(policy),
    );
    let room = hub.room("flood").unwrap();
    let config = Config::default()
        .with_write_buffer_limit(write_limit)
        .with_close_timeout(Duration::from_millis(200));
    let (url, joined) = room_server(room.clone(), config).await;
    let stalled = stalled_client(url.trim_start_matches("ws://")).await;
    let (mut fast, _) = connect(&format!("{url}/fast")).await.unwrap();
    wait_for(|| room.members() == 2).await;

    let received = Arc::new(AtomicU64::new(0));
    let seen = received.clone();
    let reader = smol::spawn(async move {
        for i in 0..count {
            let msg = fast.recv().await.unwrap().unwrap();
            assert_eq!(
                &msg.as_bytes()[..8],
                &i.to_be_bytes(),
                "in order, none lost"
            );
            seen.store(i + 1, Ordering::Release);
        }
        fast
    });
    let stalled_sender = {
        let list = joined.lock().unwrap();
        list.iter().find(|(p, ..)| p == "/stall").unwrap().1.clone()
    };
    let payload = vec![7u8; 16 << 10];
    let (mut max_queued, mut max_room) = (0, 0);
    timeout(Duration::from_secs(4), async {
        for i in 0..count {
            while i >= received.load(Ordering::Acquire) + 8 {
                smol::future::yield_now().await;
            }
            let mut msg = payload.clone();
            msg[..8].copy_from_slice(&i.to_be_bytes());
            room.publish(msg);
            max_room = max_room.max(room.queued());
            max_queued = max_queued.max(stalled_sender.queued_bytes());
        }
    })
    .await;
    let _fast = timeout(Duration::from_secs(4), reader).await;
    assert!(max_room <= capacity, "room queue {max_room}");
    assert!(
        max_queued <= write_limit + (16 << 10) + 14,
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
    smol::block_on(async {
        let (_room, member, mut stalled) =
            flood_with_stalled_member(LagPolicy::SkipAhead, 1500).await;
        assert!(!member.is_finished(), "skip-ahead keeps the member");
        smol::spawn(async move {
            let mut sink = [0u8; 1 << 16];
            while let Ok(n) = stalled.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .detach();
        wait_for(|| member.skipped() > 0).await;
        assert!(member.skipped() < 1500);
        assert!(!member.is_finished());
    })
}

#[test]
fn stalled_member_is_disconnected_with_1013() {
    smol::block_on(async {
        let (_room, member, _stalled) =
            flood_with_stalled_member(LagPolicy::Disconnect, 1500).await;
        let end = timeout(Duration::from_secs(1), member.wait()).await;
        assert_eq!(end, MemberEnd::Evicted(CloseCode::TRY_AGAIN_LATER));
    })
}

#[test]
fn chat_forwards_both_ways_and_rooms_go_away() {
    smol::block_on(async {
        let hub = Hub::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_hub = hub.clone();
        smol::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let hub = server_hub.clone();
                smol::spawn(async move {
                    let incoming = read_request(tcp, Config::default()).await.unwrap();
                    let room = hub.room(incoming.request().path()).unwrap();
                    let mut member = None;
                    let ws = incoming
                        .accept_then(Accept::new(), |ws| member = Some(room.join(ws.sender())))
                        .unwrap();
                    let _ = room.chat(ws, member.unwrap()).await;
                })
                .detach();
            }
        })
        .detach();
        let url = format!("ws://{addr}/lobby");
        let (mut a, _) = connect(&url).await.unwrap();
        let (mut b, _) = connect(&url).await.unwrap();
        a.send("hi from a").await.unwrap();
        for ws in [&mut a, &mut b] {
            let got = timeout(Duration::from_secs(1), ws.recv()).await;
            assert_eq!(got.unwrap().unwrap(), Message::from("hi from a"));
        }
        assert_eq!(hub.rooms(), 1);
        a.close(CloseCode::NORMAL, "").await.unwrap();
        b.close(CloseCode::NORMAL, "").await.unwrap();
        wait_for(|| hub.rooms() == 0).await;
    })
}

#[test]
fn empty_rooms_are_removed() {
    let hub = Hub::default();
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
