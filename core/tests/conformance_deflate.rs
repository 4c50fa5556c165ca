//! The Autobahn|Testsuite compression cases (sections 12 and 13),
//! reproduced against a server [`Connection`] acting as the suite's echo
//! testee with permessage-deflate.
//!
//! The suite's client is played by an independent codec written here on
//! flate2 (not our extension): it sends its offer in a real upgrade request,
//! reads the testee's answer, compresses each message with the client
//! window and context mode the answer allows, splits the compressed payload
//! into frames of the case's auto-fragment size (RSV1 on the first frame
//! only), masks it, and checks that every echo inflates back to the message
//! it sent. Each case ends with a clean close handshake.
//!
//! Grid: every subsection has the suite's 18 cases — sizes 16 B … 128 KiB
//! unfragmented (cases 1–10), then 8 fragmented ones (cases 11–18). The
//! suite sends 1000 messages per case; we send `max(2, min(50, 256 KiB /
//! size))` to keep the file fast. Section 12 varies the payload (12.1 JSON,
//! 12.2 bitmap-like binary, 12.3 prose, 12.4 HTML, 12.5 noisy binary) with
//! the default offer; section 13 varies the offer (13.1 default, 13.2
//! server_no_context_takeover, 13.3 server_max_window_bits=8 — declined by
//! design, so the echo runs uncompressed —, 13.4 =15, 13.5 both with 8
//! — declined —, 13.6 both with 15, 13.7 several offers, the first declined)
//! and each 13.x case runs against both a default (no context takeover)
//! testee and one with context takeover at 10 bits.
#![cfg(feature = "deflate")]

mod common;

use std::time::Instant;

use common::{drain_events, drain_output, frame, parse_frames};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use wavecast_core::frame::OpCode;
use wavecast_core::{
    Accept, CloseCode, Config, Connection, DeflateConfig, DeflateParams, Event, Outcome, Role,
    SeedSource, ServerHandshake,
};

const RSV1: u8 = 0b100;
const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// (message size, auto-fragment size; 0 = one frame), as in the suite.
const GRID: [(usize, usize); 18] = [
    (16, 0),
    (64, 0),
    (256, 0),
    (1024, 0),
    (4096, 0),
    (8192, 0),
    (16384, 0),
    (32768, 0),
    (65536, 0),
    (131072, 0),
    (8192, 256),
    (16384, 256),
    (32768, 256),
    (65536, 256),
    (131072, 256),
    (65536, 1024),
    (131072, 1024),
    (131072, 4096),
];

/// Deterministic corpus generator (xorshift).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[(self.next() % words.len() as u64) as usize]
    }
}

#[derive(Clone, Copy)]
enum Payload {
    Json,
    Bitmap,
    Prose,
    Html,
    Noise,
}

impl Payload {
    fn is_text(self) -> bool {
        matches!(self, Payload::Json | Payload::Prose | Payload::Html)
    }

