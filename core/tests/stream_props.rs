//! Property tests for streaming: a server taking messages in chunks sees
//! the same messages (chunks joined) and the same other events as one
//! taking them whole, for any messages, any fragmentation, pings between
//! fragments, any split of the wire bytes and any polling pace, with and
//! without permessage-deflate; invalid UTF-8 fails alike, after at most the
//! valid prefix was handed out. And messages sent in chunks, with pings and
//! whole sends in between, reach a whole-message peer intact and in order.
//!
//! Payloads stay small but for a few past one chunk window, so the file
//! runs in a few seconds at opt-level 1.

mod common;
mod deflate_common;

use bytes::Bytes;
use common::*;
use deflate_common::handshake;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use wavecast_core::frame::OpCode;
use wavecast_core::{
    Chunk, Config, Connection, ConnectionError, DeflateConfig, Event, Message, PreparedMessage,
    ProtocolError, Role, Utf8Bytes, STREAM_CHUNK,
};

// ------------------------------------------------------------ strategies

/// Characters of every UTF-8 length, so fragments and reads cut them.
const ALPHABET: [char; 8] = ['a', ' ', 'é', 'ß', '€', '✓', '😀', '\u{10ffff}'];

/// A message as the peer means it: its kind and bytes, and for text that
/// is not UTF-8, where the first invalid byte sits.
#[derive(Clone, Debug)]
struct Msg {
    text: bool,
    bytes: Vec<u8>,
    /// Length of the longest valid UTF-8 prefix, for broken text.
    valid_up_to: Option<usize>,
}

fn text(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(prop::sample::select(ALPHABET.to_vec()), 0..max)
        .prop_map(|cs| String::from_iter(cs).into_bytes())
}

/// Text past one chunk window: a piece repeated.
fn long_text() -> impl Strategy<Value = Vec<u8>> {
    (text(30), STREAM_CHUNK..STREAM_CHUNK + 9000).prop_map(|(piece, len)| {
        let piece = if piece.is_empty() {
            b"a".to_vec()
        } else {
            piece
        };
        piece.repeat(len / piece.len() + 1)
    })
}

fn binary() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => vec(any::<u8>(), 0..300),
        1 => (any::<u8>(), STREAM_CHUNK..2 * STREAM_CHUNK + 100)
            .prop_map(|(seed, len)| (0..len).map(|i| (i * 7 + usize::from(seed)) as u8).collect()),
    ]
}

/// Sequences that are never valid UTF-8, wherever they are put.
fn breakage() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        vec![0xff],
        vec![0x80],
        vec![0xc0, 0x80],
        vec![0xed, 0xa0, 0x80],
        vec![0xf4, 0x90, 0x80, 0x80],
        vec![0xe2, 0x28, 0xa1],
    ])
}

fn msg() -> impl Strategy<Value = Msg> {
    let good = |text, bytes| Msg {
        text,
        bytes,
        valid_up_to: None,
    };
    prop_oneof![
        10 => text(200).prop_map(move |b| good(true, b)),
        1 => long_text().prop_map(move |b| good(true, b)),
        10 => binary().prop_map(move |b| good(false, b)),
        3 => (text(200), any::<Index>(), breakage(), any::<bool>()).prop_map(
            |(mut b, at, bad, truncated)| {
                // At a character boundary: the bytes before it stay valid.
                let s = String::from_utf8(b.clone()).expect("text() is UTF-8");
                let mut cut = at.index(b.len() + 1);
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                if truncated {
                    // A character cut off by the end of the message.
                    b.truncate(cut);
                    b.extend_from_slice("€".as_bytes().get(..2).expect("3 bytes"));
                } else {
                    b.splice(cut..cut, bad);
                }
                Msg {
                    text: true,
                    bytes: b,
                    valid_up_to: Some(cut),
                }
            }
        ),
    ]
}

