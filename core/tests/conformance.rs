//! The Autobahn|Testsuite "fuzzingclient" cases of sections 1–7 and the
//! fragmented-message cases of section 9 (9.3, 9.4), case by case,
//! against a server [`Connection`] acting as the suite's echo testee.
//!
//! Each test replays the octets the suite's case writes — the same payloads,
//! fragmentation, chop sizes and pauses, with one TCP write as one `receive`
//! call — while the testee's application echoes every message as it reads
//! it. The transcript is then graded by the suite's rules (`case.py`): the
//! events the client received must match the case's OK expectation (a match
//! with its NON-STRICT expectation is graded as such and not accepted here),
//! the right endpoint must start the close, the close must be clean where
//! the case requires it, and the code must be in the case's list.
//!
//! On top of the suite's rules we require a close frame where the suite would
//! also accept a dropped TCP connection, nothing after it, well-formed server
//! frames, and for sections 6.5–6.23 also the octet-wise variant: an invalid
//! text is failed right after the first octet that no valid text can follow.

mod common;

use std::time::{Duration, Instant};

use common::{config, drain_output, frame};
use wavecast_core::frame::{FrameHeader, OpCode};
use wavecast_core::{Config, Connection, Event, Outcome, Role};

// ------------------------------------------------------------------ client

/// `sendFrame` options of the suite.
#[derive(Clone, Copy)]
struct Send {
    fin: bool,
    rsv: u8,
    /// `sync = True`: the frame is its own TCP write.
    sync: bool,
    /// `chopsize`: the frame is written in pieces of this many octets.
    chop: Option<usize>,
}

/// A final frame, written together with its neighbours.
const PLAIN: Send = Send {
    fin: true,
    rsv: 0,
    sync: false,
    chop: None,
};

/// A non-final frame.
const MORE: Send = PLAIN.fin(false);

impl Send {
    const fn fin(self, fin: bool) -> Send {
        Send { fin, ..self }
    }
    const fn rsv(self, rsv: u8) -> Send {
        Send { rsv, ..self }
    }
    const fn sync(self) -> Send {
        Send { sync: true, ..self }
    }
    const fn chop(self, size: usize) -> Send {
        Send {
            chop: Some(size),
            ..self
        }
    }
}

/// One thing the fuzzing client does.
enum Step {
    /// Octets appended to the current TCP write.
    Data(Vec<u8>),
    /// `sendCloseFrame`: appended to the current write only while the
    /// connection is open, and then the client started the close.
    Close(Vec<u8>),
    /// The end of a TCP write: what is buffered reaches the testee in one
    /// `receive` call.
    Flush,
    /// `continueLater(1, ...)`: a second passes. With a label the case
    /// records `("timeout", label)` if the connection is still open, and
    /// otherwise does nothing more.
    Pause(Option<&'static str>),
}

/// The octets and pauses one case sends.
struct Script {
    steps: Vec<Step>,
    frames: u32,
    /// The testee's settings.
    config: Config,
}

impl Script {
    fn new() -> Script {
        Script {
            steps: Vec::new(),
            frames: 0,
            config: config(),
        }
    }

    /// The testee runs with `config` instead of the defaults.
    fn with_config(mut self, config: Config) -> Script {
        self.config = config;
        self
    }

    /// A masked client frame; each one gets its own key, as the suite's
    /// random keys would be.
    fn encode(&mut self, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
        self.frames += 1;
        let key = self.frames.wrapping_mul(0x9e37_79b9).to_be_bytes();
        frame(fin, rsv, OpCode::from_bits(opcode), payload, Some(key))
    }

    /// `sendFrame(opcode, payload, fin, rsv, sync, chopsize)`.
    fn frame(mut self, opcode: u8, payload: &[u8], send: Send) -> Script {
        let bytes = self.encode(send.fin, send.rsv, opcode, payload);
        if let Some(size) = send.chop {
            for piece in bytes.chunks(size) {
                self.steps.push(Step::Flush);
                self.steps.push(Step::Data(piece.to_vec()));
            }
            self.steps.push(Step::Flush);
        } else if send.sync {
            self.steps.push(Step::Flush);
            self.steps.push(Step::Data(bytes));
            self.steps.push(Step::Flush);
        } else {
            self.steps.push(Step::Data(bytes));
        }
        self
    }

    /// `sendMessage(payload, binary = False, payload_frag_size = size)`.
    fn message(mut self, text: &[u8], frag_size: Option<usize>) -> Script {
        let size = frag_size.unwrap_or(text.len()).max(1);
        let pieces: Vec<&[u8]> = if text.is_empty() {
            vec![text]
        } else {
            text.chunks(size).collect()
        };
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i == 0 { 1 } else { 0 };
            self = self.frame(opcode, piece, PLAIN.fin(i + 1 == pieces.len()));
        }
        self
    }

    /// Octets written as they are, together with their neighbours.
    fn data(mut self, bytes: &[u8]) -> Script {
        self.steps.push(Step::Data(bytes.to_vec()));
        self
    }

    /// `sendCloseFrame(code, reason)`, in the current write.
    fn close(mut self, code: Option<u16>, reason: &[u8]) -> Script {
        let mut payload = code.map_or(Vec::new(), |c| c.to_be_bytes().to_vec());
        payload.extend_from_slice(reason);
        self.steps.push(Step::Close(payload));
        self
    }

    /// `sendClose(1000)` from a later callback (`closeAfter`, or the case
    /// seeing all it expected): a write of its own.
    fn close_later(mut self) -> Script {
        self.steps.push(Step::Flush);
        self.close(Some(1000), b"")
    }

    /// `continueLater`, with the label a case records if still open.
    fn pause(mut self, label: Option<&'static str>) -> Script {
        self.steps.push(Step::Pause(label));
        self
    }
}

// ------------------------------------------------------------------ testee

/// What the client observed, as the suite records it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rx {
    /// `("message", payload, binary)`.
    Message(Vec<u8>, bool),
    /// `("ping", payload)`.
    Ping(Vec<u8>),
    /// `("pong", payload)`.
    Pong(Vec<u8>),
    /// `("timeout", label)`.
    Timeout(&'static str),
}

fn text(payload: &[u8]) -> Rx {
    Rx::Message(payload.to_vec(), false)
}

fn binary(payload: &[u8]) -> Rx {
    Rx::Message(payload.to_vec(), true)
}

fn pong(payload: &[u8]) -> Rx {
    Rx::Pong(payload.to_vec())
}

/// A server connection whose application echoes every message it reads,
/// and the client's view of what the server wrote.
struct Testee {
    conn: Connection,
    now: Instant,
    /// Server octets not yet parsed into frames.
    wire: Vec<u8>,
    /// A message being reassembled from server frames: (binary, payload).
    partial: Option<(bool, Vec<u8>)>,
    received: Vec<Rx>,
    /// The server's close frame and its code (`None` for an empty one).
    close: Option<Option<u16>>,
    /// Frames the server should not have written.
    faults: Vec<String>,
}

impl Testee {
    fn new(config: Config) -> Testee {
        let now = Instant::now();
        Testee {
            conn: Connection::new(Role::Server, config, now),
            now,
            wire: Vec::new(),
            partial: None,
            received: Vec::new(),
            close: None,
            faults: Vec::new(),
        }
    }

