//! The soak, written once over `Runtime`: a `serve` loop with an echo, a
//! room every member joins and publishes to, and an SSE feed of that room;
//! thousands of clients doing a seeded mix of well- and ill-behaved things;
//! then the checks.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::future::or;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use wavecast_runtime::metrics::live_connections;
use wavecast_runtime::{
    Accept, ClientRequest, CloseCode, Config, HttpResponse, Hub, Incoming, Message, Outcome, Room,
    RoomConfig, RoomEvent, Runtime, ServeConfig, Server, SseConfig, SseParser, SseStream,
    Subscription,
};

use crate::counted::tasks;

/// Room capacity. The run checks that fewer messages than this were
/// published in all, so the ring can never overwrite a message a member
/// has not taken: no member, however slow, can lag, and every loss is a bug.
const ROOM_CAPACITY: usize = 16_384;

/// The server's handshake timeout (short, so stalled handshakes end in
/// the run).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Indices of the warm-up burst's clients (apart from the others').
const BURST_INDEX: usize = 1 << 40;

/// A client that takes longer than this has hung.
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// How long the server may take to end every connection once the clients
/// are gone (close timeouts included).
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// What the run is told.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) seed: u64,
    pub(crate) connections: usize,
    pub(crate) concurrency: usize,
    /// Rounds the connections are split into (at least 4 for a
    /// meaningful RSS check: the first two are the warm-up, the last two
    /// the end).
    pub(crate) rounds: usize,
    /// How far RSS may end above the baseline, in KiB.
    pub(crate) rss_slack_kib: u64,
}

/// What the run found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) by_kind: Vec<(&'static str, u64)>,
    pub(crate) echoes: u64,
    pub(crate) echo_bytes: u64,
    pub(crate) pings: u64,
    pub(crate) published: u64,
    pub(crate) room_received: u64,
    pub(crate) sse_events: u64,
    pub(crate) clean_closes: u64,
    /// RSS after each round, once its connections were gone.
    pub(crate) rss_kib: Vec<u64>,
    /// RSS after the warm-up: the higher of the first two rounds'.
    pub(crate) rss_warm_kib: u64,
    /// RSS at the end: the lower of the last two rounds'.
    pub(crate) rss_end_kib: u64,
    pub(crate) max_live: usize,
    pub(crate) violations: Vec<String>,
}

/// The kinds of client, with their weights (out of 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Random-size text and binary messages echoed and checked, pings in
    /// between; a clean close (sometimes the handles just dropped).
    Echo,
    /// Sends a burst and reads the echoes back slowly.
    EchoSlowReader,
    /// Sends, then drops every handle without closing.
    EchoDropped,
    /// Joins the room, publishes, reads everything (some slowly), closes.
    Member,
    /// Raw: joins the room, reads a little, drops the TCP stream.
    MemberAbrupt,
    /// Raw: joins the room and never reads, then drops the TCP stream.
    MemberStalled,
    /// Raw: listens to the room's SSE feed (some slowly), then drops.
    Sse,
    /// Raw: part of the upgrade request, then drops the TCP stream.
    MidHandshake,
    /// Raw: part of the upgrade request, then waits for the server's
    /// handshake timeout to drop it.
    StalledHandshake,
    /// Raw: part of a large frame, then drops the TCP stream.
    MidMessage,
    /// Raw: a large frame, then drops the TCP stream without reading the
    /// echo (the server writes to a dead peer).
    UnreadEcho,
    /// The warm-up: like [`Kind::EchoSlowReader`], with only large
    /// messages, every client at once (never picked at random).
    Burst,
}

const KINDS: [(Kind, u64); 12] = [
    (Kind::Echo, 30),
    (Kind::EchoSlowReader, 8),
    (Kind::EchoDropped, 4),
    (Kind::Member, 22),
    (Kind::MemberAbrupt, 5),
    (Kind::MemberStalled, 3),
    (Kind::Sse, 12),
    (Kind::MidHandshake, 5),
    (Kind::StalledHandshake, 2),
    (Kind::MidMessage, 5),
    (Kind::UnreadEcho, 4),
    (Kind::Burst, 0),
];

