//! Property checks for the fuzz targets.
//!
//! Compiled twice: into the fuzz crate (`fuzz/src/lib.rs`, with a heap probe
//! from a counting allocator) and into `core/tests/fuzz_corpus.rs`, which
//! replays every corpus and regression input on stable (no heap probe). Each
//! check panics when a property fails.
//!
//! Input formats: the first byte selects options (chunking mode, config
//! variant); the rest is the traffic, read from the front, while chunk sizes
//! are read from the back (`Unstructured::arbitrary_len`), so a seed
//! is an option byte followed by real traffic verbatim.
#![allow(dead_code, unreachable_pub, clippy::all)]

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use wavecast_core::frame::{apply_mask, FrameHeader, OpCode, MAX_HEADER_LEN};
use wavecast_core::handshake::{
    accept_key, Accept, ClientHandshake, ClientRequest, Request, ServerHandshake,
};
use wavecast_core::sse::{SseError, SseEvent, SseParser};
use wavecast_core::{
    BufferPool, Chunk, CloseCode, Config, Connection, ConnectionError, Event, HandshakeError,
    Message, Role, SeedSource, Utf8Bytes, STREAM_CHUNK,
};

/// Every fuzz target, by name (also the corpus folder names). The inflate
/// target needs the `deflate` feature.
pub const TARGETS: &[&str] = &[
    "frame_header",
    "server_handshake",
    "client_handshake",
    "connection_server",
    "connection_client",
    "connection_pair",
    "connection_large",
    "connection_interleave",
    "stream",
    "sse",
    #[cfg(feature = "deflate")]
    "inflate",
];

/// Runs the check of `target` on one input.
pub fn run(target: &str, data: &[u8], heap: Option<&Heap>) {
    match target {
        "frame_header" => frame_header(data),
        "server_handshake" => server_handshake(data, heap),
        "client_handshake" => client_handshake(data, heap),
        "connection_server" => connection(Role::Server, data, heap),
        "connection_client" => connection(Role::Client, data, heap),
        "connection_pair" => connection_pair(data),
        "connection_large" => connection_large(data, heap),
        "connection_interleave" => connection_interleave(data),
        "stream" => stream(data, heap),
        "sse" => sse(data, heap),
        #[cfg(feature = "deflate")]
        "inflate" => inflate(data, heap),
        other => panic!("unknown fuzz target {other:?}"),
    }
}

/// Live-heap probe from the fuzz binary's counting allocator.
#[derive(Clone, Copy)]
pub struct Heap {
    /// Bytes currently allocated.
    pub live: fn() -> usize,
    /// Highest `live` since the last `reset_peak`.
    pub peak: fn() -> usize,
    /// Starts a new high-water mark at the current `live`.
    pub reset_peak: fn(),
}

/// Tiny limits, so every limit path is reachable with small inputs.
pub const MAX_FRAME: usize = 256;
/// Largest message.
pub const MAX_MESSAGE: usize = 1024;
/// Most fragments per message.
pub const MAX_FRAGMENTS: usize = 8;
/// Largest handshake head.
pub const MAX_HEAD: usize = 512;
/// Most header lines.
pub const MAX_HEADERS: usize = 16;
/// Write buffer limit.
pub const WRITE_LIMIT: usize = 1024;
/// Largest read an adapter hands the core at once.
pub const MAX_CHUNK: usize = 4096;

/// The fuzzing config: tiny limits and a fixed seed.
pub fn tiny_config() -> Config {
    Config::default()
        .with_seed(SeedSource::Fixed(0x5eed))
        .with_max_frame_size(MAX_FRAME)
        .with_max_message_size(MAX_MESSAGE)
        .with_max_fragments(MAX_FRAGMENTS)
        .with_max_head_size(MAX_HEAD)
        .with_max_headers(MAX_HEADERS)
        .with_write_buffer_limit(WRITE_LIMIT)
}

/// Splits the rest of `u` into chunks. `mode` (two bits): 0 sizes from the
/// input's tail, 1 one chunk, 2 one byte at a time, 3 fixed 7-byte chunks.
fn split<'a>(u: &mut Unstructured<'a>, mode: u8) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    match mode & 3 {
        1 => out.extend(rest(u).chunks(MAX_CHUNK)),
        2 => out.extend(rest(u).chunks(1)),
        3 => out.extend(rest(u).chunks(7)),
        _ => {
            while !u.is_empty() {
                let size = u.arbitrary_len::<u8>().unwrap_or(0);
                let take = if size == 0 { u.len() } else { size };
                let take = take.min(MAX_CHUNK).min(u.len());
                if take == 0 {
                    break;
                }
                out.push(u.bytes(take).expect("length checked"));
            }
        }
    }
    out
}

/// Everything left in `u`.
fn rest<'a>(u: &mut Unstructured<'a>) -> &'a [u8] {
    u.bytes(u.len()).expect("length is available")
}

/// FNV-1a over a canonical rendering of events: compares event sequences
/// without holding them (holding them would count against the heap checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Digest(u64, usize);

impl Digest {
    fn new() -> Digest {
        Digest(0xcbf29ce484222325, 0)
    }
    fn bytes(&mut self, bytes: &[u8]) {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    }
    fn event(&mut self, event: &Event) {
        self.1 += 1;
        match event {
            Event::Message(Message::Text(t)) => {
                self.bytes(b"text");
                self.bytes(t.as_bytes());
            }
            Event::Message(Message::Binary(b)) => {
                self.bytes(b"binary");
                self.bytes(b);
            }
            Event::Ping(p) => {
                self.bytes(b"ping");
                self.bytes(p);
            }
            Event::Pong(p) => {
                self.bytes(b"pong");
                self.bytes(p);
            }
            Event::Close(f) => {
                self.bytes(b"close");
                self.bytes(&f.code.0.to_be_bytes());
                self.bytes(f.reason.as_bytes());
            }
            Event::Error(e) => {
                self.bytes(b"error");
                self.bytes(format!("{e:?}").as_bytes());
            }
            other => panic!("unexpected event kind {other:?}"),
        }
    }
}

// ------------------------------------------------------------------ frames

/// Frame header decode: never panics; every header we accept re-encodes to
/// the same bytes; shorter prefixes are "need more"; masking in pieces
/// equals masking whole.
pub fn frame_header(data: &[u8]) {
    let decoded = FrameHeader::decode(data);
    // Decoding must not depend on bytes past the header.
    if let Ok(Some((h, n))) = decoded {
        assert!((2..=MAX_HEADER_LEN).contains(&n) && n <= data.len());
        assert_eq!(h.encoded_len(), n, "encoded_len disagrees with decode");
        let mut out = [0u8; MAX_HEADER_LEN];
        let written = h.encode(&mut out);
        assert_eq!(&out[..written], &data[..n], "re-encoding changed {h:?}");
        let mut v = Vec::new();
        h.encode_to(&mut v);
        assert_eq!(&v[..], &data[..n]);
        assert_eq!(FrameHeader::decode(&data[..n]), Ok(Some((h, n))));
        for cut in 0..n {
            assert_eq!(
                FrameHeader::decode(&data[..cut]),
                Ok(None),
                "prefix of {cut}"
            );
        }
        assert_eq!(OpCode::from_bits(h.opcode.bits()), h.opcode);
        assert!(h.rsv <= 7);
        assert!(h.payload_len >> 63 == 0);
        if let Some(key) = h.mask {
            let payload = &data[n..];
            let mut whole = payload.to_vec();
            apply_mask(&mut whole, key, 0);
            let mut pieces = payload.to_vec();
            let at = usize::from(data[0]) % (pieces.len() + 1);
            let (a, b) = pieces.split_at_mut(at);
            apply_mask(a, key, 0);
            apply_mask(b, key, at);
            assert_eq!(whole, pieces, "masking in pieces differs");
            apply_mask(&mut whole, key, 0);
            assert_eq!(whole, payload, "masking twice is not the identity");
        }
    } else if decoded == Ok(None) {
        // "Need more" only while the header is really incomplete.
        assert!(data.len() < MAX_HEADER_LEN);
    } else {
        // Errors are about the length field only.
        assert!(data.len() >= 4 && data[1] & 0x7f >= 126);
    }
}

// --------------------------------------------------------------- handshake

/// Where the head ends in `whole` by the handshake's rules: leading CR/LF
/// are skipped (RFC 9112 §2.2) and count towards the cap; the head ends at
/// the first CRLFCRLF. Returns `(skipped, head_end)`, `head_end` an index
/// into `whole`, when the head fits within the cap.
fn reference_head(whole: &[u8]) -> (usize, Option<usize>) {
    let skipped = whole
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let rest = &whole[skipped..];
    let end = rest
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
        .filter(|&end| skipped + end <= MAX_HEAD);
    (skipped, end.map(|e| skipped + e))
}

/// Whether `bytes` can still be the start of a request head by RFC 9112,
/// read strictly (CRLF line endings only, no line folding, one space
/// between request-line parts, HTTP/1.0 or HTTP/1.1). Written line by
/// line, independently of the core's byte-at-a-time checker. Bytes after
/// the empty line that ends the head are not looked at.
fn possible_request_prefix(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(after) = rest.strip_prefix(b"\r\n") {
        rest = after;
    }
    if rest == b"\r" {
        return true;
    }
    let pieces: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter().enumerate() {
        // A line is complete once its CR arrived (its LF follows or will).
        let (line, complete) = match piece.strip_suffix(b"\r") {
            Some(line) => (line, true),
            None if i < last => return false, // bare LF
            None => (*piece, false),
        };
        if line.contains(&b'\r') {
            return false; // CR not followed by LF
        }
        let ok = if i == 0 {
            request_line_prefix(line, complete)
        } else if complete && line.is_empty() {
            return true; // the head ends here
        } else {
            header_line_prefix(line, complete)
        };
        if !ok {
            return false;
        }
    }
    true
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `line` (without CRLF) starts, or with `complete` is, a request line.
fn request_line_prefix(line: &[u8], complete: bool) -> bool {
    let method = line.iter().take_while(|&&b| is_tchar(b)).count();
    if method == line.len() {
        return !complete;
    }
    if method == 0 || line[method] != b' ' {
        return false;
    }
    let rest = &line[method + 1..];
    let target = rest
        .iter()
        .take_while(|&&b| (0x21..=0x7e).contains(&b))
        .count();
    if target == rest.len() {
        return !complete;
    }
    if target == 0 || rest[target] != b' ' {
        return false;
    }
    let version = &rest[target + 1..];
    if complete {
        version == b"HTTP/1.1" || version == b"HTTP/1.0"
    } else {
        b"HTTP/1.1".starts_with(version) || b"HTTP/1.0".starts_with(version)
    }
}

/// `line` (without CRLF) starts, or with `complete` is, a header line.
fn header_line_prefix(line: &[u8], complete: bool) -> bool {
    let name = line.iter().take_while(|&&b| is_tchar(b)).count();
    if name == line.len() {
        return !complete;
    }
    name > 0
        && line[name] == b':'
        && line[name + 1..]
            .iter()
            .all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80)
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

/// Raw values of header `name` (case-insensitive), every occurrence.
fn raw_values<'a>(headers: &[(&'a str, &'a [u8])], name: &str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
        .collect()
}

/// Whether a comma-separated list header contains `token` (case-insensitive).
fn has_token(headers: &[(&str, &[u8])], name: &str, token: &str) -> bool {
    raw_values(headers, name).iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|item| trim_ows(item).eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// RFC 6455 §4.2.1 required fields, checked independently of the core on
/// the raw header list. Returns the key.
fn upgrade_request_ok<'a>(
    method: &str,
    http11: bool,
    headers: &[(&'a str, &'a [u8])],
) -> Result<&'a [u8], &'static str> {
    if method != "GET" {
        return Err("method is not GET");
    }
    if !http11 {
        return Err("not HTTP/1.1");
    }
    if raw_values(headers, "host").len() != 1 {
        return Err("not exactly one Host");
    }
    if !has_token(headers, "upgrade", "websocket") {
        return Err("no Upgrade: websocket");
    }
    if !has_token(headers, "connection", "upgrade") {
        return Err("no Connection: upgrade");
    }
    let versions = raw_values(headers, "sec-websocket-version");
    if versions.len() != 1 || trim_ows(versions[0]) != b"13" {
        return Err("not exactly one Sec-WebSocket-Version: 13");
    }
    let keys = raw_values(headers, "sec-websocket-key");
    if keys.len() != 1 {
        return Err("not exactly one Sec-WebSocket-Key");
    }
    let key = trim_ows(keys[0]);
    if base64_decoded_len(key) != Some(16) {
        return Err("Sec-WebSocket-Key is not 16 bytes in base64");
    }
    if !raw_values(headers, "transfer-encoding").is_empty() {
        return Err("request has a body (Transfer-Encoding)");
    }
    for v in raw_values(headers, "content-length") {
        if trim_ows(v).iter().any(|&b| b != b'0') || trim_ows(v).is_empty() {
            return Err("request has a body (Content-Length)");
        }
    }
    Ok(key)
}