    /// A corpus of at least 256 KiB (ASCII for the text kinds).
    fn corpus(self) -> Vec<u8> {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut out = Vec::new();
        let words = [
            "der",
            "die",
            "das",
            "Faust",
            "Mephistopheles",
            "und",
            "nicht",
            "Welt",
            "habe",
            "nun",
            "ach",
            "Philosophie",
            "Juristerei",
            "Medizin",
            "leider",
            "auch",
            "Theologie",
        ];
        while out.len() < 300 << 10 {
            match self {
                Payload::Json => out.extend_from_slice(
                    format!(
                        "{{\"id\":{},\"name\":\"{}\",\"tags\":[\"{}\",\"{}\"],\"score\":{}.{}}},",
                        g.next() % 100_000,
                        g.pick(&words),
                        g.pick(&words),
                        g.pick(&words),
                        g.next() % 100,
                        g.next() % 1000
                    )
                    .as_bytes(),
                ),
                Payload::Bitmap => {
                    let run = 1 + (g.next() % 64) as usize;
                    let value = if g.next() % 2 == 0 { 0x00 } else { 0xff };
                    out.extend(std::iter::repeat_n(value, run));
                }
                Payload::Prose => {
                    out.extend_from_slice(g.pick(&words).as_bytes());
                    out.push(if g.next() % 9 == 0 { b'\n' } else { b' ' });
                }
                Payload::Html => out.extend_from_slice(
                    format!(
                        "<div class=\"{}\"><a href=\"/{}/{}\">{}</a></div>\n",
                        g.pick(&words),
                        g.pick(&words),
                        g.next() % 1000,
                        g.pick(&words)
                    )
                    .as_bytes(),
                ),
                Payload::Noise => {
                    let x = g.next();
                    // Mostly random with compressible stretches, like a PDF.
                    if x % 4 == 0 {
                        out.extend_from_slice(b"stream endstream obj 0 R ");
                    } else {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                }
            }
        }
        out
    }
}

/// The suite's client side of permessage-deflate, on flate2 directly.
struct SuiteClient {
    params: Option<DeflateParams>,
    compress: Option<Compress>,
    decompress: Option<Decompress>,
}

impl SuiteClient {
    fn deflate(&mut self, data: &[u8]) -> Vec<u8> {
        let p = self.params.expect("negotiated");
        let bits = p.client_max_window_bits.max(9);
        if p.client_no_context_takeover {
            self.compress = None;
        }
        let c = self.compress.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::default(), false, bits)
        });
        let mut out = Vec::with_capacity(data.len() + 64);
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(4096);
            }
            let before = c.total_in();
            c.compress_vec(input, &mut out, FlushCompress::Sync)
                .unwrap();
            input = &input[(c.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }

    fn inflate(&mut self, data: &[u8]) -> Vec<u8> {
        let p = self.params.expect("negotiated");
        let bits = p.server_max_window_bits.max(9);
        if p.server_no_context_takeover {
            self.decompress = None;
        }
        let d = self
            .decompress
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let mut input = data.to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut rest = &input[..];
        let mut out = Vec::with_capacity(data.len() * 4 + 64);
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.capacity());
            }
            let before = d.total_in();
            d.decompress_vec(rest, &mut out, FlushDecompress::Sync)
                .unwrap();
            rest = &rest[(d.total_in() - before) as usize..];
            if rest.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// Runs one case: the offer, the testee's deflate config, the payload and
/// the grid entry. Returns the negotiated parameters.
fn run(offer: &str, testee: DeflateConfig, payload: Payload, case: usize) -> Option<DeflateParams> {
    let (size, frag) = GRID[case - 1];
    let count = (256usize << 10).checked_div(size).unwrap_or(0).clamp(2, 50);
    let now = Instant::now();
    let config = Config::default()
        .with_seed(SeedSource::Fixed(3))
        .with_max_message_size(1 << 20)
        .with_deflate(Some(testee));
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    );
    let mut hs = ServerHandshake::new(&config, now);
    let req = hs.receive(now, request.as_bytes()).unwrap().unwrap();
    let accepted = hs.accept(&req, Accept::new()).unwrap();
    let text = String::from_utf8(accepted.response.clone()).unwrap();
    let params = accepted.negotiated.deflate;
    assert_eq!(
        params.is_some(),
        text.contains("Sec-WebSocket-Extensions: permessage-deflate"),
        "{text}"
    );
    let mut testee = Connection::with_negotiated(Role::Server, config, &accepted.negotiated, now);
    let mut client = SuiteClient {
        params,
        compress: None,
        decompress: None,
    };
    let corpus = payload.corpus();
    let opcode = if payload.is_text() {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let mut compressed_total = 0;
    for i in 0..count {
        let offset = (i * 7919) % (corpus.len() - size);
        let data = &corpus[offset..offset + size];
        // The client's message: compressed if negotiated, auto-fragmented.
        let (rsv, body) = match params {
            Some(_) => (RSV1, client.deflate(data)),
            None => (0, data.to_vec()),
        };
        let mut wire = Vec::new();
        let pieces: Vec<&[u8]> = if frag == 0 || body.is_empty() {
            vec![&body]
        } else {
            body.chunks(frag).collect()
        };
        for (k, piece) in pieces.iter().enumerate() {
            let (op, bits) = if k == 0 {
                (opcode, rsv)
            } else {
                (OpCode::Continuation, 0)
            };
            wire.extend(frame(k + 1 == pieces.len(), bits, op, piece, Some(MASK)));
        }
        testee.receive(now, &wire);
        // The testee echoes every message as it reads it.
        let events = drain_events(&mut testee);
        assert_eq!(events.len(), 1, "case {case} message {i}: {events:?}");
        let Event::Message(m) = events.into_iter().next().unwrap() else {
            panic!("not a message");
        };
        testee.send(m).unwrap();
        let out = drain_output(&mut testee);
        let frames = parse_frames(&out);
        let first = &frames[0].0;
        assert_eq!(first.opcode, opcode);
        assert!(frames
            .iter()
            .skip(1)
            .all(|(h, _)| h.rsv == 0 && h.opcode == OpCode::Continuation));
        assert!(frames.last().unwrap().0.fin);
        let body: Vec<u8> = frames.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        compressed_total += body.len();
        let echoed = if first.rsv & RSV1 != 0 {
            assert!(params.is_some(), "RSV1 without negotiation");
            client.inflate(&body)
        } else {
            body
        };
        assert_eq!(echoed, data, "case {case} message {i}: echo differs");
    }
    if params.is_some() && size >= 1024 && !matches!(payload, Payload::Noise) {
        assert!(
            compressed_total < size * count / 2,
            "echo was not compressed: {compressed_total} for {}",
            size * count
        );
    }
    // Clean close handshake started by the client.
    let close = frame(true, 0, OpCode::Close, &1000u16.to_be_bytes(), Some(MASK));
    testee.receive(now, &close);
    assert!(
        matches!(drain_events(&mut testee).as_slice(), [Event::Close(c)] if c.code == CloseCode::NORMAL)
    );
    let out = drain_output(&mut testee);
    assert_eq!(parse_frames(&out)[0].1, 1000u16.to_be_bytes());
    assert!(matches!(testee.outcome(), Some(Outcome::Clean { .. })));
    params
}