impl Kind {
    fn pick(rng: &mut Rng) -> Kind {
        let mut roll = rng.below(100);
        for (kind, weight) in KINDS {
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        unreachable!("the weights add up to 100")
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo",
            Kind::EchoSlowReader => "echo-slow-reader",
            Kind::EchoDropped => "echo-dropped",
            Kind::Member => "member",
            Kind::MemberAbrupt => "member-abrupt",
            Kind::MemberStalled => "member-stalled",
            Kind::Sse => "sse",
            Kind::MidHandshake => "mid-handshake",
            Kind::StalledHandshake => "stalled-handshake",
            Kind::MidMessage => "mid-message",
            Kind::UnreadEcho => "unread-echo",
            Kind::Burst => "warm-up burst",
        }
    }
}

/// SplitMix64: small, seedable, good enough to pick behaviours.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn range(&mut self, low: usize, high: usize) -> usize {
        low + self.below((high - low) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low))
    }
}

/// Counters the clients add to while they run.
#[derive(Default)]
struct Stats {
    by_kind: [AtomicU64; KINDS.len()],
    echoes: AtomicU64,
    echo_bytes: AtomicU64,
    pings: AtomicU64,
    room_received: AtomicU64,
    sse_events: AtomicU64,
    clean_closes: AtomicU64,
    max_live: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl Stats {
    fn violation(&self, what: String) {
        eprintln!("soak: VIOLATION: {what}");
        self.violations.lock().expect("not poisoned").push(what);
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The room's order of publication, as a subscriber that reads at once
/// sees it: message key → position.
#[derive(Default)]
struct Order {
    positions: Mutex<HashMap<u64, usize>>,
}

impl Order {
    fn record(&self, key: u64) {
        let mut positions = self.positions.lock().expect("not poisoned");
        let next = positions.len();
        positions.insert(key, next);
    }

    fn len(&self) -> usize {
        self.positions.lock().expect("not poisoned").len()
    }

    fn positions(&self, keys: &[u64]) -> Option<Vec<usize>> {
        let positions = self.positions.lock().expect("not poisoned");
        keys.iter().map(|key| positions.get(key).copied()).collect()
    }
}

/// What the server side shares between handlers.
struct ServerState<R: Runtime> {
    room: Room<R>,
    /// Messages members and SSE streams lost to lag (must stay 0).
    skipped: AtomicU64,
}

/// What the clients share.
struct Clients {
    port: u16,
    seed: u64,
    stats: Stats,
    order: Order,
}

/// A room message: `"<key>:<filler>"`, where the filler is a function of
/// the key, so a corrupted message shows.
fn room_message(conn: u64, seq: u64) -> String {
    let key = conn << 20 | seq;
    let len = ((conn * 7 + seq * 13) % 150) as usize;
    let filler: String = (0..len)
        .map(|i| char::from(b'a' + ((key as usize + i) % 26) as u8))
        .collect();
    format!("{key}:{filler}")
}

/// The key of a room message, if it is intact.
fn room_key(text: &str) -> Option<u64> {
    let (key, _) = text.split_once(':')?;
    let key: u64 = key.parse().ok()?;
    (room_message(key >> 20, key & 0xf_ffff) == text).then_some(key)
}

/// An echo payload of `len` bytes: ASCII text or random binary.
fn payload(rng: &mut Rng, len: usize) -> Message {
    if rng.chance(50) {
        let base = rng.next();
        let text: String = (0..len)
            .map(|i| char::from(b' ' + ((base as usize + i * 7) % 95) as u8))
            .collect();
        Message::from(text)
    } else {
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&rng.next().to_le_bytes());
        }
        bytes.truncate(len);
        Message::from(bytes)
    }
}

/// A message size: mostly small, some medium, a few up to 256 KiB.
fn size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=69 => rng.range(0, 1024),
        70..=93 => rng.range(1024, 32 << 10),
        _ => rng.range(32 << 10, 256 << 10),
    }
}

async fn sleep<R: Runtime>(duration: Duration) {
    R::sleep_until(R::now() + duration).await;
}

/// `future`'s output, or `None` if it takes longer than `limit`.
async fn within<R: Runtime, T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    or(async { Some(future.await) }, async {
        sleep::<R>(limit).await;
        None
    })
    .await
}