    /// One TCP write arrives: the echo server's loop reads it, answers
    /// every event as the application reaches it, and writes as it goes.
    fn feed(&mut self, bytes: &[u8]) {
        if self.conn.is_closed() {
            // The testee closed the TCP connection: the octets go nowhere.
            return;
        }
        self.now += Duration::from_millis(1);
        self.conn.receive(self.now, bytes);
        self.transmit();
        while let Some(event) = self.conn.poll_event() {
            if let Event::Message(message) = event {
                if self.conn.is_open() {
                    self.conn.send(message).expect("echo while open");
                }
            }
            self.transmit();
        }
    }

    /// A second passes.
    fn wait(&mut self) {
        self.now += Duration::from_secs(1);
        self.conn.handle_timeout(self.now);
        self.transmit();
    }

    /// Drains the server's output and parses what the client receives.
    fn transmit(&mut self) {
        self.wire.extend(drain_output(&mut self.conn));
        loop {
            let (header, len) = match FrameHeader::decode(&self.wire) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => return,
                Err(e) => {
                    self.faults.push(format!("undecodable server frame: {e}"));
                    self.wire.clear();
                    return;
                }
            };
            let end = len + header.payload_len as usize;
            if self.wire.len() < end {
                return;
            }
            let payload = self.wire[len..end].to_vec();
            self.wire.drain(..end);
            self.on_frame(header, payload);
        }
    }

    fn on_frame(&mut self, header: FrameHeader, payload: Vec<u8>) {
        if self.close.is_some() {
            self.faults
                .push(format!("{:?} frame after the close frame", header.opcode));
            return;
        }
        if header.mask.is_some() || header.rsv != 0 {
            self.faults
                .push(format!("malformed server frame {header:?}"));
        }
        match header.opcode {
            OpCode::Text | OpCode::Binary => {
                if self.partial.is_some() {
                    self.faults.push("new message inside a message".into());
                }
                self.partial = Some((header.opcode == OpCode::Binary, payload));
            }
            OpCode::Continuation => match self.partial.as_mut() {
                Some((_, buf)) => buf.extend_from_slice(&payload),
                None => self.faults.push("continuation without a message".into()),
            },
            OpCode::Ping => self.received.push(Rx::Ping(payload)),
            OpCode::Pong => self.received.push(Rx::Pong(payload)),
            OpCode::Close => {
                let code = match payload.len() {
                    0 => None,
                    1 => {
                        self.faults.push("one-octet close payload".into());
                        None
                    }
                    _ => Some(u16::from_be_bytes([payload[0], payload[1]])),
                };
                if payload.len() > 2 && std::str::from_utf8(&payload[2..]).is_err() {
                    self.faults.push("close reason is not UTF-8".into());
                }
                self.close = Some(code);
            }
            OpCode::Reserved(op) => self.faults.push(format!("reserved opcode {op}")),
        }
        if header.fin && !header.opcode.is_control() {
            if let Some((is_binary, buf)) = self.partial.take() {
                self.received.push(Rx::Message(buf, is_binary));
            }
        }
    }
}

/// The end of one case, as the suite sees it.
#[derive(Clone, Debug)]
struct Run {
    received: Vec<Rx>,
    /// The client sent its close frame before the server did (`closedByMe`).
    closed_by_client: bool,
    /// The close payload the client sent first, if it started the close.
    client_close: Option<Vec<u8>>,
    /// The server's close frame and its code.
    server_close: Option<Option<u16>>,
    /// Both close frames were exchanged and the server closed the connection.
    clean: bool,
    /// The client had to drop the TCP connection (`droppedByMe`).
    dropped_by_client: bool,
    faults: Vec<String>,
}

fn run(script: Script) -> Run {
    let mut t = Testee::new(script.config);
    let mut pending = Vec::new();
    let mut client_close: Option<Vec<u8>> = None;
    let mut client_echoed = false;
    let mut steps = script.steps;
    steps.push(Step::Flush);
    for step in steps {
        match step {
            Step::Data(bytes) => pending.extend(bytes),
            Step::Close(payload) => {
                // `sendCloseFrame` only acts while the connection is open.
                if client_close.is_none() && t.close.is_none() {
                    pending.extend(Script::new().encode(true, 0, 8, &payload));
                    client_close = Some(payload);
                }
            }
            Step::Flush | Step::Pause(_) => {
                if !pending.is_empty() {
                    t.feed(&std::mem::take(&mut pending));
                }
                // The client answers the server's close with its own.
                if let (Some(code), None, false) = (t.close, &client_close, client_echoed) {
                    client_echoed = true;
                    let echo = code.map_or(Vec::new(), |c| c.to_be_bytes().to_vec());
                    t.feed(&Script::new().encode(true, 0, 8, &echo));
                }
                if let Step::Pause(label) = step {
                    t.wait();
                    if let Some(label) = label {
                        if client_close.is_some() || t.close.is_some() {
                            break;
                        }
                        t.received.push(Rx::Timeout(label));
                    }
                }
            }
        }
    }
    // `killAfter`: the client drops the connection if the testee has not.
    let dropped_by_client = !t.conn.is_closed();
    if dropped_by_client {
        t.conn.receive_eof(t.now);
        t.transmit();
    }
    let clean = client_close.is_some() || client_echoed;
    let clean = clean
        && t.close.is_some()
        && !dropped_by_client
        && matches!(t.conn.outcome(), Some(Outcome::Clean { .. }));
    Run {
        received: t.received,
        closed_by_client: client_close.is_some(),
        client_close,
        server_close: t.close,
        clean,
        dropped_by_client,
        faults: t.faults,
    }
}

// ----------------------------------------------------------------- grading

/// A case's expectations, as the suite states them.
struct Expect {
    ok: Vec<Rx>,
    non_strict: Option<Vec<Rx>>,
    /// `closedByMe`: the client starts the close (else the testee fails
    /// the connection).
    closed_by_client: bool,
    /// `closeCode`: the codes accepted in the testee's close frame.
    codes: Vec<u16>,
    /// `requireClean`.
    require_clean: bool,
    /// Beyond the suite: the one code of `codes` we send.
    exact: Option<u16>,
}

impl Expect {
    /// The testee echoes `ok`; then the client closes with 1000 and the
    /// testee answers cleanly.
    fn echo(ok: Vec<Rx>) -> Expect {
        Expect {
            ok,
            non_strict: None,
            closed_by_client: true,
            codes: vec![1000],
            require_clean: true,
            exact: None,
        }
    }

    /// The testee sends `ok`, then fails the connection with `code`.
    fn fail(code: u16, ok: Vec<Rx>) -> Expect {
        Expect {
            ok,
            non_strict: None,
            closed_by_client: false,
            codes: vec![code],
            require_clean: false,
            exact: None,
        }
    }

    /// The client starts the close; the testee answers with one of `codes`.
    fn client_closes(codes: &[u16], require_clean: bool) -> Expect {
        Expect {
            ok: Vec::new(),
            non_strict: None,
            closed_by_client: true,
            codes: codes.to_vec(),
            require_clean,
            exact: None,
        }
    }

    fn non_strict(self, received: Vec<Rx>) -> Expect {
        Expect {
            non_strict: Some(received),
            ..self
        }
    }

    fn exact(self, code: u16) -> Expect {
        assert!(self.codes.contains(&code));
        Expect {
            exact: Some(code),
            ..self
        }
    }
}

/// How the suite grades a case.
#[derive(Debug, PartialEq, Eq)]
enum Grade {
    Ok,
    NonStrict,
    Failed(String),
}