/// Length of strict, padded standard base64, or `None` if invalid.
fn base64_decoded_len(s: &[u8]) -> Option<usize> {
    if s.len() % 4 != 0 {
        return None;
    }
    let pad = s.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 {
        return None;
    }
    let body = &s[..s.len() - pad];
    let ok = body
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    // Non-canonical trailing bits are rejected by the core's decoder; this
    // reference only needs to agree on the length of a valid key.
    ok.then(|| s.len() / 4 * 3 - pad)
}

fn request_headers(req: &Request) -> Vec<(&str, &[u8])> {
    req.headers().iter().collect()
}

/// Budget for the heap a handshake may hold: the head cap a few times over
/// (reader buffer, parsed copy, header slots) plus the chunk being read
/// (bytes after the head in the same read belong to the connection).
fn handshake_heap_budget(chunk: usize) -> usize {
    6 * MAX_HEAD + 2 * chunk + 4096
}

fn check_heap_since(heap: Option<&Heap>, base: Option<usize>, budget: usize, what: &str) {
    if let (Some(heap), Some(base)) = (heap, base) {
        let used = (heap.peak)().saturating_sub(base);
        assert!(
            used <= budget,
            "{what}: heap peak {used} B over budget {budget} B"
        );
    }
}

/// Server handshake: never panics; never accepts a request that violates
/// RFC 6455 §4.2.1; completes exactly when the reference head does; keeps
/// the bytes after the head; memory stays bounded by the head cap.
pub fn server_handshake(data: &[u8], heap: Option<&Heap>) {
    let mut u = Unstructured::new(data);
    let opts: u8 = u.arbitrary().unwrap_or(0);
    let chunks = split(&mut u, opts);
    let whole: Vec<u8> = chunks.concat();
    let (_, head_end) = reference_head(&whole);
    let now = Instant::now();
    let config = tiny_config();

    let mut hs = ServerHandshake::new(&config, now);
    let mut request = None;
    let mut error = None;
    let mut fed = 0;
    // Bytes seen when the error came (the failing chunk included).
    let mut seen = 0;
    for chunk in &chunks {
        let base = heap.map(|h| {
            (h.reset_peak)();
            (h.live)()
        });
        let result = hs.receive(now, chunk);
        check_heap_since(
            heap,
            base,
            handshake_heap_budget(chunk.len()),
            "server handshake",
        );
        match result {
            Ok(None) => {}
            Ok(Some(r)) => {
                assert!(request.is_none(), "request returned twice");
                let end = head_end.expect("completed a head the reference says is incomplete");
                assert!(
                    fed + chunk.len() >= end && fed < end,
                    "completed at the wrong chunk"
                );
                request = Some(r);
            }
            Err(e) => {
                error = Some(e);
                seen = fed + chunk.len();
                break;
            }
        }
        fed += chunk.len();
    }
    if let Some(e) = &error {
        // Errors are final.
        assert_eq!(hs.receive(now, b"GET"), Err(e.clone()));
        match e {
            HandshakeError::MalformedHttp(_) if request.is_some() => {} // too much leftover
            // Refused as soon as the bytes cannot begin a request: not
            // before (what came earlier was possible) and not later.
            HandshakeError::MalformedHttp(_) | HandshakeError::TlsOnPlainPort => {
                assert!(
                    !possible_request_prefix(&whole[..seen]),
                    "refused a possible request prefix: {e:?}"
                );
                assert!(
                    possible_request_prefix(&whole[..fed]),
                    "an earlier chunk was already impossible"
                );
                if *e == HandshakeError::TlsOnPlainPort {
                    assert_eq!(whole[0], 0x16, "TLS reported for a non-TLS first byte");
                }
            }
            HandshakeError::HeadTooLarge { .. } => {
                assert!(
                    request.is_none() && head_end.is_none(),
                    "head fits but {e:?}"
                );
                assert!(whole.len() >= MAX_HEAD);
                assert!(possible_request_prefix(&whole[..seen]));
            }
            HandshakeError::TooManyHeaders { .. } => {
                assert!(
                    request.is_none() && head_end.is_some(),
                    "parse error without a head: {e:?}"
                );
            }
            other => panic!("unexpected handshake error {other:?}"),
        }
    } else if request.is_none() {
        assert!(head_end.is_none(), "complete head not reported");
        assert!(whole.len() < MAX_HEAD, "head over the cap not reported");
        assert!(
            possible_request_prefix(&whole),
            "impossible input not refused"
        );
    }
    let Some(req) = request else {
        return;
    };
    let head_end = head_end.expect("checked above");
    assert!(
        possible_request_prefix(&whole[..head_end]),
        "parsed a head that breaks the request grammar"
    );
    assert!(req.headers().len() <= MAX_HEADERS);
    assert!(req.method().len() + req.target().len() <= MAX_HEAD);
    // Every accessor works on any parsed request.
    let _ = (
        req.path(),
        req.query(),
        req.origin(),
        req.host(),
        req.last_event_id(),
    );
    let _ = (
        req.subprotocols(),
        req.extensions(),
        req.is_websocket_upgrade(),
        req.has_body(),
    );

    let headers = request_headers(&req);
    let http11 = req.version() == wavecast_core::handshake::HttpVersion::Http11;
    let reference = upgrade_request_ok(req.method(), http11, &headers);
    let validated = req.validate_upgrade();
    if validated.is_ok() {
        if let Err(why) = &reference {
            panic!("accepted a request that violates RFC 6455 §4.2.1: {why}");
        }
    }
    let offered = req.subprotocols().first().map(|s| s.to_string());
    let accept = match offered.as_deref().map(|p| Accept::new().subprotocol(p)) {
        Some(Ok(a)) => a,
        _ => Accept::new(),
    };
    let chosen = accept.chosen_subprotocol().map(str::to_owned);
    let key = reference.ok().map(<[u8]>::to_vec);
    let result = hs.accept(&req, accept);
    match (&validated, &result) {
        (Ok(()), Ok(_)) => {}
        (Err(_), Err(_)) => return,
        // An error after the head (too much leftover) fails `accept` too.
        (Ok(()), Err(_)) if error.is_some() => return,
        _ => panic!("validate_upgrade and accept disagree: {validated:?} vs {result:?}"),
    }
    assert!(error.is_none(), "accepted after a receive error");
    let accepted = result.expect("checked");
    let key = key.expect("validated requests pass the reference");
    let response = &accepted.response;
    assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(response.ends_with(b"\r\n\r\n"));
    let expect = format!("\r\nSec-WebSocket-Accept: {}\r\n", accept_key(&key));
    assert!(
        contains(response, expect.as_bytes()),
        "wrong or missing accept value"
    );
    if let Some(p) = chosen {
        let expect = format!("\r\nSec-WebSocket-Protocol: {p}\r\n");
        assert!(contains(response, expect.as_bytes()));
    }
    // The bytes after the head belong to the connection: none may be lost.
    assert_eq!(
        &accepted.leftover[..],
        &whole[head_end..fed],
        "leftover bytes lost"
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The client handshake the fuzz targets answer: fixed seed, so the key and
/// the expected accept value are the same on every run.
pub fn client_fixture() -> ClientHandshake {
    let request = ClientRequest::new("example.com", "/chat")
        .and_then(|r| r.subprotocol("chat"))
        .and_then(|r| r.subprotocol("superchat"))
        .expect("valid fixture request");
    ClientHandshake::new(&tiny_config(), request, Instant::now())
}

/// Client handshake: never panics; accepts only a `101` over HTTP/1.1 with
/// `Upgrade: websocket`, `Connection: upgrade`, exactly one correct
/// `Sec-WebSocket-Accept`, no unoffered extension or subprotocol; keeps the
/// bytes after the head; memory stays bounded by the head cap.
pub fn client_handshake(data: &[u8], heap: Option<&Heap>) {
    let mut u = Unstructured::new(data);
    let opts: u8 = u.arbitrary().unwrap_or(0);
    let chunks = split(&mut u, opts);
    let whole: Vec<u8> = chunks.concat();
    let (skipped, head_end) = reference_head(&whole);
    let now = Instant::now();
    let mut hs = client_fixture();
    let expected_accept = accept_key(hs.key().as_bytes());

    let mut fed = 0;
    for chunk in &chunks {
        let base = heap.map(|h| {
            (h.reset_peak)();
            (h.live)()
        });
        let result = hs.receive(now, chunk);
        check_heap_since(
            heap,
            base,
            handshake_heap_budget(chunk.len()),
            "client handshake",
        );
        match result {
            Ok(None) => {
                fed += chunk.len();
                continue;
            }
            Ok(Some(accepted)) => {
                let end = head_end.expect("completed a head the reference says is incomplete");
                assert!(
                    fed + chunk.len() >= end && fed < end,
                    "completed at the wrong chunk"
                );
                let head = &whole[skipped..end];
                assert!(
                    // httparse also takes a bare LF as a line end (RFC 9112 §2.2).
                    head.starts_with(b"HTTP/1.1 101 ")
                        || head.starts_with(b"HTTP/1.1 101\r\n")
                        || head.starts_with(b"HTTP/1.1 101\n"),
                    "accepted a response that is not an HTTP/1.1 101"
                );
                let headers: Vec<(&str, &[u8])> = accepted.response_headers.iter().collect();
                assert!(headers.len() <= MAX_HEADERS);
                assert!(
                    has_token(&headers, "upgrade", "websocket"),
                    "accepted without Upgrade"
                );
                assert!(
                    has_token(&headers, "connection", "upgrade"),
                    "accepted without Connection"
                );
                let accepts = raw_values(&headers, "sec-websocket-accept");
                assert!(
                    accepts.len() == 1 && trim_ows(accepts[0]) == expected_accept.as_bytes(),
                    "accepted without exactly one correct Sec-WebSocket-Accept"
                );
                for v in raw_values(&headers, "sec-websocket-extensions") {
                    assert!(
                        v.split(|&b| b == b',').all(|i| trim_ows(i).is_empty()),
                        "accepted an extension we never offered"
                    );
                }
                let protocols: Vec<&[u8]> = raw_values(&headers, "sec-websocket-protocol")
                    .into_iter()
                    .flat_map(|v| v.split(|&b| b == b','))
                    .map(trim_ows)
                    .filter(|p| !p.is_empty())
                    .collect();
                match (&protocols[..], &accepted.negotiated.subprotocol) {
                    ([], None) => {}
                    ([p], Some(s)) => {
                        assert_eq!(*p, s.as_bytes());
                        assert!(s == "chat" || s == "superchat", "unoffered subprotocol {s}");
                    }
                    (p, s) => panic!("accepted subprotocol list {p:?} as {s:?}"),
                }
                assert_eq!(
                    &accepted.leftover[..],
                    &whole[end..fed + chunk.len()],
                    "leftover bytes lost"
                );
                // The handshake is over; more input is the connection's.
                assert_eq!(hs.receive(now, b"x"), Err(HandshakeError::AlreadyComplete));
                return;
            }
            Err(e) => {
                assert_eq!(hs.receive(now, b"HTTP"), Err(e.clone()), "errors are final");
                match &e {
                    HandshakeError::HeadTooLarge { .. } => {
                        assert!(head_end.is_none(), "head fits but {e:?}");
                        assert!(whole.len() >= MAX_HEAD);
                    }
                    HandshakeError::Rejected { status, .. } => {
                        assert_ne!(*status, 101, "a 101 reported as a rejection");
                        assert!(head_end.is_some());
                    }
                    _ => assert!(head_end.is_some(), "response error without a head: {e:?}"),
                }
                return;
            }
        }
    }
    assert!(head_end.is_none(), "complete head not reported");
}

// -------------------------------------------------------------- connection

/// What the application and the peer have observed so far; panics on the
/// first property violation.
struct Observer {
    role: Role,
    digest: Digest,
    /// The peer's Close or an Error was delivered: nothing more may be.
    ended: bool,
    /// Close code we must send first, if we owe one (echo or error code).
    owe_close: Option<Option<u16>>,
    /// Outgoing stream state: header bytes pending, payload bytes to skip.
    head: [u8; MAX_HEADER_LEN],
    head_len: usize,
    skip: u64,
    /// Close payload bytes seen of the close frame we are reading (code).
    close_code: Option<(Option<[u8; 4]>, Vec<u8>)>,
    sent_close: bool,
    sent_close_code: Option<Option<u16>>,
    max_message: usize,
    /// Largest data frame payload we may send; `None`: we send no data.
    data_frames: Option<u64>,
    /// The application called `close`: the close frame we send carries its
    /// code, not an echo or an error's.
    closing: bool,
}

impl Observer {
    fn new(role: Role, max_message: usize) -> Observer {
        Observer {
            role,
            digest: Digest::new(),
            ended: false,
            owe_close: None,
            head: [0; MAX_HEADER_LEN],
            head_len: 0,
            skip: 0,
            close_code: None,
            sent_close: false,
            sent_close_code: None,
            max_message,
            data_frames: None,
            closing: false,
        }
    }

    /// Also accepts data frames we send (uncompressed, payloads of at most
    /// `max_payload` bytes).
    fn sending_data(mut self, max_payload: u64) -> Observer {
        self.data_frames = Some(max_payload);
        self
    }

    fn event(&mut self, event: &Event) {
        assert!(
            !self.ended,
            "event after the peer's Close or an error: {event:?}"
        );
        self.digest.event(event);
        match event {
            Event::Message(m) => {
                assert!(
                    m.len() <= self.max_message,
                    "message of {} B over the limit",
                    m.len()
                );
                if let Message::Text(t) = m {
                    assert!(
                        std::str::from_utf8(t.as_bytes()).is_ok(),
                        "invalid UTF-8 delivered"
                    );
                }
            }
            Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
            Event::Close(f) => {
                assert!(f.reason.len() <= 123);
                assert!(std::str::from_utf8(f.reason.as_bytes()).is_ok());
                if f.code != CloseCode::NO_STATUS {
                    assert!(
                        f.code.is_sendable(),
                        "delivered unsendable close code {}",
                        f.code
                    );
                }
                self.ended = true;
                if !self.sent_close && !self.closing {
                    self.owe_close = Some((f.code != CloseCode::NO_STATUS).then_some(f.code.0));
                }
            }
            Event::Error(e) => {
                self.ended = true;
                if let ConnectionError::Protocol(p) = e {
                    if !self.sent_close && !self.closing {
                        self.owe_close = Some(Some(p.close_code().0));
                    }
                }
            }
            _ => {}
        }
    }

    /// Checks our outgoing bytes: valid frames, masked only by clients,
    /// only control frames (nothing here sends data), nothing after Close.
    fn output(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = (self.skip.min(bytes.len() as u64)) as usize;
                if let Some((key, code)) = &mut self.close_code {
                    for &b in &bytes[..n] {
                        if code.len() < 2 {
                            let i = code.len();
                            code.push(b ^ key.map_or(0, |k| k[i % 4]));
                        }
                    }
                }
                self.skip -= n as u64;
                bytes = &bytes[n..];
                if self.skip == 0 {
                    self.end_close();
                }
                continue;
            }
            assert!(!self.sent_close, "frame sent after our Close frame");
            let take = (MAX_HEADER_LEN - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&bytes[..take]);
            let have = self.head_len + take;
            match FrameHeader::decode(&self.head[..have]) {
                Ok(Some((h, n))) => {
                    let used = n - self.head_len;
                    self.head_len = 0;
                    bytes = &bytes[used..];
                    assert_eq!(h.mask.is_some(), self.role == Role::Client, "masking wrong");
                    let data = matches!(
                        h.opcode,
                        OpCode::Text | OpCode::Binary | OpCode::Continuation
                    );
                    match (data, self.data_frames) {
                        (true, Some(max)) => {
                            assert!(h.rsv == 0 && h.payload_len <= max, "bad data frame {h:?}")
                        }
                        _ => assert!(
                            h.fin && h.rsv == 0 && h.payload_len <= 125,
                            "bad control frame {h:?}"
                        ),
                    }
                    match h.opcode {
                        OpCode::Pong => {}
                        OpCode::Ping | OpCode::Text | OpCode::Binary | OpCode::Continuation
                            if self.data_frames.is_some() => {}
                        OpCode::Close => {
                            let owed = self.owe_close.take();
                            assert!(owed.is_some(), "unprompted close frame");
                            self.sent_close_code = owed;
                            self.close_code = Some((h.mask, Vec::new()));
                        }
                        other => panic!("sent {other:?} unprompted"),
                    }
                    self.skip = h.payload_len;
                    if self.skip == 0 {
                        self.end_close();
                    }
                }
                Ok(None) => {
                    self.head_len = have;
                    bytes = &bytes[take..];
                }
                Err(e) => panic!("we sent an undecodable header: {e:?}"),
            }
        }
    }

    fn end_close(&mut self) {
        if let Some((_, code)) = self.close_code.take() {
            let sent = match code[..] {
                [] => None,
                [a, b] => Some(u16::from_be_bytes([a, b])),
                _ => panic!("close payload of one byte"),
            };
            assert_eq!(Some(sent), self.sent_close_code, "wrong close code sent");
            self.sent_close = true;
        }
    }

    /// After a complete drain the output must end on a frame boundary.
    fn drained(&self) {
        assert!(
            self.head_len == 0 && self.skip == 0,
            "output ended mid-frame"
        );
    }
}

