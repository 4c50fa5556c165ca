//! Property tests for the protocol core: frame headers round trip, masking
//! composes, any split of the input gives the same events and the same
//! output (also when large payloads are read straight into the message
//! buffer), two cores exchange any messages intact, no input panics or
//! exceeds the configured limits, and no valid request head is refused
//! before it completes.
//!
//! Case counts follow `PROPTEST_CASES` (default 256); payloads stay small so
//! the whole file runs in a few seconds at opt-level 1.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use wavecast_core::frame::{apply_mask, FrameHeader, OpCode, MAX_HEADER_LEN};
use wavecast_core::BufferPool;
use wavecast_core::{
    CloseCode, CloseFrame, Config, Connection, ConnectionError, Event, Message, Outcome,
    ProtocolError, Role, SeedSource, Utf8Bytes,
};

// ------------------------------------------------------------ strategies

/// Payload lengths from all three encodings, with their boundaries.
fn payload_len() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=125,
        126u64..=0xffff,
        0x1_0000u64..=(u64::MAX >> 1),
        prop::sample::select(vec![0, 125, 126, 0xffff, 0x1_0000, u64::MAX >> 1]),
    ]
}

fn header() -> impl Strategy<Value = FrameHeader> {
    (
        any::<bool>(),
        0u8..8,
        0u8..16,
        any::<Option<[u8; 4]>>(),
        payload_len(),
    )
        .prop_map(|(fin, rsv, op, mask, payload_len)| FrameHeader {
            fin,
            rsv,
            opcode: OpCode::from_bits(op),
            mask,
            payload_len,
        })
}

/// Bytes shaped like a header often enough to reach every decode branch.
fn header_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..24),
        (
            any::<u8>(),
            any::<bool>(),
            prop_oneof![Just(126u8), Just(127u8), 0u8..126],
            vec(prop_oneof![Just(0u8), Just(0xff), any::<u8>()], 0..22),
        )
            .prop_map(|(b0, masked, len7, rest)| {
                let mut v = vec![b0, (u8::from(masked) << 7) | len7];
                v.extend(rest);
                v
            }),
    ]
}

/// Arbitrary Unicode text of up to `max` characters.
fn text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

/// Binary payloads, mostly small, sometimes past the 16-bit length and the
/// output coalescing threshold.
fn binary() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..200),
        2 => vec(any::<u8>(), 126..3000),
        1 => vec(any::<u8>(), 60_000..65_000),
        1 => vec(any::<u8>(), 65_536..70_000),
    ]
}

/// Text past the direct-read threshold: a random piece repeated.
fn large_text() -> impl Strategy<Value = String> {
    (text(40), 65_536usize..70_000).prop_map(|(piece, len)| {
        let piece = if piece.is_empty() {
            "a".to_owned()
        } else {
            piece
        };
        piece.repeat(len / piece.len() + 1)
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        12 => text(300).prop_map(Message::from),
        12 => binary().prop_map(Message::from),
        1 => large_text().prop_map(Message::from),
    ]
}

/// Splits `data` into chunks.
#[derive(Clone, Debug)]
enum Split {
    /// One byte per chunk.
    Bytewise,
    /// At these points (duplicates give empty chunks).
    Cuts(Vec<Index>),
    /// Chunk sizes, cycled.
    Sizes(Vec<usize>),
}

fn split() -> impl Strategy<Value = Split> {
    prop_oneof![
        Just(Split::Bytewise),
        vec(any::<Index>(), 0..40).prop_map(Split::Cuts),
        vec(1usize..80, 1..8).prop_map(Split::Sizes),
    ]
}

fn chunks<'a>(data: &'a [u8], how: &Split) -> Vec<&'a [u8]> {
    match how {
        Split::Bytewise => data.chunks(1).collect(),
        Split::Cuts(cuts) => {
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            at.sort_unstable();
            let mut out = Vec::new();
            let mut start = 0;
            for end in at.into_iter().chain([data.len()]) {
                out.push(&data[start..end]);
                start = end;
            }
            out
        }
        Split::Sizes(sizes) => {
            let mut out = Vec::new();
            let mut rest = data;
            for &n in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (a, b) = rest.split_at(n.min(rest.len()));
                out.push(a);
                rest = b;
            }
            out
        }
    }
}

fn sendable_code() -> impl Strategy<Value = CloseCode> {
    prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999].prop_map(CloseCode)
}

/// A close reason that fits a control frame (at most 123 bytes).
fn reason() -> impl Strategy<Value = String> {
    text(60).prop_map(|s| {
        let mut end = s.len().min(123);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    })
}

// ------------------------------------------------- 1. header round trip

