//! Connecting: from a `ws://` URL (DNS via tokio) or over a stream you
//! already have.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wavecast_core::handshake::{ClientAccepted, ClientHandshake, ClientRequest, Headers};
use wavecast_core::{Config, HandshakeError, Role};

use crate::driver::now;
use crate::error::Error;
use crate::websocket::WebSocket;

/// The server's answer to a successful upgrade.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Response {
    /// Headers of the `101` response.
    pub headers: Headers,
    /// The subprotocol the server chose, if any.
    pub subprotocol: Option<String>,
}

/// Connects to a `ws://host:port/path?query` URL with the default config.
///
/// `wss://` needs the `rustls` feature; without it this fails at once with
/// [`Error::Tls`].
pub async fn connect(url: &str) -> Result<(WebSocket, Response), Error> {
    let (request, _) = ClientRequest::from_url(url)?;
    connect_with(url, request, crate::server::default_config()).await
}

/// Connects to `url` with a prepared request (subprotocols, extra headers
/// such as `Authorization`) and a config.
///
/// The handshake's state is boxed and freed once it ends: the returned
/// future is one pointer wide, so awaiting it does not grow the caller's
/// task for the rest of the connection.
pub fn connect_with<'a>(
    url: &'a str,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<(WebSocket, Response), Error>> + 'a {
    Box::pin(connect_with_inner(url, request, config.into()))
}

async fn connect_with_inner(
    url: &str,
    request: ClientRequest,
    config: Arc<Config>,
) -> Result<(WebSocket, Response), Error> {
    let (_, target) = ClientRequest::from_url(url)?;
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let tcp = tokio::time::timeout_at(
        deadline,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| Error::Handshake(HandshakeError::Timeout))??;
    tcp.set_nodelay(true)?;
    if target.tls {
        return crate::tls::connect_tls(tcp, &target.host, request, config).await;
    }
    client_over_inner(tcp, request, config).await
}

/// Runs the client handshake over an already-open stream (TCP, TLS, a
/// proxy tunnel, an in-memory pipe) and starts the connection.
///
/// Like [`connect_with`], the handshake's state is boxed and freed once it
/// ends.
pub fn client_over<S>(
    stream: S,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<(WebSocket, Response), Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(client_over_inner(stream, request, config.into()))
}

pub(crate) async fn client_over_inner<S>(
    mut stream: S,
    request: ClientRequest,
    config: Arc<Config>,
) -> Result<(WebSocket, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut handshake = ClientHandshake::new(&config, request, now());
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let accepted: Result<ClientAccepted, Error> = tokio::time::timeout_at(deadline, async {
        stream.write_all(handshake.request_bytes()).await?;
        stream.flush().await?;
        let mut buf = vec![0u8; 2048];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(Error::Handshake(
                    handshake
                        .receive_eof(now())
                        .err()
                        .unwrap_or(HandshakeError::Eof),
                ));
            }
            if let Some(accepted) = handshake.receive(now(), &buf[..n])? {
                return Ok(accepted);
            }
        }
    })
    .await
    .unwrap_or(Err(Error::Handshake(HandshakeError::Timeout)));
    let accepted = accepted?;
    let response = Response {
        headers: accepted.response_headers,
        subprotocol: accepted.negotiated.subprotocol.clone(),
    };
    let ws = WebSocket::from_upgraded(
        stream,
        Role::Client,
        config,
        &accepted.negotiated,
        accepted.leftover,
    );
    Ok((ws, response))
}
