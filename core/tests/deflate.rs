//! permessage-deflate (RFC 7692) through whole connections: the wire form,
//! the limits on decompressed sizes, RSV1 rules and prepared messages.
#![cfg(feature = "deflate")]

mod common;
mod deflate_common;

use std::time::Instant;

use bytes::Bytes;
use common::{client_frame, config, drain_events, drain_output, parse_frames};
use deflate_common::{handshake, negotiated_pair};
use wavecast_core::frame::OpCode;
use wavecast_core::{
    CloseCode, Config, Connection, ConnectionError, DeflateConfig, Event, Message, PreparedMessage,
    ProtocolError, Role,
};

const RSV1: u8 = 0b100;
const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

/// A server connection that negotiated deflate with a default client.
fn server_with(server: Config) -> Connection {
    let (_, negotiated) = handshake(&config(), &server);
    assert!(negotiated.deflate.is_some());
    Connection::with_negotiated(Role::Server, server, &negotiated, Instant::now())
}

fn feed(conn: &mut Connection, bytes: &[u8]) -> Vec<Event> {
    conn.receive(Instant::now(), bytes);
    drain_events(conn)
}

fn close_code(conn: &mut Connection) -> Option<u16> {
    let out = drain_output(conn);
    parse_frames(&out)
        .into_iter()
        .find(|(h, _)| h.opcode == OpCode::Close)
        .map(|(_, p)| u16::from_be_bytes([p[0], p[1]]))
}

#[test]
fn echo_is_compressed_on_the_wire() {
    let mut pair = negotiated_pair(config(), config());
    let text = "hello hello hello hello ".repeat(40);
    pair.client.send_text(text.clone()).unwrap();
    let wire = drain_output(&mut pair.client);
    let frames = parse_frames(&wire);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0.rsv, RSV1);
    assert!(frames[0].1.len() < text.len() / 4, "{}", frames[0].1.len());
    pair.server.receive(pair.now, &wire);
    let Some(Event::Message(Message::Text(got))) = pair.server.poll_event() else {
        panic!("no message");
    };
    assert_eq!(got, text.as_str());
    pair.server.send_text(got).unwrap();
    pair.pump();
    assert_eq!(
        drain_events(&mut pair.client),
        [Event::Message(Message::Text(text.as_str().into()))]
    );
    // Below the threshold messages go out as they are.
    pair.client.send_text("tiny").unwrap();
    let frames = parse_frames(&drain_output(&mut pair.client));
    assert_eq!(frames[0].0.rsv, 0);
}

#[test]
fn rfc_hello_single_and_fragmented_frames() {
    let mut server = server_with(config());
    let events = feed(&mut server, &client_frame(true, RSV1, OpCode::Text, &HELLO));
    assert_eq!(events, [Event::Message(Message::Text("Hello".into()))]);
    // §7.2.3.1 fragmented: RSV1 only on the first frame.
    let mut input = client_frame(false, RSV1, OpCode::Text, &HELLO[..3]);
    input.extend(client_frame(true, 0, OpCode::Continuation, &HELLO[3..]));
    assert_eq!(
        feed(&mut server, &input),
        [Event::Message(Message::Text("Hello".into()))]
    );
    // An empty compressed message, then an uncompressed one.
    let mut input = client_frame(true, RSV1, OpCode::Binary, &[0x00]);
    input.extend(client_frame(true, 0, OpCode::Text, b"plain"));
    assert_eq!(
        feed(&mut server, &input),
        [
            Event::Message(Message::Binary(Bytes::new())),
            Event::Message(Message::Text("plain".into()))
        ]
    );
    // Every split of the input gives the same message.
    let input = client_frame(true, RSV1, OpCode::Text, &HELLO);
    for cut in 0..input.len() {
        let mut server = server_with(config());
        server.receive(Instant::now(), &input[..cut]);
        server.receive(Instant::now(), &input[cut..]);
        assert_eq!(
            drain_events(&mut server),
            [Event::Message(Message::Text("Hello".into()))],
            "cut {cut}"
        );
    }
}

