//! Errors of the tokio adapter: the core's errors plus I/O.

use std::sync::Arc;

use wavecast_core::{
    ConnectionError, HandshakeError, Message, ProtocolError, TimeoutKind, UsageError,
};

/// Why an operation on a connection failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (reset, broken pipe, ...).
    #[error("i/o error: {0}")]
    Io(Arc<std::io::Error>),
    /// The opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer violated the protocol; we closed with the matching code.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A deadline passed (handshake, idle, or close).
    #[error("timed out: {}", match .0 {
        TimeoutKind::Handshake => "the opening handshake took too long",
        TimeoutKind::Idle => "the peer was silent for longer than the idle timeout",
        TimeoutKind::Close => "the peer did not finish the close handshake",
        _ => "a deadline passed",
    })]
    Timeout(TimeoutKind),
    /// The connection ended without a close frame (reported as 1006).
    #[error("the connection ended without a close frame")]
    Eof,
    /// The caller misused the API (sending after close, a bad close code, ...).
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The request hook rejected the request with this HTTP status.
    #[error("request rejected with status {0}")]
    Rejected(u16),
    /// A URL could not be used to connect.
    #[error("invalid url: {0}")]
    Url(String),
    /// TLS was requested but is not available or failed.
    #[error("tls: {0}")]
    Tls(String),
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
            _ => Error::Eof,
        }
    }
}

impl Error {
    /// Whether this is an abnormal end of an otherwise working connection
    /// (reset, timeout, missing close frame), as opposed to a usage error.
    pub fn is_abnormal_close(&self) -> bool {
        matches!(self, Error::Io(_) | Error::Eof | Error::Timeout(_))
    }
}

/// Why [`crate::Sender::try_send`] did not queue a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError {
    /// Queued output is over the write limit; here is the message back.
    #[error("the write buffer is full")]
    Full(Message),
    /// The connection can no longer send.
    #[error("the connection is closed: {0}")]
    Closed(Error),
}
