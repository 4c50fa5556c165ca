//! Connecting: from a `ws://` (or `wss://`) URL or over a stream you
//! already have.
//!
//! One deadline covers the whole connect — TCP, TLS and the HTTP upgrade
//! (over HTTP/2: its connection preface and SETTINGS, the extended
//! `CONNECT` and its answer, and a second connection if it falls back to
//! HTTP/1.1) — as the core computes it ([`Config::handshake_timeout`] from
//! the start): a server that accepts and then says nothing fails the
//! connect in time.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use wavecast_core::handshake::{
    ClientAccepted, ClientHandshake, ClientRequest, Headers, HttpVersion,
};
use wavecast_core::{Config, Error, HandshakeError, Role};

use crate::io::{read, write_all};
use crate::runtime::{until, Runtime, Transport};
use crate::server::default_config;
use crate::websocket::WebSocket;

/// The server's answer to a successful upgrade.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Response {
    /// Headers of the `101` response.
    pub headers: Headers,
    /// The subprotocol the server chose, if any.
    pub subprotocol: Option<String>,
    /// How the WebSocket was opened: [`HttpVersion::Http11`] for an
    /// `Upgrade` answered `101` (RFC 6455), [`HttpVersion::Http2`] for an
    /// extended `CONNECT` answered 2xx on an HTTP/2 stream (RFC 8441; only
    /// `wss://` with the `http2` and `rustls` features, see
    /// [`connect_with`]).
    pub http_version: HttpVersion,
}

/// Connects to a `ws://host:port/path?query` URL with the default config.
///
/// `wss://` needs the `rustls` feature; without it this fails at once with
/// [`Error::Tls`].
pub async fn connect<R: Runtime>(url: &str) -> Result<(WebSocket, Response), Error> {
    let (request, _) = ClientRequest::from_url(url)?;
    connect_with::<R>(url, request, default_config()).await
}

/// Connects to `url` with a prepared request (subprotocols, extra headers
/// such as `Authorization`) and a config.
///
/// With the `rustls` and `http2` features, `wss://` tries HTTP/2 first
/// (RFC 8441): TLS offers `h2` and `http/1.1` by ALPN, and when the server
/// picks `h2` and its SETTINGS enable the extended CONNECT protocol, the
/// WebSocket opens as an extended `CONNECT` and runs on that HTTP/2 stream.
/// Otherwise it upgrades over HTTP/1.1 as usual — on a new connection that
/// offers only `http/1.1` if the server spoke HTTP/2 without RFC 8441.
/// [`Response::http_version`] tells which; [`ClientRequest::http1_only`]
/// skips HTTP/2. A refused `CONNECT` fails like a refused upgrade, with
/// [`HandshakeError::Rejected`].
///
/// ```no_run
/// use wavecast_runtime::{connect_with, ClientRequest, Config, Error, HttpVersion, Runtime};
///
/// async fn open<R: Runtime>() -> Result<(), Error> {
///     let url = "wss://example.com/chat";
///     let (request, _) = ClientRequest::from_url(url)?;
///     let (_ws, response) = connect_with::<R>(url, request, Config::default()).await?;
///     println!("over HTTP/2: {}", response.http_version == HttpVersion::Http2);
///
///     // The same, always over HTTP/1.1.
///     let (request, _) = ClientRequest::from_url(url)?;
///     let (_ws, response) = connect_with::<R>(url, request.http1_only(), Config::default()).await?;
///     assert_eq!(response.http_version, HttpVersion::Http11);
///     Ok(())
/// }
/// ```
///
/// The handshake's state is boxed and freed once it ends: the returned
/// future is one pointer wide, so awaiting it does not grow the caller's
/// task for the rest of the connection.
pub fn connect_with<'a, R: Runtime>(
    url: &'a str,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<(WebSocket, Response), Error>> + Send + 'a {
    Box::pin(connect_with_inner::<R>(url, request, config.into()))
}

async fn connect_with_inner<R: Runtime>(
    url: &str,
    request: ClientRequest,
    config: Arc<Config>,
) -> Result<(WebSocket, Response), Error> {
    let (_, target) = ClientRequest::from_url(url)?;
    let deadline = connect_deadline::<R>(&config);
    if target.tls {
        return crate::tls::connect_tls::<R>(target.host, target.port, request, config, deadline)
            .await;
    }
    let tcp = until::<R, _>(deadline, R::connect(target.host.clone(), target.port))
        .await
        .ok_or(Error::Handshake(HandshakeError::Timeout))??;
    client_over_inner::<R, _>(tcp, request, config, deadline).await
}

/// When a connect started now must have finished.
pub(crate) fn connect_deadline<R: Runtime>(config: &Config) -> Instant {
    R::now() + config.handshake_timeout
}

/// Runs the client handshake over an already-open stream (TCP, TLS, a
/// proxy tunnel, an in-memory pipe) and starts the connection.
///
/// Like [`connect_with`], the handshake's state is boxed and freed once it
/// ends.
pub fn client_over<R: Runtime, S: Transport>(
    stream: S,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<(WebSocket, Response), Error>> + Send {
    let config = config.into();
    let deadline = connect_deadline::<R>(&config);
    Box::pin(client_over_inner::<R, S>(stream, request, config, deadline))
}

pub(crate) async fn client_over_inner<R: Runtime, S: Transport>(
    mut stream: S,
    request: ClientRequest,
    config: Arc<Config>,
    deadline: Instant,
) -> Result<(WebSocket, Response), Error> {
    let mut handshake = ClientHandshake::new(&config, request, R::now());
    // The earlier of the whole connect's deadline and the handshake's own.
    let deadline = handshake
        .poll_timeout()
        .map_or(deadline, |d| d.min(deadline));
    let accepted: Result<ClientAccepted, Error> = until::<R, _>(deadline, async {
        write_all(&mut stream, handshake.request_bytes()).await?;
        let mut buf = vec![0u8; 2048];
        loop {
            let n = read(&mut stream, &mut buf).await?;
            if n == 0 {
                let e = handshake.receive_eof(R::now()).err();
                return Err(Error::Handshake(e.unwrap_or(HandshakeError::Eof)));
            }
            if let Some(accepted) = handshake.receive(R::now(), &buf[..n])? {
                return Ok(accepted);
            }
        }
    })
    .await
    .unwrap_or(Err(Error::Handshake(HandshakeError::Timeout)));
    Ok(start_client::<R, S>(
        stream,
        config,
        accepted?,
        HttpVersion::Http11,
    ))
}

/// Starts the client connection a finished handshake (`accepted`, over
/// `http_version`) leaves on `stream`: its driver spawned on `R`, the
/// server's answer for the caller.
pub(crate) fn start_client<R: Runtime, S: Transport>(
    stream: S,
    config: Arc<Config>,
    accepted: ClientAccepted,
    http_version: HttpVersion,
) -> (WebSocket, Response) {
    let response = Response {
        headers: accepted.response_headers,
        subprotocol: accepted.negotiated.subprotocol.clone(),
        http_version,
    };
    let (ws, driver) = WebSocket::start::<R, S>(
        stream,
        Role::Client,
        config,
        &accepted.negotiated,
        accepted.leftover,
        Vec::new(),
    );
    crate::task::spawn_driver::<R, _>(driver);
    (ws, response)
}
