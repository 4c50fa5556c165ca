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

    /// Runs one command on the server and returns its raw reply (the first
    /// read's worth: the tests send commands with short answers).
    pub(crate) fn command(&self, args: &[&str]) -> String {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to Redis");
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        tcp.write_all(request.as_bytes()).unwrap();
        let mut reply = [0u8; 512];
        let n = tcp.read(&mut reply).expect("a reply");
        String::from_utf8_lossy(&reply[..n]).into_owned()
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
