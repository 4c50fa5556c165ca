//! Errors, split by who is at fault.
//!
//! - [`ProtocolError`]: the peer broke RFC 6455. Reported as an event, never
//!   returned from an input call; each maps to exactly one close code in
//!   [`ProtocolError::close_code`].
//! - [`HandshakeError`]: the upgrade request or response was unacceptable;
//!   each maps to an HTTP status in [`HandshakeError::status`].
//! - [`UsageError`]: the caller's own bug (sending after close, a reason over
//!   123 bytes); returned as `Err` from the command that was misused.

use std::fmt;
use std::sync::Arc;

use crate::close::CloseCode;

/// The peer violated the protocol. The connection answers with a close frame
/// carrying [`ProtocolError::close_code`] and stops processing input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV bits set that no negotiated extension owns.
    #[error("peer set reserved bits {0:#05b} without a negotiated extension")]
    ReservedBits(u8),
    /// An opcode RFC 6455 reserves.
    #[error("peer used reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame longer than 125 bytes.
    #[error("peer sent a control frame longer than 125 bytes")]
    ControlFrameTooLong,
    /// A control frame without FIN.
    #[error("peer fragmented a control frame")]
    FragmentedControlFrame,
    /// A continuation frame with no message in progress.
    #[error("peer sent a continuation frame with no message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message was in progress.
    #[error("peer started a new message before finishing the fragmented one")]
    ExpectedContinuation,
    /// A client frame without a mask (servers require masking, §5.1).
    #[error("client sent an unmasked frame")]
    UnmaskedFrame,
    /// A server frame with a mask (clients reject masking, §5.1).
    #[error("server sent a masked frame")]
    MaskedFrame,
    /// A length encoded in more bytes than needed.
    #[error("peer encoded a frame length non-minimally")]
    NonMinimalLength,
    /// A 64-bit length with the most significant bit set.
    #[error("peer sent a 64-bit frame length with the top bit set")]
    LengthTooLarge,
    /// A close frame with a one-byte payload.
    #[error("peer sent a close frame with a one-byte payload")]
    InvalidClosePayload,
    /// A close frame with a code that must not be sent.
    #[error("peer sent close code {0}, which may not appear on the wire")]
    InvalidCloseCode(u16),
    /// Text (or a close reason) that is not valid UTF-8.
    #[error("peer sent text that is not valid UTF-8")]
    InvalidUtf8,
    /// A message larger than the configured limit.
    #[error("peer sent a message over the {limit}-byte limit")]
    MessageTooBig {
        /// The configured maximum message size.
        limit: usize,
    },
    /// A frame larger than the configured limit.
    #[error("peer sent a frame over the {limit}-byte limit")]
    FrameTooBig {
        /// The configured maximum frame size.
        limit: usize,
    },
    /// More fragments in one message than the configured limit.
    #[error("peer split a message into more than {limit} fragments")]
    TooManyFragments {
        /// The configured maximum number of fragments.
        limit: usize,
    },
    /// A negotiated extension rejected the data (e.g. corrupt compressed data).
    #[error("extension {extension} rejected the data: {reason}")]
    Extension {
        /// The extension's name.
        extension: &'static str,
        /// What went wrong.
        reason: &'static str,
    },
}

impl ProtocolError {
    /// The close code this violation is answered with. This match is the one
    /// place that maps errors to wire codes.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            ProtocolError::MessageTooBig { .. }
            | ProtocolError::FrameTooBig { .. }
            | ProtocolError::TooManyFragments { .. } => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::Extension { .. } => CloseCode::INVALID_PAYLOAD,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// Which deadline expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Nothing arrived from the peer for the idle timeout.
    Idle,
    /// The peer did not finish the close handshake in time.
    Close,
    /// Our output stayed pending, with no byte accepted by the transport,
    /// for longer than [`Config::write_timeout`](crate::Config::write_timeout):
    /// the peer stopped reading.
    Write,
}

