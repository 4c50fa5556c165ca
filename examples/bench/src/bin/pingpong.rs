//! `pingpong`: the echo load the peers publish their numbers with. Each of
//! `--conns` connections has exactly one message in flight: it sends one
//! binary frame of `--size` bytes and sends the next only after the whole
//! echo is back. No pipelining, no batching on the client side.
//!
//! The client is one thread on one `epoll` instance (level-triggered),
//! non-blocking sockets, and one pre-masked frame per connection sent again
//! and again, so it costs about one `read` and one `write` per message and
//! stays far from saturating its core (the JSON line reports its CPU
//! share: `client_cpu_s` over `seconds`). Every echo is still compared byte
//! for byte with what was sent; a mismatch, a close, a dropped connection or
//! an echo that does not come back within 10 s after the load stops makes
//! the run invalid (exit 1).
//!
//! `--warmup` seconds, then `--duration` seconds measured; with `--pid`, the
//! server's utime+stime is read from `/proc/<pid>/stat` around the window,
//! so `msgs_per_server_cpu_s` is what one server core does per second of
//! its own time. Prints one JSON line in the shape `loadgen` uses, so
//! `run.sh` tabulates both.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use wavecast_bench::{arg, client_frame, cpu_seconds, num, raise_nofile};

/// The RFC 6455 sample key and its accept value (servers accept repeated
/// keys; a fixed pair lets every answer be checked).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

struct Conn {
    tcp: TcpStream,
    /// The masked client frame, the same bytes for every message.
    frame: Vec<u8>,
    /// What the echo's payload must be.
    payload: Vec<u8>,
    /// Bytes of `frame` written for the message in flight.
    written: usize,
    /// Received bytes not yet parsed, `buf[..filled]`.
    buf: Vec<u8>,
    filled: usize,
    /// Payload bytes of the current echo checked so far (it may come in
    /// several frames).
    checked: usize,
    /// Registered for `EPOLLOUT` (a partial write is pending).
    wants_out: bool,
    in_flight: bool,
}