#[test]
fn rsv1_on_continuation_or_control_fails_1002() {
    let cases: [Vec<u8>; 3] = [
        {
            let mut v = client_frame(false, RSV1, OpCode::Text, &HELLO[..3]);
            v.extend(client_frame(true, RSV1, OpCode::Continuation, &HELLO[3..]));
            v
        },
        client_frame(true, RSV1, OpCode::Ping, b"x"),
        client_frame(true, RSV1, OpCode::Close, &1000u16.to_be_bytes()),
    ];
    for input in cases {
        let mut server = server_with(config());
        let events = feed(&mut server, &input);
        assert!(
            matches!(
                events.last(),
                Some(Event::Error(ConnectionError::Protocol(
                    ProtocolError::ReservedBits(_)
                )))
            ),
            "{events:?}"
        );
        assert_eq!(close_code(&mut server), Some(1002));
    }
    // RSV2/RSV3 are not ours either.
    let mut server = server_with(config());
    feed(
        &mut server,
        &client_frame(true, 0b010, OpCode::Text, &HELLO),
    );
    assert_eq!(close_code(&mut server), Some(1002));
}

#[test]
fn corrupt_compressed_data_fails_1007() {
    let mut server = server_with(config());
    let events = feed(
        &mut server,
        &client_frame(true, RSV1, OpCode::Binary, &[0xff, 0xff, 0xff, 0xff]),
    );
    assert!(matches!(
        events.last(),
        Some(Event::Error(ConnectionError::Protocol(
            ProtocolError::Extension { .. }
        )))
    ));
    assert_eq!(close_code(&mut server), Some(1007));
    // Compressed text that inflates to invalid UTF-8 is 1007 as well.
    let mut client = negotiated_pair(config(), config()).client;
    client.send_binary(vec![0xff; 1000]).unwrap();
    let frames = parse_frames(&drain_output(&mut client));
    assert_eq!(frames[0].0.rsv, RSV1);
    let mut server = server_with(config());
    feed(
        &mut server,
        &client_frame(true, RSV1, OpCode::Text, &frames[0].1),
    );
    assert_eq!(close_code(&mut server), Some(1007));
}

#[test]
fn zip_bomb_fails_1009_before_inflating_it() {
    // 64 MiB of zeros compress to ~64 KiB: under the frame limit, far over
    // the message limit once inflated.
    let limit = 1 << 20;
    let mut client = negotiated_pair(config(), config()).client;
    client.send_binary(vec![0u8; 64 << 20]).unwrap();
    let wire = drain_output(&mut client);
    assert!(wire.len() < 100_000, "{}", wire.len());
    let mut server = server_with(config().with_max_message_size(limit));
    let events = feed(&mut server, &wire);
    assert_eq!(
        events,
        [Event::Error(ConnectionError::Protocol(
            ProtocolError::MessageTooBig { limit }
        ))]
    );
    assert_eq!(close_code(&mut server), Some(CloseCode::MESSAGE_TOO_BIG.0));
    // Fragmented: the limit counts the whole inflated message.
    let mut client = negotiated_pair(config().with_fragment_size(Some(100)), config()).client;
    client.send_binary(vec![0u8; 4 << 20]).unwrap();
    let wire = drain_output(&mut client);
    let mut server = server_with(config().with_max_message_size(limit));
    let events = feed(&mut server, &wire);
    assert!(matches!(
        events.last(),
        Some(Event::Error(ConnectionError::Protocol(
            ProtocolError::MessageTooBig { .. }
        )))
    ));
}

#[test]
fn fragmented_compressed_sends_round_trip() {
    let sizes = [0usize, 1, 127, 128, 5000, 70_000];
    for fragment in [None, Some(1), Some(7), Some(1000)] {
        let cfg = config()
            .with_fragment_size(fragment)
            .with_deflate(Some(DeflateConfig::default().with_threshold(0)));
        let mut pair = negotiated_pair(cfg.clone(), cfg);
        for &n in &sizes {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8 / 8).collect();
            pair.client.send_binary(data.clone()).unwrap();
            pair.pump();
            assert_eq!(
                drain_events(&mut pair.server),
                [Event::Message(Message::Binary(data.clone().into()))],
                "size {n}, fragment {fragment:?}"
            );
            pair.server.send_binary(data.clone()).unwrap();
            pair.pump();
            assert_eq!(
                drain_events(&mut pair.client),
                [Event::Message(Message::Binary(data.into()))]
            );
        }
    }
}

