//! Replays every fuzz corpus and regression input on stable, through the
//! same property checks the cargo-fuzz targets run (`fuzz/checks.rs`), so
//! the normal `cargo test` guards them too.
//!
//! The seed corpus is generated from the real traffic below; the
//! `seed_corpus_is_current` test checks the checked-in files match it, and
//! `WRITE_SEED_CORPUS=1 cargo test -p wavecast-core --test fuzz_corpus`
//! rewrites them after the seeds change.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file under `fuzz/<kind>/<target>/`, sorted by name.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable corpus folder").path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).expect("readable corpus file");
            (p, bytes)
        })
        .collect()
}

fn replay(target: &str) {
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "fuzz/corpus/{target} is empty");
    let mut failures = Vec::new();
    for (path, bytes) in corpus.iter().chain(&inputs("regressions", target)) {
        let result = std::panic::catch_unwind(|| checks::run(target, bytes, None));
        if result.is_err() {
            failures.push(path.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: failing inputs: {failures:#?}"
    );
}

#[test]
fn replay_frame_header() {
    replay("frame_header");
}

#[test]
fn replay_server_handshake() {
    replay("server_handshake");
}

#[test]
fn replay_client_handshake() {
    replay("client_handshake");
}

#[test]
fn replay_connection_server() {
    replay("connection_server");
}

#[test]
fn replay_connection_client() {
    replay("connection_client");
}

#[test]
fn replay_connection_pair() {
    replay("connection_pair");
}

#[test]
fn replay_connection_large() {
    replay("connection_large");
}

#[test]
fn replay_connection_interleave() {
    replay("connection_interleave");
}

#[test]
fn replay_stream() {
    replay("stream");
}

#[test]
fn replay_sse() {
    replay("sse");
}

#[cfg(feature = "deflate")]
#[test]
fn replay_inflate() {
    replay("inflate");
}

#[test]
fn generated_seeds_pass_the_checks() {
    for (target, _, bytes) in seeds() {
        checks::run(target, &bytes, None);
    }
}

#[test]
fn every_target_has_a_corpus_folder() {
    for target in checks::TARGETS {
        assert!(
            fuzz_dir().join("corpus").join(target).is_dir(),
            "missing corpus for {target}"
        );
    }
}

// ------------------------------------------------------- fuzz findings
// Each bug the fuzzers found, as a plain test (the inputs themselves are
// also under fuzz/regressions/ and replayed above).

use std::time::Instant;
use wavecast_core::handshake::{accept_key, ServerHandshake};
use wavecast_core::HandshakeError;

fn fixture_response(extra: &[u8]) -> (wavecast_core::handshake::ClientHandshake, Vec<u8>) {
    let hs = checks::client_fixture();
    let mut resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(hs.key().as_bytes())
    )
    .into_bytes();
    resp.extend_from_slice(extra);
    resp.extend_from_slice(b"\r\n");
    (hs, resp)
}

/// client_handshake found: a `Sec-WebSocket-Protocol` value that is not
/// UTF-8 was skipped, so the client accepted the connection although the
/// server named a subprotocol it never offered (RFC 6455 §4.1).
#[test]
fn client_rejects_a_subprotocol_that_is_not_utf8() {
    let (mut hs, resp) = fixture_response(b"Sec-WebSocket-Protocol: chat\r\n");
    assert!(hs.receive(Instant::now(), &resp).unwrap().is_some());
    let (mut hs, resp) = fixture_response(b"Sec-WebSocket-Protocol: \xba chat\r\n");
    assert!(matches!(
        hs.receive(Instant::now(), &resp),
        Err(HandshakeError::UnofferedSubprotocol(_))
    ));
}

/// Same root cause: a second `Sec-WebSocket-Accept` that is not UTF-8 was
/// invisible, so two accept headers passed as one.
#[test]
fn client_rejects_a_duplicate_accept_that_is_not_utf8() {
    let (mut hs, resp) = fixture_response(b"Sec-WebSocket-Accept: \xff\r\n");
    assert_eq!(
        hs.receive(Instant::now(), &resp),
        Err(HandshakeError::BadAccept)
    );
}

const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

fn parse_request(extra: &[u8]) -> wavecast_core::handshake::Request {
    let mut hs = ServerHandshake::new(&checks::tiny_config(), Instant::now());
    let head = [UPGRADE, extra, b"\r\n"].concat();
    hs.receive(Instant::now(), &head).unwrap().unwrap()
}

/// Same root cause on the server: a duplicate `Sec-WebSocket-Version` that
/// is not UTF-8 was skipped, so the request passed as having exactly one.
#[test]
fn server_rejects_a_duplicate_version_that_is_not_utf8() {
    assert!(parse_request(b"").validate_upgrade().is_ok());
    let req = parse_request(b"Sec-WebSocket-Version: \xff\r\n");
    assert_eq!(
        req.validate_upgrade(),
        Err(HandshakeError::UnsupportedVersion)
    );
}

/// Same root cause: a `Content-Length` that is not UTF-8 was skipped, so a
/// request announcing a body passed as bodiless.
#[test]
fn server_treats_a_content_length_that_is_not_utf8_as_a_body() {
    let req = parse_request(b"Content-Length: \xb9\r\n");
    assert!(req.has_body());
    assert_eq!(req.validate_upgrade(), Err(HandshakeError::BodyNotAllowed));
    assert!(!parse_request(b"Content-Length: 0\r\n").has_body());
}

/// The checked-in seed corpus is exactly what [`seeds`] generates (with
/// `WRITE_SEED_CORPUS=1`, rewrites it instead).
#[test]
fn seed_corpus_is_current() {
    if std::env::var_os("WRITE_SEED_CORPUS").is_some() {
        for target in checks::TARGETS {
            // Seeds have names; inputs merged from fuzzing runs are named
            // by libFuzzer (40 hex digits) and stay.
            let dir = fuzz_dir().join("corpus").join(target);
            fs::create_dir_all(&dir).unwrap();
            for (path, _) in inputs("corpus", target) {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if !(name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())) {
                    fs::remove_file(path).unwrap();
                }
            }
        }
        for (target, name, bytes) in seeds() {
            fs::write(fuzz_dir().join("corpus").join(target).join(name), bytes).unwrap();
        }
    }
    for (target, name, bytes) in seeds() {
        let path = fuzz_dir().join("corpus").join(target).join(&name);
        let stored = fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (rerun with WRITE_SEED_CORPUS=1)", path.display()));
        assert_eq!(
            stored,
            bytes,
            "{} is stale (rerun with WRITE_SEED_CORPUS=1)",
            path.display()
        );
    }
}

