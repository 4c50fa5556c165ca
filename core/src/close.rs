//! Close codes and close-frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ProtocolError, UsageError};
use crate::message::Utf8Bytes;

/// A close status code (RFC 6455 §7.4).
///
/// A newtype over `u16` rather than an enum: peers may legitimately send any
/// code in the registered 1000–1014 range or the private 3000–4999 ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the framing rules.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no code was present in the close frame; reported locally, never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection ended without a close frame; reported locally, never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message was not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message or frame was larger than the configured limit.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition (also used for heartbeat timeouts).
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway received an invalid response.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: the TLS handshake failed; reported locally, never sent.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// Registered codes 1000–1003 and 1007–1014 are allowed, as are the
    /// library and application ranges 3000–4999. 1004 is reserved and
    /// 1005/1006/1015 exist only for local reporting (RFC 6455 §7.4.1).
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The payload of a close frame: a code and a UTF-8 reason of at most 123 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code. [`CloseCode::NO_STATUS`] when the peer sent an empty close frame.
    pub code: CloseCode,
    /// The reason, possibly empty.
    pub reason: Utf8Bytes,
}

/// Longest reason that fits a control frame after the two code bytes.
pub const MAX_REASON_LEN: usize = 123;

impl CloseFrame {
    /// A close frame with a code and reason, checked for sending.
    ///
    /// Fails when the code may not be sent (1004–1006, 1015, out of range) or
    /// the reason is longer than 123 bytes (RFC 6455 §5.5).
    pub fn new(code: CloseCode, reason: impl Into<Utf8Bytes>) -> Result<Self, UsageError> {
        let reason = reason.into();
        if !code.is_sendable() {
            return Err(UsageError::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(UsageError::CloseReasonTooLong(reason.len()));
        }
        Ok(CloseFrame { code, reason })
    }

    /// Parses a received close payload (RFC 6455 §5.5.1).
    ///
    /// An empty payload means "no status" and is reported as 1005.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtocolError> {
        match payload.len() {
            0 => Ok(CloseFrame {
                code: CloseCode::NO_STATUS,
                reason: Utf8Bytes::new(),
            }),
            1 => Err(ProtocolError::InvalidClosePayload),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = Utf8Bytes::try_from(Bytes::copy_from_slice(&payload[2..]))
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(CloseFrame { code, reason })
            }
        }
    }

    /// Encodes the payload: the code in network order, then the reason.
    ///
    /// A frame carrying [`CloseCode::NO_STATUS`] encodes as an empty payload.
    pub fn encode(&self) -> Bytes {
        if self.code == CloseCode::NO_STATUS {
            return Bytes::new();
        }
        let mut out = BytesMut::with_capacity(2 + self.reason.len());
        out.put_u16(self.code.0);
        out.extend_from_slice(self.reason.as_bytes());
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_ranges() {
        for ok in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(CloseCode(ok).is_sendable(), "{ok}");
        }
        for bad in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(bad).is_sendable(), "{bad}");
        }
    }

    #[test]
    fn parse_payloads() {
        assert_eq!(CloseFrame::parse(&[]).unwrap().code, CloseCode::NO_STATUS);
        assert_eq!(
            CloseFrame::parse(&[0x03]),
            Err(ProtocolError::InvalidClosePayload)
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xed]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        let f = CloseFrame::parse(&[0x03, 0xe8, b'o', b'k']).unwrap();
        assert_eq!(f.code, CloseCode::NORMAL);
        assert_eq!(&*f.reason, "ok");
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xe8, 0xff]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn new_checks_usage() {
        assert!(CloseFrame::new(CloseCode(1006), "").is_err());
        assert!(CloseFrame::new(CloseCode::NORMAL, "x".repeat(124)).is_err());
        let f = CloseFrame::new(CloseCode::NORMAL, "x".repeat(123)).unwrap();
        assert_eq!(f.encode().len(), 125);
    }
}
