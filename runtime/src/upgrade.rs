//! WebSocket upgrades for servers whose HTTP stack has already parsed the
//! request: plain hyper 1 services, and axum handlers (the `axum` feature).
//!
//! [`WebSocketUpgrade`] takes the request apart, checks it with the core
//! (RFC 6455 §4.2.1: the same checks [`accept`](crate::accept) runs), and
//! answers with the response for the HTTP stack to write plus a
//! [`WebSocket`] that works at once: its driver waits for the stack to hand
//! over the upgraded stream, then runs exactly as after `accept` (config,
//! heartbeats, permessage-deflate, rooms).
//!
//! Two kinds of request are accepted:
//!
//! - HTTP/1.1 `GET` with `Upgrade: websocket` (RFC 6455), answered `101`;
//!   the WebSocket then owns the TCP (or TLS) connection.
//! - With the `http2` feature, HTTP/2 extended `CONNECT` with
//!   `:protocol websocket` (RFC 8441), answered `200`; the WebSocket runs on
//!   that one HTTP/2 stream, and the connection keeps serving other
//!   requests beside it. The server must advertise
//!   `SETTINGS_ENABLE_CONNECT_PROTOCOL` (hyper:
//!   `http2().enable_connect_protocol()`), or clients never send one. With
//!   axum, route the path for both methods (`any(handler)`, or
//!   `get(handler).connect(handler)`).
//!
//! Without the `http2` feature an HTTP/2 request is answered with 505.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Extensions, HeaderMap, Method, StatusCode, Uri, Version};
use hyper::upgrade::{OnUpgrade, Upgraded};
use wavecast_core::handshake::{negotiate, Accept, Headers, HttpVersion, Request, UpgradeMode};
use wavecast_core::{Config, HandshakeError, HttpResponse, Role};

use crate::runtime::Runtime;
use crate::server::default_config;
use crate::websocket::WebSocket;

