//! `fanout-load`: publish-to-delivery latency and deliveries per second of
//! one room served by one or more `fanout-node`s (`redis-fanout.sh`).
//!
//! Opens `--members N` WebSocket members spread round robin over `--nodes
//! a1,a2,...` (all joined before anything is published), and one publisher
//! on `/pub` of the first node (`--publish-to I` picks another). The
//! publisher sends `--rate R` binary messages per second for `--warmup` +
//! `--duration` seconds, driven by a `timerfd`; each is 16 bytes: its
//! sequence number and the time it was written (nanoseconds since the
//! client started, monotonic clock), big-endian. Every member reads every
//! message and records now − send time; messages of the warm-up are
//! delivered and checked but not measured.
//!
//! The client is one thread on one level-triggered `epoll` (the shape of
//! `pingpong`), so that it costs one `read` per wake-up and stays far from
//! its core's limit; its own CPU seconds are reported. With `--pids
//! p1,p2,...` (the nodes) and `--redis-pid P` their utime+stime over the
//! measured window is reported too: from the first measured publication
//! until every member has received the last one (at most `--drain` seconds,
//! default 5, after the last publication).
//!
//! Prints one JSON line. The run is valid (exit 0) when every member got
//! every message exactly once and in order and no connection was lost;
//! `missing` and `duplicated` count what was not.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use wavecast_bench::{arg, client_frame, cpu_seconds, num, raise_nofile};

/// The RFC 6455 sample key and its accept value (servers accept repeated
/// keys; a fixed pair lets every answer be checked).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const IN: u32 = libc::EPOLLIN as u32;
const OUT: u32 = libc::EPOLLOUT as u32;
const HUP: u32 = (libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32;

fn fail(why: &str) -> ! {
    println!("{{\"mode\":\"redis-fanout\",\"valid\":false,\"error\":{why:?}}}");
    std::process::exit(1);
}

/// Connects (retrying while the node starts) and upgrades on `path`,
/// blocking. Returns the socket and any bytes after the response head.
fn handshake(addr: SocketAddr, path: &str) -> io::Result<(TcpStream, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tcp = loop {
        match TcpStream::connect(addr) {
            Ok(t) => break t,
            Err(e) if Instant::now() < deadline && e.kind() == io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => return Err(e),
        }
    };
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )?;
    let mut head = Vec::with_capacity(512);
    let end = loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > 8192 {
            return Err(io::Error::other("handshake response head too large"));
        }
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::other("closed during the handshake"));
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    if !text.starts_with("http/1.1 101") || !text.contains(&ACCEPT.to_ascii_lowercase()) {
        return Err(io::Error::other(format!(
            "bad handshake response: {text:?}"
        )));
    }
    tcp.set_read_timeout(None)?;
    tcp.set_nonblocking(true)?;
    Ok((tcp, head[end..].to_vec()))
}

struct Epoll(i32);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; the descriptor is owned by the returned value.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }

    fn ctl(&self, op: i32, fd: i32, events: u32, token: usize) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: token as u64,
        };
        // SAFETY: `ev` lives across the call; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.0, op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: the slice is valid for `len` events.
        let n = unsafe {
            libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, timeout_ms)
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n as usize)
    }
}

/// A periodic `timerfd` on the monotonic clock.
struct Ticker(i32);

impl Ticker {
    fn new(first: Duration, every: Duration) -> io::Result<Ticker> {
        // SAFETY: no pointers; the descriptor is owned by the returned value.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let spec = |d: Duration| libc::timespec {
            tv_sec: d.as_secs() as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        };
        let value = libc::itimerspec {
            it_interval: spec(every),
            it_value: spec(first.max(Duration::from_nanos(1))),
        };
        // SAFETY: `value` lives across the call; no old value is asked for.
        if unsafe { libc::timerfd_settime(fd, 0, &value, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Ticker(fd))
    }

    /// Expirations since the last call (0 if none).
    fn expirations(&self) -> u64 {
        let mut n = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `n`.
        let r = unsafe { libc::read(self.0, n.as_mut_ptr().cast(), 8) };
        if r == 8 {
            u64::from_ne_bytes(n)
        } else {
            0
        }
    }
}

/// One member: its socket, unparsed bytes, and what it has seen.
struct Member {
    tcp: TcpStream,
    buf: Vec<u8>,
    filled: usize,
    /// The sequence number it expects next.
    next: u64,
    received: u64,
    missing: u64,
    duplicated: u64,
    open: bool,
}

