//! permessage-deflate (RFC 7692): negotiation and the per-message codec.
//!
//! Enabled by the `deflate` cargo feature. The server side picks the first
//! acceptable offer in the client's `Sec-WebSocket-Extensions` (§5, §7.1);
//! the client side offers what its [`DeflateConfig`] asks for and fails the
//! handshake on a malformed or unacceptable answer (§5.1). The agreed
//! [`DeflateParams`] travel in [`crate::Negotiated`], and
//! [`crate::Connection::with_negotiated`] installs the codec.
//!
//! # Memory
//!
//! Memory comes first. By default both directions run without context
//! takeover (§7.1.1): a compressor or decompressor is allocated for one
//! message and freed when it ends, so an idle connection holds no
//! compression memory at all (measured: the same bytes as a connection
//! without deflate). While one message is compressed, ≈ 375 KiB are
//! allocated for it and freed right after; a prepared (broadcast) message
//! is compressed once for all such members.
//!
//! With context takeover the state lives as long as the connection.
//! Measured with flate2's zlib-rs backend, per connection with takeover in
//! both directions: ≈ 418 KiB at 15 bits, ≈ 306 KiB at 12 bits, ≈ 294 KiB
//! at 10 bits, ≈ 292 KiB at 9 bits. The compressor dominates (its hash
//! tables do not shrink with the window); a decompressor alone costs about
//! `2^bits + 14 KiB` (≈ 46 KiB at 15 bits). So a cheap middle ground is
//! context takeover for what the peer sends only
//! (`client_no_context_takeover = false` on a server). Opt in with
//! [`DeflateConfig::with_context_takeover`] only where that is affordable.
//!
//! zlib cannot compress with an 8-bit window, so we never agree to compress
//! with one: a server declines an offer that pins `server_max_window_bits=8`,
//! and a client fails the handshake if the server pins
//! `client_max_window_bits=8`. Inflating an 8-bit stream works (a 9-bit
//! window is used).

use bytes::{Bytes, BytesMut};
use std::sync::Mutex;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::connection::Role;
use crate::error::{HandshakeError, ProtocolError};
use crate::extension::Extension;
use crate::frame::OpCode;
use crate::handshake::ExtensionOffer;

/// The extension token (RFC 7692 §7).
pub const NAME: &str = "permessage-deflate";

/// The RSV1 bit as in [`crate::frame::FrameHeader::rsv`] ("Per-Message Compressed", §6).
const RSV1: u8 = 0b100;

/// The empty stored block a sync flush ends with (§7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output is produced in pieces of this size, so that a small frame that
/// inflates to a huge message is stopped at the limit (zip bombs).
const INFLATE_CHUNK: usize = 16 << 10;

/// How this endpoint uses permessage-deflate: what to offer or accept, and
/// when to compress.
///
/// The default is memory-first: no context takeover in either direction
/// (nothing is kept between messages), 15-bit windows while a message is
/// being compressed, level 6, and messages under 128 bytes sent as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Ask that the server reset its compression context after each message
    /// (server: answer with `server_no_context_takeover` even unasked,
    /// §7.1.1.1; client: request it). Default `true`.
    pub server_no_context_takeover: bool,
    /// Ask that the client reset its compression context after each message
    /// (server: answer with `client_no_context_takeover` even unasked,
    /// §7.1.1.2; client: announce it). Default `true`.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (9–15) of the server's compressor (§7.1.2.1).
    /// Server: the window we compress with, at most what the client asks for.
    /// Client: below 15, requested with `server_max_window_bits`. Default 15.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window (9–15) of the client's compressor (§7.1.2.2).
    /// Server: below 15, imposed when the client allows it. Client: offered
    /// with `client_max_window_bits`. Default 15.
    pub client_max_window_bits: u8,
    /// Messages shorter than this many bytes are sent uncompressed.
    /// Default 128.
    pub threshold: usize,
    /// zlib compression level, 0 (none) to 9 (best). Default 6.
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            threshold: 128,
            level: 6,
        }
    }
}