/// How one message goes on the wire: cut points into fragments, and pings
/// (by fragment, payload) after some fragments.
#[derive(Clone, Debug)]
struct Shape {
    cuts: Vec<Index>,
    pings: Vec<(Index, Vec<u8>)>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        vec(any::<Index>(), 0..6),
        vec((any::<Index>(), vec(any::<u8>(), 0..20)), 0..3),
    )
        .prop_map(|(cuts, pings)| Shape { cuts, pings })
}

/// Read sizes, cycled; small ones cut headers, large ones hold several
/// frames.
fn reads() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        vec(1usize..16, 1..6),
        vec(1usize..3000, 1..6),
        vec(1usize..200_000, 1..4),
    ]
}

/// When the application polls: after each read, everything or (lazily)
/// this many events, cycled; 0 polls nothing.
fn pace() -> impl Strategy<Value = Option<Vec<usize>>> {
    prop::option::of(vec(0usize..4, 1..6))
}

fn deflate_config() -> impl Strategy<Value = DeflateConfig> {
    (any::<bool>(), any::<bool>(), 9u8..=15, 0u32..=9).prop_map(|(snct, cnct, bits, level)| {
        DeflateConfig::default()
            .with_server_no_context_takeover(snct)
            .with_client_no_context_takeover(cnct)
            .with_client_max_window_bits(bits)
            .with_threshold(0)
            .with_level(level)
    })
}

// ------------------------------------------------------------- the wire

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Cuts `payload` into fragments at `cuts` (each frame its own header;
/// the first carries the opcode and `rsv`) with pings after some of them.
fn frames(opcode: OpCode, rsv: u8, payload: &[u8], shape: &Shape, wire: &mut Vec<u8>) {
    let mut at: Vec<usize> = shape
        .cuts
        .iter()
        .map(|i| i.index(payload.len() + 1))
        .collect();
    at.sort_unstable();
    at.dedup();
    at.retain(|&c| c > 0 && c < payload.len());
    at.push(payload.len());
    let mut pings: Vec<(usize, &[u8])> = shape
        .pings
        .iter()
        .map(|(i, p)| (i.index(at.len()), &p[..]))
        .collect();
    pings.sort_by_key(|(i, _)| *i);
    let mut start = 0;
    for (n, &end) in at.iter().enumerate() {
        let (op, bits) = if n == 0 {
            (opcode, rsv)
        } else {
            (OpCode::Continuation, 0)
        };
        let last = n + 1 == at.len();
        wire.extend(frame(last, bits, op, &payload[start..end], Some(KEY)));
        start = end;
        if !last {
            for (_, p) in pings.iter().filter(|(i, _)| *i == n) {
                wire.extend(client_frame(true, 0, OpCode::Ping, p));
            }
        }
    }
}

/// The plain wire bytes of `msgs`.
fn plain_wire(msgs: &[(Msg, Shape)]) -> Vec<u8> {
    let mut wire = Vec::new();
    for (m, shape) in msgs {
        let op = if m.text { OpCode::Text } else { OpCode::Binary };
        frames(op, 0, &m.bytes, shape, &mut wire);
    }
    wire
}

/// The wire bytes of `msgs` compressed by `client` (its own context, as it
/// would send them), re-fragmented by each shape. Broken text is sent as
/// binary and relabelled, so it arrives compressed and invalid.
fn deflate_wire(client: &mut Connection, msgs: &[(Msg, Shape)]) -> Vec<u8> {
    let mut wire = Vec::new();
    for (m, shape) in msgs {
        client
            .send_binary(Bytes::from(m.bytes.clone()))
            .expect("open");
        let sent = parse_frames(&drain_output(client));
        let (head, payload) = match &sent[..] {
            [(h, p)] => (h, p),
            other => panic!("one frame expected, got {}", other.len()),
        };
        let op = if m.text { OpCode::Text } else { OpCode::Binary };
        frames(op, head.rsv, payload, shape, &mut wire);
    }
    wire
}

// ------------------------------------------------------------ receiving

/// What an application saw: whole messages (chunks joined), other events,
/// and the bytes of a message that was being streamed when input ended.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    events: Vec<Event>,
    partial: Option<Vec<u8>>,
}

