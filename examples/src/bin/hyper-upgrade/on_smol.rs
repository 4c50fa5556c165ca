//! `hyper-upgrade` on smol: hyper reads the TCP stream through
//! `smol-hyper`'s futures-io adapter and times out with async-io's timer.

use std::convert::Infallible;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol::net::TcpListener;
use smol_hyper::rt::{FuturesIo, SmolTimer};
use wavecast_examples::cannot_listen;
use wavecast_smol::Smol;

use crate::{echo, route, Options, Routed};

pub(crate) fn run(options: Options) -> std::io::Result<()> {
    let stop = ctrl_c();
    smol::block_on(async {
        let listener = TcpListener::bind(&options.addr)
            .await
            .map_err(cannot_listen(&options.addr))?;
        println!(
            "hyper-upgrade (smol) listening on http://{}",
            listener.local_addr()?
        );
        loop {
            let accepted = smol::future::or(async { Some(listener.accept().await) }, async {
                let _ = stop.recv().await;
                None
            });
            let Some(accepted) = accepted.await else {
                break;
            };
            let (tcp, _) = accepted?;
            tcp.set_nodelay(true)?;
            smol::spawn(async move {
                let service = service_fn(|mut request| async move {
                    Ok::<_, Infallible>(match route::<Smol>(&mut request) {
                        Routed::Plain(response) => response,
                        Routed::Upgrade { response, ws } => {
                            smol::spawn(echo(ws)).detach();
                            response
                        }
                    })
                });
                let _ = http1::Builder::new()
                    .timer(SmolTimer::new())
                    .serve_connection(FuturesIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            })
            .detach();
        }
        println!("hyper-upgrade: shutting down");
        Ok(())
    })
}

/// A channel that receives once on Ctrl-C.
fn ctrl_c() -> smol::channel::Receiver<()> {
    let (tx, rx) = smol::channel::bounded(1);
    let _ = ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    });
    rx
}