proptest! {
    #[test]
    fn header_encode_decode_round_trip(h in header(), trailing in vec(any::<u8>(), 0..32)) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut buf);
        prop_assert_eq!(n, h.encoded_len());
        let mut appended = Vec::new();
        h.encode_to(&mut appended);
        prop_assert_eq!(&appended[..], &buf[..n]);
        for cut in 0..n {
            prop_assert_eq!(FrameHeader::decode(&buf[..cut]), Ok(None));
        }
        let mut bytes = buf[..n].to_vec();
        bytes.extend_from_slice(&trailing);
        prop_assert_eq!(FrameHeader::decode(&bytes), Ok(Some((h, n))));
    }

    #[test]
    fn header_decode_arbitrary_bytes(bytes in header_like_bytes()) {
        let whole = FrameHeader::decode(&bytes);
        match &whole {
            Ok(Some((h, n))) => {
                let mut buf = [0u8; MAX_HEADER_LEN];
                let len = h.encode(&mut buf);
                prop_assert_eq!(len, *n);
                prop_assert_eq!(&buf[..len], &bytes[..*n]);
            }
            Ok(None) => prop_assert!(bytes.len() < MAX_HEADER_LEN),
            Err(e) => prop_assert!(matches!(
                e,
                ProtocolError::NonMinimalLength | ProtocolError::LengthTooLarge
            )),
        }
        // A prefix either needs more bytes or already decides the same way,
        // which is what lets the connection decode headers split anywhere.
        for cut in 0..bytes.len() {
            let part = FrameHeader::decode(&bytes[..cut]);
            prop_assert!(part == Ok(None) || part == whole, "prefix {}: {:?}", cut, part);
            if let Ok(Some((_, n))) = whole {
                if cut >= n {
                    prop_assert_eq!(&part, &whole);
                }
            }
        }
    }
}

// ------------------------------------------------------------ 2. masking

proptest! {
    #[test]
    fn mask_in_pieces_equals_one_shot(
        data in vec(any::<u8>(), 0..200),
        key in any::<[u8; 4]>(),
        start in 0usize..usize::MAX / 2,
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let reference: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[(start + i) % 4])
            .collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, start);
        prop_assert_eq!(&whole, &reference);

        let mut pieces = data.clone();
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        at.sort_unstable();
        let mut from = 0;
        for to in at.into_iter().chain([data.len()]) {
            apply_mask(&mut pieces[from..to], key, start + from);
            from = to;
        }
        prop_assert_eq!(&pieces, &reference);

        apply_mask(&mut whole, key, start);
        prop_assert_eq!(&whole, &data);
    }
}

// ------------------------------------------------- 3. chunking invariance

#[derive(Clone, Debug)]
enum Control {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn control() -> impl Strategy<Value = Control> {
    prop_oneof![
        vec(any::<u8>(), 0..=125).prop_map(Control::Ping),
        vec(any::<u8>(), 0..=125).prop_map(Control::Pong),
    ]
}

/// A data message, its fragmentation, and control frames between fragments.
#[derive(Clone, Debug)]
struct Data {
    message: Message,
    cuts: Vec<Index>,
    controls: Vec<(Index, Control)>,
}

#[derive(Clone, Debug)]
enum Item {
    Data(Data),
    Control(Control),
    /// Many pings in a row, as a peer that pings without reading sends them.
    PingBurst(Vec<Vec<u8>>),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => (message(), vec(any::<Index>(), 0..6), vec((any::<Index>(), control()), 0..3))
            .prop_map(|(message, cuts, controls)| Item::Data(Data { message, cuts, controls })),
        1 => control().prop_map(Item::Control),
        1 => vec(vec(any::<u8>(), 0..8), 0..40).prop_map(Item::PingBurst),
    ]
}

/// A frame that breaks the protocol, and the error it must produce.
#[derive(Clone, Debug)]
enum Invalid {
    ReservedOpcode(u8),
    ReservedBits(u8),
    Unmasked,
    LongControl,
    FragmentedControl,
    StrayContinuation,
    NewMessageMidway,
    BadUtf8 {
        prefix: String,
        bad: Vec<u8>,
        cut: Index,
    },
    /// Invalid UTF-8 inside a payload large enough to be read directly.
    BadUtf8Large {
        bad: Vec<u8>,
        at: Index,
    },
    TruncatedUtf8(String),
    OneByteClose,
    BadCloseCode(u16),
    BadCloseReason,
    NonMinimal16(u8),
    NonMinimal64(u16),
    LengthMsb(u64),
}

fn invalid() -> impl Strategy<Value = Invalid> {
    let bad_utf8_large = prop::sample::select(vec![vec![0xff], vec![0xed, 0xa0, 0x80]]);
    let bad_utf8 = prop::sample::select(vec![
        vec![0xff],
        vec![0x80],
        vec![0xc0, 0x80],
        vec![0xed, 0xa0, 0x80],
        vec![0xf4, 0x90, 0x80, 0x80],
        vec![0xe2, 0x82, b'x'],
    ]);
    prop_oneof![
        prop_oneof![3u8..=7, 0xbu8..=0xf].prop_map(Invalid::ReservedOpcode),
        (1u8..8).prop_map(Invalid::ReservedBits),
        Just(Invalid::Unmasked),
        Just(Invalid::LongControl),
        Just(Invalid::FragmentedControl),
        Just(Invalid::StrayContinuation),
        Just(Invalid::NewMessageMidway),
        (text(20), bad_utf8, any::<Index>()).prop_map(|(prefix, bad, cut)| Invalid::BadUtf8 {
            prefix,
            bad,
            cut
        }),
        (bad_utf8_large, any::<Index>()).prop_map(|(bad, at)| Invalid::BadUtf8Large { bad, at }),
        text(20).prop_map(Invalid::TruncatedUtf8),
        Just(Invalid::OneByteClose),
        any::<u16>()
            .prop_map(|c| if CloseCode(c).is_sendable() { 1005 } else { c })
            .prop_map(Invalid::BadCloseCode),
        Just(Invalid::BadCloseReason),
        (0u8..126).prop_map(Invalid::NonMinimal16),
        any::<u16>().prop_map(Invalid::NonMinimal64),
        ((1u64 << 63)..=u64::MAX).prop_map(Invalid::LengthMsb),
    ]
}

