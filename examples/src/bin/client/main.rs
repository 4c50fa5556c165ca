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

use clap::Parser;
use wavecast_examples::Runtime;

/// Connects to a WebSocket server, sends the current time every second and
/// prints everything it receives, until Ctrl-C or the server closes.
#[derive(Parser)]
#[command(name = "client", version)]
struct Cli {
    /// The async runtime to run on.
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    runtime: Runtime,
    #[command(flatten)]
    options: Options,
}

/// Options shared by every runtime's version.
#[derive(clap::Args)]
pub(crate) struct Options {
    /// The server to connect to.
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:9001/")]
    pub(crate) url: String,
    /// Stop after sending N messages and reading as many replies
    /// [default: run until Ctrl-C].
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
}

fn main() {
    let Cli { runtime, options } = Cli::parse();
    let result = match runtime {
        Runtime::Tokio => on_tokio::run(options),
        Runtime::AsyncStd => on_async_std::run(options),
        Runtime::Smol => on_smol::run(options),
    };
    if let Err(e) = result {
        eprintln!("client: {e}");
        std::process::exit(1);
    }
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