/// Polls every event and drains all output through `obs`.
fn drain(conn: &mut Connection, obs: &mut Observer, out: &mut Vec<u8>) {
    loop {
        while let Some(event) = conn.poll_event() {
            obs.event(&event);
        }
        let mut idle = true;
        loop {
            out.clear();
            let chunk = conn.poll_transmit(out);
            obs.output(out);
            if let Some(c) = &chunk {
                obs.output(c);
            }
            if chunk.is_none() && out.is_empty() {
                break;
            }
            idle = false;
        }
        if idle && !conn.has_events() {
            break;
        }
    }
    obs.drained();
    if let Some(code) = obs.owe_close {
        panic!("owed a close frame ({code:?}) but sent none");
    }
}

/// Unwritten pongs the core keeps before answering only the latest ping.
const MAX_OWED_PONGS: usize = 16;

/// Most a connection may hold after all events and output are drained: the
/// message being reassembled, plus a fixed overhead (config, generator).
const QUIESCENT_OVERHEAD: usize = 2048;

/// A server or client `Connection` fed arbitrary bytes in arbitrary chunks
/// (honouring `wants_read`, as an adapter does): never panics; text is valid
/// UTF-8; no message over the limit; queued output and held memory stay
/// bounded; after the peer's Close or an error nothing more is delivered;
/// the close we send carries the right code; any chunking gives the same
/// events as feeding everything at once.
pub fn connection(role: Role, data: &[u8], heap: Option<&Heap>) {
    let mut u = Unstructured::new(data);
    let opts: u8 = u.arbitrary().unwrap_or(0);
    let config = tiny_config().with_auto_pong(opts & 0x10 == 0);
    let eager = opts & 0x20 != 0;
    let chunks = split(&mut u, opts);
    let start = Instant::now();

    // Reference: everything in one read, events polled at the end.
    let reference = {
        let whole: Vec<u8> = chunks.concat();
        let mut conn = Connection::new(role, config.clone(), start);
        conn.receive(start, &whole);
        let mut digest = Digest::new();
        while let Some(e) = conn.poll_event() {
            digest.event(&e);
        }
        digest
    };

    let mut out = Vec::with_capacity(64 << 10);
    let out_cap = out.capacity();
    let mut obs = Observer::new(role, MAX_MESSAGE);
    let base = heap.map(|h| (h.live)());
    let held = |out: &Vec<u8>| {
        let heap = heap.expect("only called with a probe");
        ((heap.live)() - base.expect("set with heap")).saturating_sub(out.capacity() - out_cap)
    };
    let mut conn = Connection::new(role, config, start);
    // Bytes read since the application last took all its events.
    let mut undrained = 0;
    for chunk in &chunks {
        if !conn.wants_read() {
            // Backpressure: an adapter serves the application and writes
            // before it reads again.
            drain(&mut conn, &mut obs, &mut out);
            undrained = 0;
            if heap.is_some() {
                let h = held(&out);
                assert!(
                    h <= MAX_MESSAGE + QUIESCENT_OVERHEAD,
                    "idle connection holds {h} B"
                );
            }
            if !conn.wants_read() {
                assert!(conn.is_closed(), "reads stay paused after a full drain");
                break;
            }
        }
        conn.receive(start, chunk);
        undrained += chunk.len();
        // Input alone only makes us owe control frames: a bounded run of
        // pongs (the core keeps at most 16 unwritten) and one close.
        let owed = (MAX_OWED_PONGS + 1) * (125 + MAX_HEADER_LEN);
        assert!(
            conn.queued_bytes() <= owed,
            "output grew: {}",
            conn.queued_bytes()
        );
        if heap.is_some() {
            // Undrained events may hold what the reads since the last drain
            // brought in (and the queue's slack), never more. Not just this
            // read: after a violation the core still wants reads (to see
            // EOF) while the events decoded before it wait unread.
            let h = held(&out);
            let budget = 2 * MAX_MESSAGE + 64 * undrained + 8 * 1024;
            assert!(
                h <= budget,
                "connection holds {h} B after {undrained} B read since the last drain",
            );
        }
        if eager {
            drain(&mut conn, &mut obs, &mut out);
            undrained = 0;
        }
    }
    drain(&mut conn, &mut obs, &mut out);
    if heap.is_some() {
        let h = held(&out);
        assert!(
            h <= MAX_MESSAGE + QUIESCENT_OVERHEAD,
            "idle connection holds {h} B"
        );
    }
    assert_eq!(
        obs.digest, reference,
        "events depend on how the input was split"
    );

    let ended = obs.ended;
    conn.receive_eof(start);
    drain(&mut conn, &mut obs, &mut out);
    if !ended {
        assert!(obs.ended, "EOF before a close was not reported");
    }
    assert!(conn.is_closed(), "not closed after EOF");
    assert!(conn.poll_event().is_none());
}

// ------------------------------------------------------------------- pair

