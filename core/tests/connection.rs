//! The connection state machine driven in memory: one test per protocol
//! violation, the close handshake, backpressure and timers.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use wavecast_core::frame::OpCode;
use wavecast_core::BufferPool;
use wavecast_core::{
    CloseCode, CloseFrame, Connection, ConnectionError, Event, Message, Outcome, ProtocolError,
    Role, TimeoutKind, UsageError,
};

fn server() -> (Connection, std::time::Instant) {
    let now = std::time::Instant::now();
    (Connection::new(Role::Server, config(), now), now)
}

/// Feeds `input` to a fresh server and returns its events and the close code
/// it sent, if any.
fn feed(input: &[u8]) -> (Vec<Event>, Option<u16>) {
    let (mut s, now) = server();
    s.receive(now, input);
    let events = drain_events(&mut s);
    let out = drain_output(&mut s);
    let close = parse_frames(&out)
        .into_iter()
        .find(|(h, _)| h.opcode == OpCode::Close)
        .map(|(_, p)| u16::from_be_bytes([p[0], p[1]]));
    (events, close)
}

fn assert_violation(input: &[u8], error: ProtocolError, code: u16) {
    let (events, close) = feed(input);
    assert_eq!(
        events.last(),
        Some(&Event::Error(ConnectionError::Protocol(error))),
        "events: {events:?}"
    );
    assert_eq!(close, Some(code));
}

#[test]
fn echo_roundtrip_text_and_binary() {
    let mut p = Pair::new();
    p.client.send_text("hello").unwrap();
    p.client.send_binary(vec![1u8, 2, 3]).unwrap();
    p.pump();
    assert_eq!(
        drain_events(&mut p.server),
        vec![
            Event::Message(Message::from("hello")),
            Event::Message(Message::Binary(Bytes::from_static(&[1, 2, 3])))
        ]
    );
}

#[test]
fn reserved_bits_fail_1002() {
    assert_violation(
        &client_frame(true, 0b100, OpCode::Text, b"x"),
        ProtocolError::ReservedBits(0b100),
        1002,
    );
}

#[test]
fn reserved_opcode_fails_1002() {
    assert_violation(
        &client_frame(true, 0, OpCode::Reserved(3), b""),
        ProtocolError::ReservedOpcode(3),
        1002,
    );
}

#[test]
fn long_control_frame_fails_1002() {
    assert_violation(
        &client_frame(true, 0, OpCode::Ping, &[0; 126]),
        ProtocolError::ControlFrameTooLong,
        1002,
    );
}

#[test]
fn fragmented_control_fails_1002() {
    assert_violation(
        &client_frame(false, 0, OpCode::Ping, b"a"),
        ProtocolError::FragmentedControlFrame,
        1002,
    );
}

#[test]
fn continuation_without_start_fails_1002() {
    assert_violation(
        &client_frame(true, 0, OpCode::Continuation, b"a"),
        ProtocolError::UnexpectedContinuation,
        1002,
    );
}

#[test]
fn new_message_during_fragmented_fails_1002() {
    let mut input = client_frame(false, 0, OpCode::Text, b"a");
    input.extend(client_frame(true, 0, OpCode::Text, b"b"));
    assert_violation(&input, ProtocolError::ExpectedContinuation, 1002);
}

#[test]
fn unmasked_client_frame_fails_1002() {
    assert_violation(
        &frame(true, 0, OpCode::Text, b"a", None),
        ProtocolError::UnmaskedFrame,
        1002,
    );
}

#[test]
fn masked_server_frame_fails_client_1002() {
    let now = std::time::Instant::now();
    let mut c = Connection::new(Role::Client, config(), now);
    c.receive(now, &client_frame(true, 0, OpCode::Text, b"a"));
    assert_eq!(
        drain_events(&mut c),
        vec![Event::Error(ProtocolError::MaskedFrame.into())]
    );
    let frames = parse_frames(&drain_output(&mut c));
    assert_eq!(frames[0].1[..2], 1002u16.to_be_bytes());
}