/// The suite's verdict (`Case.onConnectionLost`) plus our stricter checks.
fn grade(expect: &Expect, run: &Run) -> Grade {
    let behavior = if run.received == expect.ok {
        Grade::Ok
    } else if expect.non_strict.as_ref() == Some(&run.received) {
        Grade::NonStrict
    } else {
        return Grade::Failed(format!(
            "events {:?} differ from any expected ({:?}, non-strict {:?})",
            run.received, expect.ok, expect.non_strict
        ));
    };
    if run.closed_by_client != expect.closed_by_client {
        return Grade::Failed("the connection was failed by the wrong endpoint".into());
    }
    if expect.require_clean && !run.clean {
        return Grade::Failed("unclean: the close handshake did not finish".into());
    }
    if let Some(Some(code)) = run.server_close {
        if !expect.codes.contains(&code) {
            return Grade::Failed(format!("wrong code {code}, expected {:?}", expect.codes));
        }
        if expect.exact.is_some_and(|want| want != code) {
            return Grade::Failed(format!("code {code}, we send {:?}", expect.exact));
        }
    }
    if run.dropped_by_client {
        return Grade::Failed("the client had to drop the TCP connection".into());
    }
    if !run.faults.is_empty() {
        return Grade::Failed(format!("malformed server output: {:?}", run.faults));
    }
    match (run.server_close, &run.client_close) {
        (None, _) => return Grade::Failed("no close frame from the testee".into()),
        // Only an empty close is answered with an empty close.
        (Some(None), Some(sent)) if sent.is_empty() => {}
        (Some(None), _) => return Grade::Failed("close frame without a code".into()),
        (Some(Some(_)), _) => {}
    }
    behavior
}

fn check(script: Script, expect: Expect) {
    let run = run(script);
    assert_eq!(grade(&expect, &run), Grade::Ok, "{run:?}");
}

/// The grader itself: what the suite would not grade OK is not graded OK.
#[test]
fn grade_follows_the_suite() {
    let failed = Run {
        received: vec![text(HELLO)],
        closed_by_client: false,
        client_close: None,
        server_close: Some(Some(1002)),
        clean: false,
        dropped_by_client: false,
        faults: Vec::new(),
    };
    let expect = Expect::fail(1002, vec![text(HELLO)]).non_strict(vec![]);
    assert_eq!(grade(&expect, &failed), Grade::Ok);
    let variants = [
        Run {
            received: Vec::new(),
            ..failed.clone()
        },
        Run {
            received: vec![text(HELLO), pong(b"")],
            ..failed.clone()
        },
        Run {
            server_close: Some(Some(1007)),
            ..failed.clone()
        },
        Run {
            closed_by_client: true,
            client_close: Some(Vec::new()),
            ..failed.clone()
        },
        Run {
            server_close: None,
            ..failed.clone()
        },
        Run {
            dropped_by_client: true,
            ..failed.clone()
        },
        Run {
            faults: vec!["masked".into()],
            ..failed.clone()
        },
    ];
    let grades: Vec<_> = variants.iter().map(|run| grade(&expect, run)).collect();
    assert_eq!(grades[0], Grade::NonStrict);
    for (run, grade) in variants.iter().zip(&grades).skip(1) {
        assert!(matches!(grade, Grade::Failed(_)), "{run:?}");
    }
    let closed = Run {
        received: Vec::new(),
        closed_by_client: true,
        client_close: Some(1000u16.to_be_bytes().to_vec()),
        server_close: Some(Some(1000)),
        clean: true,
        ..failed
    };
    let expect = Expect::client_closes(&[1000], true);
    assert_eq!(grade(&expect, &closed), Grade::Ok);
    for run in [
        Run {
            clean: false,
            ..closed.clone()
        },
        Run {
            server_close: Some(None),
            ..closed.clone()
        },
    ] {
        assert!(matches!(grade(&expect, &run), Grade::Failed(_)), "{run:?}");
    }
}

// ------------------------------------------------------------- 1 framing

fn echo_one(opcode: u8, octet: u8, len: usize, chop: Option<usize>) {
    let payload = vec![octet; len];
    let send = match chop {
        Some(size) => PLAIN.chop(size),
        None => PLAIN,
    };
    let echoed = if opcode == 1 {
        text(&payload)
    } else {
        binary(&payload)
    };
    check(
        Script::new().frame(opcode, &payload, send).close_later(),
        Expect::echo(vec![echoed]),
    );
}

#[test]
fn case_1_1_1() {
    echo_one(1, b'*', 0, None);
}

#[test]
fn case_1_1_2() {
    echo_one(1, b'*', 125, None);
}

#[test]
fn case_1_1_3() {
    echo_one(1, b'*', 126, None);
}

#[test]
fn case_1_1_4() {
    echo_one(1, b'*', 127, None);
}

#[test]
fn case_1_1_5() {
    echo_one(1, b'*', 128, None);
}

#[test]
fn case_1_1_6() {
    echo_one(1, b'*', 65535, None);
}

#[test]
fn case_1_1_7() {
    echo_one(1, b'*', 65536, None);
}

#[test]
fn case_1_1_8() {
    echo_one(1, b'*', 65536, Some(997));
}

#[test]
fn case_1_2_1() {
    echo_one(2, 0xfe, 0, None);
}

#[test]
fn case_1_2_2() {
    echo_one(2, 0xfe, 125, None);
}

#[test]
fn case_1_2_3() {
    echo_one(2, 0xfe, 126, None);
}

#[test]
fn case_1_2_4() {
    echo_one(2, 0xfe, 127, None);
}

#[test]
fn case_1_2_5() {
    echo_one(2, 0xfe, 128, None);
}

#[test]
fn case_1_2_6() {
    echo_one(2, 0xfe, 65535, None);
}

#[test]
fn case_1_2_7() {
    echo_one(2, 0xfe, 65536, None);
}

#[test]
fn case_1_2_8() {
    echo_one(2, 0xfe, 65536, Some(997));
}

// ------------------------------------------------------- 2 pings and pongs

fn ping_pong(payload: &[u8], send: Send) {
    check(
        Script::new().frame(9, payload, send).close_later(),
        Expect::echo(vec![pong(payload)]),
    );
}

#[test]
fn case_2_1() {
    ping_pong(b"", PLAIN);
}

#[test]
fn case_2_2() {
    ping_pong(b"Hello, world!", PLAIN);
}

