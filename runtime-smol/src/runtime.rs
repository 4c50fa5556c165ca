//! What differs between smol and async-std: how a task is spawned and how a
//! TCP connection is opened. Both run on the async-io reactor, so the
//! driver, the timers and everything else are shared.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use futures_io::{AsyncRead, AsyncWrite};

/// A boxed future, as runtimes spawn and connect them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An executor and socket provider on the async-io reactor.
pub trait Runtime: Send + Sync + 'static {
    /// The runtime's TCP stream.
    type Tcp: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The runtime's TCP listener, for `serve`.
    type Listener: Send + Sync + 'static;

    /// Spawns a detached task.
    fn spawn(future: BoxFuture<()>);

    /// Opens a TCP connection (resolving `host`) with `TCP_NODELAY` set.
    fn connect(host: String, port: u16) -> BoxFuture<io::Result<Self::Tcp>>;

    /// Accepts the next connection with `TCP_NODELAY` set.
    fn accept(
        listener: &Self::Listener,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Tcp>> + Send + '_>>;

    /// The address `listener` is bound to.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;
}

/// smol: `smol::spawn` on its global executor and `smol::net` sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl Runtime for Smol {
    type Tcp = smol::net::TcpStream;
    type Listener = smol::net::TcpListener;

    fn spawn(future: BoxFuture<()>) {
        smol::spawn(future).detach();
    }

    fn connect(host: String, port: u16) -> BoxFuture<io::Result<Self::Tcp>> {
        Box::pin(async move {
            let tcp = smol::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            Ok(tcp)
        })
    }

    fn accept(
        listener: &Self::Listener,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Tcp>> + Send + '_>> {
        Box::pin(async move {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        })
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }
}

/// Sleeps for `delay` on the async-io timer.
pub(crate) async fn sleep(delay: std::time::Duration) {
    async_io::Timer::after(delay).await;
}

/// Runs `future` until it finishes or `deadline` passes (`None` then).
pub(crate) async fn until<T>(
    deadline: std::time::Instant,
    future: impl Future<Output = T>,
) -> Option<T> {
    smol::future::or(async { Some(future.await) }, async {
        async_io::Timer::at(deadline).await;
        None
    })
    .await
}
