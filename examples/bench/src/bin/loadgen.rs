//! Load generator for the echo servers, on raw tokio sockets.
//!
//! Throughput mode (default): `--conns N` connections each keep
//! `--inflight K` messages of `--size` bytes (`--text` or `--binary`) in
//! flight, with pre-masked client frames (a pool of frames, each with its own
//! random mask, RFC 6455 §5.3). Every echo is compared byte for byte with what
//! was sent; a mismatch, a lost message or a dropped connection makes the
//! round invalid (nonzero exit). After `--warmup` seconds it measures for
//! `--duration` seconds and, given `--pid`, reads the server's utime+stime
//! from /proc/<pid>/stat around that window. Prints one JSON line.
//!
//! Idle mode (`--idle C`): opens C connections, `--idle-concurrency N`
//! handshakes at a time (default 64), exchanges one message on each, waits
//! `--idle-wait` seconds and reports the growth of the server's VmRSS over its
//! baseline, divided by C.
//!
//! Large-message mode (`--large`, one connection, reports MiB/s of echoed
//! payload and the growth of the server's peak RSS, `VmHWM`): whole
//! messages of `--size` bytes, `--inflight` at a time, as in throughput
//! mode; or, with `--stream` (against a server in streaming mode), one
//! binary message for the whole run, sent with wavecast's `send_reader`
//! from a generated source and read back concurrently with `next_message`,
//! every byte checked (see `bench_stream`).
//!
//! Stall mode (`--stall N`, against a `--broadcast` server): N room members
//! whose clients never read (4 KiB receive buffers), then `--stall-msgs M`
//! messages of `--size` bytes published; reports the server's VmRSS growth
//! per stalled member, then closes all N at once and reports how long a new
//! member's handshake and its first message take (the mass disconnect).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use wavecast_bench::{arg, client_frame, cpu_seconds, flag, num, status_kib};

/// The RFC 6455 sample key and its accept value. Servers do not care whether
/// keys repeat, and a fixed pair lets every answer be checked.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

struct Opts {
    addr: SocketAddr,
    server: String,
    conns: usize,
    size: usize,
    text: bool,
    inflight: usize,
    warmup: f64,
    duration: f64,
    pid: Option<u32>,
    idle: Option<usize>,
    idle_wait: f64,
    idle_concurrency: usize,
    broadcast: Option<usize>,
    rate: f64,
    window: u64,
    handshakes: Option<usize>,
    stall: Option<usize>,
    stall_msgs: u64,
    large: bool,
    stream: bool,
    stream_window: u64,
}

fn opts() -> Opts {
    Opts {
        addr: wavecast_bench::addr(),
        server: arg("server").unwrap_or_else(|| "unknown".into()),
        conns: num("conns", 100),
        size: num("size", 20),
        text: !flag("binary"),
        inflight: num("inflight", 8),
        warmup: num("warmup", 1.0),
        duration: num("duration", 5.0),
        pid: arg("pid").map(|p| p.parse().expect("bad --pid")),
        idle: arg("idle").map(|c| c.parse().expect("bad --idle")),
        idle_wait: num("idle-wait", 3.0),
        idle_concurrency: num("idle-concurrency", 64),
        broadcast: arg("broadcast").map(|c| c.parse().expect("bad --broadcast")),
        rate: num("rate", 0.0),
        window: num("window", 64),
        handshakes: arg("handshakes").map(|c| c.parse().expect("bad --handshakes")),
        stall: arg("stall").map(|c| c.parse().expect("bad --stall")),
        stall_msgs: num("stall-msgs", 2000),
        large: flag("large"),
        stream: flag("stream"),
        stream_window: num("stream-window", 0),
    }
}

/// xorshift64*: masks and payload bytes need to vary, not to be secret.
struct Rng(u64);
impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A message as sent (masked frame) and as it must come back (payload).
struct Entry {
    frame: Vec<u8>,
    payload: Vec<u8>,
}

fn make_pool(size: usize, text: bool, rng: &mut Rng) -> Vec<Entry> {
    // Keep the pool around 64 MiB at most, and at least 4 entries.
    let count = ((64 << 20) / (2 * size.max(1))).clamp(4, 1024);
    let opcode = if text { 1 } else { 2 };
    (0..count)
        .map(|_| {
            let payload: Vec<u8> = (0..size)
                .map(|_| {
                    let r = rng.next() >> 32;
                    if text {
                        // Mostly ASCII with some 2- and 3-byte UTF-8 would
                        // complicate exact sizes; printable ASCII keeps the
                        // size exact and is valid UTF-8.
                        b' ' + (r % 95) as u8
                    } else {
                        r as u8
                    }
                })
                .collect();
            let mask = (rng.next() as u32).to_ne_bytes();
            Entry {
                frame: client_frame(opcode, &payload, mask),
                payload,
            }
        })
        .collect()
}

/// Which pool entry message `seq` of connection `conn` uses; sender and
/// receiver compute it alike, so echoes are checked without a queue.
fn pick(pool_len: usize, conn: usize, seq: u64) -> usize {
    ((conn as u64).wrapping_mul(7919).wrapping_add(seq) % pool_len as u64) as usize
}

async fn handshake(addr: SocketAddr) -> io::Result<(TcpStream, Vec<u8>)> {
    handshake_path(addr, "/").await
}

/// Connects, retrying for up to 10 s while the server is still starting.
async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let tcp = loop {
        match TcpStream::connect(addr).await {
            Ok(t) => break t,
            Err(e) if Instant::now() < deadline && e.kind() == io::ErrorKind::ConnectionRefused => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => return Err(e),
        }
    };
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

async fn handshake_path(addr: SocketAddr, path: &str) -> io::Result<(TcpStream, Vec<u8>)> {
    let mut tcp = connect(addr).await?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 8192 {
            return Err(io::Error::other("handshake response head too large"));
        }
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::other("closed during handshake"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") || !head.contains(&ACCEPT.to_ascii_lowercase()) {
        return Err(io::Error::other(format!(
            "bad handshake response: {head:?}"
        )));
    }
    Ok((tcp, buf[head_end..].to_vec()))
}

