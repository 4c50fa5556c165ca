//! Server-Sent Events from rooms, and send-only WebSocket feeds, over real
//! TCP on 127.0.0.1.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use wavecast_tokio::{
    accept_with, connect_with, serve, Accept, ClientRequest, Config, Hub, Message, ServeConfig,
    SseConfig, SseEnd, SseEvent, SseParser, SseStream,
};

/// Reads until `parser` yields an event (comments included).
async fn next_event(tcp: &mut TcpStream, parser: &mut SseParser) -> SseEvent {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(event) = parser.poll_event().unwrap() {
            return event;
        }
        let n = timeout(Duration::from_secs(1), tcp.read(&mut buf))
            .await
            .expect("an event within 1 s")
            .unwrap();
        assert!(n > 0, "stream ended");
        parser.feed(&buf[..n]);
    }
}

#[tokio::test]
async fn sse_client_parses_room_events() {
    let hub = Hub::default();
    let room = hub.room("feed").unwrap();
    let server_room = room.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = serve(listener, ServeConfig::default(), move |incoming| {
        let room = server_room.clone();
        async move {
            // Subscribed before the response head is written.
            let mut sub = room.subscribe();
            let config = SseConfig::default().with_keep_alive(Duration::from_millis(100));
            let Ok(mut sse) = SseStream::respond(incoming, config).await else {
                return;
            };
            let resume = sse.last_event_id().unwrap_or("none").to_owned();
            sse.send(&SseEvent::data(format!("resume after {resume}")).event("hello"))
                .await
                .unwrap();
            let end = sse.forward(&mut sub).await;
            assert!(matches!(end, SseEnd::Disconnected | SseEnd::Shutdown));
        }
    })
    .unwrap();

    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 41\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Type: text/event-stream"), "{head}");

    let mut parser = SseParser::new().with_comments(true);
    let hello = next_event(&mut tcp, &mut parser).await;
    assert_eq!(hello.event_type(), "hello");
    assert_eq!(hello.data.as_deref(), Some("resume after 41"));

    assert_eq!(room.members(), 1);
    room.publish("first\nline two");
    room.publish(Message::from(vec![1u8, 2, 3])); // binary: not sent over SSE
    room.publish("second");
    let first = next_event(&mut tcp, &mut parser).await;
    assert_eq!(first.data.as_deref(), Some("first\nline two"));
    assert_eq!(first.id.as_deref(), Some("1"));
    let second = next_event(&mut tcp, &mut parser).await;
    assert_eq!(second.data.as_deref(), Some("second"));
    assert_eq!(second.id.as_deref(), Some("3"));
    assert_eq!(parser.last_event_id(), "3");

    // Quiet stream: a keep-alive comment arrives.
    let ping = next_event(&mut tcp, &mut parser).await;
    assert!(ping.data.is_none() && ping.comment.is_some(), "{ping:?}");

    drop(tcp);
    timeout(Duration::from_secs(1), async {
        while room.members() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the subscriber leaves when the client does");
    assert!(server.shutdown().await);
}

#[tokio::test]
async fn send_only_feed_keeps_its_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = accept_with(tcp, Config::default(), |_| Ok(Accept::new()))
            .await
            .unwrap();
        // The application never receives: dropping the receiver switches
        // the connection to discard mode.
        let (sender, receiver) = ws.split();
        drop(receiver);
        sender.send("tick 1").await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        sender.send("tick 2").await.unwrap();
        sender.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    // The client pings every 100 ms and gives up after 300 ms of silence:
    // only the server's pongs keep it alive between the ticks.
    let config = Config::default()
        .with_heartbeat_interval(Some(Duration::from_millis(100)))
        .with_idle_timeout(Some(Duration::from_millis(300)));
    let url = format!("ws://{addr}/feed");
    let (request, _) = ClientRequest::from_url(&url).unwrap();
    let (mut ws, _) = connect_with(&url, request, config).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("tick 1"));
    // Messages the server discards must not stall it either.
    for i in 0..200 {
        ws.send(format!("ignored {i}")).await.unwrap();
    }
    let second = timeout(Duration::from_secs(1), ws.recv()).await.unwrap();
    assert_eq!(second.unwrap().unwrap(), Message::from("tick 2"));
}
