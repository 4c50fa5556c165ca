//! `soak`: a bounded server-side soak test, run by `.ci/soak`. On one
//! runtime, in one process, it serves `/echo`, `/room` and `/sse` on
//! 127.0.0.1 with `serve` and drives thousands of client connections, a
//! few hundred at a time, through a seeded mix of echoes (up to 256 KiB),
//! room publishes, SSE listeners, pings, clean closes, abrupt disconnects
//! (mid-handshake, mid-message, unread replies), stalled handshakes and
//! slow readers. Then it checks that
//!
//! - every echo came back intact, and every message published to the room
//!   while a member that read everything was in it reached that member, in
//!   order (an SSE listener's events too); the room is large enough that
//!   nobody can lag, so any gap is a loss;
//! - after the clients are gone, no connection, handler or task is left on
//!   either side (`metrics::live_connections`, `Server::active`, a spawn
//!   hook counting tasks, and tokio's own task count), and shutdown is
//!   graceful;
//! - RSS does not grow: the connections run in rounds, each ending with
//!   every connection gone, and the lower RSS of the last two rounds must
//!   be within `--rss-slack-kib` of the higher of the first two. With
//!   `.ci/soak`'s malloc settings (large buffers mapped on their own) RSS
//!   moves by a MiB or two between rounds, and a leak of 16 KiB per echo
//!   connection fails the run; the counts above catch a leaked connection
//!   or task of any size.
//!
//! It prints a summary and exits with 1 on any violation. The seed picks
//! every client's behaviour (by its index), so a failing run can be
//! repeated, though the interleaving of tasks cannot.
//!
//! ```text
//! cargo run -p wavecast-examples --bin soak -- --runtime tokio|smol|async-std \
//!     [--seed N] [--connections 3000] [--concurrency 200] [--rounds 5] [--rss-slack-kib 8192]
//! ```

mod counted;
mod on_async_std;
mod on_smol;
mod on_tokio;
mod scenario;

use std::time::Instant;

use scenario::Options;

fn main() {
    let mut runtime = "tokio".to_owned();
    let mut options = Options {
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |t| t.as_nanos() as u64),
        connections: 3000,
        concurrency: 200,
        rounds: 5,
        rss_slack_kib: 8 << 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        let mut number = || {
            value()
                .parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{arg} takes a number")))
        };
        match arg.as_str() {
            "--runtime" => runtime = value(),
            "--seed" => options.seed = number(),
            "--connections" => options.connections = number() as usize,
            "--concurrency" => options.concurrency = (number() as usize).max(1),
            "--rounds" => options.rounds = number() as usize,
            "--rss-slack-kib" => options.rss_slack_kib = number(),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    println!(
        "soak {runtime}: seed {} ({} connections, {} at a time, in {} rounds)",
        options.seed, options.connections, options.concurrency, options.rounds
    );
    let started = Instant::now();
    let result = match runtime.as_str() {
        "tokio" => on_tokio::run(options.clone()),
        "async-std" => on_async_std::run(options.clone()),
        "smol" => on_smol::run(options.clone()),
        other => usage(&format!("unknown runtime {other}")),
    };
    let report = result.unwrap_or_else(|e| {
        eprintln!("soak {runtime}: {e}");
        std::process::exit(1);
    });
    let kinds: Vec<String> = report
        .by_kind
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    println!("soak {runtime}: clients: {}", kinds.join(", "));
    println!(
        "soak {runtime}: {} connections (at most {} live), {} echoes ({} MiB), {} pings, \
         {} room messages published and {} received by members, {} SSE events, {} clean closes; \
         RSS {} KiB after warm-up, {} KiB at the end (after each round: {:?}); {:.1} s; seed {}; {}",
        options.connections,
        report.max_live,
        report.echoes,
        report.echo_bytes >> 20,
        report.pings,
        report.published,
        report.room_received,
        report.sse_events,
        report.clean_closes,
        report.rss_warm_kib,
        report.rss_end_kib,
        report.rss_kib,
        started.elapsed().as_secs_f64(),
        options.seed,
        if report.violations.is_empty() {
            "ok".to_owned()
        } else {
            format!("{} VIOLATIONS", report.violations.len())
        }
    );
    if !report.violations.is_empty() {
        for violation in report.violations.iter().take(20) {
            eprintln!("soak {runtime}: {violation}");
        }
        std::process::exit(1);
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("soak: {problem}");
    }
    eprintln!(
        "usage: soak [--runtime tokio|async-std|smol] [--seed N] [--connections N] \
         [--concurrency N] [--rounds N] [--rss-slack-kib N]"
    );
    std::process::exit(2);
}
