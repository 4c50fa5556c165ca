//! Client side of the opening handshake (RFC 6455 §4.1).
//!
//! Drive it like this:
//!
//! 1. Build a [`ClientRequest`] (or [`ClientRequest::from_url`], which also
//!    says where to connect), then [`ClientHandshake::new`].
//! 2. Write [`ClientHandshake::request_bytes`] to the transport.
//! 3. Feed every read to [`ClientHandshake::receive`] until it returns a
//!    [`ClientAccepted`]; sleep until [`ClientHandshake::poll_timeout`] and
//!    call [`ClientHandshake::handle_timeout`] when it passes.
//! 4. Build the connection with [`ClientAccepted::negotiated`] and feed it
//!    [`ClientAccepted::leftover`] first.

use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;

use super::{
    accept_key, check_header, header_slots, http_version, is_token, parse_error, parse_extensions,
    CompleteHead, HeadReader, Headers, HttpVersion, Negotiated,
};
use crate::config::Config;
use crate::error::HandshakeError;
use crate::rng::Rng;

/// Headers the handshake writes itself; an application may not add them.
const RESERVED_REQUEST_HEADERS: [&str; 10] = [
    "host",
    "upgrade",
    "connection",
    "origin",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

/// Where to open the transport for a `ws://` or `wss://` URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Target {
    /// Host name or IP address, without brackets for IPv6 (`::1`), ready for
    /// name resolution and TLS server name indication.
    pub host: String,
    /// TCP port: explicit, or 80 for `ws` and 443 for `wss`.
    pub port: u16,
    /// Whether to run TLS (`wss`).
    pub tls: bool,
}

/// The client's upgrade request: host, path, offered subprotocols and extra
/// headers.
///
/// ```
/// # use wavecast_core::handshake::ClientRequest;
/// let (request, target) = ClientRequest::from_url("wss://example.com/chat?room=1")?;
/// let request = request.subprotocol("chat")?.header("Authorization", "Bearer abc")?;
/// assert_eq!((target.host.as_str(), target.port, target.tls), ("example.com", 443, true));
/// # Ok::<(), wavecast_core::HandshakeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientRequest {
    host: String,
    target: String,
    origin: Option<String>,
    subprotocols: Vec<String>,
    headers: Vec<(String, String)>,
    http1_only: bool,
}

impl ClientRequest {
    /// A request for `target` (path and query, e.g. `/chat?room=1`) with
    /// `Host: host` (include the port when it is not the scheme's default).
    pub fn new(host: &str, target: &str) -> Result<Self, HandshakeError> {
        check_header("Host", host)?;
        if host.is_empty() {
            return Err(HandshakeError::InvalidUrl("missing host"));
        }
        if !target.starts_with('/') {
            return Err(HandshakeError::InvalidUrl("the path must start with '/'"));
        }
        if !target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HandshakeError::InvalidUrl(
                "the path contains spaces, control or non-ASCII characters; percent-encode them",
            ));
        }
        if target.contains('#') {
            return Err(HandshakeError::InvalidUrl(
                "fragments are not allowed in WebSocket URLs (RFC 6455 §3)",
            ));
        }
        Ok(ClientRequest {
            host: host.to_owned(),
            target: target.to_owned(),
            origin: None,
            subprotocols: Vec::new(),
            headers: Vec::new(),
            http1_only: false,
        })
    }

    /// Parses a `ws://` or `wss://` URL (RFC 6455 §3) into a request and the
    /// [`Target`] to connect to. IPv6 literals are written in brackets
    /// (`ws://[::1]:9001/`). Fragments, credentials and other schemes are
    /// rejected.
    pub fn from_url(url: &str) -> Result<(Self, Target), HandshakeError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or(HandshakeError::InvalidUrl("missing ws:// or wss:// scheme"))?;
        let tls = if scheme.eq_ignore_ascii_case("ws") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") {
            true
        } else {
            return Err(HandshakeError::UnsupportedScheme(scheme.to_owned()));
        };
        if !rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HandshakeError::InvalidUrl(
                "the URL contains spaces, control or non-ASCII characters; percent-encode them",
            ));
        }
        if rest.contains('#') {
            return Err(HandshakeError::InvalidUrl(
                "fragments are not allowed in WebSocket URLs (RFC 6455 §3)",
            ));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(HandshakeError::InvalidUrl(
                "credentials in the URL are not supported; add an Authorization header",
            ));
        }
        let (host, port, ipv6) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or(HandshakeError::InvalidUrl("unclosed '[' in the host"))?;
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(HandshakeError::InvalidUrl("invalid IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or(HandshakeError::InvalidUrl("unexpected text after ']'"))?,
                ),
            };
            (host, port, true)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            let reg_name = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b);
            if host.is_empty() {
                return Err(HandshakeError::InvalidUrl("missing host"));
            }
            if !host.bytes().all(reg_name) {
                return Err(HandshakeError::InvalidUrl("invalid character in the host"));
            }
            (host, port, false)
        };
        let default_port = if tls { 443 } else { 80 };
        let port = match port {
            None | Some("") => default_port,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse()
                .map_err(|_| HandshakeError::InvalidUrl("port out of range"))?,
            Some(_) => return Err(HandshakeError::InvalidUrl("invalid port")),
        };
        let mut host_header = if ipv6 {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        if port != default_port {
            host_header.push_str(&format!(":{port}"));
        }
        let target = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        let request = ClientRequest::new(&host_header, &target)?;
        Ok((
            request,
            Target {
                host: host.to_owned(),
                port,
                tls,
            },
        ))
    }

    /// Offers subprotocol `name` (a token), in order of preference.
    pub fn subprotocol(mut self, name: impl Into<String>) -> Result<Self, HandshakeError> {
        let name = name.into();
        if !is_token(&name) {
            return Err(HandshakeError::InvalidHeader(format!(
                "Sec-WebSocket-Protocol: {name}"
            )));
        }
        self.subprotocols.push(name);
        Ok(self)
    }

    /// Sends `Origin: origin` (browsers always do; servers may check it).
    pub fn origin(mut self, origin: impl Into<String>) -> Result<Self, HandshakeError> {
        let origin = origin.into();
        check_header("Origin", &origin)?;
        self.origin = Some(origin);
        Ok(self)
    }

    /// Adds a request header, e.g. `Authorization` or `Cookie`. Fails if the
    /// name is not a token, the value contains control characters, or the
    /// header is one the handshake sets itself.
    pub fn header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, HandshakeError> {
        let (name, value) = (name.into(), value.into());
        check_header(&name, &value)?;
        if RESERVED_REQUEST_HEADERS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&name))
        {
            return Err(HandshakeError::ReservedHeader(name));
        }
        self.headers.push((name, value));
        Ok(self)
    }

    /// Asks for HTTP/1.1 even where HTTP/2 would be possible: a client
    /// that can open WebSockets over HTTP/2 (RFC 8441; wavecast-runtime's
    /// `http2` and `rustls` features, `wss://` only) then offers only
    /// `http/1.1` by ALPN and upgrades with `GET` as in RFC 6455. Without
    /// those features every request is HTTP/1.1 anyway.
    pub fn http1_only(mut self) -> Self {
        self.http1_only = true;
        self
    }

    /// Whether the request may be sent over HTTP/2 (true unless
    /// [`ClientRequest::http1_only`] was called).
    pub fn allows_http2(&self) -> bool {
        !self.http1_only
    }

    /// The `Host` header value.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The request target (path and query).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Sets query parameter `name` to `value` in the target, replacing the
    /// parameter if the target has it (how a reconnecting client tells the
    /// server where to resume: `?since=<position>`). Both are used as
    /// given, so pass them percent-encoded where needed.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::InvalidUrl`] if `name` is empty or either holds a
    /// character that would change the query's structure (`&`, `=` in the
    /// name, `#`) or is not printable ASCII.
    pub fn with_query_param(mut self, name: &str, value: &str) -> Result<Self, HandshakeError> {
        let printable = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"&#".contains(&b))
        };
        if name.is_empty() || name.contains('=') || !printable(name) || !printable(value) {
            return Err(HandshakeError::InvalidUrl(
                "query parameters must be printable ASCII without '&' or '#' (and '=' in the name)",
            ));
        }
        let (path, query) = match self.target.split_once('?') {
            Some((path, query)) => (path, query),
            None => (self.target.as_str(), ""),
        };
        let mut params: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && p.split('=').next() != Some(name))
            .collect();
        let param = format!("{name}={value}");
        params.push(&param);
        self.target = format!("{path}?{}", params.join("&"));
        Ok(self)
    }

    /// The offered subprotocols, in order of preference.
    pub fn subprotocols(&self) -> &[String] {
        &self.subprotocols
    }
}

