//! Chat nodes failing while the room is busy: three `chat --redis`
//! processes (tokio, smol and async-std) share one room through a real
//! `redis-server`, pages are spread over them, and a publisher keeps
//! sending acknowledged messages through one node. Then one node is
//! killed (SIGKILL), or stopped (SIGSTOP) and resumed (SIGCONT), and what
//! every page heard is checked against the sequence of acknowledged
//! publications. Behind the examples' `redis-tests` feature, since it
//! needs Redis installed:
//!
//! ```text
//! cargo test -p wavecast-examples --features redis-tests --test chat_nodes
//! ```
//!
//! The pages here behave like the chat page: they remember the last
//! position they heard (a message's `pos`, or the one `recovered` and
//! `not_recovered` carry) and, when their connection drops, come back to
//! another node with `?since=` that position.

mod support;

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::redis::RedisServer;
use support::{free_addr, tokio_rt, Program};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wavecast_tokio::{connect, CloseCode, Message, WebSocket};

/// The room every page is in.
const ROOM: &str = "nodes";

/// How long the test waits for any one thing it expects (a handshake, an
/// ack, an event, a node resubscribing): generous, for a loaded 2-core CI
/// machine. Nothing waits this long when all is well.
const WAIT: Duration = Duration::from_secs(30);

/// The publisher's pause between an ack and its next message.
const PACE: Duration = Duration::from_millis(40);

/// While a node is stopped, the pages of the other nodes must hear each
/// publication within this long after it was acknowledged, and every
/// publication must be acknowledged within this long after it was sent.
const PROMPT: Duration = Duration::from_secs(2);

/// The publisher's last message (its id and its text): a page that hears
/// it is done.
const LAST: &str = "last";

/// Pages per node.
const PAGES_PER_NODE: usize = 2;

/// Three chat nodes on `runtimes`, sharing the rooms through `redis`.
fn start_nodes(redis: &RedisServer, runtimes: [&'static str; 3]) -> (Vec<String>, Vec<Program>) {
    const NAMES: [&str; 3] = ["chat node 0", "chat node 1", "chat node 2"];
    let url = redis.url();
    let exe = env!("CARGO_BIN_EXE_chat");
    let mut addrs = Vec::new();
    let mut nodes = Vec::new();
    for (name, runtime) in NAMES.into_iter().zip(runtimes) {
        let addr = free_addr();
        let args = ["--runtime", runtime, "--addr", &addr, "--redis", &url];
        nodes.push(Program::start_server(name, exe, &args));
        addrs.push(addr);
    }
    (addrs, nodes)
}

fn page_url(addr: &str, room: &str, nick: &str, since: Option<&str>) -> String {
    let since = since.map(|s| format!("&since={s}")).unwrap_or_default();
    format!("ws://{addr}/ws/{room}?nick={nick}&session={nick}-tab{since}")
}

/// `future`, or a panic naming `what` after [`WAIT`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: nothing within {WAIT:?}"),
    }
}

/// The next JSON event of one of `types`, skipping the others.
async fn next_of(ws: &mut WebSocket, types: &[&str]) -> Value {
    loop {
        let message = within("an event", ws.recv())
            .await
            .expect("connection open")
            .expect("a message, not an error");
        let Message::Text(text) = message else {
            continue;
        };
        let event: Value = serde_json::from_str(text.as_str()).expect("JSON");
        if types.iter().any(|t| event["type"] == *t) {
            return event;
        }
    }
}

/// One acknowledged publication.
#[derive(Clone, Debug)]
struct Acked {
    id: String,
    pos: String,
    sent: Instant,
    acked: Instant,
}

