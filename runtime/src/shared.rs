//! A [`Connection`] shared between an adapter's I/O driver and the
//! application's handles: the core behind a lock, plus wakers.
//!
//! This is what every runtime adapter would otherwise write again: when a
//! handle may take a message, when a sender must wait for the write limit,
//! when a close has finished, and whom to wake after the driver fed input or
//! wrote output. It does no I/O, reads no clock and spawns nothing; its
//! `poll_*` methods take a [`Context`] only to store wakers.
//!
//! The driver calls [`Shared::driver`] at the start of every poll, which
//! registers its waker and gives it the locked [`DriverState`]. Handles call
//! the other methods; each wakes the driver when it queued something.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;

use crate::attach::Tasks;
use crate::registry::{Publisher, Registration};
use wavecast_core::room::{Cursor, MemberEnd, RoomEvent, LAG_CLOSE_REASON};
use wavecast_core::{
    Chunk, CloseCode, CloseFrame, Connection, Error, Event, Message, Outcome, PreparedMessage,
    TrySendError, UsageError,
};

/// Locks `m`. A panic while locked leaves nothing half-done that matters
/// more than the panic itself, so a poisoned lock is taken over.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The core plus the wakers of whoever waits on it. Hold it in an `Arc`.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Futures run by the driver (see [`crate::attach`]).
    pub(crate) tasks: Mutex<Tasks>,
    /// The runtime's clock (a paused test clock included).
    clock: fn() -> Instant,
    /// Unused bytes that size the `Arc` allocation; see [`FIT`].
    _fit: [u8; FIT],
}

/// Pads `Arc<Shared>` so that its allocation ends where a 128-byte aligned
/// block can start.
///
/// tokio aligns every task cell to 128 bytes (x86_64, aarch64), and a
/// server connection's driver task is spawned right after its
/// `Arc<Shared>` is allocated, so the two usually sit next to each other
/// in the heap. With glibc's malloc (an 8-byte chunk header, 16-byte
/// granularity, allocations after a 128-aligned cell starting 16 bytes
/// past the boundary) a chunk that is 112 bytes past a multiple of 128 lets
/// the task cell start right after it; any other size leaves up to 144
/// bytes between them unused. Measured on the echo bench at 10,000 idle
/// connections: a 608-byte chunk (no padding) cost about 90 bytes per
/// connection more than a 624-byte one. Other allocators round both sizes
/// to the same class.
const FIT: usize = {
    // ArcInner: two counters, then the fields (all 8-byte aligned, so no
    // padding between them).
    let unpadded = 2 * size_of::<usize>()
        + size_of::<Mutex<State>>()
        + size_of::<Mutex<Tasks>>()
        + size_of::<fn() -> Instant>();
    let chunk = (unpadded + 8).next_multiple_of(16);
    // The arithmetic above is glibc's on 64-bit targets.
    if cfg!(target_pointer_width = "64") {
        (112 + 128 - chunk % 128) % 128
    } else {
        0
    }
};

#[derive(Debug)]
struct State {
    conn: Connection,
    driver: Option<Waker>,
    receiver: Option<Waker>,
    /// Tasks waiting to send or flush (`false`), or only for the connection
    /// to stop sending or end (`true`: not woken by every flush).
    writers: Vec<(Waker, bool)>,
    receiver_alive: bool,
    receiver_finished: bool,
    senders: usize,
    io_error: Option<Arc<io::Error>>,
    done: bool,
    /// Bytes the driver staged and has not written yet (saturating).
    unflushed: u32,
}