/// A successful client handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientAccepted {
    /// The headers of the server's `101` response.
    pub response_headers: Headers,
    /// The agreed subprotocol and extensions.
    pub negotiated: Negotiated,
    /// Bytes that arrived after the response head (the server's first
    /// frames); feed them to the connection first.
    pub leftover: Bytes,
}

#[derive(Debug)]
enum State {
    Reading(HeadReader),
    Done,
    Failed(HandshakeError),
}

/// The client's opening handshake for one connection (RFC 6455 §4.1). See
/// the [module docs](self) for the call order.
#[derive(Debug)]
pub struct ClientHandshake {
    request: Vec<u8>,
    expected_accept: String,
    key: String,
    offer: Offer,
    state: State,
    max_headers: usize,
    deadline: Instant,
}

impl ClientHandshake {
    /// Prepares the request with a fresh random `Sec-WebSocket-Key` (from a
    /// generator seeded by [`Config::seed`]) at `now`; the server must answer
    /// within [`Config::handshake_timeout`].
    pub fn new(config: &Config, request: ClientRequest, now: Instant) -> Self {
        let mut nonce = [0u8; 16];
        Rng::new(config.seed).fill(&mut nonce);
        let key = base64::engine::general_purpose::STANDARD.encode(nonce);

        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(format!("GET {} HTTP/1.1\r\n", request.target).as_bytes());
        let mut header =
            |name: &str, value: &str| super::server::write_header(&mut out, name, value);
        header("Host", &request.host);
        header("Upgrade", "websocket");
        header("Connection", "Upgrade");
        header("Sec-WebSocket-Key", &key);
        header("Sec-WebSocket-Version", "13");
        if let Some(origin) = &request.origin {
            header("Origin", origin);
        }
        if !request.subprotocols.is_empty() {
            header("Sec-WebSocket-Protocol", &request.subprotocols.join(", "));
        }
        #[cfg(feature = "deflate")]
        if let Some(deflate) = &config.deflate {
            header(
                "Sec-WebSocket-Extensions",
                &crate::deflate::client_offer(deflate),
            );
        }
        for (name, value) in &request.headers {
            header(name, value);
        }
        out.extend_from_slice(b"\r\n");

        ClientHandshake {
            request: out,
            expected_accept: accept_key(key.as_bytes()),
            key,
            offer: Offer::new(config, request.subprotocols),
            state: State::Reading(HeadReader::new(config.max_head_size)),
            max_headers: config.max_headers,
            deadline: now + config.handshake_timeout,
        }
    }