/// Publishes through the node at `addr`, one message at a time, each
/// awaited until acked, until `stop` turns true; then publishes [`LAST`].
/// Every publication is appended to `acked` as its ack arrives; a `nack`
/// fails the test (Redis stays up in these tests).
async fn publisher(
    addr: String,
    mut stop: watch::Receiver<bool>,
    acked: watch::Sender<Vec<Acked>>,
) {
    let (mut ws, _) = within(
        "the publisher's handshake",
        connect(&page_url(&addr, ROOM, "pub", None)),
    )
    .await
    .expect("publisher connects");
    next_of(&mut ws, &["recovered"]).await;
    for n in 0.. {
        let last = *stop.borrow_and_update();
        let id = if last {
            LAST.to_owned()
        } else {
            format!("p{n}")
        };
        let sent = Instant::now();
        ws.send(json!({ "text": id, "id": id }).to_string())
            .await
            .expect("send");
        let answer = next_of(&mut ws, &["ack", "nack"]).await;
        assert_eq!(
            (&answer["type"], &answer["id"]),
            (&json!("ack"), &json!(id)),
            "publication {id}: {answer}"
        );
        let pos = answer["pos"].as_str().expect("an ack has a position");
        acked.send_modify(|all| {
            all.push(Acked {
                id,
                pos: pos.to_owned(),
                sent,
                acked: Instant::now(),
            })
        });
        if last {
            break;
        }
        // Paced, but a stop request cuts the pause short.
        let _ = tokio::time::timeout(PACE, stop.changed()).await;
    }
    let _ = ws.close(CloseCode::NORMAL, "").await;
}

/// What a page heard, in order.
#[derive(Clone, Debug)]
enum Seen {
    Message {
        id: String,
        pos: String,
        at: Instant,
    },
    Recovered(String),
    NotRecovered(String),
    /// The connection dropped; the page goes to the next node.
    Dropped,
}

/// A page's record, shared with the test as it grows.
#[derive(Clone, Debug, Default)]
struct PageLog {
    seen: Vec<Seen>,
    /// The nodes it connected to, in order.
    nodes: Vec<usize>,
}

impl PageLog {
    /// Whether it has been told where it stands since it last connected.
    fn settled(&self) -> bool {
        let since_drop = self
            .seen
            .iter()
            .rposition(|s| matches!(s, Seen::Dropped))
            .map_or(0, |at| at + 1);
        self.seen[since_drop..]
            .iter()
            .any(|s| matches!(s, Seen::Recovered(_) | Seen::NotRecovered(_)))
    }
}

struct Page {
    nick: String,
    /// The node it starts on.
    home: usize,
    log: watch::Receiver<PageLog>,
    task: JoinHandle<()>,
}

/// Starts a page `nick` on node `home`: it records every position-bearing
/// event until it hears [`LAST`]. When its connection drops it waits for
/// three more acknowledged publications (a page's reconnect delay,
/// counted in publications so that the catch-up surely has something to
/// bring) and reconnects to the next node with `?since=`.
fn open_page(
    nick: String,
    addrs: Vec<String>,
    home: usize,
    acked: watch::Receiver<Vec<Acked>>,
) -> Page {
    let (log_tx, log) = watch::channel(PageLog::default());
    let name = nick.clone();
    let task = tokio::spawn(async move {
        let mut acked = acked;
        let mut node = home;
        let mut since: Option<String> = None;
        let mut refused = 0;
        loop {
            log_tx.send_modify(|log| log.nodes.push(node));
            let url = page_url(&addrs[node], ROOM, &name, since.as_deref());
            let handshake = format!("{name}'s handshake with node {node}");
            let mut ws = match within(&handshake, connect(&url)).await {
                Ok((ws, _)) => ws,
                Err(e) => {
                    refused += 1;
                    assert!(refused < 10, "{name}: no node takes it: {e}");
                    node = (node + 1) % addrs.len();
                    continue;
                }
            };
            loop {
                let heard = format!("{name} on node {node}: {:?}", log_tx.borrow().seen);
                let message = match within(&heard, ws.recv()).await {
                    Some(Ok(message)) => message,
                    Some(Err(_)) | None => break,
                };
                let Message::Text(text) = message else {
                    continue;
                };
                let event: Value = serde_json::from_str(text.as_str()).expect("JSON");
                let pos = event["pos"].as_str().map(str::to_owned);
                let seen = match (event["type"].as_str(), pos.clone()) {
                    (Some("message"), Some(pos)) => Seen::Message {
                        id: event["id"].as_str().unwrap_or_default().to_owned(),
                        pos,
                        at: Instant::now(),
                    },
                    (Some("recovered"), Some(pos)) => Seen::Recovered(pos),
                    (Some("not_recovered"), Some(pos)) => Seen::NotRecovered(pos),
                    (Some("message" | "recovered" | "not_recovered"), None) => {
                        panic!("{name}: no position in {event}")
                    }
                    _ => continue,
                };
                since = pos;
                let done = matches!(&seen, Seen::Message { id, .. } if id == LAST);
                log_tx.send_modify(|log| log.seen.push(seen));
                if done {
                    let _ = ws.close(CloseCode::NORMAL, "").await;
                    return;
                }
            }
            log_tx.send_modify(|log| log.seen.push(Seen::Dropped));
            let count = acked.borrow().len();
            within(
                "three more publications",
                acked.wait_for(|all| {
                    all.len() >= count + 3 || all.last().is_some_and(|a| a.id == LAST)
                }),
            )
            .await
            .expect("the publisher's record");
            node = (node + 1) % addrs.len();
        }
    });
    Page {
        nick,
        home,
        log,
        task,
    }
}

