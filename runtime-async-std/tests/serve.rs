//! `serve`, SSE and the reconnecting client on async-std over real TCP on
//! 127.0.0.1.

use std::time::{Duration, Instant};

use async_std::future::timeout;
use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use wavecast_async_std::{
    accept, connect, serve, Accept, Backoff, CloseCode, HttpResponse, Hub, Jitter, Message,
    Reconnect, ServeConfig, Server, SseConfig, SseEvent, SseParser, SseStream,
};

async fn start(max: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = ServeConfig::default()
        .with_max_connections(max)
        .with_shutdown_timeout(Duration::from_secs(1));
    serve(listener, options, |incoming| async move {
        if incoming.is_websocket_upgrade() {
            let Ok(mut ws) = incoming.accept(Accept::new()).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.recv().await {
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
        } else {
            let _ = incoming
                .respond(HttpResponse::html(200, "<h1>chat</h1>"))
                .await;
        }
    })
    .unwrap()
}

async fn raw(server: &Server, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    timeout(Duration::from_secs(1), tcp.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8(out).unwrap()
}

const UPGRADE: &[u8] =
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn over_the_cap_gets_503_and_plain_http_works() {
    task::block_on(async {
        let server = start(1).await;
        let page = raw(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.ends_with("<h1>chat</h1>"));
        // The page's handler frees its slot just after the client sees the
        // connection close; wait for it before taking the only slot.
        timeout(Duration::from_secs(1), async {
            while server.active() > 0 {
                task::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .unwrap();
        let url = format!("ws://{}/", server.local_addr());
        let (mut a, _) = connect(&url).await.unwrap();
        a.send("a").await.unwrap();
        assert!(a.recv().await.unwrap().is_ok());
        let answer = raw(&server, UPGRADE).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("Retry-After: 1"), "{answer}");
    })
}

#[test]
fn graceful_shutdown_closes_with_1001() {
    task::block_on(async {
        let server = start(100).await;
        let url = format!("ws://{}/", server.local_addr());
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (mut ws, _) = connect(&url).await.unwrap();
            ws.send("x").await.unwrap();
            ws.recv().await.unwrap().unwrap();
            clients.push(ws);
        }
        let shutdown = task::spawn(server.shutdown());
        for ws in clients {
            let (_sender, mut receiver) = ws.split();
            let end = timeout(Duration::from_secs(1), receiver.recv())
                .await
                .unwrap();
            assert!(end.is_none(), "clean close: {end:?}");
            assert_eq!(receiver.close_frame().unwrap().code, CloseCode::GOING_AWAY);
        }
        assert!(timeout(Duration::from_secs(2), shutdown).await.unwrap());
        assert!(connect(&url).await.is_err(), "no longer accepting");
    })
}

#[test]
fn sse_client_parses_room_events() {
    task::block_on(async {
        let hub = Hub::default();
        let room = hub.room("feed").unwrap();
        let server_room = room.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = serve(listener, ServeConfig::default(), move |incoming| {
            let room = server_room.clone();
            async move {
                let mut sub = room.subscribe();
                let Ok(mut sse) = SseStream::respond(incoming, SseConfig::default()).await else {
                    return;
                };
                sse.send(&SseEvent::data("hi").event("hello"))
                    .await
                    .unwrap();
                sse.forward(&mut sub).await;
            }
        })
        .unwrap();
        let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
        tcp.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"));
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        let mut buf = [0u8; 4096];
        let mut published = false;
        while events.len() < 3 {
            while let Some(event) = parser.poll_event().unwrap() {
                events.push(event);
            }
            if events.len() == 1 && !published {
                assert_eq!(room.members(), 1);
                room.publish("one");
                room.publish(Message::from(vec![0u8])); // binary: not sent
                room.publish("two");
                published = true;
            }
            if events.len() >= 3 {
                break;
            }
            let n = timeout(Duration::from_secs(1), tcp.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0);
            parser.feed(&buf[..n]);
        }
        assert_eq!(events[0].event_type(), "hello");
        assert_eq!(events[1].data.as_deref(), Some("one"));
        assert_eq!(events[2].data.as_deref(), Some("two"));
        assert_eq!(events[2].id.as_deref(), Some("3"));
        assert!(timeout(Duration::from_secs(2), server.shutdown())
            .await
            .unwrap());
    })
}

#[test]
fn reconnect_waits_for_the_server() {
    task::block_on(async {
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        task::spawn(async move {
            task::sleep(Duration::from_millis(100)).await;
            let listener = TcpListener::bind(addr).await.unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = accept(tcp).await.unwrap();
            ws.send("up").await.unwrap();
            while let Some(Ok(_)) = ws.recv().await {}
        });
        let mut client = Reconnect::new(&format!("ws://{addr}/"))
            .unwrap()
            .with_backoff(
                Backoff::new()
                    .with_initial(Duration::from_millis(20))
                    .with_max_delay(Duration::from_millis(40))
                    .with_jitter(Jitter::None)
                    .with_max_attempts(Some(50)),
            );
        let started = Instant::now();
        let (mut ws, _) = timeout(Duration::from_secs(2), client.connect())
            .await
            .unwrap()
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(80));
        assert_eq!(client.attempts(), 0);
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("up"));
    })
}
