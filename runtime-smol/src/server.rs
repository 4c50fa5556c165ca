//! Accepting connections: read the upgrade request, let the application
//! decide, answer, and hand the stream to the driver.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use wavecast_core::handshake::{Accept, Request, ServerHandshake};
use wavecast_core::{Config, Error, HandshakeError, HttpResponse, Role, Tracker};

pub use wavecast_core::OriginAllowList;

use crate::runtime::{until, Runtime, Smol};
use crate::websocket::WebSocket;

/// A request that has been read but not yet answered: inspect it, then
/// [`Incoming::accept`], [`Incoming::reject`], [`Incoming::respond`] with
/// plain HTTP, or take the stream with [`Incoming::into_parts`] (for SSE).
#[derive(Debug)]
pub struct Incoming<S, R: Runtime = Smol> {
    stream: S,
    request: Request,
    handshake: ServerHandshake,
    config: Arc<Config>,
    /// Set by `serve`: accepted connections are closed with 1001 on
    /// graceful shutdown.
    tracker: Option<Tracker>,
    runtime: PhantomData<R>,
}

/// Reads one HTTP request head from `stream`, within the handshake timeout
/// (a client that never finishes its request is dropped: slowloris).
///
/// A malformed or oversized head is answered (400, 431, ...) and returned
/// as an error.
///
/// The handshake's state is boxed and freed once it ends: the returned
/// future is one pointer wide, so awaiting it does not grow the caller's
/// task for the rest of the connection.
pub fn read_request<S>(
    stream: S,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<Incoming<S, Smol>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    read_request_on(stream, config)
}

#[doc(hidden)]
pub fn read_request_on<S, R: Runtime>(
    stream: S,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<Incoming<S, R>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(read_request_inner(stream, config.into()))
}

async fn read_request_inner<S, R: Runtime>(
    mut stream: S,
    config: Arc<Config>,
) -> Result<Incoming<S, R>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut handshake = ServerHandshake::new(&config, Instant::now());
    let deadline = Instant::now() + config.handshake_timeout;
    let mut buf = vec![0u8; 2048];
    let read = until(deadline, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                let e = handshake.receive_eof(Instant::now()).err();
                return Err(Error::Handshake(e.unwrap_or(HandshakeError::Eof)));
            }
            if let Some(request) = handshake.receive(Instant::now(), &buf[..n])? {
                return Ok(request);
            }
        }
    })
    .await
    .unwrap_or(Err(Error::Handshake(HandshakeError::Timeout)));
    match read {
        Ok(request) => Ok(Incoming {
            stream,
            request,
            handshake,
            config,
            tracker: None,
            runtime: PhantomData,
        }),
        Err(Error::Handshake(e)) => {
            if !matches!(e, HandshakeError::Eof) {
                let response = HttpResponse::from_handshake_error(&e).encode(false);
                let _ = write_and_close(&mut stream, &response).await;
            }
            Err(Error::Handshake(e))
        }
        Err(e) => Err(e),
    }
}

async fn write_and_close<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await?;
    stream.close().await
}

impl<S, R> Incoming<S, R>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Runtime,
{
    /// The request head.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Whether this is a WebSocket upgrade (as opposed to plain HTTP).
    pub fn is_websocket_upgrade(&self) -> bool {
        self.request.is_websocket_upgrade()
    }

    /// Accepts the upgrade: validates the request (answering 400/426/...
    /// itself when it is invalid), writes the `101`, and starts the driver.
    pub async fn accept(self, accept: Accept) -> Result<WebSocket, Error> {
        self.accept_then(accept, |_| {})
    }