const DEFAULT_OFFER: &str =
    "permessage-deflate; client_no_context_takeover; client_max_window_bits";

fn section_12(payload: Payload, case: usize) {
    let p = run(DEFAULT_OFFER, DeflateConfig::default(), payload, case).expect("negotiated");
    assert!(p.server_no_context_takeover && p.client_no_context_takeover);
}

/// Offers of section 13: (server_no_context_takeover, server_max_window_bits) lists.
fn offer_13(sub: usize) -> String {
    let one = |nct: bool, bits: u8| {
        let mut s = DEFAULT_OFFER.to_owned();
        if nct {
            s.push_str("; server_no_context_takeover");
        }
        if bits != 0 {
            s.push_str(&format!("; server_max_window_bits={bits}"));
        }
        s
    };
    match sub {
        1 => one(false, 0),
        2 => one(true, 0),
        3 => one(false, 8),
        4 => one(false, 15),
        5 => one(true, 8),
        6 => one(true, 15),
        7 => [one(true, 8), one(true, 0), one(false, 0)].join(", "),
        _ => unreachable!(),
    }
}

fn section_13(sub: usize, case: usize) {
    let offer = offer_13(sub);
    for testee in [
        DeflateConfig::default(),
        DeflateConfig::default().with_context_takeover(10),
    ] {
        let p = run(&offer, testee.clone(), Payload::Json, case);
        match sub {
            // We never compress with an 8-bit window: the offer is declined.
            3 | 5 => assert_eq!(p, None),
            _ => {
                let p = p.expect("negotiated");
                let asked = matches!(sub, 2 | 6 | 7);
                assert_eq!(
                    p.server_no_context_takeover,
                    asked || testee.server_no_context_takeover
                );
                // The client offered client_no_context_takeover.
                assert!(p.client_no_context_takeover);
                // No offer asks for a window below 15 (8 is declined).
                let want_bits = 15;
                assert_eq!(
                    p.server_max_window_bits,
                    want_bits.min(testee.server_max_window_bits)
                );
            }
        }
    }
}

