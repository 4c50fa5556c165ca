//! Server side of the opening handshake (RFC 6455 §4.2).
//!
//! Drive it like this:
//!
//! 1. [`ServerHandshake::new`], then feed every read to
//!    [`ServerHandshake::receive`] until it returns a [`Request`]; sleep until
//!    [`ServerHandshake::poll_timeout`] and call
//!    [`ServerHandshake::handle_timeout`] when it passes.
//! 2. Inspect the request (path, origin, [`Request::subprotocols`], …). A
//!    plain HTTP request ([`Request::is_websocket_upgrade`] is false) can be
//!    answered with an [`HttpResponse`].
//! 3. Call [`ServerHandshake::accept`] and write [`Accepted::response`], then
//!    build the connection and feed it [`Accepted::leftover`] first; or call
//!    [`ServerHandshake::reject`] and write its bytes.
//!
//! On any `Err`, write [`HttpResponse::from_handshake_error`] (unless the
//! error is [`HandshakeError::Eof`]) and close the transport.
//!
//! Input that cannot be an HTTP/1.1 request fails at its first impossible
//! byte, not at the deadline: a TLS ClientHello on the plain port
//! ([`HandshakeError::TlsOnPlainPort`]), binary noise, an SSH banner, an
//! HTTP/2 preface, a bare LF line ending, a control character in a header
//! name ([`HandshakeError::MalformedHttp`]); all answered with 400. Line
//! endings must be CRLF: RFC 9112 §2.2 allows accepting a bare LF, we
//! choose not to (two parsers reading one head two ways is how request
//! smuggling starts, and no WebSocket client sends one).
//!
//! Servers behind hyper or axum, which have already parsed the request, use
//! [`negotiate`] instead: the same checks, headers in and headers out.

use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;

use super::{
    accept_key, check_header, header_slots, http_version, is_tchar, is_token, parse_error,
    parse_extensions, CompleteHead, ExtensionOffer, HeadReader, Headers, HttpVersion, Negotiated,
};
use crate::config::Config;
#[cfg(feature = "deflate")]
use crate::deflate::DeflateConfig;
use crate::error::HandshakeError;
use crate::http::HttpResponse;

/// A parsed HTTP/1.1 request head, owned.
///
/// Returned by [`ServerHandshake::receive`] for the application to inspect
/// before it accepts or rejects the upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    version: HttpVersion,
    headers: Headers,
}

impl Request {
    /// A request head another HTTP stack (hyper, axum) has already parsed,
    /// so that the same accessors and checks ([`Request::validate_upgrade`],
    /// [`crate::OriginAllowList::check`], ...) serve it. `target` is the
    /// path and query, e.g. `/chat?room=a`.
    pub fn new(method: &str, target: &str, version: HttpVersion, headers: Headers) -> Self {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            version,
            headers,
        }
    }

    /// The request method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The full request target as sent, e.g. `/chat?room=1`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path part of the target, before any `?`.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The query part of the target, after the first `?`, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// The HTTP version of the request.
    pub fn version(&self) -> HttpVersion {
        self.version
    }

    /// All header fields.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive), if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The raw bytes of the first value of header `name`.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers.get_bytes(name)
    }

    /// Every UTF-8 value of header `name`, in order (headers may repeat).
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.get_all(name)
    }

    /// The `Origin` header, which browsers always send (RFC 6455 §10.2);
    /// check it against an allow-list to stop cross-site WebSocket hijacking.
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }

    /// The `Host` header.
    pub fn host(&self) -> Option<&str> {
        self.header("host")
    }

    /// Subprotocols the client offered in `Sec-WebSocket-Protocol`, in its
    /// order of preference, across repeated headers.
    pub fn subprotocols(&self) -> Vec<&str> {
        self.headers.list("sec-websocket-protocol").collect()
    }

    /// Extensions the client offered in `Sec-WebSocket-Extensions`
    /// (RFC 6455 §9.1), in order.
    pub fn extensions(&self) -> Result<Vec<ExtensionOffer>, HandshakeError> {
        parse_extensions(self.headers.get_all_bytes("sec-websocket-extensions"))
    }

    /// Whether the request asks for a WebSocket: `Upgrade: websocket` and
    /// `Connection: upgrade` (RFC 6455), or over HTTP/2 a `CONNECT` with
    /// `:protocol websocket` (RFC 8441). Use this to serve plain HTTP (SSE,
    /// health checks) and WebSocket on one port; it does not check the rest
    /// of the handshake, [`Request::validate_upgrade`] does.
    pub fn is_websocket_upgrade(&self) -> bool {
        match self.version {
            HttpVersion::Http2 => {
                self.method == "CONNECT"
                    && self
                        .header(":protocol")
                        .is_some_and(|p| p.eq_ignore_ascii_case("websocket"))
            }
            HttpVersion::Http10 | HttpVersion::Http11 => {
                self.headers.has_token("upgrade", "websocket")
                    && self.headers.has_token("connection", "upgrade")
            }
        }
    }

    /// Whether the request announces a body (`Content-Length` above zero, or
    /// any `Transfer-Encoding`). The handshake never reads bodies.
    pub fn has_body(&self) -> bool {
        has_body(&self.headers)
    }

    /// The `Last-Event-ID` header a reconnecting `EventSource` sends (SSE).
    pub fn last_event_id(&self) -> Option<&str> {
        self.header("last-event-id")
    }

    /// Checks the request against RFC 6455 §4.2.1: `GET`, HTTP/1.1,
    /// `Host`, `Upgrade: websocket`, `Connection: upgrade`,
    /// `Sec-WebSocket-Version: 13`, one `Sec-WebSocket-Key` of 16 bytes, and
    /// no body. [`ServerHandshake::accept`] runs this too.
    ///
    /// An [`HttpVersion::Http2`] request is checked against RFC 8441 §5
    /// instead ([`Request::upgrade_mode`]): method `CONNECT`, `:protocol`
    /// `websocket` if that pseudo-header is among the headers, and
    /// `Sec-WebSocket-Version: 13`.
    pub fn validate_upgrade(&self) -> Result<(), HandshakeError> {
        validate(
            &self.method,
            self.version,
            &self.headers,
            self.upgrade_mode(),
        )
        .map(drop)
    }

    /// How this request asks for a WebSocket: an extended `CONNECT`
    /// (RFC 8441) over HTTP/2, an `Upgrade` (RFC 6455) otherwise. Pass it to
    /// [`negotiate`].
    pub fn upgrade_mode(&self) -> UpgradeMode {
        match self.version {
            HttpVersion::Http2 => UpgradeMode::ExtendedConnect,
            HttpVersion::Http10 | HttpVersion::Http11 => UpgradeMode::Http11,
        }
    }
}

fn has_body(headers: &Headers) -> bool {
    // Raw values: a Content-Length that is not UTF-8 still announces a body.
    headers.contains("transfer-encoding")
        || headers.get_all_bytes("content-length").any(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim_matches([' ', '\t']).parse::<u64>().ok())
                .is_none_or(|n| n > 0)
        })
}

/// How the upgrade arrives, for [`negotiate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeMode {
    /// An HTTP/1.1 `GET` with `Upgrade: websocket` (RFC 6455 §4.2.1); answer
    /// with status 101 and the returned headers.
    Http11,
    /// An HTTP/2 extended `CONNECT` with `:protocol websocket` (RFC 8441
    /// §5); there is no key and no accept header. Answer with status 200 and
    /// the returned headers.
    ExtendedConnect,
}

