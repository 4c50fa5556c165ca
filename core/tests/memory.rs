//! Memory follows the bytes a peer sends, never what it announces or how
//! finely it fragments: measured as live heap bytes with a counting
//! allocator (this test binary's global allocator).

mod common;
mod deflate_common;

use std::alloc::System;
use std::sync::Mutex;
use std::time::Instant;

use common::{client_frame, config, drain_output};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use wavecast_core::error::{ConnectionError, ProtocolError};
use wavecast_core::frame::OpCode;
use wavecast_core::{Connection, DeflateConfig, Event, Role, FRAGMENT_COST, STREAM_CHUNK};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The counter is global: one measurement at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Heap bytes allocated and not yet freed since `region` began (growth by
/// `realloc` is counted in `bytes_allocated` too).
fn live(region: &Region<'_, System>) -> isize {
    let c = region.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize
}

const LIMIT: usize = 64 << 10;

/// Feeds a text frame of `first` bytes that is not final, then continuation
/// frames of `piece` bytes, one at a time, until the connection fails it.
/// Returns the frames it accepted, the payload bytes they carried, the
/// error and the most live heap seen.
fn flood(piece: usize) -> (usize, usize, ConnectionError, isize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let mut s = Connection::new(Role::Server, config().with_max_message_size(LIMIT), now);
    let continuation = client_frame(false, 0, OpCode::Continuation, &vec![b'a'; piece]);
    let region = Region::new(GLOBAL);
    s.receive(now, &client_frame(false, 0, OpCode::Text, b"a"));
    let (mut frames, mut bytes, mut peak) = (1, 1, 0);
    loop {
        assert!(frames < 1_000_000, "the flood was never stopped");
        s.receive(now, &continuation);
        peak = peak.max(live(&region));
        match s.poll_event() {
            None => {
                frames += 1;
                bytes += piece;
            }
            Some(Event::Error(e)) => return (frames, bytes, e, peak),
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
}

fn too_big() -> ConnectionError {
    ConnectionError::Protocol(ProtocolError::MessageTooBig { limit: LIMIT })
}

/// Empty continuation frames carry nothing, but each counts
/// `FRAGMENT_COST` against the message limit: the flood ends with 1009
/// after limit / cost frames, and the connection holds no more memory
/// than for its one byte.
#[test]
fn an_empty_continuation_flood_ends_at_the_message_limit() {
    let (frames, bytes, error, peak) = flood(0);
    assert_eq!(error, too_big());
    assert_eq!(error.close_code().0, 1009);
    assert_eq!(bytes, 1);
    // 1 byte plus FRAGMENT_COST per frame after the first, within LIMIT.
    assert_eq!(frames, 1 + (LIMIT - 1) / FRAGMENT_COST as usize);
    assert!(peak < 4096, "{peak} bytes live for a 1-byte message");
}

/// One-byte continuations: the message buffer grows with the bytes, and
/// the flood ends when payload plus per-fragment cost reach the limit.
#[test]
fn a_one_byte_fragment_flood_stays_within_the_message_limit() {
    let (frames, bytes, error, peak) = flood(1);
    assert_eq!(error, too_big());
    let counted = bytes + (frames - 1) * FRAGMENT_COST as usize;
    assert!(counted <= LIMIT && counted + 1 + FRAGMENT_COST as usize > LIMIT);
    assert!(
        peak as usize <= 2 * bytes + 4096,
        "{peak} bytes live for {bytes} received"
    );
    assert!((peak as usize) < LIMIT);
}

/// A header may announce up to the frame limit; memory is taken only as
/// the payload arrives. 50 connections that each announce a 16 MiB frame
/// and send one byte hold a few hundred bytes each, not 800 MiB; one that
/// then sends 3 MiB of it holds at most twice that.
#[test]
fn an_announced_payload_costs_nothing_until_it_arrives() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let big = 16 << 20;
    let cfg = config().with_max_message_size(big).with_max_frame_size(big);
    let mut conns: Vec<Connection> = (0..50)
        .map(|_| Connection::new(Role::Server, cfg.clone(), now))
        .collect();
    let payload = vec![7u8; big];
    let wire = client_frame(true, 0, OpCode::Binary, &payload);
    let header = wire.len() - big;
    let region = Region::new(GLOBAL);
    for c in &mut conns {
        c.receive(now, &wire[..header + 1]);
    }
    let held = live(&region);
    assert!(held < 50 * 1024, "50 announced frames hold {held} bytes");
    let sent = 3 << 20;
    for chunk in wire[header + 1..header + sent].chunks(64 << 10) {
        conns[0].receive(now, chunk);
    }
    let held = live(&region);
    assert!(
        held as usize <= 2 * sent + 50 * 1024,
        "{held} bytes held for {sent} received"
    );
    conns[0].receive(now, &wire[header + sent..]);
    let Some(Event::Message(m)) = conns[0].poll_event() else {
        panic!("expected the message");
    };
    assert_eq!(m.as_bytes(), &payload[..]);
}

/// Takes a streamed message one event at a time (the application reading
/// lazily) after all of `wire` arrived in one read; returns the bytes
/// taken and the most live heap seen.
fn take_lazily(conn: &mut Connection, wire: &[u8], now: Instant) -> (usize, isize) {
    let region = Region::new(GLOBAL);
    conn.receive(now, wire);
    let (mut total, mut peak) = (0, live(&region));
    loop {
        match conn.poll_event() {
            Some(Event::Chunk(c)) => {
                total += c.data.len();
                let last = c.last;
                drop(c);
                peak = peak.max(live(&region));
                if last {
                    return (total, peak);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_streamed_bomb_taken_lazily_holds_a_window_not_the_message() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Some(DeflateConfig::default());
    let mut pair = deflate_common::negotiated_pair(
        config().with_deflate(d.clone()),
        config().with_deflate(d).with_stream_messages(true),
    );
    // 32 MiB of zeros compress to about 32 KiB.
    pair.client.send_binary(vec![0u8; 32 << 20]).unwrap();
    let wire = drain_output(&mut pair.client);
    let (total, peak) = take_lazily(&mut pair.server, &wire, pair.now);
    assert_eq!(total, 32 << 20);
    // Decoding pauses while a window is unread: the input waiting, at most
    // a window and a chunk of chunks, and the inflate state.
    let budget = wire.len() + 3 * STREAM_CHUNK + (256 << 10);
    assert!(peak as usize <= budget, "held {peak} B, budget {budget} B");
}

#[test]
fn a_large_read_while_streaming_is_kept_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let mut s = Connection::new(Role::Server, config().with_stream_messages(true), now);
    let wire = client_frame(true, 0, OpCode::Binary, &vec![7u8; 4 << 20]);
    let (total, peak) = take_lazily(&mut s, &wire, now);
    assert_eq!(total, 4 << 20);
    // The undecoded rest is copied once; chunks are taken as they come.
    let budget = wire.len() + 3 * STREAM_CHUNK + (16 << 10);
    assert!(peak as usize <= budget, "held {peak} B, budget {budget} B");
}
