//! Accepting connections: read the upgrade request, let the application
//! decide, answer, and hand the stream to the driver.
//!
//! Every decision is the core's: the handshake deadline
//! ([`ServerHandshake::poll_timeout`]), which failure gets which HTTP
//! answer ([`HttpResponse::from_handshake_error`]), `HEAD` and body
//! handling. This module only reads, writes and waits.

use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Poll};

use bytes::Bytes;
use wavecast_core::handshake::{Accept, Request, ServerHandshake};
use wavecast_core::{Config, Error, HandshakeError, HttpResponse, Role};

use crate::driver::with_scratch;
use crate::io::write_and_close;
use crate::runtime::{until, Runtime, Transport};
use crate::shared::Tracker;
use crate::websocket::WebSocket;

/// Bytes read per call while reading a request head.
const HEAD_READ_LEN: usize = 2048;

/// A request that has been read but not yet answered: inspect it, then
/// [`Incoming::accept`], [`Incoming::reject`], [`Incoming::respond`] with
/// plain HTTP, or take the stream with [`Incoming::into_parts`] (for SSE or
/// another protocol).
///
/// Its state lives in one heap allocation (freed when the request is
/// answered), so a task that holds an `Incoming` and then the [`WebSocket`]
/// stays small for the connection's whole life.
pub struct Incoming<S, R: Runtime> {
    inner: Box<Parts<S>>,
    runtime: PhantomData<fn() -> R>,
}

struct Parts<S> {
    stream: S,
    request: Request,
    handshake: ServerHandshake,
    config: Arc<Config>,
    /// Set by `serve`: accepted connections are closed with 1001 on
    /// graceful shutdown.
    tracker: Option<Tracker>,
}

impl<S, R: Runtime> std::fmt::Debug for Incoming<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("request", &self.inner.request)
            .finish_non_exhaustive()
    }
}

