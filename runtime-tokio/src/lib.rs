//! wavecast on tokio: WebSocket servers and clients, broadcast rooms and
//! Server-Sent Events.
//!
//! This crate is tokio's [`Runtime`] implementation — `tokio::spawn`,
//! `tokio::net`, `tokio::time` (so a paused test clock drives every
//! deadline), rooms on `tokio::sync::broadcast` — and the
//! [`wavecast_runtime`] API with that runtime fixed. Streams you pass in
//! (`accept`, `client_over`, `from_upgraded`) are tokio `AsyncRead +
//! AsyncWrite` types, hyper's `FuturesIo<Upgraded>` included.
//!
//! - [`accept`], [`accept_with`], [`read_request`] / [`Incoming`]: serve one
//!   stream; [`serve`]: an accept loop with a connection cap and graceful
//!   shutdown, where the handler answers WebSocket, SSE and plain HTTP
//!   requests on one port.
//! - [`connect`], [`connect_with`], [`client_over`], and [`Reconnect`] for a
//!   client that reconnects with backoff.
//! - [`Hub`] and [`Room`]: broadcast rooms; [`SseStream`]: Server-Sent
//!   Events fed by the same rooms.
//! - `WebSocketUpgrade` (feature `hyper`): upgrades in a hyper 1 service;
//!   with feature `axum`, an axum extractor whose rejections are axum
//!   responses.
//!
//! # Echo server
//!
//! ```no_run
//! use tokio::net::TcpListener;
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:9001").await?;
//!     loop {
//!         let (tcp, _) = listener.accept().await?;
//!         tokio::spawn(async move {
//!             let Ok(mut ws) = wavecast_tokio::accept(tcp).await else { return };
//!             while let Some(Ok(message)) = ws.recv().await {
//!                 if ws.send(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
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
//! use wavecast_tokio::{connect, CloseCode};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), wavecast_tokio::Error> {
//!     let (mut ws, _response) = connect("ws://127.0.0.1:9001/").await?;
//!     ws.send("hello").await?; // Ok = queued; ws.flush() waits for the write
//!     if let Some(reply) = ws.recv().await { // None = closed cleanly
//!         println!("got {:?}", reply?);
//!     }
//!     ws.close(CloseCode::NORMAL, "done").await?;
//!     Ok(())
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
//! use tokio::net::TcpListener;
//! use wavecast_tokio::{connect, serve, Accept, Hub, RoomConfig, ServeConfig};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let hub = Hub::new(RoomConfig::default());
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let server = serve(listener, ServeConfig::default(), move |incoming| {
//!         let hub = hub.clone();
//!         async move {
//!             // One room per path.
//!             let Ok(room) = hub.room(incoming.request().path()) else { return };
//!             // Join before the 101 is written, so nothing is missed.
//!             let mut member = None;
//!             let accepted = incoming.accept_then(Accept::new(), |ws| {
//!                 member = Some(room.join(ws.sender()));
//!             });
//!             if let (Ok(ws), Some(member)) = (accepted, member) {
//!                 // What the client sends goes to the room, and back.
//!                 let _ = room.chat(ws, member).await;
//!             }
//!         }
//!     })?;
//!
//!     let url = format!("ws://{}/lobby", server.local_addr());
//!     let (mut alice, _) = connect(&url).await?;
//!     let (mut bob, _) = connect(&url).await?;
//!     alice.send("hi all").await?;
//!     for ws in [&mut alice, &mut bob] {
//!         let message = ws.recv().await.expect("the room's message")?;
//!         assert_eq!(message.as_bytes(), b"hi all");
//!     }
//!     Ok(())
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
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::ReadBuf;
use tokio::sync::broadcast::{self, error::TryRecvError};
pub use wavecast_runtime::*;

/// tokio: `tokio::spawn`, `tokio::net` sockets, `tokio::time` and
/// `tokio::sync::broadcast`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    type Tcp = FuturesIo<tokio::net::TcpStream>;
    type Listener = tokio::net::TcpListener;
    type Timer = TokioTimer;
    type Sleep = tokio::time::Sleep;
    type Broadcast = TokioBroadcast;

    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
        tokio::spawn(future);
    }

    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn timer(deadline: Instant) -> TokioTimer {
        TokioTimer(Box::pin(Self::sleep_until(deadline)))
    }

    fn sleep_until(deadline: Instant) -> tokio::time::Sleep {
        tokio::time::sleep_until(deadline.into())
    }

    fn connect(host: String, port: u16) -> BoxFuture<'static, io::Result<Self::Tcp>> {
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            Ok(FuturesIo(tcp))
        })
    }

    fn accept(listener: &Self::Listener) -> BoxFuture<'_, io::Result<Self::Tcp>> {
        Box::pin(async move {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            Ok(FuturesIo(tcp))
        })
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }
}

/// tokio's timer: a boxed `Sleep`, moved with `reset`.
#[derive(Debug)]
pub struct TokioTimer(Pin<Box<tokio::time::Sleep>>);

impl Timer for TokioTimer {
    fn reset(&mut self, deadline: Instant) {
        self.0.as_mut().reset(deadline.into());
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Future::poll(self.0.as_mut(), cx)
    }
}

/// Rooms on `tokio::sync::broadcast` (which rounds the ring up to a power
/// of two; the room applies its capacity exactly on top).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioBroadcast;

impl Broadcast for TokioBroadcast {
    type Sender = broadcast::Sender<Arc<RoomMessage>>;
    type Receiver = broadcast::Receiver<Arc<RoomMessage>>;

    fn channel(capacity: usize) -> Self::Sender {
        broadcast::channel(capacity.max(1)).0
    }

    fn send(tx: &Self::Sender, message: Arc<RoomMessage>) -> usize {
        tx.send(message).unwrap_or(0)
    }

    fn subscribe(tx: &Self::Sender) -> Self::Receiver {
        tx.subscribe()
    }

    fn receivers(tx: &Self::Sender) -> usize {
        tx.receiver_count()
    }

    fn queued(tx: &Self::Sender) -> usize {
        tx.len()
    }

    fn try_recv(rx: &mut Self::Receiver) -> TryRecv {
        match rx.try_recv() {
            Ok(message) => TryRecv::Message(message),
            Err(TryRecvError::Lagged(n)) => TryRecv::Lagged(n),
            Err(TryRecvError::Empty | TryRecvError::Closed) => TryRecv::Empty,
        }
    }
}

/// A tokio stream seen through `futures-io`, vectored writes included
/// (a frame header and its payload leave in one system call).
#[derive(Debug)]
pub struct FuturesIo<S>(pub S);

impl<S: tokio::io::AsyncRead + Unpin> futures_io::AsyncRead for FuturesIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        std::task::ready!(Pin::new(&mut self.0).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(buf.filled().len()))
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> futures_io::AsyncWrite for FuturesIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

type Io<S> = FuturesIo<S>;

fn io<S>(stream: S) -> FuturesIo<S> {
    FuturesIo(stream)
}

wavecast_runtime::adapter!(
    docs(
        "wavecast_tokio",
        "tokio::net",
        "tokio::runtime::Runtime::new()?.block_on"
    ),
    Tokio,
    tokio::net::TcpStream,
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
);