impl DeflateConfig {
    /// Allows context takeover in both directions with windows of `bits`
    /// (clamped to 9–15): better compression of similar messages, at the
    /// memory cost stated in the [module docs](self) for every connection.
    pub fn with_context_takeover(mut self, bits: u8) -> Self {
        let bits = bits.clamp(9, 15);
        self.server_no_context_takeover = false;
        self.client_no_context_takeover = false;
        self.server_max_window_bits = bits;
        self.client_max_window_bits = bits;
        self
    }
    /// Sets [`DeflateConfig::server_no_context_takeover`].
    pub fn with_server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }
    /// Sets [`DeflateConfig::client_no_context_takeover`].
    pub fn with_client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }
    /// Sets [`DeflateConfig::server_max_window_bits`], clamped to 9–15.
    pub fn with_server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits.clamp(9, 15);
        self
    }
    /// Sets [`DeflateConfig::client_max_window_bits`], clamped to 9–15.
    pub fn with_client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits.clamp(9, 15);
        self
    }
    /// Sets [`DeflateConfig::threshold`].
    pub fn with_threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }
    /// Sets [`DeflateConfig::level`], clamped to 0–9.
    pub fn with_level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    fn server_bits(&self) -> u8 {
        self.server_max_window_bits.clamp(9, 15)
    }
    fn client_bits(&self) -> u8 {
        self.client_max_window_bits.clamp(9, 15)
    }
}

/// The permessage-deflate parameters both sides agreed on (RFC 7692 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DeflateParams {
    /// The server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window, 8–15 (15 when not negotiated).
    pub server_max_window_bits: u8,
    /// The client's LZ77 window, 8–15 (15 when not negotiated).
    pub client_max_window_bits: u8,
}

impl DeflateParams {
    /// (window bits, reset after each message) of `role`'s compressor.
    fn sender(&self, role: Role) -> (u8, bool) {
        match role {
            Role::Server => (self.server_max_window_bits, self.server_no_context_takeover),
            Role::Client => (self.client_max_window_bits, self.client_no_context_takeover),
        }
    }

    /// The `Sec-WebSocket-Extensions` item a server answers with for these
    /// parameters (window bits are written when below 15).
    pub fn response(&self) -> String {
        let mut out = String::from(NAME);
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            out.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.client_max_window_bits < 15 {
            out.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        out
    }
}

/// A window-bits value: `1*DIGIT` in 8–15 without leading zeros (§7.1.2).
fn parse_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|b| (8..=15).contains(b))
}

/// The parameters of one offer or response, each at most once and well
/// formed (§7.1: otherwise the offer is declined, the response rejected).
#[derive(Default)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

fn parse_params(item: &ExtensionOffer) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut seen = [false; 4];
    for (name, value) in &item.params {
        let lower = name.to_ascii_lowercase();
        let index = match lower.as_str() {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return Err(format!("unknown permessage-deflate parameter {name:?}")),
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err(format!("duplicate permessage-deflate parameter {name:?}"));
        }
        let bad_value = || format!("invalid value for permessage-deflate parameter {name:?}");
        match (index, value.as_deref()) {
            (0, None) => p.server_no_context_takeover = true,
            (1, None) => p.client_no_context_takeover = true,
            (2, Some(v)) => p.server_max_window_bits = Some(parse_bits(v).ok_or_else(bad_value)?),
            (3, None) => p.client_max_window_bits = Some(None),
            (3, Some(v)) => {
                p.client_max_window_bits = Some(Some(parse_bits(v).ok_or_else(bad_value)?))
            }
            _ => return Err(bad_value()),
        }
    }
    Ok(p)
}

/// Server side (§5, §7.1): the first acceptable permessage-deflate offer,
/// as agreed parameters and the response item. Malformed offers, and offers
/// that pin our compressor to an 8-bit window, are declined and the next
/// one is tried.
pub(crate) fn accept_offer(
    offers: &[ExtensionOffer],
    config: &DeflateConfig,
) -> Option<(DeflateParams, String)> {
    offers
        .iter()
        .filter(|o| o.name.eq_ignore_ascii_case(NAME))
        .find_map(|offer| {
            let p = parse_params(offer).ok()?;
            let server_bits = match p.server_max_window_bits {
                // zlib's raw deflate cannot compress with an 8-bit window.
                Some(8) => return None,
                Some(v) => v.min(config.server_bits()),
                None => config.server_bits(),
            };
            // Without the parameter the client may not support limiting its
            // window, so we must accept 15 (§7.1.2.2).
            let client_bits = match p.client_max_window_bits {
                None => 15,
                Some(None) => config.client_bits(),
                Some(Some(v)) => v.min(config.client_bits()),
            };
            let params = DeflateParams {
                server_no_context_takeover: p.server_no_context_takeover
                    || config.server_no_context_takeover,
                client_no_context_takeover: p.client_no_context_takeover
                    || config.client_no_context_takeover,
                server_max_window_bits: server_bits,
                client_max_window_bits: client_bits,
            };
            let mut response = params.response();
            if p.server_max_window_bits.is_some() && server_bits == 15 {
                response.push_str("; server_max_window_bits=15");
            }
            if matches!(p.client_max_window_bits, Some(Some(_))) && client_bits == 15 {
                response.push_str("; client_max_window_bits=15");
            }
            Some((params, response))
        })
}

