//! The extension stage of the frame/message pipeline (RFC 6455 §9).
//!
//! A negotiated extension owns some RSV bits and transforms whole messages:
//! outgoing payloads before framing, incoming payloads before the size
//! limit and the UTF-8 check are applied. permessage-deflate (RFC 7692)
//! plugs in here.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::frame::OpCode;

/// A per-message extension negotiated for one connection.
pub trait Extension: Send + fmt::Debug {
    /// The extension token as it appears in `Sec-WebSocket-Extensions`.
    fn name(&self) -> &'static str;

    /// The RSV bits (as in [`crate::frame::FrameHeader::rsv`]) this extension
    /// may set on the first frame of a data message. Any other RSV bit, or
    /// any RSV bit on a continuation or control frame, fails with 1002.
    fn rsv_bits(&self) -> u8;

    /// Called for the first frame of each incoming data message with its RSV
    /// bits. Returns whether this message passes through [`Extension::decode`].
    fn decode_begin(&mut self, rsv: u8) -> bool;

    /// Transforms a piece of an incoming message's payload, appending the
    /// result to `out`. Must fail with [`ProtocolError::MessageTooBig`]
    /// rather than let `out` hold more than `limit` bytes.
    fn decode(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), ProtocolError>;

    /// Ends an incoming message (after the frame with FIN).
    fn decode_end(&mut self, out: &mut BytesMut, limit: usize) -> Result<(), ProtocolError>;

    /// Transforms an outgoing data message. Returns the RSV bits to set and
    /// the new payload, or `None` to send it unchanged.
    fn encode(&mut self, opcode: OpCode, payload: &[u8]) -> Option<(u8, Bytes)>;
}
