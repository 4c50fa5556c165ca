//! `chat-crowd`: what a crowd joining one chat room costs the chat example.
//!
//! Opens `--members N` WebSocket members on `/ws/<room>?nick=m<i>` of a
//! running `chat` server (`--concurrency C` handshakes at a time, default
//! 64), each reading and counting every frame the server sends. After the
//! last join it waits until no member has received anything for 2 s (at
//! most `--settle-max` seconds, default 120) and prints one JSON line: the
//! frames and bytes all members received, the time from the last join to
//! the quiet, and with `--pid` the server's CPU seconds over the whole run
//! and its peak RSS growth (`VmHWM`). `--no-deflate`: the members offer
//! no permessage-deflate.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wavecast_bench::{arg, cpu_seconds, num, raise_nofile, status_kib};

#[derive(Default)]
struct Counts {
    joined: AtomicUsize,
    frames: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicUsize,
    /// Milliseconds since the start at the last frame received.
    last_frame_ms: AtomicU64,
}

fn main() {
    raise_nofile();
    let addr = arg("addr").unwrap_or_else(|| "127.0.0.1:9001".into());
    let room = arg("room").unwrap_or_else(|| "crowd".into());
    let members: usize = num("members", 1000);
    let concurrency: usize = num("concurrency", 64);
    let settle_max: f64 = num("settle-max", 120.0);
    let pid = arg("pid");
    // `--no-deflate`: members offer no permessage-deflate.
    let config = Arc::new(if wavecast_bench::flag("no-deflate") {
        wavecast_tokio::Config::default().with_deflate(None)
    } else {
        wavecast_tokio::Config::default()
    });
    let runtime = wavecast_bench::runtime();
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let cpu0 = pid.as_deref().and_then(cpu_seconds);
    let rss0 = pid.as_deref().and_then(|p| status_kib(p, "VmRSS:"));
    runtime.block_on(async {
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        for i in 0..members {
            let permit = gate.clone().acquire_owned().await.expect("open semaphore");
            let counts = counts.clone();
            let url = format!("ws://{addr}/ws/{room}?nick=m{i}");
            let config = config.clone();
            tokio::spawn(async move {
                let ws = match wavecast_tokio::ClientRequest::from_url(&url) {
                    Ok((request, _)) => wavecast_tokio::connect_with(&url, request, config).await,
                    Err(e) => Err(e.into()),
                };
                drop(permit);
                let Ok((mut ws, _)) = ws else {
                    counts.failed.fetch_add(1, Relaxed);
                    return;
                };
                counts.joined.fetch_add(1, Relaxed);
                while let Some(Ok(message)) = ws.recv().await {
                    counts.frames.fetch_add(1, Relaxed);
                    counts.bytes.fetch_add(message.len() as u64, Relaxed);
                    counts
                        .last_frame_ms
                        .store(start.elapsed().as_millis() as u64, Relaxed);
                }
            });
        }
        // Every handshake has finished once all permits are back.
        let _all = gate.acquire_many(concurrency.max(1) as u32).await;
        let last_join = start.elapsed();
        let deadline = Instant::now() + Duration::from_secs_f64(settle_max);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let last = Duration::from_millis(counts.last_frame_ms.load(Relaxed));
            if start.elapsed().saturating_sub(last.max(last_join)) >= Duration::from_secs(2)
                || Instant::now() > deadline
            {
                break;
            }
        }
        let last = Duration::from_millis(counts.last_frame_ms.load(Relaxed));
        let cpu = pid
            .as_deref()
            .and_then(cpu_seconds)
            .zip(cpu0)
            .map(|(b, a)| b - a);
        let hwm = pid.as_deref().and_then(|p| status_kib(p, "VmHWM:"));
        let rss = pid.as_deref().and_then(|p| status_kib(p, "VmRSS:"));
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.2}"));
        println!(
            "{{\"members\":{members},\"concurrency\":{concurrency},\"joined\":{},\"failed\":{},\
             \"frames\":{},\"bytes\":{},\"joins_s\":{:.2},\"quiet_after_last_join_s\":{:.2},\
             \"server_cpu_s\":{},\"server_rss_before_kib\":{},\"server_rss_after_kib\":{},\"server_hwm_kib\":{}}}",
            counts.joined.load(Relaxed),
            counts.failed.load(Relaxed),
            counts.frames.load(Relaxed),
            counts.bytes.load(Relaxed),
            last_join.as_secs_f64(),
            last.saturating_sub(last_join).as_secs_f64(),
            opt(cpu),
            rss0.map_or("null".into(), |v| v.to_string()),
            rss.map_or("null".into(), |v| v.to_string()),
            hwm.map_or("null".into(), |v| v.to_string()),
        );
    });
    // Leave the open connections to the OS.
    std::process::exit(0);
}