/// Opens [`PAGES_PER_NODE`] pages on each node and waits until each one
/// was told where it stands (its first `recovered`), so that every
/// publication after this is one it must hear.
async fn open_pages(addrs: &[String], acked: &watch::Receiver<Vec<Acked>>) -> Vec<Page> {
    let mut pages = Vec::new();
    for home in 0..addrs.len() {
        for i in 0..PAGES_PER_NODE {
            let nick = format!("n{home}p{i}");
            pages.push(open_page(nick, addrs.to_vec(), home, acked.clone()));
        }
    }
    for page in &mut pages {
        let what = format!("{}'s first recovered", page.nick);
        within(&what, page.log.wait_for(PageLog::settled))
            .await
            .expect("page running");
    }
    pages
}

/// Waits until the publisher has had `n` publications acknowledged in all
/// (or has finished); returns how many it has.
async fn acked_at_least(acked: &mut watch::Receiver<Vec<Acked>>, n: usize) -> usize {
    let what = format!("{n} acknowledged publications");
    within(&what, acked.wait_for(|all| all.len() >= n))
        .await
        .expect("publisher running")
        .len()
}

/// Stops the publisher after one last publication and waits for every
/// page to hear it; returns the acknowledged publications and each page's
/// record.
async fn finish(
    stop: watch::Sender<bool>,
    publisher: JoinHandle<()>,
    acked: watch::Receiver<Vec<Acked>>,
    pages: Vec<Page>,
) -> (Vec<Acked>, Vec<(Page, PageLog)>) {
    stop_publisher(stop, publisher).await;
    collect(acked, pages).await
}

/// Has the publisher send its last message and end.
async fn stop_publisher(stop: watch::Sender<bool>, publisher: JoinHandle<()>) {
    stop.send_replace(true);
    within("the publisher's end", publisher)
        .await
        .expect("the publisher did not fail");
}

/// Waits for every page to hear the last message; their logs.
async fn collect(
    acked: watch::Receiver<Vec<Acked>>,
    pages: Vec<Page>,
) -> (Vec<Acked>, Vec<(Page, PageLog)>) {
    let acked = acked.borrow().clone();
    let mut logs = Vec::new();
    for mut page in pages {
        let what = format!("{} hearing {LAST:?}", page.nick);
        // Joined first: a page that panicked says why.
        within(&what, &mut page.task)
            .await
            .expect("the page did not fail");
        let log = page.log.borrow().clone();
        logs.push((page, log));
    }
    (acked, logs)
}