/// Why a connection failed rather than closing cleanly. Reported in
/// [`crate::Event::Error`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer violated the protocol; we sent a close frame with its code.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A deadline expired.
    #[error("{}", match .0 {
        TimeoutKind::Idle => "the peer was silent for longer than the idle timeout",
        TimeoutKind::Close => "the peer did not finish the close handshake in time",
        TimeoutKind::Write => "peer stopped reading for longer than the write timeout",
    })]
    Timeout(TimeoutKind),
    /// The transport ended before a close frame arrived (reported as 1006).
    #[error("the connection ended without a close frame")]
    Eof,
}

impl ConnectionError {
    /// The code reported locally for this failure.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ConnectionError::Protocol(e) => e.close_code(),
            ConnectionError::Timeout(TimeoutKind::Idle | TimeoutKind::Write) => {
                CloseCode::INTERNAL_ERROR
            }
            ConnectionError::Timeout(_) | ConnectionError::Eof => CloseCode::ABNORMAL,
        }
    }
}

/// The upgrade request or response could not be accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The bytes are not a valid HTTP/1.1 head. A server reports this at
    /// the first byte that cannot belong to a request head (answered with
    /// 400), not after the whole head or the deadline.
    #[error("malformed HTTP head: {0}")]
    MalformedHttp(&'static str),
    /// The first byte was a TLS handshake record (a client speaking TLS to
    /// a plain-text port, e.g. `wss://` or `https://` to a `ws://` server).
    /// Answered with 400 in plain text, as any other request that is not
    /// HTTP/1.1; the client sees a TLS failure, the server log says why.
    #[error("received a TLS handshake on a plain-text port: connect with ws:// or http://, or serve TLS here")]
    TlsOnPlainPort,
    /// The head is longer than the configured cap.
    #[error("HTTP head exceeds the {limit}-byte limit")]
    HeadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// More header lines than the configured cap.
    #[error("HTTP head has more than {limit} header lines")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// The request method is not GET.
    #[error("the upgrade request must use GET, not {0}")]
    MethodNotGet(String),
    /// HTTP/1.0 or older.
    #[error("the upgrade request must use HTTP/1.1 or later")]
    UnsupportedHttpVersion,
    /// A required header is missing or wrong.
    #[error("{0}")]
    BadHeader(&'static str),
    /// `Sec-WebSocket-Version` is not 13; answered with 426 and `Sec-WebSocket-Version: 13`.
    #[error("unsupported Sec-WebSocket-Version (only 13 is supported)")]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes.
    #[error("Sec-WebSocket-Key must be base64 of 16 bytes")]
    InvalidKey,
    /// The request is not a WebSocket upgrade at all (a plain HTTP request).
    #[error("not a WebSocket upgrade request")]
    NotUpgrade,
    /// The request carried a body, which an upgrade request must not.
    #[error("the upgrade request must not carry a body")]
    BodyNotAllowed,
    /// The server answered with something other than `101` (client side),
    /// or, to an HTTP/2 extended `CONNECT`, with something other than 2xx.
    /// The status and headers are kept so the caller can report them.
    #[error("server answered {status} and did not accept the upgrade")]
    Rejected {
        /// The HTTP status code.
        status: u16,
        /// The response headers as (name, value) pairs.
        headers: Vec<(String, Vec<u8>)>,
    },
    /// The server's `Sec-WebSocket-Accept` does not match our key.
    #[error("server sent the wrong Sec-WebSocket-Accept")]
    BadAccept,
    /// The server chose a subprotocol we did not offer.
    #[error("server chose subprotocol {0:?}, which we did not offer")]
    UnofferedSubprotocol(String),
    /// The server answered with an extension we did not offer.
    #[error("server enabled extension {0:?}, which we did not offer")]
    UnofferedExtension(String),
    /// An extension negotiation was malformed.
    #[error("invalid extension negotiation: {0}")]
    BadExtension(String),
    /// An extended CONNECT (RFC 8441) request whose method is not CONNECT.
    #[error("the extended CONNECT request must use CONNECT, not {0}")]
    MethodNotConnect(String),
    /// The application chose a subprotocol the client did not offer
    /// (server side; the caller's bug).
    #[error(
        "subprotocol {0:?} was not offered by the client; choose one of Request::subprotocols"
    )]
    SubprotocolNotOffered(String),
    /// The application tried to send a header whose name is not a token or
    /// whose value contains control characters such as CR or LF.
    #[error(
        "invalid header {0:?}: names must be tokens and values must not contain control characters"
    )]
    InvalidHeader(String),
    /// The application tried to set a header the handshake writes itself.
    #[error("header {0:?} is set by the handshake and cannot be added")]
    ReservedHeader(String),
    /// A client URL that cannot be used (client side).
    #[error("invalid WebSocket URL: {0}")]
    InvalidUrl(&'static str),
    /// A client URL with a scheme other than `ws` or `wss`.
    #[error("unsupported URL scheme {0:?}; use ws:// or wss://")]
    UnsupportedScheme(String),
    /// `receive` was called after the client handshake already returned
    /// its result (the caller's bug: feed later bytes to the connection).
    #[error("the handshake already completed; feed further bytes to the connection")]
    AlreadyComplete,
    /// The handshake deadline passed.
    #[error("the opening handshake timed out")]
    Timeout,
    /// The peer closed the transport before the head was complete.
    #[error("the peer closed the connection during the handshake")]
    Eof,
}

