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

/// Options shared by every runtime's version.
pub(crate) struct Options {
    /// Base URL of the fuzzing server, without a path.
    pub(crate) url: String,
    /// The agent name reports are filed under.
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
    let mut runtime = "tokio".to_owned();
    let mut options = Options {
        url: "ws://127.0.0.1:9001".to_owned(),
        agent: "wavecast".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--runtime" => runtime = value(),
            "--url" => options.url = value().trim_end_matches('/').to_owned(),
            "--agent" => options.agent = value(),
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
        eprintln!("autobahn-client: {e}");
        std::process::exit(1);
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("autobahn-client: {problem}");
    }
    eprintln!("usage: autobahn-client [--runtime tokio|async-std|smol] [--url ws://HOST:PORT] [--agent NAME]");
    std::process::exit(2);
}
