//! Broadcast rooms on async-std over real TCP on 127.0.0.1.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_std::future::timeout;
use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use wavecast_async_std::{
    connect, read_request, Accept, CloseCode, Config, Hub, LagPolicy, Member, MemberEnd, Message,
    Room, RoomConfig, Sender,
};

async fn wait_for(mut cond: impl FnMut() -> bool) {
    timeout(Duration::from_secs(2), async {
        while !cond() {
            task::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("condition within 2 s");
}

type Joined = Arc<Mutex<Vec<(String, Sender, Member)>>>;

/// A server that joins every connection to `room` before its `101`, and
/// publishes `greeting` the instant the hook returns.
async fn room_server(
    room: Room,
    config: Config,
    greeting: Option<&'static str>,
) -> (String, Joined) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let joined: Joined = Arc::default();
    let list = joined.clone();
    task::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (room, list, config) = (room.clone(), list.clone(), config.clone());
            task::spawn(async move {
                let incoming = read_request(tcp, config).await.unwrap();
                let path = incoming.request().path().to_owned();
                let mut member = None;
                let ws = incoming
                    .accept_then(Accept::new(), |ws| member = Some(room.join(ws.sender())))
                    .unwrap();
                if let Some(greeting) = greeting {
                    room.publish(greeting);
                }
                let (sender, mut receiver) = ws.split();
                list.lock().unwrap().push((path, sender, member.unwrap()));
                while let Some(Ok(_)) = receiver.recv().await {}
            });
        }
    });
    (format!("ws://{addr}"), joined)
}

#[test]
fn every_member_receives_every_message_in_order() {
    task::block_on(async {
        let hub = Hub::new(RoomConfig::default());
        let room = hub.room("news").unwrap();
        let (url, _joined) = room_server(room.clone(), Config::default(), None).await;
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
                let got = timeout(Duration::from_secs(2), ws.recv()).await.unwrap();
                assert_eq!(got.unwrap().unwrap(), Message::from(format!("m{i}")));
            }
        }
    })
}

#[test]
fn message_published_at_accept_is_received_without_sending() {
    task::block_on(async {
        let hub = Hub::default();
        let room = hub.room("instant").unwrap();
        let (url, _joined) = room_server(room, Config::default(), Some("hello")).await;
        for _ in 0..100 {
            let (mut ws, _) = connect(&url).await.unwrap();
            let got = timeout(Duration::from_secs(1), ws.recv()).await.unwrap();
            assert_eq!(got.unwrap().unwrap(), Message::from("hello"));
        }
    })
}

async fn stalled_client(addr: &str) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let sock_addr: std::net::SocketAddr = addr.parse().unwrap();
    socket.connect(&sock_addr.into()).unwrap();
    let mut tcp = TcpStream::from(std::net::TcpStream::from(socket));
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
    let (url, joined) = room_server(room.clone(), config, None).await;
    let stalled = stalled_client(url.trim_start_matches("ws://")).await;
    let (mut fast, _) = connect(&format!("{url}/fast")).await.unwrap();
    wait_for(|| room.members() == 2).await;
    let received = Arc::new(AtomicU64::new(0));
    let seen = received.clone();
    let reader = task::spawn(async move {
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
                task::yield_now().await;
            }
            let mut msg = payload.clone();
            msg[..8].copy_from_slice(&i.to_be_bytes());
            room.publish(msg);
            max_room = max_room.max(room.queued());
            max_queued = max_queued.max(stalled_sender.queued_bytes());
        }
    })
    .await
    .expect("the stalled member does not slow the others");
    timeout(Duration::from_secs(4), reader).await.unwrap();
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
fn stalled_member_skips_ahead() {
    task::block_on(async {
        let (_room, member, mut stalled) =
            flood_with_stalled_member(LagPolicy::SkipAhead, 1500).await;
        assert!(!member.is_finished());
        task::spawn(async move {
            let mut sink = [0u8; 1 << 16];
            while let Ok(n) = stalled.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        });
        wait_for(|| member.skipped() > 0).await;
        assert!(member.skipped() < 1500);
    })
}

#[test]
fn stalled_member_is_disconnected_with_1013() {
    task::block_on(async {
        let (_room, member, _stalled) =
            flood_with_stalled_member(LagPolicy::Disconnect, 1500).await;
        let end = timeout(Duration::from_secs(1), member.wait())
            .await
            .unwrap();
        assert_eq!(end, MemberEnd::Evicted(CloseCode::TRY_AGAIN_LATER));
    })
}