impl Seen {
    fn event(&mut self, event: Event) {
        assert!(
            !matches!(self.events.last(), Some(Event::Error(_) | Event::Close(_))),
            "{event:?} after the end"
        );
        match event {
            Event::Chunk(Chunk { data, first, last }) => {
                assert_eq!(first, self.partial.is_none(), "first flag out of order");
                assert!(last || !data.is_empty(), "an empty middle chunk");
                if let Message::Text(t) = &data {
                    assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                }
                let buf = self.partial.get_or_insert_with(Vec::new);
                buf.extend_from_slice(data.as_bytes());
                if last {
                    let bytes = self.partial.take().expect("set above");
                    self.events.push(Event::Message(if data.is_text() {
                        Message::Text(Utf8Bytes::try_from(bytes).expect("checked chunks"))
                    } else {
                        Message::Binary(bytes.into())
                    }));
                }
            }
            other => self.events.push(other),
        }
    }

    /// Takes up to `max` events; returns the chunk bytes taken.
    fn poll(&mut self, conn: &mut Connection, max: usize) -> usize {
        let mut bytes = 0;
        for _ in 0..max {
            let Some(event) = conn.poll_event() else {
                break;
            };
            if let Event::Chunk(c) = &event {
                bytes += c.data.len();
            }
            self.event(event);
        }
        bytes
    }
}

/// Feeds `wire` in reads of `sizes` (cycled) as an adapter does (reading
/// only while the connection wants input, polling when it does not), then
/// the end of the stream; the application polls at `pace`.
fn run(conn: &mut Connection, wire: &[u8], sizes: &[usize], pace: &Option<Vec<usize>>) -> Seen {
    let now = std::time::Instant::now();
    let mut seen = Seen::default();
    let mut rest = wire;
    let mut turn = 0;
    while !rest.is_empty() {
        if !conn.wants_read() {
            // Behind: reading waits until the application takes a chunk.
            let taken = seen.poll(conn, 1);
            assert!(
                taken > 0 || conn.wants_read() || conn.is_closed() || conn.has_events(),
                "paused with nothing to take"
            );
            if conn.is_closed() {
                break;
            }
            continue;
        }
        let n = sizes[turn % sizes.len()].min(rest.len());
        conn.receive(now, &rest[..n]);
        rest = &rest[n..];
        match pace {
            None => {
                // While the connection still wants input, less than a
                // window of chunks waits unread (and no input: taking
                // them decodes nothing more).
                let open = conn.wants_read();
                let taken = seen.poll(conn, usize::MAX);
                assert!(!open || taken < STREAM_CHUNK, "{taken} B unread");
            }
            Some(p) => {
                seen.poll(conn, p[turn % p.len()]);
            }
        }
        turn += 1;
    }
    conn.receive_eof(now);
    seen.poll(conn, usize::MAX);
    assert!(conn.poll_event().is_none());
    seen
}

/// The same input taken whole, in one read.
fn whole(conn: &mut Connection, wire: &[u8]) -> Vec<Event> {
    let now = std::time::Instant::now();
    conn.receive(now, wire);
    conn.receive_eof(now);
    drain_events(conn)
}

/// Streaming and whole agree: the same events, and the message streamed
/// when a violation came is a prefix of its valid part.
fn check(msgs: &[(Msg, Shape)], streamed: &Seen, whole: &[Event]) -> Result<(), TestCaseError> {
    prop_assert_eq!(&streamed.events[..], whole);
    let broken = msgs.iter().find_map(|(m, _)| m.valid_up_to.map(|v| (m, v)));
    match (broken, whole.last()) {
        (Some((m, valid)), Some(Event::Error(e))) => {
            prop_assert_eq!(e, &ConnectionError::Protocol(ProtocolError::InvalidUtf8));
            let got = streamed.partial.as_deref().unwrap_or_default();
            prop_assert!(got.len() <= valid, "{} B of {} valid", got.len(), valid);
            prop_assert_eq!(got, &m.bytes[..got.len()]);
        }
        (None, Some(Event::Error(e))) => {
            prop_assert_eq!(e, &ConnectionError::Eof);
            prop_assert!(streamed.partial.is_none());
        }
        (_, last) => prop_assert!(false, "ended with {:?}", last),
    }
    // Everything before the first broken message arrived, in order.
    let data: Vec<&Message> = whole
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    let good = msgs.iter().take_while(|(m, _)| m.valid_up_to.is_none());
    prop_assert_eq!(data.len(), good.clone().count());
    for (got, (m, _)) in data.iter().zip(good) {
        prop_assert_eq!(got.is_text(), m.text);
        prop_assert_eq!(got.as_bytes(), &m.bytes[..]);
    }
    Ok(())
}

