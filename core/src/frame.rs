//! Frame headers and masking (RFC 6455 §5.2, §5.3): pure encode/decode.
//!
//! Nothing here knows about connections or messages; [`crate::Connection`]
//! decides what a decoded header means.

use crate::error::ProtocolError;

/// The largest encoded frame header: 2 fixed bytes, 8 length bytes, 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// Frame opcodes (RFC 6455 §5.2). Unknown values are kept in [`OpCode::Reserved`]
/// so a header can be re-encoded exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
    /// 0x3–0x7 and 0xB–0xF: reserved; a frame using one fails the connection.
    Reserved(u8),
}

impl OpCode {
    /// The opcode for the low four bits of `bits`.
    pub fn from_bits(bits: u8) -> OpCode {
        match bits & 0x0f {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xa => OpCode::Pong,
            other => OpCode::Reserved(other),
        }
    }

    /// The four-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xa,
            OpCode::Reserved(b) => b & 0x0f,
        }
    }

    /// Control opcodes have the high bit of the nibble set (§5.5).
    pub fn is_control(self) -> bool {
        self.bits() & 0x08 != 0
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1..RSV3 as the three low bits: RSV1 = 0b100, RSV2 = 0b010, RSV3 = 0b001.
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on frames a client sends.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

/// RSV1 in [`FrameHeader::rsv`] (used by permessage-deflate).
pub const RSV1: u8 = 0b100;

impl FrameHeader {
    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold the whole header, and
    /// otherwise the header and its encoded length. Non-minimal length
    /// encodings and 64-bit lengths with the top bit set are rejected
    /// (§5.2: "the most significant bit MUST be 0"; minimal encoding is our
    /// stated strictness, answered with 1002).
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let b0 = buf[0];
        let b1 = buf[1];
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        let len_bytes = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let need = 2 + len_bytes + if masked { 4 } else { 0 };
        if buf.len() < need {
            return Ok(None);
        }
        let payload_len = match len7 {
            126 => {
                let n = u16::from_be_bytes([buf[2], buf[3]]) as u64;
                if n < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                n
            }
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                let n = u64::from_be_bytes(b);
                if n >> 63 != 0 {
                    return Err(ProtocolError::LengthTooLarge);
                }
                if n <= u16::MAX as u64 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                n
            }
            n => n as u64,
        };
        let mask = if masked {
            let at = 2 + len_bytes;
            Some([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv: (b0 >> 4) & 0x07,
                opcode: OpCode::from_bits(b0),
                mask,
                payload_len,
            },
            need,
        )))
    }

    /// The number of bytes [`FrameHeader::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encodes the header minimally into `out`, returning the bytes written.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x07) << 4) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = match self.payload_len {
            n @ 0..=125 => {
                out[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xffff => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        at
    }

    /// Appends the encoded header to `out`.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = self.encode(&mut buf);
        out.extend_from_slice(&buf[..n]);
    }
}

/// XORs `data` with the masking key, starting `offset` bytes into the key
/// cycle (so a payload can be unmasked in pieces as it arrives).
///
/// Works on 128-byte blocks of `u64` lanes with a rotated key, which the
/// compiler turns into vector XORs (SSE2 on the x86-64 baseline); no
/// `unsafe` needed.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as it lines up with data[0], then repeated over a word.
    let key = u32::from_le_bytes(key)
        .rotate_right(8 * (offset % 4) as u32)
        .to_le_bytes();
    let lane = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut blocks = data.chunks_exact_mut(128);
    for block in &mut blocks {
        for word in block.chunks_exact_mut(8) {
            let v = u64::from_ne_bytes([
                word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
            ]) ^ lane;
            word.copy_from_slice(&v.to_ne_bytes());
        }
    }
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for word in &mut words {
        let v = u64::from_ne_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]) ^ lane;
        word.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc_5_7_single_frame_unmasked_text() {
        let bytes = hex("810548656c6c6f");
        let (h, n) = FrameHeader::decode(&bytes).unwrap().unwrap();
        assert_eq!(n, 2);
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.payload_len, 5);
        assert_eq!(&bytes[n..], b"Hello");
    }

    #[test]
    fn rfc_5_7_single_frame_masked_text() {
        let bytes = hex("818537fa213d7f9f4d5158");
        let (h, n) = FrameHeader::decode(&bytes).unwrap().unwrap();
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        let mut payload = bytes[n..].to_vec();
        apply_mask(&mut payload, h.mask.unwrap(), 0);
        assert_eq!(payload, b"Hello");
    }

    #[test]
    fn rfc_5_7_lengths_256_and_64k() {
        let b = hex("827e0100");
        let (h, n) = FrameHeader::decode(&b).unwrap().unwrap();
        assert_eq!((h.opcode, h.payload_len, n), (OpCode::Binary, 256, 4));
        let b = hex("827f0000000000010000");
        let (h, n) = FrameHeader::decode(&b).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut out);
        assert_eq!(&out[..n], &b[..]);
    }

    #[test]
    fn rejects_non_minimal_and_msb() {
        assert_eq!(
            FrameHeader::decode(&hex("827e007d")),
            Err(ProtocolError::NonMinimalLength)
        );
        assert_eq!(
            FrameHeader::decode(&hex("827f000000000000ffff")),
            Err(ProtocolError::NonMinimalLength)
        );
        assert_eq!(
            FrameHeader::decode(&hex("827f8000000000000000")),
            Err(ProtocolError::LengthTooLarge)
        );
    }

    #[test]
    fn partial_header_needs_more() {
        let b = hex("818537fa213d");
        for cut in 0..b.len() {
            assert_eq!(FrameHeader::decode(&b[..cut]), Ok(None));
        }
    }

    #[test]
    fn mask_in_pieces_matches_whole() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data.clone();
        let (a, b) = pieces.split_at_mut(37);
        apply_mask(a, key, 0);
        apply_mask(b, key, 37);
        assert_eq!(whole, pieces);
        apply_mask(&mut whole, key, 0);
        assert_eq!(whole, data);
    }
}