/// Waits until `done` holds, up to `limit`; returns whether it did.
async fn settles<R: Runtime>(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let give_up = Instant::now() + limit;
    while !done() {
        if Instant::now() > give_up {
            return false;
        }
        sleep::<R>(Duration::from_millis(10)).await;
    }
    true
}

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs the soak on `R` with a listener bound to 127.0.0.1. `native_tasks`
/// is the executor's own count of live tasks, where it has one.
pub(crate) async fn run<R: Runtime>(
    listener: R::Listener,
    options: Options,
    native_tasks: impl Fn() -> Option<usize>,
) -> Report {
    let hub = Hub::<R>::new(RoomConfig::default().with_capacity(ROOM_CAPACITY));
    let room = hub.room("soak").expect("a valid room name");
    // Subscribed before any client: it sees every publication, in order.
    let mut recorder = room.subscribe();
    let state = Arc::new(ServerState {
        room: room.clone(),
        skipped: AtomicU64::new(0),
    });
    let config = Config::default()
        .with_handshake_timeout(HANDSHAKE_TIMEOUT)
        .with_close_timeout(Duration::from_secs(5));
    let serve_config = ServeConfig::default()
        .with_max_connections(options.concurrency * 2 + 64)
        .with_shutdown_timeout(Duration::from_secs(5))
        .with_config(config);
    let served = state.clone();
    let server = wavecast_runtime::serve::<R, _, _>(listener, serve_config, move |incoming| {
        handle(incoming, served.clone())
    })
    .expect("serve on a bound listener");
    let clients = Arc::new(Clients {
        port: server.local_addr().port(),
        seed: options.seed,
        stats: Stats::default(),
        order: Order::default(),
    });

    let work = async {
        let mut report = Report::default();
        // Equal rounds, each ending with every connection gone (checked)
        // and RSS taken. First a burst of large echoes, all at once: the
        // heaviest moment of the run comes before the baseline, so the
        // rounds are compared by what they leave behind (glibc keeps the
        // high-water mark of its heap unless told to map large buffers
        // apart, as `.ci/soak` does).
        let rounds = options.rounds.clamp(1, options.connections.max(1));
        let burst = (options.concurrency / 4).max(1);
        drive::<R>(&clients, BURST_INDEX..BURST_INDEX + burst, burst).await;
        for round in 0..rounds {
            let start = options.connections * round / rounds;
            let end = options.connections * (round + 1) / rounds;
            drive::<R>(&clients, start..end, options.concurrency).await;
            settle::<R>(
                &clients,
                &server,
                &native_tasks,
                &format!("after round {round}"),
            )
            .await;
            report.rss_kib.push(rss_kib());
        }
        report
    };
    let record = async {
        loop {
            match recorder.recv().await {
                RoomEvent::Message(message) => {
                    let text = std::str::from_utf8(message.message().as_bytes()).unwrap_or("");
                    match room_key(text) {
                        Some(key) => clients.order.record(key),
                        None => clients
                            .stats
                            .violation(format!("the recorder got a corrupt message {text:.60?}")),
                    }
                }
                other => clients
                    .stats
                    .violation(format!("the recorder, which reads at once, got {other:?}")),
            }
        }
    };
    let mut report = or(work, async {
        record.await;
        unreachable!("the recorder runs until the work is done")
    })
    .await;
    drop(recorder);

    let stats = &clients.stats;
    report.published = room.published();
    if report.published >= ROOM_CAPACITY as u64 {
        stats.violation(format!(
            "{} messages published, not under the room capacity {ROOM_CAPACITY}: \
             lag was possible (raise the capacity or lower the load)",
            report.published
        ));
    }
    let skipped = state.skipped.load(Ordering::SeqCst);
    if skipped != 0 {
        stats.violation(format!(
            "members and SSE streams skipped {skipped} messages"
        ));
    }
    if room.members() != 0 {
        stats.violation(format!("{} room members left", room.members()));
    }
    // A leak only grows, while what the allocator keeps comes and goes
    // with the rounds' peaks (by several MiB, with glibc): the higher of
    // the first two rounds is compared with the lower of the last two.
    let rss = &report.rss_kib;
    let warm = rss.iter().take(2).copied().max().unwrap_or(0);
    report.rss_warm_kib = warm;
    report.rss_end_kib = rss.iter().rev().take(2).copied().min().unwrap_or(warm);
    if report.rss_end_kib.saturating_sub(warm) > options.rss_slack_kib {
        stats.violation(format!(
            "RSS after warm-up {warm} KiB, at the end {} KiB: more than {} KiB above \
             (after each round: {:?} KiB)",
            report.rss_end_kib, options.rss_slack_kib, report.rss_kib
        ));
    }
    if !server.shutdown().await {
        stats.violation("graceful shutdown cancelled handlers".to_owned());
    }
    drop((room, state));
    // The accept loop's task ends after it reported.
    if !settles::<R>(SETTLE_LIMIT, || tasks() == 0).await {
        stats.violation(format!("{} tasks alive after shutdown", tasks()));
    }
    if native_tasks().is_some() && !settles::<R>(SETTLE_LIMIT, || native_tasks() == Some(0)).await {
        stats.violation(format!(
            "the executor has {:?} tasks after shutdown",
            native_tasks()
        ));
    }
    if hub.rooms() != 0 {
        stats.violation(format!("{} rooms left in the hub", hub.rooms()));
    }

    report.by_kind = KINDS
        .iter()
        .zip(&stats.by_kind)
        .map(|((kind, _), n)| (kind.name(), n.load(Ordering::SeqCst)))
        .collect();
    report.echoes = stats.echoes.load(Ordering::SeqCst);
    report.echo_bytes = stats.echo_bytes.load(Ordering::SeqCst);
    report.pings = stats.pings.load(Ordering::SeqCst);
    report.room_received = stats.room_received.load(Ordering::SeqCst);
    report.sse_events = stats.sse_events.load(Ordering::SeqCst);
    report.clean_closes = stats.clean_closes.load(Ordering::SeqCst);
    report.max_live = stats.max_live.load(Ordering::SeqCst);
    report.violations = std::mem::take(&mut *stats.violations.lock().expect("not poisoned"));
    report
}

