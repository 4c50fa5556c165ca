//! `hyper-upgrade` on async-std: like smol, hyper reads the TCP stream
//! through `smol-hyper`'s futures-io adapter; its timer is async-io's, which
//! async-std itself runs on.

use std::convert::Infallible;

use async_std::net::TcpListener;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol_hyper::rt::{FuturesIo, SmolTimer};
use wavecast_async_std::AsyncStd;
use wavecast_examples::cannot_listen;

use crate::{echo, route, Options, Routed};

pub(crate) fn run(options: Options) -> std::io::Result<()> {
    let stop = ctrl_c();
    async_std::task::block_on(async {
        let listener = TcpListener::bind(&options.addr)
            .await
            .map_err(cannot_listen(&options.addr))?;
        println!(
            "hyper-upgrade (async-std) listening on http://{}",
            listener.local_addr()?
        );
        loop {
            let accepted =
                futures_lite::future::or(async { Some(listener.accept().await) }, async {
                    let _ = stop.recv().await;
                    None
                });
            let Some(accepted) = accepted.await else {
                break;
            };
            let (tcp, _) = accepted?;
            tcp.set_nodelay(true)?;
            async_std::task::spawn(async move {
                let service = service_fn(|mut request| async move {
                    Ok::<_, Infallible>(match route::<AsyncStd>(&mut request) {
                        Routed::Plain(response) => response,
                        Routed::Upgrade { response, ws } => {
                            async_std::task::spawn(echo(ws));
                            response
                        }
                    })
                });
                let _ = http1::Builder::new()
                    .timer(SmolTimer::new())
                    .serve_connection(FuturesIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
        println!("hyper-upgrade: shutting down");
        Ok(())
    })
}

/// A channel that receives once on Ctrl-C.
fn ctrl_c() -> async_std::channel::Receiver<()> {
    let (tx, rx) = async_std::channel::bounded(1);
    let _ = ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    });
    rx
}
