//! The echo server on smol.

use smol::net::TcpListener;
use wavecast_examples::cannot_listen;
use wavecast_smol::{accept_with, connection_task, Accept};

use crate::{config, Options};

pub(crate) fn run(options: Options) -> std::io::Result<()> {
    let stop = ctrl_c();
    smol::block_on(async {
        let listener = TcpListener::bind(&options.addr)
            .await
            .map_err(cannot_listen(&options.addr))?;
        println!("echo (smol) listening on ws://{}", listener.local_addr()?);
        let config = std::sync::Arc::new(config(&options));
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
            let stream = options.stream;
            // The handshake future is made out here and moved in: a task's
            // future keeps what its `async` block captures for as long as
            // the task lives, and this way that is one pointer instead of
            // the TCP stream and the config (see `connection_task`).
            let accepting = accept_with(tcp, config.clone(), |_| Ok(Accept::new()));
            // One task per connection: the WebSocket's driver runs in it.
            smol::spawn(connection_task(async move {
                let Ok(ws) = accepting.await else {
                    return;
                };
                crate::echo(ws, stream).await;
            }))
            .detach();
        }
        println!("echo: shutting down");
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
