//! The soak on smol (its global executor; `SMOL_THREADS` sets its threads).

use wavecast_examples::cannot_listen;
use wavecast_smol::Smol;

use crate::counted::Counted;
use crate::scenario::{self, Options, Report};

pub(crate) fn run(options: Options) -> std::io::Result<Report> {
    smol::block_on(async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(cannot_listen("127.0.0.1:0"))?;
        Ok(scenario::run::<Counted<Smol>>(listener, options, || None).await)
    })
}
