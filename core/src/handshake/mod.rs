//! The opening handshake (RFC 6455 §4): a typed step before a [`crate::Connection`].
//!
//! The server side parses the upgrade request, lets the application inspect
//! it, and builds the `101` (or a rejection); the client side builds the
//! request and validates the answer. Either hands over [`Negotiated`]
//! parameters and any bytes that arrived after the HTTP head.

pub mod client;
pub mod server;

use crate::error::HandshakeError;

pub use client::{ClientAccepted, ClientHandshake, ClientRequest, ExtendedConnect, Target};
pub use server::{negotiate, Accept, Accepted, Request, ServerHandshake, UpgradeMode};

/// The GUID appended to the client's key before hashing (RFC 6455 §1.3).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Parameters both sides agreed on during the handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// The subprotocol the server chose, if any.
    pub subprotocol: Option<String>,
    /// Accepted extensions, as the server's `Sec-WebSocket-Extensions` items.
    pub extensions: Vec<String>,
    /// The agreed permessage-deflate parameters, if it was negotiated;
    /// [`crate::Connection::with_negotiated`] installs the codec.
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::deflate::DeflateParams>,
}

impl Negotiated {
    /// Parameters with a subprotocol and no extensions.
    pub fn with_subprotocol(subprotocol: Option<String>) -> Self {
        Negotiated {
            subprotocol,
            ..Negotiated::default()
        }
    }
}

/// The HTTP version of a parsed head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2, where a WebSocket arrives as an extended `CONNECT` (RFC 8441).
    /// wavecast's own parser never produces it; HTTP stacks that speak
    /// HTTP/2 (hyper) pass it to [`Request::new`](crate::handshake::Request::new).
    Http2,
}

/// Header fields of a parsed HTTP head, in arrival order.
///
/// Names compare ASCII case-insensitively (RFC 9110 §5.1). Values are kept
/// as raw bytes, since HTTP allows non-UTF-8 octets; the `&str` accessors
/// skip values that are not UTF-8.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    /// The first value of `name`, if present and valid UTF-8, with
    /// surrounding whitespace removed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(|v| v.trim_matches(is_ows))
    }

    /// The raw bytes of the first value of `name`, if present.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every UTF-8 value of `name`, in order (a header may be repeated).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all_bytes(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .map(|v| v.trim_matches(is_ows))
    }

    /// The raw bytes of every value of `name`, in order.
    pub fn get_all_bytes<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether a header called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get_all_bytes(name).next().is_some()
    }

    /// The items of a comma-separated list header (RFC 9110 §5.6.1), across
    /// repeated fields, trimmed, with empty items skipped.
    pub fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .map(|item| item.trim_matches(is_ows))
            .filter(|item| !item.is_empty())
    }

    /// Whether the list header `name` contains `token`, compared
    /// case-insensitively (as for `Connection` and `Upgrade`).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name).any(|item| item.eq_ignore_ascii_case(token))
    }

    /// All fields as `(name, value)` pairs, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Number of header fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no header fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields as owned `(name, value)` pairs.
    pub fn into_vec(self) -> Vec<(String, Vec<u8>)> {
        self.0
    }

    pub(crate) fn from_httparse(headers: &[httparse::Header<'_>]) -> Headers {
        Headers(
            headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect(),
        )
    }
}

impl<'a> FromIterator<(&'a str, &'a [u8])> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a [u8])>>(iter: I) -> Self {
        Headers(
            iter.into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_vec()))
                .collect(),
        )
    }
}

impl From<Headers> for Vec<(String, Vec<u8>)> {
    fn from(headers: Headers) -> Self {
        headers.0
    }
}

/// One extension offered or accepted in `Sec-WebSocket-Extensions`
/// (RFC 6455 §9.1): a name and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order; a parameter without `=` has no value. Quoted
    /// values are unquoted.
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// The parameter called `name` (case-insensitive): `None` if absent,
    /// `Some(None)` if present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

