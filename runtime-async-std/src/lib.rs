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
//!
//! - [`accept`], [`accept_with`], [`read_request`] / [`Incoming`]: serve one
//!   stream; [`serve`]: an accept loop over `async_std::net::TcpListener`
//!   with a connection cap and graceful shutdown.
//! - [`connect`], [`connect_with`], [`client_over`], and [`Reconnect`].
//! - [`Hub`] and [`Room`]: broadcast rooms; [`SseStream`]: Server-Sent
//!   Events fed by the same rooms.
//!
//! **Rooms and channels.** async-std's own channels (`async_std::channel`)
//! are multi-producer multi-consumer queues in which each message goes to
//! one receiver; there is no broadcast channel. Rooms therefore reuse
//! `wavecast-smol`'s, built on `async-broadcast` (executor-agnostic, from
//! the same ecosystem); a member runs inside its connection's task.
//! The lag policy is the one every wavecast adapter documents.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod runtime;

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use async_std::io::{Read, Write};
pub use runtime::AsyncStd;
pub use wavecast_core::handshake::{Accept, ClientRequest, Request};
pub use wavecast_core::{
    Backoff, CloseCode, CloseFrame, Config, Error, HttpResponse, Jitter, Message, Negotiated,
    Outcome, PreparedMessage, Role, SeedSource, SseEvent, SseParser, TrySendError, Utf8Bytes,
};
#[cfg(feature = "rustls")]
pub use wavecast_smol::default_client_config;
pub use wavecast_smol::{
    LagPolicy, Member, MemberEnd, OriginAllowList, Receiver, Response, RoomConfig, RoomError,
    RoomEvent, RoomMessage, Sender, ServeConfig, Server, SseConfig, SseEnd, SseStream,
    Subscription, WebSocket,
};

/// A handle on one room: publish to it and subscribe async-std
/// connections. See [`wavecast_smol::Room`].
pub type Room = wavecast_smol::Room<AsyncStd>;

/// Named rooms sharing one [`RoomConfig`], for async-std connections.
/// Cloning is cheap and clones share the rooms. Everything but the
/// constructors comes from [`wavecast_smol::Hub`] through `Deref`.
#[derive(Clone, Debug)]
pub struct Hub(wavecast_smol::Hub<AsyncStd>);

impl Hub {
    /// A hub whose rooms use `config`.
    pub fn new(config: RoomConfig) -> Hub {
        Hub(wavecast_smol::Hub::new_on(config))
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(RoomConfig::default())
    }
}

impl Deref for Hub {
    type Target = wavecast_smol::Hub<AsyncStd>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A client that reconnects to one URL with backoff, on async-std.
/// Everything but the constructor and builders comes from
/// [`wavecast_smol::Reconnect`] through `Deref`.
#[derive(Debug)]
pub struct Reconnect(wavecast_smol::Reconnect<AsyncStd>);

impl Reconnect {
    /// A reconnecting client for `url` with the default config and schedule.
    ///
    /// # Errors
    ///
    /// [`Error::Handshake`] when the URL cannot be used.
    pub fn new(url: &str) -> Result<Reconnect, Error> {
        wavecast_smol::Reconnect::new_on(url).map(Reconnect)
    }

    /// Sets the schedule.
    pub fn with_backoff(self, backoff: Backoff) -> Reconnect {
        Reconnect(self.0.with_backoff(backoff))
    }

    /// Sets the connection config (its seed also drives the jitter).
    pub fn with_config(self, config: impl Into<Arc<Config>>) -> Reconnect {
        Reconnect(self.0.with_config(config))
    }

    /// Sets the request (subprotocols, headers) sent on every attempt.
    pub fn with_request(self, request: ClientRequest) -> Reconnect {
        Reconnect(self.0.with_request(request))
    }
}

impl Deref for Reconnect {
    type Target = wavecast_smol::Reconnect<AsyncStd>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Reconnect {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Serves `listener` on async-std: admits each connection under
/// [`ServeConfig::max_connections`] (`503` over it), reads its request head
/// and spawns `handler(incoming)`; see [`Server::shutdown`] for graceful
/// shutdown.
pub fn serve<H, F>(
    listener: async_std::net::TcpListener,
    options: ServeConfig,
    handler: H,
) -> std::io::Result<Server>
where
    H: Fn(Incoming<async_std::net::TcpStream>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    wavecast_smol::serve_on::<AsyncStd, H, F>(listener, options, handler)
}

/// Connects over TLS with a caller-supplied rustls config (custom roots,
/// client certificates).
#[cfg(feature = "rustls")]
pub fn connect_tls_with<'a>(
    url: &'a str,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
    tls: Arc<futures_rustls::rustls::ClientConfig>,
) -> impl Future<Output = Result<(WebSocket, Response), Error>> + 'a {
    wavecast_smol::connect_tls_with_on::<AsyncStd>(url, request, config, tls)
}

/// A request read but not yet answered; see [`read_request`].
pub type Incoming<S> = wavecast_smol::Incoming<S, AsyncStd>;

/// Reads one HTTP request head within the handshake timeout; then accept,
/// reject or answer it through [`Incoming`].
///
/// The handshake's state is boxed and freed once it ends (the returned
/// future is one pointer wide).
pub fn read_request<S>(
    stream: S,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<Incoming<S>, Error>>
where
    S: Read + Write + Unpin + Send + 'static,
{
    wavecast_smol::read_request_on::<S, AsyncStd>(stream, config)
}

/// Accepts a WebSocket on `stream` with the default configuration.
pub fn accept<S>(stream: S) -> impl Future<Output = Result<WebSocket, Error>>
where
    S: Read + Write + Unpin + Send + 'static,
{
    accept_with(stream, wavecast_smol::default_config(), |_| {
        Ok(Accept::new())
    })
}

/// Accepts with a hook that sees the request and decides: `Ok(Accept)` or
/// `Err(HttpResponse)` to reject with that status and body.
///
/// The handshake's state is boxed and freed once it ends: the returned
/// future is one pointer wide, so a task that awaits it and then serves the
/// connection stays small.
pub fn accept_with<S, F>(
    stream: S,
    config: impl Into<Arc<Config>>,
    hook: F,
) -> impl Future<Output = Result<WebSocket, Error>>
where
    S: Read + Write + Unpin + Send + 'static,
    F: FnOnce(&Request) -> Result<Accept, HttpResponse>,
{
    wavecast_smol::accept_with_on::<S, F, AsyncStd>(stream, config, hook)
}

/// Connects to a `ws://host:port/path?query` URL with the default config.
pub async fn connect(url: &str) -> Result<(WebSocket, Response), Error> {
    let (request, _) = ClientRequest::from_url(url)?;
    connect_with(url, request, wavecast_smol::default_config()).await
}

/// Connects to `url` with a prepared request and a config.
///
/// The handshake's state is boxed and freed once it ends.
pub fn connect_with<'a>(
    url: &'a str,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<(WebSocket, Response), Error>> + 'a {
    wavecast_smol::connect_with_on::<AsyncStd>(url, request, config)
}

/// Runs the client handshake over an already-open stream.
///
/// The handshake's state is boxed and freed once it ends.
pub fn client_over<S>(
    stream: S,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<(WebSocket, Response), Error>>
where
    S: Read + Write + Unpin + Send + 'static,
{
    wavecast_smol::client_over_on::<S, AsyncStd>(stream, request, config)
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
