//! Messages taken and sent in chunks: the bytes match the whole-message
//! path, memory stays at one chunk window whatever the message size, and
//! control frames keep working in the middle of a streamed message.

mod common;
mod deflate_common;

use bytes::Bytes;
use common::*;
use deflate_common::negotiated_pair;
use wavecast_core::error::{ConnectionError, ProtocolError, UsageError};
use wavecast_core::frame::OpCode;
use wavecast_core::{Chunk, Config, Connection, DeflateConfig, Event, Message, Role, STREAM_CHUNK};

fn streaming() -> Config {
    config().with_stream_messages(true)
}

/// Takes every event, joining chunks into messages and checking the chunk
/// rules on the way: flags in order, text chunks valid on their own.
#[derive(Default)]
struct Collector {
    messages: Vec<Message>,
    partial: Option<(bool, Vec<u8>)>,
    chunks: usize,
    pings: Vec<Bytes>,
    error: Option<ConnectionError>,
    /// The most bytes of chunks queued at once (a peek at `event` sizes).
    most_chunk: usize,
}

impl Collector {
    fn take(&mut self, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Chunk(Chunk { data, first, last }) => {
                    self.chunks += 1;
                    self.most_chunk = self.most_chunk.max(data.len());
                    assert_eq!(first, self.partial.is_none(), "first flag out of order");
                    let (text, buf) = self.partial.get_or_insert((data.is_text(), Vec::new()));
                    assert_eq!(*text, data.is_text(), "kind changed inside a message");
                    if let Message::Text(t) = &data {
                        assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                    }
                    buf.extend_from_slice(data.as_bytes());
                    if last {
                        let (text, buf) = self.partial.take().unwrap();
                        self.messages.push(if text {
                            Message::Text(String::from_utf8(buf).unwrap().into())
                        } else {
                            Message::Binary(buf.into())
                        });
                    }
                }
                Event::Message(m) => self.messages.push(m),
                Event::Ping(p) => self.pings.push(p),
                Event::Error(e) => self.error = Some(e),
                _ => {}
            }
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_fragmented_message_arrives_in_chunks_with_the_same_bytes() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, streaming(), now);
    let payload = pattern(3 << 20);
    let mut wire = Vec::new();
    for (i, piece) in payload.chunks(100_000).enumerate() {
        let op = if i == 0 {
            OpCode::Binary
        } else {
            OpCode::Continuation
        };
        let last = (i + 1) * 100_000 >= payload.len();
        wire.extend(client_frame(last, 0, op, piece));
    }
    wire.extend(client_frame(true, 0, OpCode::Text, b"after"));
    let mut got = Collector::default();
    // Reads of 16 KiB, as a transport would deliver them.
    for piece in wire.chunks(16 << 10) {
        assert!(s.wants_read());
        s.receive(now, piece);
        got.take(&mut s);
    }
    assert_eq!(got.messages.len(), 2);
    assert_eq!(got.messages[0].as_bytes(), &payload[..]);
    assert_eq!(got.messages[1], Message::from("after"));
    assert!(got.chunks > 100, "chunks follow the reads: {}", got.chunks);
    assert!(got.most_chunk <= 16 << 10);
}

#[test]
fn one_big_receive_is_taken_in_windows() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, streaming(), now);
    let payload = pattern(5 << 20);
    let wire = client_frame(true, 0, OpCode::Binary, &payload);
    s.receive(now, &wire);
    // Decoding stopped at one window; the rest waits for the application.
    assert!(!s.wants_read());
    let mut got = Collector::default();
    let mut rounds = 0;
    while got.messages.is_empty() {
        rounds += 1;
        assert!(rounds < 1000);
        let event = s.poll_event().expect("chunks keep coming");
        let Event::Chunk(c) = event else {
            panic!("{event:?}")
        };
        assert!(c.data.len() <= 2 * STREAM_CHUNK, "{}", c.data.len());
        let (_, buf) = got.partial.get_or_insert((false, Vec::new()));
        buf.extend_from_slice(c.data.as_bytes());
        if c.last {
            got.messages
                .push(Message::Binary(got.partial.take().unwrap().1.into()));
        }
    }
    assert_eq!(got.messages[0].as_bytes(), &payload[..]);
    assert!(s.wants_read());
}

