//! wavecast on smol: WebSocket servers and clients, broadcast rooms and
//! Server-Sent Events.
//!
//! This crate is smol's [`Runtime`] implementation (`smol::spawn`,
//! `smol::net`, async-io timers, `async-broadcast` rooms) and the
//! [`wavecast_runtime`] API with that runtime fixed; switching to
//! `wavecast-tokio` or `wavecast-async-std` changes an import.
//!
//! - [`accept`], [`accept_with`], [`read_request`] / [`Incoming`]: serve one
//!   stream; [`serve`]: an accept loop with a connection cap and graceful
//!   shutdown, where the handler answers WebSocket, SSE and plain HTTP
//!   requests on one port.
//! - [`connect`], [`connect_with`], [`client_over`], and [`Reconnect`] for a
//!   client that reconnects with backoff.
//! - [`Hub`] and [`Room`]: broadcast rooms; [`SseStream`]: Server-Sent
//!   Events fed by the same rooms.
//!
//! # Echo server
//!
//! ```no_run
//! use smol::net::TcpListener;
//!
//! fn main() -> std::io::Result<()> {
//!     smol::block_on(async {
//!         let listener = TcpListener::bind("127.0.0.1:9001").await?;
//!         loop {
//!             let (tcp, _) = listener.accept().await?;
//!             smol::spawn(async move {
//!                 let Ok(mut ws) = wavecast_smol::accept(tcp).await else { return };
//!                 while let Some(Ok(message)) = ws.recv().await {
//!                     if ws.send(message).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             })
//!             .detach();
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
//! use wavecast_smol::{connect, CloseCode};
//!
//! fn main() -> Result<(), wavecast_smol::Error> {
//!     smol::block_on(async {
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
//! use smol::net::TcpListener;
//! use wavecast_smol::{connect, serve, Accept, Hub, RoomConfig, ServeConfig};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     smol::block_on(async {
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

pub use wavecast_runtime::*;

/// smol: `smol::spawn` on its global executor, `smol::net` sockets and
/// async-io timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl Runtime for Smol {
    type Tcp = smol::net::TcpStream;
    type Listener = smol::net::TcpListener;
    type Timer = async_io::Timer;
    type Sleep = async_io::Timer;
    type Broadcast = AsyncBroadcast;

    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
        smol::spawn(future).detach();
    }

    fn timer(deadline: Instant) -> async_io::Timer {
        async_io::Timer::at(deadline)
    }

    fn sleep_until(deadline: Instant) -> async_io::Timer {
        Self::timer(deadline)
    }

    fn connect(host: String, port: u16) -> BoxFuture<'static, io::Result<Self::Tcp>> {
        Box::pin(async move {
            let tcp = smol::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true).map(|()| tcp)
        })
    }

    fn accept(listener: &Self::Listener) -> BoxFuture<'_, io::Result<Self::Tcp>> {
        Box::pin(async move {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true).map(|()| tcp)
        })
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }
}

/// smol streams are transports as they are.
type Io<S> = S;

fn io<S>(stream: S) -> S {
    stream
}

wavecast_runtime::adapter!(
    docs("wavecast_smol", "smol::net", "smol::block_on"),
    Smol,
    smol::net::TcpStream,
    Transport
);