/// A WebSocket upgrade request, parsed by hyper (or axum), checked by
/// wavecast, and not answered yet.
///
/// With hyper, inside a service (`wavecast_tokio::WebSocketUpgrade` is
/// this type with the runtime fixed):
///
/// ```
/// use wavecast_runtime::{Runtime, UpgradeRejection, WebSocket, WebSocketUpgrade};
///
/// /// Answers `request`; spawn something that uses the WebSocket, which
/// /// works once hyper has sent the response.
/// fn upgrade<R: Runtime, B>(
///     mut request: http::Request<B>,
/// ) -> Result<(http::Response<Vec<u8>>, WebSocket), UpgradeRejection> {
///     WebSocketUpgrade::<R>::from_request(&mut request)?.respond()
/// }
/// ```
///
/// With axum (feature `axum`), it is an extractor, and a rejected request
/// becomes an ordinary response (400, 405, 426, 505, ...). Over HTTP/2
/// (feature `http2`) the request is a `CONNECT`, so route it with
/// `any(handler)` or `get(handler).connect(handler)`, not `get` alone.
pub struct WebSocketUpgrade<R: Runtime> {
    request: Request,
    on_upgrade: OnUpgrade,
    config: Arc<Config>,
    accept: Accept,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> std::fmt::Debug for WebSocketUpgrade<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("request", &self.request)
            .field("accept", &self.accept)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> WebSocketUpgrade<R> {
    /// Checks `request` as a WebSocket upgrade and takes hyper's upgrade
    /// handle out of it. The server must serve the connection
    /// `.with_upgrades()`.
    ///
    /// # Errors
    ///
    /// The answer to send instead: the handshake error's status (400 for a
    /// bad key, 405 for another method, 426 without `Upgrade: websocket` or
    /// an HTTP/2 `CONNECT` without `:protocol websocket`, 505 for HTTP/1.0,
    /// and for HTTP/2 without the `http2` feature, ...), or 500 when the
    /// server does not support upgrades.
    pub fn from_request<B>(request: &mut http::Request<B>) -> Result<Self, UpgradeRejection> {
        let (method, uri, version) = (request.method(), request.uri(), request.version());
        Self::from_http(
            method.clone(),
            uri.clone(),
            version,
            &request.headers().clone(),
            request.extensions_mut(),
        )
    }

    /// [`WebSocketUpgrade::from_request`] for a request already split into
    /// parts (as axum's extractors see it).
    pub fn from_parts(parts: &mut http::request::Parts) -> Result<Self, UpgradeRejection> {
        let (method, uri, version) = (parts.method.clone(), parts.uri.clone(), parts.version);
        Self::from_http(method, uri, version, &parts.headers, &mut parts.extensions)
    }

    fn from_http(
        method: Method,
        uri: Uri,
        version: Version,
        headers: &HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Self, UpgradeRejection> {
        let request = convert(&method, &uri, version, headers, extensions)?;
        // A CONNECT without `:protocol` asks for a plain tunnel, not a
        // WebSocket (RFC 8441 §4).
        if request.version() == HttpVersion::Http2
            && method == Method::CONNECT
            && request.header(":protocol").is_none()
        {
            return Err(HandshakeError::NotUpgrade.into());
        }
        request.validate_upgrade()?;
        let Some(on_upgrade) = extensions.remove::<OnUpgrade>() else {
            return Err(UpgradeRejection(HttpResponse::text(
                500,
                "this server cannot upgrade connections (hyper: serve them `.with_upgrades()`)\n",
            )));
        };
        Ok(WebSocketUpgrade {
            request,
            on_upgrade,
            config: default_config(),
            accept: Accept::new(),
            runtime: PhantomData,
        })
    }

    /// The request: path, query, headers, [`Request::origin`],
    /// [`Request::subprotocols`]. Pass it to
    /// [`OriginAllowList::check`](crate::OriginAllowList::check) or
    /// [`HostAllowList::check`](crate::HostAllowList::check), whose
    /// rejection converts into an [`UpgradeRejection`] with `?`.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The `Origin` header, if any (browsers always send one).
    pub fn origin(&self) -> Option<&str> {
        self.request.origin()
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn subprotocols(&self) -> Vec<&str> {
        self.request.subprotocols()
    }

    /// Runs the connection with `config` (limits, heartbeat, idle and close
    /// timeouts, deflate) instead of [`Config::default`].
    pub fn config(mut self, config: impl Into<Arc<Config>>) -> Self {
        self.config = config.into();
        self
    }

    /// Answers with `accept`: a chosen subprotocol (it must be one the
    /// client offered) and extra response headers.
    pub fn accept(mut self, accept: Accept) -> Self {
        self.accept = accept;
        self
    }

    /// Builds the response for the HTTP stack to send (`101` for an
    /// HTTP/1.1 upgrade, `200` for an HTTP/2 extended `CONNECT`), and the
    /// [`WebSocket`], whose driver starts on `R` now and runs as soon as
    /// the stack hands over the stream (if it never does, the WebSocket
    /// ends with an I/O error).
    ///
    /// # Errors
    ///
    /// The answer to send instead, when the chosen subprotocol was not
    /// offered.
    pub fn respond<B: From<Bytes>>(
        self,
    ) -> Result<(http::Response<B>, WebSocket), UpgradeRejection> {
        self.respond_then(|_| {})
    }

    /// Like [`WebSocketUpgrade::respond`], but runs `setup` on the new
    /// connection before its driver starts and before the response is
    /// returned: join a room here ([`Room::join`](crate::Room::join)) and
    /// the client cannot miss anything published after it sees the `101`
    /// (or `200`).
    ///
    /// # Errors
    ///
    /// As [`WebSocketUpgrade::respond`].
    pub fn respond_then<B: From<Bytes>>(
        self,
        setup: impl FnOnce(&WebSocket),
    ) -> Result<(http::Response<B>, WebSocket), UpgradeRejection> {
        let mode = self.request.upgrade_mode();
        let (headers, negotiated) = negotiate(
            self.request.method(),
            self.request.headers().iter(),
            &self.accept,
            mode,
        )?;
        // RFC 8441 §5: any 2xx accepts; the body must stay empty, since the
        // stream's DATA frames are the WebSocket from here on.
        let mut response = http::Response::new(B::from(Bytes::new()));
        *response.status_mut() = match mode {
            UpgradeMode::ExtendedConnect => StatusCode::OK,
            _ => StatusCode::SWITCHING_PROTOCOLS,
        };
        append_headers(response.headers_mut(), &headers)?;
        // hyper replays the bytes it read past the head through the
        // upgraded stream itself: there is no leftover to pass.
        let (ws, driver) = WebSocket::start::<R, _>(
            PendingUpgrade::Waiting(self.on_upgrade),
            Role::Server,
            self.config,
            &negotiated,
            Bytes::new(),
            Vec::new(),
        );
        setup(&ws);
        crate::task::spawn_driver::<R, _>(driver);
        Ok((response, ws))
    }

    /// Answers the upgrade and runs `callback` with the [`WebSocket`] in a
    /// task of its own; returns the `101` (or `200`) response for axum to
    /// send.
    #[cfg(feature = "axum")]
    pub fn on_upgrade<F, Fut>(self, callback: F) -> axum_core::response::Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_upgrade_then(|_| (), |ws, ()| callback(ws))
    }

    /// Like [`WebSocketUpgrade::on_upgrade`], but runs `setup` on the
    /// connection before the response is returned (see
    /// [`WebSocketUpgrade::respond_then`]) and passes what it returns to
    /// `callback`:
    ///
    /// ```
    /// # use wavecast_runtime::{Room, Runtime, WebSocketUpgrade};
    /// fn chat<R: Runtime>(
    ///     upgrade: WebSocketUpgrade<R>,
    ///     room: Room<R>,
    /// ) -> axum_core::response::Response {
    ///     upgrade.on_upgrade_then(
    ///         |ws| (room.join(ws.sender()), room),
    ///         |ws, (member, room)| async move {
    ///             let _ = room.chat(ws, member).await;
    ///         },
    ///     )
    /// }
    /// ```
    #[cfg(feature = "axum")]
    pub fn on_upgrade_then<T, S, F, Fut>(
        self,
        setup: S,
        callback: F,
    ) -> axum_core::response::Response
    where
        S: FnOnce(&WebSocket) -> T,
        F: FnOnce(WebSocket, T) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut state = None;
        // The connection's driver runs in the callback's task.
        let (responded, drivers) =
            crate::task::collect_drivers(|| self.respond_then(|ws| state = Some(setup(ws))));
        match responded {
            Ok((response, ws)) => {
                let state = state.expect("respond_then runs setup when it succeeds");
                R::spawn(crate::task::connection_task(callback(ws, state)).with_drivers(drivers));
                response
            }
            Err(rejection) => axum_core::response::IntoResponse::into_response(rejection),
        }
    }
}

/// Copies wavecast's response headers into hyper's.
fn append_headers(
    map: &mut HeaderMap,
    headers: &[(String, String)],
) -> Result<(), UpgradeRejection> {
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            // `Accept::header` checks names and values: this is a bug.
            return Err(UpgradeRejection(HttpResponse::new(500)));
        };
        map.append(name, value);
    }
    Ok(())
}