/// One step of the application or the network in the pair target.
#[derive(Arbitrary, Debug)]
enum Action {
    SendText {
        client: bool,
        text: String,
    },
    SendBinary {
        client: bool,
        data: Vec<u8>,
    },
    Ping {
        client: bool,
        payload: Vec<u8>,
    },
    Close {
        client: bool,
        code: u16,
        reason: String,
    },
    Transmit {
        client: bool,
    },
    Deliver {
        to_server: bool,
        max: u16,
    },
    Poll {
        client: bool,
        max: u8,
    },
    Advance {
        millis: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct PairSetup {
    /// Fragment size index for each side: 0 none, else 128 + 16 * (n % 9).
    client_fragment: u8,
    server_fragment: u8,
    heartbeat_ms: Option<u16>,
    idle_ms: Option<u16>,
    auto_pong: bool,
}

struct Side {
    conn: Connection,
    /// Messages the application sent (whole), in order.
    sent: Vec<Message>,
    /// Messages the application received, in order.
    received: Vec<Message>,
    pings_sent: Vec<Vec<u8>>,
    /// The close frame sent through `close`, if that was our first close.
    closed_with: Option<(u16, String)>,
    got_close: bool,
    failed: bool,
    max_send: usize,
}

fn side_config(fragment: u8, setup: &PairSetup) -> (Config, usize) {
    let mut c = tiny_config().with_auto_pong(setup.auto_pong);
    let max_send = if fragment == 0 {
        MAX_FRAME
    } else {
        let size = 128 + 16 * (fragment as usize % 9);
        c = c.with_fragment_size(Some(size));
        MAX_MESSAGE.min(size * MAX_FRAGMENTS)
    };
    if let Some(ms) = setup.heartbeat_ms {
        c = c.with_heartbeat_interval(Some(Duration::from_millis(u64::from(ms) + 1)));
    }
    if let Some(ms) = setup.idle_ms {
        c = c.with_idle_timeout(Some(Duration::from_millis(u64::from(ms) + 1)));
    }
    (c, max_send)
}

fn sendable(code: u16) -> CloseCode {
    let code = CloseCode(code);
    if code.is_sendable() {
        code
    } else {
        CloseCode(3000 + code.0 % 2000)
    }
}

/// A ping from one end of a pair (payload cut to 125 bytes), recorded in
/// `pings_sent` if queued.
fn ping_from(conn: &mut Connection, pings_sent: &mut Vec<Vec<u8>>, mut payload: Vec<u8>) {
    payload.truncate(125);
    if conn.send_ping(payload.clone()).is_ok() {
        pings_sent.push(payload);
    }
}

/// A close from one end of a pair; `closed_with` records the frame the
/// peer must see when this end starts the close handshake. Only the first
/// close may succeed.
fn close_from(
    conn: &mut Connection,
    closed_with: &mut Option<(u16, String)>,
    now: Instant,
    code: u16,
    mut reason: String,
) {
    cut_str(&mut reason, 123);
    let first = !conn.is_close_sent() && !conn.is_closed();
    let peer_closed = conn.close_received().is_some();
    let code = sendable(code);
    if conn.close(now, code, &reason).is_ok() {
        assert!(first);
        if !peer_closed {
            *closed_with = Some((code.0, reason));
        }
    }
}

fn cut_str(s: &mut String, max: usize) {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

impl Side {
    fn poll(&mut self, max: usize, now: Instant) {
        let _ = now;
        for _ in 0..max {
            let Some(event) = self.conn.poll_event() else {
                return;
            };
            assert!(
                !self.got_close && !self.failed,
                "event after close/error: {event:?}"
            );
            match event {
                Event::Message(m) => self.received.push(m),
                Event::Ping(_) => {}
                Event::Pong(p) => assert!(
                    self.pings_sent.iter().any(|s| s[..] == p[..]) || p.is_empty(),
                    "pong for a ping never sent"
                ),
                Event::Close(_) => self.got_close = true,
                Event::Error(ConnectionError::Timeout(_)) => self.failed = true,
                Event::Error(e) => panic!("two correct peers failed with {e:?}"),
                other => panic!("unexpected event {other:?}"),
            }
        }
    }

    fn transmit(&mut self, wire: &mut Vec<u8>) -> bool {
        let before = wire.len();
        loop {
            let chunk = self.conn.poll_transmit(wire);
            match chunk {
                Some(c) => wire.extend_from_slice(&c),
                None => {
                    // `poll_transmit` may stop at the write limit.
                    if !self.conn.has_transmit() {
                        return wire.len() != before;
                    }
                }
            }
        }
    }
}

/// A client and a server wired together, driven by arbitrary application
/// actions (send, ping, close), network steps (write, deliver a prefix of
/// the bytes in flight) and time: whatever one side sends whole, the other
/// receives whole and in order, until a close; two correct peers never see
/// a protocol error.
pub fn connection_pair(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = PairSetup::arbitrary(&mut u) else {
        return;
    };
    let mut now = Instant::now();
    let (cc, client_max) = side_config(setup.client_fragment, &setup);
    let (sc, server_max) = side_config(setup.server_fragment, &setup);
    let side = |role, config, max_send| Side {
        conn: Connection::new(role, config, now),
        sent: Vec::new(),
        received: Vec::new(),
        pings_sent: Vec::new(),
        closed_with: None,
        got_close: false,
        failed: false,
        max_send,
    };
    let mut client = side(Role::Client, cc, client_max);
    let mut server = side(Role::Server, sc, server_max);
    let mut c2s = Vec::new();
    let mut s2c = Vec::new();

    let mut steps = 0;
    while let Ok(action) = Action::arbitrary(&mut u) {
        steps += 1;
        if steps > 512 {
            break;
        }
        match action {
            Action::SendText {
                client: c,
                mut text,
            } => {
                let s = if c { &mut client } else { &mut server };
                cut_str(&mut text, s.max_send);
                let m = Message::Text(text.into());
                if s.conn.send(m.clone()).is_ok() {
                    s.sent.push(m);
                }
            }
            Action::SendBinary {
                client: c,
                mut data,
            } => {
                let s = if c { &mut client } else { &mut server };
                data.truncate(s.max_send);
                let m = Message::Binary(data.into());
                if s.conn.send(m.clone()).is_ok() {
                    s.sent.push(m);
                }
            }
            Action::Ping { client: c, payload } => {
                let s = if c { &mut client } else { &mut server };
                ping_from(&mut s.conn, &mut s.pings_sent, payload);
            }
            Action::Close {
                client: c,
                code,
                reason,
            } => {
                let s = if c { &mut client } else { &mut server };
                close_from(&mut s.conn, &mut s.closed_with, now, code, reason);
            }
            Action::Transmit { client: c } => {
                if c {
                    client.transmit(&mut c2s);
                } else {
                    server.transmit(&mut s2c);
                }
            }
            Action::Deliver { to_server, max } => {
                let (wire, to) = if to_server {
                    (&mut c2s, &mut server)
                } else {
                    (&mut s2c, &mut client)
                };
                if to.conn.wants_read() {
                    let n = usize::from(max).min(wire.len());
                    to.conn.receive(now, &wire[..n]);
                    wire.drain(..n);
                }
            }
            Action::Poll { client: c, max } => {
                let s = if c { &mut client } else { &mut server };
                s.poll(usize::from(max), now);
            }
            Action::Advance { millis } => {
                now += Duration::from_millis(u64::from(millis));
                client.conn.handle_timeout(now);
                server.conn.handle_timeout(now);
            }
        }
        check_order(&client, &server);
        check_order(&server, &client);
    }

    // Settle: the application reads everything, the network delivers
    // everything, no time passes.
    for _ in 0..10_000 {
        client.poll(usize::MAX, now);
        server.poll(usize::MAX, now);
        let mut moved = client.transmit(&mut c2s) | server.transmit(&mut s2c);
        for (wire, to) in [(&mut c2s, &mut server), (&mut s2c, &mut client)] {
            if wire.is_empty() {
                continue;
            }
            if to.conn.is_closed() {
                wire.clear(); // the transport is gone
                continue;
            }
            assert!(
                to.conn.wants_read(),
                "reads paused after draining everything"
            );
            to.conn.receive(now, wire);
            wire.clear();
            moved = true;
        }
        if !moved && !client.conn.has_events() && !server.conn.has_events() {
            break;
        }
    }
    if server.conn.is_closed() && !client.conn.is_closed() {
        // The server closes the TCP connection; the client sees EOF.
        client.conn.receive_eof(now);
        client.poll(usize::MAX, now);
    }
    check_order(&client, &server);
    check_order(&server, &client);
    for (from, to) in [(&client, &server), (&server, &client)] {
        if !to.failed {
            assert_eq!(
                to.received.len(),
                from.sent.len(),
                "messages lost although the receiver never failed"
            );
        }
        if to.got_close && from.closed_with.is_some() {
            let frame = to.conn.close_received().expect("close event seen");
            let (code, reason) = from.closed_with.as_ref().expect("checked");
            assert_eq!(
                (frame.code.0, frame.reason.as_str()),
                (*code, reason.as_str())
            );
        }
    }
}

/// What `to` received is a prefix of what `from` sent, message by message.
fn check_order(from: &Side, to: &Side) {
    assert!(
        to.received.len() <= from.sent.len(),
        "received messages never sent"
    );
    for (i, (r, s)) in to.received.iter().zip(&from.sent).enumerate() {
        assert!(r == s, "message {i} differs: sent {s:?}, received {r:?}");
    }
}

// ------------------------------------------------------------------ large

/// Frame limits of the large targets: the in-place threshold, one past it,
/// and two large ones.
const LARGE_FRAMES: [usize; 4] = [64 << 10, (64 << 10) + 1, 256 << 10, 1 << 20];
/// Message limits of the large targets.
const LARGE_MESSAGES: [usize; 3] = [1 << 20, (1 << 20) + (64 << 10), 2 << 20];
/// Most wire bytes one input of `connection_large` builds.
const LARGE_STREAM: usize = 3 << 20;
/// Most payload bytes one input sends.
const LARGE_SENT: usize = 2 << 20;
/// The in-place read window of the core (`IN_PLACE_WINDOW`), which is also
/// the remaining payload from which reads go in place.
const IN_PLACE: usize = 64 << 10;
/// Reads after which a run switches to a 64 KiB scratch buffer and reads as
/// much as the target lends, so inputs with one-byte reads and megabytes of
/// traffic stay fast.
const MAX_SMALL_READS: usize = 20_000;

/// A payload length, chosen compactly so megabyte frames need a few input
/// bytes.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Tiny(u8),
    /// The in-place threshold plus or minus a little.
    AroundWindow(i8),
    /// Multiples of 16, up to 1 MiB.
    Medium(u16),
    /// Anything up to just past the limit.
    Any(u32),
    /// The limit plus or minus a little.
    AtLimit(i8),
}

impl Len {
    fn get(self, limit: usize) -> usize {
        match self {
            Len::Tiny(n) => usize::from(n),
            Len::AroundWindow(d) => (IN_PLACE as isize + isize::from(d)) as usize,
            Len::Medium(n) => usize::from(n) * 16,
            Len::Any(n) => n as usize % (limit + 2),
            Len::AtLimit(d) => (limit as isize + isize::from(d)).max(0) as usize,
        }
    }
}

/// A payload's contents, chosen compactly.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Fill {
    Byte(u8),
    Counting(u8),
    /// Valid UTF-8 of 1- to 4-byte characters (so multi-byte characters
    /// straddle reads, windows and fragments), padded to the length.
    Text(u8),
    /// Xorshift noise (incompressible).
    Noise(u32),
    /// Text with one byte replaced.
    Patched {
        seed: u8,
        at: u32,
        byte: u8,
    },
}

const ALPHABET: [&str; 8] = ["a", "é", "€", "😀", "z ", "ß", "\u{7ff}", "\u{10ffff}"];

impl Fill {
    /// Appends `len` bytes.
    fn write(self, out: &mut Vec<u8>, len: usize) {
        let start = out.len();
        out.reserve(len);
        match self {
            Fill::Byte(b) => out.resize(start + len, b),
            Fill::Counting(b) => out.extend((0..len).map(|i| (i as u8).wrapping_add(b))),
            Fill::Text(seed) | Fill::Patched { seed, .. } => {
                let mut i = usize::from(seed);
                while start + len - out.len() >= 4 {
                    out.extend_from_slice(ALPHABET[i % ALPHABET.len()].as_bytes());
                    i = i.wrapping_mul(3).wrapping_add(1) % 251;
                }
                out.resize(start + len, b'.');
                if let Fill::Patched { at, byte, .. } = self {
                    if len > 0 {
                        out[start + at as usize % len] = byte;
                    }
                }
            }
            Fill::Noise(seed) => {
                let mut x = seed | 1;
                out.extend((0..len).map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                }));
            }
        }
    }

    /// The same pattern as valid UTF-8.
    fn text(self) -> Fill {
        match self {
            Fill::Byte(s) | Fill::Counting(s) | Fill::Text(s) | Fill::Patched { seed: s, .. } => {
                Fill::Text(s)
            }
            Fill::Noise(s) => Fill::Text(s as u8),
        }
    }
}

/// A data message built from a length and a fill, kept as its recipe so
/// the payload handed to the core is its only copy (and can be recycled).
#[derive(Clone, Copy, Debug)]
struct Recipe {
    text: bool,
    len: usize,
    fill: Fill,
}

impl Recipe {
    fn bytes(self) -> Vec<u8> {
        let mut v = Vec::new();
        let fill = if self.text {
            self.fill.text()
        } else {
            self.fill
        };
        fill.write(&mut v, self.len);
        v
    }

    fn message(self) -> Message {
        let v = self.bytes();
        if self.text {
            Message::Text(Utf8Bytes::try_from(v).expect("text recipes are UTF-8"))
        } else {
            Message::Binary(v.into())
        }
    }
}

/// One frame (or raw bytes) of the traffic `connection_large` reads.
#[derive(Arbitrary, Debug)]
enum Wire {
    Frame {
        fin: bool,
        /// 0 text, 1 binary, 2 and 6 continuation, 3 ping, 4 pong, 5 close,
        /// 7 the opcode in the high nibble (reserved ones included).
        kind: u8,
        /// Reserved bits when 240 or more; 239 flips the masking.
        rsv: u8,
        key: [u8; 4],
        len: Len,
        fill: Fill,
    },
    Close {
        code: u16,
        reason: String,
        key: [u8; 4],
    },
    Raw(Vec<u8>),
}

/// Appends `w` to `stream` as a peer of `role` would send it (masked to a
/// server), within [`LARGE_STREAM`].
fn emit(w: &Wire, role: Role, frame_limit: usize, stream: &mut Vec<u8>) {
    let masks = role == Role::Server;
    let room = LARGE_STREAM.saturating_sub(stream.len());
    match w {
        Wire::Frame {
            fin,
            kind,
            rsv,
            key,
            len,
            fill,
        } => {
            let opcode = match kind % 8 {
                0 => OpCode::Text,
                1 => OpCode::Binary,
                3 => OpCode::Ping,
                4 => OpCode::Pong,
                5 => OpCode::Close,
                7 => OpCode::from_bits(kind >> 4),
                _ => OpCode::Continuation,
            };
            let limit = if opcode.is_control() {
                125
            } else {
                frame_limit
            };
            let len = len.get(limit);
            // Past the limit the header is refused; its payload is not read.
            let body = if len > limit { len.min(1024) } else { len }.min(room);
            let mask = (masks != (*rsv == 239)).then_some(*key);
            let header = FrameHeader {
                fin: *fin,
                rsv: if *rsv >= 240 { rsv & 7 } else { 0 },
                opcode,
                mask,
                payload_len: len as u64,
            };
            if room < MAX_HEADER_LEN {
                return;
            }
            header.encode_to(stream);
            let at = stream.len();
            fill.write(stream, body.min(room - MAX_HEADER_LEN));
            if let Some(key) = mask {
                apply_mask(&mut stream[at..], key, 0);
            }
        }
        Wire::Close { code, reason, key } => {
            let mut payload = Vec::new();
            if *code != 0 {
                payload.extend_from_slice(&code.to_be_bytes());
                let mut reason = reason.clone();
                cut_str(&mut reason, 123);
                payload.extend_from_slice(reason.as_bytes());
            }
            if room < payload.len() + MAX_HEADER_LEN {
                return;
            }
            let mask = masks.then_some(*key);
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Close,
                mask,
                payload_len: payload.len() as u64,
            }
            .encode_to(stream);
            let at = stream.len();
            stream.extend_from_slice(&payload);
            if let Some(key) = mask {
                apply_mask(&mut stream[at..], key, 0);
            }
        }
        Wire::Raw(bytes) => stream.extend_from_slice(&bytes[..bytes.len().min(room)]),
    }
}

#[derive(Arbitrary, Debug)]
struct LargeSetup {
    /// Test a client (reading unmasked frames) instead of a server.
    client: bool,
    frame_limit: u8,
    message_limit: u8,
    auto_pong: bool,
    /// Scratch size: a few bytes, 4 KiB, 64 KiB, or anything to 128 KiB.
    scratch: u32,
    /// Our fragment size, by index.
    fragment: Option<u8>,
    /// Write limit, by index.
    write_limit: u8,
    /// Buffers recycled into the pool before the first read.
    pooled: Vec<Len>,
    /// End with a read of 0 bytes (end of stream).
    eof: bool,
    traffic: Vec<Wire>,
}