    /// Replaces the deadline (by default `now +` [`Config::handshake_timeout`]
    /// from [`ClientHandshake::new`]) with one computed earlier, typically
    /// [`Config::connect_deadline`] taken before the TCP connect, so that
    /// connect, TLS and upgrade share one budget. Call it right after
    /// `new`, before the first [`ClientHandshake::poll_timeout`].
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// The handshake deadline in force (see [`ClientHandshake::set_deadline`]).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The complete HTTP request to write to the transport before reading.
    pub fn request_bytes(&self) -> &[u8] {
        &self.request
    }

    /// The `Sec-WebSocket-Key` sent in the request.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Feeds bytes read from the transport. Returns `Ok(None)` while the
    /// response head is incomplete, then `Ok(Some(accepted))` once, when a
    /// valid `101` arrived (RFC 6455 §4.1, the server's response checks).
    /// A status other than 101 is [`HandshakeError::Rejected`] with the
    /// status and headers (e.g. 401 with `WWW-Authenticate`, or a redirect's
    /// `Location`). Errors are final: close the transport.
    pub fn receive(
        &mut self,
        now: Instant,
        bytes: &[u8],
    ) -> Result<Option<ClientAccepted>, HandshakeError> {
        let reader = match &mut self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Done => return Err(HandshakeError::AlreadyComplete),
            State::Reading(_) if now >= self.deadline => return self.fail(HandshakeError::Timeout),
            State::Reading(reader) => reader,
        };
        let CompleteHead { head, leftover } = match reader.push(bytes) {
            Ok(None) => return Ok(None),
            Ok(Some(done)) => done,
            Err(e) => return self.fail(e),
        };
        match self.check_response(&head) {
            Ok((response_headers, negotiated)) => {
                self.state = State::Done;
                Ok(Some(ClientAccepted {
                    response_headers,
                    negotiated,
                    leftover: Bytes::from(leftover),
                }))
            }
            Err(e) => self.fail(e),
        }
    }

    /// Tells the handshake the transport ended before the response was
    /// complete. Always an error.
    pub fn receive_eof(&mut self, _now: Instant) -> Result<(), HandshakeError> {
        self.fail(HandshakeError::Eof)
    }

    /// The handshake deadline while the response is outstanding; sleep until
    /// it, then call [`ClientHandshake::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Reading(_) => Some(self.deadline),
            _ => None,
        }
    }

    /// Checks the deadline: `Err(HandshakeError::Timeout)` once it passed
    /// without a complete response.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            State::Reading(_) if now >= self.deadline => self.fail(HandshakeError::Timeout),
            _ => Ok(()),
        }
    }

    fn fail<T>(&mut self, e: HandshakeError) -> Result<T, HandshakeError> {
        self.state = State::Failed(e.clone());
        Err(e)
    }

    fn check_response(&self, head: &[u8]) -> Result<(Headers, Negotiated), HandshakeError> {
        let mut slots = header_slots(self.max_headers);
        let mut resp = httparse::Response::new(&mut slots);
        match resp.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HandshakeError::MalformedHttp("incomplete response head"))
            }
            Err(e) => return Err(parse_error(e, self.max_headers)),
        }
        let version = http_version(resp.version);
        let status = resp
            .code
            .ok_or(HandshakeError::MalformedHttp("missing status code"))?;
        let headers = Headers::from_httparse(resp.headers);
        if status != 101 {
            return Err(HandshakeError::Rejected {
                status,
                headers: headers.into_vec(),
            });
        }
        if version < HttpVersion::Http11 {
            return Err(HandshakeError::UnsupportedHttpVersion);
        }
        if !headers.has_token("upgrade", "websocket") {
            return Err(HandshakeError::BadHeader(
                "the server's Upgrade header must be \"websocket\"",
            ));
        }
        if !headers.has_token("connection", "upgrade") {
            return Err(HandshakeError::BadHeader(
                "the server's Connection header must include \"upgrade\"",
            ));
        }
        let mut accepts = headers.get_all("sec-websocket-accept");
        if (accepts.next(), accepts.next()) != (Some(self.expected_accept.as_str()), None)
            || headers.get_all_bytes("sec-websocket-accept").count() != 1
        {
            return Err(HandshakeError::BadAccept);
        }
        drop(accepts);
        let negotiated = self.offer.check_answer(&headers)?;
        Ok((headers, negotiated))
    }
}

/// What a client offered (subprotocols, permessage-deflate), to check the
/// server's answer against: the same checks over HTTP/1.1 and HTTP/2.
#[derive(Clone, Debug)]
struct Offer {
    subprotocols: Vec<String>,
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::DeflateConfig>,
}

impl Offer {
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    fn new(config: &Config, subprotocols: Vec<String>) -> Offer {
        Offer {
            subprotocols,
            #[cfg(feature = "deflate")]
            deflate: config.deflate.clone(),
        }
    }

    /// The `Sec-WebSocket-Extensions` value to send, if we offer any.
    fn extensions_header(&self) -> Option<String> {
        #[cfg(feature = "deflate")]
        if let Some(deflate) = &self.deflate {
            return Some(crate::deflate::client_offer(deflate));
        }
        None
    }