impl HandshakeError {
    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadTooLarge { .. } | HandshakeError::TooManyHeaders { .. } => 431,
            HandshakeError::MethodNotGet(_) | HandshakeError::MethodNotConnect(_) => 405,
            HandshakeError::SubprotocolNotOffered(_)
            | HandshakeError::InvalidHeader(_)
            | HandshakeError::ReservedHeader(_)
            | HandshakeError::AlreadyComplete => 500,
            HandshakeError::UnsupportedHttpVersion => 505,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::NotUpgrade => 426,
            HandshakeError::BodyNotAllowed => 413,
            HandshakeError::Timeout => 408,
            HandshakeError::Rejected { status, .. } => *status,
            _ => 400,
        }
    }
}

/// The caller misused the API. Returned as `Err` from the command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// A data frame or ping after `close` was called or the connection ended.
    #[error("cannot send after the connection started closing")]
    SendAfterClose,
    /// A close code that may not be sent (1004–1006, 1015, or out of range).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A close reason over 123 bytes.
    #[error("close reason is {0} bytes; the limit is 123")]
    CloseReasonTooLong(usize),
    /// A ping or pong payload over 125 bytes.
    #[error("control frame payload is {0} bytes; the limit is 125")]
    ControlPayloadTooLong(usize),
    /// A chunk of a different kind (text or binary) than the message being
    /// streamed out.
    #[error("a {0} chunk cannot continue a message of the other kind")]
    ChunkKindMismatch(&'static str),
    /// A whole message was asked for while messages stream in chunks
    /// (take them chunk by chunk instead).
    #[error("messages arrive in chunks on this connection; take them chunk by chunk")]
    Streaming,
}