/// Waits until every connection has ended on both sides, every handler has
/// finished and only the accept loop's task is left.
async fn settle<R: Runtime>(
    clients: &Clients,
    server: &Server,
    native_tasks: &impl Fn() -> Option<usize>,
    when: &str,
) {
    let settled = settles::<R>(SETTLE_LIMIT, || {
        live_connections() == 0
            && server.active() == 0
            && tasks() == 1
            && native_tasks().is_none_or(|n| n == 1)
    })
    .await;
    if !settled {
        clients.stats.violation(format!(
            "{when}: {} live connections, {} handlers running, {} tasks (executor: {:?}) \
             after {SETTLE_LIMIT:?}; expected 0, 0, 1 (the accept loop)",
            live_connections(),
            server.active(),
            tasks(),
            native_tasks()
        ));
    }
}

/// Runs connections `indices` with `concurrency` client tasks.
async fn drive<R: Runtime>(
    clients: &Arc<Clients>,
    indices: std::ops::Range<usize>,
    concurrency: usize,
) {
    let next = Arc::new(AtomicUsize::new(indices.start));
    let (done, finished) = smol::channel::bounded::<()>(concurrency);
    for _ in 0..concurrency {
        let (clients, next, done, end) = (clients.clone(), next.clone(), done.clone(), indices.end);
        R::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= end {
                    break;
                }
                client::<R>(&clients, index as u64).await;
            }
            let _ = done.send(()).await;
        });
    }
    drop(done);
    while finished.recv().await.is_ok() {}
}

/// One client connection, of a kind picked from the seed and its index.
async fn client<R: Runtime>(clients: &Clients, index: u64) {
    let mut rng = Rng::new(clients.seed ^ index.wrapping_mul(0xa076_1d64_78bd_642f));
    let kind = if index >= BURST_INDEX as u64 {
        Kind::Burst
    } else {
        Kind::pick(&mut rng)
    };
    let at = KINDS.iter().position(|(k, _)| *k == kind).expect("listed");
    Stats::add(&clients.stats.by_kind[at], 1);
    let run = async {
        match kind {
            Kind::Echo => echo::<R>(clients, index, &mut rng).await,
            Kind::EchoSlowReader => echo_slow_reader::<R>(clients, false, &mut rng).await,
            Kind::Burst => echo_slow_reader::<R>(clients, true, &mut rng).await,
            Kind::EchoDropped => echo_dropped::<R>(clients, index, &mut rng).await,
            Kind::Member => member::<R>(clients, index, &mut rng).await,
            Kind::MemberAbrupt => member_abrupt::<R>(clients, &mut rng).await,
            Kind::MemberStalled => member_stalled::<R>(clients, &mut rng).await,
            Kind::Sse => sse::<R>(clients, &mut rng).await,
            Kind::MidHandshake => mid_handshake::<R>(clients, &mut rng).await,
            Kind::StalledHandshake => stalled_handshake::<R>(clients, &mut rng).await,
            Kind::MidMessage => mid_message::<R>(clients, &mut rng).await,
            Kind::UnreadEcho => unread_echo::<R>(clients, &mut rng).await,
        }
    };
    let outcome = within::<R, _>(CLIENT_LIMIT, run).await;
    let live = live_connections();
    clients.stats.max_live.fetch_max(live, Ordering::Relaxed);
    let problem = match outcome {
        Some(Ok(())) => return,
        Some(Err(problem)) => problem,
        None => format!("hung for {CLIENT_LIMIT:?}"),
    };
    clients.stats.violation(format!(
        "connection {index} ({}, seed {}): {problem}",
        kind.name(),
        clients.seed
    ));
}