/// What the application answers to an upgrade request: the subprotocol it
/// chose and extra response headers (e.g. `Set-Cookie`).
///
/// ```
/// # use wavecast_core::handshake::Accept;
/// let accept = Accept::new().subprotocol("chat")?.header("Set-Cookie", "id=1")?;
/// # Ok::<(), wavecast_core::HandshakeError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Accept {
    subprotocol: Option<String>,
    headers: Vec<(String, String)>,
    /// `None`: use [`Config::deflate`] ([`ServerHandshake::accept`]) or the
    /// default [`DeflateConfig`] ([`negotiate`]).
    #[cfg(feature = "deflate")]
    deflate: Option<Option<DeflateConfig>>,
}

/// Headers the handshake writes itself; an application may not add them.
const RESERVED_RESPONSE_HEADERS: [&str; 7] = [
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

impl Accept {
    /// Accept with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Accept::default()
    }

    /// Chooses `name`, which must be one of [`Request::subprotocols`]
    /// (checked by [`ServerHandshake::accept`]). Fails if `name` is not a token.
    pub fn subprotocol(mut self, name: impl Into<String>) -> Result<Self, HandshakeError> {
        let name = name.into();
        if !is_token(&name) {
            return Err(HandshakeError::InvalidHeader(format!(
                "Sec-WebSocket-Protocol: {name}"
            )));
        }
        self.subprotocol = Some(name);
        Ok(self)
    }

    /// Adds a response header. Fails if the name is not a token, the value
    /// contains control characters (CR/LF would inject headers), or the
    /// header is one the handshake sets itself.
    pub fn header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, HandshakeError> {
        let (name, value) = (name.into(), value.into());
        check_header(&name, &value)?;
        if RESERVED_RESPONSE_HEADERS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&name))
        {
            return Err(HandshakeError::ReservedHeader(name));
        }
        self.headers.push((name, value));
        Ok(self)
    }

    /// Overrides how permessage-deflate (RFC 7692) is negotiated for this
    /// connection: `None` declines it, `Some` accepts the client's first
    /// acceptable offer on these terms. Without this call
    /// [`ServerHandshake::accept`] follows [`Config::deflate`] and
    /// [`negotiate`] uses [`DeflateConfig::default`].
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.deflate = Some(deflate);
        self
    }

    /// The chosen subprotocol.
    pub fn chosen_subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The extra response headers.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
}

/// A successful server handshake: write `response`, then hand `negotiated`
/// and `leftover` to the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Accepted {
    /// The `101 Switching Protocols` response to write before any frame.
    pub response: Vec<u8>,
    /// The agreed subprotocol and extensions.
    pub negotiated: Negotiated,
    /// Bytes that arrived after the request head; they belong to the
    /// WebSocket connection and must be fed to it first.
    pub leftover: Bytes,
}

#[derive(Debug)]
enum State {
    Reading(HeadReader, RequestPrefix),
    Received { leftover: Vec<u8> },
    Failed(HandshakeError),
}

/// The server's opening handshake for one connection (RFC 6455 §4.2). See
/// the [module docs](self) for the call order.
#[derive(Debug)]
pub struct ServerHandshake {
    state: State,
    max_headers: usize,
    /// Bytes tolerated after the head before the handshake completes.
    max_leftover: usize,
    deadline: Instant,
    head_request: bool,
    #[cfg(feature = "deflate")]
    deflate: Option<DeflateConfig>,
}

impl ServerHandshake {
    /// Starts a handshake at `now`; it must complete within
    /// [`Config::handshake_timeout`].
    pub fn new(config: &Config, now: Instant) -> Self {
        ServerHandshake {
            state: State::Reading(HeadReader::new(config.max_head_size), RequestPrefix::new()),
            max_headers: config.max_headers,
            max_leftover: config.max_head_size,
            deadline: now + config.handshake_timeout,
            head_request: false,
            #[cfg(feature = "deflate")]
            deflate: config.deflate.clone(),
        }
    }

    /// Feeds bytes read from the transport. Returns `Ok(None)` while the
    /// request head is incomplete and `Ok(Some(request))` once, when it is
    /// complete; then call [`ServerHandshake::accept`] or
    /// [`ServerHandshake::reject`]. Bytes after the head are kept for the
    /// connection (a well-behaved client sends none before the 101).
    ///
    /// Bytes that cannot begin a request head fail here at once, at the
    /// first impossible byte (see the [module docs](self)), so a peer that
    /// does not speak HTTP is answered without waiting for the deadline.
    ///
    /// Errors are final: answer them with
    /// [`HttpResponse::from_handshake_error`] and close.
    pub fn receive(
        &mut self,
        now: Instant,
        bytes: &[u8],
    ) -> Result<Option<Request>, HandshakeError> {
        if now >= self.deadline && !matches!(self.state, State::Failed(_)) {
            return self.fail(HandshakeError::Timeout);
        }
        let result = match &mut self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Reading(reader, prefix) => {
                match prefix.push(bytes).and_then(|()| reader.push(bytes)) {
                    Ok(Some(CompleteHead { head, leftover })) => {
                        match parse_request(&head, self.max_headers) {
                            Ok(request) => {
                                self.head_request = request.method == "HEAD";
                                self.state = State::Received { leftover };
                                Ok(Some(request))
                            }
                            Err(e) => Err(e),
                        }
                    }
                    other => other.map(|_| None),
                }
            }
            State::Received { leftover } => {
                if leftover.len() + bytes.len() > self.max_leftover {
                    Err(HandshakeError::MalformedHttp(
                        "too much data before the handshake completed",
                    ))
                } else {
                    leftover.extend_from_slice(bytes);
                    Ok(None)
                }
            }
        };
        match result {
            Err(e) => self.fail(e),
            ok => ok,
        }
    }

    /// Tells the handshake the transport ended. Always an error: a request
    /// that did not lead to `accept` cannot become a connection.
    pub fn receive_eof(&mut self, _now: Instant) -> Result<(), HandshakeError> {
        self.fail(HandshakeError::Eof)
    }

    /// Takes the bytes that arrived after the request head (the start of
    /// the next protocol: WebSocket frames, a request body), for a caller
    /// that hands the stream to another protocol instead of calling
    /// [`ServerHandshake::accept`]. Empty before the head is complete.
    pub fn take_leftover(&mut self) -> Vec<u8> {
        match &mut self.state {
            State::Received { leftover } => std::mem::take(leftover),
            _ => Vec::new(),
        }
    }

    /// The handshake deadline (`now` given to [`ServerHandshake::new`] plus
    /// [`Config::handshake_timeout`]); sleep until it, then call
    /// [`ServerHandshake::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Failed(_) => None,
            _ => Some(self.deadline),
        }
    }

    /// Checks the deadline: `Err(HandshakeError::Timeout)` once it passed,
    /// which stops peers that send their head too slowly (slowloris).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            _ if now >= self.deadline => self.fail(HandshakeError::Timeout),
            _ => Ok(()),
        }
    }

    /// Accepts the upgrade: validates `request` (RFC 6455 §4.2.1), checks
    /// that the chosen subprotocol was offered, and builds the
    /// `101 Switching Protocols` response (§4.2.2). Write
    /// [`Accepted::response`], then start the connection with
    /// [`Accepted::negotiated`] and feed it [`Accepted::leftover`].
    ///
    /// On `Err`, answer with [`HttpResponse::from_handshake_error`].
    pub fn accept(self, request: &Request, accept: Accept) -> Result<Accepted, HandshakeError> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        let (headers, negotiated) = respond(
            &request.method,
            request.version,
            &request.headers,
            &accept,
            UpgradeMode::Http11,
            #[cfg(feature = "deflate")]
            accept
                .deflate
                .clone()
                .unwrap_or(self.deflate.clone())
                .as_ref(),
        )?;
        let mut response = Vec::with_capacity(256);
        response.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
        for (name, value) in &headers {
            write_header(&mut response, name, value);
        }
        response.extend_from_slice(b"\r\n");
        let leftover = match self.state {
            State::Received { leftover } => Bytes::from(leftover),
            _ => Bytes::new(),
        };
        Ok(Accepted {
            response,
            negotiated,
            leftover,
        })
    }

    /// Rejects the request with `response` and returns the bytes to write
    /// before closing the transport. A `HEAD` request gets the head only.
    pub fn reject(self, response: &HttpResponse) -> Vec<u8> {
        response.encode(self.head_request)
    }

    fn fail<T>(&mut self, e: HandshakeError) -> Result<T, HandshakeError> {
        self.state = State::Failed(e.clone());
        Err(e)
    }
}

pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Where [`RequestPrefix`] is in the request head (RFC 9112 §2.2, §3, §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrefixState {
    /// Nothing yet but empty lines, which may precede the request line.
    Start,
    /// The CR of an empty line before the request line.
    StartCr,
    /// Inside the method token.
    Method,
    /// After the space that ends the method.
    TargetStart,
    /// Inside the request target.
    Target,
    /// After the space that ends the target: this many bytes of
    /// `HTTP/1.x` matched.
    Version(u8),
    /// After the version, which must be followed by CRLF.
    VersionEnd,
    /// The CR ending the request line or a header line.
    LineCr,
    /// At the start of a header line (or of the empty line ending the head).
    LineStart,
    /// Inside a header name.
    Name,
    /// Inside a header value.
    Value,
    /// The CR of the empty line that ends the head.
    EndCr,
    /// The head is complete; later bytes belong to the next protocol.
    Done,
}

/// Checks, as bytes arrive, that what came so far can still be the start
/// of an HTTP/1.1 request head, so that input which cannot (a TLS
/// ClientHello on the plain port, an SSH banner, binary noise) is refused
/// at its first impossible byte instead of holding the connection until
/// the handshake deadline.
///
/// The grammar is RFC 9112's, strictly:
///
/// - optional empty lines (CRLF), then `method SP request-target SP
///   HTTP/1.0|HTTP/1.1 CRLF`: the method is a token, the target visible
///   ASCII, each separator exactly one space;
/// - header lines `field-name ":" field-value CRLF`: the name a token with
///   no whitespace before the colon, the value HTAB, SP, visible ASCII or
///   obs-text; no line folding (RFC 9112 §5.2 allows refusing it);
/// - every line ends with CRLF. RFC 9112 §2.2 lets a recipient accept a
///   bare LF as a line terminator; we do not: no client that speaks
///   WebSocket sends one, and one head read two ways by two parsers is how
///   request smuggling starts.
///
/// This is exactly what `httparse` accepts in a request with its default
/// settings, minus bare LF, so every head that passes here parses there;
/// `httparse` still does the parsing once the head is complete.
#[derive(Clone, Copy, Debug)]
struct RequestPrefix {
    state: PrefixState,
    /// No byte has arrived yet (a TLS record starts with the first byte).
    first: bool,
}

impl RequestPrefix {
    fn new() -> Self {
        RequestPrefix {
            state: PrefixState::Start,
            first: true,
        }
    }

    /// Checks `bytes`, the next ones after everything checked before.
    /// Bytes after the end of the head are not looked at.
    fn push(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        use PrefixState::*;
        const VERSION: &[u8] = b"HTTP/1.";
        let malformed = HandshakeError::MalformedHttp;
        for &b in bytes {
            if self.first {
                self.first = false;
                // 0x16 is the TLS handshake record type (RFC 8446 §5.1).
                if b == 0x16 {
                    return Err(HandshakeError::TlsOnPlainPort);
                }
            }
            if b == b'\n' && !matches!(self.state, StartCr | LineCr | EndCr | Done) {
                return Err(malformed("bare LF: lines must end with CRLF"));
            }
            self.state = match (self.state, b) {
                (Done, _) => return Ok(()),
                (Start, b'\r') => StartCr,
                (StartCr | LineCr | EndCr, b) if b != b'\n' => {
                    return Err(malformed("CR not followed by LF"))
                }
                (StartCr, _) => Start,
                (Start | Method, b) if is_tchar(b) => Method,
                (Start, _) => return Err(malformed("invalid byte where a method was expected")),
                (Method, b' ') => TargetStart,
                (Method, _) => return Err(malformed("invalid byte in the method")),
                (TargetStart | Target, b) if is_target_byte(b) => Target,
                (TargetStart, _) => {
                    return Err(malformed(
                        "invalid byte where a request target was expected",
                    ))
                }
                (Target, b' ') => Version(0),
                (Target, _) => return Err(malformed("invalid byte in the request target")),
                (Version(n), b) if usize::from(n) < VERSION.len() => {
                    if b != VERSION[usize::from(n)] {
                        return Err(malformed(
                            "invalid HTTP version (expected HTTP/1.0 or HTTP/1.1)",
                        ));
                    }
                    Version(n + 1)
                }
                (Version(_), b'0' | b'1') => VersionEnd,
                (Version(_), _) => {
                    return Err(malformed(
                        "invalid HTTP version (expected HTTP/1.0 or HTTP/1.1)",
                    ))
                }
                (VersionEnd | Value, b'\r') => LineCr,
                (VersionEnd, _) => return Err(malformed("the request line must end with CRLF")),
                (LineCr, _) => LineStart,
                (LineStart, b'\r') => EndCr,
                (LineStart | Name, b) if is_tchar(b) => Name,
                (LineStart, b' ' | b'\t') => {
                    return Err(malformed(
                        "header line starts with whitespace (line folding)",
                    ))
                }
                (Name, b':') => Value,
                (LineStart | Name, _) => return Err(malformed("invalid byte in a header name")),
                (Value, b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => Value,
                (Value, _) => return Err(malformed("invalid byte in a header value")),
                (EndCr, _) => Done,
            };
        }
        Ok(())
    }
}

/// A byte allowed in a request target: visible ASCII (RFC 9112 §3.2; a
/// target is a URI, whose other characters are percent-encoded).
fn is_target_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

fn parse_request(head: &[u8], max_headers: usize) -> Result<Request, HandshakeError> {
    let mut slots = header_slots(max_headers);
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HandshakeError::MalformedHttp("incomplete request head"))
        }
        Err(e) => return Err(parse_error(e, max_headers)),
    }
    // A complete parse fills method, path and version.
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(HandshakeError::MalformedHttp("missing request line"));
    };
    Ok(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        version: http_version(req.version),
        headers: Headers::from_httparse(req.headers),
    })
}

/// Header-level handshake for servers whose HTTP stack (hyper, axum) has
/// already parsed the request: the same checks as
/// [`Request::validate_upgrade`] and [`ServerHandshake::accept`].
///
/// Pass the method and the request headers, e.g.
/// `req.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes()))`. For
/// [`UpgradeMode::ExtendedConnect`] (RFC 8441) pass method `CONNECT`; a
/// `:protocol` pseudo-header, if included, must be `websocket`.
///
/// Returns the headers to send with status 101 ([`UpgradeMode::Http11`]) or
/// 200 ([`UpgradeMode::ExtendedConnect`]) and the negotiated parameters.
pub fn negotiate<'h>(
    method: &str,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    accept: &Accept,
    mode: UpgradeMode,
) -> Result<(Vec<(String, String)>, Negotiated), HandshakeError> {
    let headers: Headers = headers.into_iter().collect();
    respond(
        method,
        HttpVersion::Http11,
        &headers,
        accept,
        mode,
        #[cfg(feature = "deflate")]
        accept
            .deflate
            .clone()
            .unwrap_or_else(|| Some(DeflateConfig::default()))
            .as_ref(),
    )
}