#[test]
fn non_minimal_length_fails_1002() {
    let input = [0x81, 0xfe, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0, 0, 0];
    assert_violation(&input, ProtocolError::NonMinimalLength, 1002);
}

#[test]
fn length_msb_fails_1002() {
    let input = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert_violation(&input, ProtocolError::LengthTooLarge, 1002);
}

#[test]
fn close_one_byte_payload_fails_1002() {
    assert_violation(
        &client_frame(true, 0, OpCode::Close, &[3]),
        ProtocolError::InvalidClosePayload,
        1002,
    );
}

#[test]
fn close_bad_codes_fail_1002() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        assert_violation(
            &client_frame(true, 0, OpCode::Close, &code.to_be_bytes()),
            ProtocolError::InvalidCloseCode(code),
            1002,
        );
    }
}

#[test]
fn close_bad_reason_utf8_fails_1007() {
    assert_violation(
        &client_frame(true, 0, OpCode::Close, &[0x03, 0xe8, 0xce, 0xba, 0xff]),
        ProtocolError::InvalidUtf8,
        1007,
    );
}

#[test]
fn invalid_utf8_fails_1007() {
    assert_violation(
        &client_frame(true, 0, OpCode::Text, &[b'a', 0xff]),
        ProtocolError::InvalidUtf8,
        1007,
    );
}

#[test]
fn invalid_utf8_fails_fast_mid_frame() {
    let (mut s, now) = server();
    let input = client_frame(true, 0, OpCode::Text, &[b'a', 0xc0, b'b', b'c', b'd', b'e']);
    // Only the header and the first two payload bytes arrive.
    s.receive(now, &input[..8]);
    assert_eq!(
        drain_events(&mut s),
        vec![Event::Error(ProtocolError::InvalidUtf8.into())]
    );
}

#[test]
fn utf8_split_across_fragments_is_fine() {
    let text = "κόσμε";
    let bytes = text.as_bytes();
    let mut input = client_frame(false, 0, OpCode::Text, &bytes[..1]);
    input.extend(client_frame(true, 0, OpCode::Continuation, &bytes[1..]));
    let (events, close) = feed(&input);
    assert_eq!(events, vec![Event::Message(Message::from(text))]);
    assert_eq!(close, None);
}

#[test]
fn message_too_big_fails_1009_before_payload() {
    let (mut s, now) = server();
    let limit = s.config().max_message_size;
    let header = wavecast_core::frame::FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: Some([1, 2, 3, 4]),
        payload_len: limit as u64 + 1,
    };
    let mut input = Vec::new();
    header.encode_to(&mut input);
    s.receive(now, &input);
    let events = drain_events(&mut s);
    assert!(matches!(
        &events[..],
        [Event::Error(ConnectionError::Protocol(
            ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. }
        ))]
    ));
    let frames = parse_frames(&drain_output(&mut s));
    assert_eq!(frames[0].1[..2], 1009u16.to_be_bytes());
}

#[test]
fn fragments_over_limit_fail_1009() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, config().with_max_fragments(3), now);
    let mut input = client_frame(false, 0, OpCode::Binary, b"a");
    for _ in 0..5 {
        input.extend(client_frame(false, 0, OpCode::Continuation, b"a"));
    }
    s.receive(now, &input);
    assert_eq!(
        drain_events(&mut s),
        vec![Event::Error(
            ProtocolError::TooManyFragments { limit: 3 }.into()
        )]
    );
}

#[test]
fn fragmented_message_total_over_limit_fails_1009() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, config().with_max_message_size(10), now);
    let mut input = client_frame(false, 0, OpCode::Binary, &[0; 6]);
    input.extend(client_frame(true, 0, OpCode::Continuation, &[0; 6]));
    s.receive(now, &input);
    assert_eq!(
        drain_events(&mut s),
        vec![Event::Error(
            ProtocolError::MessageTooBig { limit: 10 }.into()
        )]
    );
}

