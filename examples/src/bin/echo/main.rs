//! `echo`: every text and binary message comes back as one frame, on any
//! path. Also the conformance testee server and the benchmark server: limits
//! allow 16 MiB messages, and it sends nothing the peer did not ask for
//! unless `--heartbeat SECS` is given.
//!
//! With `--stream`, messages are echoed chunk by chunk as they arrive
//! (each chunk one frame), never held whole: any size passes, and a peer
//! that stops reading holds at most the 64 KiB read window and the 64 KiB
//! write limit of its connection.
//!
//! ```text
//! cargo run -p wavecast-examples --bin echo -- [--runtime tokio|async-std|smol] [--addr 127.0.0.1:9001] [--heartbeat SECS] [--stream]
//! ```

mod on_async_std;
mod on_smol;
mod on_tokio;

use std::time::Duration;

use clap::Parser;
use wavecast_examples::{seconds, Runtime};

/// Echoes every WebSocket message back as one frame, on any path: the
/// conformance testee and benchmark server. Messages up to 16 MiB; it sends
/// nothing the peer did not ask for unless --heartbeat is given.
#[derive(Parser)]
#[command(name = "echo", version)]
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
    /// The address to listen on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9001")]
    pub(crate) addr: String,
    /// Ping every SECS seconds and drop a peer silent for three times that
    /// [default: off].
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub(crate) heartbeat: Option<Duration>,
    /// Echo each chunk as it arrives (one frame each) instead of whole
    /// messages: any size passes and no message is held whole.
    #[arg(long)]
    pub(crate) stream: bool,
}

fn main() {
    let Cli { runtime, options } = Cli::parse();
    let result = match runtime {
        Runtime::Tokio => on_tokio::run(options),
        Runtime::AsyncStd => on_async_std::run(options),
        Runtime::Smol => on_smol::run(options),
    };
    if let Err(e) = result {
        eprintln!("echo: {e}");
        std::process::exit(1);
    }
}

/// The connection settings of the echo server on every runtime.
pub(crate) fn config(options: &Options) -> wavecast_tokio::Config {
    let config = wavecast_tokio::Config::default()
        .with_max_message_size(16 << 20)
        .with_max_frame_size(16 << 20)
        .with_stream_messages(options.stream);
    match options.heartbeat {
        Some(every) => config
            .with_heartbeat_interval(Some(every))
            .with_idle_timeout(Some(every * 3)),
        None => config,
    }
}

/// Echoes until the connection ends: whole messages, or (`stream`) each
/// chunk as it arrives, so a message of any size passes through one window.
/// The same on every runtime: the handle type is the runtime layer's.
pub(crate) async fn echo(mut ws: wavecast_tokio::WebSocket, stream: bool) {
    if stream {
        while let Some(Ok(chunk)) = ws.recv_chunk().await {
            if ws.send_chunk(chunk.data, chunk.last).await.is_err() {
                break;
            }
        }
    } else {
        while let Some(Ok(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }
}