/// Validates the request and builds the response headers: the one
/// implementation behind [`ServerHandshake::accept`] and [`negotiate`].
fn respond(
    method: &str,
    version: HttpVersion,
    headers: &Headers,
    accept: &Accept,
    mode: UpgradeMode,
    #[cfg(feature = "deflate")] deflate: Option<&DeflateConfig>,
) -> Result<(Vec<(String, String)>, Negotiated), HandshakeError> {
    let (key, offers) = validate(method, version, headers, mode)?;
    if let Some(chosen) = &accept.subprotocol {
        if !headers.list("sec-websocket-protocol").any(|p| p == chosen) {
            return Err(HandshakeError::SubprotocolNotOffered(chosen.clone()));
        }
    }
    #[cfg(feature = "deflate")]
    let (extensions, deflate) = negotiate_extensions(&offers, deflate);
    #[cfg(not(feature = "deflate"))]
    let extensions = negotiate_extensions(&offers);

    let mut out = Vec::with_capacity(5 + accept.headers.len());
    if let Some(key) = key {
        out.push(("Upgrade".to_owned(), "websocket".to_owned()));
        out.push(("Connection".to_owned(), "Upgrade".to_owned()));
        out.push((
            "Sec-WebSocket-Accept".to_owned(),
            accept_key(key.as_bytes()),
        ));
    }
    if let Some(chosen) = &accept.subprotocol {
        out.push(("Sec-WebSocket-Protocol".to_owned(), chosen.clone()));
    }
    if !extensions.is_empty() {
        out.push(("Sec-WebSocket-Extensions".to_owned(), extensions.join(", ")));
    }
    out.extend(accept.headers.iter().cloned());
    Ok((
        out,
        Negotiated {
            subprotocol: accept.subprotocol.clone(),
            extensions,
            #[cfg(feature = "deflate")]
            deflate,
        },
    ))
}

/// Chooses which offered extensions to enable, returning the response
/// items. Without the `deflate` feature no extension is implemented, so
/// none is echoed and the client proceeds without (RFC 6455 §9.1).
#[cfg(not(feature = "deflate"))]
fn negotiate_extensions(_offers: &[ExtensionOffer]) -> Vec<String> {
    Vec::new()
}

/// Chooses which offered extensions to enable, returning the response items
/// and the agreed permessage-deflate parameters: the first acceptable
/// permessage-deflate offer, if `deflate` is enabled (RFC 7692 §5, §7.1;
/// malformed offers are declined, not fatal). Other extensions are ignored.
#[cfg(feature = "deflate")]
fn negotiate_extensions(
    offers: &[ExtensionOffer],
    deflate: Option<&DeflateConfig>,
) -> (Vec<String>, Option<crate::deflate::DeflateParams>) {
    match deflate.and_then(|config| crate::deflate::accept_offer(offers, config)) {
        Some((params, item)) => (vec![item], Some(params)),
        None => (Vec::new(), None),
    }
}

