//! `stream-check`: sends one message of any size through an echo server
//! chunk by chunk and checks that the same bytes come back, reading the
//! echo while it sends. Neither end holds the message: the client sends
//! from a generator (`send_reader`) and hashes the echo as it arrives
//! (`next_message`), so a 4 GiB message costs this process a few windows.
//! `.ci/stream` runs it against `echo --stream` on every runtime and checks
//! the server's peak memory.
//!
//! With --stall N, it instead opens N connections that each send a
//! message of `--bytes` and never read the echo, holds them for
//! `--hold SECS` (default 5) and leaves: what the server holds for peers
//! that do not read.
//!
//! ```text
//! cargo run -p wavecast-examples --bin stream-check -- [--url ws://127.0.0.1:9001/] [--bytes N] [--text] [--deflate] [--stall N [--hold SECS]]
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_io::AsyncRead;
use wavecast_examples::seconds;
use wavecast_tokio::{ClientRequest, CloseCode, Config};

/// Sends one message of any size through an echo server chunk by chunk
/// (from a generator, reading the echo while it sends) and checks that the
/// same bytes come back. With --stall N, instead opens N peers that send
/// and never read the echo, holds them, and leaves.
#[derive(Parser)]
#[command(name = "stream-check", version)]
struct Options {
    /// The echo server to send through (echo --stream).
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:9001/")]
    url: String,
    /// The size of the message, in bytes.
    #[arg(long, value_name = "N", default_value_t = 1 << 30)]
    bytes: u64,
    /// Send a text message (UTF-8 lines) instead of binary.
    #[arg(long)]
    text: bool,
    /// Offer permessage-deflate, and fail if the server does not agree.
    #[arg(long)]
    deflate: bool,
    /// Open N peers that send --bytes each and never read (0: check the
    /// echo instead).
    #[arg(long, value_name = "N", default_value_t = 0)]
    stall: usize,
    /// How long --stall holds its peers, in seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds)]
    hold: Duration,
}

fn main() {
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = if options.stall > 0 {
        runtime.block_on(stall(&options))
    } else {
        runtime.block_on(run(&options))
    };
    if let Err(e) = result {
        eprintln!("stream-check: FAILED: {e}");
        std::process::exit(1);
    }
}

fn config(options: &Options) -> Config {
    let config = Config::default().with_stream_messages(true);
    if options.deflate {
        config
    } else {
        config.with_deflate(None)
    }
}

/// Peers that send and never read: each sends until the server stops
/// taking its bytes (its echo is not read, so the server's output fills
/// and it stops reading), then all wait.
async fn stall(options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let mut held = Vec::new();
    for _ in 0..options.stall {
        let (request, _) = ClientRequest::from_url(&options.url)?;
        let (ws, _) = wavecast_tokio::connect_with(&options.url, request, config(options))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", options.url))?;
        let (tx, rx) = ws.split();
        let source = Source::new(options.bytes, options.text);
        let text = options.text;
        let sending = tokio::spawn(async move {
            let _ = tx.send_reader(text, source).await;
            tx
        });
        held.push((sending, rx));
    }
    tokio::time::sleep(options.hold).await;
    let finished = held.iter().filter(|(s, _)| s.is_finished()).count();
    println!(
        "stream-check: held {} peers that never read for {:.1} s; {finished} of them got their whole {} MiB out",
        options.stall,
        options.hold.as_secs_f64(),
        options.bytes >> 20
    );
    Ok(())
}

