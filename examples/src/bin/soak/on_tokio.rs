//! The soak on tokio (two worker threads: the machine CI runs on).

use wavecast_examples::cannot_listen;
use wavecast_tokio::Tokio;

use crate::counted::Counted;
use crate::scenario::{self, Options, Report};

pub(crate) fn run(options: Options) -> std::io::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(cannot_listen("127.0.0.1:0"))?;
        // tokio's own count of tasks, to check the spawn hook's.
        let native = || {
            Some(
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks(),
            )
        };
        Ok(scenario::run::<Counted<Tokio>>(listener, options, native).await)
    })
}