fn stream_config() -> Config {
    config().with_stream_messages(true)
}

proptest! {
    #[test]
    fn streaming_equals_whole_messages(
        msgs in vec((msg(), shape()), 0..6),
        sizes in reads(),
        pace in pace(),
    ) {
        let wire = plain_wire(&msgs);
        let now = std::time::Instant::now();
        let mut s = Connection::new(Role::Server, stream_config(), now);
        let streamed = run(&mut s, &wire, &sizes, &pace);
        let mut w = Connection::new(Role::Server, config(), now);
        check(&msgs, &streamed, &whole(&mut w, &wire))?;
    }

    #[test]
    fn streaming_equals_whole_messages_with_deflate(
        d in deflate_config(),
        msgs in vec((msg(), shape()), 0..5),
        sizes in reads(),
        pace in pace(),
    ) {
        let client = config().with_deflate(Some(d.clone()));
        let server = stream_config().with_deflate(Some(d));
        let (c, s) = handshake(&client, &server);
        prop_assert!(s.deflate.is_some());
        let now = std::time::Instant::now();
        let mut sender = Connection::with_negotiated(Role::Client, client, &c, now);
        let wire = deflate_wire(&mut sender, &msgs);
        let mut streaming = Connection::with_negotiated(Role::Server, server.clone(), &s, now);
        let streamed = run(&mut streaming, &wire, &sizes, &pace);
        let mut w = Connection::with_negotiated(
            Role::Server,
            server.with_stream_messages(false),
            &s,
            now,
        );
        check(&msgs, &streamed, &whole(&mut w, &wire))?;
    }
}

// -------------------------------------------------------------- sending

/// What the sending application does.
#[derive(Clone, Debug)]
enum Op {
    /// A message in `send_chunk` pieces cut at these points, with whole
    /// sends (plain or prepared) and pings between the pieces.
    Chunked {
        msg: Msg,
        cuts: Vec<Index>,
        between: Vec<(Index, Between)>,
    },
    Whole(Msg, bool),
    Ping(Vec<u8>),
}

#[derive(Clone, Debug)]
enum Between {
    Whole(Msg, bool),
    Ping(Vec<u8>),
}

fn good_msg() -> impl Strategy<Value = Msg> {
    msg().prop_map(|mut m| {
        if let Some(valid) = m.valid_up_to {
            m.bytes.truncate(valid);
            m.valid_up_to = None;
        }
        m
    })
}

fn ping() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..30)
}

fn send_op() -> impl Strategy<Value = Op> {
    let between = prop_oneof![
        (good_msg(), any::<bool>()).prop_map(|(m, p)| Between::Whole(m, p)),
        ping().prop_map(Between::Ping),
    ];
    prop_oneof![
        3 => (good_msg(), vec(any::<Index>(), 0..6), vec((any::<Index>(), between), 0..4))
            .prop_map(|(msg, cuts, between)| Op::Chunked { msg, cuts, between }),
        1 => (good_msg(), any::<bool>()).prop_map(|(m, p)| Op::Whole(m, p)),
        1 => ping().prop_map(Op::Ping),
    ]
}

