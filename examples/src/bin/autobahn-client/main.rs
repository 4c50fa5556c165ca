//! `autobahn-client`: the conformance suite's testee client loop. Asks the
//! fuzzing server for the number of cases, runs each one echoing every
//! message back, then asks the server to write its reports.
//!
//! ```text
//! cargo run -p wavecast-examples --bin autobahn-client -- [--runtime tokio|async-std|smol] [--url ws://127.0.0.1:9001] [--agent wavecast]
//! ```

mod on_async_std;
mod on_smol;
mod on_tokio;

use clap::Parser;
use wavecast_examples::Runtime;

/// The conformance suite's testee client: asks the fuzzing server for the
/// number of cases, runs each one echoing every message back, then asks the
/// server to write its reports.
#[derive(Parser)]
#[command(name = "autobahn-client", version)]
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
    /// Base URL of the fuzzing server, without a path.
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:9001")]
    pub(crate) url: String,
    /// The agent name reports are filed under.
    #[arg(long, value_name = "NAME", default_value = "wavecast")]
    pub(crate) agent: String,
}

impl Options {
    pub(crate) fn case_count_url(&self) -> String {
        format!("{}/getCaseCount", self.url)
    }
    pub(crate) fn case_url(&self, case: u32) -> String {
        format!("{}/runCase?case={case}&agent={}", self.url, self.agent)
    }
    pub(crate) fn reports_url(&self) -> String {
        format!("{}/updateReports?agent={}", self.url, self.agent)
    }
}

fn main() {
    let Cli {
        runtime,
        mut options,
    } = Cli::parse();
    options.url = options.url.trim_end_matches('/').to_owned();
    let result = match runtime {
        Runtime::Tokio => on_tokio::run(options),
        Runtime::AsyncStd => on_async_std::run(options),
        Runtime::Smol => on_smol::run(options),
    };
    if let Err(e) = result {
        eprintln!("autobahn-client: {e}");
        std::process::exit(1);
    }
}