/// Incremental parser for server frames (unmasked), reassembling fragments.
struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    need: usize,
    frag: Option<(u8, Vec<u8>)>,
}

impl Reader {
    fn new(leftover: Vec<u8>) -> Reader {
        let mut buf = vec![0u8; 64 << 10];
        let end = leftover.len();
        if end > buf.len() {
            buf.resize(end, 0);
        }
        buf[..end].copy_from_slice(&leftover);
        Reader {
            buf,
            start: 0,
            end,
            need: 14,
            frag: None,
        }
    }

    /// Hands every complete message in the buffer to `on_msg`.
    fn parse(
        &mut self,
        on_msg: &mut impl FnMut(u8, &[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.len() < 2 {
                self.need = 14;
                return Ok(());
            }
            let (b0, b1) = (avail[0], avail[1]);
            if b1 & 0x80 != 0 {
                return Err("server sent a masked frame".into());
            }
            let (hl, len) = match b1 & 0x7F {
                126 if avail.len() >= 4 => (4, u16::from_be_bytes([avail[2], avail[3]]) as usize),
                127 if avail.len() >= 10 => (
                    10,
                    u64::from_be_bytes(avail[2..10].try_into().unwrap()) as usize,
                ),
                126 | 127 => {
                    self.need = 14;
                    return Ok(());
                }
                n => (2, n as usize),
            };
            if avail.len() < hl + len {
                self.need = hl + len;
                return Ok(());
            }
            let payload = &avail[hl..hl + len];
            let fin = b0 & 0x80 != 0;
            match (b0 & 0x0F, self.frag.as_mut()) {
                (op @ (1 | 2), None) if fin => on_msg(op, payload)?,
                (op @ (1 | 2), None) => self.frag = Some((op, payload.to_vec())),
                (0, Some((_, acc))) => {
                    acc.extend_from_slice(payload);
                    if fin {
                        let (op, acc) = self.frag.take().unwrap();
                        on_msg(op, &acc)?;
                    }
                }
                (8, _) => return Err("server sent close".into()),
                (9 | 10, _) => {}
                (op, _) => return Err(format!("unexpected frame opcode {op} fin {fin}")),
            }
            self.start += hl + len;
        }
    }

    async fn fill(&mut self, rd: &mut (impl AsyncRead + Unpin)) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.start < self.need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.start < self.need {
            self.buf.resize(self.start + self.need, 0);
        }
        let n = rd.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        self.end += n;
        Ok(())
    }
}