#[test]
fn prepared_messages_are_compressed_once_for_shared_parameters() {
    let text = "broadcast ".repeat(100);
    let prepared = PreparedMessage::new(Message::Text(text.as_str().into()));
    let mut a = server_with(config());
    let mut b = server_with(config());
    a.send_prepared(&prepared).unwrap();
    b.send_prepared(&prepared.clone()).unwrap();
    let (wa, wb) = (drain_output(&mut a), drain_output(&mut b));
    assert_eq!(wa, wb);
    let frames = parse_frames(&wa);
    assert_eq!(frames[0].0.rsv, RSV1);
    assert!(wa.len() < text.len() / 4);
    // The shared frame decodes at a client.
    let mut pair = negotiated_pair(config(), config());
    pair.server.send_prepared(&prepared).unwrap();
    pair.pump();
    assert_eq!(
        drain_events(&mut pair.client),
        [Event::Message(Message::Text(text.as_str().into()))]
    );
    // Context takeover: compressed per connection, and it still decodes,
    // twice in a row (the second refers back to the first).
    let takeover = config().with_deflate(Some(DeflateConfig::default().with_context_takeover(10)));
    let mut pair = negotiated_pair(takeover.clone(), takeover);
    for _ in 0..2 {
        pair.server.send_prepared(&prepared).unwrap();
    }
    let wire = drain_output(&mut pair.server);
    let frames = parse_frames(&wire);
    assert!(frames[1].1.len() < frames[0].1.len(), "second refers back");
    pair.client.receive(pair.now, &wire);
    assert_eq!(drain_events(&mut pair.client).len(), 2);
    // A member without deflate gets the plain frame.
    let mut plain = Connection::new(Role::Server, config(), Instant::now());
    plain.send_prepared(&prepared).unwrap();
    assert_eq!(drain_output(&mut plain), prepared.frame_bytes().as_ref());
}

/// A server that accepted an offer over raw HTTP.
fn server_for_offer(offer: &str) -> Option<Connection> {
    let now = Instant::now();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    );
    let mut hs = wavecast_core::ServerHandshake::new(&config(), now);
    let req = hs.receive(now, request.as_bytes()).unwrap().unwrap();
    let accepted = hs.accept(&req, wavecast_core::Accept::new()).unwrap();
    accepted.negotiated.deflate?;
    Some(Connection::with_negotiated(
        Role::Server,
        config(),
        &accepted.negotiated,
        now,
    ))
}

#[test]
fn eight_bit_windows() {
    // Our compressor never runs with 8 bits: that offer is declined...
    assert!(server_for_offer("permessage-deflate; server_max_window_bits=8").is_none());
    // ...and the next offer is taken instead.
    let mut server = server_for_offer(
        "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9",
    )
    .expect("second offer");
    let text = "abcabcabc".repeat(50);
    server.send_text(text.as_str()).unwrap();
    assert_eq!(parse_frames(&drain_output(&mut server))[0].0.rsv, RSV1);
    // A client window of 8 is accepted: we inflate it with 9 bits.
    let mut server =
        server_for_offer("permessage-deflate; client_max_window_bits=8").expect("accepted");
    assert_eq!(
        feed(&mut server, &client_frame(true, RSV1, OpCode::Text, &HELLO)),
        [Event::Message(Message::Text("Hello".into()))]
    );
}

#[test]
fn disabled_deflate_negotiates_nothing() {
    let off = config().with_deflate(None);
    let (c, s) = handshake(&off, &config());
    assert_eq!((c.deflate, s.deflate), (None, None));
    let (c, s) = handshake(&config(), &off);
    assert_eq!((c.deflate, s.deflate), (None, None));
    assert!(c.extensions.is_empty());
}
