//! Broadcast rooms without I/O: the lag policy, per-member lag accounting,
//! room messages with their sequence numbers and wire forms, and a registry
//! of named rooms that removes a room when its last holder leaves.
//!
//! Adapters carry [`RoomMessage`]s over their runtime's broadcast channel (a
//! ring buffer per room: it *is* the bounded queue of every member) and
//! consult a [`Lag`] whenever the channel reports that a member fell behind.
//! The policy is the same on every runtime:
//!
//! - a member takes the next message from the room only while its
//!   connection's queued output is under the write limit
//!   ([`crate::Connection::is_write_blocked`] is false), so a stalled socket
//!   shows up as lag in the room, never as a growing output queue;
//! - when the ring overwrote messages the member had not taken yet,
//!   [`Lag::on_lagged`] decides: [`LagPolicy::SkipAhead`] (the default)
//!   continues with the oldest message still held and reports how many were
//!   lost; [`LagPolicy::Disconnect`] closes the connection with
//!   [`LAG_CLOSE_CODE`] (`1013 Try Again Later`).
//!
//! A message is framed once ([`PreparedMessage`]) and its SSE form is
//! encoded at most once, on first use; every member shares the same bytes.
//! Binary messages have no SSE form and are not sent to SSE subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::close::CloseCode;
use crate::connection::PreparedMessage;
use crate::message::Message;
use crate::shared::lock;
use crate::sse::SseEvent;

/// The close code a member gets under [`LagPolicy::Disconnect`]:
/// `1013 Try Again Later` (RFC 6455 §7.4.1 via the IANA registry): the
/// server is fine, this client was too slow, and it may reconnect.
pub const LAG_CLOSE_CODE: CloseCode = CloseCode::TRY_AGAIN_LATER;

/// The close reason sent with [`LAG_CLOSE_CODE`].
pub const LAG_CLOSE_REASON: &str = "too slow for the room";

/// Default number of messages a room holds for its slowest member.
pub const DEFAULT_ROOM_CAPACITY: usize = 256;

/// The longest room name accepted, in bytes.
pub const MAX_ROOM_NAME_LEN: usize = 128;

/// What happens to a member that fell further behind than the room holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LagPolicy {
    /// Continue with the oldest message the room still holds and tell the
    /// member how many it lost (the default: a chat or a ticker prefers
    /// fresh data to a dropped connection).
    #[default]
    SkipAhead,
    /// Close the member's connection with [`LAG_CLOSE_CODE`]; for feeds
    /// where a gap is worse than a reconnect.
    Disconnect,
}

/// Settings of a room (and of every room of a hub).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomConfig {
    /// Messages held for members that have not taken them yet; the bound on
    /// each member's queue. At least 1. Default [`DEFAULT_ROOM_CAPACITY`].
    pub capacity: usize,
    /// What to do with a member that falls further behind. Default
    /// [`LagPolicy::SkipAhead`].
    pub lag_policy: LagPolicy,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            capacity: DEFAULT_ROOM_CAPACITY,
            lag_policy: LagPolicy::SkipAhead,
        }
    }
}

impl RoomConfig {
    /// Sets [`RoomConfig::capacity`] (values below 1 become 1).
    pub fn with_capacity(mut self, messages: usize) -> Self {
        self.capacity = messages.max(1);
        self
    }

    /// Sets [`RoomConfig::lag_policy`].
    pub fn with_lag_policy(mut self, policy: LagPolicy) -> Self {
        self.lag_policy = policy;
        self
    }
}

/// What a member does after falling behind, as decided by [`Lag::on_lagged`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LagAction {
    /// Keep going; `skipped` messages were lost this time.
    SkipAhead {
        /// Messages lost in this gap.
        skipped: u64,
    },
    /// Close the connection with this code and [`LAG_CLOSE_REASON`].
    Disconnect {
        /// The close code, [`LAG_CLOSE_CODE`].
        code: CloseCode,
    },
}

/// One member's lag accounting.
#[derive(Clone, Debug)]
pub struct Lag {
    policy: LagPolicy,
    skipped: u64,
    gaps: u64,
}

impl Lag {
    /// Accounting for a member of a room with this policy.
    pub fn new(policy: LagPolicy) -> Lag {
        Lag {
            policy,
            skipped: 0,
            gaps: 0,
        }
    }

    /// Call when the room's channel says `missed` messages were overwritten
    /// before this member took them; returns what to do.
    pub fn on_lagged(&mut self, missed: u64) -> LagAction {
        self.skipped = self.skipped.saturating_add(missed);
        self.gaps = self.gaps.saturating_add(1);
        match self.policy {
            LagPolicy::SkipAhead => LagAction::SkipAhead { skipped: missed },
            LagPolicy::Disconnect => LagAction::Disconnect {
                code: LAG_CLOSE_CODE,
            },
        }
    }