#[derive(Clone, Debug)]
enum Tail {
    Nothing,
    /// A close frame with this payload (`None`: empty), then ignored bytes.
    Close(Option<(CloseCode, String)>, Vec<u8>),
    /// A violation, then ignored bytes.
    Invalid(Invalid, Vec<u8>),
}

fn tail() -> impl Strategy<Value = Tail> {
    prop_oneof![
        Just(Tail::Nothing),
        (
            prop::option::of((sendable_code(), reason())),
            vec(any::<u8>(), 0..64)
        )
            .prop_map(|(c, junk)| Tail::Close(c, junk)),
        (invalid(), vec(any::<u8>(), 0..64)).prop_map(|(i, junk)| Tail::Invalid(i, junk)),
    ]
}

/// A client-to-server byte stream and what a server must make of it.
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    events: Vec<Event>,
    pings: Vec<Vec<u8>>,
    key_seed: u32,
    frames: u32,
}

impl Stream {
    fn key(&mut self) -> [u8; 4] {
        self.frames += 1;
        self.key_seed
            .wrapping_add(self.frames.wrapping_mul(0x9e37_79b9))
            .to_be_bytes()
    }

    fn frame(&mut self, fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) {
        let key = self.key();
        self.bytes
            .extend(frame(fin, rsv, opcode, payload, Some(key)));
    }

    fn control(&mut self, c: &Control) {
        match c {
            Control::Ping(p) => {
                self.frame(true, 0, OpCode::Ping, p);
                self.events.push(Event::Ping(Bytes::from(p.clone())));
                self.pings.push(p.clone());
            }
            Control::Pong(p) => {
                self.frame(true, 0, OpCode::Pong, p);
                self.events.push(Event::Pong(Bytes::from(p.clone())));
            }
        }
    }

    fn data(&mut self, d: &Data) {
        let payload = d.message.as_bytes();
        let mut at: Vec<usize> = d.cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
        at.sort_unstable();
        at.push(payload.len());
        let fragments = at.len();
        let mut start = 0;
        for (k, &end) in at.iter().enumerate() {
            let opcode = match (k, d.message.is_text()) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            let fin = k + 1 == fragments;
            self.frame(fin, 0, opcode, &payload[start..end]);
            start = end;
            if fin {
                self.events.push(Event::Message(d.message.clone()));
            }
            for (gap, c) in &d.controls {
                if gap.index(fragments) == k {
                    self.control(c);
                }
            }
        }
    }

    /// Appends the violation and returns the error it must produce.
    fn invalid(&mut self, inv: &Invalid) -> ProtocolError {
        let key = self.key();
        match inv {
            Invalid::ReservedOpcode(op) => {
                self.frame(true, 0, OpCode::Reserved(*op), b"x");
                ProtocolError::ReservedOpcode(*op)
            }
            Invalid::ReservedBits(rsv) => {
                self.frame(true, *rsv, OpCode::Text, b"x");
                ProtocolError::ReservedBits(*rsv)
            }
            Invalid::Unmasked => {
                self.bytes
                    .extend(frame(true, 0, OpCode::Binary, b"abc", None));
                ProtocolError::UnmaskedFrame
            }
            Invalid::LongControl => {
                self.frame(true, 0, OpCode::Ping, &[7; 126]);
                ProtocolError::ControlFrameTooLong
            }
            Invalid::FragmentedControl => {
                self.frame(false, 0, OpCode::Pong, b"p");
                ProtocolError::FragmentedControlFrame
            }
            Invalid::StrayContinuation => {
                self.frame(true, 0, OpCode::Continuation, b"c");
                ProtocolError::UnexpectedContinuation
            }
            Invalid::NewMessageMidway => {
                self.frame(false, 0, OpCode::Binary, b"first");
                self.frame(true, 0, OpCode::Text, b"second");
                ProtocolError::ExpectedContinuation
            }
            Invalid::BadUtf8 { prefix, bad, cut } => {
                let mut payload = prefix.as_bytes().to_vec();
                payload.extend_from_slice(bad);
                payload.extend_from_slice(b"tail");
                let cut = cut.index(payload.len() + 1);
                self.frame(false, 0, OpCode::Text, &payload[..cut]);
                self.frame(true, 0, OpCode::Continuation, &payload[cut..]);
                ProtocolError::InvalidUtf8
            }
            Invalid::BadUtf8Large { bad, at } => {
                let mut payload = vec![b'a'; 70_000];
                let at = at.index(payload.len());
                payload.splice(at..at, bad.iter().copied());
                self.frame(true, 0, OpCode::Text, &payload);
                ProtocolError::InvalidUtf8
            }
            Invalid::TruncatedUtf8(prefix) => {
                let mut payload = prefix.as_bytes().to_vec();
                payload.extend_from_slice(&"€".as_bytes()[..2]);
                self.frame(true, 0, OpCode::Text, &payload);
                ProtocolError::InvalidUtf8
            }
            Invalid::OneByteClose => {
                self.frame(true, 0, OpCode::Close, &[0x03]);
                ProtocolError::InvalidClosePayload
            }
            Invalid::BadCloseCode(code) => {
                self.frame(true, 0, OpCode::Close, &code.to_be_bytes());
                ProtocolError::InvalidCloseCode(*code)
            }
            Invalid::BadCloseReason => {
                self.frame(true, 0, OpCode::Close, &[0x03, 0xe8, b'o', 0xff]);
                ProtocolError::InvalidUtf8
            }
            Invalid::NonMinimal16(len) => {
                self.bytes.extend([0x82, 0x80 | 126, 0, *len]);
                self.bytes.extend(key);
                ProtocolError::NonMinimalLength
            }
            Invalid::NonMinimal64(len) => {
                self.bytes.extend([0x82, 0x80 | 127]);
                self.bytes.extend(u64::from(*len).to_be_bytes());
                self.bytes.extend(key);
                ProtocolError::NonMinimalLength
            }
            Invalid::LengthMsb(len) => {
                self.bytes.extend([0x82, 0x80 | 127]);
                self.bytes.extend(len.to_be_bytes());
                self.bytes.extend(key);
                ProtocolError::LengthTooLarge
            }
        }
    }
}

