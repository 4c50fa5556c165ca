//! Running the example binaries as child processes: free ports, waiting for
//! them to listen, plain HTTP by hand, SIGINT and a clean exit.

#![allow(dead_code)] // Each test file uses part of this module.

pub(crate) mod chat;
pub(crate) mod redis;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The runtimes every binary takes with `--runtime`.
pub(crate) const RUNTIMES: [&str; 3] = ["tokio", "async-std", "smol"];

/// A loopback address with a port that was free a moment ago: bind port 0,
/// read the port, release it.
pub(crate) fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").to_string()
}

/// A running example binary, killed on drop if still alive.
pub(crate) struct Program {
    pub(crate) name: &'static str,
    child: Child,
    /// Lines the program printed, as they arrive.
    lines: mpsc::Receiver<String>,
    /// Everything printed so far.
    pub(crate) printed: Vec<String>,
}

impl Program {
    /// Starts `exe` with `args` and waits (up to 10 s) for its first line
    /// of output, which every server prints once it listens, naming the
    /// `--addr` it was given.
    pub(crate) fn start_server(name: &'static str, exe: &str, args: &[&str]) -> Program {
        let mut program = Program::spawn(name, exe, args);
        let first = program.next_line(Duration::from_secs(10));
        let first = first.unwrap_or_else(|| panic!("{name} {args:?} printed nothing"));
        // It says where it listens: the address it was given.
        if let Some(at) = args.iter().position(|a| *a == "--addr") {
            let addr = args[at + 1];
            assert!(first.contains(addr), "{name} printed {first:?}, not {addr}");
        }
        program
    }

    /// Starts `exe` with `args`, stdout captured.
    pub(crate) fn spawn(name: &'static str, exe: &str, args: &[&str]) -> Program {
        let mut child = Command::new(exe)
            .args(args)
            // The chat's log lines are checked as it logs by default.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {exe}: {e}"));
        let lines = forward_lines(child.stdout.take().expect("stdout"));
        Program {
            name,
            child,
            lines,
            printed: Vec::new(),
        }
    }

    /// The next line printed, if one comes within `wait`.
    pub(crate) fn next_line(&mut self, wait: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(wait).ok()?;
        self.printed.push(line.clone());
        Some(line)
    }

    /// Waits up to `wait` for a line containing `wanted` (or finds one
    /// among those already printed), panicking with everything printed if
    /// none comes.
    pub(crate) fn expect_line(&mut self, wanted: &str, wait: Duration) {
        let deadline = Instant::now() + wait;
        while !self.printed.iter().any(|l| l.contains(wanted)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.next_line(left).is_none() {
                panic!("{} printed no {wanted:?}: {:?}", self.name, self.printed);
            }
        }
    }

    /// Waits up to `wait` for the program to exit by itself and returns
    /// whether it succeeded; everything it printed is in `printed`.
    pub(crate) fn wait_exit(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Collect what is left of its output.
                while let Some(_line) = self.next_line(Duration::from_millis(200)) {}
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {wait:?}; printed {:?}",
                self.name,
                self.printed
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id, for signals.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the signal `name` (`STOP`, `CONT`, ...) with `kill`.
    pub(crate) fn signal(&self, name: &str) {
        // `kill` rather than libc: the workspace forbids `unsafe`.
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} {pid}");
    }

    /// Kills the process with SIGKILL (a crash: no cleanup) and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGINT (what Ctrl-C sends) and asserts a clean exit: status 0
    /// within 5 s, after saying it is shutting down.
    pub(crate) fn interrupt_and_check(mut self) {
        // `kill -INT` rather than libc: the workspace forbids `unsafe`.
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -INT {pid}");
        let ok = self.wait_exit(Duration::from_secs(5));
        assert!(
            ok,
            "{} exited with failure after SIGINT; printed {:?}",
            self.name, self.printed
        );
        assert!(
            self.printed.iter().any(|l| l.contains("shutting down")),
            "{} did not say it was shutting down: {:?}",
            self.name,
            self.printed
        );
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards each line of `stdout` to a channel from a thread.
fn forward_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Sends `head` (a full HTTP/1.1 request head) and reads the response until
/// the server closes or 5 s pass; returns the status code and the whole
/// response text.
pub(crate) fn http(addr: &str, head: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(head.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = tcp.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// `GET path` with `Connection: close`, plus `extra` header lines.
pub(crate) fn get(addr: &str, path: &str, extra: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n"),
    )
}

/// A current-thread tokio runtime for the test's own clients.
pub(crate) fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `future` on `R`'s clock, failing the test after `limit`.
pub(crate) async fn within<R: wavecast_runtime::Runtime, T>(
    limit: Duration,
    future: impl std::future::Future<Output = T>,
) -> T {
    use std::task::Poll;
    use wavecast_runtime::Timer;
    let mut future = std::pin::pin!(future);
    let mut timer = R::timer(R::now() + limit);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = future.as_mut().poll(cx) {
            return Poll::Ready(value);
        }
        if timer.poll_fired(cx).is_ready() {
            panic!("timed out after {limit:?}");
        }
        Poll::Pending
    })
    .await
}

/// A fresh self-signed `localhost` certificate: a server config offering
/// `alpn`, and a client config that trusts exactly that certificate (no
/// ALPN of its own, so the client picks its offer).
#[cfg(feature = "rustls")]
pub(crate) fn loopback_tls(
    alpn: &[&[u8]],
) -> (
    std::sync::Arc<wavecast_runtime::rustls::ServerConfig>,
    std::sync::Arc<wavecast_runtime::rustls::ClientConfig>,
) {
    use std::sync::Arc;
    use wavecast_runtime::rustls;
    use wavecast_runtime::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}
