//! Echo server on wavecast-smol, the same program as `wavecast-echo` (limits
//! raised to 16 MiB, one shared `Arc<Config>`, no heartbeats, every
//! text/binary message sent back).
//!
//! One executor thread: the connection tasks, and the drivers and room
//! members wavecast-smol spawns, all run on smol's global executor, which
//! `run.sh` sizes to one thread (`SMOL_THREADS=1`); the main thread sits in
//! `smol::block_on` (async-io's reactor). `run.sh` pins the process to CPU 0.
//!
//! `--broadcast`: a room; `/sub` joins it, what `/pub` sends is published.
//! `--stream`: streaming on, each chunk echoed as it arrives (as in
//! `wavecast-echo --stream`).

use std::sync::Arc;

use smol::net::{TcpListener, TcpStream};
use wavecast_smol::{accept_with, read_request, Accept, Config, Hub, Room, RoomConfig};

fn main() {
    wavecast_bench::raise_nofile();
    let addr = wavecast_bench::addr();
    let config = Arc::new(
        Config::default()
            .with_max_message_size(16 << 20)
            .with_max_frame_size(16 << 20)
            .with_stream_messages(wavecast_bench::flag("stream")),
    );
    let broadcast = wavecast_bench::flag("broadcast");
    smol::block_on(smol::spawn(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let room = broadcast.then(|| Hub::new(RoomConfig::default()).room("bench").expect("room"));
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let config = config.clone();
            match &room {
                Some(room) => smol::spawn(broadcast_conn(tcp, config, room.clone())).detach(),
                None if config.stream_messages => smol::spawn(echo_chunks(tcp, config)).detach(),
                None => smol::spawn(echo(tcp, config)).detach(),
            }
        }
    }))
}

async fn echo(tcp: TcpStream, config: Arc<Config>) {
    let Ok(mut ws) = accept_with(tcp, config, |_req| Ok(Accept::new())).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.recv().await {
        if ws.send(msg).await.is_err() {
            break;
        }
    }
}

/// `--stream`: its own task body, so the plain echo task stays as it is.
async fn echo_chunks(tcp: TcpStream, config: Arc<Config>) {
    let Ok(mut ws) = accept_with(tcp, config, |_req| Ok(Accept::new())).await else {
        return;
    };
    while let Some(Ok(chunk)) = ws.recv_chunk().await {
        if ws.send_chunk(chunk.data, chunk.last).await.is_err() {
            break;
        }
    }
}

async fn broadcast_conn(tcp: TcpStream, config: Arc<Config>, room: Room) {
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