/// What every member's reading adds to.
struct Tally {
    start: Instant,
    /// First measured sequence number (the warm-up's are not measured).
    measured_from: u64,
    /// Latencies of measured deliveries, nanoseconds (capped at ~4.3 s).
    latencies: Vec<u32>,
    /// When the last measured delivery arrived, ns since start.
    last_delivery_ns: u64,
    pong_failures: u64,
}

impl Member {
    /// Reads what is there and accounts for every complete message.
    fn read_more(&mut self, tally: &mut Tally) -> Result<(), String> {
        loop {
            if self.filled == self.buf.len() {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
            match self.tcp.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Err("the node closed the connection".into()),
                Ok(n) => {
                    self.filled += n;
                    if self.filled < self.buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        let now = tally.start.elapsed().as_nanos() as u64;
        self.parse(now, tally)
    }

    fn parse(&mut self, now: u64, tally: &mut Tally) -> Result<(), String> {
        let mut at = 0;
        loop {
            let avail = &self.buf[at..self.filled];
            if avail.len() < 2 {
                break;
            }
            let (b0, b1) = (avail[0], avail[1]);
            if b1 & 0x80 != 0 {
                return Err("the node sent a masked frame".into());
            }
            let (header, len) = match b1 & 0x7F {
                126 if avail.len() >= 4 => (4, u16::from_be_bytes([avail[2], avail[3]]) as usize),
                127 => return Err("unexpected 64-bit frame length".into()),
                126 => break,
                n => (2, n as usize),
            };
            if avail.len() < header + len {
                break;
            }
            let body = &avail[header..header + len];
            match b0 & 0x0F {
                2 if b0 & 0x80 != 0 && len == 16 => {
                    let seq = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
                    let sent = u64::from_be_bytes(body[8..].try_into().expect("8 bytes"));
                    self.received += 1;
                    if seq == self.next {
                        self.next += 1;
                    } else if seq > self.next {
                        self.missing += seq - self.next;
                        self.next = seq + 1;
                    } else {
                        self.duplicated += 1;
                    }
                    if seq >= tally.measured_from {
                        let ns = now.saturating_sub(sent);
                        tally.latencies.push(ns.min(u32::MAX as u64) as u32);
                        tally.last_delivery_ns = tally.last_delivery_ns.max(now);
                    }
                }
                8 => return Err("the node sent a close frame".into()),
                9 => {
                    let pong = client_frame(10, body, [1, 2, 3, 4]);
                    if self.tcp.write(&pong).ok() != Some(pong.len()) {
                        tally.pong_failures += 1;
                    }
                }
                10 => {}
                op => return Err(format!("unexpected frame (opcode {op}, {len} bytes)")),
            }
            at += header + len;
        }
        self.buf.copy_within(at..self.filled, 0);
        self.filled -= at;
        Ok(())
    }
}

/// Where the measured window opened: its time (ns since start) and the
/// CPU seconds of the nodes (summed), Redis and this process then.
struct Window {
    start_ns: u64,
    nodes_cpu: Option<f64>,
    redis_cpu: Option<f64>,
    client_cpu: Option<f64>,
}

fn list(name: &str) -> Vec<String> {
    arg(name)
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn cpu_sum(pids: &[String]) -> Option<f64> {
    pids.iter().map(|p| cpu_seconds(p)).sum()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let nofile = raise_nofile();
    let nodes: Vec<SocketAddr> = list("nodes")
        .iter()
        .map(|a| a.parse().expect("--nodes must be ip:port,ip:port,..."))
        .collect();
    if nodes.is_empty() {
        fail("--nodes is required");
    }
    let setup = arg("setup").unwrap_or_else(|| format!("{} nodes", nodes.len()));
    let members: usize = num("members", 900);
    let rate: f64 = num("rate", 200.0);
    let warmup: f64 = num("warmup", 1.0);
    let duration: f64 = num("duration", 10.0);
    let drain: f64 = num("drain", 5.0);
    let publish_to: usize = num("publish-to", 0);
    let pids = list("pids");
    let redis_pid = arg("redis-pid");
    if members as u64 + 64 > nofile {
        fail(&format!(
            "RLIMIT_NOFILE {nofile} is too low for {members} members"
        ));
    }
    if rate.is_nan() || rate <= 0.0 || publish_to >= nodes.len() {
        fail("--rate must be > 0 and --publish-to a node index");
    }
    let warm_msgs = (warmup * rate).round() as u64;
    let total = warm_msgs + ((duration * rate).round() as u64).max(1);

    let ep = Epoll::new().unwrap_or_else(|e| fail(&format!("epoll: {e}")));
    let mut all = Vec::with_capacity(members);
    for i in 0..members {
        let addr = nodes[i % nodes.len()];
        let (tcp, left) = handshake(addr, "/")
            .unwrap_or_else(|e| fail(&format!("member {i} on {addr}: handshake: {e}")));
        let mut buf = vec![0u8; 4096.max(left.len())];
        buf[..left.len()].copy_from_slice(&left);
        ep.ctl(libc::EPOLL_CTL_ADD, tcp.as_raw_fd(), IN | HUP, i)
            .unwrap_or_else(|e| fail(&format!("epoll_ctl: {e}")));
        all.push(Member {
            tcp,
            filled: left.len(),
            buf,
            next: 0,
            received: 0,
            missing: 0,
            duplicated: 0,
            open: true,
        });
    }
    let (mut publisher, _) = handshake(nodes[publish_to], "/pub")
        .unwrap_or_else(|e| fail(&format!("publisher: handshake: {e}")));
    let pub_token = members;
    let tick_token = members + 1;
    ep.ctl(
        libc::EPOLL_CTL_ADD,
        publisher.as_raw_fd(),
        IN | HUP,
        pub_token,
    )
    .unwrap_or_else(|e| fail(&format!("epoll_ctl: {e}")));
    let ticker = Ticker::new(
        Duration::from_millis(100),
        Duration::from_secs_f64(1.0 / rate),
    )
    .unwrap_or_else(|e| fail(&format!("timerfd: {e}")));
    ep.ctl(libc::EPOLL_CTL_ADD, ticker.0, IN, tick_token)
        .unwrap_or_else(|e| fail(&format!("epoll_ctl: {e}")));

    let mut tally = Tally {
        start: Instant::now(),
        measured_from: warm_msgs,
        latencies: Vec::with_capacity(members * (total - warm_msgs) as usize),
        last_delivery_ns: 0,
        pong_failures: 0,
    };
    let mut mask_state: u32 = 0x9E37_79B9;
    // Publisher bytes the socket did not take yet.
    let mut out: Vec<u8> = Vec::new();
    let mut sent: u64 = 0;
    let mut max_late_ms: f64 = 0.0;
    let mut first_tick: Option<Instant> = None;
    let mut window: Option<Window> = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut lost: Vec<String> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    loop {
        if sent == total && drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + Duration::from_secs_f64(drain));
        }
        if let Some(deadline) = drain_deadline {
            if all.iter().all(|m| !m.open || m.next >= total) || Instant::now() > deadline {
                break;
            }
        }
        let n = ep
            .wait(&mut events, 50)
            .unwrap_or_else(|e| fail(&format!("epoll_wait: {e}")));
        for ev in &events[..n] {
            let token = ev.u64 as usize;
            if token == tick_token {
                let due = ticker.expirations();
                if due == 0 || sent == total {
                    continue;
                }
                let now = Instant::now();
                let first = *first_tick.get_or_insert(now);
                // How far behind the schedule this tick runs.
                let scheduled = first + Duration::from_secs_f64((sent + due - 1) as f64 / rate);
                max_late_ms =
                    max_late_ms.max(now.saturating_duration_since(scheduled).as_secs_f64() * 1e3);
                for _ in 0..due.min(total - sent) {
                    if sent == warm_msgs {
                        window = Some(Window {
                            start_ns: tally.start.elapsed().as_nanos() as u64,
                            nodes_cpu: cpu_sum(&pids),
                            redis_cpu: redis_pid.as_deref().and_then(cpu_seconds),
                            client_cpu: cpu_seconds("self"),
                        });
                    }
                    let mut payload = [0u8; 16];
                    payload[..8].copy_from_slice(&sent.to_be_bytes());
                    let ts = tally.start.elapsed().as_nanos() as u64;
                    payload[8..].copy_from_slice(&ts.to_be_bytes());
                    mask_state = mask_state
                        .wrapping_mul(1_664_525)
                        .wrapping_add(1_013_904_223);
                    out.extend_from_slice(&client_frame(2, &payload, mask_state.to_ne_bytes()));
                    sent += 1;
                }
                let was_pending = !out.is_empty();
                while !out.is_empty() {
                    match publisher.write(&out) {
                        Ok(0) => fail("publisher: write returned 0"),
                        Ok(n) => {
                            out.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => fail(&format!("publisher: write: {e}")),
                    }
                }
                if was_pending && !out.is_empty() {
                    ep.ctl(
                        libc::EPOLL_CTL_MOD,
                        publisher.as_raw_fd(),
                        IN | OUT | HUP,
                        pub_token,
                    )
                    .unwrap_or_else(|e| fail(&format!("epoll_ctl: {e}")));
                }
            } else if token == pub_token {
                if ev.events & OUT != 0 {
                    while !out.is_empty() {
                        match publisher.write(&out) {
                            Ok(0) => fail("publisher: write returned 0"),
                            Ok(n) => {
                                out.drain(..n);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => fail(&format!("publisher: write: {e}")),
                        }
                    }
                    if out.is_empty() {
                        ep.ctl(
                            libc::EPOLL_CTL_MOD,
                            publisher.as_raw_fd(),
                            IN | HUP,
                            pub_token,
                        )
                        .unwrap_or_else(|e| fail(&format!("epoll_ctl: {e}")));
                    }
                }
                if ev.events & (IN | HUP) != 0 {
                    // Nothing is expected on /pub; a close or EOF ends the run.
                    let mut scratch = [0u8; 256];
                    match publisher.read(&mut scratch) {
                        Ok(0) => fail("publisher: the node closed the connection"),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => fail(&format!("publisher: read: {e}")),
                    }
                }
            } else {
                let m = &mut all[token];
                if !m.open {
                    continue;
                }
                if let Err(e) = m.read_more(&mut tally) {
                    m.open = false;
                    let _ = ep.ctl(libc::EPOLL_CTL_DEL, m.tcp.as_raw_fd(), 0, token);
                    if lost.len() < 5 {
                        lost.push(format!("member {token}: {e}"));
                    }
                }
            }
        }
    }
    let end_ns = tally.start.elapsed().as_nanos() as u64;
    let node_cpu1 = cpu_sum(&pids);
    let redis_cpu1 = redis_pid.as_deref().and_then(cpu_seconds);
    let client_cpu1 = cpu_seconds("self");
    let Some(Window {
        start_ns: t0,
        nodes_cpu: node_cpu0,
        redis_cpu: redis_cpu0,
        client_cpu: client_cpu0,
    }) = window
    else {
        fail("the measured window never opened")
    };
    let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    let node_cpu = diff(node_cpu0, node_cpu1);
    let redis_cpu = diff(redis_cpu0, redis_cpu1);
    let client_cpu = diff(client_cpu0, client_cpu1);

    for m in &mut all {
        // What never arrived is missing too.
        m.missing += total.saturating_sub(m.next);
    }
    let missing: u64 = all.iter().map(|m| m.missing).sum();
    let duplicated: u64 = all.iter().map(|m| m.duplicated).sum();
    let max_missing = all.iter().map(|m| m.missing).max().unwrap_or(0);
    let max_duplicated = all.iter().map(|m| m.duplicated).max().unwrap_or(0);
    let closed = all.iter().filter(|m| !m.open).count();
    let deliveries = tally.latencies.len() as u64;
    // The window: first measured publication to its last delivery.
    let window_s = tally.last_delivery_ns.max(t0 + 1).saturating_sub(t0) as f64 / 1e9;
    let mut lat = std::mem::take(&mut tally.latencies);
    lat.sort_unstable();
    let valid = missing == 0 && duplicated == 0 && closed == 0;
    let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
    let error = if valid {
        String::new()
    } else {
        format!(
            ",\"error\":{:?}",
            format!(
                "{missing} missing, {duplicated} duplicated, {closed} connections lost {lost:?}"
            )
        )
    };
    println!(
        "{{\"mode\":\"redis-fanout\",\"setup\":{setup:?},\"nodes\":{},\"members\":{members},\"rate\":{rate},\
         \"published\":{total},\"measured_msgs\":{},\"deliveries\":{deliveries},\"seconds\":{window_s:.3},\
         \"deliveries_per_s\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1},\
         \"missing\":{missing},\"duplicated\":{duplicated},\"max_missing_per_member\":{max_missing},\
         \"max_duplicated_per_member\":{max_duplicated},\"connections_lost\":{closed},\
         \"publisher_max_late_ms\":{max_late_ms:.2},\"node_cpu_s\":{},\"redis_cpu_s\":{},\"client_cpu_s\":{},\
         \"total_s\":{:.3},\"valid\":{valid}{error}}}",
        nodes.len(),
        total - warm_msgs,
        deliveries as f64 / window_s,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        lat.last().map_or(f64::NAN, |&v| v as f64 / 1000.0),
        opt(node_cpu),
        opt(redis_cpu),
        opt(client_cpu),
        end_ns as f64 / 1e9,
    );
    std::process::exit(if valid { 0 } else { 1 });
}