/// Client side: the `Sec-WebSocket-Extensions` value we offer. When we ask
/// for server-side limits, a plain offer follows as a fallback for servers
/// that cannot honour them.
pub(crate) fn client_offer(config: &DeflateConfig) -> String {
    let cmwb = match config.client_bits() {
        15 => "client_max_window_bits".to_owned(),
        bits => format!("client_max_window_bits={bits}"),
    };
    let mut first = String::from(NAME);
    if config.server_no_context_takeover {
        first.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        first.push_str("; client_no_context_takeover");
    }
    if config.server_bits() < 15 {
        first.push_str(&format!(
            "; server_max_window_bits={}",
            config.server_bits()
        ));
    }
    first.push_str("; ");
    first.push_str(&cmwb);
    let fallback = format!("{NAME}; {cmwb}");
    if config.server_no_context_takeover || config.server_bits() < 15 {
        format!("{first}, {fallback}")
    } else {
        first
    }
}

/// Client side (§5.1, §7.1): validates the server's answer to
/// [`client_offer`]. Returns the agreed parameters, or `None` if the server
/// enabled no extension.
pub(crate) fn check_response(
    items: &[ExtensionOffer],
    config: &DeflateConfig,
) -> Result<Option<DeflateParams>, HandshakeError> {
    let Some(item) = items.first() else {
        return Ok(None);
    };
    if !item.name.eq_ignore_ascii_case(NAME) {
        return Err(HandshakeError::UnofferedExtension(item.name.clone()));
    }
    if let Some(extra) = items.get(1) {
        return Err(HandshakeError::BadExtension(format!(
            "the server enabled {:?} after permessage-deflate; only one was offered",
            extra.name
        )));
    }
    let p = parse_params(item).map_err(HandshakeError::BadExtension)?;
    let client_bits = match p.client_max_window_bits {
        None => config.client_bits(),
        Some(None) => {
            return Err(HandshakeError::BadExtension(
                "client_max_window_bits in a response needs a value".to_owned(),
            ))
        }
        Some(Some(8)) => {
            return Err(HandshakeError::BadExtension(
                "the server requires client_max_window_bits=8, but an 8-bit window cannot be \
                 compressed with zlib; allow 9 or more on the server"
                    .to_owned(),
            ))
        }
        Some(Some(v)) if v > config.client_bits() => {
            return Err(HandshakeError::BadExtension(format!(
                "the server set client_max_window_bits={v}, above the {} we offered",
                config.client_bits()
            )))
        }
        Some(Some(v)) => v,
    };
    let server_bits = p.server_max_window_bits.unwrap_or(15);
    // A server that cannot honour our first offer answers the fallback,
    // which asks for nothing, so a missing server_no_context_takeover or a
    // larger window than requested is not an error (§7.1.1.1, §7.1.2.1).
    Ok(Some(DeflateParams {
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover
            || config.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }))
}

/// The permessage-deflate codec of one connection (RFC 7692 §7.2).
#[derive(Debug)]
pub(crate) struct PerMessageDeflate {
    /// Our compressor's window bits and whether it resets per message.
    send_bits: u8,
    send_reset: bool,
    /// The peer's window bits (our decompressor) and whether it resets.
    recv_bits: u8,
    recv_reset: bool,
    level: u32,
    threshold: usize,
    compressor: Option<Box<Compress>>,
    decompressor: Option<Box<Decompress>>,
    /// The peer ended the current message's deflate stream (BFINAL set):
    /// the rest of the message, including the tail we append, is ignored.
    stream_ended: bool,
    /// Whether the current message had any payload bytes.
    saw_input: bool,
    /// The message being sent chunk by chunk is compressed.
    streaming_out: bool,
}

