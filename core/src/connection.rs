//! The connection state machine: the one place that decides what happens next.
//!
//! # Drive loop
//!
//! An adapter (the driver) owns the transport and a clock and, on every
//! wake-up, calls in this order:
//!
//! 1. feed input (only while [`Connection::wants_read`]): read into
//!    [`Connection::read_target`] and commit the count (0 when the peer
//!    closed its write side), or [`Connection::handle_timeout`] when
//!    [`Connection::poll_timeout`] passed;
//! 2. drain [`Connection::poll_transmit`] until it yields nothing, keeping
//!    what it returns in order;
//! 3. write as much of that as the transport accepts now;
//! 4. [`Connection::record_output`] with the bytes accepted and whether any
//!    are still pending: this runs the write-stall deadline
//!    ([`Config::write_timeout`]) and tells the core when the last frames
//!    are out;
//! 5. check [`Connection::is_finished`]: when true, shut the transport down
//!    and stop (the connection is closed and its output flushed, or the
//!    linger after closing ran out);
//! 6. sleep until [`Connection::poll_timeout`], readable or writable
//!    transport, or a command from the application, then start again.
//!
//! [`Connection::poll_event`] is called whenever the application wants its
//! next event. Events are produced lazily: a protocol violation found in
//! frame N+1 is answered (close frame queued, error reported) only when the
//! application asks for the event after message N, so anything it sent in
//! reply to message N goes out first. After `poll_event` (and after any
//! `send_*` or `close`), drain [`Connection::poll_transmit`] again.
//!
//! [`Connection::wants_read`] turns false while unread events exceed their
//! limits (the application's backpressure, which also suspends the idle and
//! heartbeat clocks), or once the peer's input no longer matters. Output
//! over the write limit makes senders wait but never stops reading, so
//! control frames are always answered and two peers streaming at each other
//! cannot both stop reading.
//!
//! Once [`Connection::is_closed`], the driver keeps writing the last frames
//! for at most [`Config::close_timeout`] (at least 1 ms): the core reports
//! that linger deadline through `poll_timeout` and decides the end through
//! `is_finished`, so drivers need no timer of their own.
//!
//! Bytes come in one way: [`Connection::read_target`] lends the memory the
//! next read fills, either the caller's scratch buffer or, inside a large
//! payload, the message buffer itself (one copy, by the kernel). Keep a
//! [`BufferPool`] per thread, hand it the payloads written out (the runtime
//! layer's outbox does, or call [`BufferPool::recycle`]), and pass it to
//! `read_target`: the next large message then reuses a buffer instead of
//! faulting in fresh pages. Bytes already in hand (tests, a handshake's
//! leftover) go through [`Connection::receive`], the same decoder.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame, MAX_REASON_LEN};
use crate::config::Config;
use crate::error::{ConnectionError, ProtocolError, TimeoutKind, UsageError};
use crate::extension::Extension;
use crate::frame::{apply_mask, FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::handshake::Negotiated;
use crate::message::{Chunk, Message, Utf8Bytes};
use crate::pool::BufferPool;
use crate::rng::Rng;
use crate::timer::{earliest, Timers};

/// Which end of the connection this is (RFC 6455 §5.1: clients mask, servers do not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that sent the upgrade request; masks every frame it sends.
    Client,
    /// The end that accepted the upgrade; requires masked frames.
    Server,
}

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A complete text or binary message.
    Message(Message),
    /// A piece of a data message, in streaming mode
    /// ([`Config::stream_messages`]): chunks come in order, a message's
    /// first marked `first` and its last `last`; control events may come
    /// between them.
    Chunk(Chunk),
    /// The peer sent a ping; a pong was queued unless auto-pong is off.
    Ping(Bytes),
    /// The peer sent a pong.
    Pong(Bytes),
    /// The peer's close frame. If we had not sent one, the echo is queued as
    /// this event is returned (RFC 6455 §5.5.1).
    Close(CloseFrame),
    /// The connection failed: a protocol violation (a close frame with its
    /// code has been queued), a timeout, or the transport ending early.
    Error(ConnectionError),
}

/// How a finished connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The peer's close frame arrived and was answered (or the transport
    /// ended right after it, before we answered).
    Clean {
        /// The peer's close frame.
        remote: CloseFrame,
        /// Whether we sent our close frame first.
        locally_initiated: bool,
    },
    /// The connection failed; see [`ConnectionError::close_code`] for the
    /// code to report (1006 for an abrupt end).
    Failed(ConnectionError),
}

/// The largest payload copied into the adapter's buffer; larger shared
/// payloads are handed out as their own chunk for a vectored write.
const COALESCE_LIMIT: usize = 2048;

/// Upper bound on queued unread events before reads pause.
const MAX_PENDING_EVENTS: usize = 64;

/// Unwritten pongs kept in order; past this only the latest ping is answered.
const MAX_PENDING_PONGS: usize = 16;

/// Smallest allocation for a message buffer.
const MIN_MESSAGE_ALLOC: usize = 256;

/// What each frame of a message after the first counts against
/// [`Config::max_message_size`] on top of its payload. A fragment costs no
/// memory of its own (fragments are appended to one buffer), so this only
/// bounds the work a flood of empty continuation frames can cause; it is
/// small enough that legitimate senders fragmenting at 64 bytes stay far
/// from the limit (a 4 MiB message in 64-byte fragments counts 5 MiB).
pub const FRAGMENT_COST: u64 = 16;

/// Remaining payload from which [`Connection::read_target`] lends the
/// message buffer itself as the read target.
const IN_PLACE_MIN: usize = 64 << 10;

/// The most of the message buffer one in-place read is given: it must be
/// zeroed first (reads want initialized memory), and zeroing the whole
/// remaining payload before every read would cost more than the read.
const IN_PLACE_WINDOW: usize = 64 << 10;

/// In streaming mode, a chunk is handed out once this many bytes are
/// decoded (and at the end of every read), and reading pauses while the
/// application holds this many bytes of unread chunks: decoding that would
/// go further (a small compressed input that inflates a lot, or a large
/// slice given to `receive`) waits, its input kept, until chunks are taken.
pub const STREAM_CHUNK: usize = 64 << 10;

/// Where the next transport read puts its bytes: the one way bytes read
/// from a transport go into a [`Connection`] (from
/// [`Connection::read_target`]).
///
/// Read into [`ReadTarget::buf`], then hand over the count with
/// [`ReadTarget::commit`]; a count of 0 is the end of the stream. Dropped
/// without `commit` (the read was pending or failed), nothing is taken in
/// and anything written is discarded.
#[derive(Debug)]
pub struct ReadTarget<'a> {
    conn: &'a mut Connection,
    pool: &'a mut BufferPool,
    place: Place<'a>,
}

/// The memory a [`ReadTarget`] lends.
#[derive(Debug)]
enum Place<'a> {
    /// The caller's buffer: its bytes are decoded on commit.
    Scratch(&'a mut [u8]),
    /// The message buffer from `start`, at most `limit` bytes: the rest of a
    /// large payload, read where it will stay.
    InPlace {
        start: usize,
        limit: usize,
        committed: bool,
    },
}

impl ReadTarget<'_> {
    /// The memory to read into: the caller's scratch buffer, or (inside a
    /// large payload) the next window of the message buffer, never more than
    /// the frame's remaining payload.
    pub fn buf(&mut self) -> &mut [u8] {
        match &mut self.place {
            Place::Scratch(scratch) => scratch,
            Place::InPlace { start, limit, .. } => {
                let (start, len) = (*start, (*limit).min(IN_PLACE_WINDOW));
                let buf = &mut self.conn.in_place_message().buf;
                buf.resize(start + len, 0);
                &mut buf[start..]
            }
        }
    }

    /// Whether the read goes straight into the message buffer (one copy
    /// less: the kernel's).
    pub fn is_in_place(&self) -> bool {
        matches!(self.place, Place::InPlace { .. })
    }

    /// Takes in the first `n` bytes of [`ReadTarget::buf`]: they are
    /// unmasked, checked and decoded exactly as [`Connection::receive`]
    /// would. `n` of 0 means the peer closed its side of the transport
    /// ([`Connection::receive_eof`]).
    pub fn commit(mut self, now: Instant, n: usize) {
        match &mut self.place {
            Place::Scratch(scratch) => {
                let data = &scratch[..n.min(scratch.len())];
                self.conn.feed(now, data, self.pool);
            }
            Place::InPlace {
                start,
                limit,
                committed,
            } => {
                *committed = true;
                let start = *start;
                let buf = &mut self.conn.in_place_message().buf;
                let n = n.min(buf.len() - start).min(*limit);
                buf.truncate(start + n);
                self.conn.accept_in_place(now, start, n);
            }
        }
        if n == 0 {
            self.conn.receive_eof(now);
        }
    }
}

