//! The echo server on tokio.

use tokio::net::TcpListener;
use wavecast_examples::cannot_listen;
use wavecast_tokio::{accept_with, connection_task, Accept};

use crate::{config, Options};

pub(crate) fn run(options: Options) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(&options.addr)
            .await
            .map_err(cannot_listen(&options.addr))?;
        println!("echo (tokio) listening on ws://{}", listener.local_addr()?);
        let config = std::sync::Arc::new(config(&options));
        loop {
            let (tcp, _) = tokio::select! {
                accepted = listener.accept() => accepted?,
                _ = tokio::signal::ctrl_c() => break,
            };
            tcp.set_nodelay(true)?;
            let stream = options.stream;
            // The handshake future is made out here and moved in: a task's
            // future keeps what its `async` block captures for as long as
            // the task lives, and this way that is one pointer instead of
            // the TCP stream and the config (see `connection_task`).
            let accepting = accept_with(tcp, config.clone(), |_| Ok(Accept::new()));
            // One task per connection: the WebSocket's driver runs in it.
            tokio::spawn(connection_task(async move {
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
