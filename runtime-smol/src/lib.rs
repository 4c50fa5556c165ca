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
//! ```no_run
//! # fn main() -> Result<(), wavecast_smol::Error> { smol::block_on(async {
//! let (mut ws, _) = wavecast_smol::connect("ws://127.0.0.1:9001/").await?;
//! ws.send("hello").await?;
//! if let Some(Ok(reply)) = ws.recv().await {
//!     println!("{reply:?}");
//! }
//! # Ok(()) }) }
//! ```
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

wavecast_runtime::adapter!(Smol, smol::net::TcpStream, Transport);
