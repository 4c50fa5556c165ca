//! Accepting connections: read the upgrade request, let the application
//! decide, answer, and hand the stream to the driver.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wavecast_core::handshake::{Accept, Request, ServerHandshake};
use wavecast_core::{Config, HandshakeError, HttpResponse};

pub use wavecast_core::OriginAllowList;

use crate::driver::now;
use crate::error::Error;
use crate::websocket::WebSocket;

/// A request that has been read but not yet answered: inspect it, then
/// [`Incoming::accept`], [`Incoming::reject`], [`Incoming::respond`] with
/// plain HTTP, or take the stream with [`Incoming::into_parts`] (for SSE).
///
/// Its state lives in one heap allocation (freed when the request is
/// answered), so a task that holds an `Incoming` and then the [`WebSocket`]
/// stays small for the connection's whole life.
#[derive(Debug)]
pub struct Incoming<S> {
    inner: Box<Parts<S>>,
}

#[derive(Debug)]
struct Parts<S> {
    stream: S,
    request: Request,
    handshake: ServerHandshake,
    config: Arc<Config>,
    /// Set by [`crate::serve`]: accepted connections are closed with 1001
    /// on graceful shutdown.
    tracker: Option<wavecast_core::Tracker>,
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
) -> impl Future<Output = Result<Incoming<S>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Box::pin(read_request_inner(stream, config.into()))
}

async fn read_request_inner<S>(mut stream: S, config: Arc<Config>) -> Result<Incoming<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut handshake = ServerHandshake::new(&config, now());
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let mut buf = vec![0u8; 2048];
    let result = tokio::time::timeout_at(deadline, async {
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
            if let Some(request) = handshake.receive(now(), &buf[..n])? {
                return Ok(request);
            }
        }
    })
    .await;
    let outcome = match result {
        Ok(r) => r,
        Err(_) => Err(Error::Handshake(HandshakeError::Timeout)),
    };
    match outcome {
        Ok(request) => Ok(Incoming {
            inner: Box::new(Parts {
                stream,
                request,
                handshake,
                config,
                tracker: None,
            }),
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
    stream.shutdown().await
}

impl<S> Incoming<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// The request head.
    pub fn request(&self) -> &Request {
        &self.inner.request
    }

    /// Whether this is a WebSocket upgrade (as opposed to plain HTTP).
    pub fn is_websocket_upgrade(&self) -> bool {
        self.inner.request.is_websocket_upgrade()
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
        let Parts {
            mut stream,
            request,
            handshake,
            config,
            tracker,
        } = *self.inner;
        match handshake.accept(&request, accept) {
            Ok(accepted) => {
                let (ws, driver) = WebSocket::build(
                    stream,
                    wavecast_core::Role::Server,
                    config,
                    &accepted.negotiated,
                    accepted.leftover,
                    accepted.response,
                );
                if let Some(tracker) = &tracker {
                    tracker.track(ws.shared(), now());
                }
                setup(&ws);
                tokio::spawn(driver);
                Ok(ws)
            }
            Err(e) => {
                let response =
                    HttpResponse::from_handshake_error(&e).encode(request.method() == "HEAD");
                tokio::spawn(async move {
                    let _ = write_and_close(&mut stream, &response).await;
                });
                Err(Error::Handshake(e))
            }
        }
    }

    /// Rejects with `response` (a WebSocket-level refusal such as 403 or 404).
    pub fn reject(self, response: HttpResponse) -> impl Future<Output = Result<(), Error>> {
        self.respond(response)
    }

    /// Answers with a plain HTTP response and closes (one response per
    /// connection, `Connection: close`). `HEAD` gets the head only; a request
    /// that carries a body gets 413 instead.
    ///
    /// The returned future is boxed (one pointer wide), like
    /// [`read_request`]'s.
    pub fn respond(self, response: HttpResponse) -> impl Future<Output = Result<(), Error>> {
        Box::pin(respond_inner(self.inner, response))
    }
    /// The stream, the request and any bytes read past the head, for
    /// protocols this crate does not drive itself.
    pub fn into_parts(self) -> (S, Request) {
        let Parts {
            stream, request, ..
        } = *self.inner;
        (stream, request)
    }

    pub(crate) fn set_tracker(&mut self, tracker: wavecast_core::Tracker) {
        self.inner.tracker = Some(tracker);
    }

    pub(crate) fn tracker(&self) -> Option<&wavecast_core::Tracker> {
        self.inner.tracker.as_ref()
    }

    /// The configuration this request was read with.
    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }
}

async fn respond_inner<S>(parts: Box<Parts<S>>, response: HttpResponse) -> Result<(), Error>
where
    S: AsyncWrite + Unpin,
{
    let Parts {
        mut stream,
        request,
        handshake,
        ..
    } = *parts;
    let response = if request.has_body() {
        HttpResponse::from_handshake_error(&HandshakeError::BodyNotAllowed)
    } else {
        response
    };
    let bytes = handshake.reject(&response);
    write_and_close(&mut stream, &bytes).await?;
    Ok(())
}

/// Accepts a WebSocket on `stream` with the default configuration and no
/// checks beyond RFC 6455 (any path, any origin).
///
/// The handshake's state is boxed and freed once it ends (see
/// [`accept_with`]).
pub fn accept<S>(stream: S) -> impl Future<Output = Result<WebSocket, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    accept_with(stream, default_config(), |_| Ok(Accept::new()))
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
    Box::pin(accept_with_inner(stream, config.into(), hook))
}

async fn accept_with_inner<S, F>(
    stream: S,
    config: Arc<Config>,
    hook: F,
) -> Result<WebSocket, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(&Request) -> Result<Accept, HttpResponse>,
{
    let incoming = read_request_inner(stream, config).await?;
    match hook(incoming.request()) {
        Ok(accept) => incoming.accept(accept).await,
        Err(response) => {
            let status = response.status();
            respond_inner(incoming.inner, response).await?;
            Err(Error::Rejected(status))
        }
    }
}

/// One `Config::default()` shared by every connection that asks for the
/// default (`accept`, `connect`), instead of an allocation each.
pub(crate) fn default_config() -> Arc<Config> {
    static DEFAULT: std::sync::OnceLock<Arc<Config>> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(Config::default())).clone()
}
