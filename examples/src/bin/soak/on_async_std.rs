//! The soak on async-std.

use wavecast_async_std::AsyncStd;
use wavecast_examples::cannot_listen;

use crate::counted::Counted;
use crate::scenario::{self, Options, Report};

pub(crate) fn run(options: Options) -> std::io::Result<Report> {
    async_std::task::block_on(async {
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(cannot_listen("127.0.0.1:0"))?;
        Ok(scenario::run::<Counted<AsyncStd>>(listener, options, || None).await)
    })
}