/// Why an operation on a connection failed, as every runtime adapter
/// reports it: the errors above plus the transport's.
///
/// `Display` and `source` are written by hand (not derived) so that
/// [`Error::Tls`] hands out the TLS library's own error as its source,
/// where callers can downcast it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (reset, broken pipe, ...).
    Io(Arc<std::io::Error>),
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// The peer violated the protocol; we closed with the matching code.
    Protocol(ProtocolError),
    /// A deadline passed (idle, close, or write stall; a handshake that took
    /// too long is [`HandshakeError::Timeout`]).
    Timeout(TimeoutKind),
    /// The connection ended without a close frame (reported as 1006).
    Eof,
    /// The connection closed (cleanly) in the middle of a message that was
    /// being taken in chunks: the rest of it will never come.
    Incomplete,
    /// The caller misused the API (sending after close, a bad close code, ...).
    Usage(UsageError),
    /// The request hook rejected the request with this HTTP status.
    Rejected(u16),
    /// TLS was requested but is not available or failed. The cause is the
    /// error's [`source`](std::error::Error::source); build it with
    /// [`Error::tls`].
    Tls(Arc<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Timeout(kind) => f.write_str(match kind {
                TimeoutKind::Idle => {
                    "timed out: the peer was silent for longer than the idle timeout"
                }
                TimeoutKind::Close => "timed out: the peer did not finish the close handshake",
                TimeoutKind::Write => {
                    "timed out: peer stopped reading for longer than the write timeout"
                }
            }),
            Error::Eof => f.write_str("the connection ended without a close frame"),
            Error::Incomplete => f.write_str("the connection closed in the middle of a message"),
            Error::Usage(e) => fmt::Display::fmt(e, f),
            Error::Rejected(status) => write!(f, "request rejected with status {status}"),
            Error::Tls(e) => write!(f, "tls: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Handshake(e) => Some(e),
            Error::Protocol(e) => Some(e),
            // Shown in place of this error, so its source is the next link.
            Error::Usage(e) => std::error::Error::source(e),
            Error::Tls(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Error::Usage(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Protocol(p) => Error::Protocol(p),
            ConnectionError::Timeout(t) => Error::Timeout(t),
            ConnectionError::Eof => Error::Eof,
        }
    }
}

impl Error {
    /// A [`Error::Tls`] from the TLS library's error, or from a message
    /// (`String` and `&str` convert too) when there is no error value.
    pub fn tls(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Tls(Arc::from(cause.into()))
    }

    /// Whether this is an abnormal end of a working connection (reset,
    /// timeout, missing close frame), as opposed to a usage error.
    pub fn is_abnormal_close(&self) -> bool {
        matches!(self, Error::Io(_) | Error::Eof | Error::Timeout(_))
    }

    /// The close code to report locally for this failure, if it ended a
    /// connection: the code we sent for a protocol error, 1006 for an
    /// abrupt end, 1011 for an idle or write timeout.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(p) => Some(p.close_code()),
            Error::Timeout(TimeoutKind::Idle | TimeoutKind::Write) => {
                Some(CloseCode::INTERNAL_ERROR)
            }
            Error::Io(_) | Error::Eof | Error::Timeout(_) => Some(CloseCode::ABNORMAL),
            _ => None,
        }
    }
}

/// Why a non-waiting send did not queue a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError {
    /// Queued output is over the write limit; here is the message back.
    #[error("the write buffer is full")]
    Full(crate::message::Message),
    /// The connection can no longer send.
    #[error("the connection is closed: {0}")]
    Closed(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode(1007));
        assert_eq!(
            ProtocolError::MessageTooBig { limit: 1 }.close_code(),
            CloseCode(1009)
        );
        assert_eq!(
            ProtocolError::ReservedOpcode(3).close_code(),
            CloseCode(1002)
        );
        assert_eq!(HandshakeError::UnsupportedVersion.status(), 426);
        assert_eq!(HandshakeError::HeadTooLarge { limit: 1 }.status(), 431);
    }

    #[test]
    fn write_timeout_reports_1011() {
        let e = ConnectionError::Timeout(TimeoutKind::Write);
        assert_eq!(e.close_code(), CloseCode::INTERNAL_ERROR);
        assert_eq!(
            e.to_string(),
            "peer stopped reading for longer than the write timeout"
        );
        assert_eq!(Error::from(e).close_code(), Some(CloseCode::INTERNAL_ERROR));
    }

    #[test]
    fn tls_error_keeps_its_source() {
        use std::error::Error as _;
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad certificate");
        let e = Error::tls(io);
        assert_eq!(e.to_string(), "tls: bad certificate");
        let source = e.source().expect("the cause is the source");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        let from_text = Error::tls("wss:// needs the `rustls` feature");
        assert_eq!(
            from_text.to_string(),
            "tls: wss:// needs the `rustls` feature"
        );
        assert!(from_text.clone().source().is_some());
        let handshake = Error::from(HandshakeError::Timeout);
        assert_eq!(
            handshake.to_string(),
            "handshake failed: the opening handshake timed out"
        );
        assert!(handshake.source().is_some());
        assert_eq!(
            Error::from(UsageError::SendAfterClose).to_string(),
            UsageError::SendAfterClose.to_string()
        );
        assert_eq!(
            Error::Timeout(TimeoutKind::Idle).to_string(),
            "timed out: the peer was silent for longer than the idle timeout"
        );
    }
}