impl Drop for ReadTarget<'_> {
    fn drop(&mut self) {
        if let Place::InPlace {
            start,
            committed: false,
            ..
        } = self.place
        {
            if let Some(msg) = self.conn.message.as_mut() {
                msg.buf.truncate(start);
            }
        }
    }
}

#[derive(Debug)]
enum OutItem {
    /// A frame we build: header bytes plus a payload, masked on the way out
    /// for clients.
    Frame {
        header: [u8; MAX_HEADER_LEN],
        header_len: u8,
        payload: Bytes,
        mask: Option<[u8; 4]>,
    },
    /// Already-encoded frames (prepared messages) shared between connections.
    Encoded(Bytes),
}

impl OutItem {
    fn len(&self) -> usize {
        match self {
            OutItem::Frame {
                header_len,
                payload,
                ..
            } => *header_len as usize + payload.len(),
            OutItem::Encoded(b) => b.len(),
        }
    }
}

/// The frame currently being read.
#[derive(Debug)]
struct InFrame {
    header: FrameHeader,
    remaining: u64,
    /// Payload bytes of this frame seen so far (the mask key offset).
    seen: usize,
}

/// A data message being reassembled.
#[derive(Debug)]
struct Assembly {
    text: bool,
    /// Whether the negotiated extension transforms this message.
    transformed: bool,
    buf: BytesMut,
    /// Bytes at the front of `buf` known to be valid UTF-8.
    utf8_checked: usize,
    /// Frames of this message seen so far.
    fragments: usize,
    /// The message is handed out in chunks as it arrives.
    stream: bool,
    /// Bytes already handed out as chunks (streaming).
    streamed: u64,
    /// A chunk of this message was handed out.
    started: bool,
}

impl Assembly {
    /// Splits off the bytes ready to hand out as a chunk: all of them for
    /// binary, the complete code points for text (all of them at the end,
    /// which the caller has checked). `None` if a middle chunk would be
    /// empty.
    fn take_chunk(&mut self, last: bool) -> Option<Chunk> {
        let n = if self.text && !last {
            self.utf8_checked
        } else {
            self.buf.len()
        };
        if n == 0 && !last {
            return None;
        }
        let bytes = self.buf.split_to(n).freeze();
        if self.text {
            self.utf8_checked -= n;
        }
        let first = !self.started;
        self.started = true;
        self.streamed += n as u64;
        let data = if self.text {
            Message::Text(Utf8Bytes::from_checked(bytes))
        } else {
            Message::Binary(bytes)
        };
        Some(Chunk { data, first, last })
    }

    /// Bytes this message counts against [`Config::max_message_size`]
    /// before its next frame: its payload so far plus [`FRAGMENT_COST`] for
    /// every frame after the first.
    fn counted(&self) -> u64 {
        self.buf.len() as u64 + self.fragments.saturating_sub(1) as u64 * FRAGMENT_COST
    }

    /// Makes room for `incoming` more payload bytes, `frame_rest` more of
    /// the current frame to follow them. Memory follows the bytes received,
    /// never the length a header announces: the buffer grows by doubling
    /// (to the end of the current frame when that is nearer), so it stays
    /// within twice the bytes received, or [`MIN_MESSAGE_ALLOC`]. A new
    /// message takes a pooled buffer for its whole first frame when one
    /// fits: that memory is held already.
    fn grow(&mut self, incoming: usize, frame_rest: usize, pool: &mut BufferPool) {
        let need = self.buf.len() + incoming;
        let capacity = self.buf.capacity();
        if capacity >= need {
            return;
        }
        let frame_end = need.saturating_add(frame_rest);
        if capacity == 0 {
            if let Some(pooled) = pool.take(frame_end) {
                self.buf = pooled;
                return;
            }
        }
        let want = need.max(frame_end.min((capacity * 2).max(MIN_MESSAGE_ALLOC)));
        // A unique buffer grows through `Vec::reserve` (`realloc`, in place
        // where it can); an empty one gets exactly `want`.
        self.buf.reserve(want - self.buf.len());
    }
}

/// Input kept while streaming waits for the application.
#[derive(Debug)]
struct Backlog {
    bytes: BytesMut,
    /// The peer closed the transport after these bytes.
    eof: bool,
}

/// Whole messages waiting for a chunked message to end.
#[derive(Debug, Default)]
struct Deferred {
    items: VecDeque<DeferredSend>,
    bytes: usize,
}

#[derive(Debug)]
enum DeferredSend {
    Message(Message),
    Prepared(PreparedMessage),
}

impl DeferredSend {
    fn len(&self) -> usize {
        match self {
            DeferredSend::Message(m) => m.len(),
            DeferredSend::Prepared(p) => p.frame.len(),
        }
    }
}

/// Where the close handshake stands (RFC 6455 §7). Each state holds what
/// only it needs, so impossible combinations (a deadline without a close
/// sent, an outcome while open) cannot be represented.
#[derive(Debug)]
enum CloseState {
    /// No close frame sent or received.
    Open,
    /// We sent a close frame; the peer's must arrive by `deadline` (§7.1.2).
    CloseSent { deadline: Instant },
    /// The peer's close frame arrived; ours is queued when the application
    /// reads the `Close` event (or calls `close`), so it may still send.
    CloseReceived { remote: Box<CloseFrame> },
    /// Both close frames are exchanged and `outcome` (always clean) is
    /// known; a client waits until `deadline` for the server to close the
    /// transport first (§7.1.1). A server goes straight to `Closed`.
    Closing {
        outcome: Box<Outcome>,
        deadline: Instant,
    },
    /// The connection ended.
    Closed {
        outcome: Box<Outcome>,
        /// The peer's close frame, if it arrived.
        remote: Option<Box<CloseFrame>>,
        /// Whether we sent (or queued) a close frame.
        close_sent: bool,
        /// When the driver stops flushing the last frames (close timeout,
        /// at least 1 ms, after the close).
        linger_until: Instant,
    },
}

impl CloseState {
    fn is_closed(&self) -> bool {
        matches!(self, CloseState::Closed { .. })
    }

    fn is_close_sent(&self) -> bool {
        match self {
            CloseState::Open | CloseState::CloseReceived { .. } => false,
            CloseState::CloseSent { .. } | CloseState::Closing { .. } => true,
            CloseState::Closed { close_sent, .. } => *close_sent,
        }
    }

    fn remote(&self) -> Option<&CloseFrame> {
        match self {
            CloseState::CloseReceived { remote } => Some(remote),
            CloseState::Closing { outcome, .. } => match &**outcome {
                Outcome::Clean { remote, .. } => Some(remote),
                Outcome::Failed(_) => None,
            },
            CloseState::Closed { remote, .. } => remote.as_deref(),
            CloseState::Open | CloseState::CloseSent { .. } => None,
        }
    }

    fn outcome(&self) -> Option<&Outcome> {
        match self {
            CloseState::Closing { outcome, .. } | CloseState::Closed { outcome, .. } => {
                Some(outcome)
            }
            _ => None,
        }
    }

    /// When an unfinished close handshake gives up.
    fn deadline(&self) -> Option<Instant> {
        match self {
            CloseState::CloseSent { deadline } | CloseState::Closing { deadline, .. } => {
                Some(*deadline)
            }
            _ => None,
        }
    }

    /// The clean outcome if the transport ended now: the peer's close frame
    /// arrived (whether or not we answered it).
    fn clean_outcome(&self) -> Option<Outcome> {
        match self {
            CloseState::CloseReceived { remote } => Some(Outcome::Clean {
                remote: (**remote).clone(),
                locally_initiated: false,
            }),
            CloseState::Closing { outcome, .. } => Some((**outcome).clone()),
            _ => None,
        }
    }
}