impl PerMessageDeflate {
    /// A codec for `role` with the agreed `params`; `config` supplies the
    /// level and threshold.
    pub(crate) fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> Self {
        let peer = match role {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        let (send_bits, send_reset) = params.sender(role);
        let (recv_bits, recv_reset) = params.sender(peer);
        PerMessageDeflate {
            // Never compress with 8 bits (negotiation prevents it; 9 is safe
            // for an 8-bit peer only as a decoder, so clamp defensively).
            send_bits: send_bits.clamp(9, 15),
            send_reset,
            // A 9-bit window inflates an 8-bit stream.
            recv_bits: recv_bits.clamp(9, 15),
            recv_reset,
            level: config.level.min(9),
            threshold: config.threshold,
            compressor: None,
            decompressor: None,
            stream_ended: false,
            saw_input: false,
            streaming_out: false,
        }
    }

    /// The key under which a prepared message's compressed frame can be
    /// shared with this connection: `Some` only without context takeover.
    pub(crate) fn shared_key(&self) -> Option<SharedKey> {
        self.send_reset.then_some(SharedKey {
            bits: self.send_bits,
            level: self.level,
            threshold: self.threshold,
        })
    }

    /// Inflates `input` into `out`, stopping early once `out` holds
    /// `pause_at` bytes; returns the input bytes used.
    fn inflate(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        limit: usize,
        pause_at: usize,
    ) -> Result<usize, ProtocolError> {
        if self.stream_ended {
            return Ok(input.len());
        }
        let result = self.inflate_inner(input, out, limit, pause_at);
        if result.is_err() {
            // The connection fails; give the memory back at once.
            self.decompressor = None;
        }
        result
    }

    fn inflate_inner(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
        limit: usize,
        pause_at: usize,
    ) -> Result<usize, ProtocolError> {
        let total = input.len();
        let bits = self.recv_bits;
        let d = self
            .decompressor
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, bits)));
        let mut chunk = [0u8; INFLATE_CHUNK];
        loop {
            // Output still inside the decompressor comes out on the next
            // call, before anything from new input.
            if out.len() >= pause_at {
                return Ok(total - input.len());
            }
            let (in_before, out_before) = (d.total_in(), d.total_out());
            let status = d
                .decompress(input, &mut chunk, FlushDecompress::None)
                .map_err(|_| corrupt())?;
            let used = (d.total_in() - in_before) as usize;
            let made = (d.total_out() - out_before) as usize;
            input = &input[used..];
            if made > 0 {
                if out.len() + made > limit {
                    return Err(ProtocolError::MessageTooBig { limit });
                }
                grow(out, out.len() + made, limit);
                out.extend_from_slice(&chunk[..made]);
            }
            if status == Status::StreamEnd {
                self.stream_ended = true;
                return Ok(total);
            }
            // Done when the input is used up and the output had room left
            // (nothing more is pending inside the decompressor).
            if input.is_empty() && made < chunk.len() {
                return Ok(total);
            }
            if used == 0 && made == 0 {
                return Err(corrupt());
            }
        }
    }
}

fn corrupt() -> ProtocolError {
    ProtocolError::Extension {
        extension: NAME,
        reason: "invalid compressed data",
    }
}

/// Grows `out` so it can hold `need` bytes, doubling but never past `limit`:
/// the allocation stays within the message limit.
fn grow(out: &mut BytesMut, need: usize, limit: usize) {
    if out.capacity() >= need {
        return;
    }
    let want = need
        .max((out.capacity() * 2).min(limit))
        .max(256.min(limit));
    out.reserve(want - out.len());
}

/// Compresses `payload` as one message (§7.2.1): a sync flush, with the
/// trailing empty stored block removed.
fn compress_message(c: &mut Compress, payload: &[u8]) -> Vec<u8> {
    compress_piece(c, payload, true)
}

/// Compresses `payload` with a sync flush, so the peer can inflate
/// everything sent so far; `last` removes the trailing empty stored block
/// that ends a message (§7.2.1). Pieces before the last keep theirs: it is
/// valid deflate data in the middle of the stream.
fn compress_piece(c: &mut Compress, payload: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    let mut input = payload;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let before = c.total_in();
        // A sync flush on an in-memory stream cannot fail: the window and
        // level are valid, and output space is always available.
        if c.compress_vec(input, &mut out, FlushCompress::Sync)
            .is_err()
        {
            break;
        }
        input = &input[(c.total_in() - before) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
    }
    if last && out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    out
}

/// A prepared message's compressed frames by key (`None`: sent plain), in
/// write-once slots: a server normally uses one key (one config), rarely a
/// few; a key that finds no free slot is compressed without being cached.
pub(crate) type PreparedFrames = [std::sync::OnceLock<(SharedKey, Option<Bytes>)>; 4];

/// What a compressed prepared frame depends on: connections with the same
/// key and no context takeover can share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SharedKey {
    pub(crate) bits: u8,
    pub(crate) level: u32,
    pub(crate) threshold: usize,
}

/// Compresses a whole message with a fresh context, as a connection without
/// context takeover would: `None` if it is below the threshold or does not
/// get smaller.
pub(crate) fn compress_fresh(key: SharedKey, payload: &[u8]) -> Option<Bytes> {
    if payload.len() < key.threshold {
        return None;
    }
    let mut c = spare_compressor(key.bits, key.level);
    let out = compress_message(&mut c, payload);
    return_compressor(key.bits, key.level, c);
    (out.len() < payload.len()).then(|| Bytes::from(out))
}