#[test]
fn control_frames_between_fragments() {
    let mut input = client_frame(false, 0, OpCode::Text, b"he");
    input.extend(client_frame(true, 0, OpCode::Ping, b"p"));
    input.extend(client_frame(true, 0, OpCode::Continuation, b"llo"));
    let (mut s, now) = server();
    s.receive(now, &input);
    assert_eq!(
        drain_events(&mut s),
        vec![Event::Ping(b(b"p")), Event::Message(Message::from("hello"))]
    );
    let frames = parse_frames(&drain_output(&mut s));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0.opcode, OpCode::Pong);
    assert_eq!(frames[0].1, b"p");
}

#[test]
fn only_latest_ping_answered() {
    let mut input = Vec::new();
    for i in 0..100u8 {
        input.extend(client_frame(true, 0, OpCode::Ping, &[i]));
    }
    let (mut s, now) = server();
    s.receive(now, &input);
    // In order up to 16 unwritten pongs; past that only the latest ping
    // replaces the last one, so output stays bounded.
    let frames = parse_frames(&drain_output(&mut s));
    assert_eq!(frames.len(), 16);
    let answered: Vec<u8> = frames.iter().map(|(_, p)| p[0]).collect();
    let mut expected: Vec<u8> = (0..15).collect();
    expected.push(99);
    assert_eq!(answered, expected);
}

#[test]
fn violation_is_held_until_earlier_messages_are_read() {
    let mut input = client_frame(true, 0, OpCode::Text, b"first");
    input.extend(client_frame(true, 0b010, OpCode::Text, b"bad"));
    input.extend(client_frame(true, 0, OpCode::Text, b"never"));
    let (mut s, now) = server();
    s.receive(now, &input);
    // Nothing is sent before the application reads the first message.
    assert!(drain_output(&mut s).is_empty());
    assert_eq!(s.poll_event(), Some(Event::Message(Message::from("first"))));
    s.send_text("echo").unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Error(_))));
    assert_eq!(s.poll_event(), None);
    let frames = parse_frames(&drain_output(&mut s));
    assert_eq!(frames[0].1, b"echo");
    assert_eq!(frames[1].0.opcode, OpCode::Close);
    assert!(s.is_closed());
}

#[test]
fn peer_close_is_echoed_and_server_closes() {
    let mut p = Pair::new();
    p.client.close(p.now, CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(p.client.send_text("late"), Err(UsageError::SendAfterClose));
    p.pump();
    assert_eq!(
        drain_events(&mut p.server),
        vec![Event::Close(
            CloseFrame::new(CloseCode::NORMAL, "bye").unwrap()
        )]
    );
    p.pump();
    assert!(p.server.is_closed());
    assert_eq!(
        p.server.outcome(),
        Some(&Outcome::Clean {
            remote: CloseFrame::new(CloseCode::NORMAL, "bye").unwrap(),
            locally_initiated: false
        })
    );
    let events = drain_events(&mut p.client);
    assert!(matches!(&events[..], [Event::Close(f)] if f.code == CloseCode::NORMAL));
    // The client waits for the server to close the transport.
    assert!(!p.client.is_closed());
    p.client.receive_eof(p.now);
    assert!(p.client.is_closed());
    assert!(matches!(
        p.client.outcome(),
        Some(Outcome::Clean {
            locally_initiated: true,
            ..
        })
    ));
}

#[test]
fn server_initiated_close() {
    let mut p = Pair::new();
    p.server.close(p.now, CloseCode::GOING_AWAY, "").unwrap();
    p.pump();
    assert!(
        matches!(&drain_events(&mut p.client)[..], [Event::Close(f)] if f.code == CloseCode::GOING_AWAY)
    );
    p.pump();
    assert!(p.server.is_closed());
    // The client closes its end after its own close timeout if the server
    // never closes the transport.
    p.advance(Duration::from_secs(11));
    assert!(p.client.is_closed());
}

#[test]
fn close_state_is_reported_through_every_step() {
    let mut p = Pair::new();
    assert!(p.server.is_open() && !p.server.is_close_sent());
    p.server.close(p.now, CloseCode::GOING_AWAY, "bye").unwrap();
    assert!(!p.server.is_open() && p.server.is_close_sent());
    assert_eq!(p.server.close_received(), None);
    assert_eq!(p.server.outcome(), None);
    p.pump();
    // The client has the server's close but has not answered yet: it may
    // still send.
    assert!(p.client.is_open());
    assert_eq!(
        p.client.close_received().map(|f| f.code),
        Some(CloseCode::GOING_AWAY)
    );
    assert_eq!(p.client.outcome(), None);
    drain_events(&mut p.client);
    assert!(p.client.is_close_sent() && !p.client.is_closed());
    // A client knows its outcome while it waits for the server's EOF.
    let expected = Outcome::Clean {
        remote: CloseFrame::new(CloseCode::GOING_AWAY, "bye").unwrap(),
        locally_initiated: false,
    };
    assert_eq!(p.client.outcome(), Some(&expected));
    p.pump();
    assert!(p.server.is_closed() && p.server.is_close_sent());
    assert_eq!(
        p.server.close_received().map(|f| f.code),
        Some(CloseCode::GOING_AWAY)
    );
    assert!(matches!(
        p.server.outcome(),
        Some(Outcome::Clean {
            locally_initiated: true,
            ..
        })
    ));
    p.client.receive_eof(p.now);
    assert!(p.client.is_closed());
    assert_eq!(p.client.outcome(), Some(&expected));
    assert!(p.client.close_received().is_some());
}

#[test]
fn write_stall_while_waiting_for_the_close_reply() {
    let cfg = config().with_write_timeout(Duration::from_secs(5));
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, cfg, now);
    s.close(now, CloseCode::NORMAL, "").unwrap();
    drain_output(&mut s);
    s.record_output(now, 0, true);
    s.handle_timeout(now + Duration::from_secs(5));
    assert!(s.is_closed());
    assert_eq!(
        drain_events(&mut s),
        vec![Event::Error(ConnectionError::Timeout(TimeoutKind::Write))]
    );
    // Our close frame was already out: no second one.
    assert!(drain_output(&mut s).is_empty());
}