/// A WebSocket connection for either role, after the opening handshake.
///
/// See the [module docs](self) for the order of calls.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Arc<Config>,
    /// Only clients mask, so only they carry a generator.
    rng: Option<Box<Rng>>,
    extension: Option<Box<dyn Extension>>,
    /// Set when the extension is permessage-deflate without context
    /// takeover on our side: prepared messages compressed once can be shared.
    #[cfg(feature = "deflate")]
    shared_deflate: Option<crate::deflate::SharedKey>,
    subprotocol: Option<Box<str>>,

    // Input.
    head: [u8; MAX_HEADER_LEN],
    head_len: u8,
    frame: Option<InFrame>,
    /// The payload of the control frame being read (at most 125 bytes),
    /// allocated only while one is in progress.
    // Boxed (clippy's box_collection disagrees): an idle connection then
    // holds 8 bytes for it instead of 24; control frames are rare.
    #[allow(clippy::box_collection)]
    control: Option<Box<Vec<u8>>>,
    message: Option<Assembly>,
    /// Input is no longer processed: the peer's close arrived, a violation
    /// was found, or the connection ended.
    input_stopped: bool,
    /// Boxed: rarely set, and idle connections should stay small.
    held_error: Option<Box<ProtocolError>>,
    discard: bool,
    discarded: u64,
    /// Data messages arriving from now on are handed out in chunks.
    streaming: bool,
    /// The rest of the streamed message being received is dropped (the
    /// application abandoned it).
    skip_stream: bool,
    /// The application has taken a chunk that was not its message's last.
    reading_chunks: bool,
    /// Input received but not decoded yet: streaming paused in the middle
    /// of it until the application takes its chunks.
    backlog: Option<Box<Backlog>>,

    // Events.
    events: VecDeque<Event>,
    event_bytes: usize,

    // Output.
    out: VecDeque<OutItem>,
    out_bytes: usize,
    /// Pongs not written yet, boxed: most connections never hold one.
    #[allow(clippy::box_collection)]
    pending_pongs: Option<Box<VecDeque<Bytes>>>,
    /// The kind of the message being sent in chunks (`Some(true)`: text).
    out_stream: Option<bool>,
    /// Whole messages sent while a chunked message is going out: they
    /// follow it once its last chunk is queued.
    deferred: Option<Box<Deferred>>,

    close: CloseState,
    timers: Timers,
}

impl Connection {
    /// A connection that has just completed its handshake, with no
    /// extensions or subprotocol. Feed any bytes that arrived after the
    /// handshake head with [`Connection::receive`] next.
    pub fn new(role: Role, config: impl Into<Arc<Config>>, now: Instant) -> Connection {
        let config = config.into();
        let streaming = config.stream_messages;
        Connection {
            role,
            rng: match role {
                Role::Client => Some(Box::new(Rng::new(config.seed))),
                Role::Server => None,
            },
            config,
            extension: None,
            #[cfg(feature = "deflate")]
            shared_deflate: None,
            subprotocol: None,
            head: [0; MAX_HEADER_LEN],
            head_len: 0,
            frame: None,
            control: None,
            message: None,
            input_stopped: false,
            held_error: None,
            discard: false,
            discarded: 0,
            streaming,
            skip_stream: false,
            reading_chunks: false,
            backlog: None,
            events: VecDeque::new(),
            event_bytes: 0,
            out: VecDeque::new(),
            out_bytes: 0,
            pending_pongs: None,
            out_stream: None,
            deferred: None,
            close: CloseState::Open,
            timers: Timers::new(now),
        }
    }

    /// A connection with the parameters a handshake negotiated (from
    /// [`crate::handshake`], or from a header-level negotiation when
    /// another HTTP stack did the upgrade). With the `deflate` feature, a
    /// negotiated permessage-deflate (RFC 7692) is installed here, taking
    /// its level and threshold from [`Config::deflate`] (or the defaults).
    pub fn with_negotiated(
        role: Role,
        config: impl Into<Arc<Config>>,
        negotiated: &Negotiated,
        now: Instant,
    ) -> Connection {
        let mut conn = Connection::new(role, config, now);
        conn.subprotocol = negotiated.subprotocol.as_deref().map(Box::from);
        #[cfg(feature = "deflate")]
        if let Some(params) = negotiated.deflate {
            let defaults = crate::deflate::DeflateConfig::default();
            let settings = conn.config.deflate.as_ref().unwrap_or(&defaults);
            let codec = crate::deflate::PerMessageDeflate::new(role, params, settings);
            let key = codec.shared_key();
            conn.set_extension(Box::new(codec));
            conn.shared_deflate = key;
        }
        conn
    }

    /// Installs a negotiated extension into the pipeline.
    pub fn set_extension(&mut self, extension: Box<dyn Extension>) {
        self.extension = Some(extension);
        #[cfg(feature = "deflate")]
        {
            self.shared_deflate = None;
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The negotiated subprotocol, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    // ----------------------------------------------------------------- input

    /// Feeds bytes already in hand (RFC 6455 §5.2, §6.2): from a test, a
    /// handshake's leftover, or a transport that hands out its own buffers.
    /// Reading from a transport, prefer [`Connection::read_target`].
    ///
    /// Frames are decoded as far as the bytes go: control frames are handled,
    /// text is validated as it arrives, and the first violation is held
    /// until [`Connection::poll_event`] reaches it. A peer's fault never
    /// returns an error here. Then drain [`Connection::poll_transmit`].
    pub fn receive(&mut self, now: Instant, data: &[u8]) {
        self.feed(now, data, &mut BufferPool::new());
    }

    /// Where the next read from the transport should put its bytes: the
    /// caller's `scratch` buffer, or, inside a large payload that is kept
    /// as it arrives (no extension transforms it), the message buffer
    /// itself, so the payload is copied once, by the kernel, in reads as
    /// large as the frame. A new large message takes its buffer from `pool`
    /// when one fits (see [`BufferPool`]).
    ///
    /// Read into [`ReadTarget::buf`] and [`ReadTarget::commit`] the count;
    /// a dropped target takes nothing in. `scratch` must not be empty (a
    /// read of 0 bytes is the end of the stream); 64 KiB or more makes the
    /// in-place reads worthwhile.
    pub fn read_target<'a>(
        &'a mut self,
        scratch: &'a mut [u8],
        pool: &'a mut BufferPool,
    ) -> ReadTarget<'a> {
        debug_assert!(!scratch.is_empty(), "a read target needs room");
        let place = match self.in_place_remaining(pool) {
            Some((start, limit)) => Place::InPlace {
                start,
                limit,
                committed: false,
            },
            None => Place::Scratch(scratch),
        };
        ReadTarget {
            conn: self,
            pool,
            place,
        }
    }

    /// Decodes `data`, taking the buffer of a new large message from `pool`.
    fn feed(&mut self, now: Instant, data: &[u8], pool: &mut BufferPool) {
        self.timers.tell(now);
        if !data.is_empty() && !self.close.is_closed() {
            self.timers.last_heard = now;
        }
        if let Some(backlog) = self.backlog.as_mut() {
            // Only a caller that reads while `wants_read` is false gets
            // here: the new bytes queue behind the old.
            backlog.bytes.extend_from_slice(data);
        } else {
            let used = self.decode(data, pool);
            if used < data.len() && !self.input_stopped {
                self.backlog = Some(Box::new(Backlog {
                    bytes: BytesMut::from(&data[used..]),
                    eof: false,
                }));
            }
        }
        self.observe(now);
    }

    /// Decodes frames from `data` until it is used up, input stops, or
    /// streaming waits for the application; returns the bytes used.
    fn decode(&mut self, data: &[u8], pool: &mut BufferPool) -> usize {
        let mut rest = data;
        while !rest.is_empty() && !self.input_stopped && !self.stream_full() {
            let used = if self.frame.is_none() {
                self.read_header(rest)
            } else {
                self.read_payload(rest, pool)
            };
            rest = &rest[used..];
        }
        self.flush_stream();
        data.len() - rest.len()
    }

    /// Decodes more of the backlog once the application took its chunks.
    fn resume_backlog(&mut self) {
        while !self.stream_full() && !self.input_stopped {
            let Some(mut backlog) = self.backlog.take() else {
                return;
            };
            let used = self.decode(&backlog.bytes, &mut BufferPool::new());
            if used < backlog.bytes.len() && !self.input_stopped {
                backlog.bytes.advance(used);
                self.backlog = Some(backlog);
            } else if backlog.eof {
                self.receive_eof(self.timers.last_now);
            }
        }
        if self.input_stopped {
            self.backlog = None;
        }
    }

    /// Whether decoding waits for the application to take chunks.
    fn stream_full(&self) -> bool {
        self.event_bytes >= STREAM_CHUNK && self.streaming_input()
    }

    /// Whether the message being received (or else the next one) streams.
    fn streaming_input(&self) -> bool {
        self.message.as_ref().map_or(self.streaming, |m| m.stream)
    }

    /// Hands out what a streamed message has ready.
    fn flush_stream(&mut self) {
        let Some(msg) = self.message.as_mut() else {
            return;
        };
        if !msg.stream {
            return;
        }
        if let Some(chunk) = msg.take_chunk(false) {
            self.push_chunk(chunk);
        }
    }

    fn push_chunk(&mut self, chunk: Chunk) {
        if self.skip_stream || self.discard {
            if chunk.last {
                self.skip_stream = false;
                if self.discard {
                    self.discarded += 1;
                }
            }
            return;
        }
        self.push_event(Event::Chunk(chunk));
    }