/// Idle compressors kept for [`compress_fresh`], at most this many.
const MAX_SPARE_COMPRESSORS: usize = 4;

/// A compressor's state is a few hundred KiB. Allocating and freeing one
/// per message is slow (zeroed pages every time), and with glibc's malloc
/// it fragments the heap: its adaptive mmap threshold moves these blocks
/// from `mmap` to the heap, between the small long-lived allocations of
/// connections, where freed space is never returned. Measured with the
/// chat example, 10,000 members each sent one compressed member list
/// held 1.4 GB after they had all joined, 72 MB without compression.
/// Reset compressors are kept here instead; the lock is held only to take
/// or return one, never while compressing.
static SPARE_COMPRESSORS: Mutex<Vec<(u8, u32, Box<Compress>)>> = Mutex::new(Vec::new());

/// A reset compressor for `bits` and `level`, spare or new.
fn spare_compressor(bits: u8, level: u32) -> Box<Compress> {
    let mut spare = SPARE_COMPRESSORS.lock().unwrap_or_else(|p| p.into_inner());
    match spare.iter().position(|(b, l, _)| (*b, *l) == (bits, level)) {
        Some(at) => spare.swap_remove(at).2,
        None => {
            drop(spare);
            Box::new(Compress::new_with_window_bits(
                Compression::new(level),
                false,
                bits,
            ))
        }
    }
}

/// Resets `c` and keeps it for the next [`spare_compressor`] if there is room.
fn return_compressor(bits: u8, level: u32, mut c: Box<Compress>) {
    c.reset();
    let mut spare = SPARE_COMPRESSORS.lock().unwrap_or_else(|p| p.into_inner());
    if spare.len() < MAX_SPARE_COMPRESSORS {
        spare.push((bits, level, c));
    }
}

impl PerMessageDeflate {
    /// The compressor kept between calls (for the connection with context
    /// takeover, for one chunked message without).
    fn compressor(&mut self) -> &mut Compress {
        let (bits, level) = (self.send_bits, self.level);
        self.compressor.get_or_insert_with(|| {
            Box::new(Compress::new_with_window_bits(
                Compression::new(level),
                false,
                bits,
            ))
        })
    }
}

impl Extension for PerMessageDeflate {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rsv_bits(&self) -> u8 {
        RSV1
    }

    fn decode_begin(&mut self, rsv: u8) -> bool {
        self.stream_ended = false;
        self.saw_input = false;
        rsv & RSV1 != 0
    }

    fn decode(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        self.saw_input |= !input.is_empty();
        self.inflate(input, out, limit, usize::MAX).map(|_| ())
    }

    fn decode_some(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        limit: usize,
        pause_at: usize,
    ) -> Result<usize, ProtocolError> {
        self.saw_input |= !input.is_empty();
        self.inflate(input, out, limit, pause_at)
    }

    fn decode_end(&mut self, out: &mut BytesMut, limit: usize) -> Result<(), ProtocolError> {
        // A compressed message without payload bytes is taken as empty
        // (the RFC's form is a single 0x00, but some peers send nothing).
        let result = if self.saw_input {
            self.inflate(&TAIL, out, limit, usize::MAX).map(|_| ())
        } else {
            Ok(())
        };
        if self.recv_reset || self.stream_ended || result.is_err() {
            // Memory first: the context is not needed for the next message.
            self.decompressor = None;
        }
        self.stream_ended = false;
        result
    }

    fn encode(&mut self, opcode: OpCode, payload: &[u8]) -> Option<(u8, Bytes)> {
        if !matches!(opcode, OpCode::Text | OpCode::Binary) || payload.len() < self.threshold {
            return None;
        }
        if self.send_reset {
            let key = self
                .shared_key()
                .expect("a resetting compressor has a shared key");
            return compress_fresh(key, payload).map(|b| (RSV1, b));
        }
        // With context takeover the peer's window must see every byte we
        // compressed, so the result is sent even if it grew.
        Some((
            RSV1,
            Bytes::from(compress_message(self.compressor(), payload)),
        ))
    }