/// What a page heard, checked against the acknowledged publications: each
/// once, in order, at the position its ack gave, through the last one. A
/// page may skip publications only after a `not_recovered` notice, and
/// only publications from index `gaps_from` on (`acked.len()`: none).
/// Returns how many `not_recovered` notices it got.
fn check_page(nick: &str, log: &PageLog, acked: &[Acked], gaps_from: usize) -> usize {
    let index: HashMap<&str, (usize, &str)> = acked
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), (i, a.pos.as_str())))
        .collect();
    let mut next = 0;
    // The position of a `not_recovered` not yet followed by a publication.
    let mut told: Option<String> = None;
    let mut notices = 0;
    for seen in &log.seen {
        match seen {
            Seen::Message { id, pos, .. } => {
                let Some(&(i, acked_pos)) = index.get(id.as_str()) else {
                    panic!("{nick} heard {id:?} at {pos}, never acknowledged: {log:?}");
                };
                assert_eq!(
                    pos, acked_pos,
                    "{nick}: {id} at {pos}, acked at {acked_pos}"
                );
                assert!(
                    i >= next,
                    "{nick} heard {id} again or out of order, expecting {}: {log:?}",
                    acked[next].id
                );
                let was_told = told.take();
                if let Some(current) = &was_told {
                    assert_eq!(
                        Some(pos.as_str()),
                        successor(current).as_deref(),
                        "{nick}: after not_recovered at {current}: {log:?}"
                    );
                }
                if i > next {
                    assert!(
                        was_told.is_some() && next >= gaps_from,
                        "{nick}: {} to {} missing, without not_recovered: {log:?}",
                        acked[next].id,
                        acked[i - 1].id
                    );
                }
                next = i + 1;
            }
            Seen::NotRecovered(current) => {
                assert!(
                    next >= gaps_from,
                    "{nick}: not_recovered before {} (nothing could be lost yet): {log:?}",
                    acked[next].id
                );
                told = Some(current.clone());
                notices += 1;
            }
            Seen::Recovered(_) | Seen::Dropped => {}
        }
    }
    assert_eq!(
        next,
        acked.len(),
        "{nick} did not hear every publication: {log:?}"
    );
    notices
}

/// The position right after `pos` (`<offset>_<epoch>`): where what
/// follows a `not_recovered` at `pos` continues.
fn successor(pos: &str) -> Option<String> {
    let (offset, epoch) = pos.split_once('_')?;
    Some(format!("{}_{epoch}", offset.parse::<u64>().ok()? + 1))
}

/// How long each page of a node that stayed up heard each publication
/// after its ack: fails past [`PROMPT`].
fn check_prompt(nick: &str, log: &PageLog, acked: &[Acked]) {
    let acked_at: HashMap<&str, Instant> = acked.iter().map(|a| (a.id.as_str(), a.acked)).collect();
    for seen in &log.seen {
        if let Seen::Message { id, at, .. } = seen {
            let late = at.saturating_duration_since(acked_at[id.as_str()]);
            assert!(late <= PROMPT, "{nick} heard {id} {late:?} after its ack");
        }
    }
}

#[test]
fn a_killed_node_s_pages_resume_on_another_without_gap_or_duplicate() {
    let redis = RedisServer::start();
    let (addrs, mut nodes) = start_nodes(&redis, ["tokio", "smol", "async-std"]);
    const KILLED: usize = 2;
    tokio_rt().block_on(async {
        let (acked_tx, mut acked) = watch::channel(Vec::new());
        let (stop, stop_rx) = watch::channel(false);
        let pages = open_pages(&addrs, &acked).await;
        let publisher = tokio::spawn(publisher(addrs[0].clone(), stop_rx, acked_tx));

        let before = acked_at_least(&mut acked, 10).await;
        nodes[KILLED].kill();
        // Its pages notice, wait for three more publications, come back on
        // another node and catch up.
        for page in pages.iter().filter(|p| p.home == KILLED) {
            let mut log = page.log.clone();
            let what = format!("{} back on another node", page.nick);
            within(&what, log.wait_for(|l| l.nodes.len() > 1 && l.settled()))
                .await
                .expect("page running");
        }
        acked_at_least(&mut acked, before + 10).await;
        let (acked, logs) = finish(stop, publisher, acked, pages).await;

        for (page, log) in &logs {
            assert_eq!(
                check_page(&page.nick, log, &acked, acked.len()),
                0,
                "{} was told it lost something: {log:?}",
                page.nick
            );
            let drops = log
                .seen
                .iter()
                .filter(|s| matches!(s, Seen::Dropped))
                .count();
            if page.home != KILLED {
                assert_eq!(
                    (drops, &log.nodes[..]),
                    (0, &[page.home][..]),
                    "{}",
                    page.nick
                );
                continue;
            }
            assert_eq!(drops, 1, "{}: {log:?}", page.nick);
            assert_ne!(log.nodes[1], KILLED, "{}: {log:?}", page.nick);
            // The catch-up: at least the three publications it waited for,
            // then `recovered` with the position of the last of them.
            let after = log
                .seen
                .iter()
                .position(|s| matches!(s, Seen::Dropped))
                .unwrap()
                + 1;
            let rest = &log.seen[after..];
            let end = rest
                .iter()
                .position(|s| matches!(s, Seen::Recovered(_)))
                .unwrap_or_else(|| panic!("{}: no recovered after the drop: {log:?}", page.nick));
            assert!(end >= 3, "{}: caught up on {end} only: {log:?}", page.nick);
            let (Seen::Message { pos, .. }, Seen::Recovered(current)) =
                (&rest[end - 1], &rest[end])
            else {
                panic!("{}: {log:?}", page.nick)
            };
            assert_eq!(pos, current, "{}", page.nick);
        }
        eprintln!(
            "{} publications; the killed node's pages caught up on another node",
            acked.len()
        );
    });
    for (i, node) in nodes.into_iter().enumerate() {
        if i != KILLED {
            node.interrupt_and_check();
        }
    }
}

