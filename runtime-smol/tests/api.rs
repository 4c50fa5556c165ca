//! Every name `wavecast-tokio` exports exists here too: switching runtime
//! changes an import, not the program.

#[allow(unused_imports)]
use wavecast_smol::{
    accept, accept_with, client_over, connect, connect_with, read_request, serve, Accept, Backoff,
    ClientRequest, CloseCode, CloseFrame, Config, Error, HttpResponse, Hub, Incoming, Jitter,
    LagPolicy, Member, MemberEnd, Message, Negotiated, OriginAllowList, Outcome, PreparedMessage,
    Receiver, Reconnect, Request, Response, Role, Room, RoomConfig, RoomError, RoomEvent,
    RoomMessage, SeedSource, Sender, ServeConfig, Server, SseConfig, SseEnd, SseEvent, SseParser,
    SseStream, Subscription, TrySendError, Utf8Bytes, WebSocket,
};
#[cfg(feature = "rustls")]
#[allow(unused_imports)]
use wavecast_smol::{connect_tls_with, default_client_config};

#[test]
fn constructors_need_no_runtime_annotation() {
    let hub = Hub::default();
    let room = hub.room("a").unwrap();
    assert_eq!(room.publish("x"), 0);
    assert_eq!(Hub::new(RoomConfig::default()).rooms(), 0);
    let client = Reconnect::new("ws://127.0.0.1:9/").unwrap();
    assert_eq!(client.attempts(), 0);
    assert!(OriginAllowList::new(["https://a.example"])
        .check(&dummy())
        .is_ok());
}

fn dummy() -> Request {
    let mut handshake =
        wavecast_core::ServerHandshake::new(&Config::default(), std::time::Instant::now());
    handshake
        .receive(
            std::time::Instant::now(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap()
        .unwrap()
}
