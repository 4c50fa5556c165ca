//! `axum-chat`: the chat room of axum's WebSocket tutorial on wavecast, with
//! heartbeats. Everything a client sends on `/ws` goes to every client; the
//! server pings every 10 s and drops peers silent for 30 s.
//!
//! ```text
//! cargo run -p wavecast-examples --bin axum-chat -- [--addr 127.0.0.1:3000] [--ping SECS] [--idle SECS]
//! ```

use std::time::Duration;

use axum::{extract::State, response::Response, routing::get, Router};
use clap::Parser;
use wavecast_examples::{cannot_listen, seconds, Failure};
use wavecast_tokio::{Config, Hub, Room, WebSocketUpgrade};

/// The chat room of axum's WebSocket tutorial: what a client sends on /ws
/// goes to everyone; peers are pinged and dropped when silent.
#[derive(Parser)]
#[command(name = "axum-chat", version)]
struct Cli {
    /// The address to listen on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000")]
    addr: String,
    /// Ping every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = seconds, default_value = "10")]
    ping: Duration,
    /// Drop a peer silent for SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = seconds, default_value = "30")]
    idle: Duration,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("axum-chat: {e}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn run() -> Result<(), Failure> {
    let cli = Cli::parse();
    let config = Config::default()
        .with_heartbeat_interval(Some(cli.ping))
        .with_idle_timeout(Some(cli.idle));
    let room = Hub::default().room("chat")?;
    let app = Router::new()
        .route("/ws", get(chat))
        .with_state((room, config.into()));
    let listener = tokio::net::TcpListener::bind(&cli.addr).await;
    let listener = listener.map_err(cannot_listen(&cli.addr))?;
    println!("axum-chat listening on ws://{}/ws", listener.local_addr()?);
    Ok(axum::serve(listener, app).await?)
}

/// Joins the room before the `101` is sent, then relays until the peer
/// leaves, closes or falls silent.
async fn chat(
    ws: WebSocketUpgrade,
    State((room, config)): State<(Room, std::sync::Arc<Config>)>,
) -> Response {
    ws.config(config).on_upgrade_then(
        |ws| (room.join(ws.sender()), room),
        |ws, (member, room)| async move {
            let _ = room.chat(ws, member).await;
        },
    )
}
