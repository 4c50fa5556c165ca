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

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::close::CloseCode;
use crate::connection::PreparedMessage;
use crate::history::StreamPosition;
use crate::message::Message;
use crate::sse::SseEvent;

/// The close code a member gets under [`LagPolicy::Disconnect`]:
/// `1013 Try Again Later` (RFC 6455 §7.4.1 via the IANA registry): the
/// server is fine, this client was too slow, and it may reconnect.
pub const LAG_CLOSE_CODE: CloseCode = CloseCode::TRY_AGAIN_LATER;

/// The close reason sent with [`LAG_CLOSE_CODE`].
pub const LAG_CLOSE_REASON: &str = "too slow for the room";

/// Default number of messages a room holds for its slowest member.
pub const DEFAULT_ROOM_CAPACITY: usize = 256;

/// Default [`RoomConfig::member_queue`]: 4 KiB.
pub const DEFAULT_MEMBER_QUEUE: usize = 4 << 10;

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
    /// Output bytes a member's connection may hold unwritten (queued in the
    /// core or staged for the transport) and still take the room's next
    /// message. Past it the member waits until its output is written, and
    /// the messages it has not taken stay in the room's ring, shared with
    /// every other member: a member whose peer stops reading holds at most
    /// this much plus one message of its own, and shows up as lag. Default
    /// [`DEFAULT_MEMBER_QUEUE`] (4 KiB); the connection's
    /// [`Config::write_buffer_limit`](crate::Config::write_buffer_limit)
    /// still bounds what the application sends itself.
    pub member_queue: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            capacity: DEFAULT_ROOM_CAPACITY,
            lag_policy: LagPolicy::SkipAhead,
            member_queue: DEFAULT_MEMBER_QUEUE,
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

    /// Sets [`RoomConfig::member_queue`] (values below 1 become 1: a member
    /// with nothing unwritten always takes its next message).
    pub fn with_member_queue(mut self, bytes: usize) -> Self {
        self.member_queue = bytes.max(1);
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
    /// Where the publication stands in its room's history, for rooms that
    /// keep one ([`crate::history`]).
    position: Option<StreamPosition>,
    sse: OnceLock<Option<Bytes>>,
}

impl RoomMessage {
    /// Wraps a prepared message published as number `seq` of its room.
    pub fn new(seq: u64, prepared: PreparedMessage) -> RoomMessage {
        RoomMessage {
            seq,
            prepared,
            position: None,
            sse: OnceLock::new(),
        }
    }

    /// Wraps a publication of a room with history: `position` is its place
    /// in that history, and its SSE form carries it as the `id:`, so a
    /// browser that reconnects sends it back as `Last-Event-ID`.
    pub fn with_position(
        seq: u64,
        prepared: PreparedMessage,
        position: StreamPosition,
    ) -> RoomMessage {
        RoomMessage {
            position: Some(position),
            ..RoomMessage::new(seq, prepared)
        }
    }

