//! A `redis-server` started by a test on a free loopback port, without
//! persistence, so that a restart loses the history as a crash would.
//! `$WAVECAST_REDIS_SERVER` names the binary (default: `redis-server` on
//! the `PATH`; `.ci/redis` installs Debian's).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of this test, killed on drop.
pub(crate) struct RedisServer {
    child: Option<Child>,
    pub(crate) port: u16,
}

impl RedisServer {
    pub(crate) fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = RedisServer { child: None, port };
        server.restart();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server on its port (again) and waits until it answers.
    pub(crate) fn restart(&mut self) {
        let binary =
            std::env::var("WAVECAST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{binary} could not be started ({e}); .ci/redis installs Debian's redis-server"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = [0u8; 7];
        tcp.write_all(b"PING\r\n").is_ok()
            && tcp.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }

    /// Runs one command on the server and returns its raw reply: a whole
    /// bulk string, or the first line of any other reply (the tests send
    /// no commands answering arrays).
    pub(crate) fn command(&self, args: &[&str]) -> String {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to Redis");
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        tcp.write_all(request.as_bytes()).unwrap();
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = tcp.read(&mut chunk).expect("a reply");
            assert!(n > 0, "Redis closed before replying");
            reply.extend_from_slice(&chunk[..n]);
            let Some(line_end) = reply.windows(2).position(|w| w == b"\r\n") else {
                continue;
            };
            let complete = match reply[0] {
                b'$' => {
                    let len: i64 = std::str::from_utf8(&reply[1..line_end])
                        .unwrap()
                        .parse()
                        .unwrap();
                    len < 0 || reply.len() >= line_end + 2 + len as usize + 2
                }
                _ => true,
            };
            if complete {
                return String::from_utf8_lossy(&reply).into_owned();
            }
        }
    }

    /// The ids of the clients connected now (but the one asking).
    pub(crate) fn client_ids(&self) -> Vec<u64> {
        self.command(&["CLIENT", "LIST"])
            .lines()
            .filter(|line| !line.contains("cmd=client|list"))
            .filter_map(|line| line.split_whitespace().find_map(|f| f.strip_prefix("id=")))
            .filter_map(|id| id.parse().ok())
            .collect()
    }

    /// Kills the server (as a crash would: nothing is saved).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