    /// Messages this member has lost in total.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// How many times this member fell behind.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// The policy this accounting applies.
    pub fn policy(&self) -> LagPolicy {
        self.policy
    }
}

/// A message published to a room: its sequence number in the room (from 1)
/// and its wire forms, each encoded at most once and shared by every member.
#[derive(Debug)]
pub struct RoomMessage {
    seq: u64,
    prepared: PreparedMessage,
    sse: OnceLock<Option<Bytes>>,
}

impl RoomMessage {
    /// Wraps a prepared message published as number `seq` of its room.
    pub fn new(seq: u64, prepared: PreparedMessage) -> RoomMessage {
        RoomMessage {
            seq,
            prepared,
            sse: OnceLock::new(),
        }
    }

    /// The sequence number in the room, counting from 1.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The frame, as [`crate::Connection::send_prepared`] wants it.
    pub fn prepared(&self) -> &PreparedMessage {
        &self.prepared
    }

    /// The message.
    pub fn message(&self) -> &Message {
        self.prepared.message()
    }

    /// The SSE form: a `data:` event (one `data:` line per line of text)
    /// with `id:` set to the sequence number, encoded on first call and
    /// shared afterwards. `None` for binary messages, which are not sent to
    /// SSE subscribers.
    pub fn sse_bytes(&self) -> Option<&Bytes> {
        self.sse
            .get_or_init(|| match self.prepared.message() {
                Message::Text(text) => Some(
                    SseEvent::data(text.as_str())
                        .id(self.seq.to_string())
                        .encode(),
                ),
                Message::Binary(_) => None,
            })
            .as_ref()
    }
}

/// Why a room name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The name is empty, longer than [`MAX_ROOM_NAME_LEN`] bytes, or holds
    /// control characters.
    #[error("invalid room name (1 to 128 bytes, no control characters): {0:?}")]
    InvalidName(String),
}

/// Checks a room name: 1 to [`MAX_ROOM_NAME_LEN`] bytes, no control
/// characters (names often come from URLs and end up in logs).
pub fn validate_room_name(name: &str) -> Result<(), RoomError> {
    if name.is_empty() || name.len() > MAX_ROOM_NAME_LEN || name.chars().any(char::is_control) {
        return Err(RoomError::InvalidName(name.chars().take(40).collect()));
    }
    Ok(())
}

/// Named rooms with a count of holders each (members and publisher
/// handles); a room is removed when its count drops to zero.
///
/// `T` is the adapter's per-room state (its channel). The registry is not
/// synchronised; adapters keep it behind their own lock.
#[derive(Debug)]
pub struct Registry<T> {
    rooms: HashMap<String, (T, usize)>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            rooms: HashMap::new(),
        }
    }
}

impl<T> Registry<T> {
    /// An empty registry.
    pub fn new() -> Registry<T> {
        Registry::default()
    }

    /// Takes a hold on room `name`, creating it with `make` if it does not
    /// exist; release it with [`Registry::release`].
    ///
    /// # Errors
    ///
    /// [`RoomError::InvalidName`] (see [`validate_room_name`]).
    pub fn acquire(&mut self, name: &str, make: impl FnOnce() -> T) -> Result<&T, RoomError> {
        validate_room_name(name)?;
        let entry = self
            .rooms
            .entry(name.to_owned())
            .or_insert_with(|| (make(), 0));
        entry.1 += 1;
        Ok(&entry.0)
    }

    /// Takes one more hold on an existing room; false if there is none.
    pub fn retain(&mut self, name: &str) -> bool {
        match self.rooms.get_mut(name) {
            Some(entry) => {
                entry.1 += 1;
                true
            }
            None => false,
        }
    }

    /// Gives back one hold; returns the room's state when that was the last
    /// hold and the room was removed.
    pub fn release(&mut self, name: &str) -> Option<T> {
        let entry = self.rooms.get_mut(name)?;
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 == 0 {
            return self.rooms.remove(name).map(|(t, _)| t);
        }
        None
    }

    /// The state of room `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.rooms.get(name).map(|(t, _)| t)
    }

    /// How many holds room `name` has (0 if it does not exist).
    pub fn holders(&self, name: &str) -> usize {
        self.rooms.get(name).map_or(0, |(_, n)| *n)
    }

    /// How many rooms exist.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room exists.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// The names of the rooms.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rooms.keys().map(String::as_str)
    }
}