/// What a server must write back for a stream.
#[derive(Debug)]
enum Answer {
    /// Pongs only: pings answered in order; past a burst only the latest.
    Pongs,
    /// Only the echo of the peer's close, with this payload (the pending
    /// pongs are dropped once a close is sent).
    Echo(Vec<u8>),
    /// Only a close frame with this code.
    Violation(CloseCode),
}

fn check_answer(
    sent: &[(FrameHeader, Vec<u8>)],
    answer: &Answer,
    pings: &[Vec<u8>],
) -> Result<(), TestCaseError> {
    for (h, _) in sent {
        prop_assert!(h.fin && h.rsv == 0 && h.mask.is_none(), "{:?}", h);
    }
    match answer {
        Answer::Pongs => {
            prop_assert!(sent.iter().all(|(h, _)| h.opcode == OpCode::Pong));
            let pongs: Vec<&Vec<u8>> = sent.iter().map(|(_, p)| p).collect();
            prop_assert!(pongs.len() <= pings.len());
            prop_assert_eq!(
                pongs.last().copied(),
                pings.last(),
                "the latest ping is answered"
            );
            if let Some((_, first)) = pongs.split_last() {
                let first_pings: Vec<&Vec<u8>> = pings.iter().take(first.len()).collect();
                prop_assert_eq!(first, &first_pings[..], "pings are answered in order");
            }
        }
        Answer::Echo(payload) => {
            prop_assert_eq!(sent.len(), 1, "{:?}", sent);
            prop_assert_eq!(sent[0].0.opcode, OpCode::Close);
            prop_assert_eq!(&sent[0].1, payload);
        }
        Answer::Violation(code) => {
            prop_assert_eq!(sent.len(), 1, "{:?}", sent);
            prop_assert_eq!(sent[0].0.opcode, OpCode::Close);
            prop_assert!(sent[0].1.len() >= 2);
            prop_assert_eq!(u16::from_be_bytes([sent[0].1[0], sent[0].1[1]]), code.0);
            prop_assert!(CloseFrame::parse(&sent[0].1).is_ok());
        }
    }
    Ok(())
}

fn server() -> (Connection, Instant) {
    let now = Instant::now();
    (Connection::new(Role::Server, config(), now), now)
}

/// Feeds `chunks`, then reads every event, then drains the output.
fn feed_then_poll(chunks: &[&[u8]]) -> (Vec<Event>, Vec<u8>) {
    let (mut s, now) = server();
    for c in chunks {
        s.receive(now, c);
    }
    let events = drain_events(&mut s);
    (events, drain_output(&mut s))
}

/// Feeds `chunks`, reading every event after each one; drains the output at
/// the end.
fn feed_polling(chunks: &[&[u8]]) -> (Vec<Event>, Vec<u8>) {
    let (mut s, now) = server();
    let mut events = Vec::new();
    for c in chunks {
        s.receive(now, c);
        events.extend(drain_events(&mut s));
    }
    events.extend(drain_events(&mut s));
    (events, drain_output(&mut s))
}

/// Feeds `chunks` the way a driver does: each read fills what
/// [`Connection::read_target`] lends (a small scratch buffer, or the message
/// buffer in place inside a large payload) as far as the chunk goes. Before
/// each chunk an abandoned read (one that was pending) leaves junk that must
/// be discarded. The pool starts with stale buffers and gets copies of the
/// messages read.
fn feed_direct(chunks: &[&[u8]]) -> (Vec<Event>, Vec<u8>) {
    let (mut s, now) = server();
    let mut pool = BufferPool::new();
    let mut scratch = vec![0; 4096];
    pool.recycle(Bytes::from(vec![0xa5; 70_000]));
    pool.recycle(Bytes::from(vec![0x5a; 120_000]));
    let mut events = Vec::new();
    for chunk in chunks {
        s.read_target(&mut scratch, &mut pool).buf().fill(0xff);
        let mut rest = *chunk;
        while !rest.is_empty() {
            let mut target = s.read_target(&mut scratch, &mut pool);
            let buf = target.buf();
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            target.commit(now, n);
            rest = &rest[n..];
        }
        for event in drain_events(&mut s) {
            if let Event::Message(m) = &event {
                pool.recycle(Bytes::copy_from_slice(m.as_bytes()));
            }
            events.push(event);
        }
    }
    events.extend(drain_events(&mut s));
    (events, drain_output(&mut s))
}

