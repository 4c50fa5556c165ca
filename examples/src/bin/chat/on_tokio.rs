//! The chat server on tokio.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use wavecast_examples::cannot_listen;
use wavecast_tokio::{
    serve, Accept, CloseCode, HostAllowList, Incoming, ServeConfig, SseConfig, SseEvent, SseStream,
    StreamHub, Tokio,
};

use crate::chat::{self, Route, Seats};
use crate::Options;

pub(crate) fn run(options: Options) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(&options.addr)
            .await
            .map_err(cannot_listen(&options.addr))?;
        let hub = chat::open_hub::<Tokio>(options.redis.as_deref()).await?;
        println!(
            "chat (tokio): open http://{}/ in a browser",
            listener.local_addr()?
        );
        let seats = Seats::default();
        let hosts = Arc::new(chat::allowed_hosts(&options.addr, &options.allow_hosts));
        let limits = ServeConfig::default()
            .with_max_connections(options.max_connections)
            .with_config(chat::config());
        let server = serve(listener, limits, move |incoming| {
            handle(incoming, hub.clone(), seats.clone(), hosts.clone())
        })?;
        let _ = tokio::signal::ctrl_c().await;
        println!("chat: shutting down");
        server.shutdown().await;
        Ok(())
    })
}

async fn handle(
    incoming: Incoming<TcpStream>,
    hub: StreamHub<Tokio>,
    seats: Seats,
    hosts: Arc<HostAllowList>,
) {
    match chat::route(incoming.request(), &hosts) {
        Route::Page => {
            let _ = incoming
                .respond(wavecast_tokio::HttpResponse::html(200, chat::PAGE))
                .await;
        }
        Route::Respond(response) => {
            let _ = incoming.respond(response).await;
        }
        Route::Echo => {
            let Ok(mut ws) = incoming.accept(Accept::new()).await else {
                return;
            };
            while let Some(Ok(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        }
        Route::Refuse(reason) => {
            let Ok(mut ws) = incoming.accept(Accept::new()).await else {
                return;
            };
            let _ = ws.close(CloseCode(chat::REFUSED), &reason).await;
        }
        Route::Listen { room: name } => {
            let Ok(room) = hub.room(&name).await else {
                return;
            };
            // The member list first, then everything from that moment on;
            // a browser reconnecting sends the last position it saw as
            // Last-Event-ID and gets what it missed first.
            let since = chat::listen_since(incoming.request());
            let mut subscription = room.subscribe(since);
            let list = chat::member_list(&room).await;
            if let Ok(mut sse) = SseStream::respond(incoming, SseConfig::default()).await {
                if sse.send(&SseEvent::data(list)).await.is_ok() {
                    sse.forward_stream(&mut subscription).await;
                }
            }
        }
        Route::Chat(chatter) => {
            let Ok(room) = hub.room(&chatter.room).await else {
                return;
            };
            let since = chatter.resume_from(&room).await;
            let taken = chatter.take_seat(&room, &seats).await;
            let http = incoming.request().version();
            let mut seated = None;
            let accepted = incoming.accept_then(Accept::new(), |ws| {
                seated = Some(chatter.seat(ws, &room, since, taken, http));
            });
            let (Ok(ws), Some(seated)) = (accepted, seated) else {
                return;
            };
            chatter.converse(ws, seated, &room).await;
        }
    }
}
