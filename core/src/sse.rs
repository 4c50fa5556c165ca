//! Server-Sent Events: encoding for servers, incremental parsing for clients.
//!
//! Follows the event-stream format of the HTML living standard
//! (§9.2 "Server-sent events", "Parsing an event stream" and "Interpreting an
//! event stream"). Nothing here does I/O: [`SseEvent::encode`] produces bytes
//! to write, [`SseParser::feed`] takes bytes that were read.
//!
//! A server sends [`response_head`] once, then one encoded [`SseEvent`] per
//! event (encode once, share the [`Bytes`] between every subscriber), and
//! [`keep_alive`] when the stream has been quiet for a while so proxies do not
//! time it out. Binary WebSocket messages have no SSE form and are not sent to
//! SSE subscribers.
//!
//! [`SseSession`] makes those decisions for one response stream as a
//! sans-IO state machine (queued output, keep-alives, write stall, shutdown
//! linger), so every runtime's SSE responder only reads, writes and sleeps.
//!
//! A client feeds the response body to an [`SseParser`] and drains
//! [`SseParser::poll_event`] after each feed; on reconnect it sends
//! [`SseParser::last_event_id`] as `Last-Event-ID`, waits
//! [`SseParser::retry`] (or its own backoff), and calls
//! [`SseParser::restart`] before feeding the new body.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The default cap on one line and on one event's buffered data (1 MiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One Server-Sent Event, to encode (server side) or as parsed (client side).
///
/// Build one with [`SseEvent::data`] or [`SseEvent::comment`] and the builder
/// methods, then call [`SseEvent::encode`]. Fields are public for reading;
/// [`SseEvent::encode`] re-checks them, so values set directly cannot break
/// the stream framing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SseEvent {
    /// The `event:` field (the event type). `None` means the default type,
    /// `"message"`; see [`SseEvent::event_type`].
    pub event: Option<String>,
    /// The `data:` payload. Line breaks (`\r\n`, `\r`, `\n`) are sent as one
    /// `data:` field per line and come back as `\n`. `None` sends no `data:`
    /// field at all, so a client dispatches nothing (a comment, or a block
    /// that only sets `id` or `retry`). Parsed events always have `Some`.
    pub data: Option<String>,
    /// The `id:` field. When parsing, this is the stream's last event ID at
    /// the time the event was dispatched (as `EventSource`'s `lastEventId`),
    /// so it carries over from earlier events; `None` when that ID is empty.
    pub id: Option<String>,
    /// The `retry:` field: the reconnection delay the server asks for, sent
    /// in whole milliseconds. When parsing, set only if this event's block
    /// carried a valid `retry:` field.
    pub retry: Option<Duration>,
    /// A comment (`: text` lines), ignored by `EventSource`. When parsing with
    /// [`SseParser::with_comments`], each comment line is reported as its own
    /// event with only this field set.
    pub comment: Option<String>,
}

impl SseEvent {
    /// An event carrying `data`. Chain [`SseEvent::event`], [`SseEvent::id`]
    /// and [`SseEvent::retry`] to add fields, then [`SseEvent::encode`].
    pub fn data(data: impl Into<String>) -> SseEvent {
        SseEvent {
            data: Some(data.into()),
            ..SseEvent::default()
        }
    }

    /// A comment-only block (`: text`), which clients ignore. Useful as a
    /// keep-alive with a message, or (with [`SseEvent::retry`]) to set the
    /// reconnection delay without dispatching an event.
    pub fn comment(text: impl Into<String>) -> SseEvent {
        SseEvent {
            comment: Some(text.into()),
            ..SseEvent::default()
        }
    }

    /// Sets the event type (`event:`). Line breaks cannot be carried by the
    /// format and are removed.
    pub fn event(mut self, name: impl Into<String>) -> SseEvent {
        let mut name = name.into();
        name.retain(|c| c != '\r' && c != '\n');
        self.event = Some(name);
        self
    }

    /// Sets the event ID (`id:`), which clients echo as `Last-Event-ID` when
    /// they reconnect. Line breaks and NUL cannot be carried (a client ignores
    /// an ID containing NUL) and are removed. An empty ID resets the client's
    /// last event ID.
    pub fn id(mut self, id: impl Into<String>) -> SseEvent {
        let mut id = id.into();
        id.retain(|c| !is_forbidden_in_id(c));
        self.id = Some(id);
        self
    }

    /// Sets the reconnection delay (`retry:`) the client should use, sent in
    /// whole milliseconds (rounded down).
    pub fn retry(mut self, delay: Duration) -> SseEvent {
        self.retry = Some(delay);
        self
    }

    /// The event type a client dispatches: the `event` field, or `"message"`
    /// when it is absent or empty.
    pub fn event_type(&self) -> &str {
        match self.event.as_deref() {
            Some(name) if !name.is_empty() => name,
            _ => "message",
        }
    }

    /// Encodes the event, terminated by a blank line, into shared bytes that
    /// can be queued on many connections without copying.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode_to(&mut out);
        Bytes::from(out)
    }

    /// Appends the encoded event, terminated by a blank line, to `out`.
    ///
    /// Order: comment lines, `event:`, `id:`, `retry:`, then one `data:` line
    /// per line of data. Values that cannot be represented (line breaks in
    /// `event`, line breaks or NUL in `id`) are stripped here too.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        if let Some(comment) = &self.comment {
            for line in split_lines(comment) {
                write_field(out, "", line);
            }
        }
        if let Some(event) = &self.event {
            out.extend_from_slice(b"event");
            write_value(out, event.chars().filter(|&c| c != '\r' && c != '\n'));
        }
        if let Some(id) = &self.id {
            out.extend_from_slice(b"id");
            write_value(out, id.chars().filter(|&c| !is_forbidden_in_id(c)));
        }
        if let Some(retry) = self.retry {
            out.extend_from_slice(b"retry: ");
            out.extend_from_slice(retry.as_millis().to_string().as_bytes());
            out.push(b'\n');
        }
        if let Some(data) = &self.data {
            for line in split_lines(data) {
                write_field(out, "data", line);
            }
        }
        out.push(b'\n');
    }

    fn encoded_len_hint(&self) -> usize {
        let len = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 8);
        // Each data line costs "data: " and "\n"; a rough count is enough.
        len(&self.event) + len(&self.id) + len(&self.comment) + len(&self.data) + 32
    }
}

fn is_forbidden_in_id(c: char) -> bool {
    c == '\0' || c == '\r' || c == '\n'
}

/// Writes `name: value\n`, or `name:\n` for an empty value (the space is
/// only a separator; the parser removes exactly one).
fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    if value.is_empty() {
        out.extend_from_slice(b":\n");
    } else {
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
}

