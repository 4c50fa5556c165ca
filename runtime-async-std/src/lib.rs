//! wavecast on async-std: WebSocket servers and clients, broadcast rooms and
//! Server-Sent Events, driving the sans-IO `wavecast-core`.
//!
//! **async-std is discontinued upstream** (RUSTSEC-2025-0052 points users to
//! smol). This adapter stays because applications still run on it; new
//! code should prefer `wavecast-smol`, which has the same API.
//!
//! async-std runs on the async-io reactor, like smol, so this crate reuses
//! `wavecast-smol`'s driver and handles and supplies async-std's own
//! executor (`async_std::task::spawn`) and sockets (`async_std::net`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod runtime;

use std::sync::Arc;

use async_std::io::{Read, Write};
pub use runtime::AsyncStd;
pub use wavecast_core::handshake::{Accept, ClientRequest, Request};
pub use wavecast_core::{
    CloseCode, CloseFrame, Config, Error, HttpResponse, Message, Negotiated, Outcome,
    PreparedMessage, Role, SeedSource, TrySendError, Utf8Bytes,
};
pub use wavecast_smol::{Receiver, Response, Sender, WebSocket};

/// A request read but not yet answered; see [`read_request`].
pub type Incoming<S> = wavecast_smol::Incoming<S, AsyncStd>;

/// Reads one HTTP request head within the handshake timeout; then accept,
/// reject or answer it through [`Incoming`].
pub async fn read_request<S>(
    stream: S,
    config: impl Into<Arc<Config>>,
) -> Result<Incoming<S>, Error>
where
    S: Read + Write + Unpin + Send + 'static,
{
    wavecast_smol::read_request_on::<S, AsyncStd>(stream, config).await
}

/// Accepts a WebSocket on `stream` with the default configuration.
pub async fn accept<S>(stream: S) -> Result<WebSocket, Error>
where
    S: Read + Write + Unpin + Send + 'static,
{
    accept_with(stream, Config::default(), |_| Ok(Accept::new())).await
}

/// Accepts with a hook that sees the request and decides: `Ok(Accept)` or
/// `Err(HttpResponse)` to reject with that status and body.
pub async fn accept_with<S, F>(
    stream: S,
    config: impl Into<Arc<Config>>,
    hook: F,
) -> Result<WebSocket, Error>
where
    S: Read + Write + Unpin + Send + 'static,
    F: FnOnce(&Request) -> Result<Accept, HttpResponse>,
{
    wavecast_smol::accept_with_on::<S, F, AsyncStd>(stream, config, hook).await
}

/// Connects to a `ws://host:port/path?query` URL with the default config.
pub async fn connect(url: &str) -> Result<(WebSocket, Response), Error> {
    let (request, _) = ClientRequest::from_url(url)?;
    connect_with(url, request, Config::default()).await
}

/// Connects to `url` with a prepared request and a config.
pub async fn connect_with(
    url: &str,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
) -> Result<(WebSocket, Response), Error> {
    wavecast_smol::connect_with_on::<AsyncStd>(url, request, config).await
}

/// Runs the client handshake over an already-open stream.
pub async fn client_over<S>(
    stream: S,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
) -> Result<(WebSocket, Response), Error>
where
    S: Read + Write + Unpin + Send + 'static,
{
    wavecast_smol::client_over_on::<S, AsyncStd>(stream, request, config).await
}

/// Wraps an already-upgraded stream (from hyper or another HTTP stack) and
/// starts its driver on async-std's executor.
pub fn from_upgraded<S>(
    stream: S,
    role: Role,
    config: impl Into<Arc<Config>>,
    negotiated: &Negotiated,
    leftover: bytes::Bytes,
) -> WebSocket
where
    S: Read + Write + Unpin + Send + 'static,
{
    WebSocket::start(
        stream,
        role,
        config,
        negotiated,
        leftover,
        Vec::new(),
        |driver| {
            async_std::task::spawn(driver);
        },
    )
}
