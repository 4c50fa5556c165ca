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
//! ```no_run
//! # fn main() -> Result<(), wavecast_async_std::Error> { async_std::task::block_on(async {
//! let (mut ws, _) = wavecast_async_std::connect("ws://127.0.0.1:9001/").await?;
//! ws.send("hello").await?;
//! # Ok(()) }) }
//! ```
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

wavecast_runtime::adapter!(AsyncStd, TcpStream, Transport);