type Checked = Result<(), String>;

/// A wavecast client on `path`, deflate on or off at random.
async fn connect<R: Runtime>(
    clients: &Clients,
    path: &str,
    rng: &mut Rng,
) -> Result<wavecast_runtime::WebSocket, String> {
    let host = format!("127.0.0.1:{}", clients.port);
    let url = format!("ws://{host}{path}");
    // Generous: on a loaded machine a handshake may wait for CPU a while.
    let mut config = Config::default().with_handshake_timeout(Duration::from_secs(30));
    if rng.chance(50) {
        config = config.with_deflate(None);
    }
    let request = ClientRequest::new(&host, path).map_err(|e| e.to_string())?;
    let (ws, _) = wavecast_runtime::connect_with::<R>(&url, request, config)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok(ws)
}

/// The echo of `sent`, checked.
fn check_echo(
    stats: &Stats,
    sent: &Message,
    got: Option<Result<Message, wavecast_runtime::Error>>,
) -> Checked {
    match got {
        Some(Ok(got)) if got == *sent => {
            Stats::add(&stats.echoes, 1);
            Stats::add(&stats.echo_bytes, sent.as_bytes().len() as u64);
            Ok(())
        }
        Some(Ok(got)) => Err(format!(
            "echo of a {}-byte message came back as {} different bytes",
            sent.as_bytes().len(),
            got.as_bytes().len()
        )),
        Some(Err(e)) => Err(format!("echo: {e}")),
        None => Err("the connection ended before the echo".to_owned()),
    }
}

async fn close_cleanly(stats: &Stats, ws: &mut wavecast_runtime::WebSocket) -> Checked {
    match ws.close(CloseCode::NORMAL, "bye").await {
        Ok(Outcome::Clean { .. }) => {
            Stats::add(&stats.clean_closes, 1);
            Ok(())
        }
        Ok(outcome) => Err(format!("close: {outcome:?}")),
        Err(e) => Err(format!("close: {e}")),
    }
}

async fn echo<R: Runtime>(clients: &Clients, _index: u64, rng: &mut Rng) -> Checked {
    let stats = &clients.stats;
    let mut ws = connect::<R>(clients, "/echo", rng).await?;
    for _ in 0..rng.range(1, 16) {
        if rng.chance(15) {
            ws.ping(rng.next().to_le_bytes().to_vec())
                .await
                .map_err(|e| format!("ping: {e}"))?;
            Stats::add(&stats.pings, 1);
        }
        let len = size(rng);
        let message = payload(rng, len);
        ws.send(message.clone())
            .await
            .map_err(|e| format!("send: {e}"))?;
        check_echo(stats, &message, ws.recv().await)?;
    }
    if rng.chance(85) {
        close_cleanly(stats, &mut ws).await
    } else {
        Ok(())
    }
}