#[test]
fn text_split_inside_code_points_gives_valid_chunks() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, streaming(), now);
    let text = "héllo wörld — ünïcödé ✓ 𝄞 ".repeat(2000);
    let bytes = text.as_bytes();
    let mut wire = Vec::new();
    // Fragments of 7 bytes cut code points everywhere.
    let pieces: Vec<_> = bytes.chunks(7).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let op = if i == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        wire.extend(client_frame(i + 1 == pieces.len(), 0, op, piece));
    }
    let mut got = Collector::default();
    for piece in wire.chunks(5) {
        s.receive(now, piece);
        got.take(&mut s);
    }
    assert_eq!(got.messages, vec![Message::from(text.as_str())]);
}

#[test]
fn invalid_utf8_fails_where_it_arrives() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, streaming(), now);
    s.receive(
        now,
        &client_frame(false, 0, OpCode::Text, "fine ✓".as_bytes()),
    );
    let mut got = Collector::default();
    got.take(&mut s);
    assert_eq!(got.chunks, 1);
    assert!(got.error.is_none());
    s.receive(
        now,
        &client_frame(true, 0, OpCode::Continuation, b"\xff rest"),
    );
    got.take(&mut s);
    assert_eq!(
        got.error,
        Some(ConnectionError::Protocol(ProtocolError::InvalidUtf8))
    );
    let out = parse_frames(&drain_output(&mut s));
    assert_eq!(&out.last().unwrap().1[..2], &1007u16.to_be_bytes());

    // A code point cut off by the end of the message fails at the end.
    let mut s = Connection::new(Role::Server, streaming(), now);
    s.receive(now, &client_frame(true, 0, OpCode::Text, b"ok \xe2\x9c"));
    let mut got = Collector::default();
    got.take(&mut s);
    assert_eq!(
        got.error,
        Some(ConnectionError::Protocol(ProtocolError::InvalidUtf8))
    );
}

#[test]
fn pings_are_answered_between_fragments() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, streaming(), now);
    s.receive(now, &client_frame(false, 0, OpCode::Binary, &[1; 1000]));
    s.receive(now, &client_frame(true, 0, OpCode::Ping, b"mid"));
    let frames = parse_frames(&drain_output(&mut s));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0.opcode, OpCode::Pong);
    assert_eq!(frames[0].1, b"mid");
    s.receive(now, &client_frame(true, 0, OpCode::Continuation, &[2; 10]));
    let mut got = Collector::default();
    got.take(&mut s);
    assert_eq!(got.pings, vec![Bytes::from_static(b"mid")]);
    assert_eq!(got.messages.len(), 1);
    assert_eq!(got.messages[0].len(), 1010);
}

#[test]
fn a_close_in_the_middle_ends_the_stream() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, streaming(), now);
    s.receive(now, &client_frame(false, 0, OpCode::Binary, &[1; 100]));
    s.receive(
        now,
        &client_frame(true, 0, OpCode::Close, &1000u16.to_be_bytes()),
    );
    let events = drain_events(&mut s);
    assert!(matches!(&events[0], Event::Chunk(c) if c.first && !c.last));
    assert!(matches!(&events[1], Event::Close(_)));
}