    /// Tells the connection the peer closed its side of the transport.
    ///
    /// After the peer's close frame this is the clean end; after a held
    /// protocol violation that violation stays the reported cause; otherwise
    /// it is reported as [`ConnectionError::Eof`] (1006) after the events
    /// already decoded.
    pub fn receive_eof(&mut self, now: Instant) {
        self.observe(now);
        if self.close.is_closed() {
            return;
        }
        if let Some(backlog) = self.backlog.as_mut() {
            // The end comes after the bytes still waiting to be decoded.
            backlog.eof = true;
            return;
        }
        self.input_stopped = true;
        if let Some(error) = self.held_error.as_deref().cloned() {
            // The violation found earlier is the cause: it is still reported
            // when `poll_event` reaches it, and nothing is reported after it.
            self.finish(Outcome::Failed(ConnectionError::Protocol(error)));
        } else if let Some(clean) = self.close.clean_outcome() {
            // The peer's close frame arrived (its code is the close code,
            // §7.1.5), even if the application has not read it yet: no
            // `Eof` error may follow the `Close` event.
            self.finish(clean);
        } else {
            self.fail(ConnectionError::Eof);
        }
    }

    /// Reads a frame header from `data` (possibly completing a partial one),
    /// returning how many bytes of `data` were used.
    fn read_header(&mut self, data: &[u8]) -> usize {
        let have = self.head_len as usize;
        let decoded = if have == 0 {
            FrameHeader::decode(data)
        } else {
            let take = (MAX_HEADER_LEN - have).min(data.len());
            self.head[have..have + take].copy_from_slice(&data[..take]);
            FrameHeader::decode(&self.head[..have + take])
        };
        match decoded {
            Ok(Some((header, len))) => {
                self.head_len = 0;
                self.start_frame(header);
                len - have
            }
            Ok(None) => {
                let take = (MAX_HEADER_LEN - have).min(data.len());
                self.head[have..have + take].copy_from_slice(&data[..take]);
                self.head_len = (have + take) as u8;
                take
            }
            Err(e) => {
                self.violation(e);
                data.len()
            }
        }
    }

    /// Checks a new frame's header against the state (§5.2, §5.4, §5.5).
    fn start_frame(&mut self, header: FrameHeader) {
        if let Err(e) = self.check_header(&header) {
            self.violation(e);
            return;
        }
        let len = header.payload_len;
        if !header.opcode.is_control() {
            self.begin_data_frame(&header);
            if self.input_stopped {
                return;
            }
        } else {
            self.control = Some(Box::new(Vec::with_capacity(header.payload_len as usize)));
        }
        self.frame = Some(InFrame {
            header,
            remaining: len,
            seen: 0,
        });
        if len == 0 {
            self.end_frame();
        }
    }