impl State {
    fn wake_driver(&mut self) {
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    fn wake_receiver(&mut self) {
        if let Some(w) = self.receiver.take() {
            w.wake();
        }
    }

    /// Wakes every waiting sender, flusher and closer.
    fn wake_writers(&mut self) {
        for (w, _) in self.writers.drain(..) {
            w.wake();
        }
        if self.writers.capacity() > 0 {
            self.writers = Vec::new();
        }
    }

    /// After a write: wakes senders and flushers; those waiting only for
    /// the connection to close stay asleep while it is still open (a room
    /// member would otherwise wake after every message it delivered).
    fn wake_after_write(&mut self) {
        if self.done || !self.conn.is_open() || self.conn.outcome().is_some() {
            self.wake_writers();
            return;
        }
        self.writers.retain(|(w, closing_only)| {
            if !closing_only {
                w.wake_by_ref();
            }
            *closing_only
        });
        if self.writers.is_empty() && self.writers.capacity() > 0 {
            self.writers = Vec::new();
        }
    }

    fn register_writer(&mut self, waker: &Waker) {
        self.register(waker, false);
    }

    fn register_closer(&mut self, waker: &Waker) {
        self.register(waker, true);
    }

    fn register(&mut self, waker: &Waker, closing_only: bool) {
        match self.writers.iter_mut().find(|(w, _)| w.will_wake(waker)) {
            Some((_, only)) => *only &= closing_only,
            None => self.writers.push((waker.clone(), closing_only)),
        }
    }

    fn terminal_error(&self) -> Option<Error> {
        if let Some(e) = &self.io_error {
            return Some(Error::Io(e.clone()));
        }
        // A connection the peer made fail (a write stall, a protocol error)
        // reports that failure, also while its close frame still lingers.
        if let Some(Outcome::Failed(e)) = self.conn.outcome() {
            return Some(e.clone().into());
        }
        if self.done {
            return match self.conn.outcome() {
                Some(Outcome::Failed(e)) => Some(e.clone().into()),
                Some(_) => Some(Error::Usage(UsageError::SendAfterClose)),
                None => Some(Error::Eof),
            };
        }
        None
    }

    fn is_flushed(&self) -> bool {
        self.unflushed == 0 && !self.conn.has_transmit()
    }

    /// Wakes the driver if the application's call changed what it must do.
    fn after_command(&mut self) {
        self.wake_driver();
    }
}

impl Shared {
    /// Shares `conn`, with one sending and one receiving handle counted.
    #[cfg(test)]
    pub(crate) fn new(conn: Connection) -> Arc<Shared> {
        Shared::with_clock(conn, Instant::now)
    }

    /// Shares `conn`; handles read the time from `clock`.
    pub(crate) fn with_clock(conn: Connection, clock: fn() -> Instant) -> Arc<Shared> {
        Arc::new(Shared {
            clock,
            _fit: [0; FIT],
            state: Mutex::new(State {
                conn,
                driver: None,
                receiver: None,
                writers: Vec::new(),
                receiver_alive: true,
                receiver_finished: false,
                senders: 1,
                io_error: None,
                done: false,
                unflushed: 0,
            }),
            tasks: Mutex::default(),
        })
    }

