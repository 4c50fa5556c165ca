//! Broadcast rooms on tokio's `broadcast` channel.
//!
//! A [`Hub`] holds named [`Room`]s. A message published to a room is framed
//! once ([`RoomMessage`]) and the same shared bytes go to every member. Each
//! room's channel is a ring of [`RoomConfig::capacity`] messages: that ring
//! is the bounded queue of every member, so memory does not grow with a slow
//! member, and publishing never waits for one.
//!
//! The policy (shared with every wavecast adapter, see
//! [`wavecast_core::room`]):
//!
//! - subscribe **before** the `101` is written (call [`Room::subscribe`] or
//!   [`Room::join`] before [`crate::Incoming::accept`], or inside
//!   [`crate::Incoming::accept_then`]): everything published after the client
//!   sees the handshake complete reaches it, without it sending anything;
//! - a member takes the next message only while its connection's queued
//!   output is under [`crate::Config::write_buffer_limit`], so a stalled
//!   socket shows up as lag in the room, not as a growing output queue;
//! - a member that fell more than `capacity` messages behind (tokio rounds
//!   the capacity up to a power of two) gets the room's [`LagPolicy`]: skip
//!   ahead — reported as [`RoomEvent::Lagged`] and counted in
//!   [`Member::skipped`] when the member next takes a message, since a
//!   stalled member loses nothing else meanwhile — or be closed with
//!   [`wavecast_core::room::LAG_CLOSE_CODE`] (`1013`), as soon as the room
//!   overwrites a message it had not taken;
//! - a room is removed from its hub when the last [`Room`] handle,
//!   [`Subscription`] and [`Member`] for it are gone.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;
use wavecast_core::room::{Lag, LagAction, Registry, LAG_CLOSE_REASON};
use wavecast_core::{CloseCode, Message, PreparedMessage};

pub use wavecast_core::room::{LagPolicy, RoomConfig, RoomError, RoomMessage};

use crate::error::Error;
use crate::websocket::{Sender, WebSocket};

type Rooms = Arc<Mutex<Registry<RoomState>>>;

#[derive(Debug)]
struct RoomState {
    tx: broadcast::Sender<Arc<RoomMessage>>,
    seq: Arc<AtomicU64>,
    published: Arc<Notify>,
}

fn lock_rooms(rooms: &Rooms) -> MutexGuard<'_, Registry<RoomState>> {
    rooms.lock().unwrap_or_else(|p| p.into_inner())
}

/// Named rooms sharing one [`RoomConfig`]. Cloning is cheap and clones
/// share the rooms.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    rooms: Rooms,
    config: RoomConfig,
}

/// A hold on one room: its name in the hub; released on drop.
#[derive(Debug)]
struct Lease {
    rooms: Rooms,
    name: Arc<str>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Dropping the room state (the channel) outside the lock is not
        // needed: it holds no locks of its own.
        drop(lock_rooms(&self.rooms).release(&self.name));
    }
}

impl Clone for Lease {
    fn clone(&self) -> Self {
        let retained = lock_rooms(&self.rooms).retain(&self.name);
        debug_assert!(retained, "a room exists while a lease on it exists");
        Lease {
            rooms: self.rooms.clone(),
            name: self.name.clone(),
        }
    }
}

impl Hub {
    /// A hub whose rooms use `config`.
    pub fn new(config: RoomConfig) -> Hub {
        Hub {
            rooms: Arc::default(),
            config,
        }
    }

    /// The room called `name`, created if it does not exist.
    ///
    /// # Errors
    ///
    /// [`RoomError::InvalidName`]: empty, over 128 bytes, or control characters.
    pub fn room(&self, name: &str) -> Result<Room, RoomError> {
        let mut rooms = lock_rooms(&self.rooms);
        let capacity = self.config.capacity.max(1);
        let state = rooms.acquire(name, || RoomState {
            tx: broadcast::channel(capacity).0,
            seq: Arc::new(AtomicU64::new(0)),
            published: Arc::new(Notify::new()),
        })?;
        Ok(Room {
            tx: state.tx.clone(),
            seq: state.seq.clone(),
            published: state.published.clone(),
            capacity: capacity.next_power_of_two(),
            policy: self.config.lag_policy,
            lease: Lease {
                rooms: self.rooms.clone(),
                name: name.into(),
            },
        })
    }