proptest! {
    #[test]
    fn chunking_invariance(
        items in vec(item(), 0..6),
        tail in tail(),
        key_seed in any::<u32>(),
        how in split(),
    ) {
        let mut stream = Stream { key_seed, ..Stream::default() };
        for it in &items {
            match it {
                Item::Data(d) => stream.data(d),
                Item::Control(c) => stream.control(c),
                Item::PingBurst(pings) => {
                    for p in pings {
                        stream.control(&Control::Ping(p.clone()));
                    }
                }
            }
        }
        let mut expected = stream.events.clone();
        let answer = match &tail {
            Tail::Nothing => Answer::Pongs,
            Tail::Close(payload, junk) => {
                let (close, echo) = match payload {
                    Some((code, reason)) => {
                        let f = CloseFrame::new(*code, reason.as_str()).expect("sendable code, short reason");
                        (f, code.0.to_be_bytes().to_vec())
                    }
                    None => (
                        CloseFrame { code: CloseCode::NO_STATUS, reason: Utf8Bytes::new() },
                        Vec::new(),
                    ),
                };
                stream.frame(true, 0, OpCode::Close, &close.encode());
                stream.bytes.extend_from_slice(junk);
                expected.push(Event::Close(close));
                Answer::Echo(echo)
            }
            Tail::Invalid(inv, junk) => {
                let error = stream.invalid(inv);
                stream.bytes.extend_from_slice(junk);
                let code = error.close_code();
                expected.push(Event::Error(ConnectionError::Protocol(error)));
                Answer::Violation(code)
            }
        };

        let (events, out) = feed_then_poll(&[&stream.bytes]);
        prop_assert_eq!(&events, &expected);
        check_answer(&parse_frames(&out), &answer, &stream.pings)?;

        let pieces = chunks(&stream.bytes, &how);
        let (chunked_events, chunked_out) = feed_then_poll(&pieces);
        prop_assert_eq!(&chunked_events, &events);
        prop_assert_eq!(&chunked_out, &out);

        let (polled_events, polled_out) = feed_polling(&pieces);
        prop_assert_eq!(&polled_events, &events);
        prop_assert_eq!(&polled_out, &out);

        let (direct_events, direct_out) = feed_direct(&pieces);
        prop_assert_eq!(&direct_events, &events);
        prop_assert_eq!(&direct_out, &out);
    }
}

// ------------------------------------------------------ 4. pair exchange

#[derive(Clone, Debug)]
enum Op {
    Send { from_client: bool, message: Message },
    Ping { from_client: bool, payload: Vec<u8> },
    Pump,
    Poll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), message()).prop_map(|(from_client, message)| Op::Send { from_client, message }),
        2 => (any::<bool>(), vec(any::<u8>(), 0..=125)).prop_map(|(from_client, payload)| Op::Ping { from_client, payload }),
        2 => Just(Op::Pump),
        1 => Just(Op::Poll),
    ]
}

fn fragment_size() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        Just(None),
        (1usize..16).prop_map(Some),
        (16usize..3000).prop_map(Some)
    ]
}

/// What one side has seen so far.
#[derive(Default, Debug)]
struct Seen {
    messages: Vec<Message>,
    pings: Vec<Bytes>,
    pongs: Vec<Bytes>,
    closes: Vec<CloseFrame>,
    errors: Vec<ConnectionError>,
}

impl Seen {
    fn take(&mut self, conn: &mut Connection) -> bool {
        let mut any = false;
        while let Some(e) = conn.poll_event() {
            any = true;
            match e {
                Event::Message(m) => self.messages.push(m),
                Event::Ping(p) => self.pings.push(p),
                Event::Pong(p) => self.pongs.push(p),
                Event::Close(f) => self.closes.push(f),
                Event::Error(e) => self.errors.push(e),
                other => panic!("unexpected event {other:?}"),
            }
        }
        any
    }
}