#[test]
fn suite_client_matches_the_rfc_hello() {
    let mut c = SuiteClient {
        params: Some(run(DEFAULT_OFFER, DeflateConfig::default(), Payload::Json, 1).unwrap()),
        compress: None,
        decompress: None,
    };
    assert_eq!(
        c.deflate(b"Hello"),
        [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
    assert_eq!(
        c.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        b"Hello"
    );
}

#[test]
fn case_12_1_1() {
    section_12(Payload::Json, 1);
}

#[test]
fn case_12_1_2() {
    section_12(Payload::Json, 2);
}

#[test]
fn case_12_1_3() {
    section_12(Payload::Json, 3);
}

#[test]
fn case_12_1_4() {
    section_12(Payload::Json, 4);
}

#[test]
fn case_12_1_5() {
    section_12(Payload::Json, 5);
}

#[test]
fn case_12_1_6() {
    section_12(Payload::Json, 6);
}

#[test]
fn case_12_1_7() {
    section_12(Payload::Json, 7);
}

#[test]
fn case_12_1_8() {
    section_12(Payload::Json, 8);
}

#[test]
fn case_12_1_9() {
    section_12(Payload::Json, 9);
}

#[test]
fn case_12_1_10() {
    section_12(Payload::Json, 10);
}

#[test]
fn case_12_1_11() {
    section_12(Payload::Json, 11);
}

#[test]
fn case_12_1_12() {
    section_12(Payload::Json, 12);
}

#[test]
fn case_12_1_13() {
    section_12(Payload::Json, 13);
}

#[test]
fn case_12_1_14() {
    section_12(Payload::Json, 14);
}

#[test]
fn case_12_1_15() {
    section_12(Payload::Json, 15);
}

#[test]
fn case_12_1_16() {
    section_12(Payload::Json, 16);
}

#[test]
fn case_12_1_17() {
    section_12(Payload::Json, 17);
}

#[test]
fn case_12_1_18() {
    section_12(Payload::Json, 18);
}

#[test]
fn case_12_2_1() {
    section_12(Payload::Bitmap, 1);
}

#[test]
fn case_12_2_2() {
    section_12(Payload::Bitmap, 2);
}

#[test]
fn case_12_2_3() {
    section_12(Payload::Bitmap, 3);
}

#[test]
fn case_12_2_4() {
    section_12(Payload::Bitmap, 4);
}

#[test]
fn case_12_2_5() {
    section_12(Payload::Bitmap, 5);
}

#[test]
fn case_12_2_6() {
    section_12(Payload::Bitmap, 6);
}

#[test]
fn case_12_2_7() {
    section_12(Payload::Bitmap, 7);
}

#[test]
fn case_12_2_8() {
    section_12(Payload::Bitmap, 8);
}

#[test]
fn case_12_2_9() {
    section_12(Payload::Bitmap, 9);
}

#[test]
fn case_12_2_10() {
    section_12(Payload::Bitmap, 10);
}

#[test]
fn case_12_2_11() {
    section_12(Payload::Bitmap, 11);
}

#[test]
fn case_12_2_12() {
    section_12(Payload::Bitmap, 12);
}

#[test]
fn case_12_2_13() {
    section_12(Payload::Bitmap, 13);
}

#[test]
fn case_12_2_14() {
    section_12(Payload::Bitmap, 14);
}

#[test]
fn case_12_2_15() {
    section_12(Payload::Bitmap, 15);
}

#[test]
fn case_12_2_16() {
    section_12(Payload::Bitmap, 16);
}

#[test]
fn case_12_2_17() {
    section_12(Payload::Bitmap, 17);
}

#[test]
fn case_12_2_18() {
    section_12(Payload::Bitmap, 18);
}

#[test]
fn case_12_3_1() {
    section_12(Payload::Prose, 1);
}

#[test]
fn case_12_3_2() {
    section_12(Payload::Prose, 2);
}

#[test]
fn case_12_3_3() {
    section_12(Payload::Prose, 3);
}

#[test]
fn case_12_3_4() {
    section_12(Payload::Prose, 4);
}

#[test]
fn case_12_3_5() {
    section_12(Payload::Prose, 5);
}

#[test]
fn case_12_3_6() {
    section_12(Payload::Prose, 6);
}

#[test]
fn case_12_3_7() {
    section_12(Payload::Prose, 7);
}

#[test]
fn case_12_3_8() {
    section_12(Payload::Prose, 8);
}

#[test]
fn case_12_3_9() {
    section_12(Payload::Prose, 9);
}

#[test]
fn case_12_3_10() {
    section_12(Payload::Prose, 10);
}

#[test]
fn case_12_3_11() {
    section_12(Payload::Prose, 11);
}

#[test]
fn case_12_3_12() {
    section_12(Payload::Prose, 12);
}

#[test]
fn case_12_3_13() {
    section_12(Payload::Prose, 13);
}

#[test]
fn case_12_3_14() {
    section_12(Payload::Prose, 14);
}

#[test]
fn case_12_3_15() {
    section_12(Payload::Prose, 15);
}

#[test]
fn case_12_3_16() {
    section_12(Payload::Prose, 16);
}

#[test]
fn case_12_3_17() {
    section_12(Payload::Prose, 17);
}

#[test]
fn case_12_3_18() {
    section_12(Payload::Prose, 18);
}

#[test]
fn case_12_4_1() {
    section_12(Payload::Html, 1);
}

#[test]
fn case_12_4_2() {
    section_12(Payload::Html, 2);
}

#[test]
fn case_12_4_3() {
    section_12(Payload::Html, 3);
}

#[test]
fn case_12_4_4() {
    section_12(Payload::Html, 4);
}

#[test]
fn case_12_4_5() {
    section_12(Payload::Html, 5);
}

#[test]
fn case_12_4_6() {
    section_12(Payload::Html, 6);
}

#[test]
fn case_12_4_7() {
    section_12(Payload::Html, 7);
}

#[test]
fn case_12_4_8() {
    section_12(Payload::Html, 8);
}

#[test]
fn case_12_4_9() {
    section_12(Payload::Html, 9);
}

#[test]
fn case_12_4_10() {
    section_12(Payload::Html, 10);
}

#[test]
fn case_12_4_11() {
    section_12(Payload::Html, 11);
}

#[test]
fn case_12_4_12() {
    section_12(Payload::Html, 12);
}

#[test]
fn case_12_4_13() {
    section_12(Payload::Html, 13);
}

#[test]
fn case_12_4_14() {
    section_12(Payload::Html, 14);
}

#[test]
fn case_12_4_15() {
    section_12(Payload::Html, 15);
}

#[test]
fn case_12_4_16() {
    section_12(Payload::Html, 16);
}

#[test]
fn case_12_4_17() {
    section_12(Payload::Html, 17);
}

#[test]
fn case_12_4_18() {
    section_12(Payload::Html, 18);
}

#[test]
fn case_12_5_1() {
    section_12(Payload::Noise, 1);
}

#[test]
fn case_12_5_2() {
    section_12(Payload::Noise, 2);
}

#[test]
fn case_12_5_3() {
    section_12(Payload::Noise, 3);
}

#[test]
fn case_12_5_4() {
    section_12(Payload::Noise, 4);
}

#[test]
fn case_12_5_5() {
    section_12(Payload::Noise, 5);
}

#[test]
fn case_12_5_6() {
    section_12(Payload::Noise, 6);
}

#[test]
fn case_12_5_7() {
    section_12(Payload::Noise, 7);
}

#[test]
fn case_12_5_8() {
    section_12(Payload::Noise, 8);
}

#[test]
fn case_12_5_9() {
    section_12(Payload::Noise, 9);
}

#[test]
fn case_12_5_10() {
    section_12(Payload::Noise, 10);
}

#[test]
fn case_12_5_11() {
    section_12(Payload::Noise, 11);
}

#[test]
fn case_12_5_12() {
    section_12(Payload::Noise, 12);
}

#[test]
fn case_12_5_13() {
    section_12(Payload::Noise, 13);
}

#[test]
fn case_12_5_14() {
    section_12(Payload::Noise, 14);
}

#[test]
fn case_12_5_15() {
    section_12(Payload::Noise, 15);
}

#[test]
fn case_12_5_16() {
    section_12(Payload::Noise, 16);
}

#[test]
fn case_12_5_17() {
    section_12(Payload::Noise, 17);
}

#[test]
fn case_12_5_18() {
    section_12(Payload::Noise, 18);
}

#[test]
fn case_13_1_1() {
    section_13(1, 1);
}

#[test]
fn case_13_1_2() {
    section_13(1, 2);
}

#[test]
fn case_13_1_3() {
    section_13(1, 3);
}

#[test]
fn case_13_1_4() {
    section_13(1, 4);
}

#[test]
fn case_13_1_5() {
    section_13(1, 5);
}

#[test]
fn case_13_1_6() {
    section_13(1, 6);
}

#[test]
fn case_13_1_7() {
    section_13(1, 7);
}

#[test]
fn case_13_1_8() {
    section_13(1, 8);
}

#[test]
fn case_13_1_9() {
    section_13(1, 9);
}

#[test]
fn case_13_1_10() {
    section_13(1, 10);
}

#[test]
fn case_13_1_11() {
    section_13(1, 11);
}

#[test]
fn case_13_1_12() {
    section_13(1, 12);
}

#[test]
fn case_13_1_13() {
    section_13(1, 13);
}

#[test]
fn case_13_1_14() {
    section_13(1, 14);
}

#[test]
fn case_13_1_15() {
    section_13(1, 15);
}

#[test]
fn case_13_1_16() {
    section_13(1, 16);
}

#[test]
fn case_13_1_17() {
    section_13(1, 17);
}

#[test]
fn case_13_1_18() {
    section_13(1, 18);
}

#[test]
fn case_13_2_1() {
    section_13(2, 1);
}

#[test]
fn case_13_2_2() {
    section_13(2, 2);
}

#[test]
fn case_13_2_3() {
    section_13(2, 3);
}

#[test]
fn case_13_2_4() {
    section_13(2, 4);
}

#[test]
fn case_13_2_5() {
    section_13(2, 5);
}

#[test]
fn case_13_2_6() {
    section_13(2, 6);
}

#[test]
fn case_13_2_7() {
    section_13(2, 7);
}

#[test]
fn case_13_2_8() {
    section_13(2, 8);
}

#[test]
fn case_13_2_9() {
    section_13(2, 9);
}

#[test]
fn case_13_2_10() {
    section_13(2, 10);
}

#[test]
fn case_13_2_11() {
    section_13(2, 11);
}

#[test]
fn case_13_2_12() {
    section_13(2, 12);
}

#[test]
fn case_13_2_13() {
    section_13(2, 13);
}

#[test]
fn case_13_2_14() {
    section_13(2, 14);
}

#[test]
fn case_13_2_15() {
    section_13(2, 15);
}

#[test]
fn case_13_2_16() {
    section_13(2, 16);
}

#[test]
fn case_13_2_17() {
    section_13(2, 17);
}

#[test]
fn case_13_2_18() {
    section_13(2, 18);
}

#[test]
fn case_13_3_1() {
    section_13(3, 1);
}

#[test]
fn case_13_3_2() {
    section_13(3, 2);
}

#[test]
fn case_13_3_3() {
    section_13(3, 3);
}

#[test]
fn case_13_3_4() {
    section_13(3, 4);
}

#[test]
fn case_13_3_5() {
    section_13(3, 5);
}

#[test]
fn case_13_3_6() {
    section_13(3, 6);
}

#[test]
fn case_13_3_7() {
    section_13(3, 7);
}

#[test]
fn case_13_3_8() {
    section_13(3, 8);
}

#[test]
fn case_13_3_9() {
    section_13(3, 9);
}

#[test]
fn case_13_3_10() {
    section_13(3, 10);
}

#[test]
fn case_13_3_11() {
    section_13(3, 11);
}

#[test]
fn case_13_3_12() {
    section_13(3, 12);
}

#[test]
fn case_13_3_13() {
    section_13(3, 13);
}

#[test]
fn case_13_3_14() {
    section_13(3, 14);
}

#[test]
fn case_13_3_15() {
    section_13(3, 15);
}

#[test]
fn case_13_3_16() {
    section_13(3, 16);
}

#[test]
fn case_13_3_17() {
    section_13(3, 17);
}

#[test]
fn case_13_3_18() {
    section_13(3, 18);
}

#[test]
fn case_13_4_1() {
    section_13(4, 1);
}

#[test]
fn case_13_4_2() {
    section_13(4, 2);
}

#[test]
fn case_13_4_3() {
    section_13(4, 3);
}

#[test]
fn case_13_4_4() {
    section_13(4, 4);
}

#[test]
fn case_13_4_5() {
    section_13(4, 5);
}

#[test]
fn case_13_4_6() {
    section_13(4, 6);
}

#[test]
fn case_13_4_7() {
    section_13(4, 7);
}

#[test]
fn case_13_4_8() {
    section_13(4, 8);
}

#[test]
fn case_13_4_9() {
    section_13(4, 9);
}

#[test]
fn case_13_4_10() {
    section_13(4, 10);
}

#[test]
fn case_13_4_11() {
    section_13(4, 11);
}

#[test]
fn case_13_4_12() {
    section_13(4, 12);
}

#[test]
fn case_13_4_13() {
    section_13(4, 13);
}

#[test]
fn case_13_4_14() {
    section_13(4, 14);
}

#[test]
fn case_13_4_15() {
    section_13(4, 15);
}

#[test]
fn case_13_4_16() {
    section_13(4, 16);
}

#[test]
fn case_13_4_17() {
    section_13(4, 17);
}

#[test]
fn case_13_4_18() {
    section_13(4, 18);
}

#[test]
fn case_13_5_1() {
    section_13(5, 1);
}

#[test]
fn case_13_5_2() {
    section_13(5, 2);
}

#[test]
fn case_13_5_3() {
    section_13(5, 3);
}

#[test]
fn case_13_5_4() {
    section_13(5, 4);
}

#[test]
fn case_13_5_5() {
    section_13(5, 5);
}

#[test]
fn case_13_5_6() {
    section_13(5, 6);
}

#[test]
fn case_13_5_7() {
    section_13(5, 7);
}

#[test]
fn case_13_5_8() {
    section_13(5, 8);
}

#[test]
fn case_13_5_9() {
    section_13(5, 9);
}

#[test]
fn case_13_5_10() {
    section_13(5, 10);
}

#[test]
fn case_13_5_11() {
    section_13(5, 11);
}

#[test]
fn case_13_5_12() {
    section_13(5, 12);
}

#[test]
fn case_13_5_13() {
    section_13(5, 13);
}

#[test]
fn case_13_5_14() {
    section_13(5, 14);
}

#[test]
fn case_13_5_15() {
    section_13(5, 15);
}

#[test]
fn case_13_5_16() {
    section_13(5, 16);
}

#[test]
fn case_13_5_17() {
    section_13(5, 17);
}

#[test]
fn case_13_5_18() {
    section_13(5, 18);
}

#[test]
fn case_13_6_1() {
    section_13(6, 1);
}

#[test]
fn case_13_6_2() {
    section_13(6, 2);
}

#[test]
fn case_13_6_3() {
    section_13(6, 3);
}

#[test]
fn case_13_6_4() {
    section_13(6, 4);
}

#[test]
fn case_13_6_5() {
    section_13(6, 5);
}

#[test]
fn case_13_6_6() {
    section_13(6, 6);
}

#[test]
fn case_13_6_7() {
    section_13(6, 7);
}

#[test]
fn case_13_6_8() {
    section_13(6, 8);
}

#[test]
fn case_13_6_9() {
    section_13(6, 9);
}

#[test]
fn case_13_6_10() {
    section_13(6, 10);
}

#[test]
fn case_13_6_11() {
    section_13(6, 11);
}

#[test]
fn case_13_6_12() {
    section_13(6, 12);
}

#[test]
fn case_13_6_13() {
    section_13(6, 13);
}

#[test]
fn case_13_6_14() {
    section_13(6, 14);
}

#[test]
fn case_13_6_15() {
    section_13(6, 15);
}

#[test]
fn case_13_6_16() {
    section_13(6, 16);
}

#[test]
fn case_13_6_17() {
    section_13(6, 17);
}

#[test]
fn case_13_6_18() {
    section_13(6, 18);
}

#[test]
fn case_13_7_1() {
    section_13(7, 1);
}

#[test]
fn case_13_7_2() {
    section_13(7, 2);
}

#[test]
fn case_13_7_3() {
    section_13(7, 3);
}

#[test]
fn case_13_7_4() {
    section_13(7, 4);
}

#[test]
fn case_13_7_5() {
    section_13(7, 5);
}

#[test]
fn case_13_7_6() {
    section_13(7, 6);
}

#[test]
fn case_13_7_7() {
    section_13(7, 7);
}

#[test]
fn case_13_7_8() {
    section_13(7, 8);
}

#[test]
fn case_13_7_9() {
    section_13(7, 9);
}

#[test]
fn case_13_7_10() {
    section_13(7, 10);
}

#[test]
fn case_13_7_11() {
    section_13(7, 11);
}

#[test]
fn case_13_7_12() {
    section_13(7, 12);
}

#[test]
fn case_13_7_13() {
    section_13(7, 13);
}

#[test]
fn case_13_7_14() {
    section_13(7, 14);
}

#[test]
fn case_13_7_15() {
    section_13(7, 15);
}

#[test]
fn case_13_7_16() {
    section_13(7, 16);
}

#[test]
fn case_13_7_17() {
    section_13(7, 17);
}

#[test]
fn case_13_7_18() {
    section_13(7, 18);
}