async fn echo_slow_reader<R: Runtime>(clients: &Clients, large: bool, rng: &mut Rng) -> Checked {
    let stats = &clients.stats;
    let ws = connect::<R>(clients, "/echo", rng).await?;
    let count = if large { 2 } else { rng.range(4, 12) };
    let messages: Vec<Message> = (0..count)
        .map(|_| {
            let len = if large {
                rng.range(192 << 10, 256 << 10)
            } else if rng.chance(30) {
                rng.range(64 << 10, 256 << 10)
            } else {
                size(rng)
            };
            payload(rng, len)
        })
        .collect();
    let delays: Vec<Duration> = messages.iter().map(|_| rng.millis(5, 60)).collect();
    let (sender, mut receiver) = ws.split();
    let send = async {
        for message in &messages {
            sender
                .send(message.clone())
                .await
                .map_err(|e| format!("send: {e}"))?;
        }
        Ok::<(), String>(())
    };
    let read = async {
        for (message, delay) in messages.iter().zip(&delays) {
            sleep::<R>(*delay).await;
            check_echo(stats, message, receiver.recv().await)?;
        }
        Ok::<(), String>(())
    };
    let (sent, read) = futures_lite::future::zip(send, read).await;
    sent?;
    read?;
    let (closed, _) = futures_lite::future::zip(sender.close(CloseCode::NORMAL, ""), async {
        while let Some(Ok(_)) = receiver.recv().await {}
    })
    .await;
    match closed {
        Ok(Outcome::Clean { .. }) => {
            Stats::add(&stats.clean_closes, 1);
            Ok(())
        }
        other => Err(format!("close: {other:?}")),
    }
}

async fn echo_dropped<R: Runtime>(clients: &Clients, _index: u64, rng: &mut Rng) -> Checked {
    let mut ws = connect::<R>(clients, "/echo", rng).await?;
    for _ in 0..rng.range(1, 4) {
        let len = size(rng);
        ws.send(payload(rng, len))
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    if rng.chance(50) {
        // Read one echo, leave the rest unread.
        if let Some(Err(e)) = ws.recv().await {
            return Err(format!("recv: {e}"));
        }
    }
    drop(ws);
    Ok(())
}

/// Joins the room, publishes `hello`, a few messages and `bye` (its own
/// messages come back too), reads until its `bye` is back (some members
/// with delays), closes. Checked: what it received is an unbroken run of
/// the room's order of publication, which includes all it published: no
/// message published while it was a member was lost, reordered, doubled or
/// corrupted.
async fn member<R: Runtime>(clients: &Clients, index: u64, rng: &mut Rng) -> Checked {
    let stats = &clients.stats;
    let ws = connect::<R>(clients, "/room", rng).await?;
    let count = rng.range(2, 8) as u64;
    let own: Vec<u64> = (0..count).map(|seq| index << 20 | seq).collect();
    let pauses: Vec<Duration> = own.iter().map(|_| rng.millis(0, 30)).collect();
    let slow = rng.chance(30);
    let mut reader_rng = Rng::new(rng.next());
    let bye = *own.last().expect("at least two messages");
    let (sender, mut receiver) = ws.split();
    let publish = async {
        for (seq, pause) in pauses.iter().enumerate() {
            sender
                .send(room_message(index, seq as u64))
                .await
                .map_err(|e| format!("publish: {e}"))?;
            sleep::<R>(*pause).await;
        }
        Ok::<(), String>(())
    };
    let mut received = Vec::new();
    let read = async {
        loop {
            if slow && reader_rng.chance(20) {
                sleep::<R>(reader_rng.millis(5, 50)).await;
            }
            let key = match receiver.recv().await {
                Some(Ok(Message::Text(text))) => room_key(&text)
                    .ok_or_else(|| format!("corrupt room message {:.60?}", &*text))?,
                Some(Ok(other)) => return Err(format!("unexpected {other:?}")),
                Some(Err(e)) => return Err(format!("recv: {e}")),
                None => return Err("the room connection ended before our bye came back".into()),
            };
            received.push(key);
            if key == bye {
                return Ok::<(), String>(());
            }
        }
    };
    let (published, read) = futures_lite::future::zip(publish, read).await;
    published?;
    read?;
    let (closed, _) = futures_lite::future::zip(sender.close(CloseCode::NORMAL, ""), async {
        while let Some(Ok(Message::Text(text))) = receiver.recv().await {
            if let Some(key) = room_key(&text) {
                received.push(key);
            }
        }
    })
    .await;
    match closed {
        Ok(Outcome::Clean { .. }) => Stats::add(&stats.clean_closes, 1),
        other => return Err(format!("close: {other:?}")),
    }
    Stats::add(&stats.room_received, received.len() as u64);
    for key in &own {
        if !received.contains(key) {
            return Err(format!("our own message {key} never came back"));
        }
    }
    check_run::<R>(clients, &received).await
}

/// `keys`, received in this order, are consecutive in the room's order.
async fn check_run<R: Runtime>(clients: &Clients, keys: &[u64]) -> Checked {
    // The recorder may be a moment behind the clients.
    let mut positions = None;
    let recorded = settles::<R>(Duration::from_secs(10), || {
        positions = clients.order.positions(keys);
        positions.is_some()
    })
    .await;
    let Some(positions) = positions.filter(|_| recorded) else {
        return Err(format!(
            "received messages the room never published (recorder at {})",
            clients.order.len()
        ));
    };
    for (i, pair) in positions.windows(2).enumerate() {
        if pair[1] != pair[0] + 1 {
            return Err(format!(
                "message {} of {} was published at {} but followed {} (lost, reordered or \
                 doubled messages in between)",
                i + 1,
                keys.len(),
                pair[1],
                pair[0]
            ));
        }
    }
    Ok(())
}

/// Raw peers, written by hand over the runtime's TCP stream.
mod raw {
    use super::*;

    pub(super) const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    pub(super) fn upgrade_request(port: u16, path: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    }

    pub(super) async fn open<R: Runtime>(port: u16) -> Result<R::Tcp, String> {
        R::connect("127.0.0.1".to_owned(), port)
            .await
            .map_err(|e| format!("tcp connect: {e}"))
    }

    /// Reads a response head; returns it and the bytes after it.
    pub(super) async fn read_head<R: Runtime>(
        tcp: &mut R::Tcp,
    ) -> Result<(String, Vec<u8>), String> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                return Ok((head, buf[end + 4..].to_vec()));
            }
            let n = tcp
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read head: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "the server closed before its head ({} bytes)",
                    buf.len()
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Opens a WebSocket on `path` by hand.
    pub(super) async fn upgrade<R: Runtime>(port: u16, path: &str) -> Result<R::Tcp, String> {
        let mut tcp = open::<R>(port).await?;
        tcp.write_all(upgrade_request(port, path).as_bytes())
            .await
            .map_err(|e| format!("write request: {e}"))?;
        let (head, _) = read_head::<R>(&mut tcp).await?;
        if !head.starts_with("HTTP/1.1 101") {
            return Err(format!("upgrade answered {head:.40?}"));
        }
        Ok(tcp)
    }

    /// A masked binary frame of `len` bytes (64-bit length), all of it.
    pub(super) fn frame(rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut frame = vec![0x82, 0x80 | 127];
        frame.extend_from_slice(&(len as u64).to_be_bytes());
        let mask = (rng.next() as u32).to_be_bytes();
        frame.extend_from_slice(&mask);
        frame.extend((0..len).map(|i| (i as u8) ^ mask[i % 4]));
        frame
    }
}