/// A connection of the test's own to Redis, for answers longer than
/// [`RedisServer::command`] reads (`CLIENT LIST`) and for many commands in
/// a row.
struct RedisLink(BufReader<TcpStream>);

impl RedisLink {
    fn open(redis: &RedisServer) -> RedisLink {
        let tcp = TcpStream::connect(("127.0.0.1", redis.port)).expect("connect to Redis");
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        RedisLink(BufReader::new(tcp))
    }

    /// Runs one command; returns a simple, integer or bulk reply as text.
    fn call(&mut self, args: &[&[u8]]) -> String {
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        self.0
            .get_mut()
            .write_all(&request)
            .expect("write to Redis");
        let mut line = String::new();
        self.0.read_line(&mut line).expect("a reply from Redis");
        let line = line.trim_end();
        match line.split_at(1) {
            ("+" | ":", rest) => rest.to_owned(),
            ("$", len) => {
                let len: usize = len.parse().expect("a bulk length");
                let mut bulk = vec![0; len + 2];
                self.0.read_exact(&mut bulk).expect("the bulk reply");
                bulk.truncate(len);
                String::from_utf8(bulk).expect("text")
            }
            _ => panic!(
                "Redis answered {line:?} to {:?}",
                String::from_utf8_lossy(args[0])
            ),
        }
    }

    /// The connections subscribed to channels: each one's id and how many
    /// channels it is subscribed to.
    fn subscribers(&mut self) -> Vec<(String, usize)> {
        let list = self.call(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"]);
        list.lines()
            .filter_map(|line| {
                let field = |name: &str| {
                    line.split(' ')
                        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                };
                let subs = field("sub")?.parse().ok()?;
                Some((field("id")?.to_owned(), subs))
            })
            .filter(|(_, subs)| *subs > 0)
            .collect()
    }
}

/// Runs blocking Redis calls off the test's runtime thread, which also
/// runs the publisher and the pages.
async fn with_link<T: Send + 'static>(
    link: &mut Option<RedisLink>,
    f: impl FnOnce(&mut RedisLink) -> T + Send + 'static,
) -> T {
    let mut taken = link.take().expect("the link is back after each use");
    let (value, back) = tokio::task::spawn_blocking(move || {
        let value = f(&mut taken);
        (value, taken)
    })
    .await
    .expect("Redis calls did not fail");
    *link = Some(back);
    value
}