    /// Like [`Incoming::accept`], but runs `setup` on the new connection
    /// before its driver starts and before the `101` is written: subscribe
    /// it to a room here and it cannot miss anything published after the
    /// client sees the handshake complete.
    pub fn accept_then(
        self,
        accept: Accept,
        setup: impl FnOnce(&WebSocket),
    ) -> Result<WebSocket, Error> {
        let Incoming {
            mut stream,
            request,
            handshake,
            config,
            tracker,
            ..
        } = self;
        match handshake.accept(&request, accept) {
            Ok(accepted) => {
                let mut driver = None;
                let ws = WebSocket::start(
                    stream,
                    Role::Server,
                    config,
                    &accepted.negotiated,
                    accepted.leftover,
                    accepted.response,
                    |d| driver = Some(d),
                );
                if let Some(tracker) = &tracker {
                    tracker.track(ws.shared(), Instant::now());
                }
                setup(&ws);
                if let Some(d) = driver {
                    R::spawn(d);
                }
                Ok(ws)
            }
            Err(e) => {
                let response =
                    HttpResponse::from_handshake_error(&e).encode(request.method() == "HEAD");
                R::spawn(Box::pin(async move {
                    let _ = write_and_close(&mut stream, &response).await;
                }));
                Err(Error::Handshake(e))
            }
        }
    }

    /// Rejects with `response` (a WebSocket-level refusal such as 403 or 404).
    pub async fn reject(self, response: HttpResponse) -> Result<(), Error> {
        self.respond(response).await
    }

    /// Answers with a plain HTTP response and closes (one response per
    /// connection, `Connection: close`). `HEAD` gets the head only; a request
    /// that carries a body gets 413 instead.
    pub async fn respond(self, response: HttpResponse) -> Result<(), Error> {
        let Incoming {
            mut stream,
            request,
            handshake,
            ..
        } = self;
        let response = if request.has_body() {
            HttpResponse::from_handshake_error(&HandshakeError::BodyNotAllowed)
        } else {
            response
        };
        let bytes = handshake.reject(&response);
        write_and_close(&mut stream, &bytes).await?;
        Ok(())
    }

    /// The stream and the request, for protocols this crate does not drive
    /// itself.
    pub fn into_parts(self) -> (S, Request) {
        (self.stream, self.request)
    }

    /// The configuration this request was read with.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub(crate) fn set_tracker(&mut self, tracker: Tracker) {
        self.tracker = Some(tracker);
    }

    pub(crate) fn tracker(&self) -> Option<&Tracker> {
        self.tracker.as_ref()
    }
}

/// Accepts a WebSocket on `stream` with the default configuration and no
/// checks beyond RFC 6455 (any path, any origin).
pub fn accept<S>(stream: S) -> impl Future<Output = Result<WebSocket, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    accept_with(stream, default_config(), |_| Ok(Accept::new()))
}

/// One `Config::default()` shared by every connection that asks for the
/// default (`accept`, `connect`), instead of an allocation each.
#[doc(hidden)]
pub fn default_config() -> Arc<Config> {
    static DEFAULT: std::sync::OnceLock<Arc<Config>> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(Config::default())).clone()
}

/// Accepts with a hook that sees the request and decides: `Ok(Accept)` (a
/// subprotocol and extra headers may be set) or `Err(HttpResponse)` to
/// reject with that status and body.
///
/// The handshake's state (the request being read, the hook, the response
/// being written) is boxed and freed once it ends: the returned future is
/// one pointer wide, so a task that awaits it and then serves the
/// connection stays small. Pass one `Arc<Config>` (cloned per connection)
/// rather than a `Config` by value to share the configuration too.
pub fn accept_with<S, F>(
    stream: S,
    config: impl Into<Arc<Config>>,
    hook: F,
) -> impl Future<Output = Result<WebSocket, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(&Request) -> Result<Accept, HttpResponse>,
{
    accept_with_on::<S, F, Smol>(stream, config, hook)
}

#[doc(hidden)]
pub fn accept_with_on<S, F, R>(
    stream: S,
    config: impl Into<Arc<Config>>,
    hook: F,
) -> impl Future<Output = Result<WebSocket, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(&Request) -> Result<Accept, HttpResponse>,
    R: Runtime,
{
    Box::pin(accept_with_inner::<S, F, R>(stream, config.into(), hook))
}

async fn accept_with_inner<S, F, R>(
    stream: S,
    config: Arc<Config>,
    hook: F,
) -> Result<WebSocket, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(&Request) -> Result<Accept, HttpResponse>,
    R: Runtime,
{
    let incoming = read_request_inner::<S, R>(stream, config).await?;
    match hook(incoming.request()) {
        Ok(accept) => incoming.accept(accept).await,
        Err(response) => {
            let status = response.status();
            incoming.reject(response).await?;
            Err(Error::Rejected(status))
        }
    }
}