#[test]
fn data_after_our_close_still_delivered() {
    let mut p = Pair::new();
    p.client.send_text("in flight").unwrap();
    p.server.close(p.now, CloseCode::NORMAL, "").unwrap();
    p.pump();
    let events = drain_events(&mut p.server);
    assert_eq!(events[0], Event::Message(Message::from("in flight")));
}

#[test]
fn close_timeout_fails_connection() {
    let (mut s, now) = server();
    s.close(now, CloseCode::NORMAL, "").unwrap();
    drain_output(&mut s);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    s.handle_timeout(now + Duration::from_secs(10));
    assert!(s.is_closed());
    assert_eq!(
        drain_events(&mut s),
        vec![Event::Error(ConnectionError::Timeout(TimeoutKind::Close))]
    );
}

#[test]
fn eof_without_close_is_abnormal() {
    let (mut s, now) = server();
    s.receive(now, &client_frame(true, 0, OpCode::Text, b"last"));
    s.receive_eof(now);
    assert_eq!(
        drain_events(&mut s),
        vec![
            Event::Message(Message::from("last")),
            Event::Error(ConnectionError::Eof)
        ]
    );
    assert_eq!(ConnectionError::Eof.close_code(), CloseCode::ABNORMAL);
}

#[test]
fn heartbeat_pings_and_idle_timeout() {
    let cfg = config()
        .with_heartbeat_interval(Some(Duration::from_secs(5)))
        .with_idle_timeout(Some(Duration::from_secs(12)));
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, cfg, now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(5)));
    s.handle_timeout(now + Duration::from_secs(5));
    let frames = parse_frames(&drain_output(&mut s));
    assert_eq!(frames[0].0.opcode, OpCode::Ping);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    s.handle_timeout(now + Duration::from_secs(10));
    drain_output(&mut s);
    s.handle_timeout(now + Duration::from_secs(12));
    assert!(s.is_closed());
    assert_eq!(
        drain_events(&mut s),
        vec![Event::Error(ConnectionError::Timeout(TimeoutKind::Idle))]
    );
    let frames = parse_frames(&drain_output(&mut s));
    assert_eq!(frames[0].1[..2], 1011u16.to_be_bytes());
}

