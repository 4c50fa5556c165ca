//! The echo server on async-std.

use async_std::net::TcpListener;
use wavecast_async_std::{accept_with, connection_task, Accept};
use wavecast_examples::cannot_listen;

use crate::{config, Options};

pub(crate) fn run(options: Options) -> std::io::Result<()> {
    let stop = ctrl_c();
    async_std::task::block_on(async {
        let listener = TcpListener::bind(&options.addr)
            .await
            .map_err(cannot_listen(&options.addr))?;
        println!(
            "echo (async-std) listening on ws://{}",
            listener.local_addr()?
        );
        let config = std::sync::Arc::new(config(&options));
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
            let stream = options.stream;
            // The handshake future is made out here and moved in: a task's
            // future keeps what its `async` block captures for as long as
            // the task lives, and this way that is one pointer instead of
            // the TCP stream and the config (see `connection_task`).
            let accepting = accept_with(tcp, config.clone(), |_| Ok(Accept::new()));
            // One task per connection: the WebSocket's driver runs in it.
            async_std::task::spawn(connection_task(async move {
                let Ok(ws) = accepting.await else {
                    return;
                };
                crate::echo(ws, stream).await;
            }));
        }
        println!("echo: shutting down");
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