/// RFC 6455 §4.2.1 (or RFC 8441 §5) checks. Returns the trimmed
/// `Sec-WebSocket-Key` for HTTP/1.1 upgrades and the extension offers.
fn validate<'a>(
    method: &str,
    version: HttpVersion,
    headers: &'a Headers,
    mode: UpgradeMode,
) -> Result<(Option<&'a str>, Vec<ExtensionOffer>), HandshakeError> {
    match mode {
        UpgradeMode::Http11 => {
            if method != "GET" {
                return Err(HandshakeError::MethodNotGet(method.to_owned()));
            }
            // HTTP/2 has no `Upgrade` (RFC 9113 §8.6): it uses extended CONNECT.
            if version != HttpVersion::Http11 {
                return Err(HandshakeError::UnsupportedHttpVersion);
            }
            if !headers.has_token("upgrade", "websocket") {
                return Err(HandshakeError::NotUpgrade);
            }
            if !headers.has_token("connection", "upgrade") {
                return Err(HandshakeError::BadHeader(
                    "the Connection header must include \"upgrade\"",
                ));
            }
            // RFC 9112 §3.2: exactly one Host.
            if headers.get_all_bytes("host").count() != 1 {
                return Err(HandshakeError::BadHeader(
                    "the request must carry exactly one Host header",
                ));
            }
        }
        UpgradeMode::ExtendedConnect => {
            if method != "CONNECT" {
                return Err(HandshakeError::MethodNotConnect(method.to_owned()));
            }
            if headers.contains(":protocol") && !headers.has_token(":protocol", "websocket") {
                return Err(HandshakeError::NotUpgrade);
            }
        }
    }
    // Count raw values too: `get_all` skips a duplicate that is not UTF-8.
    let mut versions = headers.get_all("sec-websocket-version");
    if versions.next() != Some("13")
        || versions.next().is_some()
        || headers.get_all_bytes("sec-websocket-version").count() != 1
    {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = match mode {
        UpgradeMode::Http11 => {
            let mut keys = headers.get_all_bytes("sec-websocket-key");
            let (Some(key), None) = (keys.next(), keys.next()) else {
                return Err(HandshakeError::InvalidKey);
            };
            let key = std::str::from_utf8(key)
                .map_err(|_| HandshakeError::InvalidKey)?
                .trim_matches([' ', '\t']);
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(key)
                .map_err(|_| HandshakeError::InvalidKey)?;
            if decoded.len() != 16 {
                return Err(HandshakeError::InvalidKey);
            }
            if has_body(headers) {
                return Err(HandshakeError::BodyNotAllowed);
            }
            Some(key)
        }
        UpgradeMode::ExtendedConnect => None,
    };
    let offers = parse_extensions(headers.get_all_bytes("sec-websocket-extensions"))?;
    Ok((key, offers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// RFC 6455 §1.3 (with Host, Origin and subprotocols from §1.2).
    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    /// Header set and order of a Chromium 124 upgrade request (key: the
    /// widely published example whose accept value is checked below).
    const CHROME_REQUEST: &[u8] = b"GET /ws?room=lobby HTTP/1.1\r\n\
        Host: localhost:8080\r\n\
        Connection: Upgrade\r\n\
        Pragma: no-cache\r\n\
        Cache-Control: no-cache\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
        Upgrade: websocket\r\n\
        Origin: http://localhost:8080\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\n\
        Accept-Language: en-US,en;q=0.9\r\n\
        Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

    /// Header set and order of a Firefox 125 request; note
    /// `Connection: keep-alive, Upgrade`.
    const FIREFOX_REQUEST: &[u8] = b"GET /socket HTTP/1.1\r\n\
        Host: example.org\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\r\n\
        Accept: */*\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Origin: https://example.org\r\n\
        Sec-WebSocket-Extensions: permessage-deflate\r\n\
        Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\
        Connection: keep-alive, Upgrade\r\n\
        Sec-Fetch-Mode: websocket\r\n\
        Pragma: no-cache\r\n\
        Upgrade: websocket\r\n\r\n";

    /// Header set and order of a curl 8 WebSocket upgrade.
    const CURL_REQUEST: &[u8] = b"GET /echo HTTP/1.1\r\n\
        Host: 127.0.0.1:9001\r\n\
        User-Agent: curl/8.5.0\r\n\
        Accept: */*\r\n\
        Upgrade: websocket\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: Y3VybC13cy0xNi1ieXRlcw==\r\n\
        Connection: Upgrade\r\n\r\n";

    /// Header set and order of a Python `websockets` 12 client.
    const PYTHON_REQUEST: &[u8] = b"GET / HTTP/1.1\r\n\
        Host: localhost:8765\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: 8Tz6ZFGbL0qzD9e0QJ2xBA==\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        User-Agent: Python/3.12 websockets/12.0\r\n\r\n";

    fn now() -> Instant {
        Instant::now()
    }

    fn parse(bytes: &[u8]) -> Result<Request, HandshakeError> {
        let mut hs = ServerHandshake::new(&Config::default(), now());
        Ok(hs.receive(now(), bytes)?.expect("complete head"))
    }

    fn with_header(name: &str, value: &str) -> Vec<u8> {
        let mut out = RFC_REQUEST[..RFC_REQUEST.len() - 2].to_vec();
        out.extend_from_slice(format!("{name}: {value}\r\n\r\n").as_bytes());
        out
    }

    fn without_header(name: &str) -> Vec<u8> {
        let text = std::str::from_utf8(RFC_REQUEST).unwrap();
        text.split_inclusive("\r\n")
            .filter(|l| {
                !l.to_ascii_lowercase()
                    .starts_with(&name.to_ascii_lowercase())
            })
            .collect::<String>()
            .into_bytes()
    }

    fn replace_header(name: &str, value: &str) -> Vec<u8> {
        let mut v = without_header(name);
        v.truncate(v.len() - 2);
        v.extend_from_slice(format!("{name}: {value}\r\n\r\n").as_bytes());
        v
    }

    #[test]
    fn rfc_example_is_accepted() {
        let mut hs = ServerHandshake::new(&Config::default(), now());
        let req = hs.receive(now(), RFC_REQUEST).unwrap().unwrap();
        assert_eq!(req.method(), "GET");
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), None);
        assert_eq!(req.version(), HttpVersion::Http11);
        assert_eq!(req.host(), Some("server.example.com"));
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.subprotocols(), ["chat", "superchat"]);
        assert!(req.is_websocket_upgrade());
        assert!(!req.has_body());
        req.validate_upgrade().unwrap();
        let acc = hs
            .accept(&req, Accept::new().subprotocol("chat").unwrap())
            .unwrap();
        assert_eq!(
            acc.response,
            b"HTTP/1.1 101 Switching Protocols\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Protocol: chat\r\n\r\n"
        );
        assert_eq!(
            acc.negotiated,
            Negotiated::with_subprotocol(Some("chat".into()))
        );
        assert!(acc.leftover.is_empty());
    }

    #[test]
    fn real_clients_are_accepted_without_extensions() {
        for raw in [
            CHROME_REQUEST,
            FIREFOX_REQUEST,
            CURL_REQUEST,
            PYTHON_REQUEST,
        ] {
            let config = Config::default();
            #[cfg(feature = "deflate")]
            let config = config.with_deflate(None);
            let mut hs = ServerHandshake::new(&config, now());
            let req = hs.receive(now(), raw).unwrap().unwrap();
            assert!(req.is_websocket_upgrade());
            let acc = hs.accept(&req, Accept::new()).unwrap();
            let text = String::from_utf8(acc.response).unwrap();
            assert!(
                text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
                "{text}"
            );
            assert!(!text.contains("Sec-WebSocket-Extensions"));
            assert!(!text.contains("Sec-WebSocket-Protocol"));
            assert!(acc.negotiated.extensions.is_empty());
        }
        let chrome = parse(CHROME_REQUEST).unwrap();
        assert_eq!(chrome.path(), "/ws");
        assert_eq!(chrome.query(), Some("room=lobby"));
        assert_eq!(chrome.target(), "/ws?room=lobby");
        let ext = chrome.extensions().unwrap();
        assert_eq!(ext.len(), 1);
        assert_eq!(ext[0].name, "permessage-deflate");
        assert_eq!(ext[0].param("client_max_window_bits"), Some(None));
        let acc = ServerHandshake::new(&Config::default(), now())
            .accept(&chrome, Accept::new())
            .unwrap();
        let text = String::from_utf8(acc.response).unwrap();
        assert!(text.contains("Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n"));
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn deflate_is_negotiated_by_default_and_configurable() {
        let chrome = parse(CHROME_REQUEST).unwrap();
        let acc = ServerHandshake::new(&Config::default(), now())
            .accept(&chrome, Accept::new())
            .unwrap();
        let text = String::from_utf8(acc.response).unwrap();
        assert!(text.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover\r\n"
        ));
        let params = acc.negotiated.deflate.expect("negotiated");
        assert!(params.server_no_context_takeover && params.client_no_context_takeover);
        // `Accept::deflate(None)` declines even when the config enables it.
        let acc = ServerHandshake::new(&Config::default(), now())
            .accept(&chrome, Accept::new().deflate(None))
            .unwrap();
        assert_eq!(acc.negotiated.deflate, None);
        // A config without deflate declines; `Accept::deflate` overrides it.
        let off = Config::default().with_deflate(None);
        let acc = ServerHandshake::new(&off, now())
            .accept(&chrome, Accept::new())
            .unwrap();
        assert!(acc.negotiated.extensions.is_empty());
        let acc = ServerHandshake::new(&off, now())
            .accept(
                &chrome,
                Accept::new().deflate(Some(DeflateConfig::default().with_context_takeover(10))),
            )
            .unwrap();
        assert_eq!(
            acc.negotiated.extensions,
            ["permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"]
        );
        // Header level: on by default.
        let (headers, negotiated) = negotiate(
            "GET",
            chrome.headers().iter(),
            &Accept::new(),
            UpgradeMode::Http11,
        )
        .unwrap();
        assert!(negotiated.deflate.is_some());
        assert!(headers.iter().any(|(n, _)| n == "Sec-WebSocket-Extensions"));
        // A malformed offer alone is declined, not a failed handshake.
        let bad = with_header(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; server_max_window_bits=8",
        );
        let req = parse(&bad).unwrap();
        let acc = ServerHandshake::new(&Config::default(), now())
            .accept(&req, Accept::new())
            .unwrap();
        assert_eq!(acc.negotiated.deflate, None);
    }

    #[test]
    fn validation_failures_map_to_statuses() {
        let cases: Vec<(Vec<u8>, HandshakeError, u16)> = vec![
            (
                [b"POST".as_slice(), &RFC_REQUEST[3..]].concat(),
                HandshakeError::MethodNotGet("POST".into()),
                405,
            ),
            (
                String::from_utf8(RFC_REQUEST.to_vec())
                    .unwrap()
                    .replace("HTTP/1.1", "HTTP/1.0")
                    .into_bytes(),
                HandshakeError::UnsupportedHttpVersion,
                505,
            ),
            (
                without_header("Host"),
                HandshakeError::BadHeader("the request must carry exactly one Host header"),
                400,
            ),
            (
                with_header("Host", "other.example"),
                HandshakeError::BadHeader("the request must carry exactly one Host header"),
                400,
            ),
            (without_header("Upgrade"), HandshakeError::NotUpgrade, 426),
            (
                replace_header("Upgrade", "h2c"),
                HandshakeError::NotUpgrade,
                426,
            ),
            (
                replace_header("Connection", "keep-alive"),
                HandshakeError::BadHeader("the Connection header must include \"upgrade\""),
                400,
            ),
            (
                replace_header("Sec-WebSocket-Version", "8"),
                HandshakeError::UnsupportedVersion,
                426,
            ),
            (
                without_header("Sec-WebSocket-Version"),
                HandshakeError::UnsupportedVersion,
                426,
            ),
            (
                without_header("Sec-WebSocket-Key"),
                HandshakeError::InvalidKey,
                400,
            ),
            (
                replace_header("Sec-WebSocket-Key", "dG9vIHNob3J0"),
                HandshakeError::InvalidKey,
                400,
            ),
            (
                replace_header("Sec-WebSocket-Key", "not base64!!"),
                HandshakeError::InvalidKey,
                400,
            ),
            (
                with_header("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA=="),
                HandshakeError::InvalidKey,
                400,
            ),
            (
                with_header("Content-Length", "5"),
                HandshakeError::BodyNotAllowed,
                413,
            ),
            (
                with_header("Transfer-Encoding", "chunked"),
                HandshakeError::BodyNotAllowed,
                413,
            ),
            (
                with_header("Sec-WebSocket-Extensions", "permessage-deflate; =x"),
                HandshakeError::BadExtension("expected a parameter name after ';'".into()),
                400,
            ),
        ];
        for (raw, want, status) in cases {
            let req = parse(&raw).unwrap();
            let err = req.validate_upgrade().unwrap_err();
            assert_eq!(err, want, "{}", String::from_utf8_lossy(&raw));
            assert_eq!(err.status(), status);
            let hs = ServerHandshake::new(&Config::default(), now());
            assert_eq!(hs.accept(&req, Accept::new()).unwrap_err(), want);
        }
    }

    #[test]
    fn unsupported_version_response_names_13() {
        let req = parse(&replace_header("Sec-WebSocket-Version", "8")).unwrap();
        let err = req.validate_upgrade().unwrap_err();
        let resp = HttpResponse::from_handshake_error(&err);
        assert_eq!(resp.status(), 426);
        let text = String::from_utf8(resp.encode(false)).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{text}"
        );
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"), "{text}");
    }

    #[test]
    fn content_length_zero_is_not_a_body() {
        parse(&with_header("Content-Length", "0"))
            .unwrap()
            .validate_upgrade()
            .unwrap();
    }

    #[test]
    fn tokens_are_case_insensitive_and_may_repeat() {
        let raw = b"GET / HTTP/1.1\r\nhost: a\r\nUPGRADE: WebSocket\r\n\
            connection: keep-alive\r\nCONNECTION: foo, Upgrade\r\n\
            sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n\
            Sec-WebSocket-Protocol: a\r\nsec-websocket-protocol: b, c\r\n\r\n";
        let req = parse(raw).unwrap();
        req.validate_upgrade().unwrap();
        assert!(req.is_websocket_upgrade());
        assert_eq!(req.subprotocols(), ["a", "b", "c"]);
        assert_eq!(
            req.header_all("CONNECTION").collect::<Vec<_>>(),
            ["keep-alive", "foo, Upgrade"]
        );
        assert_eq!(req.header("Connection"), Some("keep-alive"));
        assert_eq!(req.header_bytes("HOST"), Some(b"a".as_slice()));
        let acc = ServerHandshake::new(&Config::default(), now())
            .accept(&req, Accept::new().subprotocol("b").unwrap())
            .unwrap();
        assert_eq!(acc.negotiated.subprotocol.as_deref(), Some("b"));
        assert!(parse(FIREFOX_REQUEST).unwrap().validate_upgrade().is_ok());
    }

    #[test]
    fn unoffered_subprotocol_is_a_usage_error() {
        let req = parse(RFC_REQUEST).unwrap();
        let hs = ServerHandshake::new(&Config::default(), now());
        let err = hs
            .accept(&req, Accept::new().subprotocol("Chat").unwrap())
            .unwrap_err();
        assert_eq!(err, HandshakeError::SubprotocolNotOffered("Chat".into()));
        assert_eq!(err.status(), 500);
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_request() {
        let mut input = RFC_REQUEST.to_vec();
        input.extend_from_slice(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
        let mut hs = ServerHandshake::new(&Config::default(), now());
        let mut got = None;
        for b in &input {
            if let Some(r) = hs.receive(now(), std::slice::from_ref(b)).unwrap() {
                assert!(got.is_none());
                got = Some(r);
            }
        }
        let req = got.unwrap();
        assert_eq!(req, parse(RFC_REQUEST).unwrap());
        let acc = hs.accept(&req, Accept::new()).unwrap();
        assert_eq!(&acc.leftover[..], &input[RFC_REQUEST.len()..]);
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        let mut input = CHROME_REQUEST.to_vec();
        input.extend_from_slice(b"\x81\x80abcd");
        let whole = parse(CHROME_REQUEST).unwrap();
        for cut in 0..=input.len() {
            let mut hs = ServerHandshake::new(&Config::default(), now());
            let a = hs.receive(now(), &input[..cut]).unwrap();
            let b = hs.receive(now(), &input[cut..]).unwrap();
            let req = a.or(b).unwrap();
            assert_eq!(req, whole);
            let acc = hs.accept(&req, Accept::new()).unwrap();
            assert_eq!(&acc.leftover[..], b"\x81\x80abcd", "cut at {cut}");
        }
    }

    #[test]
    fn leftover_is_preserved_including_later_reads() {
        let mut input = RFC_REQUEST.to_vec();
        input.extend_from_slice(b"\x88\x80");
        let mut hs = ServerHandshake::new(&Config::default(), now());
        let req = hs.receive(now(), &input).unwrap().unwrap();
        assert_eq!(hs.receive(now(), b"\x01\x02\x03\x04").unwrap(), None);
        let acc = hs.accept(&req, Accept::new()).unwrap();
        assert_eq!(&acc.leftover[..], b"\x88\x80\x01\x02\x03\x04");
    }

    #[test]
    fn leading_blank_lines_are_ignored() {
        let input = [b"\r\n".as_slice(), RFC_REQUEST].concat();
        assert_eq!(parse(&input).unwrap(), parse(RFC_REQUEST).unwrap());
    }

    #[test]
    fn head_over_cap_is_431_without_buffering_past_it() {
        let config = Config::default().with_max_head_size(64);
        let mut hs = ServerHandshake::new(&config, now());
        let big = vec![b'a'; 10_000];
        let err = hs.receive(now(), &big).unwrap_err();
        assert_eq!(err, HandshakeError::HeadTooLarge { limit: 64 });
        assert_eq!(err.status(), 431);
        match &hs.state {
            State::Failed(_) => {}
            s => panic!("unexpected state {s:?}"),
        }
        // Errors are sticky.
        assert_eq!(hs.receive(now(), b"\r\n\r\n").unwrap_err(), err);

        // Byte by byte: fails exactly when the cap is reached.
        let mut hs = ServerHandshake::new(&config, now());
        for (i, b) in RFC_REQUEST.iter().enumerate() {
            match hs.receive(now(), std::slice::from_ref(b)) {
                Ok(None) => assert!(i < 63),
                Err(e) => {
                    assert_eq!(i, 63);
                    assert_eq!(e, HandshakeError::HeadTooLarge { limit: 64 });
                    if let State::Reading(r, _) = &hs.state {
                        panic!("still reading {r:?}");
                    }
                    break;
                }
                Ok(Some(_)) => panic!("head cannot complete"),
            }
        }
        // Blank lines alone also count.
        let mut hs = ServerHandshake::new(&config, now());
        assert!(hs.receive(now(), &[b'\n'; 100]).is_err());
    }

    #[test]
    fn head_exactly_at_cap_is_accepted() {
        let config = Config::default().with_max_head_size(RFC_REQUEST.len());
        let mut hs = ServerHandshake::new(&config, now());
        let mut input = RFC_REQUEST.to_vec();
        input.extend_from_slice(&[0u8; 100]);
        let req = hs.receive(now(), &input).unwrap().unwrap();
        assert_eq!(hs.accept(&req, Accept::new()).unwrap().leftover.len(), 100);
    }

    #[test]
    fn too_many_headers_is_431() {
        let config = Config::default().with_max_headers(3);
        let mut hs = ServerHandshake::new(&config, now());
        let err = hs.receive(now(), RFC_REQUEST).unwrap_err();
        assert_eq!(err, HandshakeError::TooManyHeaders { limit: 3 });
        assert_eq!(HttpResponse::from_handshake_error(&err).status(), 431);
    }

    #[test]
    fn malformed_head_is_400() {
        let err = parse(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n").unwrap_err();
        assert!(matches!(err, HandshakeError::MalformedHttp(_)), "{err:?}");
        assert_eq!(err.status(), 400);
        assert!(parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").is_err());
    }

    /// Feeds `input` one byte at a time: every byte before `at` is
    /// accepted, the byte at `at` fails with `want`.
    fn fails_at(input: &[u8], at: usize, want: &HandshakeError) {
        let mut hs = ServerHandshake::new(&Config::default(), now());
        let shown = String::from_utf8_lossy(input);
        for (i, b) in input.iter().enumerate() {
            match hs.receive(now(), std::slice::from_ref(b)) {
                Ok(None) if i < at => {}
                Err(e) if i == at => {
                    assert_eq!(&e, want, "{shown:?}");
                    assert_eq!(e.status(), 400, "{shown:?}");
                    assert_eq!(hs.poll_timeout(), None, "no deadline left to wait for");
                    return;
                }
                other => panic!("{shown:?}: byte {i} gave {other:?}, expected an error at {at}"),
            }
        }
        panic!("{shown:?}: no error");
    }

    #[test]
    fn impossible_input_fails_at_its_first_impossible_byte() {
        let malformed = HandshakeError::MalformedHttp;
        let tls = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".as_slice();
        fails_at(tls, 0, &HandshakeError::TlsOnPlainPort);
        let cases: &[(&[u8], usize, &str)] = &[
            (
                b"\x00\x01\x02\x03",
                0,
                "invalid byte where a method was expected",
            ),
            (b"\xff\xfe", 0, "invalid byte where a method was expected"),
            (b"\n", 0, "bare LF: lines must end with CRLF"),
            (b"\r\r\n", 1, "CR not followed by LF"),
            (b"\r\n\x16", 2, "invalid byte where a method was expected"),
            (b"GET\t/ HTTP/1.1", 3, "invalid byte in the method"),
            (b"G(T / HTTP/1.1", 1, "invalid byte in the method"),
            (
                b"GET  / HTTP/1.1",
                4,
                "invalid byte where a request target was expected",
            ),
            (
                b"GET /\x7f HTTP/1.1",
                5,
                "invalid byte in the request target",
            ),
            (
                b"GET /\xc3\xa9 HTTP/1.1",
                5,
                "invalid byte in the request target",
            ),
            (b"GET /\r\n", 5, "invalid byte in the request target"),
            (
                b"GET / HTTP/2.0\r\n",
                11,
                "invalid HTTP version (expected HTTP/1.0 or HTTP/1.1)",
            ),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                11,
                "invalid HTTP version (expected HTTP/1.0 or HTTP/1.1)",
            ),
            (
                b"GET / http/1.1\r\n",
                6,
                "invalid HTTP version (expected HTTP/1.0 or HTTP/1.1)",
            ),
            (b"SSH-2.0-OpenSSH_9.6\r\n", 19, "invalid byte in the method"),
            (
                b"GET / HTTP/1.1 \r\n",
                14,
                "the request line must end with CRLF",
            ),
            (b"GET / HTTP/1.1\n", 14, "bare LF: lines must end with CRLF"),
            (b"GET / HTTP/1.1\rX", 15, "CR not followed by LF"),
            (
                b"GET / HTTP/1.1\r\nHost: x\nUpgrade: websocket\r\n",
                23,
                "bare LF: lines must end with CRLF",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\n\n",
                25,
                "bare LF: lines must end with CRLF",
            ),
            (
                b"GET / HTTP/1.1\r\nBad Header: x\r\n",
                19,
                "invalid byte in a header name",
            ),
            (
                b"GET / HTTP/1.1\r\nHost : x\r\n",
                20,
                "invalid byte in a header name",
            ),
            (
                b"GET / HTTP/1.1\r\nX\x01Y: z\r\n",
                17,
                "invalid byte in a header name",
            ),
            (
                b"GET / HTTP/1.1\r\n: z\r\n",
                16,
                "invalid byte in a header name",
            ),
            (
                b"GET / HTTP/1.1\r\nX: a\x00b\r\n",
                20,
                "invalid byte in a header value",
            ),
            (
                b"GET / HTTP/1.1\r\nX: a\x7f\r\n",
                20,
                "invalid byte in a header value",
            ),
            (
                b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n",
                22,
                "header line starts with whitespace (line folding)",
            ),
        ];
        for &(input, at, why) in cases {
            fails_at(input, at, &malformed(why));
        }
        // Whole, the same errors (and so the same 400) at once.
        assert_eq!(
            parse(b"GET / HTTP/1.1\nHost: x\n\n"),
            Err(malformed("bare LF: lines must end with CRLF"))
        );
        assert_eq!(parse(tls), Err(HandshakeError::TlsOnPlainPort));
        let resp = HttpResponse::from_handshake_error(&HandshakeError::TlsOnPlainPort);
        assert_eq!(resp.status(), 400);
        let text = String::from_utf8(resp.encode(false)).unwrap();
        assert!(text.contains("TLS"), "{text}");
    }

    #[test]
    fn bytes_after_the_head_are_not_checked() {
        // Frames, or a TLS record, after a complete head are the next
        // protocol's business, even in the same read.
        let input = [RFC_REQUEST, b"\x16\x03\x01\n\r\x00"].concat();
        let mut hs = ServerHandshake::new(&Config::default(), now());
        let req = hs.receive(now(), &input).unwrap().unwrap();
        assert_eq!(hs.receive(now(), b"\n\x00").unwrap(), None);
        let acc = hs.accept(&req, Accept::new()).unwrap();
        assert_eq!(&acc.leftover[..], b"\x16\x03\x01\n\r\x00\n\x00");
    }

    #[test]
    fn unusual_but_valid_heads_pass() {
        // Leading empty lines, HTTP/1.0, odd token methods and targets,
        // empty values, obs-text and tabs in values.
        for raw in [
            b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n".as_slice(),
            b"GET / HTTP/1.0\r\n\r\n",
            b"M-SEARCH * HTTP/1.1\r\nX:\r\n\r\n",
            b"OPTIONS http://a.example:80/p?q=%20#f HTTP/1.1\r\nHost: a.example\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-Bin: \xff\xfe\t!~ \r\nx!#$%&'*+-.^_`|~: v\r\n\r\n",
        ] {
            let mut hs = ServerHandshake::new(&Config::default(), now());
            let mut got = None;
            for b in raw {
                if let Some(r) = hs.receive(now(), std::slice::from_ref(b)).unwrap() {
                    got = Some(r);
                }
            }
            assert!(got.is_some(), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn timeout_eof_and_deadline() {
        let t0 = now();
        let config = Config::default().with_handshake_timeout(Duration::from_secs(5));
        let mut hs = ServerHandshake::new(&config, t0);
        assert_eq!(hs.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        hs.handle_timeout(t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(hs.receive(t0, b"GET / HT").unwrap(), None);
        assert_eq!(
            hs.handle_timeout(t0 + Duration::from_secs(5)),
            Err(HandshakeError::Timeout)
        );
        assert_eq!(hs.poll_timeout(), None);
        assert_eq!(HandshakeError::Timeout.status(), 408);

        let mut hs = ServerHandshake::new(&config, t0);
        assert_eq!(
            hs.receive(t0 + Duration::from_secs(6), RFC_REQUEST),
            Err(HandshakeError::Timeout)
        );

        let mut hs = ServerHandshake::new(&config, t0);
        assert_eq!(hs.receive_eof(t0), Err(HandshakeError::Eof));
    }

    #[test]
    fn plain_http_requests_are_told_apart() {
        let req = parse(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 42\r\n\r\n")
            .unwrap();
        assert!(!req.is_websocket_upgrade());
        assert_eq!(req.last_event_id(), Some("42"));
        assert_eq!(req.validate_upgrade(), Err(HandshakeError::NotUpgrade));
        let mut hs = ServerHandshake::new(&Config::default(), now());
        let head = hs
            .receive(now(), b"HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.method(), "HEAD");
        let out = hs.reject(&HttpResponse::not_found());
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.ends_with("\r\n\r\n"), "HEAD gets no body: {text:?}");
    }

    #[test]
    fn accept_headers_reject_injection_and_reserved_names() {
        assert_eq!(
            Accept::new()
                .header("X-Ok", "a\r\nSet-Cookie: evil")
                .unwrap_err(),
            HandshakeError::InvalidHeader("X-Ok".into())
        );
        assert!(Accept::new().header("X Bad", "v").is_err());
        assert!(Accept::new().header("X-Nul", "a\0b").is_err());
        assert!(Accept::new().subprotocol("chat\r\n").is_err());
        assert_eq!(
            Accept::new()
                .header("sec-websocket-accept", "x")
                .unwrap_err(),
            HandshakeError::ReservedHeader("sec-websocket-accept".into())
        );
        let accept = Accept::new().header("Set-Cookie", "id=1; Path=/").unwrap();
        let req = parse(RFC_REQUEST).unwrap();
        let acc = ServerHandshake::new(&Config::default(), now())
            .accept(&req, accept)
            .unwrap();
        assert!(acc.response.ends_with(b"Set-Cookie: id=1; Path=/\r\n\r\n"));
    }

    fn pairs(raw: &'static [(&'static str, &'static str)]) -> Vec<(&'static str, &'static [u8])> {
        raw.iter().map(|(n, v)| (*n, v.as_bytes())).collect()
    }

    #[test]
    fn header_level_negotiate_http11() {
        let headers = pairs(&[
            ("host", "server.example.com"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat, superchat"),
        ]);
        let accept = Accept::new().subprotocol("superchat").unwrap();
        let (out, negotiated) =
            negotiate("GET", headers.clone(), &accept, UpgradeMode::Http11).unwrap();
        assert_eq!(
            out,
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                ("Sec-WebSocket-Protocol", "superchat"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(negotiated.subprotocol.as_deref(), Some("superchat"));
        assert_eq!(
            negotiate("POST", headers.clone(), &Accept::new(), UpgradeMode::Http11).unwrap_err(),
            HandshakeError::MethodNotGet("POST".into())
        );
        let no_key: Vec<_> = headers
            .into_iter()
            .filter(|(n, _)| *n != "sec-websocket-key")
            .collect();
        assert_eq!(
            negotiate("GET", no_key, &Accept::new(), UpgradeMode::Http11).unwrap_err(),
            HandshakeError::InvalidKey
        );
    }

    #[test]
    fn header_level_negotiate_extended_connect() {
        let headers = pairs(&[
            (":protocol", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat"),
            ("origin", "https://example.com"),
        ]);
        let accept = Accept::new().subprotocol("chat").unwrap();
        let (out, negotiated) = negotiate(
            "CONNECT",
            headers.clone(),
            &accept,
            UpgradeMode::ExtendedConnect,
        )
        .unwrap();
        assert_eq!(
            out,
            [("Sec-WebSocket-Protocol".to_owned(), "chat".to_owned())]
        );
        assert_eq!(negotiated.subprotocol.as_deref(), Some("chat"));
        // Without the pseudo-header (hyper passes :protocol separately).
        let plain: Vec<_> = headers.iter().copied().skip(1).collect();
        assert!(negotiate(
            "CONNECT",
            plain,
            &Accept::new(),
            UpgradeMode::ExtendedConnect
        )
        .is_ok());
        let err = negotiate(
            "GET",
            headers.clone(),
            &accept,
            UpgradeMode::ExtendedConnect,
        )
        .unwrap_err();
        assert_eq!(err, HandshakeError::MethodNotConnect("GET".into()));
        assert_eq!(err.status(), 405);
        let wrong = pairs(&[
            (":protocol", "webtransport"),
            ("sec-websocket-version", "13"),
        ]);
        assert_eq!(
            negotiate(
                "CONNECT",
                wrong,
                &Accept::new(),
                UpgradeMode::ExtendedConnect
            )
            .unwrap_err(),
            HandshakeError::NotUpgrade
        );
        let old = pairs(&[("sec-websocket-version", "8")]);
        assert_eq!(
            negotiate("CONNECT", old, &Accept::new(), UpgradeMode::ExtendedConnect).unwrap_err(),
            HandshakeError::UnsupportedVersion
        );
    }

    #[test]
    fn http2_requests_are_checked_as_extended_connect() {
        let headers: Headers = [("sec-websocket-version", &b"13"[..])]
            .into_iter()
            .collect();
        let req = Request::new("CONNECT", "/chat", HttpVersion::Http2, headers.clone());
        assert_eq!(req.upgrade_mode(), UpgradeMode::ExtendedConnect);
        assert_eq!(req.validate_upgrade(), Ok(()));
        let get = Request::new("GET", "/chat", HttpVersion::Http2, headers.clone());
        assert_eq!(
            get.validate_upgrade(),
            Err(HandshakeError::MethodNotConnect("GET".into()))
        );
        // An HTTP/2 request never takes the RFC 6455 path, even when it
        // carries the HTTP/1.1 headers.
        // Only `:protocol websocket` makes it a WebSocket request.
        assert!(!req.is_websocket_upgrade());
        let with_protocol: Headers = [
            (":protocol", &b"WebSocket"[..]),
            ("sec-websocket-version", &b"13"[..]),
        ]
        .into_iter()
        .collect();
        let ws = Request::new(
            "CONNECT",
            "/chat",
            HttpVersion::Http2,
            with_protocol.clone(),
        );
        assert!(ws.is_websocket_upgrade());
        let get = Request::new("GET", "/chat", HttpVersion::Http2, with_protocol);
        assert!(!get.is_websocket_upgrade());
        let connect = Request::new("CONNECT", "/chat", HttpVersion::Http11, headers);
        assert_eq!(connect.upgrade_mode(), UpgradeMode::Http11);
        assert_eq!(
            connect.validate_upgrade(),
            Err(HandshakeError::MethodNotGet("CONNECT".into()))
        );
    }
}
