//! The chat server on tokio.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use wavecast_examples::cannot_listen;
use wavecast_tokio::{
    serve, Accept, CloseCode, HostAllowList, Hub, Incoming, RoomConfig, ServeConfig, SseConfig,
    SseEvent, SseStream,
};

use crate::chat::{self, Members, Route};
use crate::Options;

pub(crate) fn run(options: Options) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(&options.addr)
            .await
            .map_err(cannot_listen(&options.addr))?;
        println!(
            "chat (tokio): open http://{}/ in a browser",
            listener.local_addr()?
        );
        let hub = Hub::new(RoomConfig::default());
        let members = Members::default();
        let hosts = Arc::new(chat::allowed_hosts(&options.addr, &options.allow_hosts));
        let limits = ServeConfig::default()
            .with_max_connections(options.max_connections)
            .with_config(chat::config());
        let server = serve(listener, limits, move |incoming| {
            handle(incoming, hub.clone(), members.clone(), hosts.clone())
        })?;
        let _ = tokio::signal::ctrl_c().await;
        println!("chat: shutting down");
        server.shutdown().await;
        Ok(())
    })
}

async fn handle(
    incoming: Incoming<TcpStream>,
    hub: Hub,
    members: Members,
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
            let Ok(room) = hub.room(&name) else { return };
            // The member list first, then everything from that moment on.
            let (mut subscription, list) = members.listen(&name, || room.subscribe());
            if let Ok(mut sse) = SseStream::respond(incoming, SseConfig::default()).await {
                if sse.send(&SseEvent::data(list)).await.is_ok() {
                    sse.forward(&mut subscription).await;
                }
            }
        }
        Route::Chat {
            room: name,
            nick,
            session,
        } => {
            let Ok(room) = hub.room(&name) else { return };
            // Join before the 101 is written: nothing published after the
            // handshake can be missed, the join event included.
            let mut seated = Err(String::new());
            let accepted = incoming.accept_then(Accept::new(), |ws| {
                let member = room.join(ws.sender());
                seated = members
                    .join(&name, &nick, session.as_deref(), |event| {
                        room.publish(event);
                    })
                    .map(|()| member);
            });
            let Ok(mut ws) = accepted else { return };
            let member = match seated {
                Ok(member) => member,
                Err(reason) => {
                    let _ = ws.close(CloseCode(chat::REFUSED), &reason).await;
                    return;
                }
            };
            let (sender, mut receiver) = ws.split();
            while let Some(Ok(message)) = receiver.recv().await {
                match chat::on_message(&name, &nick, &message) {
                    Ok(event) => {
                        room.publish(event);
                    }
                    Err(error) => {
                        let _ = sender.send(error).await;
                    }
                }
            }
            drop(member);
            members.leave(&name, &nick, |event| {
                room.publish(event);
            });
        }
    }
}