    fn check_header(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        if let OpCode::Reserved(op) = h.opcode {
            return Err(ProtocolError::ReservedOpcode(op));
        }
        let allowed_rsv = match (&self.extension, h.opcode) {
            (Some(ext), OpCode::Text | OpCode::Binary) => ext.rsv_bits(),
            _ => 0,
        };
        if h.rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits(h.rsv));
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if h.opcode.is_control() {
            if !h.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
            return Ok(());
        }
        match (h.opcode, &self.message) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            _ => {}
        }
        let stream = self.streaming_input();
        if !stream && h.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooBig {
                limit: self.config.max_frame_size,
            });
        }
        // A streamed message holds nothing, so its fragments cost nothing.
        let (so_far, fragments, transformed) = match &self.message {
            Some(m) if m.stream => (m.streamed + m.buf.len() as u64, m.fragments, m.transformed),
            Some(m) => (m.counted() + FRAGMENT_COST, m.fragments, m.transformed),
            None => (0, 0, false),
        };
        let limit = if stream {
            self.config.max_stream_size
        } else {
            self.config.max_message_size as u64
        };
        if fragments + 1 > self.config.max_fragments {
            return Err(ProtocolError::TooManyFragments {
                limit: self.config.max_fragments,
            });
        }
        // Untransformed payloads are their own size: fail before reading them.
        // Transformed (compressed) sizes are checked on the output instead,
        // and here only what the message counted so far.
        let transforms = transformed
            || (h.opcode != OpCode::Continuation && h.rsv != 0 && self.extension.is_some());
        let incoming = if transforms { 0 } else { h.payload_len };
        if so_far.saturating_add(incoming) > limit {
            return Err(ProtocolError::MessageTooBig {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            });
        }
        Ok(())
    }

    fn begin_data_frame(&mut self, h: &FrameHeader) {
        if h.opcode != OpCode::Continuation {
            let transformed = match &mut self.extension {
                Some(ext) => ext.decode_begin(h.rsv),
                None => false,
            };
            self.message = Some(Assembly {
                text: h.opcode == OpCode::Text,
                transformed,
                buf: BytesMut::new(),
                utf8_checked: 0,
                fragments: 0,
                stream: self.streaming,
                streamed: 0,
                started: false,
            });
        }
        // Memory is taken as the payload arrives (`Assembly::grow`), not here.
        if let Some(msg) = self.message.as_mut() {
            msg.fragments += 1;
        }
    }

    /// Consumes payload bytes of the current frame.
    fn read_payload(&mut self, data: &[u8], pool: &mut BufferPool) -> usize {
        let Some(frame) = self.frame.as_mut() else {
            return 0;
        };
        let mut take = (frame.remaining.min(data.len() as u64)) as usize;
        if self.message.as_ref().is_some_and(|m| m.stream) && !frame.header.opcode.is_control() {
            // A streamed message is handed out a window at a time.
            take = take.min(STREAM_CHUNK);
        }
        let chunk = &data[..take];
        let key = frame.header.mask;
        let offset = frame.seen;
        let frame_rest = (frame.remaining - take as u64) as usize;
        let used = if frame.header.opcode.is_control() {
            let control = self.control.get_or_insert_with(Box::default);
            let at = control.len();
            control.extend_from_slice(chunk);
            if let Some(key) = key {
                apply_mask(&mut control[at..], key, offset);
            }
            take
        } else {
            match self.append_data(chunk, frame_rest, key, offset, pool) {
                Ok(used) => used,
                Err(e) => {
                    self.violation(e);
                    return data.len();
                }
            }
        };
        let Some(frame) = self.frame.as_mut() else {
            return used;
        };
        frame.seen += used;
        frame.remaining -= used as u64;
        let done = frame.remaining == 0;
        if let Some(msg) = self.message.as_mut() {
            if msg.stream && msg.buf.len() >= STREAM_CHUNK {
                if let Some(chunk) = msg.take_chunk(false) {
                    self.push_chunk(chunk);
                }
            }
        }
        if done {
            self.end_frame();
        }
        used
    }

    /// Appends a piece of the current data frame's payload to its message,
    /// returning how much of it was used (all, unless streaming paused an
    /// expanding transform).
    fn append_data(
        &mut self,
        chunk: &[u8],
        frame_rest: usize,
        key: Option<[u8; 4]>,
        offset: usize,
        pool: &mut BufferPool,
    ) -> Result<usize, ProtocolError> {
        let Some(msg) = self.message.as_mut() else {
            return Ok(chunk.len());
        };
        let mut used = chunk.len();
        if msg.transformed {
            let ext = self
                .extension
                .as_mut()
                .expect("a transformed message has a negotiated extension");
            // A whole message is limited as a whole. A streamed one may
            // pause, and its limit applies to `buf`, which holds what was
            // not handed out yet: what the stream may still grow by.
            let max_stream = self.config.max_stream_size;
            let (limit, pause_at) = if msg.stream {
                let budget = max_stream.saturating_sub(msg.streamed);
                (usize::try_from(budget).unwrap_or(usize::MAX), STREAM_CHUNK)
            } else {
                (self.config.max_message_size, usize::MAX)
            };
            let mut scratch = [0u8; 4096];
            used = 0;
            for piece in chunk.chunks(scratch.len()) {
                let s = &mut scratch[..piece.len()];
                s.copy_from_slice(piece);
                if let Some(key) = key {
                    apply_mask(s, key, offset + used);
                }
                let took = ext
                    .decode_some(s, &mut msg.buf, limit, pause_at)
                    .map_err(|e| {
                        if msg.stream {
                            stream_limit(e, max_stream)
                        } else {
                            e
                        }
                    })?;
                used += took;
                if took < piece.len() {
                    break;
                }
            }
        } else {
            if msg.stream {
                // Handed out as it comes: no pooled buffer, no doubling.
                msg.buf.reserve(chunk.len());
            } else {
                msg.grow(chunk.len(), frame_rest, pool);
            }
            let start = msg.buf.len();
            msg.buf.extend_from_slice(chunk);
            if let Some(key) = key {
                apply_mask(&mut msg.buf[start..], key, offset);
            }
        }
        if msg.text {
            check_utf8(msg)?;
        }
        Ok(used)
    }

    /// The start and length of the message buffer a read may fill in place:
    /// only inside a large data frame's payload that is kept as it arrives,
    /// while input is wanted. Makes the message's deferred allocation (from
    /// `pool`) and reserves the frame's remaining payload.
    fn in_place_remaining(&mut self, pool: &mut BufferPool) -> Option<(usize, usize)> {
        if self.input_stopped || self.reads_paused() {
            return None;
        }
        let frame = self.frame.as_ref()?;
        if frame.header.opcode.is_control() || frame.remaining < IN_PLACE_MIN as u64 {
            return None;
        }
        let remaining = frame.remaining as usize;
        let msg = self.message.as_mut()?;
        if msg.transformed {
            return None;
        }
        let window = remaining.min(IN_PLACE_WINDOW);
        msg.grow(window, remaining - window, pool);
        Some((msg.buf.len(), remaining))
    }

    /// The message an in-place read fills.
    fn in_place_message(&mut self) -> &mut Assembly {
        self.message
            .as_mut()
            .expect("an in-place read is only offered inside a message")
    }

    /// Processes `n` payload bytes that an in-place read appended at `start`.
    fn accept_in_place(&mut self, now: Instant, start: usize, n: usize) {
        self.timers.tell(now);
        let (Some(frame), Some(msg)) = (self.frame.as_mut(), self.message.as_mut()) else {
            return;
        };
        if let Some(key) = frame.header.mask {
            apply_mask(&mut msg.buf[start..start + n], key, frame.seen);
        }
        frame.seen += n;
        frame.remaining -= n as u64;
        let done = frame.remaining == 0;
        if n > 0 && !self.close.is_closed() {
            self.timers.last_heard = now;
        }
        if msg.text {
            if let Err(e) = check_utf8(msg) {
                self.violation(e);
                self.observe(now);
                return;
            }
        }
        if done {
            self.end_frame();
        }
        self.flush_stream();
        self.observe(now);
    }

    /// A frame's payload is complete.
    fn end_frame(&mut self) {
        let Some(frame) = self.frame.take() else {
            return;
        };
        if frame.header.opcode.is_control() {
            // A streamed message's bytes before this frame come first.
            self.flush_stream();
        }
        match frame.header.opcode {
            OpCode::Ping => {
                let payload = Bytes::from(self.take_control());
                if self.config.auto_pong && !self.close.is_close_sent() {
                    // Pings are answered in order, but past a few unwritten
                    // pongs only the latest is (§5.5.3), so a peer that pings
                    // without reading cannot grow our output.
                    let pongs = self.pending_pongs.get_or_insert_with(Box::default);
                    if pongs.len() >= MAX_PENDING_PONGS {
                        pongs.pop_back();
                    }
                    pongs.push_back(payload.clone());
                }
                if !self.discard {
                    self.push_event(Event::Ping(payload));
                }
            }
            OpCode::Pong => {
                let payload = Bytes::from(self.take_control());
                if !self.discard {
                    self.push_event(Event::Pong(payload));
                }
            }
            OpCode::Close => match CloseFrame::parse(&self.take_control()) {
                Ok(frame) => {
                    self.input_stopped = true;
                    match self.close {
                        // We started the close; the handshake is now done.
                        CloseState::CloseSent { .. } => {
                            self.close_handshake_done(frame.clone(), true);
                        }
                        CloseState::Open => {
                            self.close = CloseState::CloseReceived {
                                remote: Box::new(frame.clone()),
                            }
                        }
                        // Input stops at the first close frame.
                        _ => {}
                    }
                    self.push_event(Event::Close(frame));
                }
                Err(e) => self.violation(e),
            },
            _ => {
                if frame.header.fin {
                    if let Err(e) = self.finish_message() {
                        self.violation(e);
                    }
                }
            }
        }
    }

    fn finish_message(&mut self) -> Result<(), ProtocolError> {
        let limit = self.config.max_message_size;
        let Some(mut msg) = self.message.take() else {
            return Ok(());
        };
        if msg.transformed {
            let limit = if msg.stream {
                let budget = self.config.max_stream_size.saturating_sub(msg.streamed);
                usize::try_from(budget).unwrap_or(usize::MAX)
            } else {
                limit
            };
            if let Some(ext) = self.extension.as_mut() {
                let result = ext.decode_end(&mut msg.buf, limit);
                if msg.stream {
                    result.map_err(|e| stream_limit(e, self.config.max_stream_size))?;
                } else {
                    result?;
                }
            }
            if msg.text {
                check_utf8(&mut msg)?;
            }
        }
        if msg.text && msg.utf8_checked != msg.buf.len() {
            return Err(ProtocolError::InvalidUtf8);
        }
        if msg.stream {
            if let Some(chunk) = msg.take_chunk(true) {
                self.push_chunk(chunk);
            }
            return Ok(());
        }
        if self.discard {
            self.discarded += 1;
            return Ok(());
        }
        let bytes = msg.buf.freeze();
        let message = if msg.text {
            Message::Text(Utf8Bytes::from_checked(bytes))
        } else {
            Message::Binary(bytes)
        };
        self.push_event(Event::Message(message));
        Ok(())
    }

    fn push_event(&mut self, event: Event) {
        match &event {
            Event::Message(m) => self.event_bytes += m.len(),
            Event::Chunk(c) => self.event_bytes += c.data.len(),
            _ => {}
        }
        self.events.push_back(event);
    }

    /// Holds a violation: input stops here; the close frame and error event
    /// wait for the application to reach it through `poll_event`.
    fn violation(&mut self, error: ProtocolError) {
        #[cfg(feature = "tracing")]
        tracing::debug!(%error, "protocol violation");
        self.input_stopped = true;
        self.frame = None;
        self.message = None;
        self.control = None;
        self.head_len = 0;
        self.backlog = None;
        if self.held_error.is_none() {
            self.held_error = Some(Box::new(error));
        }
    }

    // ---------------------------------------------------------------- events

    /// The next event for the application, if any (see the module docs for
    /// why events are produced lazily). Drain [`Connection::poll_transmit`]
    /// afterwards: answering a close or a violation queues a frame.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            match &event {
                Event::Message(m) => self.event_bytes -= m.len(),
                Event::Chunk(c) => {
                    self.event_bytes -= c.data.len();
                    self.reading_chunks = !c.last;
                }
                Event::Close(frame) if matches!(self.close, CloseState::CloseReceived { .. }) => {
                    // Echo the peer's code (§5.5.1); an empty close gets an
                    // empty close back.
                    let echo = if frame.code == CloseCode::NO_STATUS {
                        Bytes::new()
                    } else {
                        Bytes::copy_from_slice(&frame.code.0.to_be_bytes())
                    };
                    self.queue_close_payload(echo);
                    self.close_handshake_done(frame.clone(), false);
                }
                _ => {}
            }
            if self.backlog.is_some() {
                self.resume_backlog();
            }
            if self.events.is_empty() {
                self.events = VecDeque::new();
            }
            return Some(event);
        }
        let error = *self.held_error.take()?;
        if !self.close.is_closed() {
            let frame = CloseFrame {
                code: error.close_code(),
                reason: short_reason(&error.to_string()),
            };
            self.close_and_fail(frame, ConnectionError::Protocol(error.clone()), false);
        }
        Some(Event::Error(ConnectionError::Protocol(error)))
    }

    /// Drops data messages (and ping/pong events) instead of queueing them,
    /// counting them; control frames are still handled, so heartbeats keep
    /// working. For send-only feeds whose application never receives.
    pub fn set_discard(&mut self, discard: bool) {
        self.discard = discard;
        if discard {
            let mut dropped = 0;
            self.events.retain(|e| match e {
                Event::Message(_) => {
                    dropped += 1;
                    false
                }
                Event::Chunk(c) => {
                    dropped += u64::from(c.last);
                    false
                }
                Event::Ping(_) | Event::Pong(_) => false,
                _ => true,
            });
            self.discarded += dropped;
            self.event_bytes = 0;
            self.resume_backlog();
        }
    }

    /// Switches streaming mode ([`Config::stream_messages`]) for the
    /// messages that start from now on; a message being received keeps the
    /// mode it started with.
    pub fn set_streaming(&mut self, on: bool) {
        self.streaming = on;
    }

    /// Whether messages that start from now on are handed out in chunks.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Abandons the streamed message whose chunks the application is
    /// taking: its chunks still queued and the rest of it as it arrives are
    /// dropped (still checked: a violation in the rest fails the
    /// connection as usual). Does nothing between messages.
    pub fn skip_message(&mut self) {
        if !self.reading_chunks {
            return;
        }
        self.reading_chunks = false;
        let mut ended = false;
        let mut freed = 0;
        self.events.retain(|e| match e {
            Event::Chunk(c) if !ended => {
                ended = c.last;
                freed += c.data.len();
                false
            }
            _ => true,
        });
        self.event_bytes -= freed;
        if !ended {
            self.skip_stream = true;
        }
        self.resume_backlog();
    }

    /// How many messages discard mode has dropped.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Whether unread events are waiting.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty() || self.held_error.is_some()
    }

    // -------------------------------------------------------------- commands

    /// Queues a text message.
    pub fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), UsageError> {
        self.send_data(OpCode::Text, text.into().into_bytes())
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), UsageError> {
        self.send_data(OpCode::Binary, data.into())
    }

    /// Queues a message. While a message is going out in chunks
    /// ([`Connection::send_chunk`]), it waits behind that message's last
    /// chunk (counted in [`Connection::queued_bytes`]).
    pub fn send(&mut self, message: Message) -> Result<(), UsageError> {
        match message {
            Message::Text(t) => self.send_data(OpCode::Text, t.into_bytes()),
            Message::Binary(b) => self.send_data(OpCode::Binary, b),
        }
    }

    /// Queues a ping (payload at most 125 bytes, §5.5.2).
    pub fn send_ping(&mut self, payload: impl Into<Bytes>) -> Result<(), UsageError> {
        self.send_control(OpCode::Ping, payload.into())
    }

    /// Queues an unsolicited pong (payload at most 125 bytes, §5.5.3).
    pub fn send_pong(&mut self, payload: impl Into<Bytes>) -> Result<(), UsageError> {
        self.send_control(OpCode::Pong, payload.into())
    }

    /// Queues a frame already encoded for many connections (broadcast).
    /// The shared bytes are written as they are, never copied per member.
    ///
    /// With permessage-deflate and no server context takeover, the message
    /// is compressed once per set of parameters and that frame is shared;
    /// with context takeover it is compressed for this connection alone.
    pub fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), UsageError> {
        self.check_can_send()?;
        if self.out_stream.is_some() {
            self.defer(DeferredSend::Prepared(prepared.clone()));
            return Ok(());
        }
        match self.role {
            Role::Server => {
                #[cfg(feature = "deflate")]
                if self.extension.is_some() {
                    match self.shared_deflate {
                        Some(key) => {
                            if let Some(frame) = prepared.deflated(key) {
                                self.push_out(OutItem::Encoded(frame));
                                return Ok(());
                            }
                        }
                        // Context takeover (or another extension): this
                        // connection's own state transforms the message.
                        None => return self.send(prepared.message.clone()),
                    }
                }
                self.push_out(OutItem::Encoded(prepared.frame.clone()));
                Ok(())
            }
            // Clients must mask each frame with a fresh key.
            Role::Client => self.send(prepared.message.clone()),
        }
    }

    /// Queues one chunk of a message sent piece by piece, as one frame
    /// (RFC 6455 §5.4): the first chunk after a message ended starts a new
    /// message of its kind, and `last` ends it. The total size need not be
    /// known in advance; with permessage-deflate each chunk is compressed
    /// as it comes (a sync flush, so the peer can inflate it at once).
    ///
    /// Pings, pongs and a close may go out between the chunks. Whole
    /// messages sent meanwhile ([`Connection::send`],
    /// [`Connection::send_prepared`]) wait and follow the last chunk.
    /// A text chunk must be valid UTF-8 on its own, a chunk of the other
    /// kind than its message's fails with [`UsageError::ChunkKindMismatch`].
    pub fn send_chunk(&mut self, data: Message, last: bool) -> Result<(), UsageError> {
        self.check_can_send()?;
        let text = data.is_text();
        let first = match self.out_stream {
            None => true,
            Some(kind) if kind == text => false,
            Some(_) => {
                return Err(UsageError::ChunkKindMismatch(if text {
                    "text"
                } else {
                    "binary"
                }))
            }
        };
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let payload = match data {
            Message::Text(t) => t.into_bytes(),
            Message::Binary(b) => b,
        };
        let (rsv, payload) = match self.extension.as_mut() {
            Some(ext) => match ext.encode_chunk(opcode, &payload, first, last) {
                Some((rsv, transformed)) => (rsv, transformed),
                None => (0, payload),
            },
            None => (0, payload),
        };
        let frame_op = if first { opcode } else { OpCode::Continuation };
        self.push_frame(last, if first { rsv } else { 0 }, frame_op, payload);
        if last {
            self.out_stream = None;
            self.release_deferred();
        } else {
            self.out_stream = Some(text);
        }
        Ok(())
    }

    /// Whether a message is going out in chunks (its last not sent yet).
    pub fn is_sending_chunks(&self) -> bool {
        self.out_stream.is_some()
    }

    fn defer(&mut self, item: DeferredSend) {
        let deferred = self.deferred.get_or_insert_with(Box::default);
        deferred.bytes += item.len();
        deferred.items.push_back(item);
    }

    /// Queues the whole messages that waited for a chunked message.
    fn release_deferred(&mut self) {
        let Some(deferred) = self.deferred.take() else {
            return;
        };
        for item in deferred.items {
            // They were accepted while the connection could send, and
            // nothing since stopped it (that drops them with the rest).
            let _ = match item {
                DeferredSend::Message(m) => self.send(m),
                DeferredSend::Prepared(p) => self.send_prepared(&p),
            };
        }
    }

    /// Starts the close handshake (§5.5.1, §7.1.2): queues a close frame;
    /// no data may be sent afterwards, but the peer's messages are still
    /// delivered until its close frame arrives or the close timeout passes.
    pub fn close(&mut self, now: Instant, code: CloseCode, reason: &str) -> Result<(), UsageError> {
        let frame = CloseFrame::new(code, reason)?;
        self.check_can_send()?;
        self.timers.tell(now);
        self.queue_close_payload(frame.encode());
        match std::mem::replace(&mut self.close, CloseState::Open) {
            // Answering the peer's close: the handshake is done.
            CloseState::CloseReceived { remote } => self.close_handshake_done(*remote, false),
            _ => {
                self.close = CloseState::CloseSent {
                    deadline: now + self.config.close_timeout,
                }
            }
        }
        Ok(())
    }

    fn check_can_send(&self) -> Result<(), UsageError> {
        if !self.is_open() {
            Err(UsageError::SendAfterClose)
        } else {
            Ok(())
        }
    }

    fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), UsageError> {
        self.check_can_send()?;
        if payload.len() > 125 {
            return Err(UsageError::ControlPayloadTooLong(payload.len()));
        }
        self.push_frame(true, 0, opcode, payload);
        Ok(())
    }

    fn send_data(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), UsageError> {
        self.check_can_send()?;
        if self.out_stream.is_some() {
            let message = match opcode {
                OpCode::Text => Message::Text(Utf8Bytes::from_checked(payload)),
                _ => Message::Binary(payload),
            };
            self.defer(DeferredSend::Message(message));
            return Ok(());
        }
        let (rsv, payload) = match self.extension.as_mut() {
            Some(ext) => match ext.encode(opcode, &payload) {
                Some((rsv, transformed)) => (rsv, transformed),
                None => (0, payload),
            },
            None => (0, payload),
        };
        let size = self.config.fragment_size.unwrap_or(usize::MAX).max(1);
        if payload.len() <= size {
            self.push_frame(true, rsv, opcode, payload);
            return Ok(());
        }
        let mut rest = payload;
        let mut first = true;
        while !rest.is_empty() {
            let piece = rest.split_to(size.min(rest.len()));
            let (op, bits) = if first {
                (opcode, rsv)
            } else {
                (OpCode::Continuation, 0)
            };
            self.push_frame(rest.is_empty(), bits, op, piece);
            first = false;
        }
        Ok(())
    }

    fn push_frame(&mut self, fin: bool, rsv: u8, opcode: OpCode, payload: Bytes) {
        let mask = self.rng.as_mut().map(|rng| rng.mask_key());
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let mut bytes = [0u8; MAX_HEADER_LEN];
        let header_len = header.encode(&mut bytes) as u8;
        self.push_out(OutItem::Frame {
            header: bytes,
            header_len,
            payload,
            mask,
        });
    }

    fn push_out(&mut self, item: OutItem) {
        self.out_bytes += item.len();
        self.out.push_back(item);
    }

    /// Queues our close frame; the caller moves the close state on. Pongs
    /// not yet written are dropped: nothing may follow a close (§5.5.1);
    /// so are whole messages waiting behind an unfinished chunked one.
    fn queue_close_payload(&mut self, payload: Bytes) {
        self.pending_pongs = None;
        // Whole messages waiting for an unfinished chunked message can no
        // longer go out.
        self.deferred = None;
        self.push_frame(true, 0, OpCode::Close, payload);
    }

    /// Both close frames are exchanged (or ours answers theirs).
    fn close_handshake_done(&mut self, remote: CloseFrame, locally_initiated: bool) {
        self.input_stopped = true;
        let outcome = Outcome::Clean {
            remote,
            locally_initiated,
        };
        match self.role {
            // The server closes the TCP connection first (§7.1.1).
            Role::Server => self.finish_with(outcome, true),
            // The client waits for the server to close, up to the close
            // timeout (still the one from our close, if we started it); the
            // outcome is already known.
            Role::Client => {
                let deadline = self
                    .close
                    .deadline()
                    .unwrap_or(self.timers.last_now + self.config.close_timeout);
                self.close = CloseState::Closing {
                    outcome: Box::new(outcome),
                    deadline,
                };
            }
        }
    }

    /// Ends the connection on our side: queues `frame` unless a close frame
    /// was already sent, and records `error` as the outcome, also as an
    /// event when `report` (a held violation is returned by `poll_event`
    /// directly instead).
    fn close_and_fail(&mut self, frame: CloseFrame, error: ConnectionError, report: bool) {
        if !self.close.is_close_sent() {
            self.queue_close_payload(frame.encode());
        }
        if report {
            self.push_event(Event::Error(error.clone()));
        }
        self.finish_with(Outcome::Failed(error), true);
    }

    fn fail(&mut self, error: ConnectionError) {
        self.push_event(Event::Error(error.clone()));
        self.finish(Outcome::Failed(error));
    }

    fn finish(&mut self, outcome: Outcome) {
        let close_sent = self.close.is_close_sent();
        self.finish_with(outcome, close_sent);
    }

    /// Moves to `Closed`. A clean outcome already known (a client waiting
    /// for the server to close) stands, unless this is a failure.
    fn finish_with(&mut self, outcome: Outcome, close_sent: bool) {
        let remote = match (self.close.remote(), &outcome) {
            (Some(remote), _) | (None, Outcome::Clean { remote, .. }) => {
                Some(Box::new(remote.clone()))
            }
            (None, Outcome::Failed(_)) => None,
        };
        let linger_until = match &self.close {
            CloseState::Closed { linger_until, .. } => *linger_until,
            _ => crate::timer::linger_deadline(self.timers.last_now, self.config.close_timeout),
        };
        let outcome = match std::mem::replace(&mut self.close, CloseState::Open) {
            CloseState::Closing { outcome: known, .. }
            | CloseState::Closed { outcome: known, .. }
                if !matches!(outcome, Outcome::Failed(_)) =>
            {
                known
            }
            _ => Box::new(outcome),
        };
        self.close = CloseState::Closed {
            outcome,
            remote,
            close_sent,
            linger_until,
        };
        self.input_stopped = true;
        self.frame = None;
        self.message = None;
        self.backlog = None;
        self.deferred = None;
    }

    // ---------------------------------------------------------------- output

    /// Moves queued output into `buf` and returns the next shared chunk, if any.
    ///
    /// Small frames are copied (and masked, for clients) into `buf`; a large
    /// or shared payload is returned as its own `Bytes` chunk, to be written
    /// right after `buf`. Call repeatedly, writing `buf` then the chunk each
    /// time, until `buf` stays empty and `None` is returned.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Bytes> {
        if let Some(pongs) = self.pending_pongs.take() {
            for payload in *pongs {
                if !self.close.is_close_sent() {
                    self.encode_frame_into(buf, OpCode::Pong, payload);
                }
            }
        }
        while let Some(item) = self.out.pop_front() {
            self.out_bytes -= item.len();
            match item {
                OutItem::Frame {
                    header,
                    header_len,
                    payload,
                    mask,
                } => {
                    buf.extend_from_slice(&header[..header_len as usize]);
                    if let Some(key) = mask {
                        let start = buf.len();
                        buf.extend_from_slice(&payload);
                        apply_mask(&mut buf[start..], key, 0);
                    } else if payload.len() <= COALESCE_LIMIT {
                        buf.extend_from_slice(&payload);
                    } else {
                        self.release_out();
                        return Some(payload);
                    }
                }
                OutItem::Encoded(bytes) => {
                    if bytes.len() <= COALESCE_LIMIT {
                        buf.extend_from_slice(&bytes);
                    } else {
                        self.release_out();
                        return Some(bytes);
                    }
                }
            }
            if buf.len() >= self.config.write_buffer_limit.max(COALESCE_LIMIT) {
                break;
            }
        }
        self.release_out();
        None
    }

    fn release_out(&mut self) {
        if self.out.is_empty() && self.out.capacity() > 0 {
            // Idle connections hold no buffers.
            self.out = VecDeque::new();
        }
    }

    fn encode_frame_into(&mut self, buf: &mut Vec<u8>, opcode: OpCode, payload: Bytes) {
        let mask = self.rng.as_mut().map(|rng| rng.mask_key());
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        }
        .encode_to(buf);
        let start = buf.len();
        buf.extend_from_slice(&payload);
        if let Some(key) = mask {
            apply_mask(&mut buf[start..], key, 0);
        }
    }

    /// Bytes queued for writing and not yet handed out by `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        self.out_bytes
            + self.deferred.as_ref().map_or(0, |d| d.bytes)
            + self
                .pending_pongs
                .iter()
                .flat_map(|pongs| pongs.iter())
                .map(|p| p.len() + 6)
                .sum::<usize>()
    }

    /// Whether there is output to drain.
    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty() || (self.pending_pongs.is_some() && !self.close.is_close_sent())
    }

    /// Whether queued output is at or over the write limit: senders should
    /// wait (or `try_send` should refuse) until it drains.
    pub fn is_write_blocked(&self) -> bool {
        self.queued_bytes() >= self.config.write_buffer_limit
    }

    /// Whether the next chunk of a message going out in chunks should
    /// wait: like [`Connection::is_write_blocked`], but whole messages
    /// waiting behind that message do not count (they cannot drain first).
    pub fn is_chunk_blocked(&self) -> bool {
        self.queued_bytes() - self.deferred.as_ref().map_or(0, |d| d.bytes)
            >= self.config.write_buffer_limit
    }

    // ---------------------------------------------------------------- status

    /// Whether the adapter should read from the transport now.
    ///
    /// False while unread events exceed their limits (the application's
    /// backpressure, which also stops the idle clock), or once input no
    /// longer matters. A client after the close handshake still reads, to
    /// see the server close the transport.
    ///
    /// Output over the write limit does not stop reading: senders wait for
    /// it instead, so what is queued stays bounded either way, and pings and
    /// closes keep being answered. If it did, two peers that both send
    /// faster than the other reads (a full-duplex stream through an echo)
    /// would each stop reading and wait for the other forever.
    pub fn wants_read(&self) -> bool {
        if self.close.is_closed() {
            return false;
        }
        if self.input_stopped {
            // Keep reading only to notice EOF (the bytes are ignored).
            return true;
        }
        !self.reads_paused()
    }

    fn reads_paused(&self) -> bool {
        self.app_paused()
    }

    /// Reads pause because the application has not taken its events; this
    /// pause also suspends the idle clock and heartbeats (a peer that does
    /// not read our output is caught by the write-stall deadline).
    fn app_paused(&self) -> bool {
        let limit = if self.streaming_input() {
            STREAM_CHUNK
        } else {
            self.config.max_message_size
        };
        self.backlog.is_some()
            || self.events.len() >= MAX_PENDING_EVENTS
            || (self.event_bytes > 0 && self.event_bytes >= limit)
    }

    /// Whether data may still be sent (no close frame sent yet, not closed).
    pub fn is_open(&self) -> bool {
        matches!(
            self.close,
            CloseState::Open | CloseState::CloseReceived { .. }
        )
    }

    /// Whether the connection has ended: nothing more will be read or
    /// sent, and its outcome is known. Queued output (a last close frame)
    /// may still be waiting: keep draining [`Connection::poll_transmit`]
    /// and writing until [`Connection::is_finished`], then shut the
    /// transport down.
    pub fn is_closed(&self) -> bool {
        self.close.is_closed()
    }

    /// Whether we have sent a close frame.
    pub fn is_close_sent(&self) -> bool {
        self.close.is_close_sent()
    }

    /// The peer's close frame, once it has arrived.
    pub fn close_received(&self) -> Option<&CloseFrame> {
        self.close.remote()
    }

    /// How the connection ended, once known. A client that finished the
    /// close handshake knows its outcome before the server closes the
    /// transport.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.close.outcome()
    }

    // ------------------------------------------------------------------ time

    /// The next instant at which [`Connection::handle_timeout`] must be
    /// called, if any. Recompute after every input.
    ///
    /// While open: the close, heartbeat, idle and write-stall deadlines.
    /// Once [`Connection::is_closed`]: the end of the linger, after which
    /// [`Connection::is_finished`] turns true even if the last frames could
    /// not be written.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let CloseState::Closed { linger_until, .. } = &self.close {
            return Some(*linger_until);
        }
        if let Some(since) = self.timers.paused_since {
            if !self.app_paused() {
                // Reads resumed since we last saw the time: wake at once so
                // the pause is credited.
                return Some(since);
            }
        }
        let live = !self.input_stopped && !self.close.is_close_sent();
        earliest([
            self.close.deadline(),
            self.timers.stall.deadline(self.config.write_timeout),
            live.then(|| self.timers.heartbeat_at(self.config.heartbeat_interval))
                .flatten(),
            (!self.input_stopped)
                .then(|| self.timers.idle_at(self.config.idle_timeout))
                .flatten(),
        ])
    }

    /// Tells the connection the time; fires due deadlines: heartbeat pings,
    /// the idle timeout (close 1011), the write-stall timeout (close 1011,
    /// [`TimeoutKind::Write`]), the close timeout, and the linger after the
    /// connection closed. Then drain [`Connection::poll_transmit`] and check
    /// [`Connection::is_finished`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.observe(now);
        match &self.close {
            CloseState::Closed { .. } => return,
            CloseState::Closing { outcome, deadline } if now >= *deadline => {
                let clean = (**outcome).clone();
                self.finish(clean);
                return;
            }
            CloseState::CloseSent { deadline } if now >= *deadline => {
                self.fail(ConnectionError::Timeout(TimeoutKind::Close));
                return;
            }
            _ => {}
        }
        if let Some(at) = self.timers.stall.deadline(self.config.write_timeout) {
            if now >= at {
                let frame = CloseFrame {
                    code: CloseCode::INTERNAL_ERROR,
                    reason: Utf8Bytes::from_static("write timeout"),
                };
                // If even the close frame cannot be written, the linger
                // that starts now ends the connection.
                self.close_and_fail(frame, ConnectionError::Timeout(TimeoutKind::Write), true);
                return;
            }
        }
        if self.input_stopped {
            return;
        }
        if let Some(at) = self.timers.idle_at(self.config.idle_timeout) {
            if now >= at {
                let frame = CloseFrame {
                    code: CloseCode::INTERNAL_ERROR,
                    reason: Utf8Bytes::from_static("idle timeout"),
                };
                self.close_and_fail(frame, ConnectionError::Timeout(TimeoutKind::Idle), true);
                return;
            }
        }
        if !self.close.is_close_sent() {
            if let Some(at) = self.timers.heartbeat_at(self.config.heartbeat_interval) {
                if now >= at {
                    self.timers.last_ping = Some(now);
                    self.push_frame(true, 0, OpCode::Ping, Bytes::new());
                }
            }
        }
    }

    /// Reports one attempt to write to the transport: `wrote` is how many
    /// bytes the transport accepted in this attempt, `pending` whether the
    /// driver still holds bytes (taken from [`Connection::poll_transmit`])
    /// that it did not accept yet, i.e. the write returned "pending".
    ///
    /// Call it after every write attempt, including ones that wrote
    /// nothing, then check [`Connection::is_finished`] and
    /// [`Connection::poll_timeout`]. Output that stays pending without
    /// progress for [`Config::write_timeout`] fails the connection
    /// ([`TimeoutKind::Write`]); any progress restarts that clock, and
    /// `pending == false` stops it. Bytes still inside the core
    /// ([`Connection::has_transmit`]) are not the driver's to report.
    pub fn record_output(&mut self, now: Instant, wrote: usize, pending: bool) {
        self.observe(now);
        self.timers.stall.record(now, wrote, pending);
    }

    /// The payload of the control frame just read.
    fn take_control(&mut self) -> Vec<u8> {
        self.control.take().map(|c| *c).unwrap_or_default()
    }

    /// Whether the linger after the close has passed, as of the latest time.
    fn linger_over(&self) -> bool {
        matches!(&self.close, CloseState::Closed { linger_until, .. }
            if self.timers.last_now >= *linger_until)
    }

    /// Whether the driver should shut the transport down and stop: the
    /// connection is closed ([`Connection::is_closed`]) and either all its
    /// output was written (nothing left in the core, and the last
    /// [`Connection::record_output`] said nothing pending) or the linger
    /// deadline from [`Connection::poll_timeout`] has passed as of the
    /// latest time the connection was told (then drop the transport
    /// without flushing). Check it after `record_output` and after
    /// [`Connection::handle_timeout`].
    pub fn is_finished(&self) -> bool {
        self.close.is_closed()
            && ((!self.has_transmit() && !self.timers.stall.is_pending()) || self.linger_over())
    }

    fn observe(&mut self, now: Instant) {
        self.timers.tell(now);
        let paused = !self.input_stopped && self.app_paused();
        self.timers.observe_pause(now, paused);
    }
}

