//! Smoke tests of the shipped programs as users run them: `echo`, `chat` and
//! `client` are started as processes on every runtime, exercised over real
//! loopback sockets, then sent SIGINT and expected to exit cleanly.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use support::chat::{refused, sse_first_event, sse_until};
use support::{free_addr, get, http, tokio_rt, Program};
use wavecast_tokio::{connect, CloseCode, Message, WebSocket};

/// How long any one expected message may take.
const WAIT: Duration = Duration::from_secs(5);

/// The next message, within [`WAIT`].
async fn next(ws: &mut WebSocket) -> Message {
    tokio::time::timeout(WAIT, ws.recv())
        .await
        .expect("a message in time")
        .expect("connection open")
        .expect("a message, not an error")
}

/// The next message as JSON.
async fn next_json(ws: &mut WebSocket) -> Value {
    match next(ws).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).expect("JSON"),
        other => panic!("expected JSON text, got {other:?}"),
    }
}

/// What a connection gets for itself when it joins: the member list and
/// a `recovered` notice with the room's current position (the member list
/// and the notice travel separately, so in either order). Returns the
/// position.
async fn expect_joined(ws: &mut WebSocket, room: &str, members: Value) -> String {
    let first = next_json(ws).await;
    let (list, notice) = if first["type"] == "members" {
        (first, next_json(ws).await)
    } else {
        (next_json(ws).await, first)
    };
    assert_eq!(
        (list["type"].as_str(), list["room"].as_str()),
        (Some("members"), Some(room)),
        "{list}"
    );
    assert_eq!(list["members"], members, "{list}");
    assert_eq!(list["count"], members.as_array().unwrap().len(), "{list}");
    assert_eq!(notice["type"], "recovered", "{notice}");
    notice["pos"].as_str().expect("a position").to_owned()
}

/// The next event that is not about presence (those come on their own
/// schedule, every 250 ms at most).
async fn next_said(ws: &mut WebSocket) -> Value {
    loop {
        let event = next_json(ws).await;
        if event["type"] != "presence" && event["type"] != "members" {
            return event;
        }
    }
}

/// Sends `text` with `id` and returns its position from the ack, having
/// also seen the message come back with the same position (in either
/// order: the ack and the room's copy travel separately).
async fn say(ws: &mut WebSocket, text: &str, id: &str) -> String {
    let message = serde_json::json!({ "text": text, "id": id }).to_string();
    ws.send(message.as_str()).await.expect("send");
    let (mut acked, mut echoed) = (None, None);
    while acked.is_none() || echoed.is_none() {
        let event = next_said(ws).await;
        match event["type"].as_str() {
            Some("ack") => {
                assert_eq!(event["id"], id, "{event}");
                acked = Some(event["pos"].as_str().expect("pos").to_owned());
            }
            Some("message") => {
                assert_eq!(
                    (&event["text"], &event["id"]),
                    (&Value::from(text), &Value::from(id))
                );
                echoed = Some(event["pos"].as_str().expect("pos").to_owned());
            }
            _ => panic!("expected the ack and the message, got {event}"),
        }
    }
    assert_eq!(acked, echoed, "the ack names the message's position");
    acked.expect("acked")
}