/// Parses `Sec-WebSocket-Extensions` values (possibly repeated):
/// `token *( ";" token [ "=" ( token / quoted-string ) ] )`, comma separated.
pub(crate) fn parse_extensions<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<ExtensionOffer>, HandshakeError> {
    let bad = |why: &str| HandshakeError::BadExtension(why.to_owned());
    let mut out = Vec::new();
    for value in values {
        let mut p = ExtParser { s: value, pos: 0 };
        loop {
            p.skip_ows();
            if p.eat(b',') {
                continue; // empty list element, allowed by the #rule
            }
            if p.done() {
                break;
            }
            let name = p.token().ok_or_else(|| bad("expected an extension name"))?;
            let mut ext = ExtensionOffer {
                name,
                params: Vec::new(),
            };
            loop {
                p.skip_ows();
                if !p.eat(b';') {
                    break;
                }
                p.skip_ows();
                let pname = p
                    .token()
                    .ok_or_else(|| bad("expected a parameter name after ';'"))?;
                p.skip_ows();
                let pvalue = if p.eat(b'=') {
                    p.skip_ows();
                    let v = if p.peek() == Some(b'"') {
                        p.quoted()
                            .ok_or_else(|| bad("unterminated or invalid quoted parameter value"))?
                    } else {
                        p.token()
                            .ok_or_else(|| bad("expected a parameter value after '='"))?
                    };
                    // §9.1: a quoted value must itself be a token once unquoted.
                    if !is_token(&v) {
                        return Err(bad("parameter value is not a token"));
                    }
                    Some(v)
                } else {
                    None
                };
                ext.params.push((pname, pvalue));
            }
            out.push(ext);
            p.skip_ows();
            if p.done() {
                break;
            }
            if !p.eat(b',') {
                return Err(bad("expected ',' or ';' after an extension"));
            }
        }
    }
    Ok(out)
}

struct ExtParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl ExtParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn done(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }
    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        // tchars are ASCII, so the slice is valid UTF-8.
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }
    fn quoted(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    self.pos += 1;
                    out.push(self.peek()?);
                    self.pos += 1;
                }
                b => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }
}

/// Optional whitespace around header values and list items.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `tchar` from RFC 9110 §5.6.2.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty `token` (RFC 9110 §5.6.2).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Checks a header we are about to write: the name must be a token and the
/// value free of control characters (CR and LF would let a caller's data
/// inject headers or a whole response).
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), HandshakeError> {
    let value_ok = value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    if is_token(name) && value_ok {
        Ok(())
    } else {
        Err(HandshakeError::InvalidHeader(name.to_owned()))
    }
}

/// Accumulates an HTTP head from arbitrary chunks until the blank line that
/// ends it, without ever holding more than the configured cap.
///
/// Each chunk is scanned once (plus three bytes of overlap for a terminator
/// split across chunks), so feeding a head one byte at a time costs linear
/// time; `httparse` runs only once, on the complete head.
#[derive(Debug)]
pub(crate) struct HeadReader {
    buf: Vec<u8>,
    /// Empty lines skipped before the start line; they count towards the cap.
    skipped: usize,
    limit: usize,
}

impl HeadReader {
    pub(crate) fn new(limit: usize) -> Self {
        HeadReader {
            buf: Vec::new(),
            skipped: 0,
            limit,
        }
    }

    /// Feeds `bytes`. Returns the complete head (terminator included) and
    /// the bytes after it once the head is complete.
    pub(crate) fn push(
        &mut self,
        mut bytes: &[u8],
    ) -> Result<Option<CompleteHead>, HandshakeError> {
        if self.buf.is_empty() {
            // RFC 9112 §2.2: ignore empty lines before the start line.
            let blank = bytes
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            self.skipped += blank;
            bytes = &bytes[blank..];
        }
        let room = self.limit.saturating_sub(self.buf.len() + self.skipped);
        let take = bytes.len().min(room);
        let old = self.buf.len();
        self.buf.extend_from_slice(&bytes[..take]);
        let start = old.saturating_sub(3);
        if let Some(at) = self.buf[start..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = start + at + 4;
            let mut leftover = self.buf.split_off(end);
            leftover.extend_from_slice(&bytes[take..]);
            return Ok(Some(CompleteHead {
                head: std::mem::take(&mut self.buf),
                leftover,
            }));
        }
        if self.buf.len() + self.skipped >= self.limit {
            return Err(HandshakeError::HeadTooLarge { limit: self.limit });
        }
        Ok(None)
    }
}

/// A complete head from [`HeadReader::push`].
#[derive(Debug)]
pub(crate) struct CompleteHead {
    /// The head, blank line included.
    pub(crate) head: Vec<u8>,
    /// Bytes that followed it.
    pub(crate) leftover: Vec<u8>,
}

/// Header storage for one `httparse` run, sized once by the configured cap.
pub(crate) fn header_slots(max_headers: usize) -> Vec<httparse::Header<'static>> {
    vec![httparse::EMPTY_HEADER; max_headers]
}

/// Maps an `httparse` failure on a complete head to our error.
pub(crate) fn parse_error(err: httparse::Error, max_headers: usize) -> HandshakeError {
    HandshakeError::MalformedHttp(match err {
        httparse::Error::TooManyHeaders => {
            return HandshakeError::TooManyHeaders { limit: max_headers }
        }
        httparse::Error::HeaderName => "invalid byte in a header name",
        httparse::Error::HeaderValue => "invalid byte in a header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status code",
        httparse::Error::Token => "invalid method or request target",
        httparse::Error::Version => "invalid HTTP version",
    })
}