    fn encode_chunk(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        first: bool,
        last: bool,
    ) -> Option<(u8, Bytes)> {
        if first && last {
            // A message in one chunk is a whole message.
            return self.encode(opcode, payload);
        }
        if first {
            // The size is not known in advance: compress it all.
            self.streaming_out = matches!(opcode, OpCode::Text | OpCode::Binary);
        }
        if !self.streaming_out {
            return None;
        }
        // Without context takeover this compressor lives for the one message.
        let mut out = compress_piece(self.compressor(), payload, last);
        if last && out.is_empty() {
            // Nothing new since the previous chunk's sync flush: the
            // message so far ends with an empty stored block the receiver
            // cannot see as its end. A lone 0x00 starts one more, which the
            // receiver's appended 00 00 ff ff completes (RFC 7692 §7.2.2),
            // so its inflater ends the message on a block boundary.
            out.push(0x00);
        }
        let out = Bytes::from(out);
        if last {
            self.streaming_out = false;
            if self.send_reset {
                self.compressor = None;
            }
        }
        Some((if first { RSV1 } else { 0 }, out))
    }
}

#[cfg(test)]
impl PerMessageDeflate {
    /// Whether any compression state is held between messages (for tests
    /// of the memory-first default).
    pub(crate) fn holds_state(&self) -> bool {
        self.compressor.is_some() || self.decompressor.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::parse_extensions;

    fn offers(s: &str) -> Vec<ExtensionOffer> {
        parse_extensions(std::iter::once(s.as_bytes())).expect("syntax")
    }

    fn server(s: &str) -> Option<(DeflateParams, String)> {
        accept_offer(&offers(s), &DeflateConfig::default())
    }

    fn codec(role: Role, params: DeflateParams) -> PerMessageDeflate {
        PerMessageDeflate::new(role, params, &DeflateConfig::default().with_threshold(0))
    }

    fn params(snct: bool, cnct: bool, sb: u8, cb: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sb,
            client_max_window_bits: cb,
        }
    }

    fn decode_all(codec: &mut PerMessageDeflate, frames: &[&[u8]], limit: usize) -> Vec<u8> {
        let mut out = BytesMut::new();
        assert!(codec.decode_begin(RSV1));
        for f in frames {
            codec.decode(f, &mut out, limit).expect("decode");
        }
        codec.decode_end(&mut out, limit).expect("end");
        out.to_vec()
    }