/// Writes `: value\n` (or `:\n`) after a field name already written, for
/// values filtered char by char.
fn write_value(out: &mut Vec<u8>, value: impl Iterator<Item = char>) {
    let mut chars = value.peekable();
    if chars.peek().is_none() {
        out.extend_from_slice(b":\n");
        return;
    }
    out.extend_from_slice(b": ");
    let mut buf = [0u8; 4];
    for c in chars {
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    out.push(b'\n');
}

/// Splits on every `\r\n`, `\r` and `\n`; `n` line breaks give `n + 1` lines
/// (a trailing break gives a trailing empty line).
fn split_lines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(current)
            }
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
        }
    })
}

/// A keep-alive: a lone comment line and blank line (`:\n\n`) that clients
/// ignore. Send it when the stream has been idle for a while (15–30 s is
/// usual) so proxies and load balancers keep the connection open.
pub fn keep_alive() -> Bytes {
    Bytes::from_static(b":\n\n")
}

/// The HTTP/1.1 response head that starts an event stream: `200 OK`,
/// `Content-Type: text/event-stream`, `Cache-Control: no-cache`,
/// `Connection: keep-alive` and `X-Accel-Buffering: no` (stops nginx from
/// buffering the stream), then `extra_headers`, then the blank line.
///
/// There is no `Content-Length`: the body is the open-ended stream of encoded
/// events, ended by closing the connection. Send this once, before the first
/// event.
///
/// # Errors
///
/// [`SseError::InvalidHeader`] if an extra header name is not an HTTP token
/// or a value contains CR, LF or NUL (which would let it inject headers).
pub fn response_head(extra_headers: &[(&str, &str)]) -> Result<Vec<u8>, SseError> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\n\
          Content-Type: text/event-stream\r\n\
          Cache-Control: no-cache\r\n\
          Connection: keep-alive\r\n\
          X-Accel-Buffering: no\r\n",
    );
    for (name, value) in extra_headers {
        let name_ok = !name.is_empty() && name.bytes().all(is_token_byte);
        let value_ok = !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
        if !name_ok || !value_ok {
            return Err(SseError::InvalidHeader {
                name: (*name).to_owned(),
            });
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.trim().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// Settings of an SSE response.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SseConfig {
    /// Send a comment keep-alive after this long without an event, so
    /// proxies keep the stream open. Default 15 s.
    pub keep_alive: Duration,
    /// How long queued output may stay pending without the transport
    /// accepting a byte before [`SseSession`] gives the client up
    /// ([`SseEnd::WriteTimeout`]). Default 30 s.
    pub write_timeout: Duration,
    /// After the stream ended on our side (shutdown, eviction), how long
    /// [`SseSession`] keeps flushing what is queued before the transport is
    /// dropped anyway. Default 5 s (at least 1 ms is used).
    pub linger: Duration,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            keep_alive: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(5),
        }
    }
}

impl SseConfig {
    /// Sets [`SseConfig::keep_alive`].
    pub fn with_keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every;
        self
    }
    /// Sets [`SseConfig::write_timeout`].
    pub fn with_write_timeout(mut self, after: Duration) -> Self {
        self.write_timeout = after;
        self
    }
    /// Sets [`SseConfig::linger`].
    pub fn with_linger(mut self, at_most: Duration) -> Self {
        self.linger = at_most;
        self
    }
}

/// How an SSE responder's forwarding from a room ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SseEnd {
    /// The client went away (closed the connection or a write failed).
    Disconnected,
    /// The subscription fell behind under
    /// [`LagPolicy::Disconnect`](crate::room::LagPolicy::Disconnect); the
    /// stream was closed.
    Evicted,
    /// The server is shutting down.
    Shutdown,
    /// The client stopped reading: output stayed pending for longer than
    /// [`SseConfig::write_timeout`].
    WriteTimeout,
}

/// How to answer an SSE request: `Ok` with the `200 text/event-stream`
/// head to write, or `Err` with the response to send instead (`413` for a
/// request that carries a body).
pub fn answer(request: &crate::handshake::Request) -> Result<Vec<u8>, crate::HttpResponse> {
    if request.has_body() {
        return Err(crate::HttpResponse::from_handshake_error(
            &crate::HandshakeError::BodyNotAllowed,
        ));
    }
    Ok(response_head(&[]).expect("no extra headers, nothing to reject"))
}

/// What an SSE responder writes for a room event: `Ok(Some(bytes))`, or
/// `Ok(None)` for a binary message (no SSE form); a `: skipped N` comment
/// after lag; `Err(SseEnd::Evicted)` when the subscription was evicted and
/// the stream must end.
pub fn room_event_bytes(event: &crate::room::RoomEvent) -> Result<Option<Bytes>, SseEnd> {
    use crate::room::RoomEvent;
    match event {
        RoomEvent::Message(message) => Ok(message.sse_bytes().cloned()),
        RoomEvent::Lagged(n) => Ok(Some(Bytes::from(format!(": skipped {n}\n\n")))),
        RoomEvent::Evicted(_) => Err(SseEnd::Evicted),
    }
}

/// Largest chunk copied into the driver's buffer; larger shared event
/// bytes come out on their own, for a vectored write without a copy.
const COALESCE_LIMIT: usize = 2048;

/// Most bytes coalesced into the driver's buffer per `poll_transmit` call.
const COALESCE_BUDGET: usize = 64 << 10;

/// One SSE response stream's decisions, without I/O: what to write and
/// when (events, keep-alive comments), when the client is gone, when a
/// stalled client is given up, and when a stream ended on our side has
/// flushed enough. The sans-IO counterpart of [`crate::Connection`] for
/// `text/event-stream` responses.
///
/// # Drive loop
///
/// Create it with [`SseSession::accept`] (which checks the request and
/// queues the response head) or [`SseSession::new`] (the head was already
/// written by another HTTP stack). Then, on every wake-up:
///
/// 1. feed input: bytes read go to [`SseSession::receive`] (they are
///    ignored: the client sends nothing after its request), the end of the
///    read side or a transport error to [`SseSession::receive_eof`];
///    [`SseSession::handle_timeout`] when [`SseSession::poll_timeout`]
///    passed; application events to [`SseSession::send_event`] or
///    [`SseSession::send_bytes`], taking the next one from a room only
///    while [`SseSession::wants_event`]; [`SseSession::begin_shutdown`] when
///    the server shuts down, [`SseSession::close`] for another end;
/// 2. drain [`SseSession::poll_transmit`] and write what it returns, in
///    order;
/// 3. report the write with [`SseSession::record_output`];
/// 4. when [`SseSession::is_finished`], shut the transport down and stop;
///    [`SseSession::end_reason`] says why;
/// 5. sleep until [`SseSession::poll_timeout`], readable or writable
///    transport, or the next event, then start again.
#[derive(Debug)]
pub struct SseSession {
    keep_alive: Duration,
    write_timeout: Duration,
    linger: Duration,
    out: VecDeque<Bytes>,
    out_bytes: usize,
    /// When a keep-alive is due if nothing else is queued before.
    next_keep_alive: Instant,
    stall: crate::timer::WriteStall,
    /// Why the stream ended, once it did.
    end: Option<SseEnd>,
    /// When the driver stops flushing after the end.
    linger_until: Option<Instant>,
    /// The latest time any input told us.
    last_now: Instant,
}