// ------------------------------------------------------------------ seeds

/// Option bytes (see `checks::split`): chunk sizes from the input's tail,
/// one chunk, one byte at a time, 7-byte chunks.
const SPLIT_TAIL: u8 = 0;
const WHOLE: u8 = 1;
const BYTEWISE: u8 = 2;
const SEVENS: u8 = 3;
/// `connection_*`: poll events after every read.
const EAGER: u8 = 0x20;

fn with_opts(opts: u8, traffic: &[u8]) -> Vec<u8> {
    let mut v = vec![opts];
    v.extend_from_slice(traffic);
    v
}

/// RFC 6455 §1.2.
const RFC_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Upgrade requests in the header order real clients send them.
const REQUESTS: [(&str, &str); 9] = [
    ("rfc6455", RFC_REQUEST),
    (
        "chrome",
        "GET /ws?room=lobby HTTP/1.1\r\nHost: localhost:8080\r\nConnection: Upgrade\r\nPragma: no-cache\r\n\
Cache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
Chrome/124.0.0.0 Safari/537.36\r\nUpgrade: websocket\r\nOrigin: http://localhost:8080\r\n\
Sec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    ),
    (
        "firefox",
        "GET /socket HTTP/1.1\r\nHost: example.org\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) \
Gecko/20100101 Firefox/125.0\r\nAccept: */*\r\nSec-WebSocket-Version: 13\r\nOrigin: https://example.org\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\
Connection: keep-alive, Upgrade\r\nSec-Fetch-Mode: websocket\r\nPragma: no-cache\r\nUpgrade: websocket\r\n\r\n",
    ),
    (
        "safari",
        "GET /ws HTTP/1.1\r\nHost: localhost:8080\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Key: 9f8Xo0mNq7wYcJ1rS2tUvA==\r\nConnection: Upgrade\r\nOrigin: http://localhost:8080\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    ),
    (
        "python-websockets",
        "GET / HTTP/1.1\r\nHost: localhost:8765\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: 5Jd0Pj1G0cXkQ6m8ExtV0w==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
User-Agent: Python/3.12 websockets/12.0\r\n\r\n",
    ),
    (
        "node-ws",
        "GET /chat HTTP/1.1\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: q4xkcO32u266gldTuKaSOw==\r\n\
Connection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nHost: localhost:8080\r\n\r\n",
    ),
    (
        "tungstenite",
        "GET /socket HTTP/1.1\r\nHost: localhost:3012\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: 8fGvEi+Ak0yqSl9JCrRHSg==\r\n\r\n",
    ),
    (
        "curl",
        "GET /ws HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\
Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: SGVsbG8sIHdvcmxkIQ==\r\n\r\n",
    ),
    (
        "eventsource",
        "GET /events HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/event-stream\r\n\
Cache-Control: no-cache\r\nLast-Event-ID: 42\r\nConnection: keep-alive\r\n\r\n",
    ),
];

/// RFC 6455 §5.7 examples and frames as browsers and servers send them.
mod frames {
    pub(super) const HELLO: &[u8] = b"\x81\x05Hello";
    pub(super) const HELLO_MASKED: &[u8] = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    pub(super) const HEL_LO: &[u8] = b"\x01\x03Hel\x80\x02lo";
    pub(super) const PING_HELLO: &[u8] = b"\x89\x05Hello";
    pub(super) const PONG_HELLO_MASKED: &[u8] = b"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    pub(super) const BINARY_256_HEADER: &[u8] = b"\x82\x7e\x01\x00";
    pub(super) const BINARY_64K_HEADER: &[u8] = b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00";
}

fn mask(frame: &[u8], key: [u8; 4]) -> Vec<u8> {
    use wavecast_core::frame::{apply_mask, FrameHeader};
    let (mut h, n) = FrameHeader::decode(frame).unwrap().unwrap();
    h.mask = Some(key);
    let mut out = Vec::new();
    h.encode_to(&mut out);
    let start = out.len();
    out.extend_from_slice(&frame[n..]);
    apply_mask(&mut out[start..], key, 0);
    out
}

/// Unmasked frames a server sends, masked versions for the server target.
fn server_traffic() -> Vec<(&'static str, Vec<u8>)> {
    let mut binary = frames::BINARY_256_HEADER.to_vec();
    binary.extend((0..=255u8).collect::<Vec<_>>());
    let mut big = frames::BINARY_64K_HEADER.to_vec();
    big.extend_from_slice(&[0; 32]);
    let json = b"\x81\x1b{\"type\":\"join\",\"room\":\"a\"}";
    vec![
        ("rfc-hello", frames::HELLO.to_vec()),
        ("rfc-fragmented", frames::HEL_LO.to_vec()),
        ("rfc-ping", frames::PING_HELLO.to_vec()),
        ("binary-256", binary),
        ("binary-64k-over-limit", big),
        (
            "json-then-close-1000",
            [&json[..], b"\x88\x02\x03\xe8"].concat(),
        ),
        (
            "close-1001-going-away",
            b"\x88\x0c\x03\xe9going away".to_vec(),
        ),
        (
            "ping-interleaved",
            [&b"\x01\x03Hel"[..], frames::PING_HELLO, b"\x80\x02lo"].concat(),
        ),
        ("invalid-utf8", b"\x81\x04\xce\xba\xe1\xbd".to_vec()),
        ("empty-close", b"\x88\x00".to_vec()),
    ]
}

fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_owned(), bytes));
    };

    // frame_header: RFC 6455 §5.7 headers.
    add("frame_header", "rfc-hello", frames::HELLO.to_vec());
    add(
        "frame_header",
        "rfc-hello-masked",
        frames::HELLO_MASKED.to_vec(),
    );
    add("frame_header", "rfc-fragment", frames::HEL_LO.to_vec());
    add(
        "frame_header",
        "rfc-pong-masked",
        frames::PONG_HELLO_MASKED.to_vec(),
    );
    add(
        "frame_header",
        "rfc-256",
        frames::BINARY_256_HEADER.to_vec(),
    );
    add(
        "frame_header",
        "rfc-64k",
        frames::BINARY_64K_HEADER.to_vec(),
    );
    add(
        "frame_header",
        "masked-64k",
        mask(&[frames::BINARY_64K_HEADER, &[0; 4]].concat(), [1, 2, 3, 4]),
    );
    add(
        "frame_header",
        "close-masked",
        mask(b"\x88\x02\x03\xe8", [0x37, 0xfa, 0x21, 0x3d]),
    );

    // server_handshake: upgrade requests of browsers and common clients.
    for (i, (name, req)) in REQUESTS.iter().enumerate() {
        let opts = [WHOLE, SPLIT_TAIL, SEVENS][i % 3];
        add("server_handshake", name, with_opts(opts, req.as_bytes()));
    }
    add(
        "server_handshake",
        "rfc6455-bytewise",
        with_opts(BYTEWISE, RFC_REQUEST.as_bytes()),
    );
    add(
        "server_handshake",
        "rfc6455-pipelined-frame",
        with_opts(
            WHOLE,
            &[RFC_REQUEST.as_bytes(), frames::HELLO_MASKED].concat(),
        ),
    );
    add(
        "server_handshake",
        "hybi-version-8",
        with_opts(
            WHOLE,
            RFC_REQUEST.replace("Version: 13", "Version: 8").as_bytes(),
        ),
    );
    // Input that cannot be an HTTP/1.1 request, refused at its first
    // impossible byte.
    let impossible: [(&str, &[u8]); 4] = [
        (
            "tls-client-hello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ),
        ("ssh-banner", b"SSH-2.0-OpenSSH_9.6\r\n"),
        ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        (
            "bare-lf",
            b"GET / HTTP/1.1\nHost: x\nUpgrade: websocket\n\n",
        ),
    ];
    for (name, bytes) in impossible {
        add("server_handshake", name, with_opts(BYTEWISE, bytes));
    }

    // client_handshake: responses of common servers, for the fixture key.
    let accept = accept_key(checks::client_fixture().key().as_bytes());
    let responses = [
        (
            "rfc6455",
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
            ),
        ),
        (
            "python-websockets",
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: {accept}\r\nDate: Mon, 06 May 2024 10:00:00 GMT\r\n\
Server: Python/3.12 websockets/12.0\r\n\r\n"
            ),
        ),
        (
            "node-ws",
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ),
        ),
        (
            "nginx-proxy",
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nServer: nginx/1.24.0\r\n\
Date: Mon, 06 May 2024 10:00:00 GMT\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ),
        ),
        (
            "with-first-frame",
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: {accept}\r\n\r\n\u{1}\u{5}Hello"
            ),
        ),
        (
            "rfc6455-accept-for-other-key",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                .to_owned(),
        ),
        (
            "401",
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"ws\"\r\nContent-Length: 0\r\n\r\n"
                .to_owned(),
        ),
        (
            "302",
            "HTTP/1.1 302 Found\r\nLocation: wss://example.com/chat\r\nContent-Length: 0\r\n\r\n".to_owned(),
        ),
        (
            "426",
            "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n".to_owned(),
        ),
    ];
    for (i, (name, resp)) in responses.iter().enumerate() {
        let opts = [WHOLE, SPLIT_TAIL, SEVENS, BYTEWISE][i % 4];
        add("client_handshake", name, with_opts(opts, resp.as_bytes()));
    }

    // connection_client: what servers send; connection_server: the same
    // frames masked, as browsers send them.
    for (i, (name, traffic)) in server_traffic().into_iter().enumerate() {
        let opts = [WHOLE, SPLIT_TAIL | EAGER, SEVENS, BYTEWISE | EAGER][i % 4];
        let mut masked = Vec::new();
        let mut rest = &traffic[..];
        let key = [0x37, 0xfa, 0x21, i as u8];
        while let Ok(Some((h, n))) = wavecast_core::frame::FrameHeader::decode(rest) {
            let len = (n + h.payload_len as usize).min(rest.len());
            masked.extend(mask(&rest[..len], key));
            rest = &rest[len..];
        }
        masked.extend_from_slice(rest);
        add("connection_client", name, with_opts(opts, &traffic));
        add("connection_server", name, with_opts(opts, &masked));
    }
    add(
        "connection_server",
        "rfc-hello-masked",
        with_opts(WHOLE, frames::HELLO_MASKED),
    );
    add(
        "connection_server",
        "rfc-pong-masked",
        with_opts(EAGER, frames::PONG_HELLO_MASKED),
    );

    // connection_pair: action scripts have no wire form; seeds are varied
    // byte strings (the RFC frames and requests read as action lists).
    add(
        "connection_pair",
        "rfc-request",
        RFC_REQUEST.as_bytes().to_vec(),
    );
    add(
        "connection_pair",
        "rfc-frames",
        [frames::HELLO, frames::HEL_LO, frames::PING_HELLO].concat(),
    );
    add("connection_pair", "counting", (0..=255u8).collect());
    add("connection_pair", "descending", (0..=255u8).rev().collect());
    let mut x: u32 = 0x2545_f491;
    let noise: Vec<u8> = (0..512)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    add("connection_pair", "xorshift", noise.clone());

    // sse: the HTML standard's examples and a stream as servers send it.
    let streams: [(&str, &[u8]); 7] = [
        ("html-stocks", b"data: YHOO\ndata: +2\ndata: 10\n\n"),
        (
            "html-test-stream",
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
        ),
        ("html-empty-data", b"data\n\ndata\ndata\n\ndata:"),
        ("html-space", b"data:test\n\ndata: test\n\n"),
        (
            "html-event-types",
            b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
        ),
        ("bom-crlf-retry", b"\xef\xbb\xbfretry: 10000\r\nid: 7\r\ndata: hi\r\ndata: there\r\n\r\n"),
        ("keepalive-and-cr", b":\n\nevent: tick\rid: 9\rdata: {\"n\":1}\r\r:\n\n"),
    ];
    for (i, (name, stream)) in streams.iter().enumerate() {
        let opts = [WHOLE, SPLIT_TAIL | 0x40, SEVENS, BYTEWISE | 0x40][i % 4];
        add("sse", name, with_opts(opts, stream));
    }
    add(
        "sse",
        "round-trip-noise",
        with_opts(0x80 | 5, &noise[..256]),
    );
    add(
        "sse",
        "round-trip-text",
        with_opts(
            0x80 | 17,
            b"data: hello\nevent: greeting\nid: 1\n\n: note\n",
        ),
    );
    #[cfg(feature = "deflate")]
    inflate_seeds(&mut add);
    large_seeds(&mut add);
    interleave_seeds(&mut add);
    out
}