fn message(m: &Msg) -> Message {
    if m.text {
        Message::Text(Utf8Bytes::try_from(m.bytes.clone()).expect("good text"))
    } else {
        Message::Binary(m.bytes.clone().into())
    }
}

fn send_whole(c: &mut Connection, m: &Msg, prepared: bool) {
    if prepared {
        c.send_prepared(&PreparedMessage::new(message(m)))
            .expect("open");
    } else {
        c.send(message(m)).expect("open");
    }
}

/// Sends `ops` from `c`; returns the events a peer must see, in order.
fn send_all(c: &mut Connection, ops: &[Op]) -> Vec<Event> {
    let mut expect = Vec::new();
    for op in ops {
        match op {
            Op::Whole(m, prepared) => {
                send_whole(c, m, *prepared);
                expect.push(Event::Message(message(m)));
            }
            Op::Ping(p) => {
                c.send_ping(p.clone()).expect("open");
                expect.push(Event::Ping(p.clone().into()));
            }
            Op::Chunked { msg, cuts, between } => {
                let s = msg
                    .text
                    .then(|| String::from_utf8(msg.bytes.clone()).expect("good"));
                let mut at: Vec<usize> = cuts
                    .iter()
                    .map(|i| {
                        let mut cut = i.index(msg.bytes.len() + 1);
                        while s.as_ref().is_some_and(|s| !s.is_char_boundary(cut)) {
                            cut -= 1;
                        }
                        cut
                    })
                    .collect();
                at.sort_unstable();
                at.push(msg.bytes.len());
                let mut deferred = Vec::new();
                let mut start = 0;
                for (n, &end) in at.iter().enumerate() {
                    let piece = msg.bytes[start..end].to_vec();
                    let data = if msg.text {
                        Message::Text(Utf8Bytes::try_from(piece).expect("cut on a boundary"))
                    } else {
                        Message::Binary(piece.into())
                    };
                    let last = n + 1 == at.len();
                    c.send_chunk(data, last).expect("open");
                    start = end;
                    if last {
                        break;
                    }
                    assert!(c.is_sending_chunks());
                    for (_, b) in between.iter().filter(|(i, _)| i.index(at.len()) == n) {
                        match b {
                            // Waits for the chunked message's last chunk.
                            Between::Whole(m, prepared) => {
                                send_whole(c, m, *prepared);
                                deferred.push(Event::Message(message(m)));
                            }
                            // Goes out at once, between the fragments.
                            Between::Ping(p) => {
                                c.send_ping(p.clone()).expect("open");
                                expect.push(Event::Ping(p.clone().into()));
                            }
                        }
                    }
                }
                assert!(!c.is_sending_chunks());
                expect.push(Event::Message(message(msg)));
                expect.append(&mut deferred);
            }
        }
    }
    expect
}

proptest! {
    #[test]
    fn chunked_sends_arrive_whole_and_in_order(
        d in prop::option::of(deflate_config()),
        fragment in prop::option::of(1usize..500),
        ops in vec(send_op(), 0..6),
        sizes in reads(),
    ) {
        let client = config().with_deflate(d.clone()).with_fragment_size(fragment);
        let server = config().with_deflate(d);
        let (c, s) = handshake(&client, &server);
        let now = std::time::Instant::now();
        let mut sender = Connection::with_negotiated(Role::Client, client, &c, now);
        let mut peer = Connection::with_negotiated(Role::Server, server, &s, now);
        let expect = send_all(&mut sender, &ops);
        let wire = drain_output(&mut sender);
        // Only the first frame of a message carries RSV1.
        for (h, _) in parse_frames(&wire) {
            prop_assert!(h.opcode != OpCode::Continuation || h.rsv == 0);
        }
        let mut got = Vec::new();
        let mut rest = &wire[..];
        let mut turn = 0;
        while !rest.is_empty() {
            let n = sizes[turn % sizes.len()].min(rest.len());
            peer.receive(now, &rest[..n]);
            rest = &rest[n..];
            got.extend(drain_events(&mut peer));
            turn += 1;
        }
        prop_assert_eq!(got, expect);
    }
}
