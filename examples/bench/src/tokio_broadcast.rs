//! `wavecast-echo --broadcast`: one room instead of echo. A client that
//! connects to `/sub` joins the room (inside `accept_then`, before the
//! `101`); every message a client on `/pub` sends is published to the room.
//! Kept in its own file so the echo server stays the plain docs usage.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use wavecast_tokio::{read_request, Accept, Config, Hub, Room, RoomConfig};

pub fn serve(addr: std::net::SocketAddr, config: Arc<Config>) {
    wavecast_bench::runtime().block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let hub = Hub::new(RoomConfig::default());
        let room = hub.room("bench").expect("room");
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(conn(tcp, config.clone(), room.clone()));
        }
    })
}

async fn conn(tcp: TcpStream, config: Arc<Config>, room: Room) {
    let Ok(incoming) = read_request(tcp, config).await else {
        return;
    };
    if incoming.request().path() == "/pub" {
        let Ok(mut ws) = incoming.accept(Accept::new()).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.recv().await {
            room.publish(msg);
        }
    } else {
        let mut member = None;
        let Ok(mut ws) = incoming.accept_then(Accept::new(), |ws| {
            member = Some(room.join(ws.sender()));
        }) else {
            return;
        };
        while let Some(Ok(_)) = ws.recv().await {}
        drop(member);
    }
}