async fn member_abrupt<R: Runtime>(clients: &Clients, rng: &mut Rng) -> Checked {
    let mut tcp = raw::upgrade::<R>(clients.port, "/room").await?;
    let mut chunk = [0u8; 512];
    for _ in 0..rng.range(0, 4) {
        // Whatever is published meanwhile; a quiet room is fine too.
        let _ = within::<R, _>(rng.millis(5, 100), tcp.read(&mut chunk)).await;
    }
    drop(tcp);
    Ok(())
}

async fn member_stalled<R: Runtime>(clients: &Clients, rng: &mut Rng) -> Checked {
    let tcp = raw::upgrade::<R>(clients.port, "/room").await?;
    sleep::<R>(rng.millis(200, 1500)).await;
    drop(tcp);
    Ok(())
}

/// Listens to the room's SSE feed for a while (some slowly), then drops
/// the stream. Checked: the events are an unbroken run of the room's order.
async fn sse<R: Runtime>(clients: &Clients, rng: &mut Rng) -> Checked {
    let stats = &clients.stats;
    let mut tcp = raw::open::<R>(clients.port).await?;
    let request = format!(
        "GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        clients.port
    );
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write request: {e}"))?;
    let (head, rest) = raw::read_head::<R>(&mut tcp).await?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("SSE answered {head:.40?}"));
    }
    let mut parser = SseParser::new();
    parser.feed(&rest);
    let slow = rng.chance(30);
    let stop = Instant::now() + rng.millis(100, 1500);
    let mut keys = Vec::new();
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        while let Some(event) = parser.poll_event().map_err(|e| format!("SSE parse: {e}"))? {
            let data = event.data.unwrap_or_default();
            keys.push(room_key(&data).ok_or_else(|| format!("corrupt SSE event {data:.60?}"))?);
        }
        let left = stop.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if slow {
            sleep::<R>(rng.millis(5, 60)).await;
        }
        match within::<R, _>(left, tcp.read(&mut chunk)).await {
            None => break,
            Some(Ok(0)) => return Err("the SSE stream ended".to_owned()),
            Some(Ok(n)) => parser.feed(&chunk[..n]),
            Some(Err(e)) => return Err(format!("SSE read: {e}")),
        }
    }
    drop(tcp);
    Stats::add(&stats.sse_events, keys.len() as u64);
    check_run::<R>(clients, &keys).await
}