#[test]
fn the_stream_limit_replaces_the_message_limit() {
    let now = std::time::Instant::now();
    let config = streaming()
        .with_max_message_size(1000)
        .with_max_frame_size(1000)
        .with_max_stream_size(100_000);
    let mut s = Connection::new(Role::Server, config, now);
    // Far over the message and frame limits: fine while streaming.
    s.receive(now, &client_frame(false, 0, OpCode::Binary, &[0; 60_000]));
    s.receive(
        now,
        &client_frame(true, 0, OpCode::Continuation, &[0; 40_000]),
    );
    let mut got = Collector::default();
    got.take(&mut s);
    assert_eq!(got.messages.len(), 1);
    assert_eq!(got.messages[0].len(), 100_000);
    // One byte over the stream limit fails before its payload is read.
    s.receive(now, &client_frame(false, 0, OpCode::Binary, &[0; 60_000]));
    s.receive(
        now,
        &client_frame(true, 0, OpCode::Continuation, &[0; 40_001])[..20],
    );
    got.take(&mut s);
    assert!(matches!(
        got.error,
        Some(ConnectionError::Protocol(ProtocolError::MessageTooBig {
            limit: 100_000
        }))
    ));
}

#[test]
fn skipping_a_message_drops_its_rest_and_keeps_the_next() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, streaming(), now);
    s.receive(now, &client_frame(false, 0, OpCode::Binary, &[1; 5000]));
    let Some(Event::Chunk(c)) = s.poll_event() else {
        panic!()
    };
    assert!(c.first && !c.last);
    s.receive(
        now,
        &client_frame(false, 0, OpCode::Continuation, &[2; 5000]),
    );
    s.skip_message();
    s.receive(
        now,
        &client_frame(true, 0, OpCode::Continuation, &[3; 5000]),
    );
    s.receive(now, &client_frame(true, 0, OpCode::Binary, b"next"));
    let mut got = Collector::default();
    got.take(&mut s);
    assert_eq!(
        got.messages,
        vec![Message::Binary(Bytes::from_static(b"next"))]
    );
    // Between messages, skipping does nothing.
    s.skip_message();
    s.receive(now, &client_frame(true, 0, OpCode::Binary, b"again"));
    got.take(&mut s);
    assert_eq!(got.messages.len(), 2);
}