    /// The current time on the runtime's clock.
    pub(crate) fn now(&self) -> Instant {
        (self.clock)()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    // ---------------------------------------------------------- receiving

    /// Takes the next message. `Ready(None)` after a clean close (the peer's
    /// frame is in [`Shared::close_frame`]); `Ready(Some(Err(..)))` once,
    /// as the last item, when the connection failed. Cancel-safe: a message
    /// leaves the core only in the poll that returns it.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        self.poll_event(cx).map(|item| {
            item.map(|r| {
                r.and_then(|chunk| match chunk {
                    Chunk {
                        data,
                        first: true,
                        last: true,
                    } => Ok(data),
                    // A piece of a streamed message cannot pass for a whole one.
                    _ => Err(Error::Usage(UsageError::Streaming)),
                })
            })
        })
    }

    /// Takes the next piece of a message: a whole message is one chunk,
    /// first and last. Same contract as [`Shared::poll_recv`].
    pub(crate) fn poll_recv_chunk(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Chunk, Error>>> {
        self.poll_event(cx)
    }

    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk, Error>>> {
        let mut s = self.lock();
        if s.receiver_finished {
            return Poll::Ready(None);
        }
        loop {
            let was_paused = !s.conn.wants_read();
            let event = s.conn.poll_event();
            if event.is_some()
                && (s.conn.has_transmit()
                    || (was_paused && s.conn.wants_read())
                    || s.conn.is_closed())
            {
                s.wake_driver();
            }
            match event {
                Some(Event::Message(m)) => return Poll::Ready(Some(Ok(Chunk::whole(m)))),
                Some(Event::Chunk(c)) => return Poll::Ready(Some(Ok(c))),
                Some(Event::Close(_)) => {
                    s.receiver_finished = true;
                    s.wake_writers();
                    return Poll::Ready(None);
                }
                Some(Event::Error(e)) => {
                    s.receiver_finished = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Some(_) => continue,
                None => {}
            }
            if s.done || s.conn.is_closed() {
                s.receiver_finished = true;
                if let Some(e) = &s.io_error {
                    return Poll::Ready(Some(Err(Error::Io(e.clone()))));
                }
                return Poll::Ready(match s.conn.outcome() {
                    Some(Outcome::Failed(e)) => Some(Err(e.clone().into())),
                    Some(_) => None,
                    None => Some(Err(Error::Eof)),
                });
            }
            match &s.receiver {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.receiver = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
    }

    /// Switches streaming ([`Connection::set_streaming`]).
    pub(crate) fn set_streaming(&self, on: bool) {
        self.lock().conn.set_streaming(on);
    }

    /// Drops the rest of the streamed message being read
    /// ([`Connection::skip_message`]).
    pub(crate) fn skip_message(&self) {
        let mut s = self.lock();
        let was_paused = !s.conn.wants_read();
        s.conn.skip_message();
        if was_paused && s.conn.wants_read() {
            s.wake_driver();
        }
    }

    /// The peer's close frame, once it arrived.
    pub(crate) fn close_frame(&self) -> Option<CloseFrame> {
        self.lock().conn.close_received().cloned()
    }

    /// The receiving handle is gone: switch to discard mode (data dropped
    /// and counted, control frames still handled, so heartbeats go on).
    pub(crate) fn drop_receiver(&self) {
        let mut s = self.lock();
        s.receiver_alive = false;
        s.receiver = None;
        s.conn.set_discard(true);
        s.wake_driver();
    }

    // ------------------------------------------------------------ sending

    /// Ready when a message may be queued: queued output is under the write
    /// limit. Fails once the connection can no longer send.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut s = self.lock();
        if let Some(e) = s.terminal_error() {
            return Poll::Ready(Err(e));
        }
        if !s.conn.is_open() {
            return Poll::Ready(Err(Error::Usage(UsageError::SendAfterClose)));
        }
        if s.conn.is_write_blocked() {
            s.register_writer(cx.waker());
            s.wake_driver();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// Ready when the next chunk of a message going out in chunks may be
    /// queued (whole messages waiting behind it do not count).
    pub(crate) fn poll_chunk_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut s = self.lock();
        if let Some(e) = s.terminal_error() {
            return Poll::Ready(Err(e));
        }
        if !s.conn.is_open() {
            return Poll::Ready(Err(Error::Usage(UsageError::SendAfterClose)));
        }
        if s.conn.is_chunk_blocked() {
            s.register_writer(cx.waker());
            s.wake_driver();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// Queues one chunk of a message sent in chunks (after
    /// [`Shared::poll_chunk_ready`]).
    pub(crate) fn send_chunk(&self, data: Message, last: bool) -> Result<(), Error> {
        let mut s = self.lock();
        if let Some(e) = s.terminal_error() {
            return Err(e);
        }
        s.conn.send_chunk(data, last)?;
        if last {
            // Whole messages that waited behind it are queued now.
            s.wake_writers();
        }
        s.after_command();
        Ok(())
    }

    /// A message going out in chunks cannot be finished (its source failed
    /// or its sender gave up): the peer cannot be told which bytes were
    /// meant, so the connection closes with 1011 and `reason`.
    pub(crate) fn abandon_chunks(&self, reason: &str) {
        let now = self.now();
        let mut s = self.lock();
        if s.conn.is_sending_chunks() && s.conn.is_open() && !s.done {
            let _ = s.conn.close(now, CloseCode::INTERNAL_ERROR, reason);
            s.after_command();
            s.wake_writers();
        }
    }

    /// Ready when a room member may take a message: less than
    /// `member_queue` bytes unwritten. Otherwise waits for the flush.
    fn poll_member_room(
        &self,
        cx: &mut Context<'_>,
        member_queue: usize,
    ) -> Poll<Result<(), Error>> {
        let mut s = self.lock();
        if let Some(e) = s.terminal_error() {
            return Poll::Ready(Err(e));
        }
        if !s.conn.is_open() {
            return Poll::Ready(Err(Error::Usage(UsageError::SendAfterClose)));
        }
        if s.conn.queued_bytes() + s.unflushed as usize >= member_queue {
            s.register_writer(cx.waker());
            s.wake_driver();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// Queues a message whole (after [`Shared::poll_ready`]).
    pub(crate) fn send(&self, message: Message) -> Result<(), Error> {
        let mut s = self.lock();
        if let Some(e) = s.terminal_error() {
            return Err(e);
        }
        s.conn.send(message)?;
        s.after_command();
        Ok(())
    }

    /// Queues a message now, or hands it back when the write buffer is full.
    pub(crate) fn try_send(&self, message: Message) -> Result<(), TrySendError> {
        let mut s = self.lock();
        if let Some(e) = s.terminal_error() {
            return Err(TrySendError::Closed(e));
        }
        if s.conn.is_write_blocked() {
            s.wake_driver();
            return Err(TrySendError::Full(message));
        }
        s.conn
            .send(message)
            .map_err(|e| TrySendError::Closed(e.into()))?;
        s.after_command();
        Ok(())
    }

    /// Queues a prepared (broadcast) message.
    pub(crate) fn send_prepared(&self, prepared: &PreparedMessage) -> Result<(), Error> {
        let mut s = self.lock();
        if let Some(e) = s.terminal_error() {
            return Err(e);
        }
        s.conn.send_prepared(prepared)?;
        s.after_command();
        Ok(())
    }

    /// Queues a ping.
    pub(crate) fn send_ping(&self, payload: Bytes) -> Result<(), Error> {
        let mut s = self.lock();
        if let Some(e) = s.terminal_error() {
            return Err(e);
        }
        s.conn.send_ping(payload)?;
        s.after_command();
        Ok(())
    }

    /// Ready once everything queued has been written to the transport (or
    /// the connection ended).
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut s = self.lock();
        if s.is_flushed() || s.done {
            return match (&s.io_error, s.done) {
                (Some(e), _) => Poll::Ready(Err(Error::Io(e.clone()))),
                _ => Poll::Ready(Ok(())),
            };
        }
        s.register_writer(cx.waker());
        s.wake_driver();
        Poll::Pending
    }

    /// Starts the close handshake (if it has not started) after checking the
    /// arguments; then wait with [`Shared::poll_closed`].
    pub(crate) fn close(&self, now: Instant, code: CloseCode, reason: &str) -> Result<(), Error> {
        let mut s = self.lock();
        CloseFrame::new(code, reason)?;
        if s.conn.is_open() && !s.done {
            s.conn.close(now, code, reason)?;
            s.after_command();
            // Tasks waiting for the connection to stop sending move on.
            s.wake_writers();
        }
        Ok(())
    }

    /// Ready when the close handshake has ended: with the clean outcome, or
    /// the failure (timeout, reset).
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<Result<Outcome, Error>> {
        let mut s = self.lock();
        let clean = matches!(s.conn.outcome(), Some(Outcome::Clean { .. }));
        if !(s.done || clean) {
            s.register_closer(cx.waker());
            return Poll::Pending;
        }
        if let Some(outcome) = s.conn.outcome() {
            return Poll::Ready(Ok(outcome.clone()));
        }
        Poll::Ready(Err(match &s.io_error {
            Some(e) => Error::Io(e.clone()),
            None => Error::Eof,
        }))
    }

    /// Ready once the driver has stopped: the close handshake is over (or
    /// the connection failed) and the transport has been shut.
    pub(crate) fn poll_finished(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.done {
            return Poll::Ready(());
        }
        s.register_closer(cx.waker());
        Poll::Pending
    }

    /// Ready once the connection can no longer send (closing, closed or
    /// failed); for tasks that feed a connection until it goes away.
    pub(crate) fn poll_send_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.done || !s.conn.is_open() {
            return Poll::Ready(());
        }
        s.register_closer(cx.waker());
        Poll::Pending
    }

    /// Another sending handle exists.
    pub(crate) fn add_sender(&self) {
        self.lock().senders += 1;
    }

    /// A sending handle is gone; when none remain and the receiver is gone
    /// too, the driver closes the connection (1001).
    pub(crate) fn drop_sender(&self) {
        let mut s = self.lock();
        s.senders -= 1;
        if s.senders == 0 {
            s.wake_driver();
        }
    }

    /// Closes a room member that fell behind its room with `code` (`1013`)
    /// and [`LAG_CLOSE_REASON`]. Its socket is stalled, so this queues the
    /// close frame and returns without waiting for the peer's answer (the
    /// close timeout bounds the handshake).
    pub(crate) fn evict(&self, now: Instant, code: CloseCode) -> MemberEnd {
        let _ = self.close(now, code, LAG_CLOSE_REASON);
        MemberEnd::Evicted(code)
    }

    // ------------------------------------------------------- room members
    //
    // A member's loop, on every runtime: wait with `poll_member_ready`,
    // take the next event from the room's channel (or stop once
    // `poll_send_closed` is ready), hand it to `deliver`; when either says
    // stop, `end_member`.

    /// A room member may take the room's next message once this is ready
    /// with `Ok`: its connection holds less than `member_queue` bytes of
    /// unwritten output (queued in the core or staged by the driver); past
    /// that it waits until the driver has written everything. `Err(None)`:
    /// the connection can no longer send. `Err(Some(code))`: under
    /// [`LagPolicy::Disconnect`](crate::room::LagPolicy::Disconnect) the
    /// room overwrote a message the member had not taken while it waited
    /// (its socket is stalled), so it must be evicted now.
    pub(crate) fn poll_member_ready(
        &self,
        cx: &mut Context<'_>,
        member_queue: usize,
        cursor: &mut Cursor,
        publisher: &Publisher,
        registration: &mut Registration,
    ) -> Poll<Result<(), Option<CloseCode>>> {
        loop {
            let seen = publisher.published();
            if let Some(code) = cursor.check_overflow(seen) {
                return Poll::Ready(Err(Some(code)));
            }
            if let Poll::Ready(ready) = self.poll_member_room(cx, member_queue) {
                return Poll::Ready(ready.map_err(|_| None));
            }
            // Waiting for the socket. Under `Disconnect` a publish may
            // overflow the room and evict the member; otherwise publishes
            // do not concern it (thousands of stalled members would all be
            // woken by each one).
            if !cursor.watches_overflow() {
                return Poll::Pending;
            }
            if publisher
                .poll_published(cx, seen, registration)
                .is_pending()
            {
                return Poll::Pending;
            }
        }
    }

    /// Hands a member's next room event to the connection (after
    /// [`Shared::poll_member_ready`]): queues a message, counts lost ones
    /// in `skipped`. `Err` as for `poll_member_ready`.
    pub(crate) fn deliver(
        &self,
        event: RoomEvent,
        skipped: &AtomicU64,
    ) -> Result<(), Option<CloseCode>> {
        match event {
            RoomEvent::Message(message) => self.send_prepared(message.prepared()).map_err(|_| None),
            RoomEvent::Lagged(n) => {
                skipped.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            RoomEvent::Evicted(code) => Err(Some(code)),
            // Events added later carry nothing to deliver.
            _ => Ok(()),
        }
    }

    /// A member stopped for `why` (from [`Shared::poll_member_ready`],
    /// [`Shared::deliver`], or `None` once the connection cannot send):
    /// evicts it when `why` carries a code, and says how it ended.
    pub(crate) fn end_member(&self, now: Instant, why: Option<CloseCode>) -> MemberEnd {
        match why {
            Some(code) => self.evict(now, code),
            None => MemberEnd::Closed,
        }
    }

    /// Whether the connection still accepts messages.
    pub(crate) fn is_open(&self) -> bool {
        let s = self.lock();
        s.conn.is_open() && !s.done
    }

    /// The negotiated subprotocol.
    pub(crate) fn subprotocol(&self) -> Option<String> {
        self.lock().conn.subprotocol().map(str::to_owned)
    }

    /// Output not yet written: queued in the core or staged by the driver.
    pub(crate) fn unwritten(&self) -> usize {
        let s = self.lock();
        s.conn.queued_bytes() + s.unflushed as usize
    }

    // ------------------------------------------------------------- driver

    /// Forgets the driver's waker until [`Shared::driver`] registers it
    /// again (while the driver runs attached futures).
    pub(crate) fn forget_driver_waker(&self) {
        self.lock().driver = None;
    }

    /// Locks the state for the driver and registers its waker. Call at the
    /// start of every driver poll; the guard must not be held across an
    /// await.
    pub(crate) fn driver(&self, waker: &Waker, now: Instant) -> DriverState<'_> {
        let mut s = self.lock();
        match &s.driver {
            Some(w) if w.will_wake(waker) => {}
            _ => s.driver = Some(waker.clone()),
        }
        if s.senders == 0 && !s.receiver_alive && s.conn.is_open() {
            // Every handle is gone: say goodbye instead of lingering.
            let _ = s.conn.close(now, CloseCode::GOING_AWAY, "");
        }
        DriverState { s }
    }
}

/// The driver's view of a [`Shared`] connection while it polls its I/O.
#[derive(Debug)]
pub(crate) struct DriverState<'a> {
    s: MutexGuard<'a, State>,
}

impl DriverState<'_> {
    /// The core, to feed input and take output.
    pub(crate) fn conn(&mut self) -> &mut Connection {
        &mut self.s.conn
    }

    /// Call after `receive`, `receive_eof` or `handle_timeout`: hands new
    /// events to the receiver (or drops them in discard mode) and wakes a
    /// waiting `close`.
    pub(crate) fn after_input(&mut self) {
        let s = &mut *self.s;
        if !s.receiver_alive {
            while s.conn.poll_event().is_some() {}
        } else if s.conn.has_events() {
            s.wake_receiver();
        }
        if s.conn.outcome().is_some() {
            s.wake_writers();
        }
    }

    /// Call after writing: `was_blocked` is `is_write_blocked()` from before
    /// the write, `unflushed` how many bytes the driver still holds unwritten.
    /// Wakes senders waiting for room and flushers waiting for the wire.
    pub(crate) fn after_write(&mut self, was_blocked: bool, unflushed: usize) {
        let s = &mut *self.s;
        s.unflushed = u32::try_from(unflushed).unwrap_or(u32::MAX);
        if (was_blocked && !s.conn.is_write_blocked()) || s.is_flushed() {
            s.wake_after_write();
        }
    }

    /// The driver stops: records an I/O error (unless the connection had
    /// already ended) and wakes everyone.
    pub(crate) fn finish(&mut self, error: Option<io::Error>) {
        let s = &mut *self.s;
        if let Some(e) = error {
            if !s.conn.is_closed() {
                s.io_error = Some(Arc::new(e));
            }
        }
        s.done = true;
        s.unflushed = 0;
        s.wake_receiver();
        s.wake_writers();
    }

    /// Wakes the receiver if events are waiting (after the core closed).
    pub(crate) fn wake_receiver_if_events(&mut self) {
        if self.s.conn.has_events() {
            self.s.wake_receiver();
        }
    }
}

/// The connections a server accepted, for graceful shutdown: a registry of
/// weak [`Shared`] references that closes them all with `1001 Going Away`,
/// and a flag that SSE streams and handlers watch through a [`Watch`].
/// Cloning is cheap; clones share the registry.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tracker {
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    conns: Mutex<(Vec<Weak<Shared>>, usize)>,
    shutting_down: AtomicBool,
    watchers: Mutex<Watchers>,
}

/// One waker slot per live [`Watch`]; a dropped watch frees its slot, so
/// what is held is bounded by the watches alive, not by those ever made.
#[derive(Debug, Default)]
struct Watchers {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

/// A watcher of one [`Tracker`]'s shutdown flag, for one task. Polling it
/// costs O(1); dropping it releases its waker.
#[derive(Debug)]
pub(crate) struct Watch {
    tracker: Tracker,
    slot: usize,
}

impl Tracker {
    /// An empty registry.
    pub(crate) fn new() -> Tracker {
        Tracker::default()
    }

    /// Registers an accepted connection. During shutdown it is closed at
    /// once.
    pub(crate) fn track(&self, shared: &Arc<Shared>, now: Instant) {
        let mut guard = lock(&self.inner.conns);
        let (conns, prune_at) = &mut *guard;
        if conns.len() >= *prune_at {
            conns.retain(|w| w.strong_count() > 0);
            *prune_at = (conns.len() * 2).max(64);
        }
        conns.push(Arc::downgrade(shared));
        drop(guard);
        if self.is_shutting_down() {
            self.close_all(now);
        }
    }

    /// Whether [`Tracker::begin_shutdown`] was called.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// A watcher for one task that waits for shutdown.
    pub(crate) fn watch(&self) -> Watch {
        let mut w = lock(&self.inner.watchers);
        let slot = match w.free.pop() {
            Some(slot) => slot,
            None => {
                w.slots.push(None);
                w.slots.len() - 1
            }
        };
        Watch {
            tracker: self.clone(),
            slot,
        }
    }

    /// How many wakers watchers hold right now (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn watchers(&self) -> usize {
        let w = lock(&self.inner.watchers);
        w.slots.iter().filter(|s| s.is_some()).count()
    }

    /// How many watch slots exist, held or free (for tests: they are
    /// bounded by the watches alive at once, not by those ever made).
    #[cfg(test)]
    pub(crate) fn watch_slots(&self) -> usize {
        lock(&self.inner.watchers).slots.len()
    }

    /// Starts graceful shutdown: wakes the watchers and closes every live
    /// connection with `1001 Going Away`.
    pub(crate) fn begin_shutdown(&self, now: Instant) {
        let wakers: Vec<Waker> = {
            let mut w = lock(&self.inner.watchers);
            self.inner.shutting_down.store(true, Ordering::Release);
            w.slots.iter_mut().filter_map(Option::take).collect()
        };
        for w in wakers {
            w.wake();
        }
        self.close_all(now);
    }

    fn close_all(&self, now: Instant) {
        let conns: Vec<_> = {
            let guard = lock(&self.inner.conns);
            guard.0.iter().filter_map(Weak::upgrade).collect()
        };
        for shared in conns {
            let _ = shared.close(now, CloseCode::GOING_AWAY, "server shutting down");
        }
    }
}

impl Watch {
    /// Ready once shutdown has begun; otherwise keeps this task's waker in
    /// the watch's own slot (replacing the previous one).
    pub(crate) fn poll_shutting_down(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut w = lock(&self.tracker.inner.watchers);
        if self.tracker.is_shutting_down() {
            return Poll::Ready(());
        }
        match &mut w.slots[self.slot] {
            Some(old) if old.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut w = lock(&self.tracker.inner.watchers);
        w.slots[self.slot] = None;
        w.free.push(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;
    use wavecast_core::{Config, Role};

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn arc_allocation_ends_before_an_aligned_task_cell() {
        let chunk = (2 * size_of::<usize>() + size_of::<Shared>() + 8).next_multiple_of(16);
        assert_eq!(chunk % 128, 112, "FIT assumes the fields have no padding");
        // More padding than this would cost other allocators real memory:
        // shrink Shared (or let it grow) to a size that needs less.
        // (FIT may be 0 when the fields happen to fit exactly.)
        #[allow(clippy::absurd_extreme_comparisons)]
        const {
            assert!(FIT <= 16, "Shared needs more than 16 bytes of padding")
        };
    }

    #[test]
    fn tracker_closes_live_connections_and_wakes_watchers() {
        let now = Instant::now();
        let tracker = Tracker::new();
        let live = Shared::new(Connection::new(Role::Server, Config::default(), now));
        let gone = Shared::new(Connection::new(Role::Server, Config::default(), now));
        tracker.track(&live, now);
        tracker.track(&gone, now);
        drop(gone);
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let watch = tracker.watch();
        assert!(watch.poll_shutting_down(&mut cx).is_pending());
        tracker.begin_shutdown(now);
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(watch.poll_shutting_down(&mut cx).is_ready());
        assert!(!live.is_open(), "closing with 1001");
        // Connections accepted during shutdown are closed at once.
        let late = Shared::new(Connection::new(Role::Server, Config::default(), now));
        tracker.track(&late, now);
        assert!(!late.is_open());
    }

    /// Watches that come and go leave no waker behind, however many there
    /// were, and polling one does not scan the others.
    #[test]
    fn dropped_watches_release_their_wakers() {
        let tracker = Tracker::new();
        let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let watch = tracker.watch();
            assert!(watch.poll_shutting_down(&mut cx).is_pending());
            assert!(watch.poll_shutting_down(&mut cx).is_pending());
            assert_eq!(tracker.watchers(), 1);
        }
        assert_eq!(tracker.watchers(), 0);
        let w = lock(&tracker.inner.watchers);
        assert_eq!(w.slots.len(), 1, "slots are reused");
    }

    /// A task waiting only for the connection to stop sending (a room
    /// member between messages) sleeps through writes; a flusher does not.
    #[test]
    fn writes_wake_flushers_but_not_close_waiters() {
        let now = Instant::now();
        let shared = Shared::new(Connection::new(Role::Server, Config::default(), now));
        let closer = Arc::new(Flag(AtomicBool::new(false)));
        let closer_waker = Waker::from(closer.clone());
        let flusher = Arc::new(Flag(AtomicBool::new(false)));
        let flusher_waker = Waker::from(flusher.clone());
        let driver_waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));

        assert!(shared
            .poll_send_closed(&mut Context::from_waker(&closer_waker))
            .is_pending());
        shared.send(Message::from("one")).unwrap();
        assert!(shared
            .poll_flush(&mut Context::from_waker(&flusher_waker))
            .is_pending());
        {
            let mut state = shared.driver(&driver_waker, now);
            let mut out = Vec::new();
            while state.conn().poll_transmit(&mut out).is_some() {}
            state.after_write(false, 0);
        }
        assert!(flusher.0.load(Ordering::SeqCst), "the flush completed");
        assert!(!closer.0.load(Ordering::SeqCst), "still open: no wake-up");

        // Closing wakes it.
        shared.close(now, CloseCode::NORMAL, "").unwrap();
        assert!(closer.0.load(Ordering::SeqCst));
        assert!(shared
            .poll_send_closed(&mut Context::from_waker(&closer_waker))
            .is_ready());
    }
}
