//! async-std's executor and sockets for the shared async-io driver.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use wavecast_smol::runtime::{BoxFuture, Runtime};

/// async-std: `async_std::task::spawn` and `async_std::net` sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    type Tcp = async_std::net::TcpStream;
    type Listener = async_std::net::TcpListener;

    fn spawn(future: BoxFuture<()>) {
        async_std::task::spawn(future);
    }

    fn connect(host: String, port: u16) -> BoxFuture<io::Result<Self::Tcp>> {
        Box::pin(async move {
            let tcp = async_std::net::TcpStream::connect((host.as_str(), port)).await?;
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