#[test]
fn healthy_peer_is_not_dropped() {
    let cfg = config()
        .with_heartbeat_interval(Some(Duration::from_secs(5)))
        .with_idle_timeout(Some(Duration::from_secs(12)));
    let mut p = Pair::with_configs(config(), cfg);
    for _ in 0..20 {
        p.advance(Duration::from_secs(5));
        p.pump();
        drain_events(&mut p.client);
    }
    assert!(p.server.is_open());
}

#[test]
fn idle_clock_stops_while_reads_are_paused() {
    let cfg = config().with_idle_timeout(Some(Duration::from_secs(10)));
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, cfg, now);
    // Many unread pings pause reads.
    let mut input = Vec::new();
    for _ in 0..100 {
        input.extend(client_frame(true, 0, OpCode::Ping, b""));
    }
    s.receive(now, &input);
    assert!(!s.wants_read());
    assert_eq!(s.poll_timeout(), None);
    let later = now + Duration::from_secs(60);
    s.handle_timeout(later);
    assert!(!s.is_closed());
    drain_events(&mut s);
    assert!(s.wants_read());
    s.handle_timeout(later);
    assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(10)));
}

#[test]
fn discard_mode_drops_messages_but_answers_pings() {
    let (mut s, now) = server();
    s.set_discard(true);
    let mut input = client_frame(true, 0, OpCode::Text, b"dropped");
    input.extend(client_frame(true, 0, OpCode::Ping, b"hb"));
    s.receive(now, &input);
    assert!(drain_events(&mut s).is_empty());
    assert_eq!(s.discarded(), 1);
    let frames = parse_frames(&drain_output(&mut s));
    assert_eq!(frames[0].0.opcode, OpCode::Pong);
}

#[test]
fn usage_errors() {
    let (mut s, now) = server();
    assert_eq!(
        s.send_ping(vec![0u8; 126]),
        Err(UsageError::ControlPayloadTooLong(126))
    );
    assert_eq!(
        s.close(now, CloseCode(1005), ""),
        Err(UsageError::InvalidCloseCode(1005))
    );
    assert_eq!(
        s.close(now, CloseCode::NORMAL, &"x".repeat(124)),
        Err(UsageError::CloseReasonTooLong(124))
    );
    s.close(now, CloseCode::NORMAL, "").unwrap();
    assert_eq!(s.send_binary(vec![1u8]), Err(UsageError::SendAfterClose));
    assert_eq!(
        s.close(now, CloseCode::NORMAL, ""),
        Err(UsageError::SendAfterClose)
    );
}

#[test]
fn fragmented_sends_reassemble() {
    let mut p = Pair::with_configs(config().with_fragment_size(Some(3)), config());
    p.client.send_text("hello world").unwrap();
    p.pump();
    assert_eq!(
        drain_events(&mut p.server),
        vec![Event::Message(Message::from("hello world"))]
    );
}

#[test]
fn prepared_message_shares_bytes() {
    let prepared = wavecast_core::PreparedMessage::new(Message::Binary(vec![7u8; 5000].into()));
    let mut p = Pair::new();
    p.server.send_prepared(&prepared).unwrap();
    let mut buf = Vec::new();
    let chunk = p
        .server
        .poll_transmit(&mut buf)
        .expect("large prepared frame is a chunk");
    assert!(buf.is_empty());
    assert_eq!(chunk.as_ptr(), prepared.frame_bytes().as_ptr());
    p.client.receive(p.now, &chunk);
    assert_eq!(
        drain_events(&mut p.client),
        vec![Event::Message(Message::Binary(vec![7u8; 5000].into()))]
    );
}

#[test]
fn idle_connection_holds_no_buffers() {
    let mut p = Pair::new();
    p.client.send_binary(vec![0u8; 100_000]).unwrap();
    p.pump();
    drain_events(&mut p.server);
    assert_eq!(p.server.queued_bytes(), 0);
    assert!(!p.server.has_events());
    assert!(size_of::<Connection>() < 512, "{}", size_of::<Connection>());
}

