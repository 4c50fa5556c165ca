//! Server-Sent Events from rooms over real TCP on 127.0.0.1, parsed with
//! the core's `SseParser`.

use std::future::Future;
use std::time::Duration;

use async_io::Timer;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use wavecast_smol::{
    serve, Hub, Message, ServeConfig, SseConfig, SseEnd, SseEvent, SseParser, SseStream,
};

async fn timeout<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    smol::future::or(f, async {
        Timer::after(limit).await;
        panic!("timed out after {limit:?}")
    })
    .await
}

/// Reads until `parser` yields an event (comments included).
async fn next_event(tcp: &mut TcpStream, parser: &mut SseParser) -> SseEvent {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(event) = parser.poll_event().unwrap() {
            return event;
        }
        let n = timeout(Duration::from_secs(1), tcp.read(&mut buf))
            .await
            .unwrap();
        assert!(n > 0, "stream ended");
        parser.feed(&buf[..n]);
    }
}

#[test]
fn sse_client_parses_room_events_and_shutdown_ends_the_stream() {
    smol::block_on(async {
        let hub = Hub::default();
        let room = hub.room("feed").unwrap();
        let server_room = room.clone();
        let (ended_tx, ended) = smol::channel::bounded(1);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = serve(listener, ServeConfig::default(), move |incoming| {
            let room = server_room.clone();
            let ended_tx = ended_tx.clone();
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
                let _ = ended_tx.send(sse.forward(&mut sub).await).await;
            }
        })
        .unwrap();

        let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
        tcp.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 41\r\n\r\n")
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

        // Graceful shutdown ends the stream.
        assert!(timeout(Duration::from_secs(2), server.shutdown()).await);
        let end = timeout(Duration::from_secs(1), ended.recv()).await;
        assert_eq!(end.unwrap(), SseEnd::Shutdown);
    })
}

#[test]
fn sse_client_leaving_ends_the_subscription() {
    smol::block_on(async {
        let hub = Hub::default();
        let room = hub.room("feed").unwrap();
        let server_room = room.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = serve(listener, ServeConfig::default(), move |incoming| {
            let room = server_room.clone();
            async move {
                let mut sub = room.subscribe();
                if let Ok(mut sse) = SseStream::respond(incoming, SseConfig::default()).await {
                    assert_eq!(sse.forward(&mut sub).await, SseEnd::Disconnected);
                }
            }
        })
        .unwrap();
        let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
        tcp.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = timeout(Duration::from_secs(1), tcp.read(&mut buf))
            .await
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        assert_eq!(room.members(), 1);
        drop(tcp);
        timeout(Duration::from_secs(1), async {
            while room.members() > 0 {
                Timer::after(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(server.shutdown().await);
    })
}
