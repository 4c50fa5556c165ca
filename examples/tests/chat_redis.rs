//! `chat --redis`: two chat servers (on different runtimes) sharing their
//! rooms through a real `redis-server`, started here on a free port
//! without persistence. Behind the examples' `redis-tests` feature, since
//! it needs Redis installed:
//!
//! ```text
//! cargo test -p wavecast-examples --features redis-tests --test chat_redis
//! ```

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::chat::{refused, sse_first_event};
use support::redis::RedisServer;
use support::{free_addr, tokio_rt, Program};
use wavecast_tokio::{connect, CloseCode, Message, WebSocket};

/// How long any one expected message may take; the chat servers reconnect
/// to a restarted Redis within 5 s.
const WAIT: Duration = Duration::from_secs(10);

async fn next_json(ws: &mut WebSocket) -> Value {
    let message = tokio::time::timeout(WAIT, ws.recv())
        .await
        .expect("a message in time")
        .expect("connection open")
        .expect("a message, not an error");
    match message {
        Message::Text(text) => serde_json::from_str(text.as_str()).expect("JSON"),
        other => panic!("expected JSON text, got {other:?}"),
    }
}

/// The next event of one of the `types`, skipping the others.
async fn next_of(ws: &mut WebSocket, types: &[&str]) -> Value {
    loop {
        let event = next_json(ws).await;
        if types.iter().any(|t| event["type"] == *t) {
            return event;
        }
    }
}

/// Skips events until a presence notice with exactly these `joined` and
/// `left` names (other notices come from other windows or other nodes).
async fn notice(ws: &mut WebSocket, joined: Value, left: Value) {
    loop {
        let event = next_of(ws, &["presence"]).await;
        if event["joined"] == joined && event["left"] == left {
            return;
        }
    }
}

/// Starts the chat example as one node of many, on `runtime`, sharing
/// rooms through the Redis at `redis`.
fn chat_node(name: &'static str, runtime: &str, addr: &str, redis: &str) -> Program {
    let args = ["--runtime", runtime, "--addr", addr, "--redis", redis];
    Program::start_server(name, env!("CARGO_BIN_EXE_chat"), &args)
}

fn send(text: &str, id: &str) -> String {
    json!({ "text": text, "id": id }).to_string()
}