#[test]
fn byte_at_a_time_gives_same_events() {
    let mut input = client_frame(false, 0, OpCode::Text, "héllo ".as_bytes());
    input.extend(client_frame(true, 0, OpCode::Ping, b"x"));
    input.extend(client_frame(
        true,
        0,
        OpCode::Continuation,
        "wörld".as_bytes(),
    ));
    input.extend(client_frame(true, 0, OpCode::Binary, &[0u8; 300]));
    let (whole, _) = feed(&input);
    let (mut s, now) = server();
    for byte in &input {
        s.receive(now, std::slice::from_ref(byte));
    }
    assert_eq!(drain_events(&mut s), whole);
}

/// One read the way a driver makes it: `src` plays the transport and fills
/// at most `max` bytes of what the read target lends. Returns whether the
/// read went in place (into the message buffer).
fn read_from(
    s: &mut Connection,
    scratch: &mut [u8],
    pool: &mut BufferPool,
    src: &mut &[u8],
    max: usize,
) -> bool {
    let now = std::time::Instant::now();
    let mut target = s.read_target(scratch, pool);
    let in_place = target.is_in_place();
    let buf = target.buf();
    let n = buf.len().min(src.len()).min(max);
    assert!(n > 0, "a read of 0 bytes is the end of the stream");
    buf[..n].copy_from_slice(&src[..n]);
    target.commit(now, n);
    *src = &src[n..];
    in_place
}

/// A large message goes straight into a recycled buffer: the event's bytes
/// live in the buffer the pool held, and while a large part of the frame
/// remains, reads land in place.
#[test]
fn large_payloads_are_read_in_place_into_a_recycled_buffer() {
    let (mut s, _) = server();
    let mut pool = BufferPool::new();
    let mut scratch = vec![0; 64 << 10];
    pool.recycle(Bytes::from(vec![0xee; 150_000]));
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let wire = client_frame(true, 0, OpCode::Binary, &payload);
    // The header and a few payload bytes arrive in the scratch buffer.
    let mut src = &wire[..];
    assert!(!read_from(&mut s, &mut scratch, &mut pool, &mut src, 20));
    assert!(pool.is_empty(), "the new message took the pooled buffer");
    let mut in_place = 0;
    while !src.is_empty() {
        if read_from(&mut s, &mut scratch, &mut pool, &mut src, 30_000) {
            in_place += 1;
        }
    }
    // In place while at least 64 KiB remain: 99,994 and 69,994 bytes.
    assert_eq!(in_place, 2);
    let Some(Event::Message(Message::Binary(got))) = s.poll_event() else {
        panic!("expected the message");
    };
    assert_eq!(got, payload);
    // Written out and recycled, the same buffer serves the next message; a
    // read that was abandoned (pending) leaves nothing behind.
    let ptr = got.as_ptr();
    pool.recycle(got);
    assert_eq!(pool.len(), 1);
    let mut src = &wire[..];
    read_from(&mut s, &mut scratch, &mut pool, &mut src, 20);
    let mut abandoned = s.read_target(&mut scratch, &mut pool);
    assert!(abandoned.is_in_place());
    abandoned.buf().fill(0xff);
    drop(abandoned);
    s.receive(std::time::Instant::now(), src);
    let Some(Event::Message(Message::Binary(again))) = s.poll_event() else {
        panic!("expected the message");
    };
    assert_eq!(again, payload);
    assert_eq!(again.as_ptr(), ptr, "the recycled buffer was reused");
}