/// Why an upgrade request is refused, as the HTTP answer to send: a status,
/// headers (`Sec-WebSocket-Version: 13` with a 426, RFC 6455 §4.4) and a
/// one-line text body.
///
/// With hyper, send [`UpgradeRejection::into_response`]; with axum it is a
/// response itself.
#[derive(Clone, Debug)]
pub struct UpgradeRejection(HttpResponse);

impl UpgradeRejection {
    /// The answer as wavecast describes it.
    pub fn response(&self) -> &HttpResponse {
        &self.0
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.0.status()
    }

    /// The answer as an `http` response, for hyper (`Full<Bytes>`) or any
    /// body built from bytes.
    pub fn into_response<B: From<Bytes>>(self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(self.0.payload().clone()));
        *response.status_mut() =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if append_headers(response.headers_mut(), self.0.headers()).is_err() {
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        response
    }
}

impl std::fmt::Display for UpgradeRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(self.0.payload());
        write!(f, "{}: {}", self.0.status(), body.trim_end())
    }
}

impl std::error::Error for UpgradeRejection {}

impl From<HandshakeError> for UpgradeRejection {
    fn from(e: HandshakeError) -> Self {
        UpgradeRejection(HttpResponse::from_handshake_error(&e))
    }
}

impl From<HttpResponse> for UpgradeRejection {
    fn from(response: HttpResponse) -> Self {
        UpgradeRejection(response)
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for UpgradeRejection {
    fn into_response(self) -> axum_core::response::Response {
        UpgradeRejection::into_response(self)
    }
}

#[cfg(feature = "axum")]
impl<R: Runtime, S: Send + Sync> axum_core::extract::FromRequestParts<S> for WebSocketUpgrade<R> {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Self::from_parts(parts)
    }
}

/// The core's view of a hyper (or axum) request: the same [`Request`] that
/// [`Incoming::request`](crate::Incoming::request) gives under
/// [`serve`](crate::serve), so one routing function serves both stacks
/// (path, query, [`Request::is_websocket_upgrade`], origin and host checks).
///
/// Over HTTP/2 the `:authority` pseudo-header becomes the `host` header
/// (when there is no `host`), and an extended `CONNECT`'s `:protocol`
/// (hyper keeps it in the extensions, feature `http2`) becomes a
/// `:protocol` header.
///
/// # Errors
///
/// [`HandshakeError::UnsupportedHttpVersion`] for a version the core does
/// not model (HTTP/0.9, HTTP/3).
///
/// ```
/// # use wavecast_runtime::request_from_http;
/// let request = http::Request::get("http://example.com/sse/lobby?x=1").body(()).unwrap();
/// let request = request_from_http(&request).unwrap();
/// assert_eq!((request.path(), request.query()), ("/sse/lobby", Some("x=1")));
/// assert_eq!(request.header("host"), Some("example.com"));
/// assert!(!request.is_websocket_upgrade());
/// ```
pub fn request_from_http<B>(request: &http::Request<B>) -> Result<Request, HandshakeError> {
    convert(
        request.method(),
        request.uri(),
        request.version(),
        request.headers(),
        request.extensions(),
    )
}

fn convert(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Request, HandshakeError> {
    let version = match version {
        Version::HTTP_10 => HttpVersion::Http10,
        Version::HTTP_11 => HttpVersion::Http11,
        #[cfg(feature = "http2")]
        Version::HTTP_2 => HttpVersion::Http2,
        _ => return Err(HandshakeError::UnsupportedHttpVersion),
    };
    let mut fields: Vec<(&str, &[u8])> = Vec::with_capacity(headers.len() + 2);
    #[cfg(feature = "http2")]
    if version == HttpVersion::Http2 && method == Method::CONNECT {
        // hyper keeps the pseudo-header out of the header map; the core
        // checks its value (RFC 8441 §4).
        if let Some(protocol) = extensions.get::<hyper::ext::Protocol>() {
            fields.push((":protocol", protocol.as_str().as_bytes()));
        }
    }
    #[cfg(not(feature = "http2"))]
    let _ = (method, extensions);
    // HTTP/2 carries the host as `:authority` (RFC 9113 §8.3.1), which
    // hyper puts in the URI: give it to the checks that read `Host`
    // (`HostAllowList`).
    let authority = uri.authority().map(|a| a.as_str().as_bytes());
    if let (None, Some(authority)) = (headers.get(http::header::HOST), authority) {
        fields.push(("host", authority));
    }
    fields.extend(
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    );
    let headers: Headers = fields.into_iter().collect();
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(Request::new(method.as_str(), target, version, headers))
}

/// The driver's transport: hyper's upgrade handle until hyper has sent the
/// `101` (or `200`) and hands over the stream, then that stream (the TCP
/// connection for HTTP/1.1, one HTTP/2 stream for extended `CONNECT`).
enum PendingUpgrade {
    Waiting(OnUpgrade),
    Upgraded(Upgraded),
    Failed,
}

impl PendingUpgrade {
    fn poll_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Pin<&mut Upgraded>>> {
        if let PendingUpgrade::Waiting(on_upgrade) = self {
            match ready!(Pin::new(on_upgrade).poll(cx)) {
                Ok(upgraded) => *self = PendingUpgrade::Upgraded(upgraded),
                Err(e) => {
                    *self = PendingUpgrade::Failed;
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, e)));
                }
            }
        }
        match self {
            PendingUpgrade::Upgraded(upgraded) => Poll::Ready(Ok(Pin::new(upgraded))),
            _ => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl futures_io::AsyncRead for PendingUpgrade {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_stream(cx))?;
        let mut read = hyper::rt::ReadBuf::new(buf);
        ready!(hyper::rt::Read::poll_read(stream, cx, read.unfilled()))?;
        Poll::Ready(Ok(read.filled().len()))
    }
}

impl futures_io::AsyncWrite for PendingUpgrade {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_stream(cx))?;
        hyper::rt::Write::poll_write(stream, cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_stream(cx))?;
        hyper::rt::Write::poll_write_vectored(stream, cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_stream(cx))?;
        hyper::rt::Write::poll_flush(stream, cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PendingUpgrade::Upgraded(upgraded) => {
                hyper::rt::Write::poll_shutdown(Pin::new(upgraded), cx)
            }
            // Nothing was upgraded: nothing to shut down.
            _ => Poll::Ready(Ok(())),
        }
    }
}