#[test]
fn two_nodes_share_rooms_acks_and_resume_through_redis() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let node_a = chat_node("chat A", "tokio", &a_addr, &url);
    let node_b = chat_node("chat B", "smol", &b_addr, &url);
    let ws_url = |addr: &str, nick: &str, since: Option<&str>| {
        let since = since.map(|s| format!("&since={s}")).unwrap_or_default();
        format!("ws://{addr}/ws/shared?nick={nick}&session={nick}1{since}")
    };

    tokio_rt().block_on(async {
        let (mut ann, _) = connect(&ws_url(&a_addr, "ann", None))
            .await
            .expect("ann on A");
        next_of(&mut ann, &["recovered"]).await;
        let (mut bob, _) = connect(&ws_url(&b_addr, "bob", None))
            .await
            .expect("bob on B");
        next_of(&mut bob, &["recovered"]).await;

        // Sent on A, acked there, delivered on B with the same position.
        ann.send(send("hello", "a1")).await.expect("send");
        let ack = next_of(&mut ann, &["ack"]).await;
        let pos = ack["pos"].as_str().expect("pos").to_owned();
        let heard = next_of(&mut bob, &["message"]).await;
        assert_eq!(
            (&heard["text"], &heard["pos"]),
            (&json!("hello"), &json!(pos))
        );

        // A resend on the same node is acked without a second publish.
        ann.send(send("hello", "a1")).await.expect("resend");
        assert_eq!(next_of(&mut ann, &["ack"]).await["pos"], pos.as_str());

        // So is one from the same page reconnected to the other node (its
        // first connection lingers on A): acked there with the position
        // the message has, and not delivered again.
        let (mut ann_b, _) = connect(&ws_url(&b_addr, "ann", None))
            .await
            .expect("ann on B too");
        next_of(&mut ann_b, &["recovered"]).await;
        ann_b.send(send("hello", "a1")).await.expect("resend on B");
        let ack = next_of(&mut ann_b, &["ack"]).await;
        assert_eq!((&ack["id"], &ack["pos"]), (&json!("a1"), &json!(pos)));
        // The next message bob hears on B is ann's next one: "hello"
        // came once.
        ann_b.send(send("after", "a1b")).await.expect("send on B");
        let after = next_of(&mut ann_b, &["ack"]).await["pos"].clone();
        assert_ne!(after, json!(pos));
        let heard = next_of(&mut bob, &["message"]).await;
        assert_eq!((&heard["text"], &heard["pos"]), (&json!("after"), &after));
        // Another nickname's same id is another message.
        bob.send(send("hi", "a1")).await.expect("send");
        let theirs = next_of(&mut bob, &["ack"]).await["pos"]
            .as_str()
            .expect("pos")
            .to_owned();
        assert!(theirs != pos && after != json!(theirs));
        ann_b.close(CloseCode::NORMAL, "").await.expect("close");
        drop(ann_b);

        // bob goes away and comes back on the other node: what he missed,
        // in order, from Redis's history.
        bob.close(CloseCode::NORMAL, "").await.expect("close");
        drop(bob);
        let mut last = String::new();
        for (text, id) in [("two", "a2"), ("three", "a3")] {
            ann.send(send(text, id)).await.expect("send");
            last = next_of(&mut ann, &["ack"]).await["pos"]
                .as_str()
                .expect("pos")
                .to_owned();
        }
        let (mut bob, _) = connect(&ws_url(&a_addr, "bob", Some(&theirs)))
            .await
            .expect("bob back, on A");
        let mut missed = Vec::new();
        let recovered = loop {
            let event = next_of(&mut bob, &["message", "recovered", "not_recovered"]).await;
            match event["type"].as_str() {
                Some("message") => missed.push(event["text"].clone()),
                _ => break event,
            }
        };
        assert_eq!(missed, [json!("two"), json!("three")]);
        assert_eq!(recovered, json!({"type": "recovered", "pos": last}));

        // Redis goes down: a send is refused with a nack, not lost quietly.
        redis.kill();
        ann.send(send("while down", "a4")).await.expect("send");
        let nack = next_of(&mut ann, &["ack", "nack"]).await;
        assert_eq!(
            (&nack["type"], &nack["id"]),
            (&json!("nack"), &json!("a4")),
            "{nack}"
        );
        assert!(
            nack["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{nack}"
        );

        // Back (empty: a new epoch); the page's retry goes through once
        // the node has reconnected, and bob gets it (after being told the
        // history before it is gone).
        redis.restart();
        let deadline = Instant::now() + WAIT;
        loop {
            ann.send(send("while down", "a4")).await.expect("retry");
            let answer = next_of(&mut ann, &["ack", "nack"]).await;
            if answer["type"] == "ack" {
                break;
            }
            assert!(Instant::now() < deadline, "still refused: {answer}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let heard = next_of(&mut bob, &["message"]).await;
        assert_eq!(heard["text"], "while down");
        for ws in [&mut ann, &mut bob] {
            ws.close(CloseCode::NORMAL, "").await.expect("close");
        }
    });
    node_a.interrupt_and_check();
    node_b.interrupt_and_check();
}

/// Presence spans the nodes: a page on one sees who is on the other in
/// its member list (and so does an SSE listener), hears of their joins and
/// leaves, and a nickname held on one node is refused on the other.
#[test]
fn member_lists_presence_and_nicknames_span_nodes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let node_a = chat_node("chat A", "tokio", &a_addr, &url);
    let node_b = chat_node("chat B", "async-std", &b_addr, &url);
    let ws_url = |addr: &str, nick: &str, session: &str| {
        format!("ws://{addr}/ws/meet?nick={nick}&session={session}")
    };

    tokio_rt().block_on(async {
        let (mut ann, _) = connect(&ws_url(&a_addr, "ann", "ann1"))
            .await
            .expect("ann on A");
        let list = next_of(&mut ann, &["members"]).await;
        assert_eq!(
            (&list["members"], &list["count"]),
            (&json!(["ann"]), &json!(1))
        );

        // bob, on B, is told ann is there, and ann hears of bob.
        let (mut bob, _) = connect(&ws_url(&b_addr, "bob", "bob1"))
            .await
            .expect("bob on B");
        let list = next_of(&mut bob, &["members"]).await;
        assert_eq!(
            (&list["members"], &list["count"]),
            (&json!(["ann", "bob"]), &json!(2)),
            "{list}"
        );
        notice(&mut ann, json!(["bob"]), json!([])).await;

        // carl joins on A: bob, on B, hears of it.
        let (mut carl, _) = connect(&ws_url(&a_addr, "carl", "carl1"))
            .await
            .expect("carl on A");
        notice(&mut bob, json!(["carl"]), json!([])).await;
        notice(&mut ann, json!(["carl"]), json!([])).await;

        // An SSE listener on B starts from everyone, on both nodes.
        let b = b_addr.clone();
        let list = std::thread::spawn(move || sse_first_event(&b, "meet", WAIT))
            .join()
            .expect("SSE listener");
        assert_eq!(list["type"], "members", "{list}");
        assert_eq!(list["members"], json!(["ann", "bob", "carl"]), "{list}");

        // ann's nickname, held on A, is refused on B to another session or
        // to a client without one.
        for intruder in [
            ws_url(&b_addr, "ann", "other"),
            format!("ws://{b_addr}/ws/meet?nick=ann"),
        ] {
            let reason = refused(&intruder, WAIT).await;
            assert!(reason.contains("taken"), "{reason}");
        }

        // carl leaves A: bob, on B, hears of it, and the name is free on B.
        carl.close(CloseCode::NORMAL, "").await.expect("close");
        drop(carl);
        notice(&mut bob, json!([]), json!(["carl"])).await;
        notice(&mut ann, json!([]), json!(["carl"])).await;
        let (mut carl, _) = connect(&ws_url(&b_addr, "carl", "carl2"))
            .await
            .expect("carl again, on B");
        let list = next_of(&mut carl, &["members"]).await;
        assert_eq!(list["members"], json!(["ann", "bob", "carl"]), "{list}");
        // Heard on A, from B.
        notice(&mut ann, json!(["carl"]), json!([])).await;

        for ws in [&mut ann, &mut bob, &mut carl] {
            ws.close(CloseCode::NORMAL, "").await.expect("close");
        }
    });
    node_a.interrupt_and_check();
    node_b.interrupt_and_check();
}