    /// Checks the accepting answer's `Sec-WebSocket-Protocol` and
    /// `Sec-WebSocket-Extensions` against the offer (RFC 6455 §4.1, items
    /// 5 and 6; RFC 8441 §5 keeps them unchanged over HTTP/2).
    fn check_answer(&self, headers: &Headers) -> Result<Negotiated, HandshakeError> {
        // `list` skips values that are not UTF-8; such a value still names a
        // subprotocol we did not offer (found by fuzzing).
        if let Some(v) = headers
            .get_all_bytes("sec-websocket-protocol")
            .find(|v| std::str::from_utf8(v).is_err())
        {
            return Err(HandshakeError::UnofferedSubprotocol(
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        let extensions = parse_extensions(headers.get_all_bytes("sec-websocket-extensions"))?;
        #[cfg(feature = "deflate")]
        let deflate = match &self.deflate {
            // §5.1: a malformed or unacceptable answer fails the handshake.
            Some(config) => crate::deflate::check_response(&extensions, config)?,
            None => None,
        };
        #[cfg(feature = "deflate")]
        let offered = self.deflate.is_some();
        #[cfg(not(feature = "deflate"))]
        let offered = false;
        // Without an offer, any extension the server enables is unoffered.
        if let Some(ext) = extensions.first().filter(|_| !offered) {
            return Err(HandshakeError::UnofferedExtension(ext.name.clone()));
        }
        let mut chosen = headers.list("sec-websocket-protocol");
        let subprotocol = match (chosen.next(), chosen.next()) {
            (None, _) => None,
            (Some(p), None) if self.subprotocols.iter().any(|o| o == p) => Some(p.to_owned()),
            (Some(p), _) => return Err(HandshakeError::UnofferedSubprotocol(p.to_owned())),
        };
        #[allow(unused_mut)]
        let mut negotiated = Negotiated::with_subprotocol(subprotocol);
        #[cfg(feature = "deflate")]
        if let Some(params) = deflate {
            negotiated.extensions = vec![params.response()];
            negotiated.deflate = Some(params);
        }
        Ok(negotiated)
    }
}

/// Header fields that are specific to one HTTP/1.1 connection and malformed
/// in HTTP/2 (RFC 9113 §8.2.2); `ClientRequest::header` already refuses
/// `Connection`, `Upgrade` and `Transfer-Encoding`.
const CONNECTION_SPECIFIC: [&str; 3] = ["keep-alive", "proxy-connection", "te"];

/// The client's opening handshake over HTTP/2: an extended `CONNECT`
/// (RFC 8441 §4) on one stream of an HTTP/2 connection whose server sent
/// `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`.
///
/// The HTTP/2 framing is not the core's business: this type only says what
/// to put in the request's header block and checks the response's. Drive
/// it like this:
///
/// 1. [`ExtendedConnect::new`] from the same [`ClientRequest`] the
///    HTTP/1.1 handshake takes.
/// 2. Send a `HEADERS` frame (without `END_STREAM`) with the pseudo-header
///    fields `:method CONNECT`, `:protocol` [`ExtendedConnect::PROTOCOL`],
///    `:scheme https` (or `http` over cleartext HTTP/2),
///    `:authority` [`ExtendedConnect::authority`] and `:path`
///    [`ExtendedConnect::path`], then [`ExtendedConnect::headers`].
///    There is no `Sec-WebSocket-Key`: the stream itself proves that the
///    server took part (RFC 8441 §5).
/// 3. Pass the response's status and header fields to
///    [`ExtendedConnect::receive_response`]. From then on the stream's
///    `DATA` frames carry the WebSocket's bytes in both directions.
///
/// ```
/// # use wavecast_core::handshake::{ClientRequest, ExtendedConnect, Headers};
/// # use wavecast_core::Config;
/// let (request, _) = ClientRequest::from_url("wss://example.com/chat")?;
/// let request = request.subprotocol("chat")?;
/// let connect = ExtendedConnect::new(&Config::default(), &request);
/// assert_eq!((connect.authority(), connect.path()), ("example.com", "/chat"));
/// assert!(connect.headers().any(|h| h == ("sec-websocket-version", "13")));
///
/// let answer: Headers = [("sec-websocket-protocol", &b"chat"[..])].into_iter().collect();
/// let accepted = connect.receive_response(200, answer)?;
/// assert_eq!(accepted.negotiated.subprotocol.as_deref(), Some("chat"));
/// # Ok::<(), wavecast_core::HandshakeError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ExtendedConnect {
    authority: String,
    path: String,
    headers: Vec<(String, String)>,
    offer: Offer,
    max_headers: usize,
}

impl ExtendedConnect {
    /// The value of the `:protocol` pseudo-header field (RFC 8441 §4).
    pub const PROTOCOL: &'static str = "websocket";

    /// Prepares the extended `CONNECT` for `request`: the same subprotocols,
    /// origin, extra headers and permessage-deflate offer (from `config`) as
    /// the HTTP/1.1 request [`ClientHandshake::new`] would write. Header
    /// names are lower-cased, as HTTP/2 requires (RFC 9113 §8.2.1), and the
    /// hop-by-hop fields `Keep-Alive`, `Proxy-Connection` and `TE` are left
    /// out (RFC 9113 §8.2.2).
    pub fn new(config: &Config, request: &ClientRequest) -> ExtendedConnect {
        let offer = Offer::new(config, request.subprotocols.clone());
        let mut headers = vec![("sec-websocket-version".to_owned(), "13".to_owned())];
        if let Some(origin) = &request.origin {
            headers.push(("origin".to_owned(), origin.clone()));
        }
        if !request.subprotocols.is_empty() {
            headers.push((
                "sec-websocket-protocol".to_owned(),
                request.subprotocols.join(", "),
            ));
        }
        if let Some(extensions) = offer.extensions_header() {
            headers.push(("sec-websocket-extensions".to_owned(), extensions));
        }
        for (name, value) in &request.headers {
            let name = name.to_ascii_lowercase();
            if !CONNECTION_SPECIFIC.contains(&name.as_str()) {
                headers.push((name, value.clone()));
            }
        }
        ExtendedConnect {
            authority: request.host.clone(),
            path: request.target.clone(),
            headers,
            offer,
            max_headers: config.max_headers,
        }
    }

    /// The `:authority` pseudo-header field: what the HTTP/1.1 request sends
    /// as `Host` (RFC 9113 §8.3.1).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The `:path` pseudo-header field: path and query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The regular header fields to send after the pseudo-header fields,
    /// with lower-case names: `sec-websocket-version: 13`, then `origin`,
    /// `sec-websocket-protocol`, `sec-websocket-extensions` and the
    /// request's extra headers, as far as there are any.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Checks the server's response to the `CONNECT`: any 2xx status
    /// accepts (RFC 8441 §5), and then the chosen subprotocol and
    /// extensions must be ones we offered, as over HTTP/1.1. Another status
    /// is [`HandshakeError::Rejected`] with the status and headers. More
    /// than [`Config::max_headers`] fields is
    /// [`HandshakeError::TooManyHeaders`], as over HTTP/1.1 (the HTTP/2
    /// stack should also cap the header block at [`Config::max_head_size`]
    /// bytes). The returned [`ClientAccepted::leftover`] is empty: the
    /// WebSocket's bytes are the stream's `DATA` frames.
    pub fn receive_response(
        &self,
        status: u16,
        headers: Headers,
    ) -> Result<ClientAccepted, HandshakeError> {
        if headers.len() > self.max_headers {
            return Err(HandshakeError::TooManyHeaders {
                limit: self.max_headers,
            });
        }
        if !(200..300).contains(&status) {
            return Err(HandshakeError::Rejected {
                status,
                headers: headers.into_vec(),
            });
        }
        let negotiated = self.offer.check_answer(&headers)?;
        Ok(ClientAccepted {
            response_headers: headers,
            negotiated,
            leftover: Bytes::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SeedSource;
    use crate::handshake::server::{Accept, ServerHandshake};
    use std::time::Duration;

    /// A config without permessage-deflate: most tests check the plain
    /// handshake (deflate is covered by `deflate_offer_and_answer`).
    fn config() -> Config {
        let config = Config::default().with_seed(SeedSource::Fixed(7));
        #[cfg(feature = "deflate")]
        let config = config.with_deflate(None);
        config
    }

    fn handshake(request: ClientRequest) -> ClientHandshake {
        ClientHandshake::new(&config(), request, Instant::now())
    }

    fn response(hs: &ClientHandshake, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(hs.key().as_bytes())
        )
        .into_bytes()
    }

    #[test]
    fn request_bytes_are_a_valid_upgrade() {
        let (req, _) = ClientRequest::from_url("ws://example.com:8080/chat?x=1").unwrap();
        let req = req
            .subprotocol("chat")
            .unwrap()
            .subprotocol("superchat")
            .unwrap()
            .origin("http://example.com")
            .unwrap()
            .header("Authorization", "Bearer t")
            .unwrap();
        let hs = handshake(req);
        let text = std::str::from_utf8(hs.request_bytes()).unwrap();
        assert_eq!(
            text,
            format!(
                "GET /chat?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\
                 Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
                 Authorization: Bearer t\r\n\r\n",
                hs.key()
            )
        );
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(hs.key())
            .unwrap();
        assert_eq!(decoded.len(), 16);
        // A fixed seed replays; the key is still per-seed random.
        assert_eq!(
            hs.key(),
            handshake(ClientRequest::new("a", "/").unwrap()).key()
        );
    }

    #[test]
    fn accepts_good_response_and_keeps_leftover() {
        let req = ClientRequest::new("h", "/")
            .unwrap()
            .subprotocol("chat")
            .unwrap();
        let mut hs = handshake(req);
        let mut input = response(&hs, "Sec-WebSocket-Protocol: chat\r\nX-Server: test\r\n");
        input.extend_from_slice(b"\x81\x02hi");
        let acc = hs.receive(Instant::now(), &input).unwrap().unwrap();
        assert_eq!(acc.negotiated.subprotocol.as_deref(), Some("chat"));
        assert_eq!(&acc.leftover[..], b"\x81\x02hi");
        assert_eq!(acc.response_headers.get("x-server"), Some("test"));
        assert_eq!(hs.poll_timeout(), None);
        assert_eq!(
            hs.receive(Instant::now(), b"more"),
            Err(HandshakeError::AlreadyComplete)
        );
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut hs = handshake(ClientRequest::new("h", "/").unwrap());
        let mut input = response(&hs, "");
        input.extend_from_slice(b"\x89\x00");
        let mut got = None;
        for b in &input {
            if let Some(a) = hs.receive(Instant::now(), std::slice::from_ref(b)).unwrap() {
                got = Some(a);
                break;
            }
        }
        let acc = got.unwrap();
        assert_eq!(acc.negotiated, Negotiated::default());
        // The last byte completed the head; the frame arrives in later reads.
        assert!(acc.leftover.is_empty());

        let mut hs = handshake(ClientRequest::new("h", "/").unwrap());
        let input = [response(&hs, ""), b"\x89\x00".to_vec()].concat();
        let cut = input.len() - 5;
        assert_eq!(
            hs.receive(Instant::now(), &input[..cut])
                .unwrap()
                .map(|_| ()),
            None
        );
        let acc = hs.receive(Instant::now(), &input[cut..]).unwrap().unwrap();
        assert_eq!(&acc.leftover[..], b"\x89\x00");
    }

    #[test]
    fn real_server_response_with_case_variants() {
        // As sent by Python websockets 12 (lower-case tokens, extra headers).
        let mut hs = handshake(ClientRequest::new("localhost:8765", "/").unwrap());
        let input = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\
             sec-websocket-accept: {}\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nServer: Python/3.12 websockets/12.0\r\n\r\n",
            accept_key(hs.key().as_bytes())
        );
        assert!(hs
            .receive(Instant::now(), input.as_bytes())
            .unwrap()
            .is_some());
    }

    #[test]
    fn wrong_accept_key() {
        let mut hs = handshake(ClientRequest::new("h", "/").unwrap());
        let input =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            hs.receive(Instant::now(), input),
            Err(HandshakeError::BadAccept)
        );
        // Errors are sticky.
        assert_eq!(
            hs.receive(Instant::now(), b""),
            Err(HandshakeError::BadAccept)
        );
        let mut hs = handshake(ClientRequest::new("h", "/").unwrap());
        let twice = response(
            &hs,
            &format!(
                "Sec-WebSocket-Accept: {}\r\n",
                accept_key(hs.key().as_bytes())
            ),
        );
        assert_eq!(
            hs.receive(Instant::now(), &twice),
            Err(HandshakeError::BadAccept)
        );
    }

    #[test]
    fn missing_upgrade_tokens() {
        let mut hs = handshake(ClientRequest::new("h", "/").unwrap());
        let input = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(hs.key().as_bytes())
        );
        assert!(matches!(
            hs.receive(Instant::now(), input.as_bytes()),
            Err(HandshakeError::BadHeader(_))
        ));
    }

    #[test]
    fn unoffered_subprotocol_and_extension() {
        let mut hs = handshake(
            ClientRequest::new("h", "/")
                .unwrap()
                .subprotocol("chat")
                .unwrap(),
        );
        let input = response(&hs, "Sec-WebSocket-Protocol: superchat\r\n");
        assert_eq!(
            hs.receive(Instant::now(), &input),
            Err(HandshakeError::UnofferedSubprotocol("superchat".into()))
        );
        let mut hs = handshake(ClientRequest::new("h", "/").unwrap());
        let input = response(&hs, "Sec-WebSocket-Protocol: chat\r\n");
        assert!(matches!(
            hs.receive(Instant::now(), &input),
            Err(HandshakeError::UnofferedSubprotocol(_))
        ));
        let mut hs = handshake(ClientRequest::new("h", "/").unwrap());
        let input = response(
            &hs,
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
        );
        assert_eq!(
            hs.receive(Instant::now(), &input),
            Err(HandshakeError::UnofferedExtension(
                "permessage-deflate".into()
            ))
        );
        let mut hs = handshake(ClientRequest::new("h", "/").unwrap());
        let input = response(&hs, "Sec-WebSocket-Extensions: ;\r\n");
        assert!(matches!(
            hs.receive(Instant::now(), &input),
            Err(HandshakeError::BadExtension(_))
        ));
    }

    #[test]
    fn non_101_is_rejected_with_status_and_headers() {
        let mut hs = handshake(ClientRequest::new("h", "/").unwrap());
        let input =
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n";
        let err = hs.receive(Instant::now(), input).unwrap_err();
        let HandshakeError::Rejected { status, headers } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*status, 401);
        assert_eq!(
            headers[0],
            ("WWW-Authenticate".to_owned(), b"Bearer".to_vec())
        );
        assert_eq!(
            err.to_string(),
            "server answered 401 and did not accept the upgrade"
        );

        let mut hs = handshake(ClientRequest::new("h", "/").unwrap());
        let input = b"HTTP/1.1 302 Found\r\nLocation: wss://other.example/\r\n\r\n";
        match hs.receive(Instant::now(), input) {
            Err(HandshakeError::Rejected {
                status: 302,
                headers,
            }) => {
                assert_eq!(
                    headers,
                    [("Location".to_owned(), b"wss://other.example/".to_vec())]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timeout_and_eof() {
        let t0 = Instant::now();
        let config = config().with_handshake_timeout(Duration::from_secs(3));
        let mut hs = ClientHandshake::new(&config, ClientRequest::new("h", "/").unwrap(), t0);
        assert_eq!(hs.poll_timeout(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(hs.handle_timeout(t0 + Duration::from_secs(2)), Ok(()));
        assert_eq!(
            hs.handle_timeout(t0 + Duration::from_secs(3)),
            Err(HandshakeError::Timeout)
        );
        let mut hs = ClientHandshake::new(&config, ClientRequest::new("h", "/").unwrap(), t0);
        assert_eq!(hs.receive(t0, b"HTTP/1.1 1"), Ok(None));
        assert_eq!(hs.receive_eof(t0), Err(HandshakeError::Eof));
    }

    #[test]
    fn connect_deadline_is_shared_with_the_upgrade() {
        let started = Instant::now();
        let config = config().with_handshake_timeout(Duration::from_secs(5));
        let deadline = config.connect_deadline(started);
        assert_eq!(deadline, started + Duration::from_secs(5));
        // TCP and TLS took 4 s: the upgrade has the last second only.
        let t_upgrade = started + Duration::from_secs(4);
        let mut hs =
            ClientHandshake::new(&config, ClientRequest::new("h", "/").unwrap(), t_upgrade);
        hs.set_deadline(deadline);
        assert_eq!(hs.deadline(), deadline);
        assert_eq!(hs.poll_timeout(), Some(deadline));
        assert_eq!(
            hs.handle_timeout(deadline - Duration::from_millis(1)),
            Ok(())
        );
        assert_eq!(
            hs.receive(deadline, b"HTTP/1.1 101"),
            Err(HandshakeError::Timeout)
        );
        assert_eq!(hs.poll_timeout(), None);
    }

    #[test]
    fn response_head_over_cap() {
        let config = config().with_max_head_size(32);
        let mut hs = ClientHandshake::new(
            &config,
            ClientRequest::new("h", "/").unwrap(),
            Instant::now(),
        );
        assert_eq!(
            hs.receive(Instant::now(), &[b'x'; 1000]),
            Err(HandshakeError::HeadTooLarge { limit: 32 })
        );
    }

    #[test]
    fn client_and_server_agree() {
        let req = ClientRequest::new("example.com", "/ws")
            .unwrap()
            .subprotocol("v2")
            .unwrap();
        let mut client = handshake(req);
        let mut server = ServerHandshake::new(&Config::default(), Instant::now());
        let request = server
            .receive(Instant::now(), client.request_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(request.subprotocols(), ["v2"]);
        let accepted = server
            .accept(&request, Accept::new().subprotocol("v2").unwrap())
            .unwrap();
        let done = client
            .receive(Instant::now(), &accepted.response)
            .unwrap()
            .unwrap();
        assert_eq!(done.negotiated, accepted.negotiated);
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn deflate_offer_and_answer() {
        use crate::deflate::DeflateConfig;
        let on = Config::default().with_seed(SeedSource::Fixed(7));
        let new = |config: &Config| {
            ClientHandshake::new(
                config,
                ClientRequest::new("h", "/").unwrap(),
                Instant::now(),
            )
        };
        let hs = new(&on);
        let text = String::from_utf8(hs.request_bytes().to_vec()).unwrap();
        assert!(text.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover; client_max_window_bits, \
             permessage-deflate; client_max_window_bits\r\n"
        ));
        // Both ends with defaults agree on no context takeover.
        let mut server = ServerHandshake::new(&Config::default(), Instant::now());
        let request = server
            .receive(Instant::now(), hs.request_bytes())
            .unwrap()
            .unwrap();
        let accepted = server.accept(&request, Accept::new()).unwrap();
        let mut hs = hs;
        let done = hs
            .receive(Instant::now(), &accepted.response)
            .unwrap()
            .unwrap();
        assert_eq!(done.negotiated, accepted.negotiated);
        let params = done.negotiated.deflate.expect("deflate agreed");
        assert!(params.server_no_context_takeover && params.client_no_context_takeover);
        // A server that enables nothing: no deflate, no error.
        let mut hs = new(&on);
        let input = response(&hs, "");
        let done = hs.receive(Instant::now(), &input).unwrap().unwrap();
        assert_eq!(done.negotiated.deflate, None);
        // §5.1: malformed or unacceptable answers fail the handshake.
        for bad in [
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=99",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; what",
            "permessage-deflate, permessage-deflate",
        ] {
            let mut hs = new(&on);
            let input = response(&hs, &format!("Sec-WebSocket-Extensions: {bad}\r\n"));
            assert!(
                matches!(
                    hs.receive(Instant::now(), &input),
                    Err(HandshakeError::BadExtension(_))
                ),
                "{bad}"
            );
        }
        let mut hs = new(&on);
        let input = response(&hs, "Sec-WebSocket-Extensions: x-zip\r\n");
        assert_eq!(
            hs.receive(Instant::now(), &input),
            Err(HandshakeError::UnofferedExtension("x-zip".into()))
        );
        // Context takeover opt-in offers its window and accepts the answer.
        let takeover = on
            .clone()
            .with_deflate(Some(DeflateConfig::default().with_context_takeover(10)));
        let hs = new(&takeover);
        let text = String::from_utf8(hs.request_bytes().to_vec()).unwrap();
        assert!(text.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; \
             client_max_window_bits=10, permessage-deflate; client_max_window_bits=10\r\n"
        ));
    }

    #[test]
    fn url_parsing() {
        let ok = |url: &str| ClientRequest::from_url(url).unwrap();
        let target = |host: &str, port, tls| Target {
            host: host.into(),
            port,
            tls,
        };
        let (r, t) = ok("ws://example.com");
        assert_eq!((r.host(), r.target()), ("example.com", "/"));
        assert_eq!(t, target("example.com", 80, false));
        let (r, t) = ok("wss://example.com/a/b?c=d&e");
        assert_eq!((r.host(), r.target()), ("example.com", "/a/b?c=d&e"));
        let resumed = r.clone().with_query_param("since", "7_1f").unwrap();
        assert_eq!(resumed.target(), "/a/b?c=d&e&since=7_1f");
        let again = resumed.with_query_param("since", "8_1f").unwrap();
        assert_eq!(again.target(), "/a/b?c=d&e&since=8_1f");
        let (plain, _) = ClientRequest::from_url("ws://example.com").unwrap();
        assert_eq!(plain.with_query_param("c", "1").unwrap().target(), "/?c=1");
        for (name, value) in [
            ("", "1"),
            ("a=b", "1"),
            ("a", "1&b=2"),
            ("a", "#"),
            ("a", "é"),
            ("a b", "1"),
        ] {
            assert!(
                r.clone().with_query_param(name, value).is_err(),
                "{name:?}={value:?}"
            );
        }
        assert_eq!(t, target("example.com", 443, true));
        let (r, t) = ok("WS://Example.com:8080?q");
        assert_eq!((r.host(), r.target()), ("Example.com:8080", "/?q"));
        assert_eq!(t, target("Example.com", 8080, false));
        let (r, t) = ok("ws://example.com:80/");
        assert_eq!(r.host(), "example.com");
        assert_eq!(t.port, 80);
        let (r, t) = ok("wss://example.com:80/");
        assert_eq!(r.host(), "example.com:80");
        assert_eq!(t, target("example.com", 80, true));
        let (r, t) = ok("ws://[::1]:9001/echo");
        assert_eq!((r.host(), r.target()), ("[::1]:9001", "/echo"));
        assert_eq!(t, target("::1", 9001, false));
        let (r, t) = ok("wss://[2001:db8::1]");
        assert_eq!(r.host(), "[2001:db8::1]");
        assert_eq!(t, target("2001:db8::1", 443, true));
        let (_, t) = ok("ws://127.0.0.1:/");
        assert_eq!(t, target("127.0.0.1", 80, false));

        let err = |url: &str| ClientRequest::from_url(url).unwrap_err();
        assert_eq!(
            err("http://example.com/"),
            HandshakeError::UnsupportedScheme("http".into())
        );
        assert_eq!(
            err("ftp://x/"),
            HandshakeError::UnsupportedScheme("ftp".into())
        );
        for bad in [
            "example.com/chat",
            "ws://",
            "ws:///path",
            "ws://example.com/chat#frag",
            "ws://user:pw@example.com/",
            "ws://example.com:99999/",
            "ws://example.com:8o/",
            "ws://[::1/",
            "ws://[::1]x/",
            "ws://[]/",
            "ws://exa mple.com/",
            "ws://example.com/a b",
            "ws://example.com/\r\nX: y",
            "ws://exämple.com/",
            "ws://a<b/",
        ] {
            assert!(
                matches!(err(bad), HandshakeError::InvalidUrl(_)),
                "{bad}: {:?}",
                err(bad)
            );
        }
    }

    #[test]
    fn request_header_injection_is_rejected() {
        let req = ClientRequest::new("h", "/").unwrap();
        assert!(req.clone().header("Cookie", "a=b\r\nX: y").is_err());
        assert!(req.clone().header("Bad Name", "v").is_err());
        assert!(req.clone().origin("http://x\r\n").is_err());
        assert!(req.clone().subprotocol("a, b").is_err());
        assert_eq!(
            req.clone().header("Sec-WebSocket-Key", "x").unwrap_err(),
            HandshakeError::ReservedHeader("Sec-WebSocket-Key".into())
        );
        assert!(ClientRequest::new("h\r\nX: y", "/").is_err());
        assert!(ClientRequest::new("h", "/a b").is_err());
        assert!(ClientRequest::new("h", "a").is_err());
    }

    #[test]
    fn extended_connect_carries_the_request_without_a_key() {
        let (req, _) = ClientRequest::from_url("wss://example.com:8443/chat?x=1").unwrap();
        let req = req
            .subprotocol("chat")
            .unwrap()
            .origin("https://example.com")
            .unwrap()
            .header("Authorization", "Bearer t")
            .unwrap()
            .header("Keep-Alive", "timeout=5")
            .unwrap();
        let connect = ExtendedConnect::new(&config(), &req);
        assert_eq!(connect.authority(), "example.com:8443");
        assert_eq!(connect.path(), "/chat?x=1");
        assert_eq!(
            connect.headers().collect::<Vec<_>>(),
            [
                ("sec-websocket-version", "13"),
                ("origin", "https://example.com"),
                ("sec-websocket-protocol", "chat"),
                ("authorization", "Bearer t"),
            ]
        );
    }

    #[test]
    fn extended_connect_accepts_any_2xx_and_checks_the_answer() {
        let (req, _) = ClientRequest::from_url("wss://example.com/").unwrap();
        let connect = ExtendedConnect::new(&config(), &req.subprotocol("chat").unwrap());
        let headers = |pairs: &[(&'static str, &'static str)]| -> Headers {
            pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect()
        };
        for status in [200, 204, 299] {
            let accepted = connect
                .receive_response(status, Headers::default())
                .unwrap();
            assert_eq!(accepted.negotiated.subprotocol, None);
            assert!(accepted.leftover.is_empty());
        }
        let accepted = connect
            .receive_response(200, headers(&[("sec-websocket-protocol", "chat")]))
            .unwrap();
        assert_eq!(accepted.negotiated.subprotocol.as_deref(), Some("chat"));
        assert_eq!(
            connect
                .receive_response(403, headers(&[("content-type", "text/plain")]))
                .unwrap_err(),
            HandshakeError::Rejected {
                status: 403,
                headers: vec![("content-type".into(), b"text/plain".to_vec())],
            }
        );
        for status in [101, 199, 300] {
            assert!(matches!(
                connect.receive_response(status, Headers::default()),
                Err(HandshakeError::Rejected { .. })
            ));
        }
        assert_eq!(
            connect
                .receive_response(200, headers(&[("sec-websocket-protocol", "other")]))
                .unwrap_err(),
            HandshakeError::UnofferedSubprotocol("other".into())
        );
        assert!(matches!(
            connect.receive_response(200, headers(&[("sec-websocket-extensions", "x-foo")])),
            Err(HandshakeError::UnofferedExtension(_))
        ));
        let limit = config().max_headers;
        let many: Headers = (0..=limit).map(|_| ("x-a", &b"1"[..])).collect();
        assert_eq!(
            connect.receive_response(200, many).unwrap_err(),
            HandshakeError::TooManyHeaders { limit }
        );
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn extended_connect_offers_and_negotiates_deflate() {
        let config = Config::default().with_seed(SeedSource::Fixed(7));
        let (req, _) = ClientRequest::from_url("wss://example.com/").unwrap();
        let connect = ExtendedConnect::new(&config, &req);
        let offer = connect
            .headers()
            .find(|(n, _)| *n == "sec-websocket-extensions")
            .map(|(_, v)| v.to_owned())
            .expect("a deflate offer");
        assert!(offer.starts_with("permessage-deflate"), "{offer}");
        let answer: Headers = [("sec-websocket-extensions", &b"permessage-deflate"[..])]
            .into_iter()
            .collect();
        let accepted = connect.receive_response(200, answer).unwrap();
        assert!(accepted.negotiated.deflate.is_some());
    }
}
