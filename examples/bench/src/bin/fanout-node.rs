//! `fanout-node`: one node of the rooms-over-Redis bench (`redis-fanout.sh`).
//!
//! Serves WebSocket on `127.0.0.1:--port` from a current-thread tokio
//! runtime. Every connection on `/pub` is a publisher: each message it sends
//! is `StreamRoom::publish`ed to the room `bench` and awaited (with
//! `--redis`, acknowledged once Redis ran the publish script), one at a
//! time in the order received. Every other connection is a member: it joins
//! `bench` with `StreamRoom::join(sender, None)` inside `accept_then`,
//! before the `101`, and receives every publication from then on.
//!
//! `--redis redis://127.0.0.1:PORT/`: the room is shared with every node on
//! that Redis (`StreamHub::redis`); without it, `StreamHub::local`. The
//! port is bound only once the hub is connected and the room subscribed,
//! so a node that accepts connections delivers everything published after.
//! Stops on SIGINT or SIGTERM (exit status 0) and prints how many publishes
//! failed to stderr.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use wavecast_bench::{arg, num, raise_nofile};
use wavecast_tokio::{
    read_request, Accept, Config, HistoryConfig, RedisConfig, RoomConfig, StreamHub, StreamRoom,
    Tokio,
};

fn main() {
    raise_nofile();
    let port: u16 = num("port", 9101);
    let redis = arg("redis");
    let config = Arc::new(Config::default());
    let publish_errors = Arc::new(AtomicU64::new(0));
    let failed = publish_errors.clone();
    let runtime = wavecast_bench::runtime();
    runtime.block_on(async move {
        let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let hub = match &redis {
            Some(url) => StreamHub::<Tokio>::redis(
                RedisConfig::new(url.clone()),
                RoomConfig::default(),
                HistoryConfig::default(),
            )
            .await
            .unwrap_or_else(|e| {
                eprintln!("fanout-node: redis {url}: {e}");
                std::process::exit(1)
            }),
            None => StreamHub::<Tokio>::local(RoomConfig::default(), HistoryConfig::default()),
        };
        let room = hub.room("bench").await.expect("room name");
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| {
                eprintln!("fanout-node: bind 127.0.0.1:{port}: {e}");
                std::process::exit(1)
            });
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(conn(
                        tcp,
                        config.clone(),
                        room.clone(),
                        publish_errors.clone(),
                    ));
                }
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
            }
        }
    });
    // The open connections go with the runtime.
    drop(runtime);
    if failed.load(Relaxed) > 0 {
        eprintln!("fanout-node: {} publishes failed", failed.load(Relaxed));
    }
}

async fn conn(
    tcp: TcpStream,
    config: Arc<Config>,
    room: StreamRoom<Tokio>,
    errors: Arc<AtomicU64>,
) {
    let Ok(incoming) = read_request(tcp, config).await else {
        return;
    };
    if incoming.request().path() == "/pub" {
        let Ok(mut ws) = incoming.accept(Accept::new()).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.recv().await {
            if let Err(e) = room.publish(msg).await {
                if errors.fetch_add(1, Relaxed) == 0 {
                    eprintln!("fanout-node: publish: {e}");
                }
            }
        }
    } else {
        let mut member = None;
        let Ok(mut ws) = incoming.accept_then(Accept::new(), |ws| {
            member = Some(room.join(ws.sender(), None));
        }) else {
            return;
        };
        while let Some(Ok(_)) = ws.recv().await {}
        drop(member);
    }
}