    /// The publication's place in its room's history, if the room keeps one.
    pub fn position(&self) -> Option<StreamPosition> {
        self.position
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
    /// with `id:` set to the position in the room's history if it has one
    /// (`<offset>_<epoch>`), the sequence number otherwise, encoded on first call and
    /// shared afterwards. `None` for binary messages, which are not sent to
    /// SSE subscribers.
    pub fn sse_bytes(&self) -> Option<&Bytes> {
        self.sse
            .get_or_init(|| match self.prepared.message() {
                Message::Text(text) => {
                    let id = match self.position {
                        Some(position) => position.to_string(),
                        None => self.seq.to_string(),
                    };
                    Some(SseEvent::data(text.as_str()).id(id).encode())
                }
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

/// One member's place in a room's sequence: which message it took last and
/// its [`Lag`] accounting. Adapters turn channel results into [`RoomEvent`]s
/// through it, so every runtime applies the lag policy the same way.
///
/// The capacity is applied here, exactly: a channel may hold more than the
/// room's capacity (tokio rounds it up to a power of two), and a message the
/// member reaches only after `capacity` newer ones were published counts as
/// lost, as it would in a ring of exactly `capacity`.
#[derive(Clone, Debug)]
pub struct Cursor {
    lag: Lag,
    taken: u64,
    capacity: u64,
    /// Messages found too old since the last event, not reported yet.
    behind: u64,
    /// A message held back while the lag before it is reported.
    held: Option<Arc<RoomMessage>>,
}

impl Cursor {
    /// A member that subscribed after `published` messages, in a room
    /// that holds `capacity` messages for each member.
    pub fn new(policy: LagPolicy, capacity: usize, published: u64) -> Cursor {
        Cursor {
            lag: Lag::new(policy),
            taken: published,
            capacity: capacity.max(1) as u64,
            behind: 0,
            held: None,
        }
    }

    /// The event to hand on before asking the channel again: a message held
    /// back while the lag before it was reported.
    pub fn take_held(&mut self) -> Option<RoomEvent> {
        self.held.take().map(RoomEvent::Message)
    }

    /// The channel delivered `message` while `published` messages exist.
    /// Returns the event to hand on, or `None` when the message is older
    /// than the room's capacity allows (it is counted as lost and reported
    /// with the next event). Call [`Cursor::take_held`] before the channel
    /// next time.
    pub fn on_message(&mut self, message: Arc<RoomMessage>, published: u64) -> Option<RoomEvent> {
        self.taken = self.taken.max(message.seq());
        if published.saturating_sub(message.seq()) >= self.capacity {
            self.behind += 1;
            if self.lag.policy() == LagPolicy::Disconnect {
                return Some(self.report_lag(0));
            }
            return None;
        }
        if self.behind > 0 {
            self.held = Some(message);
            return Some(self.report_lag(0));
        }
        Some(RoomEvent::Message(message))
    }

    /// The channel says `missed` messages were overwritten before this
    /// member took them.
    pub fn on_lagged(&mut self, missed: u64) -> RoomEvent {
        self.taken = self.taken.saturating_add(missed);
        self.report_lag(missed)
    }

    fn report_lag(&mut self, missed: u64) -> RoomEvent {
        let missed = missed + std::mem::take(&mut self.behind);
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

    /// Whether a member waiting for its connection to drain must watch the
    /// room's publications: only under [`LagPolicy::Disconnect`], to be
    /// evicted as soon as the room overwrites a message it had not taken.
    /// Under [`LagPolicy::SkipAhead`] a stalled member sleeps until its
    /// output drains, however much the room publishes meanwhile.
    pub fn watches_overflow(&self) -> bool {
        self.lag.policy() == LagPolicy::Disconnect
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
    fn cursor_applies_the_capacity_exactly() {
        let msg = |seq| Arc::new(RoomMessage::new(seq, PreparedMessage::new("m")));
        // A ring that kept 8 messages for a room of capacity 4: the member
        // reaches seq 1 after 8 were published, so 1..=4 are lost.
        let mut c = Cursor::new(LagPolicy::SkipAhead, 4, 0);
        for seq in 1..=4 {
            assert!(c.on_message(msg(seq), 8).is_none(), "seq {seq} is too old");
        }
        assert!(matches!(
            c.on_message(msg(5), 8),
            Some(RoomEvent::Lagged(4))
        ));
        assert!(matches!(c.take_held(), Some(RoomEvent::Message(m)) if m.seq() == 5));
        assert!(c.take_held().is_none());
        assert!(matches!(
            c.on_message(msg(6), 8),
            Some(RoomEvent::Message(_))
        ));
        assert_eq!(c.skipped(), 4);
        // Under Disconnect the first lost message evicts.
        let mut d = Cursor::new(LagPolicy::Disconnect, 4, 0);
        assert!(matches!(
            c.on_message(msg(8), 8),
            Some(RoomEvent::Message(_))
        ));
        assert!(matches!(
            d.on_message(msg(1), 5),
            Some(RoomEvent::Evicted(_))
        ));
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