struct Shared {
    pool: Vec<Entry>,
    opcode: u8,
    sent: AtomicU64,
    /// Per connection: messages sent, echoes received, bytes of an
    /// unfinished frame in the read buffer (for diagnosing stalls).
    per_conn: Vec<[AtomicU64; 3]>,
    received: AtomicU64,
    stop: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, msg: String) {
        let mut e = self.error.lock().unwrap();
        if e.is_none() {
            eprintln!("loadgen: {msg}");
            *e = Some(msg);
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(&pid.to_string(), "VmRSS:")
}

/// Peak RSS of a process so far.
fn hwm_kib(pid: u32) -> Option<u64> {
    status_kib(&pid.to_string(), "VmHWM:")
}

/// `,"server_hwm_kib_before":..,"server_hwm_kib_after":..,"server_hwm_growth_kib":..`
fn hwm_fields(before: Option<u64>, after: Option<u64>) -> String {
    let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
    format!(
        ",\"server_hwm_kib_before\":{},\"server_hwm_kib_after\":{},\"server_hwm_growth_kib\":{}",
        opt(before),
        opt(after),
        opt(before.zip(after).map(|(b, a)| a.saturating_sub(b))),
    )
}

/// `,"mib_per_s":..,"mib_per_server_cpu_s":..` for `bytes` in `secs`.
fn mib_fields(bytes: u64, secs: f64, server_cpu: Option<f64>) -> String {
    let mib = bytes as f64 / f64::from(1 << 20);
    format!(
        ",\"mib_per_s\":{:.1},\"mib_per_server_cpu_s\":{}",
        mib / secs,
        server_cpu
            .filter(|c| *c > 0.0)
            .map_or("null".to_string(), |c| format!("{:.1}", mib / c)),
    )
}

async fn run_conn(
    shared: Arc<Shared>,
    conn: usize,
    tcp: TcpStream,
    leftover: Vec<u8>,
    inflight: usize,
) {
    let (mut rd, mut wr) = tcp.into_split();
    let window = Arc::new(Semaphore::new(inflight));
    let writer = {
        let shared = shared.clone();
        let window = window.clone();
        tokio::spawn(async move {
            let pool = &shared.pool;
            let mut seq = 0u64;
            let mut batch = Vec::with_capacity(64 << 10);
            while !shared.stop.load(Relaxed) {
                let Ok(p) = window.acquire().await else {
                    return;
                };
                p.forget();
                let mut n = 1;
                while let Ok(p) = window.try_acquire() {
                    p.forget();
                    n += 1;
                }
                if shared.stop.load(Relaxed) {
                    break;
                }
                shared.sent.fetch_add(n, Relaxed);
                shared.per_conn[conn][0].fetch_add(n, Relaxed);
                let res = if pool[0].frame.len() <= 4096 {
                    batch.clear();
                    for _ in 0..n {
                        batch.extend_from_slice(&pool[pick(pool.len(), conn, seq)].frame);
                        seq += 1;
                    }
                    wr.write_all(&batch).await
                } else {
                    let mut r = Ok(());
                    for _ in 0..n {
                        r = wr.write_all(&pool[pick(pool.len(), conn, seq)].frame).await;
                        seq += 1;
                        if r.is_err() {
                            break;
                        }
                    }
                    r
                };
                if let Err(e) = res {
                    shared.fail(format!("conn {conn}: write: {e}"));
                    return;
                }
            }
            // Keep the write half open: dropping it sends FIN, and a server
            // that sees EOF right behind the last frames may (legitimately)
            // drop their echoes. The process exits after the drain.
            std::future::pending::<()>().await;
        })
    };
    let mut reader = Reader::new(leftover);
    let mut seq = 0u64;
    let pool = &shared.pool;
    let mut on_msg = |op: u8, payload: &[u8]| {
        let want = &pool[pick(pool.len(), conn, seq)];
        if op != shared.opcode || payload != &want.payload[..] {
            return Err(format!(
                "conn {conn}: echo {seq} differs (opcode {op}, {} bytes, expected {} bytes)",
                payload.len(),
                want.payload.len()
            ));
        }
        seq += 1;
        shared.received.fetch_add(1, Relaxed);
        shared.per_conn[conn][1].fetch_add(1, Relaxed);
        window.add_permits(1);
        Ok(())
    };
    loop {
        if let Err(e) = reader.parse(&mut on_msg) {
            shared.fail(e);
            break;
        }
        shared.per_conn[conn][2].store((reader.end - reader.start) as u64, Relaxed);
        if let Err(e) = reader.fill(&mut rd).await {
            if !shared.stop.load(Relaxed) {
                shared.fail(format!("conn {conn}: read: {e}"));
            }
            break;
        }
    }
    writer.abort();
}

async fn throughput(o: &Opts, shared: Arc<Shared>) -> String {
    // `--large` reports peak memory; the server is a fresh one then.
    let hwm0 = o.pid.filter(|_| o.large).and_then(hwm_kib);
    let mut streams = Vec::with_capacity(o.conns);
    for _ in 0..o.conns {
        match handshake(o.addr).await {
            Ok(s) => streams.push(s),
            Err(e) => {
                shared.fail(format!("handshake: {e}"));
                return String::new();
            }
        }
    }
    for (i, (tcp, left)) in streams.into_iter().enumerate() {
        tokio::spawn(run_conn(shared.clone(), i, tcp, left, o.inflight));
    }
    tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
    let pid = o.pid.map(|p| p.to_string());
    let cpu = |p: &Option<String>| p.as_deref().and_then(cpu_seconds);
    let (m0, s0, c0, t0) = (
        shared.received.load(Relaxed),
        cpu(&pid),
        cpu_seconds("self"),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    let (m1, s1, c1, t1) = (
        shared.received.load(Relaxed),
        cpu(&pid),
        cpu_seconds("self"),
        Instant::now(),
    );
    shared.stop.store(true, Relaxed);
    // Every message sent must come back.
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while shared.received.load(Relaxed) < shared.sent.load(Relaxed)
        && shared.error.lock().unwrap().is_none()
    {
        if Instant::now() > drain_deadline {
            let stuck: Vec<String> = shared
                .per_conn
                .iter()
                .enumerate()
                .filter(|(_, c)| c[0].load(Relaxed) != c[1].load(Relaxed))
                .map(|(i, c)| {
                    format!(
                        "conn {i}: sent {} received {} partial frame bytes {}",
                        c[0].load(Relaxed),
                        c[1].load(Relaxed),
                        c[2].load(Relaxed)
                    )
                })
                .collect();
            // Socket queues while the connections are still open: which side holds the bytes?
            let port = shared_addr().port();
            if let Ok(out) = std::process::Command::new("ss")
                .args(["-tn", &format!("( sport = :{port} or dport = :{port} )")])
                .output()
            {
                eprintln!("{}", String::from_utf8_lossy(&out.stdout));
            }
            shared.fail(format!(
                "{} messages never came back ({})",
                shared.sent.load(Relaxed) - shared.received.load(Relaxed),
                stuck.join("; ")
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = (t1 - t0).as_secs_f64();
    let msgs = m1 - m0;
    let server_cpu = s0.zip(s1).map(|(a, b)| b - a);
    let client_cpu = c0.zip(c1).map(|(a, b)| b - a);
    let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
    let per_cpu = server_cpu.filter(|c| *c > 0.0).map(|c| msgs as f64 / c);
    let large = if o.large {
        let hwm1 = o.pid.and_then(hwm_kib);
        format!(
            ",\"streaming\":false{}{}",
            mib_fields(msgs * o.size as u64, secs, server_cpu),
            hwm_fields(hwm0, hwm1)
        )
    } else {
        String::new()
    };
    format!(
        "{{\"mode\":\"{}\",\"server\":\"{}\",\"conns\":{},\"size\":{},\"kind\":\"{}\",\"inflight\":{},\
         \"seconds\":{secs:.3},\"messages\":{msgs},\"msgs_per_s\":{:.0},\"server_cpu_s\":{},\
         \"msgs_per_server_cpu_s\":{},\"client_cpu_s\":{},\"sent_total\":{},\"received_total\":{}{large}",
        if o.large { "large" } else { "throughput" },
        o.server,
        o.conns,
        o.size,
        if o.text { "text" } else { "binary" },
        o.inflight,
        msgs as f64 / secs,
        opt(server_cpu),
        per_cpu.map_or("null".to_string(), |v| format!("{v:.0}")),
        opt(client_cpu),
        shared.sent.load(Relaxed),
        shared.received.load(Relaxed),
    )
}

async fn idle(o: &Opts, shared: Arc<Shared>, count: usize) -> String {
    let pid = o.pid.expect("--idle needs --pid");
    let base = rss_kib(pid).unwrap_or(0);
    // How many handshakes are in flight at once shapes the server's heap:
    // each one holds its handshake buffers while the others' connections
    // are allocated around them.
    let limit = Arc::new(Semaphore::new(o.idle_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for conn in 0..count {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let (mut tcp, left) = handshake(shared_addr()).await.map_err(|e| e.to_string())?;
            let e = &shared.pool[pick(shared.pool.len(), conn, 0)];
            tcp.write_all(&e.frame).await.map_err(|e| e.to_string())?;
            let mut reader = Reader::new(left);
            let mut got = false;
            while !got {
                reader.parse(&mut |op, p: &[u8]| {
                    if op != shared.opcode || p != &e.payload[..] {
                        return Err(format!("conn {conn}: echo differs"));
                    }
                    got = true;
                    Ok(())
                })?;
                if !got {
                    reader.fill(&mut tcp).await.map_err(|e| e.to_string())?;
                }
            }
            Ok::<TcpStream, String>(tcp)
        }));
    }
    let mut open = Vec::with_capacity(count);
    for t in tasks {
        match t.await.unwrap() {
            Ok(tcp) => open.push(tcp),
            Err(e) => {
                shared.fail(e);
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(o.idle_wait)).await;
    let after = rss_kib(pid).unwrap_or(0);
    let per = (after.saturating_sub(base) * 1024) as f64 / count as f64;
    let out = format!(
        "{{\"mode\":\"idle\",\"server\":\"{}\",\"conns\":{},\"concurrency\":{},\"open\":{},\
         \"baseline_rss_kib\":{base},\"rss_kib\":{after},\"bytes_per_conn\":{per:.0}",
        o.server,
        count,
        o.idle_concurrency.max(1),
        open.len()
    );
    drop(open);
    out
}

/// A member on `/sub` whose client reads nothing after the `101` (and
/// keeps its receive buffer at 4 KiB, so the server's output backs up).
async fn stalled_member(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut tcp = socket.connect(addr).await?;
    let req = format!(
        "GET /sub HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if tcp.read(&mut byte).await? == 0 {
            return Err(io::Error::other("closed during handshake"));
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(io::Error::other("no 101"));
    }
    Ok(tcp)
}

async fn stall(o: &Opts, shared: &Shared, n: usize) -> String {
    let pid = o.pid.expect("--stall needs --pid");
    let base = rss_kib(pid).unwrap_or(0);
    let limit = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let addr = o.addr;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            stalled_member(addr).await
        }));
    }
    let mut stalled = Vec::with_capacity(n);
    for t in tasks {
        match t.await.unwrap() {
            Ok(tcp) => stalled.push(tcp),
            Err(e) => {
                shared.fail(format!("stalled member: {e}"));
                return String::new();
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let joined = rss_kib(pid).unwrap_or(0);
    let (mut publisher, _) = match handshake_path(o.addr, "/pub").await {
        Ok(p) => p,
        Err(e) => {
            shared.fail(format!("publisher: {e}"));
            return String::new();
        }
    };
    let mut rng = Rng::seeded();
    let payload: Vec<u8> = (0..o.size).map(|_| rng.next() as u8).collect();
    let frame = client_frame(2, &payload, (rng.next() as u32).to_ne_bytes());
    let t = Instant::now();
    for _ in 0..o.stall_msgs {
        if let Err(e) = publisher.write_all(&frame).await {
            shared.fail(format!("publish: {e}"));
            return String::new();
        }
    }
    let publish_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(o.idle_wait)).await;
    let peak = rss_kib(pid).unwrap_or(0);
    // Everyone leaves at once (unread data: the kernel resets each one).
    drop(stalled);
    let t = Instant::now();
    let fresh = handshake_path(o.addr, "/sub").await;
    let handshake_ms = t.elapsed().as_secs_f64() * 1e3;
    let (tcp, left) = match fresh {
        Ok(f) => f,
        Err(e) => {
            shared.fail(format!("new member after the mass disconnect: {e}"));
            return String::new();
        }
    };
    let mut tcp = tcp;
    let _ = publisher.write_all(&frame).await;
    let mut reader = Reader::new(left);
    let mut got = false;
    while !got {
        if let Err(e) = reader.parse(&mut |_, p: &[u8]| {
            got = p == &payload[..];
            Ok(())
        }) {
            shared.fail(e);
            return String::new();
        }
        if !got {
            if let Err(e) = reader.fill(&mut tcp).await {
                shared.fail(format!("new member: {e}"));
                return String::new();
            }
        }
    }
    let first_message_ms = t.elapsed().as_secs_f64() * 1e3;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid).unwrap_or(0);
    let per = |kib: u64| (kib.saturating_sub(base) * 1024) as f64 / n as f64;
    format!(
        "{{\"mode\":\"stall\",\"server\":\"{}\",\"stalled\":{n},\"messages\":{},\"size\":{},\
         \"publish_s\":{publish_s:.2},\"baseline_rss_kib\":{base},\"joined_bytes_per_member\":{:.0},\
         \"stalled_bytes_per_member\":{:.0},\"stalled_rss_kib\":{peak},\"new_member_handshake_ms\":{handshake_ms:.1},\
         \"new_member_first_message_ms\":{first_message_ms:.1},\"rss_kib_after_disconnect\":{after}",
        o.server,
        o.stall_msgs,
        o.size,
        per(joined),
        per(peak),
    )
}

static ADDR: std::sync::OnceLock<SocketAddr> = std::sync::OnceLock::new();
fn shared_addr() -> SocketAddr {
    *ADDR.get().unwrap()
}

fn main() {
    let nofile = wavecast_bench::raise_nofile();
    let o = opts();
    ADDR.set(o.addr).unwrap();
    if let Some(c) = o.idle.or(o.broadcast).or(o.stall) {
        if c as u64 + 64 > nofile {
            eprintln!("loadgen: RLIMIT_NOFILE {nofile} is too low for {c} connections");
            std::process::exit(2);
        }
    }
    let mut rng = Rng::seeded();
    let shared = Arc::new(Shared {
        pool: make_pool(o.size, o.text, &mut rng),
        opcode: if o.text { 1 } else { 2 },
        sent: AtomicU64::new(0),
        per_conn: (0..o.conns.max(o.idle.unwrap_or(0)))
            .map(|_| Default::default())
            .collect(),
        received: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        error: Mutex::new(None),
    });
    let rt = wavecast_bench::runtime();
    let json = rt.block_on(async {
        if let Some(n) = o.stall {
            stall(&o, &shared, n).await
        } else if let Some(n) = o.broadcast {
            bench_broadcast::run(&o, shared.clone(), n).await
        } else if let Some(c) = o.handshakes {
            bench_handshakes(&o, shared.clone(), c).await
        } else if o.large && o.stream {
            bench_stream::run(&o, shared.clone()).await
        } else {
            match o.idle {
                Some(c) => idle(&o, shared.clone(), c).await,
                None => throughput(&o, shared.clone()).await,
            }
        }
    });
    let err = shared.error.lock().unwrap().clone();
    let json = if json.is_empty() {
        format!("{{\"mode\":\"error\",\"server\":\"{}\"", o.server)
    } else {
        json
    };
    match &err {
        None => println!("{json},\"valid\":true}}"),
        Some(e) => println!("{json},\"valid\":false,\"error\":{:?}}}", e),
    }
    // Leave the open sockets and tasks to the OS.
    std::process::exit(if err.is_some() { 1 } else { 0 });
}

/// Nanoseconds on the monotonic clock since the process started (the
/// send timestamps embedded in broadcast messages; the same process reads
/// them back, so one base is enough).
fn mono_ns() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Log-linear latency histogram (16 sub-buckets per power of two, ≤ 6 %
/// error), lock-free so subscriber tasks record into it directly.
struct Histogram {
    buckets: Vec<AtomicU64>,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: (0..1024).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    fn index(v: u64) -> usize {
        if v < 16 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize;
        16 + (e - 4) * 16 + ((v >> (e - 4)) & 15) as usize
    }
    /// Middle of bucket `i`.
    fn value(i: usize) -> f64 {
        if i < 16 {
            return i as f64;
        }
        let (e, mant) = ((i - 16) / 16 + 4, ((i - 16) % 16) as u64);
        let low = (16 + mant) << (e - 4);
        low as f64 + (1u64 << (e - 4)) as f64 / 2.0
    }
    fn record(&self, v: u64) {
        self.buckets[Self::index(v)].fetch_add(1, Relaxed);
    }
    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }
    fn percentile(&self, p: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut cum = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cum += b.load(Relaxed);
            if cum >= want {
                return Some(Self::value(i));
            }
        }
        None
    }
}

/// Broadcast mode (`--broadcast N`): N subscribers on `/sub`, then one
/// publisher on `/pub` sending 64-byte binary messages
/// `[seq u64 LE][send time, mono ns, u64 LE][48 random bytes]`, either at
/// `--rate R` messages/s or as fast as the room drains; in both cases at
/// most `--window W` messages are published but not yet received by every
/// subscriber (W below the room capacity of 256, so no member lags and a
/// lost message is a failure). Every subscriber checks each message byte for
/// byte against the published copy and its sequence number (in order, no
/// gaps).
mod bench_broadcast {
    use super::*;
    use tokio::sync::Notify;

    /// Payload size unless `--size` is given (at least 16: sequence number
    /// and send time).
    const DEFAULT_SIZE: usize = 64;
    const RING: usize = 4096;

    struct State {
        subs: u64,
        /// Payload size of every message.
        size: usize,
        /// Mixed into the filler, so payloads differ from run to run.
        salt: u64,
        /// The send time of each published message by `seq % RING`; the
        /// rest of a payload is `filler(salt, seq)`.
        ring: Vec<AtomicU64>,
        /// How many subscribers have received the message in each slot.
        got: Vec<AtomicU64>,
        /// Messages received by every subscriber (a prefix: subscribers
        /// receive in order, so message k complete means all before it are).
        done: AtomicU64,
        published: AtomicU64,
        received: AtomicU64,
        progress: Notify,
        measuring: AtomicBool,
        hist: Histogram,
    }

    /// Bytes 16.. of message `seq`: a xorshift stream seeded by the
    /// sequence number, so a subscriber can check every byte without a copy
    /// of the payload.
    fn filler(salt: u64, seq: u64, out: &mut [u8]) {
        let mut rng = filler_rng(salt, seq);
        for c in out.chunks_mut(8) {
            let w = rng.next().to_le_bytes();
            c.copy_from_slice(&w[..c.len()]);
        }
    }

    fn filler_rng(salt: u64, seq: u64) -> Rng {
        Rng((salt ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn check(st: &State, expect: &mut u64, op: u8, p: &[u8]) -> Result<(), String> {
        let now = mono_ns();
        if op != 2 || p.len() != st.size {
            return Err(format!(
                "subscriber: opcode {op}, {} bytes, expected 2, {}",
                p.len(),
                st.size
            ));
        }
        let seq = u64::from_le_bytes(p[..8].try_into().unwrap());
        if seq != *expect {
            return Err(format!(
                "subscriber: got message {seq}, expected {}",
                *expect
            ));
        }
        if seq >= st.published.load(Relaxed) {
            return Err(format!("subscriber: message {seq} was never published"));
        }
        let sent = st.ring[seq as usize % RING].load(std::sync::atomic::Ordering::Acquire);
        let mut rng = filler_rng(st.salt, seq);
        let same_filler = p[16..]
            .chunks(8)
            .all(|c| rng.next().to_le_bytes()[..c.len()] == *c);
        if p[8..16] != sent.to_le_bytes() || !same_filler {
            return Err(format!(
                "subscriber: message {seq} differs from what was published"
            ));
        }
        *expect += 1;
        st.received.fetch_add(1, Relaxed);
        if st.measuring.load(Relaxed) {
            st.hist.record(now.saturating_sub(sent));
        }
        if st.got[seq as usize % RING].fetch_add(1, Relaxed) + 1 == st.subs {
            st.done.fetch_max(seq + 1, Relaxed);
            st.progress.notify_one();
        }
        Ok(())
    }

    async fn subscriber(shared: Arc<Shared>, st: Arc<State>, tcp: TcpStream, left: Vec<u8>) {
        let (mut rd, _wr) = tcp.into_split();
        let mut reader = Reader::new(left);
        let mut expect = 0u64;
        loop {
            if let Err(e) = reader.parse(&mut |op, p: &[u8]| check(&st, &mut expect, op, p)) {
                shared.fail(e);
                return;
            }
            if let Err(e) = reader.fill(&mut rd).await {
                if !shared.stop.load(Relaxed) {
                    shared.fail(format!("subscriber: read: {e}"));
                }
                return;
            }
        }
    }

    async fn publisher(o: Rate, shared: Arc<Shared>, st: Arc<State>, tcp: TcpStream) {
        let mut tcp = tcp;
        let mut rng = Rng::seeded();
        let mut batch = Vec::with_capacity(64 * (st.size + 14));
        let mut p = Vec::with_capacity(st.size);
        let start = Instant::now();
        let mut seq = 0u64;
        while !shared.stop.load(Relaxed) && shared.error.lock().unwrap().is_none() {
            // How many may go now: the window, and the schedule in rate mode.
            let room = o.window.saturating_sub(seq - st.done.load(Relaxed));
            if room == 0 {
                let _ =
                    tokio::time::timeout(Duration::from_millis(50), st.progress.notified()).await;
                continue;
            }
            let mut n = room.min(64);
            if o.rate > 0.0 {
                let due = (start.elapsed().as_secs_f64() * o.rate) as u64 + 1;
                if due <= seq {
                    let at = start + Duration::from_secs_f64(seq as f64 / o.rate);
                    tokio::time::sleep_until(at.into()).await;
                    continue;
                }
                n = n.min(due - seq);
            }
            batch.clear();
            for _ in 0..n {
                p.resize(st.size, 0);
                let sent = mono_ns();
                p[..8].copy_from_slice(&seq.to_le_bytes());
                p[8..16].copy_from_slice(&sent.to_le_bytes());
                filler(st.salt, seq, &mut p[16..]);
                st.got[seq as usize % RING].store(0, Relaxed);
                st.ring[seq as usize % RING].store(sent, std::sync::atomic::Ordering::Release);
                seq += 1;
                st.published
                    .store(seq, std::sync::atomic::Ordering::Release);
                batch.extend_from_slice(&client_frame(2, &p, (rng.next() as u32).to_ne_bytes()));
            }
            if let Err(e) = tcp.write_all(&batch).await {
                shared.fail(format!("publisher: write: {e}"));
                return;
            }
        }
        // Write half stays open until the process exits (see run_conn).
        std::future::pending::<()>().await;
    }

    #[derive(Clone, Copy)]
    struct Rate {
        rate: f64,
        window: u64,
    }

    pub(super) async fn run(o: &Opts, shared: Arc<Shared>, n: usize) -> String {
        let window = o.window.clamp(1, 200);
        // `--size` (default 20) is the echo size; broadcast keeps 64 B
        // unless it is given.
        let size = if arg("size").is_some() {
            o.size
        } else {
            DEFAULT_SIZE
        };
        if size < 16 {
            shared.fail(format!(
                "--size {size}: broadcast messages need at least 16 bytes"
            ));
            return String::new();
        }
        let st = Arc::new(State {
            subs: n as u64,
            size,
            salt: Rng::seeded().next(),
            ring: (0..RING).map(|_| AtomicU64::new(0)).collect(),
            got: (0..RING).map(|_| AtomicU64::new(0)).collect(),
            done: AtomicU64::new(0),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            progress: Notify::new(),
            measuring: AtomicBool::new(false),
            hist: Histogram::new(),
        });
        // Subscribers first (64 handshakes at a time); each has joined the
        // room once its 101 is here.
        let limit = Arc::new(Semaphore::new(64));
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let permit = limit.clone().acquire_owned().await.unwrap();
            let addr = o.addr;
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                handshake_path(addr, "/sub").await
            }));
        }
        for t in tasks {
            match t.await.unwrap() {
                Ok((tcp, left)) => {
                    tokio::spawn(subscriber(shared.clone(), st.clone(), tcp, left));
                }
                Err(e) => {
                    shared.fail(format!("subscriber handshake: {e}"));
                    return String::new();
                }
            }
        }
        let (pubtcp, _) = match handshake_path(o.addr, "/pub").await {
            Ok(s) => s,
            Err(e) => {
                shared.fail(format!("publisher handshake: {e}"));
                return String::new();
            }
        };
        let rate = Rate {
            rate: o.rate,
            window,
        };
        tokio::spawn(publisher(rate, shared.clone(), st.clone(), pubtcp));
        tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
        let pid = o.pid.map(|p| p.to_string());
        let cpu = |p: &Option<String>| p.as_deref().and_then(cpu_seconds);
        st.measuring.store(true, Relaxed);
        let (m0, p0, s0, c0, t0) = (
            st.received.load(Relaxed),
            st.published.load(Relaxed),
            cpu(&pid),
            cpu_seconds("self"),
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
        let (m1, p1, s1, c1, t1) = (
            st.received.load(Relaxed),
            st.published.load(Relaxed),
            cpu(&pid),
            cpu_seconds("self"),
            Instant::now(),
        );
        st.measuring.store(false, Relaxed);
        shared.stop.store(true, Relaxed);
        // Every published message must reach every subscriber.
        let deadline = Instant::now() + Duration::from_secs(10);
        while st.done.load(Relaxed) < st.published.load(Relaxed)
            && shared.error.lock().unwrap().is_none()
        {
            if Instant::now() > deadline {
                shared.fail(format!(
                    "{} of {} published messages did not reach every subscriber",
                    st.published.load(Relaxed) - st.done.load(Relaxed),
                    st.published.load(Relaxed)
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let secs = (t1 - t0).as_secs_f64();
        let msgs = m1 - m0;
        let server_cpu = s0.zip(s1).map(|(a, b)| b - a);
        let client_cpu = c0.zip(c1).map(|(a, b)| b - a);
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        let us = |p: f64| {
            st.hist
                .percentile(p)
                .map_or("null".into(), |v| format!("{:.1}", v / 1000.0))
        };
        format!(
            "{{\"mode\":\"broadcast\",\"server\":\"{}\",\"subs\":{n},\"size\":{size},\"rate\":{},\"window\":{window},\
             \"seconds\":{secs:.3},\"published\":{},\"delivered\":{msgs},\"msgs_per_s\":{:.0},\
             \"published_per_s\":{:.0},\"server_cpu_s\":{},\"msgs_per_server_cpu_s\":{},\"client_cpu_s\":{},\
             \"p50_us\":{},\"p99_us\":{},\"latency_samples\":{},\"published_total\":{},\"received_total\":{}",
            o.server,
            o.rate,
            p1 - p0,
            msgs as f64 / secs,
            (p1 - p0) as f64 / secs,
            opt(server_cpu),
            server_cpu.filter(|c| *c > 0.0).map_or("null".into(), |c| format!("{:.0}", msgs as f64 / c)),
            opt(client_cpu),
            us(0.50),
            us(0.99),
            st.hist.count(),
            st.published.load(Relaxed),
            st.received.load(Relaxed),
        )
    }
}

/// Streaming mode (`--large --stream`, against a wavecast server started
/// with `--stream`): one connection, split; the sending half streams one
/// binary message from a generated source with `send_reader` (a 64 KiB
/// frame per read) until the measured window ends, while the receiving half
/// reads the echo with `next_message` and checks every byte against the
/// same generator. Throughput is echoed bytes per second over the window;
/// at the end every byte sent must have come back within 10 s.
///
/// With `--stream-window N`, at most N bytes are read from the source but
/// not yet echoed back (default 0: no bound, as a user's program would
/// run). Before the library stopped pausing reads while its output was over
/// the write limit, two wavecast peers streaming at each other could both
/// stop reading and deadlock (about 1 run in 15–30 here); a 256 KiB window
/// avoided it. Run with `--stream-window 0` many times to check it stays
/// fixed.
mod bench_stream {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use wavecast_tokio::{client_over, ClientRequest, Config};

    /// The message's bytes: byte `i` is byte `i % 8` (little-endian) of
    /// splitmix64(seed + i / 8), so the receiver regenerates any stretch on
    /// its own, at any chunk boundary.
    struct Pattern {
        seed: u64,
        pos: u64,
    }

    impl Pattern {
        fn word(&self, index: u64) -> [u8; 8] {
            let mut z = self
                .seed
                .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)).to_le_bytes()
        }

        fn fill(&mut self, out: &mut [u8]) {
            // Up to a word boundary, whole words, then the tail.
            let head = ((8 - self.pos % 8) % 8).min(out.len() as u64) as usize;
            let (first, rest) = out.split_at_mut(head);
            self.bytes(first);
            let mut words = rest.chunks_exact_mut(8);
            for w in &mut words {
                w.copy_from_slice(&self.word(self.pos / 8));
                self.pos += 8;
            }
            self.bytes(words.into_remainder());
        }

        fn bytes(&mut self, out: &mut [u8]) {
            for b in out {
                *b = self.word(self.pos / 8)[(self.pos % 8) as usize];
                self.pos += 1;
            }
        }
    }

    /// Bytes echoed so far, and the source waiting for them.
    #[derive(Default)]
    struct Echoed {
        bytes: AtomicU64,
        waiting: Mutex<Option<Waker>>,
    }

    impl Echoed {
        fn add(&self, n: u64) {
            self.bytes.fetch_add(n, Relaxed);
            if let Some(w) = self.waiting.lock().unwrap().take() {
                w.wake();
            }
        }
    }

    /// The source `send_reader` reads: the pattern, at most `window` bytes
    /// ahead of the echo, until `stop` (then EOF, which ends the message).
    struct Source {
        pattern: Pattern,
        shared: Arc<Shared>,
        echoed: Arc<Echoed>,
        window: u64,
    }

    impl Source {
        /// Bytes that may be read now.
        fn room(&self) -> u64 {
            match self.window {
                0 => u64::MAX,
                w => w.saturating_sub(self.pattern.pos - self.echoed.bytes.load(Relaxed)),
            }
        }
    }

    impl futures_io::AsyncRead for Source {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            if self.shared.stop.load(Relaxed) {
                return Poll::Ready(Ok(0));
            }
            if self.room() == 0 {
                *self.echoed.waiting.lock().unwrap() = Some(cx.waker().clone());
                // An echo that came in meanwhile found no waker to take.
                if self.room() == 0 {
                    return Poll::Pending;
                }
            }
            let n = (buf.len() as u64).min(self.room()) as usize;
            self.pattern.fill(&mut buf[..n]);
            Poll::Ready(Ok(n))
        }
    }

    pub(super) async fn run(o: &Opts, shared: Arc<Shared>) -> String {
        // A fresh server: its peak RSS so far is its baseline.
        let hwm0 = o.pid.and_then(hwm_kib);
        let url = format!("ws://{}/", o.addr);
        let (request, _) = ClientRequest::from_url(&url).expect("a ws:// URL");
        // No permessage-deflate (the raw-socket modes offer none either);
        // the client streams too, so the echo is never held whole here.
        let config = Config::default()
            .with_deflate(None)
            .with_stream_messages(true);
        let ws = match connect(o.addr).await {
            Ok(tcp) => client_over(tcp, request, config).await,
            Err(e) => {
                shared.fail(format!("connect: {e}"));
                return String::new();
            }
        };
        let (tx, mut rx) = match ws {
            Ok((ws, _)) => ws.split(),
            Err(e) => {
                shared.fail(format!("handshake: {e}"));
                return String::new();
            }
        };
        let seed = Rng::seeded().next();
        let echoed = Arc::new(Echoed::default());
        let sender = {
            let source = Source {
                pattern: Pattern { seed, pos: 0 },
                shared: shared.clone(),
                echoed: echoed.clone(),
                window: o.stream_window,
            };
            // The sender is handed back: dropping the last one would close
            // the connection before the echo is in.
            tokio::spawn(async move {
                let sent = tx.send_reader(false, source).await;
                (tx, sent)
            })
        };
        let receiver = {
            let echoed = echoed.clone();
            tokio::spawn(async move {
                let mut msg = match rx.next_message().await {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => return Err(format!("receive: {e}")),
                    None => return Err("closed before the echo started".to_string()),
                };
                if msg.is_text() {
                    return Err("the echo is a text message".to_string());
                }
                let mut expect = Pattern { seed, pos: 0 };
                let mut scratch = Vec::new();
                while let Some(chunk) = msg.chunk().await {
                    let chunk = chunk.map_err(|e| format!("receive: {e}"))?;
                    scratch.resize(chunk.len(), 0);
                    let at = expect.pos;
                    expect.fill(&mut scratch);
                    if chunk[..] != scratch[..] {
                        return Err(format!(
                            "the echo differs in the {} bytes from offset {at}",
                            chunk.len()
                        ));
                    }
                    echoed.add(chunk.len() as u64);
                }
                Ok(expect.pos)
            })
        };
        tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
        let pid = o.pid.map(|p| p.to_string());
        let cpu = |p: &Option<String>| p.as_deref().and_then(cpu_seconds);
        let (b0, s0, c0, t0) = (
            echoed.bytes.load(Relaxed),
            cpu(&pid),
            cpu_seconds("self"),
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
        let (b1, s1, c1, t1) = (
            echoed.bytes.load(Relaxed),
            cpu(&pid),
            cpu_seconds("self"),
            Instant::now(),
        );
        // The source ends the message; all of it must come back.
        shared.stop.store(true, Relaxed);
        let drain = Duration::from_secs(10);
        let (sent, echoed) =
            match tokio::time::timeout(drain, async { (sender.await, receiver.await) }).await {
                Ok((Ok((_tx, Ok(sent))), Ok(Ok(echoed)))) => (sent, echoed),
                Ok((Ok((_, Err(e))), _)) => {
                    shared.fail(format!("send_reader: {e}"));
                    (0, 0)
                }
                Ok((_, Ok(Err(e)))) => {
                    shared.fail(e);
                    (0, 0)
                }
                Ok(_) => {
                    shared.fail("a client task panicked".to_string());
                    (0, 0)
                }
                Err(_) => {
                    shared.fail(format!(
                        "the echo did not end within 10 s ({} bytes back)",
                        echoed.bytes.load(Relaxed)
                    ));
                    (0, 0)
                }
            };
        if sent != echoed {
            shared.fail(format!("sent {sent} bytes, {echoed} came back"));
        }
        let hwm1 = o.pid.and_then(hwm_kib);
        let secs = (t1 - t0).as_secs_f64();
        let server_cpu = s0.zip(s1).map(|(a, b)| b - a);
        let client_cpu = c0.zip(c1).map(|(a, b)| b - a);
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        format!(
            "{{\"mode\":\"large\",\"server\":\"{}\",\"streaming\":true,\"conns\":1,\"kind\":\"binary\",\
             \"window\":{},\"seconds\":{secs:.3},\"bytes\":{}{},\"server_cpu_s\":{},\"client_cpu_s\":{},\
             \"message_bytes\":{sent},\"echoed_bytes\":{echoed}{}",
            o.server,
            o.stream_window,
            b1 - b0,
            mib_fields(b1 - b0, secs, server_cpu),
            opt(server_cpu),
            opt(client_cpu),
            hwm_fields(hwm0, hwm1),
        )
    }
}

/// One handshake cycle: connect, upgrade, send a close frame, wait for the
/// server's close frame and then its FIN.
async fn handshake_cycle(addr: SocketAddr, mask: [u8; 4]) -> Result<(), String> {
    let (mut tcp, left) = handshake(addr)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tcp.write_all(&client_frame(8, &1000u16.to_be_bytes(), mask))
        .await
        .map_err(|e| format!("write close: {e}"))?;
    let mut buf = left;
    let mut chunk = [0u8; 256];
    loop {
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 4096 {
            return Err("server sent more than a close frame".into());
        }
    }
    // Only the close frame may come back (code 1000 echoed, or no payload).
    match buf.as_slice() {
        [0x88, 0x02, 0x03, 0xE8] | [0x88, 0x00] => Ok(()),
        other => Err(format!(
            "expected the server's close frame then EOF, got {:02x?}",
            &other[..other.len().min(16)]
        )),
    }
}

/// Handshake mode (`--handshakes C`): C workers run `handshake_cycle` back to
/// back; counts completed cycles in the measured window. At most
/// `--max-handshakes` cycles in all.
async fn bench_handshakes(o: &Opts, shared: Arc<Shared>, workers: usize) -> String {
    let max: u64 = num("max-handshakes", 2_000_000);
    let done = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (shared, done, started) = (shared.clone(), done.clone(), started.clone());
        let addr = o.addr;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((w as u64 + 1) * 0x1000_0000_01B3));
            while !shared.stop.load(Relaxed) && started.fetch_add(1, Relaxed) < max {
                let mask = (rng.next() as u32).to_ne_bytes();
                match tokio::time::timeout(Duration::from_secs(5), handshake_cycle(addr, mask))
                    .await
                {
                    Ok(Ok(())) => {
                        done.fetch_add(1, Relaxed);
                    }
                    Ok(Err(e)) => return shared.fail(format!("worker {w}: {e}")),
                    Err(_) => return shared.fail(format!("worker {w}: cycle took over 5 s")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
    let pid = o.pid.map(|p| p.to_string());
    let cpu = |p: &Option<String>| p.as_deref().and_then(cpu_seconds);
    let (h0, s0, c0, t0) = (
        done.load(Relaxed),
        cpu(&pid),
        cpu_seconds("self"),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    let (h1, s1, c1, t1) = (
        done.load(Relaxed),
        cpu(&pid),
        cpu_seconds("self"),
        Instant::now(),
    );
    shared.stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let secs = (t1 - t0).as_secs_f64();
    let n = h1 - h0;
    let server_cpu = s0.zip(s1).map(|(a, b)| b - a);
    let client_cpu = c0.zip(c1).map(|(a, b)| b - a);
    let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
    format!(
        "{{\"mode\":\"handshakes\",\"server\":\"{}\",\"workers\":{workers},\"seconds\":{secs:.3},\
         \"handshakes\":{n},\"msgs_per_s\":{:.0},\"server_cpu_s\":{},\"msgs_per_server_cpu_s\":{},\
         \"client_cpu_s\":{},\"handshakes_total\":{}",
        o.server,
        n as f64 / secs,
        opt(server_cpu),
        server_cpu
            .filter(|c| *c > 0.0)
            .map_or("null".into(), |c| format!("{:.0}", n as f64 / c)),
        opt(client_cpu),
        done.load(Relaxed),
    )
}