/// One `Config::default()` shared by every connection that asks for the
/// default (`accept`, `connect`), instead of an allocation each.
pub fn default_config() -> Arc<Config> {
    static DEFAULT: std::sync::OnceLock<Arc<Config>> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(Config::default())).clone()
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
pub fn read_request<R: Runtime, S: Transport>(
    stream: S,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<Incoming<S, R>, Error>> + Send {
    Box::pin(read_request_inner::<R, S>(stream, config.into()))
}

async fn read_request_inner<R: Runtime, S: Transport>(
    mut stream: S,
    config: Arc<Config>,
) -> Result<Incoming<S, R>, Error> {
    let mut handshake = ServerHandshake::new(&config, R::now());
    let deadline = handshake
        .poll_timeout()
        .expect("a new handshake has a deadline");
    let result = until::<R, _>(
        deadline,
        poll_fn(|cx| {
            // The driver's per-thread read buffer: a handshake holds none of
            // its own.
            with_scratch(|scratch| loop {
                // No more than a head needs per read: whatever follows the
                // head is kept (as leftover) until the connection starts.
                let buf = &mut scratch[..HEAD_READ_LEN];
                let n = ready!(Pin::new(&mut stream).poll_read(cx, buf))?;
                if n == 0 {
                    let e = handshake.receive_eof(R::now()).err();
                    return Poll::Ready(Err(Error::Handshake(e.unwrap_or(HandshakeError::Eof))));
                }
                if let Some(request) = handshake.receive(R::now(), &buf[..n])? {
                    return Poll::Ready(Ok(request));
                }
            })
        }),
    )
    .await;
    let result = match result {
        Some(result) => result,
        None => match handshake.handle_timeout(R::now()) {
            Err(e) => Err(Error::Handshake(e)),
            Ok(()) => Err(Error::Handshake(HandshakeError::Timeout)),
        },
    };
    match result {
        Ok(request) => Ok(Incoming {
            inner: Box::new(Parts {
                stream,
                request,
                handshake,
                config,
                tracker: None,
            }),
            runtime: PhantomData,
        }),
        // A client that hung up gets no answer.
        Err(Error::Handshake(HandshakeError::Eof)) => Err(Error::Handshake(HandshakeError::Eof)),
        // Boxed: failures are rare, and writing their answer inline would
        // widen the state every handshake keeps while it reads.
        Err(Error::Handshake(e)) => Err(Box::pin(answer_failure::<R, S>(stream, config, e)).await),
        Err(e) => Err(e),
    }
}

/// Answers a request that could not be read (400, 431, 408, ...) and
/// closes, within the write timeout.
async fn answer_failure<R: Runtime, S: Transport>(
    mut stream: S,
    config: Arc<Config>,
    e: HandshakeError,
) -> Error {
    let response = HttpResponse::from_handshake_error(&e).encode(false);
    let deadline = R::now() + config.write_timeout;
    let _ = until::<R, _>(deadline, write_and_close(&mut stream, &response)).await;
    Error::Handshake(e)
}

impl<S: Transport, R: Runtime> Incoming<S, R> {
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
                let (ws, driver) = WebSocket::start::<R, S>(
                    stream,
                    Role::Server,
                    config,
                    &accepted.negotiated,
                    accepted.leftover,
                    accepted.response,
                );
                if let Some(tracker) = &tracker {
                    tracker.track(ws.shared(), R::now());
                }
                setup(&ws);
                crate::task::spawn_driver::<R, _>(driver);
                Ok(ws)
            }
            Err(e) => {
                let response =
                    HttpResponse::from_handshake_error(&e).encode(request.method() == "HEAD");
                let deadline = R::now() + config.write_timeout;
                R::spawn(async move {
                    let _ = until::<R, _>(deadline, write_and_close(&mut stream, &response)).await;
                });
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
    /// that carries a body gets 413 instead. Writing is bounded by
    /// [`Config::write_timeout`]: a client that does not read is dropped.
    pub async fn respond(self, response: HttpResponse) -> Result<(), Error> {
        let Parts {
            mut stream,
            request,
            handshake,
            config,
            ..
        } = *self.inner;
        let response = if request.has_body() {
            HttpResponse::from_handshake_error(&HandshakeError::BodyNotAllowed)
        } else {
            response
        };
        let bytes = handshake.reject(&response);
        let deadline = R::now() + config.write_timeout;
        match until::<R, _>(deadline, write_and_close(&mut stream, &bytes)).await {
            Some(written) => Ok(written?),
            None => Err(Error::Io(Arc::new(std::io::ErrorKind::TimedOut.into()))),
        }
    }

    /// The stream, the request and the bytes that arrived after the request
    /// head (the start of whatever the client sent next), for protocols
    /// this crate does not drive itself.
    pub fn into_parts(self) -> (S, Request, Bytes) {
        let mut parts = *self.inner;
        let leftover = Bytes::from(parts.handshake.take_leftover());
        (parts.stream, parts.request, leftover)
    }

    /// The configuration this request was read with.
    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }

    pub(crate) fn set_tracker(&mut self, tracker: Tracker) {
        self.inner.tracker = Some(tracker);
    }

    pub(crate) fn tracker(&self) -> Option<&Tracker> {
        self.inner.tracker.as_ref()
    }
}

/// Accepts a WebSocket on `stream` with the default configuration and no
/// checks beyond RFC 6455 (any path, any origin).
pub fn accept<R: Runtime, S: Transport>(
    stream: S,
) -> impl Future<Output = Result<WebSocket, Error>> + Send {
    accept_with::<R, S, _>(stream, default_config(), |_| Ok(Accept::new()))
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
pub fn accept_with<R, S, F>(
    stream: S,
    config: impl Into<Arc<Config>>,
    hook: F,
) -> impl Future<Output = Result<WebSocket, Error>> + Send
where
    R: Runtime,
    S: Transport,
    F: FnOnce(&Request) -> Result<Accept, HttpResponse> + Send,
{
    Box::pin(accept_with_inner::<R, S, F>(stream, config.into(), hook))
}

async fn accept_with_inner<R, S, F>(
    stream: S,
    config: Arc<Config>,
    hook: F,
) -> Result<WebSocket, Error>
where
    R: Runtime,
    S: Transport,
    F: FnOnce(&Request) -> Result<Accept, HttpResponse>,
{
    let incoming = read_request_inner::<R, S>(stream, config).await?;
    match hook(incoming.request()) {
        Ok(accept) => incoming.accept(accept).await,
        Err(response) => {
            let status = response.status();
            // Boxed, as above: only rejections pay for their write.
            Box::pin(incoming.reject(response)).await?;
            Err(Error::Rejected(status))
        }
    }
}
