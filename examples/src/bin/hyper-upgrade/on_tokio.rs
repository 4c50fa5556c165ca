//! `hyper-upgrade` on tokio, with `hyper-util`'s tokio glue.

use std::convert::Infallible;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use wavecast_examples::cannot_listen;
use wavecast_tokio::Tokio;

use crate::{echo, route, Options, Routed};

pub(crate) fn run(options: Options) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(&options.addr)
            .await
            .map_err(cannot_listen(&options.addr))?;
        println!(
            "hyper-upgrade (tokio) listening on http://{}",
            listener.local_addr()?
        );
        loop {
            let (tcp, _) = tokio::select! {
                accepted = listener.accept() => accepted?,
                _ = tokio::signal::ctrl_c() => break,
            };
            tcp.set_nodelay(true)?;
            tokio::spawn(async move {
                let service = service_fn(|mut request| async move {
                    Ok::<_, Infallible>(match route::<Tokio>(&mut request) {
                        Routed::Plain(response) => response,
                        Routed::Upgrade { response, ws } => {
                            tokio::spawn(echo(ws));
                            response
                        }
                    })
                });
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
        println!("hyper-upgrade: shutting down");
        Ok(())
    })
}