/// One step of the adapter or the application in `connection_large`.
#[derive(Arbitrary, Debug)]
enum LargeOp {
    /// `count` reads of at most `size` bytes each (0: as much as the
    /// target lends).
    Read {
        size: u32,
        count: u8,
    },
    /// A read target written to and dropped uncommitted (the read was
    /// pending or failed).
    Abandon {
        byte: u8,
        len: u32,
    },
    Poll {
        max: u8,
    },
    Transmit,
    Send {
        text: bool,
        len: Len,
        fill: Fill,
    },
    Ping {
        len: u8,
        byte: u8,
    },
    Close {
        code: u16,
    },
    /// A written-out payload of this size goes back to the pool.
    Recycle {
        len: Len,
    },
}

/// The connection under test in `connection_large`, its application, and a
/// peer core decoding everything it writes.
struct Large<'h> {
    conn: Connection,
    obs: Observer,
    pool: BufferPool,
    scratch: Vec<u8>,
    reads: usize,
    out: Vec<u8>,
    /// Decodes our output; what it receives must be what we sent.
    peer: Connection,
    peer_out: Vec<u8>,
    sent: std::collections::VecDeque<Recipe>,
    sent_bytes: usize,
    pings: std::collections::VecDeque<Vec<u8>>,
    peer_closed: bool,
    stream: Vec<u8>,
    pos: usize,
    now: Instant,
    heap: Option<&'h Heap>,
    in_place: usize,
}

impl Large<'_> {
    /// The application takes up to `max` events, recycling message buffers
    /// once it is done with them.
    fn poll(&mut self, max: usize) {
        for _ in 0..max {
            let Some(event) = self.conn.poll_event() else {
                return;
            };
            self.obs.event(&event);
            if let Event::Message(m) = event {
                recycle(&mut self.pool, m);
            }
        }
    }

    /// Drains the output through the observer and into the peer, as a
    /// driver writes it; chunks written go back to the pool.
    fn transmit(&mut self) {
        loop {
            self.out.clear();
            let chunk = self.conn.poll_transmit(&mut self.out);
            let buf = std::mem::take(&mut self.out);
            self.written(&buf);
            self.out = buf;
            if let Some(c) = chunk {
                self.written(&c);
                self.pool.recycle(c);
            } else if self.out.is_empty() && !self.conn.has_transmit() {
                return;
            }
        }
    }

    fn written(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.obs.output(bytes);
        self.peer.receive(self.now, bytes);
        while let Some(event) = self.peer.poll_event() {
            assert!(!self.peer_closed, "peer decoded {event:?} after our Close");
            match event {
                Event::Message(m) => {
                    let recipe = self
                        .sent
                        .pop_front()
                        .expect("peer got a message never sent");
                    assert_eq!(m.is_text(), recipe.text, "message kind changed");
                    assert!(
                        m.as_bytes() == &recipe.bytes()[..],
                        "message of {} B changed on the way (sent {recipe:?})",
                        m.len()
                    );
                    recycle(&mut self.pool, m);
                }
                Event::Ping(p) => {
                    let sent = self.pings.pop_front().expect("peer got a ping never sent");
                    assert_eq!(&p[..], &sent[..], "ping payload changed");
                }
                Event::Pong(p) => assert!(p.len() <= 125),
                Event::Close(_) => self.peer_closed = true,
                Event::Error(e) => panic!("our output does not decode: {e}"),
                other => panic!("unexpected event {other:?}"),
            }
        }
        // The peer's own answers go nowhere.
        loop {
            self.peer_out.clear();
            if self.peer.poll_transmit(&mut self.peer_out).is_none() && self.peer_out.is_empty() {
                break;
            }
        }
    }

    /// Serves the application fully: every event, all output.
    fn serve(&mut self) {
        loop {
            self.poll(usize::MAX);
            self.transmit();
            if !self.conn.has_events() {
                break;
            }
        }
        self.obs.drained();
        if let Some(code) = self.obs.owe_close {
            panic!("owed a close frame ({code:?}) but sent none");
        }
    }

    /// Reads as an adapter does: only while the core wants input, serving
    /// the application first when it does not. False once no read is
    /// possible any more.
    fn may_read(&mut self) -> bool {
        if self.conn.wants_read() {
            return true;
        }
        self.serve();
        if self.conn.wants_read() {
            return true;
        }
        assert!(
            self.conn.is_closed(),
            "reads stay paused after a full drain"
        );
        false
    }

    fn scratch_size(&mut self) {
        self.reads += 1;
        if self.reads == MAX_SMALL_READS && self.scratch.len() < IN_PLACE {
            self.scratch = vec![0x5c; IN_PLACE];
        }
    }

    /// One read of at most `size` bytes (0: all the target lends) of the
    /// traffic. False when there is nothing left to read.
    fn read(&mut self, size: usize) -> bool {
        if self.pos == self.stream.len() || !self.may_read() {
            return false;
        }
        self.scratch_size();
        let base = self.heap.map(|h| {
            (h.reset_peak)();
            (h.live)()
        });
        let mut target = self.conn.read_target(&mut self.scratch, &mut self.pool);
        let in_place = target.is_in_place();
        let buf = target.buf();
        if in_place {
            assert_eq!(buf.len(), IN_PLACE, "in-place window");
        }
        let lent = buf.len();
        assert!(lent > 0, "an empty read target");
        let want = if size == 0 || self.reads >= MAX_SMALL_READS {
            lent
        } else {
            size.min(lent)
        };
        let n = want.min(self.stream.len() - self.pos);
        buf[..n].copy_from_slice(&self.stream[self.pos..self.pos + n]);
        target.commit(self.now, n);
        if let (Some(h), Some(base)) = (self.heap, base) {
            // Memory follows the bytes received: a message buffer at most
            // doubles past what arrived (or is the in-place window), and
            // events cost a bounded amount per byte.
            let grew = (h.peak)().saturating_sub(base);
            let budget = 2 * (self.pos + n.max(IN_PLACE)) + 64 * n + (16 << 10);
            assert!(
                grew <= budget,
                "a read of {n} B at {} grew the heap by {grew} B",
                self.pos
            );
        }
        self.pos += n;
        self.in_place += usize::from(in_place);
        true
    }

    fn abandon(&mut self, byte: u8, len: usize) {
        if self.pos == self.stream.len() || !self.may_read() {
            return;
        }
        self.scratch_size();
        let mut target = self.conn.read_target(&mut self.scratch, &mut self.pool);
        let buf = target.buf();
        let k = len % (buf.len() + 1);
        buf[..k].fill(byte);
        drop(target);
    }
}

fn recycle(pool: &mut BufferPool, m: Message) {
    match m {
        Message::Binary(b) => pool.recycle(b),
        Message::Text(t) => pool.recycle(t.into_bytes()),
    }
}

/// A server or client `Connection` with large limits (64 KiB to 1 MiB
/// frames, 1 to 2 MiB messages) reading traffic built from compact frame
/// descriptions (megabyte payloads from a few input bytes) through the one
/// input API, `read_target`: scratch buffers of 1 B to 128 KiB, reads of
/// any size, abandoned reads, in-place reads inside large payloads, a
/// buffer pool fed with recycled payloads, while the application polls,
/// sends large messages, pings and closes. Never panics; the events equal
/// those of feeding the same bytes through `receive` at once (so no stale
/// pool or scratch byte and no abandoned read leaks in); a read grows the
/// heap only in proportion to the bytes received; our output is valid
/// frames with the right close code, and a peer core decodes from it
/// exactly the messages and pings we sent, in order; EOF ends it.
pub fn connection_large(data: &[u8], heap: Option<&Heap>) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = LargeSetup::arbitrary(&mut u) else {
        return;
    };
    let role = if setup.client {
        Role::Client
    } else {
        Role::Server
    };
    let frame_limit = LARGE_FRAMES[usize::from(setup.frame_limit) % LARGE_FRAMES.len()];
    let message_limit = LARGE_MESSAGES[usize::from(setup.message_limit) % LARGE_MESSAGES.len()];
    let fragment = setup
        .fragment
        .map(|i| [125, 1024, 4096, IN_PLACE - 1, IN_PLACE, 100_000][usize::from(i) % 6]);
    let config = Config::default()
        .with_seed(SeedSource::Fixed(0x1a49e))
        .with_max_frame_size(frame_limit)
        .with_max_message_size(message_limit)
        .with_auto_pong(setup.auto_pong)
        .with_fragment_size(fragment)
        .with_write_buffer_limit([64 << 10, 1024, 1 << 20][usize::from(setup.write_limit) % 3]);
    let scratch = match setup.scratch % 4 {
        0 => 1 + (setup.scratch >> 2) as usize % 16,
        1 => 4096,
        2 => IN_PLACE,
        _ => 1 + (setup.scratch >> 2) as usize % (128 << 10),
    };
    let mut stream = Vec::new();
    for w in &setup.traffic {
        emit(w, role, frame_limit, &mut stream);
    }
    let now = Instant::now();

    let reference = {
        let mut conn = Connection::new(role, config.clone(), now);
        conn.receive(now, &stream);
        let mut digest = Digest::new();
        while let Some(e) = conn.poll_event() {
            digest.event(&e);
        }
        digest
    };

    let peer_role = match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let peer_config = Config::default()
        .with_seed(SeedSource::Fixed(7))
        .with_max_frame_size(4 << 20)
        .with_max_message_size(4 << 20);
    let mut pool = BufferPool::new();
    for len in &setup.pooled {
        pool.recycle(vec![0xa5; len.get(2 << 20)].into());
    }
    let mut run = Large {
        conn: Connection::new(role, config, now),
        obs: Observer::new(role, message_limit).sending_data(fragment.unwrap_or(usize::MAX) as u64),
        pool,
        scratch: vec![0x5c; scratch],
        reads: 0,
        out: Vec::new(),
        peer: Connection::new(peer_role, peer_config, now),
        peer_out: Vec::new(),
        sent: Default::default(),
        sent_bytes: 0,
        pings: Default::default(),
        peer_closed: false,
        stream,
        pos: 0,
        now,
        heap,
        in_place: 0,
    };

    let mut steps = 0;
    while !u.is_empty() {
        let Ok(op) = LargeOp::arbitrary(&mut u) else {
            break;
        };
        steps += 1;
        if steps > 256 {
            break;
        }
        match op {
            LargeOp::Read { size, count } => {
                for _ in 0..=count {
                    if !run.read(size as usize) {
                        break;
                    }
                }
            }
            LargeOp::Abandon { byte, len } => run.abandon(byte, len as usize),
            LargeOp::Poll { max } => run.poll(usize::from(max)),
            LargeOp::Transmit => run.transmit(),
            LargeOp::Send { text, len, fill } => {
                let recipe = Recipe {
                    text,
                    len: len.get(1 << 20),
                    fill,
                };
                if run.sent_bytes + recipe.len <= LARGE_SENT
                    && run.conn.send(recipe.message()).is_ok()
                {
                    run.sent_bytes += recipe.len;
                    run.sent.push_back(recipe);
                }
            }
            LargeOp::Ping { len, byte } => {
                let payload = vec![byte; usize::from(len % 126)];
                if run.conn.send_ping(payload.clone()).is_ok() {
                    run.pings.push_back(payload);
                }
            }
            LargeOp::Close { code } => {
                let code = sendable(code);
                if run.conn.close(now, code, "").is_ok() {
                    run.obs.closing = true;
                    run.obs.owe_close = Some(Some(code.0));
                }
            }
            LargeOp::Recycle { len } => run.pool.recycle(vec![0x3c; len.get(2 << 20)].into()),
        }
    }
    while run.read(0) {}
    run.serve();
    assert_eq!(
        run.obs.digest, reference,
        "events depend on how the input was read"
    );
    assert!(
        run.sent.is_empty() && run.pings.is_empty(),
        "the peer is missing {} messages and {} pings we sent",
        run.sent.len(),
        run.pings.len()
    );

    if setup.eof && !run.conn.is_closed() {
        let ended = run.obs.ended;
        run.conn
            .read_target(&mut run.scratch, &mut run.pool)
            .commit(now, 0);
        run.serve();
        if !ended {
            assert!(run.obs.ended, "EOF before a close was not reported");
        }
        assert!(run.conn.is_closed(), "not closed after EOF");
    }
}

// ------------------------------------------------------------- interleave

/// Largest message the interleave target sends: room for the fragment cost
/// of 128-byte fragments under the 1 MiB limit.
const INTERLEAVE_SEND: usize = 768 << 10;
/// Most payload bytes one input sends (both sides).
const INTERLEAVE_SENT: usize = 3 << 19;

#[derive(Arbitrary, Debug)]
struct InterleaveSetup {
    /// Odd: permessage-deflate, setting `deflate >> 1` (see
    /// `deflate_variant`); even: not negotiated.
    deflate: u8,
    client_fragment: u8,
    server_fragment: u8,
    heartbeat_ms: Option<u16>,
    idle_ms: Option<u16>,
    auto_pong: bool,
    client_scratch: u32,
    server_scratch: u32,
}