fn is_subsequence(small: &[Bytes], big: &[Bytes]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

proptest! {
    #[test]
    fn pair_exchange(
        client_frag in fragment_size(),
        server_frag in fragment_size(),
        client_seed in any::<u64>(),
        ops in vec(op(), 0..24),
        client_closes in any::<bool>(),
        code in sendable_code(),
        reason in reason(),
    ) {
        let client_cfg = Config::default()
            .with_seed(SeedSource::Fixed(client_seed))
            .with_fragment_size(client_frag);
        let server_cfg = config().with_fragment_size(server_frag);
        // A 70,000-byte message in 1-byte fragments counts FRAGMENT_COST
        // per fragment against the message limit (1.2 MB in all), which is
        // not what this property is about: give it room.
        let (client_cfg, server_cfg) = (
            client_cfg.with_max_message_size(4 << 20),
            server_cfg.with_max_message_size(4 << 20),
        );
        let mut p = Pair::with_configs(client_cfg, server_cfg);
        let (mut at_client, mut at_server) = (Seen::default(), Seen::default());
        let (mut from_client, mut from_server) = (Vec::new(), Vec::new());
        let (mut pings_client, mut pings_server) = (Vec::new(), Vec::new());
        for op in ops {
            match op {
                Op::Send { from_client: true, message } => {
                    p.client.send(message.clone()).expect("client is open");
                    from_client.push(message);
                }
                Op::Send { from_client: false, message } => {
                    p.server.send(message.clone()).expect("server is open");
                    from_server.push(message);
                }
                Op::Ping { from_client: true, payload } => {
                    p.client.send_ping(payload.clone()).expect("client is open");
                    pings_client.push(Bytes::from(payload));
                }
                Op::Ping { from_client: false, payload } => {
                    p.server.send_ping(payload.clone()).expect("server is open");
                    pings_server.push(Bytes::from(payload));
                }
                Op::Pump => p.pump(),
                Op::Poll => {
                    at_client.take(&mut p.client);
                    at_server.take(&mut p.server);
                }
            }
        }
        p.pump();
        at_client.take(&mut p.client);
        at_server.take(&mut p.server);
        p.pump();

        prop_assert_eq!(&at_server.messages, &from_client);
        prop_assert_eq!(&at_client.messages, &from_server);
        prop_assert_eq!(&at_server.pings, &pings_client);
        prop_assert_eq!(&at_client.pings, &pings_server);
        // Only the latest unanswered ping gets a pong (§5.5.3), but the last
        // one always does.
        prop_assert!(is_subsequence(&at_client.pongs, &pings_client));
        prop_assert!(is_subsequence(&at_server.pongs, &pings_server));
        prop_assert_eq!(at_client.pongs.last(), pings_client.last());
        prop_assert_eq!(at_server.pongs.last(), pings_server.last());

        let sent = CloseFrame::new(code, reason.as_str()).expect("sendable code, short reason");
        let echo = CloseFrame::new(code, "").expect("sendable code");
        if client_closes {
            p.client.close(p.now, code, &reason).expect("client is open");
        } else {
            p.server.close(p.now, code, &reason).expect("server is open");
        }
        loop {
            p.pump();
            let a = at_client.take(&mut p.client);
            let b = at_server.take(&mut p.server);
            if !a && !b && !p.client.has_transmit() && !p.server.has_transmit() {
                break;
            }
        }
        prop_assert!(at_client.errors.is_empty(), "{:?}", at_client.errors);
        prop_assert!(at_server.errors.is_empty(), "{:?}", at_server.errors);
        let (to_server, to_client) = if client_closes { (&sent, &echo) } else { (&echo, &sent) };
        prop_assert_eq!(&at_server.closes, &vec![to_server.clone()]);
        prop_assert_eq!(&at_client.closes, &vec![to_client.clone()]);
        prop_assert!(p.server.is_closed());
        p.client.receive_eof(p.now);
        prop_assert!(p.client.is_closed());
        prop_assert_eq!(
            p.server.outcome(),
            Some(&Outcome::Clean { remote: to_server.clone(), locally_initiated: !client_closes })
        );
        prop_assert_eq!(
            p.client.outcome(),
            Some(&Outcome::Clean { remote: to_client.clone(), locally_initiated: client_closes })
        );
        // Nothing was lost or added on the way.
        prop_assert_eq!(at_server.messages.len(), from_client.len());
        prop_assert_eq!(at_client.messages.len(), from_server.len());
    }
}

// ------------------------------------------- 5. arbitrary input, limits

const LIMIT: usize = 1024;

fn small_limits() -> Config {
    config()
        .with_max_message_size(LIMIT)
        .with_max_frame_size(256)
        .with_max_fragments(8)
}

/// Payloads around the limits: text (sometimes with a bad byte spliced in)
/// or binary.
fn limit_payload() -> impl Strategy<Value = (bool, Vec<u8>)> {
    let size = prop_oneof![4 => 0usize..64, 2 => 200usize..300, 1 => 900usize..1100];
    prop_oneof![
        3 => size.clone().prop_flat_map(|n| vec(any::<u8>(), n)).prop_map(|b| (false, b)),
        3 => prop_oneof![3 => 0usize..60, 1 => 60usize..300]
            .prop_flat_map(|n| vec(any::<char>(), n..=n))
            .prop_map(|c| (true, String::from_iter(c).into_bytes())),
        1 => ((0usize..200).prop_flat_map(|n| vec(any::<char>(), n..=n)), any::<Index>(), any::<u8>())
            .prop_map(|(c, at, bad)| {
                let mut b = String::from_iter(c).into_bytes();
                b.insert(at.index(b.len() + 1), bad);
                (true, b)
            }),
    ]
}

/// Where to split a message: at arbitrary points (`Ok`), or into frames of
/// one size (`Err`), which gets large messages past the frame limit.
fn fragmentation() -> impl Strategy<Value = Result<Vec<Index>, usize>> {
    prop_oneof![
        vec(any::<Index>(), 0..6).prop_map(Ok),
        prop_oneof![3 => 60usize..=256, 1 => 257usize..300].prop_map(Err),
    ]
}

/// One segment of hostile input for `role`: mostly well-formed messages
/// (fragmented anywhere, sizes around the limits) and control frames, so
/// that violations show up deep into a stream rather than at its first
/// byte; sometimes an arbitrary frame or raw bytes.
fn segment(role: Role) -> impl Strategy<Value = Vec<u8>> {
    let mask = move |key: [u8; 4], right: bool| ((role == Role::Server) == right).then_some(key);
    let key = any::<[u8; 4]>();
    let right = prop::bool::weighted(0.97);
    prop_oneof![
        16 => (limit_payload(), fragmentation(), key, right).prop_map(
            move |((text, payload), how, key, right)| {
                let mut at: Vec<usize> = match how {
                    Ok(cuts) => cuts.iter().map(|i| i.index(payload.len() + 1)).collect(),
                    Err(size) => (1..payload.len().div_ceil(size)).map(|k| k * size).collect(),
                };
                at.sort_unstable();
                at.push(payload.len());
                let mut out = Vec::new();
                let mut start = 0;
                for (k, &end) in at.iter().enumerate() {
                    let op = match (k, text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    let fin = k + 1 == at.len();
                    out.extend(frame(fin, 0, op, &payload[start..end], mask(key, right)));
                    start = end;
                }
                out
            }
        ),
        4 => (prop::sample::select(vec![OpCode::Ping, OpCode::Pong]), vec(any::<u8>(), 0..=127), key, right)
            .prop_map(move |(op, p, key, right)| frame(true, 0, op, &p, mask(key, right))),
        1 => (
            prop::option::of((sendable_code(), reason())),
            vec(any::<u8>(), 0..3),
            key,
            right,
        )
            .prop_map(move |(c, junk, key, right)| {
                let mut p = c.map_or(Vec::new(), |(c, r)| CloseFrame::new(c, r.as_str()).expect("valid close").encode().to_vec());
                if junk.len() == 1 {
                    p = junk;
                }
                frame(true, 0, OpCode::Close, &p, mask(key, right))
            }),
        1 => (any::<bool>(), 0u8..8, 0u8..16, vec(any::<u8>(), 0..300), key, right)
            .prop_map(move |(fin, rsv, op, p, key, right)| {
                frame(fin, rsv, OpCode::from_bits(op), &p, mask(key, right))
            }),
        1 => vec(any::<u8>(), 0..20),
    ]
}

/// Hostile input: segments, then sometimes one flipped bit anywhere.
fn noise(role: Role) -> impl Strategy<Value = Vec<u8>> {
    (
        vec(segment(role), 0..10),
        prop::option::weighted(0.2, (any::<Index>(), 0u8..8)),
    )
        .prop_map(|(segments, flip)| {
            let mut bytes = segments.concat();
            if let (Some((at, bit)), false) = (flip, bytes.is_empty()) {
                let at = at.index(bytes.len());
                bytes[at] ^= 1 << bit;
            }
            bytes
        })
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Client), Just(Role::Server)]
}