/// Small frames, control frames and the tail of a large one go through the
/// scratch buffer; fragments of a large message are read in place too.
#[test]
fn in_place_reads_only_for_large_plain_payloads() {
    let (mut s, _) = server();
    let mut pool = BufferPool::new();
    let mut scratch = vec![0; 64 << 10];
    let small = client_frame(true, 0, OpCode::Binary, &[1; 1000]);
    let ping = client_frame(true, 0, OpCode::Ping, &[2; 100]);
    let first = client_frame(false, 0, OpCode::Text, &[b'x'; 70_000]);
    let second = client_frame(true, 0, OpCode::Continuation, &[b'y'; 80_000]);
    // (frame, header length, reads in place)
    let frames = [
        (&small, 8, 0),
        (&ping, 6, 0),
        (&first, 14, 1),
        (&second, 14, 1),
    ];
    for (frame, header, in_place_reads) in frames {
        let mut src = &frame[..];
        // The header alone first, so that the payload may be offered in place.
        assert!(!read_from(
            &mut s,
            &mut scratch,
            &mut pool,
            &mut src,
            header
        ));
        let mut count = 0;
        while !src.is_empty() {
            count += usize::from(read_from(
                &mut s,
                &mut scratch,
                &mut pool,
                &mut src,
                1 << 20,
            ));
        }
        assert_eq!(count, in_place_reads, "frame of {} bytes", frame.len());
    }
    let events = drain_events(&mut s);
    assert_eq!(events.len(), 3);
    let Event::Message(Message::Text(text)) = &events[2] else {
        panic!("expected the text message: {events:?}");
    };
    assert_eq!(text.len(), 150_000);
    assert!(text.as_str().starts_with("xxx") && text.as_str().ends_with("yyy"));
}

/// A read of 0 bytes is the end of the stream, in the scratch buffer and in
/// place alike: an unfinished message ends as an abrupt end (1006).
#[test]
fn a_read_of_nothing_is_the_end_of_the_stream() {
    for cut in [10, 30_000] {
        let (mut s, now) = server();
        let mut pool = BufferPool::new();
        let mut scratch = vec![0; 64 << 10];
        let wire = client_frame(true, 0, OpCode::Binary, &[7; 100_000]);
        s.receive(now, &wire[..cut]);
        let target = s.read_target(&mut scratch, &mut pool);
        assert_eq!(target.is_in_place(), cut == 30_000);
        target.commit(now, 0);
        assert_eq!(
            drain_events(&mut s),
            vec![Event::Error(ConnectionError::Eof)],
            "cut at {cut}"
        );
        assert!(!s.wants_read());
    }
}

/// A server whose peer never reads: the driver's write returns "pending"
/// for everything (nothing accepted), starting at `now`.
fn stalled_server(cfg: wavecast_core::Config) -> (Connection, std::time::Instant) {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, cfg, now);
    s.send_text("unread").unwrap();
    drain_output(&mut s);
    s.record_output(now, 0, true);
    (s, now)
}

#[test]
fn write_stall_closes_1011_then_lingers_to_the_end() {
    let cfg = config()
        .with_write_timeout(Duration::from_secs(30))
        .with_close_timeout(Duration::from_secs(2));
    let (mut s, now) = stalled_server(cfg);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(30)));
    s.handle_timeout(now + Duration::from_secs(29));
    assert!(s.is_open());
    assert!(drain_events(&mut s).is_empty());

    let fired = now + Duration::from_secs(30);
    s.handle_timeout(fired);
    assert!(s.is_closed());
    assert!(s.is_close_sent());
    assert_eq!(
        drain_events(&mut s),
        vec![Event::Error(ConnectionError::Timeout(TimeoutKind::Write))]
    );
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Failed(ConnectionError::Timeout(
            TimeoutKind::Write
        )))
    );
    // The 1011 close frame is queued behind the unread data.
    let frames = parse_frames(&drain_output(&mut s));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0.opcode, OpCode::Close);
    assert_eq!(frames[0].1[..2], 1011u16.to_be_bytes());

    // The close frame cannot be written either: the linger ends it.
    s.record_output(fired, 0, true);
    assert!(!s.is_finished());
    let linger_end = fired + Duration::from_secs(2);
    assert_eq!(s.poll_timeout(), Some(linger_end));
    s.handle_timeout(linger_end - Duration::from_millis(1));
    assert!(!s.is_finished());
    s.handle_timeout(linger_end);
    assert!(s.is_finished());
}