/// Validates the unchecked tail of a text message; a code point cut off at
/// the end is fine until more bytes arrive.
fn check_utf8(msg: &mut Assembly) -> Result<(), ProtocolError> {
    let tail = &msg.buf[msg.utf8_checked..];
    match simdutf8::compat::from_utf8(tail) {
        Ok(_) => {
            msg.utf8_checked = msg.buf.len();
            Ok(())
        }
        Err(e) if e.error_len().is_none() => {
            msg.utf8_checked += e.valid_up_to();
            Ok(())
        }
        Err(_) => Err(ProtocolError::InvalidUtf8),
    }
}

/// A streamed message's inflater is given what the message may still grow
/// by (`max_stream_size` less the bytes handed out); its error names the
/// configured limit, so it does not depend on how far the application had
/// read.
fn stream_limit(error: ProtocolError, max_stream_size: u64) -> ProtocolError {
    match error {
        ProtocolError::MessageTooBig { .. } => ProtocolError::MessageTooBig {
            limit: usize::try_from(max_stream_size).unwrap_or(usize::MAX),
        },
        other => other,
    }
}

/// A close reason from an error message, cut to fit a control frame on a
/// character boundary.
fn short_reason(text: &str) -> Utf8Bytes {
    let mut end = text.len().min(MAX_REASON_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Utf8Bytes::from(&text[..end])
}

/// A message framed once for many server connections (broadcast): the
/// same shared bytes are queued on every member, never re-encoded or copied.
#[derive(Clone, Debug)]
pub struct PreparedMessage {
    message: Message,
    frame: Bytes,
    /// Compressed frames by compression parameters, computed on first use
    /// and shared by clones (`None`: sent uncompressed for that key).
    #[cfg(feature = "deflate")]
    deflated: Arc<crate::deflate::PreparedFrames>,
}

impl PreparedMessage {
    /// Frames `message` as a single unmasked server frame.
    pub fn new(message: impl Into<Message>) -> PreparedMessage {
        let message = message.into();
        let opcode = if message.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: message.len() as u64,
        };
        let mut frame = Vec::with_capacity(header.encoded_len() + message.len());
        header.encode_to(&mut frame);
        frame.extend_from_slice(message.as_bytes());
        PreparedMessage {
            message,
            frame: Bytes::from(frame),
            #[cfg(feature = "deflate")]
            deflated: Arc::default(),
        }
    }

    /// The compressed frame for connections without server context
    /// takeover that compress with `key`; computed once, then shared.
    #[cfg(feature = "deflate")]
    pub(crate) fn deflated(&self, key: crate::deflate::SharedKey) -> Option<Bytes> {
        let cached = self.deflated.iter().filter_map(std::sync::OnceLock::get);
        if let Some((_, frame)) = cached.clone().find(|(k, _)| *k == key) {
            return frame.clone();
        }
        let frame = crate::deflate::compress_fresh(key, self.message.as_bytes()).map(|payload| {
            let header = FrameHeader {
                fin: true,
                rsv: 0b100,
                opcode: if self.message.is_text() {
                    OpCode::Text
                } else {
                    OpCode::Binary
                },
                mask: None,
                payload_len: payload.len() as u64,
            };
            let mut frame = Vec::with_capacity(header.encoded_len() + payload.len());
            header.encode_to(&mut frame);
            frame.extend_from_slice(&payload);
            Bytes::from(frame)
        });
        // The first free slot; a racing thread that filled it first (with
        // this key or another) only means this result is not the cached one.
        if let Some(slot) = self.deflated.iter().find(|slot| slot.get().is_none()) {
            let _ = slot.set((key, frame.clone()));
        }
        frame
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The encoded frame bytes, as a server sends them.
    pub fn frame_bytes(&self) -> &Bytes {
        &self.frame
    }
}