/// Checks the event sequence: limits respected, text valid, nothing after
/// the end.
fn check_events(events: &[Event]) -> Result<(), TestCaseError> {
    let mut ended = None;
    for e in events {
        prop_assert!(ended.is_none(), "{:?} after {:?} in {:?}", e, ended, events);
        match e {
            Event::Message(m) => {
                prop_assert!(m.len() <= LIMIT, "message of {} bytes", m.len());
                if m.is_text() {
                    prop_assert!(std::str::from_utf8(m.as_bytes()).is_ok());
                }
            }
            Event::Close(_) | Event::Error(_) => ended = Some(e.clone()),
            _ => {}
        }
    }
    Ok(())
}

/// Checks our own output: valid frames, masked exactly when a client, and
/// nothing after our close frame.
fn check_output(role: Role, out: &[u8]) -> Result<(), TestCaseError> {
    let frames = parse_frames(out);
    for (k, (h, payload)) in frames.iter().enumerate() {
        prop_assert_eq!(h.mask.is_some(), role == Role::Client);
        prop_assert_eq!(h.rsv, 0);
        if h.opcode == OpCode::Close {
            prop_assert_eq!(k + 1, frames.len(), "frames after close: {:?}", frames);
            prop_assert!(CloseFrame::parse(payload).is_ok());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_input_is_safe(
        (role, input) in role().prop_flat_map(|r| (Just(r), noise(r))),
        how in split(),
        polls in vec(any::<bool>(), 1..8),
        eof in any::<bool>(),
    ) {
        let now = Instant::now();

        // Fed whole, read at the end.
        let mut whole = Connection::new(role, small_limits(), now);
        whole.receive(now, &input);
        if eof {
            whole.receive_eof(now);
        }
        let whole_events = drain_events(&mut whole);
        check_events(&whole_events)?;
        check_output(role, &drain_output(&mut whole))?;

        // Fed in pieces, reading events and writing output in between.
        let mut conn = Connection::new(role, small_limits(), now);
        let mut events = Vec::new();
        let mut out = Vec::new();
        for (k, piece) in chunks(&input, &how).into_iter().enumerate() {
            conn.receive(now, piece);
            if polls[k % polls.len()] {
                events.extend(conn.poll_event());
                out.extend(drain_output(&mut conn));
            }
        }
        if eof {
            conn.receive_eof(now);
        }
        events.extend(drain_events(&mut conn));
        out.extend(drain_output(&mut conn));
        check_events(&events)?;
        check_output(role, &out)?;
        prop_assert_eq!(&events, &whole_events);
    }
}

// ------------------------------------------------------------ handshake

/// A well-formed request head by RFC 9112, read strictly: the parts, and
/// the wire bytes with any leading empty lines.
#[derive(Clone, Debug)]
struct ValidHead {
    method: String,
    target: String,
    http10: bool,
    headers: Vec<(String, Vec<u8>)>,
    wire: Vec<u8>,
}

fn token(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9!#$%&'*+.^_`|~-]{{1,{max}}}"))
        .expect("a valid regex")
}

/// A field value: tabs, spaces, visible ASCII and obs-text, without
/// surrounding whitespace (which is not part of the value, RFC 9110 §5.5).
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff,];
    vec(byte, 0..40).prop_map(|mut v| {
        while v.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            v.remove(0);
        }
        while v.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
            v.pop();
        }
        v
    })
}

