//! The extension stage of the frame/message pipeline (RFC 6455 §9).
//!
//! A negotiated extension owns some RSV bits and transforms messages
//! (whole, or chunk by chunk when they stream):
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

    /// Like [`Extension::decode`], but may stop early once `out` holds at
    /// least `pause_at` bytes, returning how many bytes of `input` it used;
    /// the caller passes the rest again later. Streaming uses it so that a
    /// small input that expands a lot is taken in step with the
    /// application. The default decodes everything.
    fn decode_some(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        limit: usize,
        pause_at: usize,
    ) -> Result<usize, ProtocolError> {
        let _ = pause_at;
        self.decode(input, out, limit)?;
        Ok(input.len())
    }

    /// Ends an incoming message (after the frame with FIN).
    fn decode_end(&mut self, out: &mut BytesMut, limit: usize) -> Result<(), ProtocolError>;

    /// Transforms an outgoing data message. Returns the RSV bits to set and
    /// the new payload, or `None` to send it unchanged.
    fn encode(&mut self, opcode: OpCode, payload: &[u8]) -> Option<(u8, Bytes)>;

    /// Transforms one chunk of an outgoing message sent piece by piece
    /// (`first` and `last` mark its ends; `opcode` is the message's). Returns
    /// the RSV bits for the first frame (0 on later ones) and the chunk's
    /// new payload, or `None` to send it unchanged. The answer for the first
    /// chunk holds for the whole message. The default sends every chunk
    /// unchanged.
    fn encode_chunk(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        first: bool,
        last: bool,
    ) -> Option<(u8, Bytes)> {
        let _ = (opcode, payload, first, last);
        None
    }
}