/// What a member's subscription yields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RoomEvent {
    /// The next message.
    Message(Arc<RoomMessage>),
    /// [`LagPolicy::SkipAhead`]: this many messages were lost; the next
    /// event is the oldest message the room still holds.
    Lagged(u64),
    /// [`LagPolicy::Disconnect`]: the member fell behind and must be closed
    /// with this code (`1013`).
    Evicted(CloseCode),
}

/// How a member's forwarding ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberEnd {
    /// The connection stopped accepting messages (closed or failed).
    Closed,
    /// The member fell behind under [`LagPolicy::Disconnect`] and was
    /// closed with this code.
    Evicted(CloseCode),
}

/// A room's publishing side without its channel: numbers each message and
/// wakes members that wait for their output queue to drain, so a stalled
/// member under [`LagPolicy::Disconnect`] is evicted as soon as the room
/// overwrites a message it had not taken. Share it in an `Arc`.
#[derive(Debug, Default)]
pub struct Publisher {
    seq: AtomicU64,
    waiters: Mutex<Vec<Waker>>,
}

impl Publisher {
    /// A publisher that has published nothing.
    pub fn new() -> Publisher {
        Publisher::default()
    }

    /// Numbers `prepared` as the room's next message. Send the result on
    /// the channel, then call [`Publisher::notify`].
    pub fn next(&self, prepared: PreparedMessage) -> Arc<RoomMessage> {
        // Concurrent publishers may put numbers on the channel slightly out
        // of order; each number is still unique.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        Arc::new(RoomMessage::new(seq, prepared))
    }