#[test]
fn a_streamed_compressed_bomb_is_inflated_in_windows() {
    let server = streaming()
        .with_deflate(Some(DeflateConfig::default()))
        .with_max_message_size(1 << 20);
    let client = config().with_max_message_size(256 << 20);
    let mut pair = negotiated_pair(client, server);
    // 64 MiB of zeros compresses to about 64 KiB.
    let payload = vec![0u8; 64 << 20];
    pair.client.send_binary(payload).unwrap();
    let wire = drain_output(&mut pair.client);
    assert!(wire.len() < 256 << 10, "{}", wire.len());
    pair.server.receive(pair.now, &wire);
    let mut total = 0usize;
    let mut last = false;
    let mut events = 0;
    while !last {
        events += 1;
        assert!(events < 10_000);
        match pair.server.poll_event() {
            Some(Event::Chunk(c)) => {
                assert!(c.data.len() <= 2 * STREAM_CHUNK, "{}", c.data.len());
                assert!(c.data.as_bytes().iter().all(|&b| b == 0));
                total += c.data.len();
                last = c.last;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(total, 64 << 20);
}

#[test]
fn chunks_sent_arrive_as_one_message_and_whole_sends_wait() {
    for deflate in [false, true] {
        let d = deflate.then(DeflateConfig::default);
        let mut pair = negotiated_pair(config().with_deflate(d.clone()), config().with_deflate(d));
        let c = &mut pair.client;
        c.send_chunk(Message::from("first "), false).unwrap();
        c.send_text("queued behind").unwrap();
        c.send_ping(Bytes::from_static(b"p")).unwrap();
        assert!(c.is_sending_chunks());
        assert!(matches!(
            c.send_chunk(Message::Binary(Bytes::from_static(b"x")), false),
            Err(UsageError::ChunkKindMismatch("binary"))
        ));
        c.send_chunk(Message::from("second "), false).unwrap();
        c.send_chunk(Message::from("third"), true).unwrap();
        assert!(!c.is_sending_chunks());
        let big = pattern(300_000);
        c.send_chunk(Message::Binary(big[..100_000].to_vec().into()), false)
            .unwrap();
        c.send_chunk(Message::Binary(big[100_000..].to_vec().into()), true)
            .unwrap();
        let wire = drain_output(&mut pair.client);
        let frames = parse_frames(&wire);
        if deflate {
            // Only the first frame of a compressed message carries RSV1.
            assert_eq!(frames[0].0.rsv, 0b100);
            assert!(frames
                .iter()
                .filter(|(h, _)| h.opcode == OpCode::Continuation)
                .all(|(h, _)| h.rsv == 0));
        }
        pair.server.receive(pair.now, &wire);
        let mut got = Collector::default();
        got.take(&mut pair.server);
        assert!(got.error.is_none(), "{:?}", got.error);
        assert_eq!(got.pings.len(), 1);
        assert_eq!(
            got.messages,
            vec![
                Message::from("first second third"),
                Message::from("queued behind"),
                Message::Binary(big.into()),
            ]
        );
    }
}

#[test]
fn streaming_can_be_switched_per_connection() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, config(), now);
    s.receive(now, &client_frame(true, 0, OpCode::Binary, b"whole"));
    s.set_streaming(true);
    s.receive(now, &client_frame(true, 0, OpCode::Binary, b"chunked"));
    let events = drain_events(&mut s);
    assert!(matches!(&events[0], Event::Message(_)));
    assert!(matches!(&events[1], Event::Chunk(c) if c.first && c.last));
}

#[test]
fn a_compressed_stream_over_its_limit_reports_the_configured_limit() {
    // The inflater checks the room left after the chunks handed out; the
    // error must still name the limit, however far the application read
    // (found by the `stream` fuzz target: the reported limit followed the
    // read sizes).
    let d = Some(DeflateConfig::default());
    let server = streaming()
        .with_deflate(d.clone())
        .with_max_stream_size(100_000);
    let mut pair = negotiated_pair(config().with_deflate(d), server);
    pair.client.send_binary(vec![0u8; 200_000]).unwrap();
    let wire = drain_output(&mut pair.client);
    pair.server.receive(pair.now, &wire);
    let mut got = Collector::default();
    got.take(&mut pair.server);
    assert_eq!(
        got.error,
        Some(ConnectionError::Protocol(ProtocolError::MessageTooBig {
            limit: 100_000
        }))
    );
    let out = parse_frames(&drain_output(&mut pair.server));
    assert_eq!(&out.last().unwrap().1[..2], &1009u16.to_be_bytes());
}

#[test]
fn an_empty_last_chunk_keeps_the_compression_context_in_step() {
    // The last chunk adds no data after the previous chunk's sync flush.
    // With context takeover the peer's inflater must still end the message
    // on a block boundary, or the next message decodes as garbage (found
    // by the stream_props send property).
    let d = Some(
        DeflateConfig::default()
            .with_client_no_context_takeover(false)
            .with_threshold(0),
    );
    let mut pair = negotiated_pair(config().with_deflate(d.clone()), config().with_deflate(d));
    let c = &mut pair.client;
    c.send_chunk(Message::Binary(Bytes::from_static(b"data")), false)
        .unwrap();
    c.send_chunk(Message::Binary(Bytes::new()), true).unwrap();
    c.send_text("next").unwrap();
    c.send_chunk(Message::from("and "), false).unwrap();
    c.send_chunk(Message::from(""), true).unwrap();
    c.send_binary(Bytes::from_static(b"last")).unwrap();
    let wire = drain_output(&mut pair.client);
    pair.server.receive(pair.now, &wire);
    let mut got = Collector::default();
    got.take(&mut pair.server);
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(
        got.messages,
        vec![
            Message::Binary(Bytes::from_static(b"data")),
            Message::from("next"),
            Message::from("and "),
            Message::Binary(Bytes::from_static(b"last")),
        ]
    );
}