/// Writes inputs in the format `arbitrary` 1.x decodes (see
/// `checks::LargeSetup` and `checks::InterleaveSetup`): integers little
/// endian, `bool` one byte, an enum variant as a `u32` scaled to the
/// variant count, `Option` a `bool` then the value, each `Vec` element
/// after a `true` byte and the end as a `false` byte.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    /// Variant `i` of an enum with `n` variants.
    fn variant(&mut self, i: u64, n: u64) -> &mut Self {
        self.u32(((i << 32).div_ceil(n)) as u32)
    }
    fn key(&mut self, k: [u8; 4]) -> &mut Self {
        self.0.extend(k);
        self
    }
    /// `checks::Len`: Tiny(u8), AroundWindow(i8), Medium(u16), Any(u32), AtLimit(i8).
    fn tiny(&mut self, n: u8) -> &mut Self {
        self.variant(0, 5).u8(n)
    }
    fn around_window(&mut self, d: i8) -> &mut Self {
        self.variant(1, 5).u8(d as u8)
    }
    fn medium(&mut self, sixteens: u16) -> &mut Self {
        self.variant(2, 5).u16(sixteens)
    }
    fn at_limit(&mut self, d: i8) -> &mut Self {
        self.variant(4, 5).u8(d as u8)
    }
    /// `checks::Fill`: Byte, Counting, Text, Noise(u32), Patched { seed, at, byte }.
    fn fill(&mut self, kind: u64, seed: u8) -> &mut Self {
        match kind {
            3 => self.variant(3, 5).u32(u32::from(seed) * 0x0101_0101),
            _ => self.variant(kind, 5).u8(seed),
        }
    }
    fn patched(&mut self, seed: u8, at: u32, byte: u8) -> &mut Self {
        self.variant(4, 5).u8(seed).u32(at).u8(byte)
    }
    /// `checks::Wire::Frame` (an element of the traffic list).
    fn frame(&mut self, fin: bool, kind: u8, key: [u8; 4]) -> &mut Self {
        self.bool(true)
            .variant(0, 3)
            .bool(fin)
            .u8(kind)
            .u8(0)
            .key(key)
    }
    fn done(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

const FILL_BYTE: u64 = 0;
const FILL_COUNTING: u64 = 1;
const FILL_TEXT: u64 = 2;
const FILL_NOISE: u64 = 3;
const KIND_TEXT: u8 = 0;
const KIND_BINARY: u8 = 1;
const KIND_CONTINUATION: u8 = 2;
const KIND_PING: u8 = 3;
const KIND_CLOSE: u8 = 5;

/// connection_large: megabyte frames from a few bytes each.
/// `LargeSetup` is client, frame limit, message limit, auto-pong, scratch,
/// fragment, write limit, pooled lengths, eof, traffic; then `LargeOp`s
/// (Read, Abandon, Poll, Transmit, Send, Ping, Close, Recycle).
fn large_seeds(add: &mut impl FnMut(&'static str, &str, Vec<u8>)) {
    const OPS: u64 = 8;
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut e = Enc::default();
    // A server reads a 1 MiB binary frame in place (64 KiB scratch), then a
    // close of one byte (no code: 1002).
    e.bool(false)
        .u8(3)
        .u8(0)
        .bool(true)
        .u32(2)
        .bool(false)
        .u8(0);
    e.bool(false).bool(true);
    e.frame(true, KIND_BINARY, key)
        .medium(65535)
        .fill(FILL_COUNTING, 7);
    e.frame(true, KIND_CLOSE, key).tiny(1).fill(FILL_BYTE, 3);
    e.bool(false);
    e.variant(0, OPS).u32(0).u8(255);
    add("connection_large", "server-1mib-in-place", e.done());

    // A client with 4 KiB scratch and two pooled buffers reads a text
    // message in two fragments (multi-byte characters across windows) with
    // a ping between, in 1000-byte reads, abandons a read, answers.
    e.bool(true).u8(2).u8(1).bool(true).u32(1).bool(false).u8(0);
    e.bool(true)
        .around_window(0)
        .bool(true)
        .medium(40000)
        .bool(false);
    e.bool(true);
    e.frame(false, KIND_TEXT, key)
        .around_window(5)
        .fill(FILL_TEXT, 3);
    e.frame(true, KIND_PING, key).tiny(4).fill(FILL_BYTE, b'p');
    e.frame(true, KIND_CONTINUATION, key)
        .medium(10000)
        .fill(FILL_TEXT, 9);
    e.bool(false);
    e.variant(0, OPS).u32(1000).u8(10);
    e.variant(1, OPS).u8(0xee).u32(5000);
    e.variant(2, OPS).u8(255);
    e.variant(0, OPS).u32(0).u8(200);
    e.variant(3, OPS);
    add(
        "connection_large",
        "client-fragmented-text-pooled",
        e.done(),
    );

    // A server that sends large messages (fragmented at 64 KiB), recycles
    // what it wrote, pings and closes while reading 200 KB.
    e.bool(false)
        .u8(2)
        .u8(0)
        .bool(true)
        .u32(3 + (9000 << 2))
        .bool(true)
        .u8(4)
        .u8(0);
    e.bool(false).bool(true);
    e.frame(true, KIND_BINARY, key)
        .medium(12500)
        .fill(FILL_NOISE, 5);
    e.bool(false);
    e.variant(4, OPS)
        .bool(false)
        .medium(10000)
        .fill(FILL_NOISE, 1);
    e.variant(4, OPS)
        .bool(true)
        .around_window(-3)
        .fill(FILL_TEXT, 2);
    e.variant(0, OPS).u32(30000).u8(3);
    e.variant(3, OPS);
    e.variant(7, OPS).medium(8192);
    e.variant(5, OPS).u8(5).u8(b'x');
    e.variant(6, OPS).u16(1000);
    e.variant(0, OPS).u32(0).u8(20);
    add("connection_large", "server-sends-and-recycles", e.done());

    // A frame one byte over the 64 KiB frame limit (1009), then EOF.
    e.bool(false)
        .u8(0)
        .u8(0)
        .bool(true)
        .u32(2)
        .bool(false)
        .u8(0);
    e.bool(false).bool(true);
    e.frame(true, KIND_BINARY, key)
        .at_limit(1)
        .fill(FILL_BYTE, 0);
    e.bool(false);
    add("connection_large", "frame-over-limit", e.done());

    // Invalid UTF-8 deep inside an in-place text frame (1007), read with a
    // 13-byte scratch buffer up to the frame.
    e.bool(true)
        .u8(3)
        .u8(2)
        .bool(false)
        .u32(12 << 2)
        .bool(false)
        .u8(2);
    e.bool(false).bool(true);
    e.frame(true, KIND_TEXT, key)
        .medium(7000)
        .patched(4, 70_000, 0xff);
    e.bool(false);
    e.variant(0, OPS).u32(0).u8(255);
    add("connection_large", "invalid-utf8-in-window", e.done());
}

/// connection_interleave: `InterleaveSetup` is deflate variant, client and
/// server fragment, heartbeat, idle timeout, auto-pong, client and server
/// scratch; then `Step`s (Send, Ping, Close, Transmit, Deliver, Abandon,
/// Poll, Advance).
fn interleave_seeds(add: &mut impl FnMut(&'static str, &str, Vec<u8>)) {
    const STEPS: u64 = 8;
    let send = |e: &mut Enc, client: bool, text: bool| {
        e.variant(0, STEPS).bool(client).bool(text);
    };
    let transmit = |e: &mut Enc, client: bool| {
        e.variant(3, STEPS).bool(client);
    };
    let deliver = |e: &mut Enc, to_server: bool, read: u32| {
        e.variant(4, STEPS).bool(to_server).medium(65535).u32(read);
    };
    let poll = |e: &mut Enc, client: bool| {
        e.variant(6, STEPS).bool(client).u8(255);
    };
    let mut e = Enc::default();
    for (name, deflate, fragments) in [
        // deflate: odd is on, with setting `deflate >> 1`.
        ("plain-large-both-ways", 0u8, (0u8, 0u8)),
        ("deflate-default", 3, (0, 4)),
        ("deflate-takeover-fragmented", 5, (2, 5)),
        ("deflate-stored", 1, (3, 0)),
    ] {
        e.u8(deflate).u8(fragments.0).u8(fragments.1);
        e.bool(false)
            .bool(false)
            .bool(true)
            .u32(2)
            .u32(3 + (5000 << 2));
        send(&mut e, true, false);
        e.medium(40000).fill(FILL_COUNTING, 1);
        send(&mut e, true, true);
        e.around_window(1).fill(FILL_TEXT, 6);
        transmit(&mut e, true);
        deliver(&mut e, true, 0);
        poll(&mut e, false);
        send(&mut e, false, false);
        e.medium(30000).fill(FILL_NOISE, 3);
        transmit(&mut e, false);
        deliver(&mut e, false, 1000);
        poll(&mut e, true);
        add("connection_interleave", name, e.done());
    }

    // Heartbeats every 50 ms, a 300 ms idle timeout, time passing while a
    // large message is in flight, a ping, then a close.
    e.u8(0).u8(0).u8(0);
    e.bool(true)
        .u16(49)
        .bool(true)
        .u16(299)
        .bool(true)
        .u32(0)
        .u32(1);
    send(&mut e, false, false);
    e.around_window(0).fill(FILL_BYTE, 0x42);
    transmit(&mut e, false);
    e.variant(4, STEPS).bool(false).around_window(-50).u32(0);
    e.variant(7, STEPS).u16(120);
    e.variant(5, STEPS).bool(false).u8(0x99);
    deliver(&mut e, false, 0);
    poll(&mut e, true);
    e.variant(1, STEPS).bool(true).bool(false);
    e.variant(2, STEPS).bool(true).u16(1000);
    transmit(&mut e, true);
    deliver(&mut e, true, 7);
    poll(&mut e, false);
    e.variant(7, STEPS).u16(500);
    // The close reason's length comes from the input's last byte: empty.
    e.u8(0);
    add("connection_interleave", "heartbeat-idle-close", e.done());
}

/// inflate: compressed messages as (control byte, payload) pieces; the
/// control byte is fin (0x80), text (0x40) and the payload length.
#[cfg(feature = "deflate")]
fn inflate_seeds(add: &mut impl FnMut(&'static str, &str, Vec<u8>)) {
    let piece = |fin: bool, text: bool, payload: &[u8]| {
        let mut v = vec![(u8::from(fin) << 7) | (u8::from(text) << 6) | payload.len() as u8];
        v.extend_from_slice(payload);
        v
    };
    // RFC 7692 §7.2.3.1: "Hello", one frame and fragmented.
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    add(
        "inflate",
        "rfc-hello",
        with_opts(0, &piece(true, true, &hello)),
    );
    let mut fragmented = piece(false, true, &hello[..3]);
    fragmented.extend(piece(true, false, &hello[3..]));
    add("inflate", "rfc-hello-fragmented", with_opts(2, &fragmented));
    // §7.2.3.3: a stored (uncompressed) block.
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    add(
        "inflate",
        "rfc-stored-block",
        with_opts(1, &piece(true, false, &stored)),
    );
    // §7.2.3.2: two messages, the second referring to the first.
    let mut shared = piece(true, true, &hello);
    shared.extend(piece(true, true, &[0xf2, 0x00, 0x11, 0x00, 0x00]));
    add("inflate", "rfc-shared-window", with_opts(0, &shared));
    // Prose compressed with a 9-bit window.
    let prose = [
        0x2a, 0x4f, 0x2c, 0x4b, 0x4d, 0x4e, 0x2c, 0x2e, 0x51, 0x28, 0x1f, 0x65, 0x8c, 0x32, 0x50,
        0x19, 0x00, 0x00,
    ];
    add(
        "inflate",
        "window-9",
        with_opts(1, &piece(true, true, &prose)),
    );
    // A zip bomb: 200,000 zero bytes in 211 compressed ones (limit: 1 KiB).
    let mut bomb_stream = vec![
        0xec, 0xc1, 0x31, 0x01, 0x00, 0x00, 0x00, 0xc2, 0xa0, 0xf5, 0x4f, 0x6d, 0x06, 0x7f, 0xa0,
    ];
    bomb_stream.extend(std::iter::repeat_n(0u8, 194));
    bomb_stream.extend([0x80, 0xd7, 0x00]);
    let mut bomb = Vec::new();
    let mut rest = &bomb_stream[..];
    while !rest.is_empty() {
        let take = rest.len().min(63);
        bomb.extend(piece(take == rest.len(), false, &rest[..take]));
        rest = &rest[take..];
    }
    add("inflate", "zip-bomb", with_opts(0, &bomb));
}