    /// How many rooms exist (rooms nobody holds are removed).
    pub fn rooms(&self) -> usize {
        lock_rooms(&self.rooms).len()
    }

    /// The config every room of this hub uses.
    pub fn config(&self) -> RoomConfig {
        self.config
    }
}

/// A handle on one room: publish to it and subscribe connections. Cloning
/// is cheap; the room lives while a handle, subscription or member does.
#[derive(Clone, Debug)]
pub struct Room {
    tx: broadcast::Sender<Arc<RoomMessage>>,
    seq: Arc<AtomicU64>,
    published: Arc<Notify>,
    /// The ring's real size: tokio rounds the capacity up to a power of two.
    capacity: usize,
    policy: LagPolicy,
    lease: Lease,
}

impl Room {
    /// The room's name.
    pub fn name(&self) -> &str {
        &self.lease.name
    }

    /// Publishes a message to every current member; returns how many
    /// members it was queued for (0 when the room is empty). Never waits.
    pub fn publish(&self, message: impl Into<Message>) -> usize {
        self.publish_prepared(PreparedMessage::new(message))
    }

    /// Publishes a message already framed with [`PreparedMessage::new`].
    pub fn publish_prepared(&self, prepared: PreparedMessage) -> usize {
        // The sequence number is taken under the channel's own ordering only
        // approximately when several tasks publish at once; each number is
        // still unique.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let delivered = self
            .tx
            .send(Arc::new(RoomMessage::new(seq, prepared)))
            .unwrap_or(0);
        // Members blocked on a full output queue check for overflow.
        self.published.notify_waiters();
        delivered
    }

    /// How many members (subscriptions) the room has.
    pub fn members(&self) -> usize {
        self.tx.receiver_count()
    }

    /// How many messages the room holds for its slowest member (at most
    /// [`RoomConfig::capacity`]): the length of the longest member queue.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// How many messages have been published.
    pub fn published(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Subscribes now: the subscription receives every message published
    /// from this call on. Drive it yourself with [`Subscription::recv`].
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            lag: Lag::new(self.policy),
            published: self.published.clone(),
            capacity: self.capacity,
            _lease: self.lease.clone(),
        }
    }

    /// Subscribes now and spawns a task that forwards the room to `sender`
    /// under the room's lag policy, until the connection ends or the
    /// returned [`Member`] is dropped.
    pub fn join(&self, sender: Sender) -> Member {
        let sub = self.subscribe();
        let skipped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(forward(sub, sender, skipped.clone()));
        Member { task, skipped }
    }

    /// The one-line chat room: forwards what the client sends to the room
    /// and what the room publishes to the client (its own messages
    /// included) until either side ends; then closes the connection.
    ///
    /// Pass the `member` made with [`Room::join`] before the `101` was
    /// written so nothing published after the handshake is missed.
    pub async fn chat(&self, ws: WebSocket, member: Member) -> Result<(), Error> {
        let (sender, mut receiver) = ws.split();
        let result = loop {
            match receiver.recv().await {
                Some(Ok(message)) => {
                    self.publish(message);
                }
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            }
        };
        drop(member);
        if sender.is_open() {
            let _ = sender.close(CloseCode::NORMAL, "").await;
        }
        result
    }
}

/// What a [`Subscription`] yields.
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

/// One member's place in a room: a bounded queue (the room's ring) and its
/// lag accounting.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<RoomMessage>>,
    lag: Lag,
    published: Arc<Notify>,
    capacity: usize,
    _lease: Lease,
}

