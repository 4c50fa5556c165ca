//! `client`: connects to a WebSocket URL, sends the current time every
//! second and prints everything it receives.
//!
//! ```text
//! cargo run -p wavecast-examples --bin client -- [--runtime tokio|async-std|smol] [--url ws://127.0.0.1:9001/] [--count N]
//! ```

mod on_async_std;
mod on_smol;
mod on_tokio;

use std::time::{SystemTime, UNIX_EPOCH};

/// Options shared by every runtime's version.
pub(crate) struct Options {
    pub(crate) url: String,
    /// Stop after sending this many messages (and reading their replies).
    pub(crate) count: Option<u64>,
}

fn main() {
    let mut runtime = "tokio".to_owned();
    let mut options = Options {
        url: "ws://127.0.0.1:9001/".to_owned(),
        count: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--runtime" => runtime = value(),
            "--url" => options.url = value(),
            "--count" => {
                options.count = Some(
                    value()
                        .parse()
                        .unwrap_or_else(|_| usage("--count takes a number")),
                )
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
        eprintln!("client: {e}");
        std::process::exit(1);
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("client: {problem}");
    }
    eprintln!(
        "usage: client [--runtime tokio|async-std|smol] [--url ws://HOST:PORT/PATH] [--count N]"
    );
    std::process::exit(2);
}

/// The message sent every second: the current time, like the classic
/// browser snippet.
pub(crate) fn now_text() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("time {ms}")
}