/// A splitmix64 step: payload bytes and mask keys, different every run.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Connects (retrying while the server starts) and upgrades, blocking.
/// Returns the socket and any bytes that arrived after the response head.
fn handshake(addr: SocketAddr) -> io::Result<(TcpStream, Vec<u8>)> {
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
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
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

const IN: u32 = libc::EPOLLIN as u32;
const OUT: u32 = libc::EPOLLOUT as u32;

impl Conn {
    /// Starts the next message: writes what the socket takes now and asks
    /// for `EPOLLOUT` if some of it is left.
    fn send(&mut self, ep: &Epoll, token: usize) -> io::Result<()> {
        self.written = 0;
        self.checked = 0;
        self.in_flight = true;
        self.write_more(ep, token)
    }

    fn write_more(&mut self, ep: &Epoll, token: usize) -> io::Result<()> {
        while self.written < self.frame.len() {
            match self.tcp.write(&self.frame[self.written..]) {
                Ok(0) => return Err(io::Error::other("write returned 0")),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let wants = self.written < self.frame.len();
        if wants != self.wants_out {
            let events = if wants { IN | OUT } else { IN };
            ep.ctl(libc::EPOLL_CTL_MOD, self.tcp.as_raw_fd(), events, token)?;
            self.wants_out = wants;
        }
        Ok(())
    }

    /// Reads what is there and checks every complete frame. Returns how many
    /// echoes completed (0 or 1: one message is in flight).
    fn read_more(&mut self) -> Result<u64, String> {
        loop {
            if self.filled == self.buf.len() {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
            match self.tcp.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Err("the server closed the connection".into()),
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
        self.parse()
    }

    fn parse(&mut self) -> Result<u64, String> {
        let mut done = 0;
        let mut at = 0;
        loop {
            let avail = &self.buf[at..self.filled];
            if avail.len() < 2 {
                break;
            }
            let (b0, b1) = (avail[0], avail[1]);
            if b1 & 0x80 != 0 {
                return Err("the server sent a masked frame".into());
            }
            let (header, len) = match b1 & 0x7F {
                126 if avail.len() >= 4 => (4, u16::from_be_bytes([avail[2], avail[3]]) as usize),
                127 if avail.len() >= 10 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&avail[2..10]);
                    (10, u64::from_be_bytes(n) as usize)
                }
                126 | 127 => break,
                n => (2, n as usize),
            };
            if len > self.payload.len() + 125 {
                return Err(format!(
                    "frame of {len} bytes for a {} byte echo",
                    self.payload.len()
                ));
            }
            if avail.len() < header + len {
                break;
            }
            let body = &avail[header..header + len];
            let fin = b0 & 0x80 != 0;
            match b0 & 0x0F {
                // Data: the first frame of the echo or a continuation.
                op @ (0 | 2) => {
                    if !self.in_flight || (op == 2) != (self.checked == 0) && len > 0 {
                        return Err(format!("unexpected frame (opcode {op})"));
                    }
                    let end = self.checked + len;
                    if end > self.payload.len() || self.payload[self.checked..end] != *body {
                        return Err("the echo differs from what was sent".into());
                    }
                    self.checked = end;
                    if fin {
                        if self.checked != self.payload.len() {
                            return Err("the echo is shorter than what was sent".into());
                        }
                        self.in_flight = false;
                        done += 1;
                    }
                }
                8 => return Err("the server sent a close frame".into()),
                9 | 10 => {}
                op => return Err(format!("unexpected opcode {op}")),
            }
            at += header + len;
        }
        self.buf.copy_within(at..self.filled, 0);
        self.filled -= at;
        Ok(done)
    }
}

fn fail(server: &str, why: &str) -> ! {
    println!("{{\"mode\":\"throughput\",\"client\":\"pingpong\",\"server\":\"{server}\",\"valid\":false,\"error\":{why:?}}}");
    std::process::exit(1);
}

fn main() {
    let nofile = raise_nofile();
    let addr: SocketAddr = arg("addr")
        .unwrap_or_else(|| "127.0.0.1:9001".into())
        .parse()
        .expect("--addr must be ip:port");
    let server = arg("server").unwrap_or_else(|| "server".into());
    let conns: usize = num("conns", 100);
    let size: usize = num("size", 20);
    let warmup: f64 = num("warmup", 1.0);
    let duration: f64 = num("duration", 5.0);
    let pid = arg("pid");
    if conns as u64 + 64 > nofile {
        fail(
            &server,
            &format!("RLIMIT_NOFILE {nofile} is too low for {conns} connections"),
        );
    }

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let ep = Epoll::new().unwrap_or_else(|e| fail(&server, &format!("epoll: {e}")));
    let mut all = Vec::with_capacity(conns);
    for token in 0..conns {
        let (tcp, left) =
            handshake(addr).unwrap_or_else(|e| fail(&server, &format!("handshake: {e}")));
        let payload: Vec<u8> = (0..size).map(|_| splitmix(&mut seed) as u8).collect();
        let mask = (splitmix(&mut seed) as u32).to_ne_bytes();
        let mut buf = vec![0u8; (size + 14).clamp(4096, 64 << 10)];
        if left.len() > buf.len() {
            buf.resize(left.len(), 0);
        }
        buf[..left.len()].copy_from_slice(&left);
        ep.ctl(libc::EPOLL_CTL_ADD, tcp.as_raw_fd(), IN, token)
            .unwrap_or_else(|e| fail(&server, &format!("epoll_ctl: {e}")));
        all.push(Conn {
            tcp,
            frame: client_frame(2, &payload, mask),
            payload,
            written: 0,
            filled: left.len(),
            buf,
            checked: 0,
            wants_out: false,
            in_flight: false,
        });
    }
    for (token, c) in all.iter_mut().enumerate() {
        c.send(&ep, token)
            .unwrap_or_else(|e| fail(&server, &format!("write: {e}")));
    }

    let start = Instant::now();
    let measure_at = start + Duration::from_secs_f64(warmup);
    let stop_at = measure_at + Duration::from_secs_f64(duration);
    let mut received: u64 = 0;
    let mut sent: u64 = conns as u64;
    let mut window: Option<(u64, Option<f64>, Option<f64>, Instant)> = None;
    let mut result: Option<(u64, f64, Option<f64>, Option<f64>)> = None;
    let mut drain_deadline = None;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    loop {
        let now = Instant::now();
        if window.is_none() && now >= measure_at {
            window = Some((
                received,
                pid.as_deref().and_then(cpu_seconds),
                cpu_seconds("self"),
                now,
            ));
        }
        if result.is_none() && now >= stop_at {
            let (m0, s0, c0, t0) = window.expect("the window opened before it closed");
            let s1 = pid.as_deref().and_then(cpu_seconds);
            let c1 = cpu_seconds("self");
            result = Some((
                received - m0,
                (now - t0).as_secs_f64(),
                s0.zip(s1).map(|(a, b)| b - a),
                c0.zip(c1).map(|(a, b)| b - a),
            ));
            drain_deadline = Some(now + Duration::from_secs(10));
        }
        if result.is_some() && received == sent {
            break;
        }
        if drain_deadline.is_some_and(|d| now > d) {
            fail(
                &server,
                &format!("{} echoes never came back", sent - received),
            );
        }
        let timeout = if window.is_none() || result.is_none() {
            5
        } else {
            50
        };
        let n = ep
            .wait(&mut events, timeout)
            .unwrap_or_else(|e| fail(&server, &format!("epoll_wait: {e}")));
        for ev in &events[..n] {
            let token = ev.u64 as usize;
            let flags = ev.events;
            let c = &mut all[token];
            if flags & OUT != 0 {
                c.write_more(&ep, token)
                    .unwrap_or_else(|e| fail(&server, &format!("write: {e}")));
            }
            if flags & (IN | libc::EPOLLHUP as u32 | libc::EPOLLERR as u32) != 0 {
                let done = c
                    .read_more()
                    .unwrap_or_else(|e| fail(&server, &format!("conn {token}: {e}")));
                received += done;
                if done > 0 && result.is_none() {
                    c.send(&ep, token)
                        .unwrap_or_else(|e| fail(&server, &format!("write: {e}")));
                    sent += 1;
                }
            }
        }
    }
    let (msgs, secs, server_cpu, client_cpu) = result.expect("measured");
    let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
    let per_cpu = server_cpu
        .filter(|c| *c > 0.0)
        .map_or("null".to_string(), |c| format!("{:.0}", msgs as f64 / c));
    println!(
        "{{\"mode\":\"throughput\",\"client\":\"pingpong\",\"server\":\"{server}\",\"conns\":{conns},\
         \"size\":{size},\"kind\":\"binary\",\"inflight\":1,\"seconds\":{secs:.3},\"messages\":{msgs},\
         \"msgs_per_s\":{:.0},\"server_cpu_s\":{},\"msgs_per_server_cpu_s\":{per_cpu},\
         \"client_cpu_s\":{},\"sent_total\":{sent},\"received_total\":{received},\"valid\":true}}",
        msgs as f64 / secs,
        opt(server_cpu),
        opt(client_cpu),
    );
}