#[test]
fn write_progress_restarts_the_stall_clock() {
    let cfg = config().with_write_timeout(Duration::from_secs(10));
    let (mut s, now) = stalled_server(cfg);
    let t1 = now + Duration::from_secs(8);
    s.record_output(t1, 100, true);
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(10)));
    // A write that accepts nothing keeps the clock where it was.
    s.record_output(t1 + Duration::from_secs(1), 0, true);
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(10)));
    s.handle_timeout(now + Duration::from_secs(10));
    assert!(s.is_open(), "progress at 8 s restarted the clock");
    // Everything written: no write deadline at all.
    s.record_output(t1 + Duration::from_secs(2), 100, false);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t1 + Duration::from_secs(60));
    assert!(s.is_open());
    assert!(drain_events(&mut s).is_empty());
}

#[test]
fn finished_once_closed_and_flushed() {
    let (mut s, now) = server();
    s.receive(
        now,
        &client_frame(true, 0, OpCode::Close, &1000u16.to_be_bytes()),
    );
    drain_events(&mut s);
    assert!(s.is_closed());
    // The echo is still in the core.
    assert!(!s.is_finished());
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    let out = drain_output(&mut s);
    assert!(!out.is_empty());
    // Written only in part: the driver still holds bytes.
    s.record_output(now, 1, true);
    assert!(!s.is_finished());
    s.record_output(now, out.len() - 1, false);
    assert!(s.is_finished());
}

#[test]
fn linger_is_at_least_a_millisecond() {
    let cfg = config().with_close_timeout(Duration::ZERO);
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, cfg, now);
    s.receive_eof(now);
    assert!(s.is_closed());
    s.send_text("x").unwrap_err();
    // Nothing to write: finished at once, whatever the linger.
    assert!(s.is_finished());

    let mut s = Connection::new(
        Role::Server,
        config().with_close_timeout(Duration::ZERO),
        now,
    );
    s.receive(now, &client_frame(true, 0, OpCode::Ping, b""));
    s.receive_eof(now);
    // The pong is still queued: linger 1 ms for it.
    assert!(s.has_transmit());
    assert!(!s.is_finished());
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_millis(1)));
    s.handle_timeout(now + Duration::from_millis(1));
    assert!(s.is_finished());
}

#[test]
fn unread_events_suspend_idle_but_output_backpressure_does_not() {
    let cfg = config()
        .with_idle_timeout(Some(Duration::from_secs(10)))
        .with_heartbeat_interval(Some(Duration::from_secs(4)))
        .with_write_buffer_limit(1024)
        .with_write_timeout(Duration::from_secs(3600));
    let now = std::time::Instant::now();

    // Output over the write limit makes senders wait but keeps reading
    // (pings are still answered, and two peers streaming at each other
    // cannot both stop reading); the peer that does not read us is still
    // timed out as idle.
    let mut s = Connection::new(Role::Server, cfg.clone(), now);
    s.send_binary(vec![0u8; 4096]).unwrap();
    assert!(s.is_write_blocked());
    assert!(s.wants_read());
    s.receive(now, &client_frame(true, 0, OpCode::Ping, b"still here?"));
    let frames = parse_frames(&drain_output(&mut s));
    assert!(frames
        .iter()
        .any(|(h, p)| h.opcode == OpCode::Pong && p == b"still here?"));
    s.send_binary(vec![0u8; 4096]).unwrap();
    assert!(s.is_write_blocked());
    s.handle_timeout(now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(4)));
    s.handle_timeout(now + Duration::from_secs(4));
    s.handle_timeout(now + Duration::from_secs(8));
    assert!(s.is_open());
    s.handle_timeout(now + Duration::from_secs(10));
    assert!(s.is_closed());
    assert_eq!(
        drain_events(&mut s),
        vec![
            Event::Ping(Bytes::from_static(b"still here?")),
            Event::Error(ConnectionError::Timeout(TimeoutKind::Idle))
        ]
    );

    // Unread messages the application has not taken suspend the clock.
    let mut s = Connection::new(Role::Server, cfg, now);
    let mut input = Vec::new();
    for _ in 0..70 {
        input.extend(client_frame(true, 0, OpCode::Text, b"unread"));
    }
    s.receive(now, &input);
    drain_output(&mut s);
    assert!(!s.wants_read());
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(now + Duration::from_secs(60));
    assert!(s.is_open());
    assert!(drain_output(&mut s).is_empty(), "no heartbeat while paused");
}