impl SseSession {
    /// A session whose response head is already on the wire (written by
    /// the caller or another HTTP stack). Queue events next; drain
    /// [`SseSession::poll_transmit`] after each.
    pub fn new(config: &SseConfig, now: Instant) -> SseSession {
        SseSession {
            keep_alive: config.keep_alive,
            write_timeout: config.write_timeout,
            linger: config.linger,
            out: VecDeque::new(),
            out_bytes: 0,
            next_keep_alive: now + config.keep_alive,
            stall: crate::timer::WriteStall::default(),
            end: None,
            linger_until: None,
            last_now: now,
        }
    }

    /// Answers an SSE request: a session with the `200 text/event-stream`
    /// head queued as its first output, or (for a request with a body) the
    /// `413` response to send instead (see [`answer`]). Read the client's
    /// `Last-Event-ID` from the request to resume; then drain
    /// [`SseSession::poll_transmit`].
    pub fn accept(
        config: &SseConfig,
        request: &crate::handshake::Request,
        now: Instant,
    ) -> Result<SseSession, crate::HttpResponse> {
        let head = answer(request)?;
        let mut session = SseSession::new(config, now);
        session.push(Bytes::from(head));
        Ok(session)
    }

    // ----------------------------------------------------------------- input

    /// Feeds bytes read from the client. They are ignored (a client sends
    /// nothing after its request); reading only serves to notice that it
    /// went away, through [`SseSession::receive_eof`].
    pub fn receive(&mut self, now: Instant, _data: &[u8]) {
        self.tell(now);
    }

    /// The client closed its side, or the transport failed (a read or write
    /// error): the client is gone. Ends the stream with
    /// [`SseEnd::Disconnected`] (unless it had already ended) and drops
    /// the queued output: [`SseSession::is_finished`] is true at once.
    pub fn receive_eof(&mut self, now: Instant) {
        self.tell(now);
        self.out.clear();
        self.out_bytes = 0;
        self.stall = crate::timer::WriteStall::default();
        self.end.get_or_insert(SseEnd::Disconnected);
        self.linger_until = Some(now);
    }

    /// Whether the driver should read from the client: while the stream
    /// runs, to notice it leave.
    pub fn wants_read(&self) -> bool {
        self.end.is_none()
    }

    /// Tells the session the time; fires due deadlines: a keep-alive
    /// comment when the stream has been quiet for [`SseConfig::keep_alive`],
    /// the write timeout ([`SseEnd::WriteTimeout`]), the end of the linger.
    /// Then drain [`SseSession::poll_transmit`] and check
    /// [`SseSession::is_finished`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tell(now);
        if self.end.is_some() {
            return;
        }
        if self
            .stall
            .deadline(self.write_timeout)
            .is_some_and(|at| now >= at)
        {
            // There is no goodbye to send in an event stream, and the
            // client is not reading it anyway: drop the transport now.
            self.end = Some(SseEnd::WriteTimeout);
            self.linger_until = Some(now);
            return;
        }
        if now >= self.next_keep_alive {
            // Anything already queued keeps the stream busy by itself.
            if self.out.is_empty() && !self.stall.is_pending() {
                self.push(keep_alive());
            } else {
                self.next_keep_alive = now + self.keep_alive;
            }
        }
    }

    /// Reports one attempt to write to the transport: `wrote` is how many
    /// bytes it accepted, `pending` whether the driver still holds bytes
    /// from [`SseSession::poll_transmit`] it did not accept (the write
    /// returned "pending"). Call it after every write attempt, then check
    /// [`SseSession::is_finished`] and [`SseSession::poll_timeout`].
    /// Pending output without progress for [`SseConfig::write_timeout`]
    /// ends the stream; any progress restarts that clock.
    pub fn record_output(&mut self, now: Instant, wrote: usize, pending: bool) {
        self.tell(now);
        self.stall.record(now, wrote, pending);
    }

    // -------------------------------------------------------------- commands

    /// Queues one event, encoded now. For an event sent to many clients,
    /// encode it once with [`SseEvent::encode`] and use
    /// [`SseSession::send_bytes`] instead. Fails after the stream ended.
    pub fn send_event(&mut self, event: &SseEvent) -> Result<(), crate::UsageError> {
        self.send_bytes(event.encode())
    }

    /// Queues already-encoded event bytes (from [`SseEvent::encode`] or
    /// [`room_event_bytes`]), shared and never copied when large. Fails
    /// after the stream ended.
    pub fn send_bytes(&mut self, bytes: Bytes) -> Result<(), crate::UsageError> {
        if self.end.is_some() {
            return Err(crate::UsageError::SendAfterClose);
        }
        if !bytes.is_empty() {
            self.push(bytes);
        }
        Ok(())
    }

    /// Whether the driver should take the next event from its source (a
    /// room subscription): the stream runs and all earlier output was
    /// written. Waiting otherwise makes a slow client lag in the room,
    /// where the room's lag policy applies, instead of growing this queue.
    pub fn wants_event(&self) -> bool {
        self.end.is_none() && self.out.is_empty() && !self.stall.is_pending()
    }

    /// The server is shutting down: ends the stream with
    /// [`SseEnd::Shutdown`]. What is queued is still flushed, for at most
    /// [`SseConfig::linger`]; then [`SseSession::is_finished`].
    pub fn begin_shutdown(&mut self, now: Instant) {
        self.close(now, SseEnd::Shutdown);
    }

    /// Ends the stream on our side for `reason` (for example
    /// [`SseEnd::Evicted`] when [`room_event_bytes`] says so). Queued
    /// output is still flushed for at most [`SseConfig::linger`]; the
    /// first reason given stands. Nothing may be sent afterwards.
    pub fn close(&mut self, now: Instant, reason: SseEnd) {
        self.tell(now);
        if self.end.is_none() {
            self.end = Some(reason);
            self.linger_until = Some(crate::timer::linger_deadline(now, self.linger));
        }
    }

    // ---------------------------------------------------------------- output

    /// Moves queued output into `buf` and returns the next shared chunk, if
    /// any, like [`crate::Connection::poll_transmit`]: small pieces are
    /// copied into `buf`, a large one is returned to be written right after
    /// `buf`. Call repeatedly until `buf` stays empty and `None` is
    /// returned. Yields nothing once the client is gone.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Bytes> {
        while let Some(bytes) = self.out.pop_front() {
            self.out_bytes -= bytes.len();
            if bytes.len() > COALESCE_LIMIT {
                return Some(bytes);
            }
            buf.extend_from_slice(&bytes);
            if buf.len() >= COALESCE_BUDGET {
                break;
            }
        }
        if self.out.is_empty() && self.out.capacity() > 0 {
            // Quiet streams hold no buffers.
            self.out = VecDeque::new();
        }
        None
    }

    /// Whether there is output to drain.
    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty()
    }

    /// Bytes queued and not yet handed out by `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        self.out_bytes
    }

    // ---------------------------------------------------------------- status

    /// The next instant at which [`SseSession::handle_timeout`] must be
    /// called: the next keep-alive and the write-stall deadline while the
    /// stream runs; the end of the linger once it ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.end.is_some() {
            return self.linger_until;
        }
        crate::timer::earliest([
            Some(self.next_keep_alive),
            self.stall.deadline(self.write_timeout),
        ])
    }

    /// Whether the driver should shut the transport down and stop: the
    /// stream ended and either everything queued was written (nothing in
    /// the session, and the last [`SseSession::record_output`] said nothing
    /// pending) or the linger passed as of the latest time the session was
    /// told. Check it after every input.
    pub fn is_finished(&self) -> bool {
        self.end.is_some()
            && ((self.out.is_empty() && !self.stall.is_pending())
                || self
                    .linger_until
                    .is_some_and(|until| self.last_now >= until))
    }

    /// Why the stream ended, once it did (see [`SseEnd`]).
    pub fn end_reason(&self) -> Option<SseEnd> {
        self.end
    }

    fn push(&mut self, bytes: Bytes) {
        self.next_keep_alive = self.last_now + self.keep_alive;
        self.out_bytes += bytes.len();
        self.out.push_back(bytes);
    }

    fn tell(&mut self, now: Instant) {
        if now > self.last_now {
            self.last_now = now;
        }
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Why an event stream could not be parsed, or a response head not built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// A single line of the stream is longer than the parser's limit.
    #[error("event stream line exceeds the {limit}-byte limit")]
    LineTooLong {
        /// The configured limit ([`SseParser::with_limit`]).
        limit: usize,
    },
    /// One event's accumulated fields are larger than the parser's limit.
    #[error("event stream event exceeds the {limit}-byte limit")]
    EventTooLarge {
        /// The configured limit ([`SseParser::with_limit`]).
        limit: usize,
    },
    /// An extra response header has an invalid name or a value with CR, LF
    /// or NUL.
    #[error("invalid header {name:?} for the event-stream response")]
    InvalidHeader {
        /// The offending header name.
        name: String,
    },
}