async fn mid_handshake<R: Runtime>(clients: &Clients, rng: &mut Rng) -> Checked {
    let mut tcp = raw::open::<R>(clients.port).await?;
    let request = raw::upgrade_request(clients.port, "/echo");
    let cut = rng.range(0, request.len());
    // The server may already have given up on us: errors are fine here.
    let _ = tcp.write_all(&request.as_bytes()[..cut]).await;
    if rng.chance(50) {
        sleep::<R>(rng.millis(1, 50)).await;
    }
    drop(tcp);
    Ok(())
}

/// Checked: the server drops a handshake that stalls, in about its
/// handshake timeout.
async fn stalled_handshake<R: Runtime>(clients: &Clients, rng: &mut Rng) -> Checked {
    let mut tcp = raw::open::<R>(clients.port).await?;
    let request = raw::upgrade_request(clients.port, "/echo");
    let cut = rng.range(1, request.len() - 4);
    tcp.write_all(&request.as_bytes()[..cut])
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut sink = Vec::new();
    match within::<R, _>(
        HANDSHAKE_TIMEOUT + Duration::from_secs(20),
        tcp.read_to_end(&mut sink),
    )
    .await
    {
        Some(_) => Ok(()),
        None => Err("the server kept a stalled handshake open".to_owned()),
    }
}

async fn mid_message<R: Runtime>(clients: &Clients, rng: &mut Rng) -> Checked {
    let mut tcp = raw::upgrade::<R>(clients.port, "/echo").await?;
    let len = rng.range(1024, 200 << 10);
    let frame = raw::frame(rng, len);
    let cut = rng.range(1, frame.len());
    let _ = tcp.write_all(&frame[..cut]).await;
    if rng.chance(50) {
        sleep::<R>(rng.millis(1, 50)).await;
    }
    drop(tcp);
    Ok(())
}

async fn unread_echo<R: Runtime>(clients: &Clients, rng: &mut Rng) -> Checked {
    let mut tcp = raw::upgrade::<R>(clients.port, "/echo").await?;
    for _ in 0..rng.range(1, 3) {
        let len = rng.range(64 << 10, 256 << 10);
        let frame = raw::frame(rng, len);
        if tcp.write_all(&frame).await.is_err() {
            break;
        }
    }
    if rng.chance(50) {
        sleep::<R>(rng.millis(1, 100)).await;
    }
    drop(tcp);
    Ok(())
}

/// The server: `/echo`, `/room` (join, publish what you send) and `/sse`
/// (the room as events).
async fn handle<R: Runtime>(incoming: Incoming<R::Tcp, R>, state: Arc<ServerState<R>>) {
    match incoming.request().path() {
        "/echo" => {
            let Ok(mut ws) = incoming.accept(Accept::new()).await else {
                return;
            };
            while let Some(Ok(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        }
        "/room" => {
            // Joined before the 101 is written: nothing published after
            // the client sees the handshake complete can be missed.
            let mut member = None;
            let accepted = incoming.accept_then(Accept::new(), |ws| {
                member = Some(state.room.join(ws.sender()));
            });
            let Ok(ws) = accepted else { return };
            let member = member.expect("joined when accepted");
            let (sender, mut receiver) = ws.split();
            while let Some(Ok(message)) = receiver.recv().await {
                state.room.publish(message);
            }
            state.skipped.fetch_add(member.skipped(), Ordering::SeqCst);
            drop(member);
            if sender.is_open() {
                let _ = sender.close(CloseCode::NORMAL, "").await;
            }
        }
        "/sse" => {
            let mut subscription: Subscription<R> = state.room.subscribe();
            if let Ok(mut sse) = SseStream::respond(incoming, SseConfig::default()).await {
                sse.forward(&mut subscription).await;
            }
            state
                .skipped
                .fetch_add(subscription.skipped(), Ordering::SeqCst);
        }
        _ => {
            let _ = incoming.respond(HttpResponse::not_found()).await;
        }
    }
}
