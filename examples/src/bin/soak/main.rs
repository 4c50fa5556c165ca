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

use clap::Parser;
use scenario::Options;
use wavecast_examples::Runtime;

/// A bounded server-side soak test (run by .ci/soak): thousands of
/// client connections in rounds against one serve loop, then checks that
/// no message was lost, nothing was left behind and RSS did not grow.
/// Prints a summary; exits with 1 on any violation.
#[derive(Parser)]
#[command(name = "soak", version)]
struct Cli {
    /// The async runtime to run on.
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    runtime: Runtime,
    /// Picks every client's behaviour, so a failing run can be repeated
    /// [default: from the clock, printed at the start].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Client connections in all.
    #[arg(long, value_name = "N", default_value_t = 3000)]
    connections: usize,
    /// Client connections at a time (at least 1).
    #[arg(long, value_name = "N", default_value_t = 200)]
    concurrency: usize,
    /// Rounds the connections are split into (at least 4 for the RSS
    /// check).
    #[arg(long, value_name = "N", default_value_t = 5)]
    rounds: usize,
    /// How far RSS may end above the first rounds', in KiB.
    #[arg(long, value_name = "KIB", default_value_t = 8 << 10)]
    rss_slack_kib: u64,
}

fn main() {
    let cli = Cli::parse();
    let runtime = cli.runtime.name();
    let options = Options {
        seed: cli.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |t| t.as_nanos() as u64)
        }),
        connections: cli.connections,
        concurrency: cli.concurrency.max(1),
        rounds: cli.rounds,
        rss_slack_kib: cli.rss_slack_kib,
    };
    println!(
        "soak {runtime}: seed {} ({} connections, {} at a time, in {} rounds)",
        options.seed, options.connections, options.concurrency, options.rounds
    );
    let started = Instant::now();
    let result = match cli.runtime {
        Runtime::Tokio => on_tokio::run(options.clone()),
        Runtime::AsyncStd => on_async_std::run(options.clone()),
        Runtime::Smol => on_smol::run(options.clone()),
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