impl Subscription {
    /// The next event; cancel-safe. Never ends while the subscription lives
    /// (it keeps its room alive).
    pub async fn recv(&mut self) -> RoomEvent {
        loop {
            match self.rx.recv().await {
                Ok(message) => return RoomEvent::Message(message),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return match self.lag.on_lagged(n) {
                        LagAction::SkipAhead { skipped } => RoomEvent::Lagged(skipped),
                        LagAction::Disconnect { code } => RoomEvent::Evicted(code),
                        _ => RoomEvent::Evicted(CloseCode::TRY_AGAIN_LATER),
                    };
                }
                // Unreachable while we hold the lease (the state keeps a
                // sender), but waiting forever is the right answer anyway.
                Err(broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Messages this member has lost so far.
    pub fn skipped(&self) -> u64 {
        self.lag.skipped()
    }

    /// Messages waiting for this member (more than the room holds once it
    /// has fallen behind).
    pub fn pending(&self) -> usize {
        self.rx.len()
    }

    /// Waits until `sender` can queue a message. Under
    /// [`LagPolicy::Disconnect`] a member whose room overflowed meanwhile is
    /// evicted at once, without waiting for its socket to drain.
    async fn ready_for(&mut self, sender: &Sender) -> Result<(), Option<CloseCode>> {
        loop {
            let mut notified = pin!(self.published.notified());
            notified.as_mut().enable();
            let pending = self.rx.len();
            if self.lag.policy() == LagPolicy::Disconnect && pending > self.capacity {
                let missed = (pending - self.capacity) as u64;
                if let LagAction::Disconnect { code } = self.lag.on_lagged(missed) {
                    return Err(Some(code));
                }
            }
            let ready = poll_fn(|cx| {
                if let Poll::Ready(result) = sender.poll_ready_inner(cx) {
                    return Poll::Ready(Some(result));
                }
                notified.as_mut().poll(cx).map(|()| None)
            })
            .await;
            match ready {
                Some(Ok(())) => return Ok(()),
                Some(Err(_)) => return Err(None),
                None => continue,
            }
        }
    }
}

/// How a [`Member`]'s forwarding ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberEnd {
    /// The connection stopped accepting messages (closed or failed).
    Closed,
    /// The member fell behind under [`LagPolicy::Disconnect`] and was
    /// closed with this code.
    Evicted(CloseCode),
}

/// A connection forwarded from a room by a task (see [`Room::join`]).
/// Dropping it stops the forwarding and leaves the room.
#[derive(Debug)]
pub struct Member {
    task: JoinHandle<MemberEnd>,
    skipped: Arc<AtomicU64>,
}

impl Member {
    /// Messages this member has lost under [`LagPolicy::SkipAhead`].
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Whether the forwarding has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits until the forwarding ends and says why.
    pub async fn wait(mut self) -> MemberEnd {
        (&mut self.task).await.unwrap_or(MemberEnd::Closed)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The member loop: wait for room in the output queue, then take one
/// message; stop when the connection can no longer send.
async fn forward(mut sub: Subscription, sender: Sender, skipped: Arc<AtomicU64>) -> MemberEnd {
    loop {
        match sub.ready_for(&sender).await {
            Ok(()) => {}
            Err(None) => return MemberEnd::Closed,
            Err(Some(code)) => return evict(&sender, code).await,
        }
        let event = {
            let mut next = pin!(sub.recv());
            poll_fn(|cx| {
                if sender.poll_closed(cx).is_ready() {
                    return Poll::Ready(None);
                }
                next.as_mut().poll(cx).map(Some)
            })
            .await
        };
        match event {
            None => return MemberEnd::Closed,
            Some(RoomEvent::Message(message)) => {
                if sender.send_prepared(message.prepared()).await.is_err() {
                    return MemberEnd::Closed;
                }
            }
            Some(RoomEvent::Lagged(n)) => {
                skipped.fetch_add(n, Ordering::Relaxed);
            }
            Some(RoomEvent::Evicted(code)) => return evict(&sender, code).await,
        }
    }
}

/// Closes a member that fell behind. Its socket is stalled, so the close
/// handshake may never finish (the core's close timeout bounds it): queue
/// the close frame and return. A zero timeout polls the close once, which
/// queues the frame, without waiting for the peer's answer.
async fn evict(sender: &Sender, code: CloseCode) -> MemberEnd {
    let close = sender.close(code, LAG_CLOSE_REASON);
    let _ = tokio::time::timeout(Duration::ZERO, close).await;
    MemberEnd::Evicted(code)
}
