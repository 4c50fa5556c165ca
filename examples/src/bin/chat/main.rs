//! `chat`: the main example. One port serves
//!
//! - `GET /`: the chat page (no build step, no CDN);
//! - `ws://…/ws/<room>?nick=<name>`: a room; every member, the sender too,
//!   receives each message as JSON, and `join`/`leave` events with the
//!   member list;
//! - `GET /sse/<room>`: the same room as Server-Sent Events, for listeners;
//! - `ws://…/websocket`: a plain echo.
//!
//! Heartbeats are on, requests for a host name the server does not serve
//! get 421 (DNS rebinding), browsers from other origins get 403, and
//! connections are capped. It answers to `localhost`, `127.0.0.1`, `[::1]`
//! and the host of `--addr`; reaching it by another name (a LAN address, a
//! DNS name) needs `--allow-host NAME` for each.
//!
//! ```text
//! cargo run -p wavecast-examples --bin chat -- [--runtime tokio|async-std|smol] [--addr 127.0.0.1:60000] [--allow-host HOST[:PORT]]...
//! ```

mod chat;
mod on_async_std;
mod on_smol;
mod on_tokio;

/// Options shared by every runtime's version.
pub(crate) struct Options {
    pub(crate) addr: String,
    pub(crate) max_connections: usize,
    /// Host names to answer to besides loopback and the listen address.
    pub(crate) allow_hosts: Vec<String>,
}

fn main() {
    let mut runtime = "tokio".to_owned();
    let mut options = Options {
        addr: "127.0.0.1:60000".to_owned(),
        max_connections: 1000,
        allow_hosts: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--runtime" => runtime = value(),
            "--addr" => options.addr = value(),
            "--allow-host" => options.allow_hosts.push(value()),
            "--max-connections" => {
                options.max_connections = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--max-connections takes a number"))
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let result = match runtime.as_str() {
        "tokio" => on_tokio::run(options),
        "async-std" => on_async_std::run(options),
        "smol" => on_smol::run(options),
        other => usage(&format!("unknown runtime {other}")),
    };
    if let Err(e) = result {
        eprintln!("chat: {e}");
        std::process::exit(1);
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("chat: {problem}");
    }
    eprintln!(
        "usage: chat [--runtime tokio|async-std|smol] [--addr HOST:PORT] [--max-connections N] \
         [--allow-host HOST[:PORT]]..."
    );
    std::process::exit(2);
}