/// The HTTP version from `httparse`'s minor version number.
pub(crate) fn http_version(minor: Option<u8>) -> HttpVersion {
    match minor {
        Some(0) => HttpVersion::Http10,
        _ => HttpVersion::Http11,
    }
}

/// `Sec-WebSocket-Accept` for a client key: base64 of SHA-1 of key + GUID (§4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(value: &str) -> Result<Vec<ExtensionOffer>, HandshakeError> {
        parse_extensions(std::iter::once(value.as_bytes()))
    }

    #[test]
    fn extension_offers_parse() {
        // RFC 7692 §7.1 style offers, with OWS, quoting and an empty element.
        let got = ext(
            "permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\" ,, \
             permessage-deflate ;client_max_window_bits = 15, x-foo",
        )
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].name, "permessage-deflate");
        assert_eq!(got[0].param("client_max_window_bits"), Some(None));
        assert_eq!(got[0].param("SERVER_MAX_WINDOW_BITS"), Some(Some("10")));
        assert_eq!(got[0].param("absent"), None);
        assert_eq!(got[1].param("client_max_window_bits"), Some(Some("15")));
        assert_eq!(got[2].name, "x-foo");
        assert!(got[2].params.is_empty());
        assert_eq!(ext("").unwrap(), []);
        assert_eq!(
            ext("a; b=\"c\\d\"").unwrap()[0].param("b"),
            Some(Some("cd"))
        );
        // Repeated header fields concatenate.
        let both = parse_extensions([b"a".as_slice(), b"b; c"].into_iter()).unwrap();
        assert_eq!(both.len(), 2);
    }

    #[test]
    fn malformed_extension_offers() {
        for bad in [
            ";x",
            "a;",
            "a; =1",
            "a; b=",
            "a; b=\"unterminated",
            "a; b=\"two words\"",
            "a b",
            "a; b=c d",
            "a/b",
            "a; b=\"\\",
        ] {
            assert!(
                matches!(ext(bad), Err(HandshakeError::BadExtension(_))),
                "{bad:?} -> {:?}",
                ext(bad)
            );
        }
        assert!(parse_extensions(std::iter::once(b"\xff".as_slice())).is_err());
    }

    #[test]
    fn headers_lookup() {
        let h: Headers = [
            ("Connection", b"keep-alive".as_slice()),
            ("X-Bin", b"\xff\xfe"),
            ("connection", b" Upgrade , ,foo "),
        ]
        .into_iter()
        .collect();
        assert_eq!(h.get("CONNECTION"), Some("keep-alive"));
        assert_eq!(
            h.list("connection").collect::<Vec<_>>(),
            ["keep-alive", "Upgrade", "foo"]
        );
        assert!(h.has_token("Connection", "upgrade"));
        assert!(!h.has_token("Connection", "upgrad"));
        assert_eq!(h.get("x-bin"), None);
        assert_eq!(h.get_bytes("x-bin"), Some(b"\xff\xfe".as_slice()));
        assert_eq!(h.len(), 3);
        assert_eq!(
            h.iter().next(),
            Some(("Connection", b"keep-alive".as_slice()))
        );
    }

    #[test]
    fn header_checks() {
        assert!(check_header("X-Ok", "a b\tc").is_ok());
        for (n, v) in [
            ("X", "a\rb"),
            ("X", "a\nb"),
            ("X", "\0"),
            ("X", "\x7f"),
            ("X Y", "v"),
            ("", "v"),
            ("X:", "v"),
        ] {
            assert!(check_header(n, v).is_err(), "{n:?}: {v:?}");
        }
    }

    #[test]
    fn head_reader_is_bounded_and_linear() {
        // A head right at a large cap, fed byte by byte: each byte is scanned
        // a constant number of times, so this stays fast.
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        while head.len() < 60_000 {
            head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let mut reader = HeadReader::new(head.len());
        for (i, b) in head.iter().enumerate() {
            let got = reader.push(std::slice::from_ref(b)).unwrap();
            assert_eq!(got.is_some(), i == head.len() - 1);
            if let Some(done) = got {
                assert_eq!(done.head, head);
                assert!(done.leftover.is_empty());
            }
        }
        // One byte less of room: rejected, and never holding more than the cap.
        let mut reader = HeadReader::new(head.len() - 1);
        let err = reader.push(&head).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::HeadTooLarge {
                limit: head.len() - 1
            }
        );
        assert!(reader.buf.len() < head.len());
    }

    #[test]
    fn terminator_split_across_chunks() {
        let input = b"GET / HTTP/1.1\r\n\r\nrest";
        for cut in 14..18 {
            let mut reader = HeadReader::new(100);
            assert!(reader.push(&input[..cut]).unwrap().is_none(), "cut {cut}");
            let done = reader.push(&input[cut..]).unwrap().expect("complete");
            assert_eq!(done.head, b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(done.leftover, b"rest");
        }
    }

    #[test]
    fn rfc_1_3_accept_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