/// Incremental parser for a `text/event-stream` body (client side).
///
/// Call [`SseParser::feed`] with each chunk read, then
/// [`SseParser::poll_event`] until it returns `Ok(None)`. Any split of the
/// input into chunks gives the same events. Memory is bounded: a line or an
/// event larger than the limit (default [`DEFAULT_MAX_EVENT_BYTES`]) is an
/// error, not unbounded buffering; events not yet polled are held in a queue,
/// so drain after every feed.
///
/// At the end of the body nothing more is dispatched: per the standard an
/// event without its terminating blank line is discarded.
#[derive(Clone, Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    expose_comments: bool,
    /// Bytes of a line whose end has not arrived yet.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a leading `\n` in the next chunk
    /// belongs to the same line break.
    skip_lf: bool,
    /// How many bytes of a leading BOM have matched; `None` once decided.
    bom_matched: Option<usize>,
    data: String,
    event_type: String,
    id_buffer: String,
    block_retry: Option<Duration>,
    last_event_id: String,
    retry: Option<Duration>,
    ready: VecDeque<SseEvent>,
    error: Option<SseError>,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new()
    }
}

impl SseParser {
    /// A parser with the default limit of [`DEFAULT_MAX_EVENT_BYTES`] and
    /// comments ignored.
    pub fn new() -> SseParser {
        SseParser::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A parser that fails with [`SseError::LineTooLong`] or
    /// [`SseError::EventTooLarge`] once a line or an event's fields exceed
    /// `max_event_bytes` bytes.
    pub fn with_limit(max_event_bytes: usize) -> SseParser {
        SseParser {
            max_event_bytes,
            expose_comments: false,
            line: Vec::new(),
            skip_lf: false,
            bom_matched: Some(0),
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            block_retry: None,
            last_event_id: String::new(),
            retry: None,
            ready: VecDeque::new(),
            error: None,
        }
    }

    /// Whether comment lines (`: text`) are reported by
    /// [`SseParser::poll_event`], each as an event with only
    /// [`SseEvent::comment`] set (one leading space removed). Off by default,
    /// as in `EventSource`.
    pub fn with_comments(mut self, expose: bool) -> SseParser {
        self.expose_comments = expose;
        self
    }

    /// Feeds the next chunk of the body. Then drain
    /// [`SseParser::poll_event`]. After an error, further input is ignored.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Some(mut matched) = self.bom_matched {
            // The BOM may itself be split across chunks.
            while let Some((&b, rest)) = bytes.split_first() {
                if b != BOM[matched] {
                    self.bom_matched = None;
                    // The bytes that looked like a BOM were ordinary input.
                    self.process(&BOM[..matched]);
                    break;
                }
                bytes = rest;
                matched += 1;
                if matched == BOM.len() {
                    self.bom_matched = None;
                    break;
                }
            }
            if self.bom_matched.is_some() {
                self.bom_matched = Some(matched);
                return;
            }
        }
        self.process(bytes);
    }

    /// The next complete event, in stream order. Returns `Ok(None)` when more
    /// input is needed. Events dispatched before an error are returned first;
    /// then the error is returned on every call, and the stream should be
    /// abandoned (a client may reconnect with [`SseParser::restart`]).
    pub fn poll_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        if let Some(event) = self.ready.pop_front() {
            if self.ready.is_empty() && self.ready.capacity() > 16 {
                // A burst of small events grew the queue: don't keep it.
                self.ready = VecDeque::new();
            }
            return Ok(Some(event));
        }
        match &self.error {
            Some(error) => Err(error.clone()),
            None => Ok(None),
        }
    }

    /// The stream's last event ID (empty if none was set), updated at the end
    /// of each event block. Send it as `Last-Event-ID` when reconnecting.
    /// Persists across events and [`SseParser::restart`].
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection delay the server last asked for with `retry:`, if
    /// any. Persists across events and [`SseParser::restart`].
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Prepares for a new response body after reconnecting: discards partial
    /// input, any pending error and undelivered events, and expects a BOM
    /// again; keeps [`SseParser::last_event_id`] and [`SseParser::retry`].
    pub fn restart(&mut self) {
        // Like browsers, the new stream's ID buffer starts from the last ID,
        // so an event without `id:` after reconnecting does not blank it.
        let last_event_id = std::mem::take(&mut self.last_event_id);
        *self = SseParser {
            id_buffer: last_event_id.clone(),
            last_event_id,
            retry: self.retry,
            expose_comments: self.expose_comments,
            ..SseParser::with_limit(self.max_event_bytes)
        };
    }

    fn process(&mut self, bytes: &[u8]) {
        let mut i = 0;
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                i = 1;
            }
        }
        while i < bytes.len() {
            if self.error.is_some() {
                return;
            }
            let rest = &bytes[i..];
            let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
                if self.line.len() + rest.len() > self.max_event_bytes {
                    self.fail(SseError::LineTooLong {
                        limit: self.max_event_bytes,
                    });
                    return;
                }
                self.line.extend_from_slice(rest);
                return;
            };
            if self.line.len() + end > self.max_event_bytes {
                self.fail(SseError::LineTooLong {
                    limit: self.max_event_bytes,
                });
                return;
            }
            if self.line.is_empty() {
                self.process_line(&rest[..end]);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..end]);
                self.process_line(&line);
                line.clear();
                // Keep a modest buffer for the next split line; drop a big one.
                if line.capacity() <= 8 * 1024 {
                    self.line = line;
                }
            }
            i += end + 1;
            if rest[end] == b'\r' {
                match rest.get(end + 1) {
                    Some(b'\n') => i += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
    }

    fn fail(&mut self, error: SseError) {
        self.error = Some(error);
        self.line = Vec::new();
        self.data = String::new();
        self.event_type = String::new();
    }

    fn process_line(&mut self, line: &[u8]) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"" if self.expose_comments => {
                let text = String::from_utf8_lossy(value);
                // Each invalid byte becomes a 3-byte U+FFFD, so a line within
                // the limit can decode to three times its size.
                if text.len() > self.max_event_bytes {
                    self.fail(SseError::EventTooLarge {
                        limit: self.max_event_bytes,
                    });
                    return;
                }
                self.ready.push_back(SseEvent::comment(text));
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.push_str(&String::from_utf8_lossy(value));
                self.check_event_size();
            }
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
                self.check_event_size();
            }
            b"id" if !value.contains(&0) => {
                let id = String::from_utf8_lossy(value);
                if id.len() > self.max_event_bytes {
                    self.fail(SseError::EventTooLarge {
                        limit: self.max_event_bytes,
                    });
                    return;
                }
                self.id_buffer.clear();
                self.id_buffer.push_str(&id);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // All digits, so the only failure is overflow: saturate.
                let ms = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(u64::MAX);
                let delay = Duration::from_millis(ms);
                self.retry = Some(delay);
                self.block_retry = Some(delay);
            }
            // Comments (when not exposed), invalid ids and retries, and
            // unknown fields are ignored.
            _ => {}
        }
    }

    fn check_event_size(&mut self) {
        if self.data.len() + self.event_type.len() > self.max_event_bytes {
            self.fail(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
    }

    fn dispatch(&mut self) {
        if self.last_event_id != self.id_buffer {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        let retry = self.block_retry.take();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        // Every data line appended '\n'; the last one is not part of the data.
        data.pop();
        let event_type = std::mem::take(&mut self.event_type);
        self.ready.push_back(SseEvent {
            event: (!event_type.is_empty()).then_some(event_type),
            data: Some(data),
            id: (!self.last_event_id.is_empty()).then(|| self.last_event_id.clone()),
            retry,
            comment: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_events_map_to_stream_bytes() {
        use crate::room::{RoomEvent, RoomMessage};
        use crate::{CloseCode, PreparedMessage};
        use std::sync::Arc;
        let text = RoomEvent::Message(Arc::new(RoomMessage::new(2, PreparedMessage::new("x"))));
        assert_eq!(
            room_event_bytes(&text).unwrap().unwrap(),
            &b"id: 2\ndata: x\n\n"[..]
        );
        let binary = RoomEvent::Message(Arc::new(RoomMessage::new(
            3,
            PreparedMessage::new(vec![1u8]),
        )));
        assert_eq!(room_event_bytes(&binary), Ok(None));
        assert_eq!(
            room_event_bytes(&RoomEvent::Lagged(5)).unwrap().unwrap(),
            &b": skipped 5\n\n"[..]
        );
        assert_eq!(
            room_event_bytes(&RoomEvent::Evicted(CloseCode::TRY_AGAIN_LATER)),
            Err(SseEnd::Evicted)
        );
    }

    fn parse_all(parser: &mut SseParser) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(event) = parser.poll_event().expect("stream within limits") {
            out.push(event);
        }
        out
    }

    fn parse(input: &[u8]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        parser.feed(input);
        parse_all(&mut parser)
    }

    fn parsed(data: &str, event: Option<&str>, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: Some(data.to_owned()),
            id: id.map(str::to_owned),
            retry: None,
            comment: None,
        }
    }

    #[test]
    fn encodes_multi_line_data() {
        let event = SseEvent::data("one\ntwo\r\nthree\rfour\n");
        assert_eq!(
            &event.encode()[..],
            b"data: one\ndata: two\ndata: three\ndata: four\ndata:\n\n"
        );
        assert_eq!(&SseEvent::data("").encode()[..], b"data:\n\n");
        assert_eq!(&SseEvent::data(" lead").encode()[..], b"data:  lead\n\n");
    }

    #[test]
    fn encodes_all_fields_in_order() {
        let event = SseEvent::data("hello")
            .event("greeting")
            .id("42")
            .retry(Duration::from_millis(1500));
        let mut out = b"prefix".to_vec();
        event.encode_to(&mut out);
        assert_eq!(
            out,
            b"prefixevent: greeting\nid: 42\nretry: 1500\ndata: hello\n\n"
        );
        assert_eq!(
            &SseEvent::data("x")
                .retry(Duration::from_micros(2999))
                .encode()[..],
            b"retry: 2\ndata: x\n\n"
        );
    }

    #[test]
    fn strips_line_breaks_and_nul_from_ids_and_names() {
        let event = SseEvent::data("x").id("a\r\nb\0c").event("ty\npe");
        assert_eq!(event.id.as_deref(), Some("abc"));
        assert_eq!(event.event.as_deref(), Some("type"));
        // Fields set directly are sanitised at encode time as well.
        let mut direct = SseEvent::data("x");
        direct.id = Some("1\n2\0".into());
        direct.event = Some("a\rb".into());
        assert_eq!(&direct.encode()[..], b"event: ab\nid: 12\ndata: x\n\n");
        // An empty id resets the client's last event id.
        assert_eq!(
            &SseEvent::data("x").id("").encode()[..],
            b"id:\ndata: x\n\n"
        );
    }

    #[test]
    fn encodes_comments_and_keep_alive() {
        assert_eq!(&SseEvent::comment("hi").encode()[..], b": hi\n\n");
        assert_eq!(&SseEvent::comment("a\nb").encode()[..], b": a\n: b\n\n");
        assert_eq!(&SseEvent::comment("").encode()[..], b":\n\n");
        assert_eq!(
            &SseEvent::comment("set")
                .retry(Duration::from_secs(3))
                .encode()[..],
            b": set\nretry: 3000\n\n"
        );
        assert_eq!(&keep_alive()[..], b":\n\n");
        assert!(parse(&keep_alive()).is_empty());
    }

    #[test]
    fn response_head_has_stream_headers_and_no_length() {
        let head = response_head(&[("Access-Control-Allow-Origin", "*")]).expect("valid");
        let text = String::from_utf8(head).expect("ascii");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("\r\nContent-Type: text/event-stream\r\n"));
        assert!(text.contains("\r\nCache-Control: no-cache\r\n"));
        assert!(text.contains("\r\nConnection: keep-alive\r\n"));
        assert!(text.ends_with("\r\nAccess-Control-Allow-Origin: *\r\n\r\n"));
        assert!(!text.to_ascii_lowercase().contains("content-length"));
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut headers);
        let status = response.parse(text.as_bytes()).expect("parses");
        assert!(status.is_complete());
        assert_eq!(response.code, Some(200));
    }

    #[test]
    fn response_head_rejects_header_injection() {
        assert_eq!(
            response_head(&[("X-A", "1\r\nSet-Cookie: x")]),
            Err(SseError::InvalidHeader { name: "X-A".into() })
        );
        assert!(response_head(&[("Bad Name", "1")]).is_err());
        assert!(response_head(&[("", "1")]).is_err());
    }

    #[test]
    fn spec_example_multi_line_data() {
        let events = parse(b"data: YHOO\ndata: +2\ndata: 10\n\n");
        assert_eq!(events, vec![parsed("YHOO\n+2\n10", None, None)]);
        assert_eq!(events[0].event_type(), "message");
    }

    #[test]
    fn spec_example_ids_and_comments() {
        let mut parser = SseParser::new();
        parser.feed(
            b": test stream\n\ndata: first event\nid: 1\n\n\
              data:second event\nid\n\ndata:  third event\n\n",
        );
        assert_eq!(
            parse_all(&mut parser),
            vec![
                parsed("first event", None, Some("1")),
                parsed("second event", None, None),
                parsed(" third event", None, None),
            ]
        );
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn spec_example_empty_data() {
        // The last block has no terminating blank line, so it is never
        // dispatched.
        let events = parse(b"data\n\ndata\ndata\n\ndata:");
        assert_eq!(
            events,
            vec![parsed("", None, None), parsed("\n", None, None)]
        );
    }

    #[test]
    fn spec_example_optional_space() {
        let events = parse(b"data:test\n\ndata: test\n\n");
        assert_eq!(
            events,
            vec![parsed("test", None, None), parsed("test", None, None)]
        );
    }

    #[test]
    fn event_types_and_unknown_fields() {
        let events = parse(b"event: add\ndata: 1\nfoo: bar\n\nevent:\ndata: 2\n\ndata: 3\n\n");
        assert_eq!(events[0].event_type(), "add");
        assert_eq!(events[1].event_type(), "message");
        assert_eq!(events[1].event, None);
        assert_eq!(events[2].event_type(), "message");
    }

    #[test]
    fn event_type_resets_after_undispatched_block() {
        let events = parse(b"event: x\n\ndata: y\n\n");
        assert_eq!(events, vec![parsed("y", None, None)]);
    }

    #[test]
    fn id_updates_without_data_and_nul_is_ignored() {
        let mut parser = SseParser::new();
        parser.feed(b"id: 7\n\n");
        assert!(parse_all(&mut parser).is_empty());
        assert_eq!(parser.last_event_id(), "7");
        parser.feed(b"id: a\0b\ndata: x\n\n");
        assert_eq!(parse_all(&mut parser), vec![parsed("x", None, Some("7"))]);
        // An id line in an unterminated block does not count yet.
        parser.feed(b"id: 8\ndata: y\n");
        assert_eq!(parser.last_event_id(), "7");
        parser.feed(b"\n");
        assert_eq!(parse_all(&mut parser), vec![parsed("y", None, Some("8"))]);
        assert_eq!(parser.last_event_id(), "8");
    }

    #[test]
    fn retry_needs_only_digits() {
        let mut parser = SseParser::new();
        parser.feed(b"retry: 1000\ndata: a\n\n");
        let events = parse_all(&mut parser);
        assert_eq!(events[0].retry, Some(Duration::from_secs(1)));
        parser.feed(b"retry: 12a\nretry: -5\nretry:\nretry: 1.5\ndata: b\n\n");
        let events = parse_all(&mut parser);
        assert_eq!(events[0].retry, None);
        assert_eq!(parser.retry(), Some(Duration::from_secs(1)));
        parser.feed(b"retry: 99999999999999999999999\n\n");
        assert!(parse_all(&mut parser).is_empty());
        assert_eq!(parser.retry(), Some(Duration::from_millis(u64::MAX)));
    }

    #[test]
    fn line_endings_mixed() {
        let events = parse(b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\rdata: e\n\n");
        assert_eq!(
            events,
            vec![
                parsed("a\nb\nc", None, None),
                parsed("d", None, None),
                parsed("e", None, None)
            ]
        );
    }

    #[test]
    fn cr_lf_straddling_chunks() {
        let mut parser = SseParser::new();
        parser.feed(b"data: a\r");
        parser.feed(b"\ndata: b\r");
        parser.feed(b"\r");
        assert_eq!(parse_all(&mut parser), vec![parsed("a\nb", None, None)]);
        // A lone '\r' at a chunk end followed by a non-'\n' byte.
        parser.feed(b"data: c\r");
        parser.feed(b"\r");
        parser.feed(b"");
        parser.feed(b"\n");
        assert_eq!(parse_all(&mut parser), vec![parsed("c", None, None)]);
    }

    #[test]
    fn bom_skipped_once() {
        let stream = b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n";
        assert_eq!(parse(stream), vec![parsed("a", None, None)]);
        let mut parser = SseParser::new();
        for b in stream {
            parser.feed(&[*b]);
        }
        assert_eq!(parse_all(&mut parser), vec![parsed("a", None, None)]);
        // A second BOM is part of the field name, so "\u{feff}data" is ignored.
        let events = parse(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n");
        assert_eq!(events, vec![parsed("b", None, None)]);
    }

    #[test]
    fn partial_bom_is_ordinary_input() {
        let mut parser = SseParser::new();
        parser.feed(b"\xEF\xBB");
        parser.feed(b"data: a\n\n");
        // "\u{FFFD}data" is not a known field: nothing dispatched.
        assert!(parse_all(&mut parser).is_empty());
        parser.feed(b"data: b\n\n");
        assert_eq!(parse_all(&mut parser), vec![parsed("b", None, None)]);
        assert_eq!(parse(b"\xEFdata: x\n\n:\n"), vec![]);
        assert_eq!(parse(b"\n\xEF"), vec![]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let events = parse(b"data: a\xFFb\xE2\x82\ndata: \xF0\x9F\x98\x80\n\n");
        assert_eq!(
            events,
            vec![parsed("a\u{FFFD}b\u{FFFD}\n\u{1F600}", None, None)]
        );
    }

    #[test]
    fn comments_exposed_on_request() {
        let mut parser = SseParser::new().with_comments(true);
        parser.feed(b": hello\n:world\ndata: x\n:\n\n");
        assert_eq!(
            parse_all(&mut parser),
            vec![
                SseEvent::comment("hello"),
                SseEvent::comment("world"),
                SseEvent::comment(""),
                parsed("x", None, None),
            ]
        );
    }

    #[test]
    fn line_limit() {
        let mut parser = SseParser::with_limit(16);
        parser.feed(b"data: 0123456789\n\ndata: 0123456789");
        parser.feed(b"abc");
        assert_eq!(
            parser.poll_event(),
            Ok(Some(parsed("0123456789", None, None)))
        );
        assert_eq!(
            parser.poll_event(),
            Err(SseError::LineTooLong { limit: 16 })
        );
        assert_eq!(
            parser.poll_event(),
            Err(SseError::LineTooLong { limit: 16 })
        );
        parser.feed(b"\n\ndata: more\n\n");
        assert!(parser.poll_event().is_err());
        // A complete line over the limit in one chunk.
        let mut parser = SseParser::with_limit(16);
        parser.feed(b"data: 01234567890123\n\n");
        assert_eq!(
            parser.poll_event(),
            Err(SseError::LineTooLong { limit: 16 })
        );
    }

    #[test]
    fn event_limit() {
        let mut parser = SseParser::with_limit(16);
        parser.feed(b"data: 12345\ndata: 12345\n");
        assert_eq!(parser.poll_event(), Ok(None));
        parser.feed(b"data: 12345\n");
        assert_eq!(
            parser.poll_event(),
            Err(SseError::EventTooLarge { limit: 16 })
        );
        assert_eq!(
            SseError::EventTooLarge { limit: 16 }.to_string(),
            "event stream event exceeds the 16-byte limit"
        );
    }

    #[test]
    fn invalid_utf8_cannot_stretch_a_field_past_the_limit() {
        // 10 invalid bytes fit a 16-byte line but decode to 30 bytes.
        for field in [&b":"[..], b"id:", b"data:", b"event:"] {
            let mut line = field.to_vec();
            line.extend_from_slice(&[0xFF; 10]);
            line.extend_from_slice(b"\n\n");
            let mut parser = SseParser::with_limit(16).with_comments(true);
            parser.feed(&line);
            assert_eq!(
                parser.poll_event(),
                Err(SseError::EventTooLarge { limit: 16 }),
                "{}",
                String::from_utf8_lossy(field)
            );
        }
        // Within the limit once decoded: accepted.
        let mut parser = SseParser::with_limit(16).with_comments(true);
        parser.feed(b"id:\xFF\xFF\ndata:\xFF\xFF\xFF\xFF\xFF\n: \xFF\n\n");
        assert_eq!(
            parse_all(&mut parser),
            vec![
                SseEvent::comment("\u{FFFD}"),
                parsed(&"\u{FFFD}".repeat(5), None, Some("\u{FFFD}\u{FFFD}")),
            ]
        );
    }

    #[test]
    fn restart_keeps_id_and_retry() {
        let mut parser = SseParser::with_limit(64);
        parser.feed(b"id: 5\nretry: 10\ndata: a\n\ndata: partial");
        assert_eq!(parse_all(&mut parser).len(), 1);
        parser.restart();
        parser.feed(b"\xEF\xBB\xBF\n\ndata: b\n\n");
        assert_eq!(parse_all(&mut parser), vec![parsed("b", None, Some("5"))]);
        assert_eq!(parser.retry(), Some(Duration::from_millis(10)));
    }

    fn sample_stream() -> (Vec<u8>, Vec<SseEvent>) {
        let input = b"\xEF\xBB\xBF: comment\r\nevent: a\r\ndata: 1\r\ndata:2\r\n\r\n\
                      id: x\rdata: \xE2\x82\xAC\r\rdata\n\n\
                      retry: 50\ndata:  3\nid\n\n";
        let mut third = parsed("", None, Some("x"));
        third.data = Some(String::new());
        let mut fourth = parsed(" 3", None, None);
        fourth.retry = Some(Duration::from_millis(50));
        let events = vec![
            parsed("1\n2", Some("a"), None),
            parsed("\u{20AC}", None, Some("x")),
            third,
            fourth,
        ];
        (input.to_vec(), events)
    }

    #[test]
    fn sample_stream_parses() {
        let (input, expected) = sample_stream();
        assert_eq!(parse(&input), expected);
    }

    #[test]
    fn chunking_invariance_every_split() {
        let (input, expected) = sample_stream();
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let mut parser = SseParser::new();
                parser.feed(&input[..a]);
                let mut events = parse_all(&mut parser);
                parser.feed(&input[a..b]);
                events.extend(parse_all(&mut parser));
                parser.feed(&input[b..]);
                events.extend(parse_all(&mut parser));
                assert_eq!(events, expected, "split at {a} and {b}");
            }
        }
    }

    #[test]
    fn chunking_invariance_byte_by_byte() {
        let (input, expected) = sample_stream();
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for b in &input {
            parser.feed(std::slice::from_ref(b));
            events.extend(parse_all(&mut parser));
        }
        assert_eq!(events, expected);
    }

    #[test]
    fn round_trip() {
        let sent = vec![
            SseEvent::data("plain"),
            SseEvent::data("multi\nline\r\ntext\r")
                .event("update")
                .id("1"),
            SseEvent::data("").retry(Duration::from_millis(250)),
            SseEvent::comment("not dispatched"),
            SseEvent::data("  spaced: colon ").event(" odd name").id(""),
            SseEvent::data("\u{1F600}\n\n"),
        ];
        let mut wire = Vec::new();
        for event in &sent {
            event.encode_to(&mut wire);
        }
        let got = parse(&wire);
        let mut expected = vec![
            parsed("plain", None, None),
            parsed("multi\nline\ntext\n", Some("update"), Some("1")),
            parsed("", None, Some("1")),
            parsed("  spaced: colon ", Some(" odd name"), None),
            parsed("\u{1F600}\n\n", None, None),
        ];
        expected[2].retry = Some(Duration::from_millis(250));
        assert_eq!(got, expected);
    }
}

#[cfg(test)]
mod session_tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn drain(session: &mut SseSession) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let mut buf = Vec::new();
            let chunk = session.poll_transmit(&mut buf);
            all.extend_from_slice(&buf);
            match chunk {
                Some(c) => all.extend_from_slice(&c),
                None if buf.is_empty() => return all,
                None => {}
            }
        }
    }

    fn request(head: &[u8]) -> crate::handshake::Request {
        let t0 = Instant::now();
        let mut hs = crate::ServerHandshake::new(&crate::Config::default(), t0);
        hs.receive(t0, head)
            .expect("valid request")
            .expect("complete head")
    }

    fn config() -> SseConfig {
        SseConfig::default()
            .with_keep_alive(15 * S)
            .with_write_timeout(30 * S)
            .with_linger(5 * S)
    }

    #[test]
    fn keep_alive_after_a_quiet_interval_only() {
        let t0 = Instant::now();
        let mut s = SseSession::new(&config(), t0);
        assert_eq!(s.poll_timeout(), Some(t0 + 15 * S));
        s.handle_timeout(t0 + 14 * S);
        assert!(!s.has_transmit());
        s.handle_timeout(t0 + 15 * S);
        assert_eq!(drain(&mut s), b":\n\n");
        s.record_output(t0 + 15 * S, 3, false);
        assert_eq!(s.poll_timeout(), Some(t0 + 30 * S));
        // An event restarts the quiet interval.
        s.handle_timeout(t0 + 20 * S);
        s.send_event(&SseEvent::data("hi")).unwrap();
        assert_eq!(drain(&mut s), b"data: hi\n\n");
        s.record_output(t0 + 20 * S, 10, false);
        assert_eq!(s.poll_timeout(), Some(t0 + 35 * S));
        s.handle_timeout(t0 + 30 * S);
        assert!(!s.has_transmit());
        assert_eq!(s.end_reason(), None);
        assert!(!s.is_finished());
    }

    #[test]
    fn accept_queues_the_head_or_refuses_a_body() {
        let t0 = Instant::now();
        let get = request(b"GET /events HTTP/1.1\r\nHost: h\r\nLast-Event-ID: 7\r\n\r\n");
        assert_eq!(get.last_event_id(), Some("7"));
        let mut s = SseSession::accept(&config(), &get, t0).expect("no body");
        let out = drain(&mut s);
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(out.ends_with(b"\r\n\r\n"));
        let with_body = request(b"POST /events HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n");
        let refused = SseSession::accept(&config(), &with_body, t0).unwrap_err();
        assert_eq!(refused.status(), 413);
    }

    #[test]
    fn stalled_client_is_dropped_after_the_write_timeout() {
        let t0 = Instant::now();
        let mut s = SseSession::new(&config(), t0);
        s.send_event(&SseEvent::data("x")).unwrap();
        drain(&mut s);
        s.record_output(t0, 0, true);
        assert!(!s.wants_event());
        // The keep-alive would come first, but pending output is not quiet.
        s.handle_timeout(t0 + 15 * S);
        assert!(!s.has_transmit());
        assert_eq!(s.poll_timeout(), Some(t0 + 30 * S));
        // Progress restarts the clock.
        s.record_output(t0 + 20 * S, 1, true);
        s.handle_timeout(t0 + 30 * S);
        assert_eq!(s.end_reason(), None);
        // The next keep-alive check, then the stall deadline.
        assert_eq!(s.poll_timeout(), Some(t0 + 45 * S));
        s.handle_timeout(t0 + 45 * S);
        assert!(!s.has_transmit());
        assert_eq!(s.poll_timeout(), Some(t0 + 50 * S));
        s.handle_timeout(t0 + 50 * S - Duration::from_millis(1));
        assert_eq!(s.end_reason(), None);
        s.handle_timeout(t0 + 50 * S);
        assert_eq!(s.end_reason(), Some(SseEnd::WriteTimeout));
        assert!(s.is_finished());
        assert_eq!(
            s.send_event(&SseEvent::data("late")),
            Err(crate::UsageError::SendAfterClose)
        );
    }

    #[test]
    fn shutdown_flushes_then_lingers_at_most() {
        let t0 = Instant::now();
        let mut s = SseSession::new(&config(), t0);
        s.send_event(&SseEvent::data("last")).unwrap();
        s.begin_shutdown(t0);
        assert_eq!(s.end_reason(), Some(SseEnd::Shutdown));
        assert!(!s.wants_read() && !s.wants_event());
        assert!(!s.is_finished(), "the last event is still queued");
        assert_eq!(drain(&mut s), b"data: last\n\n");
        s.record_output(t0, 4, true);
        assert!(!s.is_finished());
        assert_eq!(s.poll_timeout(), Some(t0 + 5 * S));
        s.handle_timeout(t0 + 5 * S - Duration::from_millis(1));
        assert!(!s.is_finished());
        s.handle_timeout(t0 + 5 * S);
        assert!(s.is_finished());

        // Written in full before the linger: finished at once.
        let mut s = SseSession::new(&config(), t0);
        s.send_event(&SseEvent::data("last")).unwrap();
        s.close(t0, SseEnd::Evicted);
        s.begin_shutdown(t0);
        assert_eq!(
            s.end_reason(),
            Some(SseEnd::Evicted),
            "the first reason stands"
        );
        drain(&mut s);
        s.record_output(t0, 12, false);
        assert!(s.is_finished());
    }

    #[test]
    fn client_gone_ends_at_once() {
        let t0 = Instant::now();
        let mut s = SseSession::new(&config(), t0);
        assert!(s.wants_read());
        s.receive(t0, b"ignored");
        assert_eq!(s.end_reason(), None);
        s.send_event(&SseEvent::data("unsent")).unwrap();
        s.receive_eof(t0 + S);
        assert_eq!(s.end_reason(), Some(SseEnd::Disconnected));
        assert!(s.is_finished());
        assert!(drain(&mut s).is_empty());
    }

    #[test]
    fn large_shared_events_are_not_copied() {
        let t0 = Instant::now();
        let mut s = SseSession::new(&config(), t0);
        let big = SseEvent::data("x".repeat(10_000)).encode();
        s.send_event(&SseEvent::data("small")).unwrap();
        s.send_bytes(big.clone()).unwrap();
        assert_eq!(s.queued_bytes(), big.len() + b"data: small\n\n".len());
        let mut buf = Vec::new();
        let chunk = s
            .poll_transmit(&mut buf)
            .expect("the large event on its own");
        assert_eq!(buf, b"data: small\n\n");
        assert_eq!(chunk.as_ptr(), big.as_ptr());
        assert_eq!(s.queued_bytes(), 0);
    }
}