/// Acknowledged sends and resume: an id gets an ack with the message's
/// position; the same id again is acked with the same position and not
/// published again; a member that reconnects with `since` gets exactly
/// what it missed, in order, then `recovered`; a `since` from an unknown
/// epoch, or not a position at all, gets `not_recovered`.
async fn acks_and_resume(addr: &str) {
    use serde_json::json;
    let url = |nick: &str, since: Option<&str>| match since {
        Some(since) => format!("ws://{addr}/ws/resume?nick={nick}&session={nick}1&since={since}"),
        None => format!("ws://{addr}/ws/resume?nick={nick}&session={nick}1"),
    };
    let (mut ann, _) = connect(&url("ann", None)).await.expect("ann joins");
    let start = expect_joined(&mut ann, "resume", json!(["ann"])).await;
    let one = say(&mut ann, "one", "m1").await;
    assert_ne!(one, start, "a publication moves the position");

    // The same id again (a resend after a lost ack): acked with the same
    // position, and the room does not get it twice; the next message
    // anyone sees is the next one.
    ann.send(r#"{"text":"one","id":"m1"}"#)
        .await
        .expect("resend");
    let again = next_said(&mut ann).await;
    assert_eq!(again, json!({"type": "ack", "id": "m1", "pos": one}));
    let two = say(&mut ann, "two", "m2").await;
    ann.close(CloseCode::NORMAL, "away").await.expect("close");
    drop(ann);

    // While ann is away, bob says two things.
    let (mut bob, _) = connect(&url("bob", None)).await.expect("bob joins");
    expect_joined(&mut bob, "resume", json!(["bob"])).await;
    say(&mut bob, "three", "b1").await;
    let four = say(&mut bob, "four", "b2").await;

    // ann comes back from where she was: exactly the two she missed, in
    // order, then `recovered` at the latest position.
    let (mut ann, _) = connect(&url("ann", Some(&two))).await.expect("ann resumes");
    let mut missed = Vec::new();
    let recovered = loop {
        let event = next_said(&mut ann).await;
        match event["type"].as_str() {
            Some("message") => missed.push(event["text"].clone()),
            Some("recovered") => break event,
            _ => panic!("expected the missed messages, got {event}"),
        }
    };
    assert_eq!(missed, [json!("three"), json!("four")]);
    assert_eq!(recovered["pos"], four.as_str());
    // Then live, without repeats.
    let five = say(&mut bob, "five", "b3").await;
    let live = next_said(&mut ann).await;
    assert_eq!(
        (&live["text"], &live["pos"]),
        (&json!("five"), &json!(five))
    );

    // A position from an epoch the room never had, or no position at all:
    // the client must start over from the current position.
    let (offset, epoch) = five.split_once('_').expect("<offset>_<epoch>");
    let epoch = u64::from_str_radix(epoch, 16).expect("hex epoch");
    let foreign = format!("{offset}_{:x}", epoch ^ 1);
    for (nick, since) in [("cat", foreign.as_str()), ("dan", "garbage")] {
        let (mut ws, _) = connect(&url(nick, Some(since))).await.expect("joins");
        let notice = next_said(&mut ws).await;
        assert_eq!(
            notice,
            json!({"type": "not_recovered", "pos": five}),
            "{since}"
        );
        ws.close(CloseCode::NORMAL, "").await.expect("close");
    }
    for ws in [&mut ann, &mut bob] {
        ws.close(CloseCode::NORMAL, "").await.expect("close");
    }
}

/// The room's next presence notice (one per window of 250 ms and node).
/// It carries no member count: the node that sends it knows only its own
/// members; pages count from their list.
async fn expect_presence(ws: &mut WebSocket, joined: Value, left: Value) {
    let notice = next_json(ws).await;
    assert_eq!(
        notice,
        serde_json::json!({"type": "presence", "joined": joined, "joined_more": 0,
               "left": left, "left_more": 0}),
    );
}

async fn expect_echo(ws: &mut WebSocket, text: &str) {
    ws.send(text).await.expect("send");
    assert_eq!(next(ws).await, Message::from(text));
}

/// `echo`: echoes, `client --count 2` talks to it, it stops on SIGINT and a
/// restart can listen on the same port again.
fn echo_and_client(runtime: &str) {
    let echo_exe = env!("CARGO_BIN_EXE_echo");
    let addr = free_addr();
    let args = ["--runtime", runtime, "--addr", addr.as_str()];
    let echo = Program::start_server("echo", echo_exe, &args);
    let url = format!("ws://{addr}/");
    tokio_rt().block_on(async {
        let (mut ws, _) = connect(&url).await.expect("connect to echo");
        expect_echo(&mut ws, "hello").await;
        ws.send(Message::Binary(vec![0u8, 255].into()))
            .await
            .expect("send");
        assert_eq!(next(&mut ws).await, Message::Binary(vec![0u8, 255].into()));
        ws.close(CloseCode::NORMAL, "").await.expect("close");
    });

    // The client program, on the same runtime, against the echo server.
    let client_args = ["--runtime", runtime, "--url", url.as_str(), "--count", "2"];
    let mut client = Program::spawn("client", env!("CARGO_BIN_EXE_client"), &client_args);
    assert!(
        client.wait_exit(Duration::from_secs(10)),
        "client failed: {:?}",
        client.printed
    );
    let received = client
        .printed
        .iter()
        .filter(|l| l.starts_with("< time "))
        .count();
    assert_eq!(received, 2, "client printed {:?}", client.printed);

    echo.interrupt_and_check();

    // Restart on the same port: the listener was released.
    let echo = Program::start_server("echo", echo_exe, &args);
    tokio_rt().block_on(async {
        let (mut ws, _) = connect(&url).await.expect("reconnect after restart");
        expect_echo(&mut ws, "again").await;
        ws.close(CloseCode::NORMAL, "").await.expect("close");
    });
    echo.interrupt_and_check();
}

/// Nicknames belong to a page session: the same session may connect again
/// while its old connection is still there (a reload) without a second
/// join or a leave, another session is refused with the reason, and an
/// SSE listener gets the member list the moment it connects.
async fn sessions(addr: &str) {
    use serde_json::json;
    let url =
        |nick: &str, session: &str| format!("ws://{addr}/ws/side?nick={nick}&session={session}");
    let (mut first, _) = connect(&url("sam", "tab1")).await.expect("sam joins");
    expect_joined(&mut first, "side", json!(["sam"])).await;
    expect_presence(&mut first, json!(["sam"]), json!([])).await;

    // The reload's connection: the list for itself, nothing for the room.
    let (mut second, _) = connect(&url("sam", "tab1")).await.expect("sam again");
    expect_joined(&mut second, "side", json!(["sam"])).await;

    // Another tab, or a client without a session, asking for the same name.
    for intruder in [url("sam", "tab2"), format!("ws://{addr}/ws/side?nick=sam")] {
        let reason = refused(&intruder, WAIT).await;
        assert!(reason.contains("taken"), "{reason}");
    }

    // A listener arriving now sees sam at once.
    let side = addr.to_owned();
    let list = std::thread::spawn(move || sse_first_event(&side, "side", WAIT))
        .join()
        .expect("SSE listener");
    assert_eq!(list["type"], "members", "{list}");
    assert_eq!(list["members"], json!(["sam"]));

    // The old connection goes: sam is still there, so nothing is said; the
    // next event the new one gets is the notice of zed's join.
    first
        .close(CloseCode::NORMAL, "reloaded")
        .await
        .expect("close");
    drop(first);
    let (mut zed, _) = connect(&url("zed", "z")).await.expect("zed joins");
    expect_joined(&mut zed, "side", json!(["sam", "zed"])).await;
    for ws in [&mut second, &mut zed] {
        expect_presence(ws, json!(["zed"]), json!([])).await;
    }

    // Switching room is leaving one and joining another.
    second
        .close(CloseCode::NORMAL, "switch")
        .await
        .expect("close");
    expect_presence(&mut zed, json!([]), json!(["sam"])).await;
    let (mut moved, _) = connect(&format!("ws://{addr}/ws/elsewhere?nick=sam&session=tab1"))
        .await
        .expect("sam joins elsewhere");
    expect_joined(&mut moved, "elsewhere", json!(["sam"])).await;
    for ws in [&mut moved, &mut zed] {
        ws.close(CloseCode::NORMAL, "").await.expect("close");
    }
}

/// `chat`: the page, two members who see each other, an SSE listener, a
/// refused nickname, a foreign origin, a foreign host (DNS rebinding),
/// acknowledged sends, resume and the echo endpoint.
fn chat(runtime: &str) {
    let addr = free_addr();
    let mut server = Program::start_server(
        "chat",
        env!("CARGO_BIN_EXE_chat"),
        &["--runtime", runtime, "--addr", &addr],
    );

    let (status, page) = get(&addr, "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("<html") || page.contains("<!doctype") || page.contains("<!DOCTYPE"));

    // A browser page from another origin is refused before any upgrade.
    let (status, _) = http(
        &addr,
        &format!(
            "GET /ws/lobby?nick=eve HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    );
    assert_eq!(status, 403);

    // DNS rebinding: the attacker's name as both Host and Origin passes the
    // origin check, and is refused by the allowed-hosts list.
    let (status, _) = http(
        &addr,
        "GET /ws/lobby?nick=eve HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert_eq!(status, 421);

    // An SSE listener on the room, subscribed before anyone speaks.
    let mut sse = TcpStream::connect(&addr).expect("connect SSE");
    sse.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        sse,
        "GET /sse/lobby HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut head = String::new();
    // One reader throughout: what it buffered past the status line is the
    // start of the stream.
    let mut reader = BufReader::new(sse);
    reader.read_line(&mut head).unwrap();
    assert!(head.contains(" 200"), "SSE answered {head:?}");
    let sse_thread = std::thread::spawn(move || sse_until(reader, "hello from a"));

    tokio_rt().block_on(async {
        use serde_json::json;
        let (mut a, _) = connect(&format!("ws://{addr}/ws/lobby?nick=a"))
            .await
            .expect("a joins");
        expect_joined(&mut a, "lobby", json!(["a"])).await;
        expect_presence(&mut a, json!(["a"]), json!([])).await;

        let (mut b, _) = connect(&format!("ws://{addr}/ws/lobby?nick=b"))
            .await
            .expect("b joins");
        expect_joined(&mut b, "lobby", json!(["a", "b"])).await;
        for ws in [&mut a, &mut b] {
            expect_presence(ws, json!(["b"]), json!([])).await;
        }

        a.send(r#"{"text":"hello from a"}"#)
            .await
            .expect("a speaks");
        b.send(r#"{"text":"hi from b"}"#).await.expect("b speaks");
        for ws in [&mut a, &mut b] {
            // The two senders race, so either message may come first.
            let mut got = Vec::new();
            for _ in 0..2 {
                let event = next_json(ws).await;
                assert_eq!(event["type"], "message", "{event}");
                assert_eq!(event["room"], "lobby");
                got.push((event["nick"].to_string(), event["text"].to_string()));
            }
            got.sort();
            let want = [("a", "hello from a"), ("b", "hi from b")]
                .map(|(nick, text)| (format!("{nick:?}"), format!("{text:?}")));
            assert_eq!(got, want);
        }

        b.close(CloseCode::NORMAL, "bye").await.expect("b leaves");
        expect_presence(&mut a, json!([]), json!(["b"])).await;
        a.close(CloseCode::NORMAL, "bye").await.expect("a leaves");

        // A nickname with a leading space is refused with 1008 and a reason,
        // and so is a session id with a space in it.
        let reason = refused(&format!("ws://{addr}/ws/lobby?nick=%20bad"), WAIT).await;
        assert!(reason.contains("nicknames are"), "{reason}");
        let reason = refused(&format!("ws://{addr}/ws/lobby?nick=ok&session=a+b"), WAIT).await;
        assert!(reason.contains("session ids are"), "{reason}");

        sessions(&addr).await;
        acks_and_resume(&addr).await;

        // The plain echo endpoint.
        let (mut echo, _) = connect(&format!("ws://{addr}/websocket"))
            .await
            .expect("echo");
        expect_echo(&mut echo, "echo me").await;
        echo.close(CloseCode::NORMAL, "").await.expect("close");
    });

    let seen = sse_thread.join().expect("SSE listener");
    // First the (empty) member list it started from, then the room.
    let first = seen.iter().find(|l| l.starts_with("data:")).expect("data");
    assert!(
        first.contains(r#""type":"members""#) && first.contains(r#""members":[]"#),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("\"type\":\"message\"")),
        "{seen:?}"
    );

    // The server logs one line per join and leave, with room and nickname.
    for line in [
        r#"join room="lobby" nick="a""#,
        r#"join room="lobby" nick="b""#,
        r#"leave room="lobby" nick="b""#,
        r#"leave room="lobby" nick="a""#,
    ] {
        server.expect_line(line, WAIT);
    }
    server.interrupt_and_check();
}

#[test]
fn echo_and_client_on_tokio() {
    echo_and_client("tokio");
}

#[test]
fn echo_and_client_on_async_std() {
    echo_and_client("async-std");
}

#[test]
fn echo_and_client_on_smol() {
    echo_and_client("smol");
}

#[test]
fn chat_on_tokio() {
    chat("tokio");
}

#[test]
fn chat_on_async_std() {
    chat("async-std");
}

#[test]
fn chat_on_smol() {
    chat("smol");
}