async fn run(options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let config = config(options);
    let (request, _) = ClientRequest::from_url(&options.url)?;
    let (ws, response) = wavecast_tokio::connect_with(&options.url, request, config)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", options.url))?;
    let negotiated = response
        .headers
        .get("sec-websocket-extensions")
        .is_some_and(|e| e.contains("permessage-deflate"));
    if options.deflate && !negotiated {
        return Err("the server did not agree to permessage-deflate".into());
    }
    let (tx, mut rx) = ws.split();
    let started = Instant::now();
    let receive = async {
        let mut message = rx
            .next_message()
            .await
            .ok_or("the connection closed before the echo")??;
        if message.is_text() != options.text {
            return Err("the echo came back as the other kind".into());
        }
        let mut hash = Hash::default();
        let mut chunks = 0u64;
        while let Some(chunk) = message.chunk().await {
            hash.update(&chunk?);
            chunks += 1;
        }
        drop(message);
        Ok::<_, Box<dyn std::error::Error>>((hash, chunks))
    };
    let send = async {
        let sent = tx
            .send_reader(options.text, Source::new(options.bytes, options.text))
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(sent)
    };
    let (received, sent) = tokio::join!(receive, send);
    let (hash, chunks) = received?;
    let sent = sent?;
    let seconds = started.elapsed().as_secs_f64();
    let expected = Source::digest(options.bytes, options.text);
    if sent != options.bytes || hash != expected {
        return Err(format!(
            "sent {sent} of {} bytes; echo {} bytes (hash {:x}), expected {} bytes (hash {:x})",
            options.bytes, hash.len, hash.value, expected.len, expected.value
        )
        .into());
    }
    let _ = tx.close(CloseCode::NORMAL, "done").await;
    println!(
        "stream-check: {} MiB {} {}echoed intact in {seconds:.1} s ({:.0} MiB/s each way, {chunks} chunks back)",
        options.bytes >> 20,
        if options.text { "text" } else { "binary" },
        if negotiated { "compressed " } else { "" },
        options.bytes as f64 / (1 << 20) as f64 / seconds,
    );
    Ok(())
}

/// A running FNV-1a hash and byte count.
#[derive(Debug, PartialEq, Eq)]
struct Hash {
    value: u64,
    len: u64,
}

impl Default for Hash {
    fn default() -> Hash {
        Hash {
            value: 0xcbf2_9ce4_8422_2325,
            len: 0,
        }
    }
}

impl Hash {
    fn update(&mut self, bytes: &[u8]) {
        let mut h = self.value;
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        self.value = h;
        self.len += bytes.len() as u64;
    }
}

/// `len` generated bytes: random words for binary, or lines of ASCII text
/// with a three-byte character now and then (compressible, and cut
/// inside code points by the 64 KiB reads).
struct Source {
    left: u64,
    state: u64,
    text: bool,
    line: u64,
}

impl Source {
    fn new(len: u64, text: bool) -> Source {
        Source {
            left: len,
            state: 0x9e37_79b9_7f4a_7c15,
            text,
            line: 0,
        }
    }

    /// What a source of `len` bytes hashes to, generated again.
    fn digest(len: u64, text: bool) -> Hash {
        let mut source = Source::new(len, text);
        let mut hash = Hash::default();
        let mut buf = vec![0u8; 64 << 10];
        while source.left > 0 {
            let n = source.fill(&mut buf);
            hash.update(&buf[..n]);
        }
        hash
    }

    fn fill(&mut self, buf: &mut [u8]) -> usize {
        let n = (buf.len() as u64).min(self.left) as usize;
        let buf = &mut buf[..n];
        if self.text {
            for byte in buf.iter_mut() {
                // "line 123 ✓\n"-like text: a digit pattern, a check mark.
                let i = self.line % 24;
                *byte = match i {
                    20 => 0xe2,
                    21 => 0x9c,
                    22 => 0x93,
                    23 => b'\n',
                    _ => b'a' + ((self.line / 24 + i) % 26) as u8,
                };
                self.line += 1;
            }
        } else {
            for word in buf.chunks_mut(8) {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                word.copy_from_slice(&self.state.to_le_bytes()[..word.len()]);
            }
        }
        self.left -= n as u64;
        n
    }
}

impl AsyncRead for Source {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.get_mut().fill(buf)))
    }
}