#[test]
fn case_2_3() {
    ping_pong(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", PLAIN);
}

#[test]
fn case_2_4() {
    ping_pong(&[0xfe; 125], PLAIN);
}

#[test]
fn case_2_5() {
    check(
        Script::new().frame(9, &[0xfe; 126], PLAIN),
        Expect::fail(1002, vec![]),
    );
}

#[test]
fn case_2_6() {
    ping_pong(&[0xfe; 125], PLAIN.chop(1));
}

#[test]
fn case_2_7() {
    check(
        Script::new().frame(10, b"", PLAIN).close_later(),
        Expect::echo(vec![]),
    );
}

#[test]
fn case_2_8() {
    check(
        Script::new()
            .frame(10, b"unsolicited pong payload", PLAIN)
            .close_later(),
        Expect::echo(vec![]),
    );
}

#[test]
fn case_2_9() {
    check(
        Script::new()
            .frame(10, b"unsolicited pong payload", PLAIN)
            .frame(9, b"ping payload", PLAIN)
            .close_later(),
        Expect::echo(vec![pong(b"ping payload")]),
    );
}

fn ten_pings(send: Send) {
    let mut script = Script::new();
    let mut pongs = Vec::new();
    for i in 0..10 {
        let payload = format!("payload-{i}");
        script = script.frame(9, payload.as_bytes(), send);
        pongs.push(pong(payload.as_bytes()));
    }
    check(script.close_later(), Expect::echo(pongs));
}

#[test]
fn case_2_10() {
    ten_pings(PLAIN);
}

#[test]
fn case_2_11() {
    ten_pings(PLAIN.chop(1));
}

// --------------------------------------------------------- 3 reserved bits

const HELLO: &[u8] = b"Hello, world!";

/// A message, the same with reserved bits set, then a ping: the first is
/// echoed before the connection fails.
fn rsv_after_message(rsv: u8, send: Send) {
    check(
        Script::new()
            .frame(1, HELLO, send)
            .frame(1, HELLO, send.rsv(rsv))
            .frame(9, b"", send),
        Expect::fail(1002, vec![text(HELLO)]).non_strict(vec![]),
    );
}

#[test]
fn case_3_1() {
    check(
        Script::new().frame(1, HELLO, PLAIN.rsv(1)),
        Expect::fail(1002, vec![]),
    );
}

#[test]
fn case_3_2() {
    rsv_after_message(2, PLAIN);
}

#[test]
fn case_3_3() {
    rsv_after_message(3, PLAIN.sync());
}

#[test]
fn case_3_4() {
    rsv_after_message(4, PLAIN.chop(1));
}

#[test]
fn case_3_5() {
    check(
        Script::new().frame(2, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", PLAIN.rsv(5)),
        Expect::fail(1002, vec![]),
    );
}

#[test]
fn case_3_6() {
    // Described as a ping; the suite's case writes opcode 2.
    check(
        Script::new().frame(2, HELLO, PLAIN.rsv(6)),
        Expect::fail(1002, vec![]),
    );
}

#[test]
fn case_3_7() {
    check(
        Script::new().frame(8, b"", PLAIN.rsv(7)),
        Expect::fail(1002, vec![]),
    );
}

// ------------------------------------------------------ 4 reserved opcodes

fn reserved_opcode(opcode: u8, payload: &[u8]) {
    check(
        Script::new().frame(opcode, payload, PLAIN),
        Expect::fail(1002, vec![]),
    );
}

/// A message, a frame with a reserved opcode, then a ping.
fn reserved_after_message(opcode: u8, payload: &[u8], send: Send) {
    check(
        Script::new()
            .frame(1, HELLO, send)
            .frame(opcode, payload, send)
            .frame(9, b"", send),
        Expect::fail(1002, vec![text(HELLO)]).non_strict(vec![]),
    );
}

#[test]
fn case_4_1_1() {
    reserved_opcode(3, b"");
}

#[test]
fn case_4_1_2() {
    reserved_opcode(4, b"reserved opcode payload");
}

#[test]
fn case_4_1_3() {
    reserved_after_message(5, b"", PLAIN);
}

#[test]
fn case_4_1_4() {
    reserved_after_message(6, HELLO, PLAIN);
}

#[test]
fn case_4_1_5() {
    reserved_after_message(7, HELLO, PLAIN.chop(1));
}

#[test]
fn case_4_2_1() {
    reserved_opcode(11, b"");
}

#[test]
fn case_4_2_2() {
    reserved_opcode(12, b"reserved opcode payload");
}

#[test]
fn case_4_2_3() {
    reserved_after_message(13, b"", PLAIN);
}

#[test]
fn case_4_2_4() {
    reserved_after_message(14, HELLO, PLAIN);
}

#[test]
fn case_4_2_5() {
    reserved_after_message(15, HELLO, PLAIN.chop(1));
}

// ---------------------------------------------------------- 5 fragmentation

#[test]
fn case_5_1() {
    check(
        Script::new()
            .frame(9, b"fragment1", MORE)
            .frame(0, b"fragment2", PLAIN),
        Expect::fail(1002, vec![]),
    );
}

#[test]
fn case_5_2() {
    check(
        Script::new()
            .frame(10, b"fragment1", MORE)
            .frame(0, b"fragment2", PLAIN),
        Expect::fail(1002, vec![]),
    );
}

fn two_fragments(send: Send) {
    check(
        Script::new()
            .frame(1, b"fragment1", send.fin(false))
            .frame(0, b"fragment2", send)
            .close_later(),
        Expect::echo(vec![text(b"fragment1fragment2")]),
    );
}

#[test]
fn case_5_3() {
    two_fragments(PLAIN);
}

#[test]
fn case_5_4() {
    two_fragments(PLAIN.sync());
}

#[test]
fn case_5_5() {
    two_fragments(PLAIN.chop(1));
}

fn ping_between_fragments(send: Send) {
    check(
        Script::new()
            .frame(1, b"fragment1", send.fin(false))
            .frame(9, b"ping payload", send)
            .frame(0, b"fragment2", send)
            .close_later(),
        Expect::echo(vec![pong(b"ping payload"), text(b"fragment1fragment2")]),
    );
}

#[test]
fn case_5_6() {
    ping_between_fragments(PLAIN);
}

#[test]
fn case_5_7() {
    ping_between_fragments(PLAIN.sync());
}

#[test]
fn case_5_8() {
    ping_between_fragments(PLAIN.chop(1));
}

/// A continuation with nothing to continue, then a text message.
fn continuation_first(fin: bool, send: Send) {
    check(
        Script::new()
            .frame(0, b"non-continuation payload", send.fin(fin))
            .frame(1, HELLO, send),
        Expect::fail(1002, vec![]),
    );
}

#[test]
fn case_5_9() {
    continuation_first(true, PLAIN);
}

#[test]
fn case_5_10() {
    continuation_first(true, PLAIN.sync());
}

#[test]
fn case_5_11() {
    continuation_first(true, PLAIN.chop(1));
}

#[test]
fn case_5_12() {
    continuation_first(false, PLAIN);
}

#[test]
fn case_5_13() {
    continuation_first(false, PLAIN.sync());
}

#[test]
fn case_5_14() {
    continuation_first(false, PLAIN.chop(1));
}

#[test]
fn case_5_15() {
    check(
        Script::new()
            .frame(1, b"fragment1", MORE)
            .frame(0, b"fragment2", PLAIN)
            .frame(0, b"fragment3", MORE)
            .frame(1, b"fragment4", PLAIN),
        Expect::fail(1002, vec![text(b"fragment1fragment2")]).non_strict(vec![]),
    );
}

/// Twice: a stray continuation, then a message in two fragments.
fn stray_continuation_twice(fin: bool) {
    let mut script = Script::new();
    for _ in 0..2 {
        script = script
            .frame(0, b"fragment1", PLAIN.fin(fin))
            .frame(1, b"fragment2", MORE)
            .frame(0, b"fragment3", PLAIN);
    }
    check(script, Expect::fail(1002, vec![]));
}

#[test]
fn case_5_16() {
    stray_continuation_twice(false);
}

#[test]
fn case_5_17() {
    stray_continuation_twice(true);
}

#[test]
fn case_5_18() {
    check(
        Script::new()
            .frame(1, b"fragment1", MORE)
            .frame(1, b"fragment2", PLAIN),
        Expect::fail(1002, vec![]),
    );
}

/// Two fragments and a ping, a pause, two fragments, a ping, the last one:
/// the first ping is answered before the message is complete.
fn pings_with_pause(send: Send) {
    check(
        Script::new()
            .frame(1, b"fragment1", send.fin(false))
            .frame(0, b"fragment2", send.fin(false))
            .frame(9, b"pongme 1!", send)
            .pause(None)
            .frame(0, b"fragment3", send.fin(false))
            .frame(0, b"fragment4", send.fin(false))
            .frame(9, b"pongme 2!", send)
            .frame(0, b"fragment5", send)
            .close_later(),
        Expect::echo(vec![
            pong(b"pongme 1!"),
            pong(b"pongme 2!"),
            text(b"fragment1fragment2fragment3fragment4fragment5"),
        ]),
    );
}

#[test]
fn case_5_19() {
    pings_with_pause(PLAIN);
}

#[test]
fn case_5_20() {
    pings_with_pause(PLAIN.sync());
}

// ------------------------------------------------------------------ 6 UTF-8

/// κόσμε, the Greek word of Markus Kuhn's UTF-8 test file.
const KOSME: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";

const HELLO_UTF8: &str = "Hello-µ@ßöäüàá-UTF-8!!";

#[test]
fn case_6_1_1() {
    check(
        Script::new().frame(1, b"", PLAIN).close_later(),
        Expect::echo(vec![text(b"")]),
    );
}

#[test]
fn case_6_1_2() {
    check(
        Script::new()
            .frame(1, b"", MORE)
            .frame(0, b"", MORE)
            .frame(0, b"", PLAIN)
            .close_later(),
        Expect::echo(vec![text(b"")]),
    );
}

#[test]
fn case_6_1_3() {
    check(
        Script::new()
            .frame(1, b"", MORE)
            .frame(0, b"middle frame payload", MORE)
            .frame(0, b"", PLAIN)
            .close_later(),
        Expect::echo(vec![text(b"middle frame payload")]),
    );
}

#[test]
fn case_6_2_1() {
    check(
        Script::new()
            .message(HELLO_UTF8.as_bytes(), None)
            .close_later(),
        Expect::echo(vec![text(HELLO_UTF8.as_bytes())]),
    );
}

#[test]
fn case_6_2_2() {
    let (first, second) = ("Hello-µ@ßöä", "üàá-UTF-8!!");
    check(
        Script::new()
            .frame(1, first.as_bytes(), MORE)
            .frame(0, second.as_bytes(), PLAIN)
            .close_later(),
        Expect::echo(vec![text(HELLO_UTF8.as_bytes())]),
    );
}

#[test]
fn case_6_2_3() {
    check(
        Script::new()
            .message(HELLO_UTF8.as_bytes(), Some(1))
            .close_later(),
        Expect::echo(vec![text(HELLO_UTF8.as_bytes())]),
    );
}

#[test]
fn case_6_2_4() {
    check(
        Script::new().message(KOSME, Some(1)).close_later(),
        Expect::echo(vec![text(KOSME)]),
    );
}

/// κόσμε, a UTF-16 surrogate (invalid on its second octet, 0xa0), "edited".
const KOSME_SURROGATE: &[u8] =
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";

#[test]
fn case_6_3_1() {
    check(
        Script::new().message(KOSME_SURROGATE, None),
        Expect::fail(1007, vec![]),
    );
}

#[test]
fn case_6_3_2() {
    check(
        Script::new().message(KOSME_SURROGATE, Some(1)),
        Expect::fail(1007, vec![]),
    );
}

/// κόσμε, U+110000 in the UTF-8 integer scheme (invalid on its second
/// octet, 0x90), "edited".
const KOSME_BEYOND: &[u8] =
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64";

/// Fail fast: three parts with a pause after each of the first two; the
/// connection must fail on the second part, before the third is sent.
fn fail_fast(script: Script) {
    check(
        script,
        Expect::fail(1007, vec![Rx::Timeout("A")])
            .non_strict(vec![Rx::Timeout("A"), Rx::Timeout("B")]),
    );
}

/// The three parts as frames of one fragmented message.
fn fail_fast_frames(cuts: [usize; 2]) {
    let [a, b] = cuts;
    fail_fast(
        Script::new()
            .frame(1, &KOSME_BEYOND[..a], MORE)
            .pause(Some("A"))
            .frame(0, &KOSME_BEYOND[a..b], MORE)
            .pause(Some("B"))
            .frame(0, &KOSME_BEYOND[b..], PLAIN),
    );
}

/// The three parts as chops of one frame announcing the whole payload.
fn fail_fast_chops(cuts: [usize; 2]) {
    let mut script = Script::new();
    let bytes = script.encode(true, 0, 1, KOSME_BEYOND);
    let header = bytes.len() - KOSME_BEYOND.len();
    let [a, b] = cuts.map(|cut| header + cut);
    fail_fast(
        script
            .data(&bytes[..a])
            .pause(Some("A"))
            .data(&bytes[a..b])
            .pause(Some("B"))
            .data(&bytes[b..]),
    );
}

#[test]
fn case_6_4_1() {
    fail_fast_frames([11, 15]);
}

#[test]
fn case_6_4_2() {
    fail_fast_frames([12, 13]);
}

#[test]
fn case_6_4_3() {
    fail_fast_chops([11, 15]);
}

#[test]
fn case_6_4_4() {
    fail_fast_chops([12, 13]);
}

/// Cases 6.5–6.23: one text message in one frame with a payload from Markus
/// Kuhn's UTF-8 decoder test file. Valid text is echoed; invalid text fails
/// the connection with 1007.
fn utf8_message(payload: &[u8], valid: bool) {
    assert_eq!(std::str::from_utf8(payload).is_ok(), valid, "{payload:x?}");
    let expect = if valid {
        Expect::echo(vec![text(payload)])
    } else {
        Expect::fail(1007, vec![])
    };
    let mut script = Script::new().message(payload, None);
    if valid {
        script = script.close_later();
    }
    check(script, expect);
    utf8_octetwise(payload, valid);
}

/// Beyond the suite: the same frame fed one octet per `receive`. Invalid text
/// fails right after the first octet that no valid text can follow (or after
/// the last octet, when the text only stops short).
fn utf8_octetwise(payload: &[u8], valid: bool) {
    let bytes = Script::new().encode(true, 0, 1, payload);
    let header = bytes.len() - payload.len();
    let mut t = Testee::new(config());
    let mut closed_at = None;
    for (i, octet) in bytes.iter().enumerate() {
        t.feed(std::slice::from_ref(octet));
        if t.close.is_some() {
            closed_at = Some(i);
            break;
        }
    }
    if valid {
        assert_eq!(closed_at, None);
        assert_eq!(t.received, [text(payload)]);
        return;
    }
    let fatal = (1..=payload.len())
        .find(|&n| matches!(std::str::from_utf8(&payload[..n]), Err(e) if e.error_len().is_some()))
        .unwrap_or(payload.len());
    assert_eq!(closed_at, Some(header + fatal - 1), "{payload:x?}");
    assert_eq!(t.close, Some(Some(1007)));
    assert!(t.received.is_empty());
}

macro_rules! utf8_case {
    ($name:ident, $payload:expr, valid) => {
        #[test]
        fn $name() {
            utf8_message(&$payload, true);
        }
    };
    ($name:ident, $payload:expr, invalid) => {
        #[test]
        fn $name() {
            utf8_message(&$payload, false);
        }
    };
}

/// Octets `from..to`, each followed by a space (the "lonely start characters").
fn lonely(from: u8, to: u8) -> Vec<u8> {
    (from..to).flat_map(|b| [b, b' ']).collect()
}

/// The sequences of 6.14, each with its last continuation octet missing.
const TRUNCATED: [&[u8]; 10] = [
    b"\xc0",
    b"\xe0\x80",
    b"\xf0\x80\x80",
    b"\xf8\x80\x80\x80",
    b"\xfc\x80\x80\x80\x80",
    b"\xdf",
    b"\xef\xbf",
    b"\xf7\xbf\xbf",
    b"\xfb\xbf\xbf\xbf",
    b"\xfd\xbf\xbf\xbf\xbf",
];

// 6.5 Some valid UTF-8 sequences.
utf8_case!(case_6_5_1, *b"hello\x24world", valid);
utf8_case!(case_6_5_2, *b"hello\xc2\xa2world", valid);
utf8_case!(case_6_5_3, *b"hello\xe2\x82\xacworld", valid);
utf8_case!(case_6_5_4, *b"hello\xf0\xa4\xad\xa2world", valid);
utf8_case!(case_6_5_5, *KOSME, valid);

// 6.6 All prefixes of κόσμε: only those ending on a code point are valid.
utf8_case!(case_6_6_1, KOSME[..1], invalid);
utf8_case!(case_6_6_2, KOSME[..2], valid);
utf8_case!(case_6_6_3, KOSME[..3], invalid);
utf8_case!(case_6_6_4, KOSME[..4], invalid);
utf8_case!(case_6_6_5, KOSME[..5], valid);
utf8_case!(case_6_6_6, KOSME[..6], invalid);
utf8_case!(case_6_6_7, KOSME[..7], valid);
utf8_case!(case_6_6_8, KOSME[..8], invalid);
utf8_case!(case_6_6_9, KOSME[..9], valid);
utf8_case!(case_6_6_10, KOSME[..10], invalid);
utf8_case!(case_6_6_11, KOSME[..11], valid);

// 6.7 First possible sequence of a certain length.
utf8_case!(case_6_7_1, *b"\x00", valid);
utf8_case!(case_6_7_2, *b"\xc2\x80", valid);
utf8_case!(case_6_7_3, *b"\xe0\xa0\x80", valid);
utf8_case!(case_6_7_4, *b"\xf0\x90\x80\x80", valid);

// 6.8 First possible sequence of length 5 and 6 (invalid code points).
utf8_case!(case_6_8_1, *b"\xf8\x88\x80\x80\x80", invalid);
utf8_case!(case_6_8_2, *b"\xfc\x84\x80\x80\x80\x80", invalid);

// 6.9 Last possible sequence of a certain length.
utf8_case!(case_6_9_1, *b"\x7f", valid);
utf8_case!(case_6_9_2, *b"\xdf\xbf", valid);
utf8_case!(case_6_9_3, *b"\xef\xbf\xbf", valid);
utf8_case!(case_6_9_4, *b"\xf4\x8f\xbf\xbf", valid);

// 6.10 Last possible sequence of length 4, 5 and 6 (invalid code points).
utf8_case!(case_6_10_1, *b"\xf7\xbf\xbf\xbf", invalid);
utf8_case!(case_6_10_2, *b"\xfb\xbf\xbf\xbf\xbf", invalid);
utf8_case!(case_6_10_3, *b"\xfd\xbf\xbf\xbf\xbf\xbf", invalid);

// 6.11 Other boundary conditions.
utf8_case!(case_6_11_1, *b"\xed\x9f\xbf", valid);
utf8_case!(case_6_11_2, *b"\xee\x80\x80", valid);
utf8_case!(case_6_11_3, *b"\xef\xbf\xbd", valid);
utf8_case!(case_6_11_4, *b"\xf4\x8f\xbf\xbf", valid);
utf8_case!(case_6_11_5, *b"\xf4\x90\x80\x80", invalid);

// 6.12 Unexpected continuation octets.
utf8_case!(case_6_12_1, *b"\x80", invalid);
utf8_case!(case_6_12_2, *b"\xbf", invalid);
utf8_case!(case_6_12_3, *b"\x80\xbf", invalid);
utf8_case!(case_6_12_4, *b"\x80\xbf\x80", invalid);
utf8_case!(case_6_12_5, *b"\x80\xbf\x80\xbf", invalid);
utf8_case!(case_6_12_6, *b"\x80\xbf\x80\xbf\x80", invalid);
utf8_case!(case_6_12_7, *b"\x80\xbf\x80\xbf\x80\xbf", invalid);
utf8_case!(case_6_12_8, (0x80..0xbf).collect::<Vec<u8>>(), invalid);

// 6.13 Lonely start characters.
utf8_case!(case_6_13_1, lonely(0xc0, 0xdf), invalid);
utf8_case!(case_6_13_2, lonely(0xe0, 0xef), invalid);
utf8_case!(case_6_13_3, lonely(0xf0, 0xf7), invalid);
utf8_case!(case_6_13_4, lonely(0xf8, 0xfb), invalid);
utf8_case!(case_6_13_5, lonely(0xfc, 0xfd), invalid);

// 6.14 Sequences with the last continuation octet missing.
utf8_case!(case_6_14_1, *TRUNCATED[0], invalid);
utf8_case!(case_6_14_2, *TRUNCATED[1], invalid);
utf8_case!(case_6_14_3, *TRUNCATED[2], invalid);
utf8_case!(case_6_14_4, *TRUNCATED[3], invalid);
utf8_case!(case_6_14_5, *TRUNCATED[4], invalid);
utf8_case!(case_6_14_6, *TRUNCATED[5], invalid);
utf8_case!(case_6_14_7, *TRUNCATED[6], invalid);
utf8_case!(case_6_14_8, *TRUNCATED[7], invalid);
utf8_case!(case_6_14_9, *TRUNCATED[8], invalid);
utf8_case!(case_6_14_10, *TRUNCATED[9], invalid);

// 6.15 Concatenation of incomplete sequences.
utf8_case!(case_6_15_1, TRUNCATED.concat(), invalid);

// 6.16 Impossible octets.
utf8_case!(case_6_16_1, *b"\xfe", invalid);
utf8_case!(case_6_16_2, *b"\xff", invalid);
utf8_case!(case_6_16_3, *b"\xfe\xfe\xff\xff", invalid);

// 6.17 Examples of an overlong ASCII character.
utf8_case!(case_6_17_1, *b"\xc0\xaf", invalid);
utf8_case!(case_6_17_2, *b"\xe0\x80\xaf", invalid);
utf8_case!(case_6_17_3, *b"\xf0\x80\x80\xaf", invalid);
utf8_case!(case_6_17_4, *b"\xf8\x80\x80\x80\xaf", invalid);
utf8_case!(case_6_17_5, *b"\xfc\x80\x80\x80\x80\xaf", invalid);

// 6.18 Maximum overlong sequences.
utf8_case!(case_6_18_1, *b"\xc1\xbf", invalid);
utf8_case!(case_6_18_2, *b"\xe0\x9f\xbf", invalid);
utf8_case!(case_6_18_3, *b"\xf0\x8f\xbf\xbf", invalid);
utf8_case!(case_6_18_4, *b"\xf8\x87\xbf\xbf\xbf", invalid);
utf8_case!(case_6_18_5, *b"\xfc\x83\xbf\xbf\xbf\xbf", invalid);

// 6.19 Overlong representation of the NUL character.
utf8_case!(case_6_19_1, *b"\xc0\x80", invalid);
utf8_case!(case_6_19_2, *b"\xe0\x80\x80", invalid);
utf8_case!(case_6_19_3, *b"\xf0\x80\x80\x80", invalid);
utf8_case!(case_6_19_4, *b"\xf8\x80\x80\x80\x80", invalid);
utf8_case!(case_6_19_5, *b"\xfc\x80\x80\x80\x80\x80", invalid);

// 6.20 Single UTF-16 surrogates.
utf8_case!(case_6_20_1, *b"\xed\xa0\x80", invalid);
utf8_case!(case_6_20_2, *b"\xed\xad\xbf", invalid);
utf8_case!(case_6_20_3, *b"\xed\xae\x80", invalid);
utf8_case!(case_6_20_4, *b"\xed\xaf\xbf", invalid);
utf8_case!(case_6_20_5, *b"\xed\xb0\x80", invalid);
utf8_case!(case_6_20_6, *b"\xed\xbe\x80", invalid);
utf8_case!(case_6_20_7, *b"\xed\xbf\xbf", invalid);

// 6.21 Paired UTF-16 surrogates.
utf8_case!(case_6_21_1, *b"\xed\xa0\x80\xed\xb0\x80", invalid);
utf8_case!(case_6_21_2, *b"\xed\xa0\x80\xed\xbf\xbf", invalid);
utf8_case!(case_6_21_3, *b"\xed\xad\xbf\xed\xb0\x80", invalid);
utf8_case!(case_6_21_4, *b"\xed\xad\xbf\xed\xbf\xbf", invalid);
utf8_case!(case_6_21_5, *b"\xed\xae\x80\xed\xb0\x80", invalid);
utf8_case!(case_6_21_6, *b"\xed\xae\x80\xed\xbf\xbf", invalid);
utf8_case!(case_6_21_7, *b"\xed\xaf\xbf\xed\xb0\x80", invalid);
utf8_case!(case_6_21_8, *b"\xed\xaf\xbf\xed\xbf\xbf", invalid);

// 6.22 Non-character code points (valid UTF-8).
utf8_case!(case_6_22_1, *b"\xef\xbf\xbe", valid);
utf8_case!(case_6_22_2, *b"\xef\xbf\xbf", valid);
utf8_case!(case_6_22_3, *b"\xf0\x9f\xbf\xbe", valid);
utf8_case!(case_6_22_4, *b"\xf0\x9f\xbf\xbf", valid);
utf8_case!(case_6_22_5, *b"\xf0\xaf\xbf\xbe", valid);
utf8_case!(case_6_22_6, *b"\xf0\xaf\xbf\xbf", valid);
utf8_case!(case_6_22_7, *b"\xf0\xbf\xbf\xbe", valid);
utf8_case!(case_6_22_8, *b"\xf0\xbf\xbf\xbf", valid);
utf8_case!(case_6_22_9, *b"\xf1\x8f\xbf\xbe", valid);
utf8_case!(case_6_22_10, *b"\xf1\x8f\xbf\xbf", valid);
utf8_case!(case_6_22_11, *b"\xf1\x9f\xbf\xbe", valid);
utf8_case!(case_6_22_12, *b"\xf1\x9f\xbf\xbf", valid);
utf8_case!(case_6_22_13, *b"\xf1\xaf\xbf\xbe", valid);
utf8_case!(case_6_22_14, *b"\xf1\xaf\xbf\xbf", valid);
utf8_case!(case_6_22_15, *b"\xf1\xbf\xbf\xbe", valid);
utf8_case!(case_6_22_16, *b"\xf1\xbf\xbf\xbf", valid);
utf8_case!(case_6_22_17, *b"\xf2\x8f\xbf\xbe", valid);
utf8_case!(case_6_22_18, *b"\xf2\x8f\xbf\xbf", valid);
utf8_case!(case_6_22_19, *b"\xf2\x9f\xbf\xbe", valid);
utf8_case!(case_6_22_20, *b"\xf2\x9f\xbf\xbf", valid);
utf8_case!(case_6_22_21, *b"\xf2\xaf\xbf\xbe", valid);
utf8_case!(case_6_22_22, *b"\xf2\xaf\xbf\xbf", valid);
utf8_case!(case_6_22_23, *b"\xf2\xbf\xbf\xbe", valid);
utf8_case!(case_6_22_24, *b"\xf2\xbf\xbf\xbf", valid);
utf8_case!(case_6_22_25, *b"\xf3\x8f\xbf\xbe", valid);
utf8_case!(case_6_22_26, *b"\xf3\x8f\xbf\xbf", valid);
utf8_case!(case_6_22_27, *b"\xf3\x9f\xbf\xbe", valid);
utf8_case!(case_6_22_28, *b"\xf3\x9f\xbf\xbf", valid);
utf8_case!(case_6_22_29, *b"\xf3\xaf\xbf\xbe", valid);
utf8_case!(case_6_22_30, *b"\xf3\xaf\xbf\xbf", valid);
utf8_case!(case_6_22_31, *b"\xf3\xbf\xbf\xbe", valid);
utf8_case!(case_6_22_32, *b"\xf3\xbf\xbf\xbf", valid);
utf8_case!(case_6_22_33, *b"\xf4\x8f\xbf\xbe", valid);
utf8_case!(case_6_22_34, *b"\xf4\x8f\xbf\xbf", valid);

// 6.23 Unicode specials (e.g. the replacement character).
utf8_case!(case_6_23_1, *b"\xef\xbf\xb9", valid);
utf8_case!(case_6_23_2, *b"\xef\xbf\xba", valid);
utf8_case!(case_6_23_3, *b"\xef\xbf\xbb", valid);
utf8_case!(case_6_23_4, *b"\xef\xbf\xbc", valid);
utf8_case!(case_6_23_5, *b"\xef\xbf\xbd", valid);
utf8_case!(case_6_23_6, *b"\xef\xbf\xbe", valid);
utf8_case!(case_6_23_7, *b"\xef\xbf\xbf", valid);

// -------------------------------------------------------- 7 close handling

#[test]
fn case_7_1_1() {
    check(
        Script::new().frame(1, b"Hello World!", PLAIN).close_later(),
        Expect::echo(vec![text(b"Hello World!")]),
    );
}

/// The client closes with 1000 and writes `then` right behind its close
/// frame; the testee answers the close and ignores the rest.
fn after_close(then: impl FnOnce(Script) -> Script) {
    check(
        then(Script::new().close(Some(1000), b"")),
        Expect::client_closes(&[1000], true),
    );
}

#[test]
fn case_7_1_2() {
    after_close(|s| s.frame(8, b"", PLAIN));
}

#[test]
fn case_7_1_3() {
    after_close(|s| s.frame(9, b"", PLAIN));
}

#[test]
fn case_7_1_4() {
    after_close(|s| s.frame(1, b"Hello World!", PLAIN));
}

#[test]
fn case_7_1_5() {
    check(
        Script::new()
            .frame(1, b"fragment1", MORE)
            .close(Some(1000), b"")
            .frame(0, b"fragment2", PLAIN),
        Expect::client_closes(&[1000], true),
    );
}

#[test]
fn case_7_1_6() {
    // 256 KiB of "BAsd7&jh23" repeated, then a message, the close and a ping,
    // back to back. The suite reports this case as informational; we hold
    // the testee to processing everything before the close in order.
    let big: Vec<u8> = b"BAsd7&jh23"
        .iter()
        .copied()
        .cycle()
        .take(256 << 10)
        .collect();
    let mut expect = Expect::client_closes(&[1000], true);
    expect.ok = vec![text(&big), text(b"Hello World!")];
    check(
        Script::new()
            .frame(1, &big, PLAIN)
            .frame(1, b"Hello World!", PLAIN)
            .close(Some(1000), b"")
            .frame(9, b"", PLAIN),
        expect,
    );
}

#[test]
fn case_7_3_1() {
    check(
        Script::new().close(None, b""),
        Expect::client_closes(&[1000], true),
    );
}

#[test]
fn case_7_3_2() {
    check(
        Script::new().close(None, b"a"),
        Expect::client_closes(&[1002], false),
    );
}

#[test]
fn case_7_3_3() {
    check(
        Script::new().close(Some(1000), b""),
        Expect::client_closes(&[1000], true),
    );
}

#[test]
fn case_7_3_4() {
    check(
        Script::new().close(Some(1000), b"Hello World!"),
        Expect::client_closes(&[1000], true),
    );
}

#[test]
fn case_7_3_5() {
    check(
        Script::new().close(Some(1000), &[b'*'; 123]),
        Expect::client_closes(&[1000], true),
    );
}

#[test]
fn case_7_3_6() {
    check(
        Script::new().close(Some(1000), &[b'*'; 124]),
        Expect::client_closes(&[1002], false),
    );
}

#[test]
fn case_7_5_1() {
    // The suite accepts 1002 or 1007 for a reason that is not UTF-8.
    check(
        Script::new().close(Some(1000), KOSME_SURROGATE),
        Expect::client_closes(&[1002, 1007], false).exact(1007),
    );
}

/// A valid close code: echoed (the suite also accepts 1000).
fn valid_code(code: u16) {
    check(
        Script::new().close(Some(code), b""),
        Expect::client_closes(&[1000, code], true).exact(code),
    );
}

#[test]
fn case_7_7_1() {
    valid_code(1000);
}

#[test]
fn case_7_7_2() {
    valid_code(1001);
}

#[test]
fn case_7_7_3() {
    valid_code(1002);
}

#[test]
fn case_7_7_4() {
    valid_code(1003);
}

#[test]
fn case_7_7_5() {
    valid_code(1007);
}

#[test]
fn case_7_7_6() {
    valid_code(1008);
}

#[test]
fn case_7_7_7() {
    valid_code(1009);
}

#[test]
fn case_7_7_8() {
    valid_code(1010);
}

#[test]
fn case_7_7_9() {
    valid_code(1011);
}

#[test]
fn case_7_7_10() {
    valid_code(3000);
}

#[test]
fn case_7_7_11() {
    valid_code(3999);
}

#[test]
fn case_7_7_12() {
    valid_code(4000);
}

#[test]
fn case_7_7_13() {
    valid_code(4999);
}

/// An invalid close code: answered with 1002.
fn invalid_code(code: u16) {
    check(
        Script::new().close(Some(code), b""),
        Expect::client_closes(&[1002], false),
    );
}

#[test]
fn case_7_9_1() {
    invalid_code(0);
}

#[test]
fn case_7_9_2() {
    invalid_code(999);
}

#[test]
fn case_7_9_3() {
    invalid_code(1004);
}

#[test]
fn case_7_9_4() {
    invalid_code(1005);
}

#[test]
fn case_7_9_5() {
    invalid_code(1006);
}

#[test]
fn case_7_9_6() {
    invalid_code(1016);
}

#[test]
fn case_7_9_7() {
    invalid_code(1100);
}

#[test]
fn case_7_9_8() {
    invalid_code(2000);
}

#[test]
fn case_7_9_9() {
    invalid_code(2999);
}

/// A code above the registered ranges. The suite reports these cases as
/// informational and accepts 1000, the code itself or 1002; we send 1002.
fn out_of_range_code(code: u16) {
    check(
        Script::new().close(Some(code), b""),
        Expect::client_closes(&[1000, code, 1002], false).exact(1002),
    );
}

#[test]
fn case_7_13_1() {
    out_of_range_code(5000);
}

#[test]
fn case_7_13_2() {
    out_of_range_code(65535);
}

// ------------------------------------------------- 9 limits and performance

/// The message limits the examples (`echo`, `autobahn-client`) run with.
fn example_limits() -> Config {
    config()
        .with_max_message_size(16 << 20)
        .with_max_frame_size(16 << 20)
}

/// `sendMessage` of a 4 MiB message in fragments of `frag_size` bytes, all
/// in one write; the testee echoes it whole. No fragment cap may get in the
/// way (the suite fails a close with 1009 here).
fn fragmented_4mib(binary_message: bool, frag_size: usize) {
    let (opcode, octet) = if binary_message { (2, 0xfe) } else { (1, b'*') };
    let payload = vec![octet; 4 << 20];
    let pieces: Vec<&[u8]> = payload.chunks(frag_size).collect();
    let mut script = Script::new().with_config(example_limits());
    for (i, piece) in pieces.iter().enumerate() {
        let opcode = if i == 0 { opcode } else { 0 };
        script = script.frame(opcode, piece, PLAIN.fin(i + 1 == pieces.len()));
    }
    let echoed = if binary_message {
        binary(&payload)
    } else {
        text(&payload)
    };
    check(script.close_later(), Expect::echo(vec![echoed]));
}

#[test]
fn case_9_3_1() {
    fragmented_4mib(false, 64);
}

#[test]
fn case_9_3_2() {
    fragmented_4mib(false, 256);
}

#[test]
fn case_9_3_3() {
    fragmented_4mib(false, 1 << 10);
}

#[test]
fn case_9_3_4() {
    fragmented_4mib(false, 4 << 10);
}

#[test]
fn case_9_3_5() {
    fragmented_4mib(false, 16 << 10);
}

#[test]
fn case_9_3_6() {
    fragmented_4mib(false, 64 << 10);
}

#[test]
fn case_9_3_7() {
    fragmented_4mib(false, 256 << 10);
}

#[test]
fn case_9_3_8() {
    fragmented_4mib(false, 1 << 20);
}

#[test]
fn case_9_3_9() {
    fragmented_4mib(false, 4 << 20);
}

#[test]
fn case_9_4_1() {
    fragmented_4mib(true, 64);
}

#[test]
fn case_9_4_2() {
    fragmented_4mib(true, 256);
}

#[test]
fn case_9_4_3() {
    fragmented_4mib(true, 1 << 10);
}

#[test]
fn case_9_4_4() {
    fragmented_4mib(true, 4 << 10);
}

#[test]
fn case_9_4_5() {
    fragmented_4mib(true, 16 << 10);
}

#[test]
fn case_9_4_6() {
    fragmented_4mib(true, 64 << 10);
}

#[test]
fn case_9_4_7() {
    fragmented_4mib(true, 256 << 10);
}

#[test]
fn case_9_4_8() {
    fragmented_4mib(true, 1 << 20);
}

#[test]
fn case_9_4_9() {
    fragmented_4mib(true, 4 << 20);
}