fn valid_head() -> impl Strategy<Value = ValidHead> {
    (
        0usize..3,
        token(10),
        proptest::string::string_regex("[!-~]{1,40}").expect("a valid regex"),
        any::<bool>(),
        vec((token(16), field_value()), 0..12),
    )
        .prop_map(|(blank, method, target, http10, headers)| {
            let mut wire = b"\r\n".repeat(blank);
            let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
            wire.extend_from_slice(format!("{method} {target} {version}\r\n").as_bytes());
            for (name, value) in &headers {
                wire.extend_from_slice(name.as_bytes());
                wire.extend_from_slice(b": ");
                wire.extend_from_slice(value);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"\r\n");
            ValidHead {
                method,
                target,
                http10,
                headers,
                wire,
            }
        })
}

proptest! {
    /// Every prefix of a valid request head is accepted: fed in any
    /// chunks (one byte at a time included), no early error, the request
    /// completes exactly with its last byte, parses to the parts it was
    /// built from, and the bytes after it are kept.
    #[test]
    fn valid_request_heads_are_never_refused_early(
        head in valid_head(),
        after in vec(any::<u8>(), 0..16),
        how in split(),
    ) {
        use wavecast_core::handshake::{HttpVersion, ServerHandshake};
        let now = Instant::now();
        let input = [head.wire.as_slice(), &after].concat();
        let mut hs = ServerHandshake::new(&Config::default(), now);
        let mut fed = 0;
        let mut request = None;
        for piece in chunks(&input, &how) {
            let got = hs.receive(now, piece);
            fed += piece.len();
            match got {
                Ok(None) => prop_assert!(
                    request.is_some() || fed < head.wire.len(),
                    "head complete at {} but not reported", head.wire.len()
                ),
                Ok(Some(r)) => {
                    prop_assert!(request.is_none());
                    prop_assert!(fed >= head.wire.len() && fed - piece.len() < head.wire.len());
                    request = Some(r);
                }
                Err(e) => prop_assert!(false, "refused after {} bytes: {:?}", fed, e),
            }
        }
        let request = request.expect("the head completed");
        prop_assert_eq!(request.method(), head.method.as_str());
        prop_assert_eq!(request.target(), head.target.as_str());
        let version = if head.http10 { HttpVersion::Http10 } else { HttpVersion::Http11 };
        prop_assert_eq!(request.version(), version);
        let parsed: Vec<(&str, &[u8])> = request.headers().iter().collect();
        let built: Vec<(&str, &[u8])> = head
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        prop_assert_eq!(parsed, built);
        prop_assert_eq!(hs.take_leftover(), after);
    }
}

// Cases the properties above found, kept as fixed examples.

/// The transport ends after the peer's close frame arrived but before the
/// application read it: the `Close` event ends the stream (no `Eof` error
/// after it) and the peer's code is the outcome.
#[test]
fn eof_after_unread_close_is_clean() {
    let now = Instant::now();
    let mut client = Connection::new(Role::Client, config(), now);
    client.receive(now, &[0x88, 0x02, 0x03, 0xe8]);
    client.receive_eof(now);
    let close = CloseFrame::new(CloseCode::NORMAL, "").expect("sendable code");
    assert_eq!(drain_events(&mut client), vec![Event::Close(close.clone())]);
    assert_eq!(
        client.outcome(),
        Some(&Outcome::Clean {
            remote: close,
            locally_initiated: false
        })
    );
}

/// The transport ends after a violation was found but before the
/// application reached it: the violation is the one error reported.
#[test]
fn eof_after_held_violation_reports_it_once() {
    let now = Instant::now();
    let mut client = Connection::new(Role::Client, config(), now);
    client.receive(now, &[0x00, 0x80, 0, 0, 0, 0]);
    client.receive_eof(now);
    let error = ConnectionError::Protocol(ProtocolError::MaskedFrame);
    assert_eq!(drain_events(&mut client), vec![Event::Error(error.clone())]);
    assert_eq!(client.outcome(), Some(&Outcome::Failed(error)));
}
