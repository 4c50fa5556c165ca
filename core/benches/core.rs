//! Micro-benchmarks of the core's hot loops (criterion):
//!
//! - `receive/<size>`: a server connection decoding masked text frames —
//!   header decode, unmasking and UTF-8 validation — in MB/s of payload;
//! - `mask/<size>` against `memcpy/<size>`: unmasking in place compared with
//!   a plain copy of the same bytes, the physical limit.
//!
//! Run: `cargo bench -p wavecast-core --bench core`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wavecast_core::frame::{apply_mask, FrameHeader, OpCode};
use wavecast_core::{Config, Connection, Event, Role};

const SIZES: [(usize, &str); 4] = [
    (16, "16B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];

/// A masked client text frame carrying `size` bytes of multi-byte UTF-8.
fn text_frame(size: usize) -> Vec<u8> {
    let text: String = "wavecast κόσμε ".chars().cycle().take(size).collect();
    let mut payload = text.into_bytes();
    payload.truncate(size);
    while std::str::from_utf8(&payload).is_err() {
        payload.pop();
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Text,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut frame = Vec::new();
    header.encode_to(&mut frame);
    let start = frame.len();
    frame.extend_from_slice(&payload);
    apply_mask(&mut frame[start..], key, 0);
    frame
}

fn receive(c: &mut Criterion) {
    let mut group = c.benchmark_group("receive");
    for (size, name) in SIZES {
        let frame = text_frame(size);
        // Frames per iteration so small sizes measure more than call overhead.
        let batch = (256 << 10) / size.max(1) + 1;
        let input: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * batch)
            .collect();
        group.throughput(Throughput::Bytes((size * batch) as u64));
        let config = Config::default()
            .with_max_message_size(2 << 20)
            .with_max_frame_size(2 << 20);
        let now = Instant::now();
        let mut conn = Connection::new(Role::Server, config, now);
        group.bench_with_input(BenchmarkId::from_parameter(name), &input, |b, input| {
            b.iter(|| {
                // Feed in 64 KiB reads, as the adapters do.
                for chunk in input.chunks(64 << 10) {
                    conn.receive(now, chunk);
                    while let Some(event) = conn.poll_event() {
                        black_box(matches!(event, Event::Message(_)));
                    }
                }
            })
        });
    }
    group.finish();
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for (size, name) in SIZES {
        let mut data = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("apply_mask", name), |b| {
            b.iter(|| apply_mask(black_box(&mut data), [1, 2, 3, 4], 0))
        });
        let src = vec![0x5au8; size];
        let mut dst = vec![0u8; size];
        group.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
    }
    group.finish();
}

criterion_group!(benches, receive, mask);
criterion_main!(benches);
