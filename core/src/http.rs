//! Plain HTTP/1.1 responses: handshake rejections, 404s, health checks and
//! admission refusals served on the WebSocket port.
//!
//! Every response carries `Content-Length` and `Connection: close`: the
//! transport is closed after writing it, so no keep-alive state is needed.

use bytes::Bytes;

use crate::error::HandshakeError;
use crate::handshake::check_header;

/// Headers [`HttpResponse::encode`] writes itself.
const RESERVED: [&str; 3] = ["content-length", "connection", "transfer-encoding"];

/// A complete HTTP/1.1 response: status, headers and body.
///
/// ```
/// # use wavecast_core::http::HttpResponse;
/// let resp = HttpResponse::new(503)
///     .header("Retry-After", "5")?
///     .body("text/plain; charset=utf-8", "try again later\n")?;
/// let bytes = resp.encode(false);
/// assert!(bytes.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
/// # Ok::<(), wavecast_core::HandshakeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl HttpResponse {
    /// An empty response with `status` (clamped to 100–999).
    pub fn new(status: u16) -> Self {
        HttpResponse {
            status: status.clamp(100, 999),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header. Fails if the name is not a token, the value contains
    /// control characters (CR/LF would inject headers), or the header is one
    /// [`HttpResponse::encode`] writes itself (`Content-Length`,
    /// `Connection`, `Transfer-Encoding`).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, HandshakeError> {
        check_header(name, value)?;
        if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(HandshakeError::ReservedHeader(name.to_owned()));
        }
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// Sets the body and its `Content-Type`, replacing any earlier ones.
    pub fn body(
        mut self,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Result<Self, HandshakeError> {
        check_header("Content-Type", content_type)?;
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = body.into();
        Ok(self)
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status).with_static_body("text/plain; charset=utf-8", body.into())
    }

    /// A `text/html; charset=utf-8` response.
    pub fn html(status: u16, body: impl Into<String>) -> Self {
        Self::new(status).with_static_body("text/html; charset=utf-8", body.into())
    }

    /// `404 Not Found` with a short text body.
    pub fn not_found() -> Self {
        Self::text(404, "not found\n")
    }

    /// The response a server sends when the handshake fails with `err`: its
    /// [`HandshakeError::status`], the error as a one-line text body, and
    /// the headers the status requires (`Sec-WebSocket-Version: 13` and
    /// `Upgrade: websocket` for 426, RFC 6455 §4.4; `Allow` for 405).
    /// Errors that are the server's own fault (5xx) get a generic body.
    pub fn from_handshake_error(err: &HandshakeError) -> Self {
        let status = err.status();
        let body = if status >= 500 {
            format!("{}\n", reason_phrase(status).to_ascii_lowercase())
        } else {
            format!("{err}\n")
        };
        let mut resp = Self::text(status, body);
        let extra: &[(&str, &str)] = match err {
            HandshakeError::UnsupportedVersion | HandshakeError::NotUpgrade => {
                &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]
            }
            HandshakeError::MethodNotGet(_) => &[("Allow", "GET")],
            HandshakeError::MethodNotConnect(_) => &[("Allow", "CONNECT")],
            _ => &[],
        };
        resp.headers.extend(
            extra
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        resp
    }

    fn with_static_body(mut self, content_type: &'static str, body: String) -> Self {
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = Bytes::from(body);
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers added so far (not those `encode` adds).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn payload(&self) -> &Bytes {
        &self.body
    }

    /// The wire bytes. With `head_only` (the answer to a `HEAD` request) the
    /// body is left out but `Content-Length` still gives its size (RFC 9110
    /// §9.3.2). Statuses that have no content (1xx, 204, 304) get neither.
    pub fn encode(&self, head_only: bool) -> Vec<u8> {
        let no_content = self.status < 200 || self.status == 204 || self.status == 304;
        let mut out = Vec::with_capacity(128 + self.body.len());
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\n",
                self.status,
                reason_phrase(self.status)
            )
            .as_bytes(),
        );
        for (name, value) in &self.headers {
            push_header(&mut out, name, value);
        }
        if !no_content {
            push_header(&mut out, "Content-Length", &self.body.len().to_string());
        }
        push_header(&mut out, "Connection", "close");
        out.extend_from_slice(b"\r\n");
        if !head_only && !no_content {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The standard reason phrase for `status` (RFC 9110 §15), or a generic one
/// for its class.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_response_encoding() {
        let out = HttpResponse::text(200, "ok\n").encode(false);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 3\r\n\
              Connection: close\r\n\r\nok\n"
        );
    }

    #[test]
    fn head_only_keeps_length_drops_body() {
        let out = HttpResponse::html(200, "<p>hi</p>").encode(true);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\n\
              Content-Type: text/html; charset=utf-8\r\n\
              Content-Length: 9\r\n\
              Connection: close\r\n\r\n"
        );
    }

    #[test]
    fn no_content_statuses_have_no_length() {
        let out = HttpResponse::new(204).encode(false);
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    }

    #[test]
    fn builder_and_body_replacement() {
        let resp = HttpResponse::new(503)
            .header("Retry-After", "5")
            .unwrap()
            .body("text/plain", "a")
            .unwrap()
            .body("application/json", Bytes::from_static(b"{}"))
            .unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.payload(), &Bytes::from_static(b"{}"));
        assert_eq!(
            resp.encode(false),
            b"HTTP/1.1 503 Service Unavailable\r\n\
              Retry-After: 5\r\n\
              Content-Type: application/json\r\n\
              Content-Length: 2\r\n\
              Connection: close\r\n\r\n{}"
        );
        let nf = String::from_utf8(HttpResponse::not_found().encode(false)).unwrap();
        assert!(nf.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(nf.ends_with("\r\n\r\nnot found\n"));
    }

    #[test]
    fn header_injection_is_rejected() {
        let r = HttpResponse::new(200);
        assert_eq!(
            r.clone().header("X-A", "1\r\nSet-Cookie: x=y").unwrap_err(),
            HandshakeError::InvalidHeader("X-A".into())
        );
        assert!(r.clone().header("X-A", "1\nb").is_err());
        assert!(r.clone().header("X:A", "1").is_err());
        assert!(r.clone().header("", "1").is_err());
        assert!(r.clone().body("text/plain\r\nX: y", "b").is_err());
        assert_eq!(
            r.clone().header("content-length", "0").unwrap_err(),
            HandshakeError::ReservedHeader("content-length".into())
        );
        assert!(r.header("X-Tab", "a\tb").is_ok());
    }

    #[test]
    fn handshake_error_responses() {
        let resp = HttpResponse::from_handshake_error(&HandshakeError::UnsupportedVersion);
        let text = String::from_utf8(resp.encode(false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(text.contains("\r\nUpgrade: websocket\r\n"));

        let resp = HttpResponse::from_handshake_error(&HandshakeError::MethodNotGet("POST".into()));
        assert_eq!(resp.status(), 405);
        assert!(resp.headers().contains(&("Allow".into(), "GET".into())));
        assert_eq!(
            resp.payload(),
            &Bytes::from("the upgrade request must use GET, not POST\n")
        );

        for (err, status) in [
            (HandshakeError::HeadTooLarge { limit: 8192 }, 431),
            (HandshakeError::TooManyHeaders { limit: 64 }, 431),
            (HandshakeError::BodyNotAllowed, 413),
            (HandshakeError::InvalidKey, 400),
            (HandshakeError::Timeout, 408),
        ] {
            assert_eq!(HttpResponse::from_handshake_error(&err).status(), status);
        }
        let resp =
            HttpResponse::from_handshake_error(&HandshakeError::SubprotocolNotOffered("x".into()));
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.payload(), &Bytes::from("internal server error\n"));
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(418), "Client Error");
        assert_eq!(reason_phrase(599), "Server Error");
    }
}
