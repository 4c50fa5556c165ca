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

/// Options shared by every runtime's version.
pub(crate) struct Options {
    pub(crate) addr: String,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) stream: bool,
}

fn main() {
    let mut runtime = "tokio".to_owned();
    let mut options = Options {
        addr: "127.0.0.1:9001".to_owned(),
        heartbeat: None,
        stream: false,
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
            "--heartbeat" => {
                let secs: f64 = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--heartbeat takes seconds"));
                options.heartbeat = Some(Duration::from_secs_f64(secs));
            }
            "--stream" => options.stream = true,
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
        eprintln!("echo: {e}");
        std::process::exit(1);
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("echo: {problem}");
    }
    eprintln!("usage: echo [--runtime tokio|async-std|smol] [--addr HOST:PORT] [--heartbeat SECS] [--stream]");
    std::process::exit(2);
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
