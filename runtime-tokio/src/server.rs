//! Accepting connections: read the upgrade request, let the application
//! decide, answer, and hand the stream to the driver.

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
#[derive(Debug)]
pub struct Incoming<S> {
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
pub async fn read_request<S>(
    mut stream: S,
    config: impl Into<Arc<Config>>,
) -> Result<Incoming<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = config.into();
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
            stream,
            request,
            handshake,
            config,
            tracker: None,
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
        } = self;
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

    /// The stream, the request and any bytes read past the head, for
    /// protocols this crate does not drive itself.
    pub fn into_parts(self) -> (S, Request) {
        (self.stream, self.request)
    }

    pub(crate) fn set_tracker(&mut self, tracker: wavecast_core::Tracker) {
        self.tracker = Some(tracker);
    }

    pub(crate) fn tracker(&self) -> Option<&wavecast_core::Tracker> {
        self.tracker.as_ref()
    }

    /// The configuration this request was read with.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }
}

/// Accepts a WebSocket on `stream` with the default configuration and no
/// checks beyond RFC 6455 (any path, any origin).
pub async fn accept<S>(stream: S) -> Result<WebSocket, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    accept_with(stream, Config::default(), |_| Ok(Accept::new())).await
}

/// Accepts with a hook that sees the request and decides: `Ok(Accept)` (a
/// subprotocol and extra headers may be set) or `Err(HttpResponse)` to
/// reject with that status and body.
pub async fn accept_with<S, F>(
    stream: S,
    config: impl Into<Arc<Config>>,
    hook: F,
) -> Result<WebSocket, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(&Request) -> Result<Accept, HttpResponse>,
{
    let incoming = read_request(stream, config).await?;
    match hook(incoming.request()) {
        Ok(accept) => incoming.accept(accept).await,
        Err(response) => {
            let status = response.status();
            incoming.reject(response).await?;
            Err(Error::Rejected(status))
        }
    }
}
