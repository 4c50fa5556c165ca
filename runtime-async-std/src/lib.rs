//! wavecast on async-std: WebSocket servers and clients, broadcast rooms and
//! Server-Sent Events.
//!
//! **async-std is discontinued upstream** (RUSTSEC-2025-0052 points users to
//! smol). This adapter stays because applications still run on it; new
//! code should prefer `wavecast-smol`, which has the same API.
//!
//! This crate is async-std's [`Runtime`] implementation — its own executor
//! (`async_std::task::spawn`) and sockets (`async_std::net`), the async-io
//! timer it runs on — and the [`wavecast_runtime`] API with that runtime
//! fixed.
//!
//! **Rooms and channels.** async-std's own channels (`async_std::channel`)
//! are multi-producer multi-consumer queues in which each message goes to
//! one receiver; there is no broadcast channel. Rooms therefore use
//! `async-broadcast` (executor-agnostic, from the same ecosystem), with the
//! lag policy every wavecast adapter shares.
//!
//! # Echo server
//!
//! ```no_run
//! use async_std::net::TcpListener;
//!
//! fn main() -> std::io::Result<()> {
//!     async_std::task::block_on(async {
//!         let listener = TcpListener::bind("127.0.0.1:9001").await?;
//!         loop {
//!             let (tcp, _) = listener.accept().await?;
//!             async_std::task::spawn(async move {
//!                 let Ok(mut ws) = wavecast_async_std::accept(tcp).await else { return };
//!                 while let Some(Ok(message)) = ws.recv().await {
//!                     if ws.send(message).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             });
//!         }
//!     })
//! }
//! ```
//!
//! [`accept_with`] checks the request first (path, origin, host name), and
//! [`serve`] is this loop with a connection cap, graceful shutdown and plain
//! HTTP answers on the same port.
//!
//! # Client
//!
//! ```no_run
//! use wavecast_async_std::{connect, CloseCode};
//!
//! fn main() -> Result<(), wavecast_async_std::Error> {
//!     async_std::task::block_on(async {
//!         let (mut ws, _response) = connect("ws://127.0.0.1:9001/").await?;
//!         ws.send("hello").await?; // Ok = queued; ws.flush() waits for the write
//!         if let Some(reply) = ws.recv().await { // None = closed cleanly
//!             println!("got {:?}", reply?);
//!         }
//!         ws.close(CloseCode::NORMAL, "done").await?;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! [`Reconnect`] connects again with backoff when the connection drops.
//!
//! # Broadcast
//!
//! A [`Hub`] of named [`Room`]s: a message published to a room is framed once
//! and goes to every member. This example runs as it is: a server with a room
//! per path and two clients.
//!
//! ```
//! use async_std::net::TcpListener;
//! use wavecast_async_std::{connect, serve, Accept, Hub, RoomConfig, ServeConfig};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     async_std::task::block_on(async {
//!         let hub = Hub::new(RoomConfig::default());
//!         let listener = TcpListener::bind("127.0.0.1:0").await?;
//!         let server = serve(listener, ServeConfig::default(), move |incoming| {
//!             let hub = hub.clone();
//!             async move {
//!                 // One room per path.
//!                 let Ok(room) = hub.room(incoming.request().path()) else { return };
//!                 // Join before the 101 is written, so nothing is missed.
//!                 let mut member = None;
//!                 let accepted = incoming.accept_then(Accept::new(), |ws| {
//!                     member = Some(room.join(ws.sender()));
//!                 });
//!                 if let (Ok(ws), Some(member)) = (accepted, member) {
//!                     // What the client sends goes to the room, and back.
//!                     let _ = room.chat(ws, member).await;
//!                 }
//!             }
//!         })?;
//!
//!         let url = format!("ws://{}/lobby", server.local_addr());
//!         let (mut alice, _) = connect(&url).await?;
//!         let (mut bob, _) = connect(&url).await?;
//!         alice.send("hi all").await?;
//!         for ws in [&mut alice, &mut bob] {
//!             let message = ws.recv().await.expect("the room's message")?;
//!             assert_eq!(message.as_bytes(), b"hi all");
//!         }
//!         Ok(())
//!     })
//! }
//! ```
//!
//! [`SseStream`] sends the same rooms to browsers as Server-Sent Events.
// axum: the extractor's section goes here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use async_std::net::{TcpListener, TcpStream};
pub use wavecast_runtime::*;

/// async-std: its task executor and `async_std::net` sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    type Tcp = TcpStream;
    type Listener = TcpListener;
    type Timer = async_io::Timer;
    type Sleep = async_io::Timer;
    type Broadcast = AsyncBroadcast;

    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
        async_std::task::spawn(future);
    }

    fn timer(deadline: Instant) -> async_io::Timer {
        async_io::Timer::at(deadline)
    }

    fn sleep_until(deadline: Instant) -> async_io::Timer {
        Self::timer(deadline)
    }

    fn connect(host: String, port: u16) -> BoxFuture<'static, io::Result<TcpStream>> {
        Box::pin(async move { nodelay(TcpStream::connect((host.as_str(), port)).await?) })
    }

    fn accept(listener: &TcpListener) -> BoxFuture<'_, io::Result<TcpStream>> {
        Box::pin(async move { nodelay(listener.accept().await?.0) })
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }
}

fn nodelay(tcp: TcpStream) -> io::Result<TcpStream> {
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// async-std streams are transports as they are.
type Io<S> = S;

fn io<S>(stream: S) -> S {
    stream
}

wavecast_runtime::adapter!(
    docs(
        "wavecast_async_std",
        "async_std::net",
        "async_std::task::block_on"
    ),
    AsyncStd,
    TcpStream,
    Transport
);