    #[test]
    fn server_defaults_to_no_context_takeover() {
        let (p, resp) = server("permessage-deflate").expect("accepted");
        assert_eq!(p, params(true, true, 15, 15));
        assert_eq!(
            resp,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn server_parameters_each() {
        let (p, resp) = server("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(p.client_max_window_bits, 15);
        assert!(!resp.contains("client_max_window_bits"));
        let (p, resp) = server("permessage-deflate; client_max_window_bits=10").unwrap();
        assert_eq!(p.client_max_window_bits, 10);
        assert!(resp.ends_with("client_max_window_bits=10"));
        let (p, resp) = server("permessage-deflate; client_max_window_bits=8").unwrap();
        assert_eq!(p.client_max_window_bits, 8, "we can inflate 8-bit streams");
        assert!(resp.ends_with("client_max_window_bits=8"));
        let (p, resp) = server("permessage-deflate; server_max_window_bits=12").unwrap();
        assert_eq!(p.server_max_window_bits, 12);
        assert!(resp.contains("server_max_window_bits=12"));
        let (_, resp) = server("permessage-deflate; server_max_window_bits=15").unwrap();
        assert!(resp.contains("server_max_window_bits=15"));
        let (_, resp) = server("permessage-deflate; client_max_window_bits=15").unwrap();
        assert!(resp.contains("client_max_window_bits=15"));
        let (p, _) = server("permessage-deflate; SERVER_NO_CONTEXT_TAKEOVER").unwrap();
        assert!(p.server_no_context_takeover);
        // Context takeover opt-in with a smaller window.
        let cfg = DeflateConfig::default().with_context_takeover(10);
        let (p, resp) =
            accept_offer(&offers("permessage-deflate; client_max_window_bits"), &cfg).unwrap();
        assert_eq!(p, params(false, false, 10, 10));
        assert_eq!(
            resp,
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"
        );
        // A client that cannot limit its window gets 15.
        let (p, _) = accept_offer(&offers("permessage-deflate"), &cfg).unwrap();
        assert_eq!(p.client_max_window_bits, 15);
        // The client's requests win over our preferences.
        let (p, _) = accept_offer(
            &offers("permessage-deflate; server_no_context_takeover; server_max_window_bits=9"),
            &cfg,
        )
        .unwrap();
        assert_eq!(p, params(true, false, 9, 15));
    }

    #[test]
    fn server_declines_bad_offers_and_takes_the_next() {
        for bad in [
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=1a",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=\"16\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"x\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; x-unknown",
            "x-other; client_max_window_bits",
        ] {
            assert_eq!(server(bad), None, "{bad}");
            let (p, _) = server(&format!(
                "{bad}, permessage-deflate; client_max_window_bits=11"
            ))
            .unwrap_or_else(|| panic!("fallback after {bad}"));
            assert_eq!(p.client_max_window_bits, 11, "{bad}");
        }
        // Quoted values are fine (§7.1: quoted-string is allowed).
        let (p, _) = server("permessage-deflate; server_max_window_bits=\"10\"").unwrap();
        assert_eq!(p.server_max_window_bits, 10);
        // Preference order: the first acceptable offer wins.
        let (p, _) = server(
            "permessage-deflate; server_max_window_bits=9, permessage-deflate; server_max_window_bits=10",
        )
        .unwrap();
        assert_eq!(p.server_max_window_bits, 9);
    }

    #[test]
    fn client_offer_and_response_checks() {
        let cfg = DeflateConfig::default();
        assert_eq!(
            client_offer(&cfg),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             client_max_window_bits, permessage-deflate; client_max_window_bits"
        );
        let plain = DeflateConfig::default()
            .with_server_no_context_takeover(false)
            .with_client_no_context_takeover(false);
        assert_eq!(
            client_offer(&plain),
            "permessage-deflate; client_max_window_bits"
        );
        assert_eq!(
            client_offer(&plain.clone().with_client_max_window_bits(10)),
            "permessage-deflate; client_max_window_bits=10"
        );
        let check = |s: &str| check_response(&offers(s), &cfg);
        assert_eq!(check("").unwrap(), None);
        assert_eq!(
            check("permessage-deflate").unwrap(),
            Some(params(false, true, 15, 15))
        );
        assert_eq!(
            check(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=8; \
                 client_max_window_bits=9"
            )
            .unwrap(),
            Some(params(true, true, 8, 9))
        );
        for bad in [
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; foo",
            "permessage-deflate, permessage-deflate",
        ] {
            assert!(
                matches!(check(bad), Err(HandshakeError::BadExtension(_))),
                "{bad}: {:?}",
                check(bad)
            );
        }
        let err = check("permessage-deflate; client_max_window_bits=8").unwrap_err();
        assert!(err.to_string().contains("8-bit window"), "{err}");
        assert_eq!(
            check("x-foo"),
            Err(HandshakeError::UnofferedExtension("x-foo".into()))
        );
        let small = DeflateConfig::default().with_client_max_window_bits(10);
        assert!(check_response(
            &offers("permessage-deflate; client_max_window_bits=11"),
            &small
        )
        .is_err());
    }

    /// RFC 7692 §7.2.3.1: "Hello" in one compressed frame.
    #[test]
    fn rfc_7_2_3_1_hello() {
        let mut c = codec(Role::Client, params(false, false, 15, 15));
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(decode_all(&mut c, &[&hello], 100), b"Hello");
        // Fragmented as in the RFC: f2 48 cd | c9 c9 07 00.
        assert_eq!(
            decode_all(&mut c, &[&hello[..3], &hello[3..]], 100),
            b"Hello"
        );
        // And with an empty decode piece in between.
        assert_eq!(
            decode_all(&mut c, &[&hello[..1], &[], &hello[1..]], 100),
            b"Hello"
        );
        // Our compressor produces the same bytes.
        let mut s = codec(Role::Server, params(false, false, 15, 15));
        assert_eq!(
            s.encode(OpCode::Text, b"Hello").unwrap(),
            (RSV1, Bytes::copy_from_slice(&hello))
        );
    }

    /// §7.2.3.2: context takeover — the second "Hello" refers back.
    #[test]
    fn rfc_7_2_3_2_sharing_window() {
        let mut c = codec(Role::Client, params(false, false, 15, 15));
        let first = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(decode_all(&mut c, &[&first], 100), b"Hello");
        assert_eq!(decode_all(&mut c, &[&second], 100), b"Hello");
        let mut s = codec(Role::Server, params(false, false, 15, 15));
        assert_eq!(s.encode(OpCode::Text, b"Hello").unwrap().1, &first[..]);
        assert_eq!(s.encode(OpCode::Text, b"Hello").unwrap().1, &second[..]);
    }

    /// §7.2.3.3: a "no compression" (stored) block.
    #[test]
    fn rfc_7_2_3_3_stored_block() {
        let mut c = codec(Role::Client, params(false, false, 15, 15));
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(decode_all(&mut c, &[&stored], 100), b"Hello");
    }

    /// §7.2.3.4: BFINAL set, so no tail is expected.
    #[test]
    fn rfc_7_2_3_4_bfinal() {
        let mut c = codec(Role::Client, params(false, false, 15, 15));
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(decode_all(&mut c, &[&fin], 100), b"Hello");
        // The context was reset: a following message decodes on its own.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(decode_all(&mut c, &[&hello], 100), b"Hello");
    }

    /// §7.2.3.5: two deflate blocks in one message.
    #[test]
    fn rfc_7_2_3_5_two_blocks() {
        let mut c = codec(Role::Client, params(false, false, 15, 15));
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(decode_all(&mut c, &[&two], 100), b"Hello");
    }

    /// §7.2.3.6: an empty message is a single 0x00 octet; an empty message
    /// before "Hello" does not disturb the shared window.
    #[test]
    fn rfc_7_2_3_6_empty_message() {
        let mut c = codec(Role::Client, params(false, false, 15, 15));
        assert_eq!(decode_all(&mut c, &[&[0x00]], 100), b"");
        assert_eq!(decode_all(&mut c, &[], 100), b"");
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(decode_all(&mut c, &[&hello], 100), b"Hello");
        let mut s = codec(Role::Server, params(false, false, 15, 15));
        let (_, empty) = s.encode(OpCode::Binary, b"").unwrap();
        assert_eq!(empty, &[0x00][..]);
        assert_eq!(decode_all(&mut c, &[&empty], 100), b"");
    }

    #[test]
    fn eight_bit_window_inflates_with_nine() {
        let mut c = codec(Role::Client, params(false, false, 8, 15));
        assert_eq!(c.recv_bits, 9);
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(decode_all(&mut c, &[&hello], 100), b"Hello");
    }

    #[test]
    fn zip_bomb_stops_at_the_limit() {
        let mut s = codec(Role::Server, params(false, false, 15, 15));
        let zeros = vec![0u8; 8 << 20];
        let (_, bomb) = s.encode(OpCode::Binary, &zeros).unwrap();
        assert!(bomb.len() < 10_000, "{}", bomb.len());
        let mut c = codec(Role::Client, params(false, false, 15, 15));
        let mut out = BytesMut::new();
        assert!(c.decode_begin(RSV1));
        let limit = 1 << 20;
        let err = c.decode(&bomb, &mut out, limit).unwrap_err();
        assert_eq!(err, ProtocolError::MessageTooBig { limit });
        assert!(
            out.len() <= limit && out.capacity() <= limit,
            "{}",
            out.capacity()
        );
    }

    #[test]
    fn corrupt_data_is_an_error_and_memory_is_released() {
        let mut c = codec(Role::Client, params(true, true, 15, 15));
        let mut out = BytesMut::new();
        assert!(c.decode_begin(RSV1));
        let r = c
            .decode(&[0xff, 0xff, 0xff], &mut out, 100)
            .and_then(|_| c.decode_end(&mut out, 100));
        assert!(matches!(r, Err(ProtocolError::Extension { .. })), "{r:?}");
        assert!(!c.holds_state());
        assert_eq!(
            decode_all(&mut c, &[&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]], 100),
            b"Hello"
        );
        assert!(!c.holds_state(), "no context takeover: nothing kept");
    }

    #[test]
    fn threshold_and_incompressible_data_go_plain() {
        let cfg = DeflateConfig::default();
        let mut s = PerMessageDeflate::new(Role::Server, params(true, true, 15, 15), &cfg);
        assert_eq!(s.encode(OpCode::Text, b"short"), None);
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert_eq!(s.encode(OpCode::Binary, &noise), None);
        assert!(s.encode(OpCode::Text, &[b'a'; 1000]).is_some());
        assert!(!s.holds_state());
    }

    #[test]
    fn spare_compressors_start_every_message_fresh() {
        let key = SharedKey {
            bits: 15,
            level: 6,
            threshold: 0,
        };
        let first: Vec<u8> = b"presence: ada, bob and 14 others joined; ".repeat(40);
        let other: Vec<u8> = b"a different message that shares nothing ".repeat(30);
        // The second and third calls reuse the compressor the first put back.
        let a = compress_fresh(key, &first).expect("compressible");
        let b = compress_fresh(key, &other).expect("compressible");
        let again = compress_fresh(key, &first).expect("compressible");
        assert_eq!(a, again, "a reused compressor carries nothing over");
        let mut client = codec(Role::Client, params(true, true, 15, 15));
        assert_eq!(decode_all(&mut client, &[&a], 1 << 20), first);
        assert_eq!(decode_all(&mut client, &[&b], 1 << 20), other);
        assert!(SPARE_COMPRESSORS.lock().unwrap().len() <= MAX_SPARE_COMPRESSORS);
    }
}