/// Polls Redis (it has no event for this) until `done` holds for the
/// subscribers, panicking with `what` after [`WAIT`].
async fn until_subscribers(
    link: &mut Option<RedisLink>,
    what: &str,
    done: impl Fn(&[(String, usize)]) -> bool,
) -> Vec<(String, usize)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let subscribers = with_link(link, RedisLink::subscribers).await;
        if done(&subscribers) {
            return subscribers;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: subscribers {subscribers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// After the second, longer stop Redis drops the stopped node's
// connection. The node reconnects and reads what it missed from the
// history, so its pages must still hear every publication, without a
// `not_recovered`, even though the room has gone quiet by then (the
// publisher ends before the node runs again: nothing live arrives to
// reveal the hole).
#[test]
fn a_stopped_node_holds_up_no_other_and_its_pages_never_miss_silently() {
    let redis = RedisServer::start();
    // A subscriber whose unsent output passes 256 KiB is dropped at once.
    // Chat messages are small: only the ballast below gets there.
    let limit = redis.command(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "pubsub 256kb 0 0",
    ]);
    assert!(limit.starts_with("+OK"), "{limit}");
    let (addrs, nodes) = start_nodes(&redis, ["async-std", "tokio", "smol"]);
    const STOPPED: usize = 1;
    let mut link = Some(RedisLink::open(&redis));
    tokio_rt().block_on(async {
        let (acked_tx, mut acked) = watch::channel(Vec::new());
        let (stop, stop_rx) = watch::channel(false);
        let pages = open_pages(&addrs, &acked).await;
        // One idle member of another room, on the node to stop only: the
        // ballast goes to that room, so it fills the stopped node's
        // buffers and no other node's.
        let ballast_url = page_url(&addrs[STOPPED], "ballast", "idle", None);
        let (ballast_page, _) = within("the ballast page", connect(&ballast_url))
            .await
            .expect("ballast page connects");
        // Each node holds the room (its publication and presence
        // channels); the one to stop holds the ballast room too.
        let subscribers = until_subscribers(&mut link, "every node subscribed", |s| {
            let mut counts: Vec<usize> = s.iter().map(|(_, n)| *n).collect();
            counts.sort_unstable();
            counts == [2, 2, 4]
        })
        .await;
        let healthy: Vec<String> = subscribers
            .iter()
            .filter(|(_, n)| *n == 2)
            .map(|(id, _)| id.clone())
            .collect();
        let publisher = tokio::spawn(publisher(addrs[0].clone(), stop_rx, acked_tx));
        let mut count = acked_at_least(&mut acked, 10).await;

        // First stop: Redis keeps what the node has not read, and the node
        // delivers it all once it runs again (checked below, strictly).
        nodes[STOPPED].signal("STOP");
        count = acked_at_least(&mut acked, count + 25).await;
        nodes[STOPPED].signal("CONT");
        count = acked_at_least(&mut acked, count + 10).await;

        // Second stop: ballast until Redis drops the node's connection.
        nodes[STOPPED].signal("STOP");
        let channel = "{wavecast:ballast}:x";
        let megabytes = with_link(&mut link, move |link| {
            // Not a presence change: every node ignores it.
            let chunk = vec![b'x'; 64 << 10];
            for megabytes in 1..=64 {
                for _ in 0..16 {
                    link.call(&[b"PUBLISH", channel.as_bytes(), &chunk]);
                }
                if link.subscribers().iter().all(|(_, n)| *n != 4) {
                    return megabytes;
                }
            }
            panic!("Redis kept the stopped node's subscription through 64 MiB");
        })
        .await;
        let left = with_link(&mut link, RedisLink::subscribers).await;
        assert!(
            healthy.iter().all(|id| left.iter().any(|(l, _)| l == id)),
            "Redis dropped a node that was not stopped: {healthy:?} {left:?}"
        );
        acked_at_least(&mut acked, count + 10).await;
        stop_publisher(stop, publisher).await;
        // Its pages hear the rest (the last message included) only from
        // the history it reads after reconnecting.
        nodes[STOPPED].signal("CONT");
        drop(ballast_page);
        let (acked, logs) = collect(acked, pages).await;

        let late = acked
            .iter()
            .map(|a| a.acked - a.sent)
            .max()
            .expect("publications");
        assert!(late <= PROMPT, "an ack took {late:?}");
        for (page, log) in &logs {
            assert_eq!(log.nodes, [page.home], "{} moved: {log:?}", page.nick);
            if page.home == STOPPED {
                let told = check_page(&page.nick, log, &acked, acked.len());
                assert_eq!(told, 0, "{} was told not_recovered: {log:?}", page.nick);
            } else {
                assert_eq!(check_page(&page.nick, log, &acked, acked.len()), 0);
                check_prompt(&page.nick, log, &acked);
            }
        }
        eprintln!(
            "{} publications; Redis dropped the stopped node \
             after {megabytes} MiB of ballast",
            acked.len()
        );
    });
    for node in nodes {
        node.interrupt_and_check();
    }
}