/// One step of either application, the network or the clock.
#[derive(Arbitrary, Debug)]
enum Step {
    Send {
        client: bool,
        text: bool,
        len: Len,
        fill: Fill,
    },
    Ping {
        client: bool,
        payload: Vec<u8>,
    },
    Close {
        client: bool,
        code: u16,
        reason: String,
    },
    Transmit {
        client: bool,
    },
    /// Up to `max` bytes in flight reach the other side, in reads of at
    /// most `read` bytes (0: as much as the read target lends).
    Deliver {
        to_server: bool,
        max: Len,
        read: u32,
    },
    /// A read target written to and dropped uncommitted.
    Abandon {
        to_server: bool,
        byte: u8,
    },
    Poll {
        client: bool,
        max: u8,
    },
    Advance {
        millis: u16,
    },
}

/// One end in `connection_interleave`.
struct End {
    conn: Connection,
    scratch: Vec<u8>,
    reads: usize,
    /// Copies of the messages sent (separate allocations, so the payload
    /// handed to the core can be recycled once written), not yet received.
    sent: std::collections::VecDeque<Message>,
    sent_count: usize,
    /// Messages received and not yet compared.
    inbox: Vec<Message>,
    received: usize,
    pings_sent: Vec<Vec<u8>>,
    closed_with: Option<(u16, String)>,
    got_close: bool,
    failed: bool,
    max_send: usize,
}

impl End {
    fn new(conn: Connection, scratch: u32, max_send: usize) -> End {
        let scratch = match scratch % 4 {
            0 => 1 + (scratch >> 2) as usize % 16,
            1 => 4096,
            2 => IN_PLACE,
            _ => 1 + (scratch >> 2) as usize % (128 << 10),
        };
        End {
            conn,
            scratch: vec![0x5c; scratch],
            reads: 0,
            sent: Default::default(),
            sent_count: 0,
            inbox: Vec::new(),
            received: 0,
            pings_sent: Vec::new(),
            closed_with: None,
            got_close: false,
            failed: false,
            max_send,
        }
    }

    fn poll(&mut self, max: usize) {
        for _ in 0..max {
            let Some(event) = self.conn.poll_event() else {
                return;
            };
            assert!(
                !self.got_close && !self.failed,
                "event after close/error: {event:?}"
            );
            match event {
                Event::Message(m) => self.inbox.push(m),
                Event::Ping(_) => {}
                Event::Pong(p) => assert!(
                    self.pings_sent.iter().any(|s| s[..] == p[..]) || p.is_empty(),
                    "pong for a ping never sent"
                ),
                Event::Close(_) => self.got_close = true,
                Event::Error(ConnectionError::Timeout(_)) => self.failed = true,
                Event::Error(e) => panic!("two correct peers failed with {e:?}"),
                other => panic!("unexpected event {other:?}"),
            }
        }
    }

    /// Writes all output to `wire`; written chunks go back to the pool.
    fn transmit(&mut self, wire: &mut Vec<u8>, pool: &mut BufferPool) -> bool {
        let before = wire.len();
        loop {
            match self.conn.poll_transmit(wire) {
                Some(c) => {
                    wire.extend_from_slice(&c);
                    pool.recycle(c);
                }
                None if !self.conn.has_transmit() => return wire.len() != before,
                None => {}
            }
        }
    }

    /// Feeds up to `max` bytes of `wire` through `read_target` in reads of
    /// at most `read` bytes (0: all the target lends), while the core wants
    /// input.
    fn deliver(
        &mut self,
        wire: &mut Vec<u8>,
        max: usize,
        read: usize,
        now: Instant,
        pool: &mut BufferPool,
    ) {
        let mut at = 0;
        let end = max.min(wire.len());
        while at < end && self.conn.wants_read() {
            self.reads += 1;
            if self.reads == MAX_SMALL_READS && self.scratch.len() < IN_PLACE {
                self.scratch = vec![0x5c; IN_PLACE];
            }
            let mut target = self.conn.read_target(&mut self.scratch, pool);
            let buf = target.buf();
            let limit = if read == 0 || self.reads >= MAX_SMALL_READS {
                buf.len()
            } else {
                read.min(buf.len())
            };
            let n = limit.min(end - at);
            buf[..n].copy_from_slice(&wire[at..at + n]);
            target.commit(now, n);
            at += n;
        }
        wire.drain(..at);
    }
}

/// Compares what `to` received with what `from` sent, in order, and
/// recycles the received buffers.
fn check_inbox(from: &mut End, to: &mut End, pool: &mut BufferPool) {
    for m in to.inbox.drain(..) {
        let sent = from
            .sent
            .pop_front()
            .expect("received a message never sent");
        assert!(
            m == sent,
            "message {} differs: sent {} B {}, received {} B {}",
            to.received,
            sent.len(),
            if sent.is_text() { "text" } else { "binary" },
            m.len(),
            if m.is_text() { "text" } else { "binary" },
        );
        to.received += 1;
        recycle(pool, m);
    }
}

/// permessage-deflate setting `n`: stored blocks, the defaults, context
/// takeover with 15- and 9-bit windows, server takeover with a 10-bit
/// window, client takeover with a 1 KiB threshold.
#[cfg(feature = "deflate")]
fn deflate_variant(n: u8) -> wavecast_core::DeflateConfig {
    use wavecast_core::DeflateConfig;
    let d = DeflateConfig::default();
    match n % 6 {
        0 => d.with_threshold(0).with_level(0),
        1 => d,
        2 => d.with_context_takeover(15),
        3 => d.with_context_takeover(9).with_threshold(0),
        4 => d
            .with_server_no_context_takeover(false)
            .with_server_max_window_bits(10)
            .with_level(1),
        _ => d
            .with_client_no_context_takeover(false)
            .with_threshold(1 << 10),
    }
}

/// Builds the two connections, through a real opening handshake when
/// `deflate` is set so the extension is negotiated as in production.
fn interleave_pair(
    client: Config,
    server: Config,
    deflate: u8,
    now: Instant,
) -> (Connection, Connection) {
    #[cfg(feature = "deflate")]
    if deflate & 1 == 1 {
        let d = deflate_variant(deflate >> 1);
        let client = client.with_deflate(Some(d.clone()));
        let server = server.with_deflate(Some(d));
        let mut hs = ClientHandshake::new(
            &client,
            ClientRequest::new("h", "/").expect("a valid request"),
            now,
        );
        let mut srv = ServerHandshake::new(&server, now);
        let request = srv
            .receive(now, hs.request_bytes())
            .expect("a valid request")
            .expect("a complete head");
        let accepted = srv.accept(&request, Accept::new()).expect("accepted");
        let done = hs
            .receive(now, &accepted.response)
            .expect("a valid response")
            .expect("a complete head");
        assert!(
            done.negotiated.deflate.is_some(),
            "deflate was not negotiated"
        );
        return (
            Connection::with_negotiated(Role::Client, client, &done.negotiated, now),
            Connection::with_negotiated(Role::Server, server, &accepted.negotiated, now),
        );
    }
    let _ = deflate;
    (
        Connection::new(Role::Client, client, now),
        Connection::new(Role::Server, server, now),
    )
}

/// A client and a server with large limits (1 MiB), optionally with
/// permessage-deflate negotiated through a real handshake, driven through
/// random interleavings of sends (up to 768 KiB, so the receiver reads in
/// place), pings, closes, writes, partial deliveries through `read_target`
/// (scratch buffers of 1 B to 128 KiB, reads of any size, abandoned reads,
/// one shared buffer pool fed with written payloads) and time (heartbeats,
/// idle timeouts, close timeouts): every message one side sends arrives
/// intact and in order on the other, all of them unless the receiver
/// failed by a timeout; two correct peers never see a protocol error; pongs
/// answer pings sent; the close code and reason arrive as sent.
pub fn connection_interleave(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = InterleaveSetup::arbitrary(&mut u) else {
        return;
    };
    let mut now = Instant::now();
    let config = |fragment: u8| {
        let size = match fragment % 7 {
            0 => None,
            1 => Some(128 + 16 * (usize::from(fragment) % 9)),
            2 => Some(4096),
            3 => Some(IN_PLACE - 1),
            4 => Some(IN_PLACE),
            5 => Some(100_000),
            _ => Some(1 + usize::from(fragment)),
        };
        // Tiny fragments only for small messages: 16 B each against the limit.
        let max_send = match size {
            Some(s) if s < 128 => s * 1024,
            _ => INTERLEAVE_SEND,
        };
        let mut c = Config::default()
            .with_seed(SeedSource::Fixed(0x1ea7))
            .with_max_frame_size(1 << 20)
            .with_max_message_size(1 << 20)
            .with_auto_pong(setup.auto_pong)
            .with_fragment_size(size);
        if let Some(ms) = setup.heartbeat_ms {
            c = c.with_heartbeat_interval(Some(Duration::from_millis(u64::from(ms) + 1)));
        }
        if let Some(ms) = setup.idle_ms {
            c = c.with_idle_timeout(Some(Duration::from_millis(u64::from(ms) + 1)));
        }
        (c, max_send)
    };
    let (cc, client_max) = config(setup.client_fragment);
    let (sc, server_max) = config(setup.server_fragment);
    let (c, s) = interleave_pair(cc, sc, setup.deflate, now);
    let mut client = End::new(c, setup.client_scratch, client_max);
    let mut server = End::new(s, setup.server_scratch, server_max);
    let mut pool = BufferPool::new();
    let mut c2s = Vec::new();
    let mut s2c = Vec::new();
    let mut sent_bytes = 0;

    let mut steps = 0;
    while !u.is_empty() {
        let Ok(step) = Step::arbitrary(&mut u) else {
            break;
        };
        steps += 1;
        if steps > 256 {
            break;
        }
        match step {
            Step::Send {
                client: c,
                text,
                len,
                fill,
            } => {
                let e = if c { &mut client } else { &mut server };
                let recipe = Recipe {
                    text,
                    len: len.get(e.max_send).min(e.max_send),
                    fill,
                };
                if sent_bytes + recipe.len > INTERLEAVE_SENT {
                    continue;
                }
                let m = recipe.message();
                let copy = match &m {
                    Message::Text(t) => Message::Text(
                        Utf8Bytes::try_from(t.as_bytes().to_vec()).expect("a copy of text"),
                    ),
                    Message::Binary(b) => Message::Binary(b.to_vec().into()),
                };
                if e.conn.send(m).is_ok() {
                    sent_bytes += recipe.len;
                    e.sent.push_back(copy);
                    e.sent_count += 1;
                }
            }
            Step::Ping { client: c, payload } => {
                let e = if c { &mut client } else { &mut server };
                ping_from(&mut e.conn, &mut e.pings_sent, payload);
            }
            Step::Close {
                client: c,
                code,
                reason,
            } => {
                let e = if c { &mut client } else { &mut server };
                close_from(&mut e.conn, &mut e.closed_with, now, code, reason);
            }
            Step::Transmit { client: c } => {
                if c {
                    client.transmit(&mut c2s, &mut pool);
                } else {
                    server.transmit(&mut s2c, &mut pool);
                }
            }
            Step::Deliver {
                to_server,
                max,
                read,
            } => {
                let (wire, to) = if to_server {
                    (&mut c2s, &mut server)
                } else {
                    (&mut s2c, &mut client)
                };
                let read = if read == 0 {
                    0
                } else {
                    1 + read as usize % (128 << 10)
                };
                to.deliver(wire, max.get(2 << 20), read, now, &mut pool);
            }
            Step::Abandon { to_server, byte } => {
                let to = if to_server { &mut server } else { &mut client };
                if to.conn.wants_read() {
                    let mut target = to.conn.read_target(&mut to.scratch, &mut pool);
                    target.buf().fill(byte);
                }
            }
            Step::Poll { client: c, max } => {
                let e = if c { &mut client } else { &mut server };
                e.poll(usize::from(max));
            }
            Step::Advance { millis } => {
                now += Duration::from_millis(u64::from(millis));
                client.conn.handle_timeout(now);
                server.conn.handle_timeout(now);
            }
        }
        check_inbox(&mut client, &mut server, &mut pool);
        check_inbox(&mut server, &mut client, &mut pool);
    }

    // Settle: both applications read everything, the network delivers
    // everything, no time passes.
    for _ in 0..10_000 {
        client.poll(usize::MAX);
        server.poll(usize::MAX);
        check_inbox(&mut client, &mut server, &mut pool);
        check_inbox(&mut server, &mut client, &mut pool);
        let mut moved = client.transmit(&mut c2s, &mut pool) | server.transmit(&mut s2c, &mut pool);
        for (wire, to) in [(&mut c2s, &mut server), (&mut s2c, &mut client)] {
            if wire.is_empty() {
                continue;
            }
            if to.conn.is_closed() {
                wire.clear(); // the transport is gone
                continue;
            }
            let before = wire.len();
            to.deliver(wire, usize::MAX, 0, now, &mut pool);
            moved |= wire.len() != before;
            if wire.len() == before {
                // Reads paused: the application must read first.
                assert!(
                    to.conn.has_events() || !to.inbox.is_empty(),
                    "reads paused with nothing to read"
                );
            }
        }
        if !moved && !client.conn.has_events() && !server.conn.has_events() {
            break;
        }
    }
    if server.conn.is_closed() && !client.conn.is_closed() {
        // The server closes the TCP connection; the client sees the end.
        client
            .conn
            .read_target(&mut client.scratch, &mut pool)
            .commit(now, 0);
        client.poll(usize::MAX);
    }
    check_inbox(&mut client, &mut server, &mut pool);
    check_inbox(&mut server, &mut client, &mut pool);
    for (from, to) in [(&client, &server), (&server, &client)] {
        if !to.failed {
            assert!(
                from.sent.is_empty(),
                "{} of {} messages lost although the receiver never failed",
                from.sent.len(),
                from.sent_count
            );
        }
        if to.got_close && from.closed_with.is_some() {
            let frame = to.conn.close_received().expect("close event seen");
            let (code, reason) = from.closed_with.as_ref().expect("checked");
            assert_eq!(
                (frame.code.0, frame.reason.as_str()),
                (*code, reason.as_str())
            );
        }
    }
}