    /// How many messages have been numbered.
    pub fn published(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Wakes every task waiting in [`Publisher::poll_published`].
    pub fn notify(&self) {
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for w in waiters {
            w.wake();
        }
    }

    /// Ready once more than `seen` messages were published; otherwise
    /// registers the waker for the next [`Publisher::notify`].
    pub fn poll_published(&self, cx: &mut Context<'_>, seen: u64) -> Poll<u64> {
        let mut waiters = lock(&self.waiters);
        let now = self.published();
        if now > seen {
            return Poll::Ready(now);
        }
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// One member's place in a room's sequence: which message it took last and
/// its [`Lag`] accounting. Adapters turn channel results into [`RoomEvent`]s
/// through it, so every runtime applies the lag policy the same way.
#[derive(Clone, Debug)]
pub struct Cursor {
    lag: Lag,
    taken: u64,
    capacity: u64,
}

impl Cursor {
    /// A member that subscribed after `published` messages, in a room
    /// whose channel holds `capacity` messages.
    pub fn new(policy: LagPolicy, capacity: usize, published: u64) -> Cursor {
        Cursor {
            lag: Lag::new(policy),
            taken: published,
            capacity: capacity as u64,
        }
    }

    /// The channel delivered `message`.
    pub fn on_message(&mut self, message: Arc<RoomMessage>) -> RoomEvent {
        self.taken = self.taken.max(message.seq());
        RoomEvent::Message(message)
    }

    /// The channel says `missed` messages were overwritten before this
    /// member took them.
    pub fn on_lagged(&mut self, missed: u64) -> RoomEvent {
        self.taken = self.taken.saturating_add(missed);
        match self.lag.on_lagged(missed) {
            LagAction::SkipAhead { skipped } => RoomEvent::Lagged(skipped),
            LagAction::Disconnect { code } => RoomEvent::Evicted(code),
        }
    }

    /// Messages published and not yet taken (more than the room holds once
    /// the member has fallen behind).
    pub fn pending(&self, published: u64) -> u64 {
        published.saturating_sub(self.taken)
    }

    /// Call while the member waits for its connection to drain: under
    /// [`LagPolicy::Disconnect`], the close code once the room overwrote a
    /// message this member had not taken.
    pub fn check_overflow(&mut self, published: u64) -> Option<CloseCode> {
        let pending = self.pending(published);
        if self.lag.policy() != LagPolicy::Disconnect || pending <= self.capacity {
            return None;
        }
        match self.on_lagged(pending - self.capacity) {
            RoomEvent::Evicted(code) => Some(code),
            _ => None,
        }
    }

    /// Messages this member has lost so far.
    pub fn skipped(&self) -> u64 {
        self.lag.skipped()
    }
}

/// A [`Registry`] behind a lock, shared by a hub's clones, handing out
/// [`Lease`]s that release their room on drop.
#[derive(Debug)]
pub struct Rooms<T> {
    inner: Arc<Mutex<Registry<T>>>,
}

impl<T> Clone for Rooms<T> {
    fn clone(&self) -> Self {
        Rooms {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Default for Rooms<T> {
    fn default() -> Self {
        Rooms {
            inner: Arc::new(Mutex::new(Registry::new())),
        }
    }
}

impl<T> Rooms<T> {
    fn lock(&self) -> MutexGuard<'_, Registry<T>> {
        lock(&self.inner)
    }

    /// Takes a hold on room `name` (created with `make` if needed) and
    /// returns what `view` takes from its state, with the lease.
    ///
    /// # Errors
    ///
    /// [`RoomError::InvalidName`] (see [`validate_room_name`]).
    pub fn acquire<V>(
        &self,
        name: &str,
        make: impl FnOnce() -> T,
        view: impl FnOnce(&T) -> V,
    ) -> Result<(V, Lease<T>), RoomError> {
        let mut rooms = self.lock();
        let v = view(rooms.acquire(name, make)?);
        Ok((
            v,
            Lease {
                rooms: self.clone(),
                name: name.into(),
            },
        ))
    }

    /// How many rooms exist.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no room exists.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// A hold on one room of a [`Rooms`]; released on drop, retained again on
/// clone. The room is removed when its last lease goes.
#[derive(Debug)]
pub struct Lease<T> {
    rooms: Rooms<T>,
    name: Arc<str>,
}

impl<T> Lease<T> {
    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T> Clone for Lease<T> {
    fn clone(&self) -> Self {
        let retained = self.rooms.lock().retain(&self.name);
        debug_assert!(retained, "a room exists while a lease on it exists");
        Lease {
            rooms: self.rooms.clone(),
            name: self.name.clone(),
        }
    }
}

impl<T> Drop for Lease<T> {
    fn drop(&mut self) {
        // The state is dropped after the guard: a channel's drop may wake
        // tasks that take this lock.
        let removed = self.rooms.lock().release(&self.name);
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_policies() {
        let mut skip = Lag::new(LagPolicy::SkipAhead);
        assert_eq!(skip.on_lagged(3), LagAction::SkipAhead { skipped: 3 });
        assert_eq!(skip.on_lagged(2), LagAction::SkipAhead { skipped: 2 });
        assert_eq!((skip.skipped(), skip.gaps()), (5, 2));
        let mut drop = Lag::new(LagPolicy::Disconnect);
        assert_eq!(
            drop.on_lagged(1),
            LagAction::Disconnect {
                code: CloseCode::TRY_AGAIN_LATER
            }
        );
    }

    #[test]
    fn cursor_evicts_only_past_capacity() {
        let mut c = Cursor::new(LagPolicy::Disconnect, 4, 10);
        assert_eq!(c.check_overflow(14), None);
        assert_eq!(c.check_overflow(15), Some(CloseCode::TRY_AGAIN_LATER));
        let mut s = Cursor::new(LagPolicy::SkipAhead, 4, 0);
        assert_eq!(s.check_overflow(100), None);
        assert!(matches!(s.on_lagged(3), RoomEvent::Lagged(3)));
        assert_eq!((s.skipped(), s.pending(10)), (3, 7));
    }

    #[test]
    fn leases_release_rooms() {
        let rooms: Rooms<u8> = Rooms::default();
        let (v, lease) = rooms.acquire("a", || 5, |t| *t).unwrap();
        assert_eq!(v, 5);
        let again = lease.clone();
        drop(lease);
        assert_eq!(rooms.len(), 1);
        drop(again);
        assert!(rooms.is_empty());
    }

    #[test]
    fn registry_removes_empty_rooms() {
        let mut r: Registry<u32> = Registry::new();
        assert_eq!(*r.acquire("a", || 7).unwrap(), 7);
        assert_eq!(*r.acquire("a", || 9).unwrap(), 7);
        assert!(r.retain("a"));
        assert!(!r.retain("b"));
        assert_eq!(r.holders("a"), 3);
        assert_eq!(r.release("a"), None);
        assert_eq!(r.release("a"), None);
        assert_eq!(r.release("a"), Some(7));
        assert!(r.is_empty());
        assert!(r.acquire("", || 1).is_err());
        assert!(r.acquire("a\nb", || 1).is_err());
        assert!(r.acquire(&"x".repeat(129), || 1).is_err());
    }

    #[test]
    fn sse_form_is_text_only_and_cached() {
        let text = RoomMessage::new(4, PreparedMessage::new("a\nb"));
        let first = text.sse_bytes().unwrap().clone();
        assert_eq!(&first[..], b"id: 4\ndata: a\ndata: b\n\n".as_slice());
        assert_eq!(text.sse_bytes().unwrap().as_ptr(), first.as_ptr());
        let binary = RoomMessage::new(1, PreparedMessage::new(vec![1u8, 2]));
        assert!(binary.sse_bytes().is_none());
    }
}