// ----------------------------------------------------------------- stream

/// Largest streamed message of the `stream` target, by index: far past the
/// traffic, a little over 1 MiB, and 100 kB.
const STREAM_LIMITS: [u64; 3] = [8 << 20, (1 << 20) + 7, 100_000];
/// Largest whole message (streaming switched off) and frame.
const STREAM_WHOLE: usize = 1 << 20;
/// A chunk is handed out once a window (`STREAM_CHUNK`) is decoded; a piece
/// decoded on top of nearly a window (a read's worth, capped at a window,
/// or an inflate step) keeps it under two.
const CHUNK_MAX: usize = 2 * STREAM_CHUNK;
/// Unread chunk bytes: decoding stops once a window is unread, and the
/// step that crossed it added at most one chunk.
const UNREAD_MAX: usize = STREAM_CHUNK + CHUNK_MAX;
/// Heap for what is not input or chunks: the inflate state (window and
/// tables), the event queue, pongs, the config.
const STREAM_OVERHEAD: usize = 192 << 10;

/// What the peer of the `stream` target sends.
#[derive(Arbitrary, Debug)]
enum Traffic {
    /// A frame (or raw bytes) as `connection_large` builds them, written
    /// straight onto the wire (never compressed).
    Wire(Wire),
    /// A message the peer core sends whole (compressed with deflate).
    Send {
        text: bool,
        len: Len,
        fill: Fill,
    },
    /// A message the peer core sends with `send_chunk`, cut at these sizes
    /// (cycled; text on character boundaries).
    Chunked {
        text: bool,
        len: Len,
        fill: Fill,
        pieces: Vec<u16>,
    },
    Ping {
        len: u8,
        byte: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct StreamSetup {
    /// permessage-deflate when odd (`deflate_variant(deflate >> 1)`).
    deflate: u8,
    stream_limit: u8,
    /// The peer's fragment size for whole sends, by index.
    fragment: Option<u8>,
    auto_pong: bool,
    /// Scratch size: a few bytes, 4 KiB, 64 KiB, or anything to 128 KiB.
    scratch: u32,
    /// End with a read of 0 bytes (end of stream).
    eof: bool,
    traffic: Vec<Traffic>,
}

/// One step of the adapter or the application in `stream`.
#[derive(Arbitrary, Debug)]
enum StreamOp {
    /// `count` reads through `read_target` of at most `size` bytes each
    /// (0: as much as the target lends), only while the core wants input.
    Read {
        size: u32,
        count: u8,
    },
    /// `receive` of the next `size` bytes (0: all the rest); `impatient`
    /// even while the core does not want input.
    Receive {
        size: u32,
        impatient: bool,
    },
    /// The application takes up to `max` events, no more: it reads lazily.
    Poll {
        max: u8,
    },
    /// `skip_message` (does nothing between messages).
    Skip,
    /// `set_streaming` switched.
    Toggle,
    Transmit,
}

/// The application of the `stream` target: checks every event as it is
/// taken and digests the messages, chunks joined.
struct StreamApp {
    digest: Digest,
    /// The message whose chunks are being taken: text, bytes so far, and
    /// the running hash of its bytes.
    partial: Option<(bool, u64, u64)>,
    /// The peer's Close or an Error was taken: nothing more may come.
    ended: bool,
    max_stream: u64,
}

impl StreamApp {
    fn event(&mut self, event: &Event) {
        assert!(
            !self.ended,
            "event after the peer's Close or an error: {event:?}"
        );
        match event {
            Event::Chunk(c) => self.chunk(c),
            Event::Message(m) => {
                assert!(self.partial.is_none(), "a whole message inside a stream");
                assert!(m.len() <= STREAM_WHOLE, "message of {} B", m.len());
                if let Message::Text(t) = m {
                    assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                }
                self.digest.event(event);
            }
            Event::Ping(p) | Event::Pong(p) => {
                assert!(p.len() <= 125);
                self.digest.event(event);
            }
            Event::Close(_) | Event::Error(_) => {
                self.ended = true;
                self.digest.event(event);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }

    fn chunk(&mut self, c: &Chunk) {
        let len = c.data.len();
        assert_eq!(c.first, self.partial.is_none(), "first flag out of order");
        assert!(len <= CHUNK_MAX, "chunk of {len} B");
        assert!(len > 0 || c.last, "an empty chunk in the middle");
        if let Message::Text(t) = &c.data {
            assert!(
                std::str::from_utf8(t.as_bytes()).is_ok(),
                "a text chunk that is not UTF-8 on its own"
            );
        }
        let (text, total, hash) =
            self.partial
                .get_or_insert((c.data.is_text(), 0, 0xcbf29ce484222325));
        assert_eq!(*text, c.data.is_text(), "kind changed inside a message");
        *total += len as u64;
        assert!(
            *total <= self.max_stream,
            "stream of {total} B over the limit"
        );
        for &b in c.data.as_bytes() {
            *hash = (*hash ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        if c.last {
            let (text, total, hash) = self.partial.take().expect("set above");
            self.digest.bytes(if text { b"text" } else { b"binary" });
            self.digest.bytes(&total.to_le_bytes());
            self.digest.bytes(&hash.to_le_bytes());
            self.digest.1 += 1;
        }
    }

    /// The application abandons the message it is taking.
    fn skip(&mut self) {
        self.partial = None;
    }
}

/// The connection under test in `stream` and how it is read.
struct StreamRun<'h> {
    conn: Connection,
    app: StreamApp,
    pool: BufferPool,
    scratch: Vec<u8>,
    out: Vec<u8>,
    stream: Vec<u8>,
    pos: usize,
    now: Instant,
    heap: Option<&'h Heap>,
    /// Live heap after setup.
    base: usize,
    /// Bytes fed since the core last wanted input (so held no backlog).
    pending_in: usize,
    /// Whole messages may be reassembled (streaming was switched off).
    whole: bool,
    /// The events depend on when the application acted (skips, switches).
    timing: bool,
}

impl StreamRun<'_> {
    /// Heap the connection may hold, or grow by during one call: unread
    /// input (kept as backlog, copied once when joined), the unread chunks
    /// and, per byte read since the core last wanted input, the events
    /// tiny frames make; a whole message when streaming was switched off.
    fn budget(&self, extra: usize) -> usize {
        let whole = if self.whole {
            2 * STREAM_WHOLE + IN_PLACE
        } else {
            0
        };
        2 * (self.pending_in + extra)
            + 64 * (self.pending_in + extra)
            + UNREAD_MAX
            + CHUNK_MAX
            + whole
            + STREAM_OVERHEAD
    }

    /// Checks the heap after a call that fed `n` bytes.
    fn check_heap(&mut self, what: &str, n: usize) {
        if self.conn.wants_read() {
            self.pending_in = 0;
        }
        let Some(h) = self.heap else {
            return;
        };
        let peak = (h.peak)().saturating_sub(self.base);
        let held = (h.live)().saturating_sub(self.base);
        let budget = self.budget(n);
        assert!(
            peak <= budget,
            "{what} of {n} B: heap peaked {peak} B over the start ({} B pending)",
            self.pending_in
        );
        assert!(
            held <= budget,
            "{what} of {n} B: connection holds {held} B ({} B pending)",
            self.pending_in
        );
    }

    fn start_call(&self) {
        if let Some(h) = self.heap {
            (h.reset_peak)();
        }
    }

    fn poll(&mut self, max: usize) {
        for _ in 0..max {
            self.start_call();
            let Some(event) = self.conn.poll_event() else {
                return;
            };
            self.app.event(&event);
            drop(event);
            self.check_heap("a poll", 0);
        }
    }

    fn transmit(&mut self) {
        loop {
            self.out.clear();
            let chunk = self.conn.poll_transmit(&mut self.out);
            if chunk.is_none() && self.out.is_empty() {
                return;
            }
        }
    }

    fn serve(&mut self) {
        loop {
            self.poll(usize::MAX);
            self.transmit();
            if !self.conn.has_events() {
                return;
            }
        }
    }

    /// One read through `read_target` of at most `size` bytes (0: what the
    /// target lends). False when no read happened.
    fn read(&mut self, size: usize) -> bool {
        if self.pos == self.stream.len() || !self.conn.wants_read() {
            return false;
        }
        self.start_call();
        let mut target = self.conn.read_target(&mut self.scratch, &mut self.pool);
        let buf = target.buf();
        let lent = buf.len();
        assert!(lent > 0, "an empty read target");
        let want = if size == 0 { lent } else { size.min(lent) };
        let n = want.min(self.stream.len() - self.pos);
        buf[..n].copy_from_slice(&self.stream[self.pos..self.pos + n]);
        target.commit(self.now, n);
        self.pos += n;
        self.pending_in += n;
        self.check_heap("a read", n);
        true
    }

    fn receive(&mut self, size: usize, impatient: bool) {
        if self.pos == self.stream.len() || !(impatient || self.conn.wants_read()) {
            return;
        }
        let n = if size == 0 {
            self.stream.len() - self.pos
        } else {
            size.min(self.stream.len() - self.pos)
        };
        self.start_call();
        self.conn
            .receive(self.now, &self.stream[self.pos..self.pos + n]);
        self.pos += n;
        self.pending_in += n;
        self.check_heap("a receive", n);
    }
}

/// Builds the traffic of `stream`: frames written directly and messages a
/// peer core sends (compressed when deflate is negotiated).
fn stream_traffic(setup: &StreamSetup, peer: &mut Connection) -> Vec<u8> {
    let mut stream = Vec::new();
    let flush = |peer: &mut Connection, stream: &mut Vec<u8>| {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let chunk = peer.poll_transmit(&mut buf);
            stream.extend_from_slice(&buf);
            match chunk {
                Some(c) => stream.extend_from_slice(&c),
                None if buf.is_empty() => return,
                None => {}
            }
        }
    };
    // Payload bytes the peer core sends: compressed, megabytes of zeros
    // take a few wire bytes, so the wire cap alone would let an input
    // inflate hundreds of megabytes (a slow unit, not a finding).
    let mut sent = 0;
    for t in &setup.traffic {
        if stream.len() >= LARGE_STREAM || sent >= LARGE_STREAM {
            break;
        }
        let room = (LARGE_STREAM - stream.len()).min(LARGE_STREAM - sent);
        match t {
            Traffic::Wire(w) => emit(w, Role::Server, STREAM_WHOLE, &mut stream),
            Traffic::Send { text, len, fill } => {
                let recipe = Recipe {
                    text: *text,
                    len: len.get(STREAM_WHOLE).min(room),
                    fill: *fill,
                };
                sent += recipe.len;
                let _ = peer.send(recipe.message());
            }
            Traffic::Chunked {
                text,
                len,
                fill,
                pieces,
            } => {
                let recipe = Recipe {
                    text: *text,
                    len: len.get(STREAM_WHOLE).min(room),
                    fill: *fill,
                };
                let bytes = recipe.bytes();
                sent += bytes.len();
                let mut at = 0;
                let mut sizes = pieces.iter().cycle();
                // At most 4096 pieces: a megabyte in one-byte chunks would
                // be megabytes of frames to build and read (slow, not deep).
                let least = bytes.len() / 4096 + 1;
                loop {
                    let size = sizes
                        .next()
                        .map_or(bytes.len(), |&s| usize::from(s) + 1)
                        .max(least);
                    let mut end = (at + size).min(bytes.len());
                    if *text {
                        while std::str::from_utf8(&bytes[at..end]).is_err() {
                            end += 1;
                        }
                    }
                    let piece = bytes[at..end].to_vec();
                    let data = if *text {
                        Message::Text(Utf8Bytes::try_from(piece).expect("cut on a boundary"))
                    } else {
                        Message::Binary(piece.into())
                    };
                    let last = end == bytes.len();
                    let _ = peer.send_chunk(data, last);
                    at = end;
                    if last {
                        break;
                    }
                }
            }
            Traffic::Ping { len, byte } => {
                let _ = peer.send_ping(vec![*byte; usize::from(len % 126)]);
            }
        }
        flush(peer, &mut stream);
    }
    stream
}

/// A streaming server (`stream_messages`, streams up to 8 MiB, whole
/// messages and frames up to 1 MiB when streaming is switched off),
/// optionally with permessage-deflate negotiated through a real handshake,
/// reads traffic from frames built directly (valid and invalid, megabyte
/// payloads, compressed garbage) and from a client core sending whole and
/// chunked messages: through `read_target` (scratch of 1 B to 128 KiB,
/// only while it wants input) and `receive` (any size, even while it does
/// not), while the application takes events lazily, skips messages and
/// switches streaming. Never panics; chunks come in order (first, ...,
/// last), of one kind, non-empty but the last, at most two windows, text
/// ones valid UTF-8 on their own, a stream never past its limit; nothing
/// after a Close or an error; the heap held, and its peak during any call,
/// stay within the unread input plus a window of unread chunks (decoding
/// pauses, also inflating a bomb); without skips or switches, the messages
/// (chunks joined) and other events equal those of a streaming server
/// given all the bytes at once; reads stay paused only while it has
/// closed; EOF ends it.
pub fn stream(data: &[u8], heap: Option<&Heap>) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = StreamSetup::arbitrary(&mut u) else {
        return;
    };
    let max_stream = STREAM_LIMITS[usize::from(setup.stream_limit) % STREAM_LIMITS.len()];
    let config = Config::default()
        .with_seed(SeedSource::Fixed(0x57e4))
        .with_stream_messages(true)
        .with_max_stream_size(max_stream)
        .with_max_message_size(STREAM_WHOLE)
        .with_max_frame_size(STREAM_WHOLE)
        .with_max_fragments(4096)
        .with_auto_pong(setup.auto_pong);
    let fragment = setup
        .fragment
        .map(|i| [125, 4096, IN_PLACE, 300_000][usize::from(i) % 4]);
    let peer_config = Config::default()
        .with_seed(SeedSource::Fixed(7))
        .with_fragment_size(fragment);
    let now = Instant::now();
    let (stream_bytes, reference) = {
        let (mut peer, mut reference) =
            interleave_pair(peer_config, config.clone(), setup.deflate, now);
        let stream_bytes = stream_traffic(&setup, &mut peer);
        reference.receive(now, &stream_bytes);
        let mut app = StreamApp {
            digest: Digest::new(),
            partial: None,
            ended: false,
            max_stream,
        };
        while let Some(e) = reference.poll_event() {
            app.event(&e);
        }
        (stream_bytes, app.digest)
    };
    let conn = {
        // The same negotiation again; the client side is not needed.
        let (_, server) = interleave_pair(Config::default(), config, setup.deflate, now);
        server
    };
    let scratch = match setup.scratch % 4 {
        0 => 1 + (setup.scratch >> 2) as usize % 16,
        1 => 4096,
        2 => IN_PLACE,
        _ => 1 + (setup.scratch >> 2) as usize % (128 << 10),
    };
    let mut run = StreamRun {
        conn,
        app: StreamApp {
            digest: Digest::new(),
            partial: None,
            ended: false,
            max_stream,
        },
        pool: BufferPool::new(),
        scratch: vec![0x5c; scratch],
        out: Vec::with_capacity(64 << 10),
        stream: stream_bytes,
        pos: 0,
        now,
        heap,
        base: 0,
        pending_in: 0,
        whole: false,
        timing: false,
    };
    run.base = heap.map_or(0, |h| (h.live)());

    let mut steps = 0;
    while !u.is_empty() {
        let Ok(op) = StreamOp::arbitrary(&mut u) else {
            break;
        };
        steps += 1;
        if steps > 256 {
            break;
        }
        match op {
            StreamOp::Read { size, count } => {
                for _ in 0..=count {
                    if !run.read(size as usize) {
                        break;
                    }
                }
            }
            StreamOp::Receive { size, impatient } => run.receive(size as usize, impatient),
            StreamOp::Poll { max } => run.poll(usize::from(max)),
            StreamOp::Skip => {
                if run.app.partial.is_some() {
                    run.timing = true;
                    run.app.skip();
                }
                run.conn.skip_message();
            }
            StreamOp::Toggle => {
                let on = !run.conn.is_streaming();
                run.conn.set_streaming(on);
                run.timing = true;
                run.whole |= !on;
            }
            StreamOp::Transmit => run.transmit(),
        }
    }
    // The rest as an adapter reads: 64 KiB at a time while the core wants
    // input, serving the application when it does not.
    while run.pos < run.stream.len() {
        let pos = run.pos;
        run.receive(64 << 10, false);
        if run.pos > pos {
            continue;
        }
        run.serve();
        if !run.conn.wants_read() {
            assert!(run.conn.is_closed(), "reads stay paused after a full drain");
            break;
        }
    }
    run.serve();
    if !run.timing {
        assert_eq!(
            run.app.digest, reference,
            "events depend on how the input was read"
        );
    }

    if setup.eof && !run.conn.is_closed() {
        let ended = run.app.ended;
        run.conn
            .read_target(&mut run.scratch, &mut run.pool)
            .commit(now, 0);
        run.serve();
        if !ended {
            assert!(run.app.ended, "EOF before a close was not reported");
        }
        assert!(run.conn.is_closed(), "not closed after EOF");
    }
}

// -------------------------------------------------------------------- SSE

/// What a round-trip item asks the server to send.
#[derive(Arbitrary, Debug)]
enum SseItem {
    Event {
        data: String,
        event: Option<String>,
        id: Option<String>,
        retry: Option<u32>,
    },
    Comment(String),
}

/// Largest line or event in the raw-parse mode.
pub const SSE_LIMIT: usize = 1024;

/// SSE: raw mode (option bit 0 clear) feeds arbitrary bytes in chunks —
/// never panics, events stay under the limit, errors are final, chunking
/// does not change the result; round-trip mode encodes arbitrary events and
/// parses them back in chunks.
pub fn sse(data: &[u8], heap: Option<&Heap>) {
    let mut u = Unstructured::new(data);
    let opts: u8 = u.arbitrary().unwrap_or(0);
    if opts & 0x80 != 0 {
        return sse_round_trip(&mut u, opts);
    }
    let comments = opts & 0x40 != 0;
    let chunks = split(&mut u, opts);
    let whole: Vec<u8> = chunks.concat();
    let parse = |chunks: &[&[u8]], heap: Option<&Heap>| {
        let mut parser = SseParser::with_limit(SSE_LIMIT).with_comments(comments);
        let mut events: Vec<Result<SseEvent, SseError>> = Vec::new();
        let base = heap.map(|h| (h.live)());
        let mut largest = 0;
        for chunk in chunks {
            parser.feed(chunk);
            if let (Some(h), Some(base)) = (heap, base) {
                // Undrained events may hold what a read brought: one queued
                // event per two bytes at worst (`:\n` comments). The queue
                // keeps its capacity, so the largest read so far counts.
                largest = largest.max(chunk.len());
                let used = ((h.live)()).saturating_sub(base);
                let per_byte = 2 * size_of::<SseEvent>();
                let budget = 4 * SSE_LIMIT + per_byte * largest + 4096 + events_heap(&events);
                assert!(
                    used <= budget,
                    "parser holds {used} B after a {} B read",
                    chunk.len()
                );
            }
            loop {
                match parser.poll_event() {
                    Ok(Some(e)) => {
                        for field in [&e.data, &e.event, &e.id, &e.comment].into_iter().flatten() {
                            assert!(field.len() <= SSE_LIMIT, "field over the limit");
                        }
                        events.push(Ok(e));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(parser.poll_event(), Err(e.clone()), "errors are final");
                        events.push(Err(e));
                        return events;
                    }
                }
            }
        }
        events
    };
    let chunked = parse(&chunks, heap);
    let at_once = parse(&[&whole[..]], None);
    assert_eq!(
        chunked, at_once,
        "SSE events depend on how the input was split"
    );
}

/// Heap the harness itself keeps in `events` (strings and the vector).
fn events_heap(events: &Vec<Result<SseEvent, SseError>>) -> usize {
    let strings: usize = events
        .iter()
        .map(|e| match e {
            Ok(e) => [&e.data, &e.event, &e.id, &e.comment]
                .into_iter()
                .flatten()
                .map(String::capacity)
                .sum::<usize>(),
            Err(_) => 256,
        })
        .sum();
    strings + events.capacity() * size_of::<Result<SseEvent, SseError>>()
}

fn normalise(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

fn sse_round_trip(u: &mut Unstructured<'_>, opts: u8) {
    let mut items = Vec::new();
    while items.len() < 32 {
        match SseItem::arbitrary(u) {
            Ok(item) => items.push(item),
            Err(_) => break,
        }
    }
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut last_id = String::new();
    for item in &items {
        match item {
            SseItem::Event {
                data,
                event,
                id,
                retry,
            } => {
                let event: Option<String> = event
                    .as_ref()
                    .map(|e| e.chars().filter(|&c| c != '\r' && c != '\n').collect());
                let id: Option<String> = id.as_ref().map(|i| {
                    i.chars()
                        .filter(|&c| c != '\r' && c != '\n' && c != '\0')
                        .collect()
                });
                let mut e = SseEvent::data(data.as_str());
                if let Some(name) = &event {
                    e = e.event(name.as_str());
                }
                if let Some(id) = &id {
                    e = e.id(id.as_str());
                }
                if let Some(ms) = retry {
                    e = e.retry(Duration::from_millis(u64::from(*ms)));
                }
                e.encode_to(&mut wire);

                if let Some(id) = &id {
                    last_id.clone_from(id);
                }
                let mut want = SseEvent::data(normalise(data));
                if let Some(name) = event.filter(|n| !n.is_empty()) {
                    want = want.event(name);
                }
                if !last_id.is_empty() {
                    want = want.id(last_id.as_str());
                }
                if let Some(ms) = retry {
                    want = want.retry(Duration::from_millis(u64::from(*ms)));
                }
                expected.push(want);
            }
            SseItem::Comment(text) => {
                SseEvent::comment(text.as_str()).encode_to(&mut wire);
                expected.extend(normalise(text).split('\n').map(SseEvent::comment));
            }
        }
    }
    // Chunk sizes from what is left of the input.
    let mut parser = SseParser::new().with_comments(true);
    let mut got = Vec::new();
    let mut rest = &wire[..];
    let mut step = usize::from(opts & 0x3f) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        parser.feed(&rest[..n]);
        rest = &rest[n..];
        step = u.int_in_range(1..=64).unwrap_or(step);
        while let Some(e) = parser
            .poll_event()
            .expect("encoded events are within limits")
        {
            got.push(e);
        }
    }
    assert_eq!(got, expected, "SSE encode-then-parse changed the events");
}

#[cfg(feature = "deflate")]
/// Heap a decompressing connection may hold: the inflater's state and
/// window (under 64 KiB at 15 bits), the message limit, and slack.
const INFLATE_BUDGET: usize = 256 << 10;

/// permessage-deflate's inflate path: a server that negotiated deflate
/// through a real handshake, with a 1 KiB message limit, fed compressed
/// data messages built from the input (RSV1 on each first frame, arbitrary
/// deflate streams as payloads, random fragmentation). Never panics, never
/// delivers a message over the limit or invalid text, delivers nothing
/// after a close or an error, and the heap stays bounded however much the
/// data would inflate to (a zip bomb must fail with 1009, not allocate).
#[cfg(feature = "deflate")]
pub fn inflate(data: &[u8], heap: Option<&Heap>) {
    let mut u = Unstructured::new(data);
    let opts: u8 = u.arbitrary().unwrap_or(0);
    let offer = match opts & 3 {
        0 => "permessage-deflate",
        1 => "permessage-deflate; client_max_window_bits=9",
        2 => "permessage-deflate; client_no_context_takeover",
        _ => "permessage-deflate; client_max_window_bits=8",
    };
    let config = tiny_config();
    let now = Instant::now();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    );
    let mut handshake = ServerHandshake::new(&config, now);
    let request = handshake
        .receive(now, head.as_bytes())
        .expect("a valid request")
        .expect("a complete head");
    let accepted = handshake
        .accept(&request, Accept::new())
        .expect("the request is accepted");
    let response = String::from_utf8_lossy(&accepted.response);
    assert!(
        response.contains("permessage-deflate"),
        "deflate was not negotiated: {response}"
    );
    let mut conn = Connection::with_negotiated(Role::Server, config, &accepted.negotiated, now);
    let mut obs = Observer::new(Role::Server, MAX_MESSAGE);
    let mut out = Vec::with_capacity(64 << 10);
    let base = heap.map(|h| {
        (h.reset_peak)();
        (h.live)()
    });
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut first = true;
    while !u.is_empty() && !conn.is_closed() {
        let control: u8 = u.arbitrary().unwrap_or(0);
        let len = usize::from(control & 0x3f).min(u.len());
        let payload = u.bytes(len).expect("length checked");
        let fin = control & 0x80 != 0;
        let (opcode, rsv) = match (first, control & 0x40 != 0) {
            (true, true) => (OpCode::Text, 0b100),
            (true, false) => (OpCode::Binary, 0b100),
            (false, _) => (OpCode::Continuation, 0),
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask: Some(key),
            payload_len: payload.len() as u64,
        };
        let mut frame = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
        header.encode_to(&mut frame);
        let at = frame.len();
        frame.extend_from_slice(payload);
        apply_mask(&mut frame[at..], key, 0);
        conn.receive(now, &frame);
        first = fin;
        drain(&mut conn, &mut obs, &mut out);
        if let (Some(h), Some(base)) = (heap, base) {
            let peak = (h.peak)().saturating_sub(base);
            assert!(peak <= INFLATE_BUDGET, "inflating held {peak} B at peak");
        }
    }
    drain(&mut conn, &mut obs, &mut out);
}
