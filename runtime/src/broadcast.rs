//! Broadcast rooms over the runtime's broadcast channel.
//!
//! A [`Hub`] holds named [`Room`]s. A message published to a room is framed
//! once ([`RoomMessage`]) and the same shared bytes go to every member. Each
//! room's channel ([`Runtime::Broadcast`]: tokio's `broadcast`, or
//! `async-broadcast` on smol and async-std) is an overwriting ring of
//! [`RoomConfig::capacity`] messages, applied exactly on every runtime: that
//! ring is the bounded queue of every member, so memory does not grow with a
//! slow member, and publishing never waits for one. Members run inside their
//! connection's driver task.
//!
//! The policy (shared with every wavecast adapter, see
//! `wavecast_core::room`):
//!
//! - subscribe **before** the `101` is written (call [`Room::subscribe`] or
//!   [`Room::join`] before [`Incoming::accept`](crate::Incoming::accept), or inside
//!   [`Incoming::accept_then`](crate::Incoming::accept_then)): everything published after the client
//!   sees the handshake complete reaches it, without it sending anything;
//! - a member takes the next message only while its connection holds less
//!   than [`RoomConfig::member_queue`] (4 KiB) of unwritten output, so a
//!   stalled socket shows up as lag in the room, not as a growing output
//!   queue, and holds references into the room's ring rather than copies;
//! - a member that fell more than `capacity` messages behind gets the room's
//!   [`LagPolicy`]: skip ahead — reported as [`RoomEvent::Lagged`] and
//!   counted in [`Member::skipped`] when the member next takes a message —
//!   or be closed with [`wavecast_core::room::LAG_CLOSE_CODE`] (`1013`), as
//!   soon as the room overwrites a message it had not taken;
//! - a room is removed from its hub when the last [`Room`] handle,
//!   [`Subscription`] and [`Member`] for it are gone.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use wavecast_core::room::Cursor;
use wavecast_core::{CloseCode, Error, Message, PreparedMessage};

pub(crate) use wavecast_core::room::{LagPolicy, MemberEnd, RoomConfig, RoomError, RoomEvent};

use crate::attach::Attachment;
use crate::registry::{Lease, Publisher, Registration, Rooms};
use crate::runtime::{Broadcast, Runtime, TryRecv};
use crate::websocket::{Sender, WebSocket};

type Tx<R> = <<R as Runtime>::Broadcast as Broadcast>::Sender;
type Rx<R> = <<R as Runtime>::Broadcast as Broadcast>::Receiver;

struct RoomState<R: Runtime> {
    tx: Tx<R>,
    publisher: Arc<Publisher>,
}

/// Named rooms sharing one [`RoomConfig`]. Cloning is cheap and clones
/// share the rooms.
pub struct Hub<R: Runtime> {
    rooms: Rooms<RoomState<R>>,
    config: RoomConfig,
}

impl<R: Runtime> Clone for Hub<R> {
    fn clone(&self) -> Self {
        Hub {
            rooms: self.rooms.clone(),
            config: self.config,
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Hub<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("rooms", &self.rooms.len())
            .field("config", &self.config)
            .finish()
    }
}

impl<R: Runtime> Default for Hub<R> {
    fn default() -> Self {
        Hub::new(RoomConfig::default())
    }
}

impl<R: Runtime> Hub<R> {
    /// A hub whose rooms use `config`.
    pub fn new(config: RoomConfig) -> Hub<R> {
        Hub {
            rooms: Rooms::default(),
            config,
        }
    }

    /// The room called `name`, created if it does not exist.
    ///
    /// # Errors
    ///
    /// [`RoomError::InvalidName`]: empty, over 128 bytes, or control characters.
    pub fn room(&self, name: &str) -> Result<Room<R>, RoomError> {
        let capacity = self.config.capacity.max(1);
        let make = || RoomState::<R> {
            tx: R::Broadcast::channel(capacity),
            publisher: Arc::default(),
        };
        let ((tx, publisher), lease) = self.rooms.acquire(name, make, |state| {
            (state.tx.clone(), state.publisher.clone())
        })?;
        Ok(Room {
            tx,
            publisher,
            capacity,
            policy: self.config.lag_policy,
            member_queue: self.config.member_queue.max(1),
            lease,
        })
    }

    /// How many rooms exist (rooms nobody holds are removed).
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// The config every room of this hub uses.
    pub fn config(&self) -> RoomConfig {
        self.config
    }
}

/// A handle on one room: publish to it and subscribe connections. Cloning
/// is cheap; the room lives while a handle, subscription or member does.
pub struct Room<R: Runtime> {
    tx: Tx<R>,
    publisher: Arc<Publisher>,
    capacity: usize,
    policy: LagPolicy,
    /// [`RoomConfig::member_queue`].
    member_queue: usize,
    lease: Lease<RoomState<R>>,
}

impl<R: Runtime> Clone for Room<R> {
    fn clone(&self) -> Self {
        Room {
            tx: self.tx.clone(),
            publisher: self.publisher.clone(),
            capacity: self.capacity,
            policy: self.policy,
            member_queue: self.member_queue,
            lease: self.lease.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Room<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("name", &self.name())
            .field("capacity", &self.capacity)
            .field("published", &self.published())
            .finish()
    }
}

impl<R: Runtime> Room<R> {
    /// The room's name.
    pub fn name(&self) -> &str {
        self.lease.name()
    }

    /// Publishes a message to every current member; returns how many
    /// members it was queued for (0 when the room is empty). Never waits.
    pub fn publish(&self, message: impl Into<Message>) -> usize {
        self.publish_prepared(PreparedMessage::new(message))
    }

    /// Publishes a message already framed with [`PreparedMessage::new`].
    pub fn publish_prepared(&self, prepared: PreparedMessage) -> usize {
        // A full ring drops its oldest message instead of waiting; no
        // member means nothing to deliver.
        let delivered = R::Broadcast::send(&self.tx, self.publisher.next(prepared));
        // Members waiting for a message, or blocked on a full output queue
        // (checking for overflow), look again.
        self.publisher.notify();
        delivered
    }

    /// Publishes a publication of a room with history at `position`
    /// (see [`crate::StreamRoom`]).
    pub(crate) fn publish_at(
        &self,
        position: wavecast_core::StreamPosition,
        prepared: PreparedMessage,
    ) -> usize {
        let message = self.publisher.next_at(prepared, position);
        let delivered = R::Broadcast::send(&self.tx, message);
        self.publisher.notify();
        delivered
    }

    /// How many members (subscriptions) the room has.
    pub fn members(&self) -> usize {
        R::Broadcast::receivers(&self.tx)
    }

    /// How many messages the room holds for its slowest member (at most
    /// [`RoomConfig::capacity`]).
    pub fn queued(&self) -> usize {
        R::Broadcast::queued(&self.tx).min(self.capacity)
    }

    /// How many messages have been published.
    pub fn published(&self) -> u64 {
        self.publisher.published()
    }

    /// Subscribes now: the subscription receives every message published
    /// from this call on. Drive it yourself with [`Subscription::recv`].
    pub fn subscribe(&self) -> Subscription<R> {
        Subscription {
            rx: R::Broadcast::subscribe(&self.tx),
            cursor: Cursor::new(self.policy, self.capacity, self.publisher.published()),
            publisher: self.publisher.clone(),
            registration: Registration::default(),
            _lease: self.lease.clone(),
        }
    }

    /// Subscribes now and forwards the room to `sender` under the room's
    /// lag policy, until the connection ends or the returned [`Member`] is
    /// dropped. The forwarding runs inside the connection's own task, not a
    /// task of its own.
    pub fn join(&self, sender: Sender) -> Member {
        let sub = self.subscribe();
        let skipped = Arc::new(AtomicU64::new(0));
        let shared = sender.shared().clone();
        let forwarding = forward(sub, sender, skipped.clone(), self.member_queue);
        let attachment = shared.attach(Box::pin(forwarding));
        Member {
            attachment,
            skipped,
        }
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

/// One member's place in a room: a bounded queue (the room's ring) and its
/// lag accounting.
pub struct Subscription<R: Runtime> {
    rx: Rx<R>,
    cursor: Cursor,
    publisher: Arc<Publisher>,
    /// This member's waker slot at the publisher.
    registration: Registration,
    _lease: Lease<RoomState<R>>,
}

impl<R: Runtime> Drop for Subscription<R> {
    fn drop(&mut self) {
        self.publisher.deregister(&mut self.registration);
    }
}

impl<R: Runtime> std::fmt::Debug for Subscription<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl<R: Runtime> Subscription<R> {
    /// The next event; cancel-safe. Never ends while the subscription lives
    /// (it keeps its room alive).
    pub async fn recv(&mut self) -> RoomEvent {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next event: the channel is looked at without waiting,
    /// and the room's publisher wakes the task when something is published.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<RoomEvent> {
        loop {
            if let Some(event) = self.cursor.take_held() {
                return Poll::Ready(event);
            }
            // Read before looking, so a publish in between is not missed.
            let seen = self.publisher.published();
            match R::Broadcast::try_recv(&mut self.rx) {
                TryRecv::Message(message) => {
                    if let Some(event) = self.cursor.on_message(message, self.publisher.published())
                    {
                        return Poll::Ready(event);
                    }
                }
                TryRecv::Lagged(missed) => return Poll::Ready(self.cursor.on_lagged(missed)),
                TryRecv::Empty => {
                    let registration = &mut self.registration;
                    if self
                        .publisher
                        .poll_published(cx, seen, registration)
                        .is_pending()
                    {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// Messages this member has lost so far.
    pub fn skipped(&self) -> u64 {
        self.cursor.skipped()
    }

    /// What a member loop waits on: the lag cursor, the room's publisher
    /// and this member's waker slot.
    pub(crate) fn parts(&mut self) -> (&mut Cursor, &Publisher, &mut Registration) {
        (&mut self.cursor, &self.publisher, &mut self.registration)
    }

    /// Messages waiting for this member (more than the room holds once it
    /// has fallen behind).
    pub fn pending(&self) -> usize {
        let pending = self.cursor.pending(self.publisher.published());
        usize::try_from(pending).unwrap_or(usize::MAX)
    }
}

/// A connection forwarded from a room (see [`Room::join`]). Dropping it
/// stops the forwarding and leaves the room.
#[derive(Debug)]
pub struct Member {
    attachment: Attachment,
    skipped: Arc<AtomicU64>,
}

impl Member {
    pub(crate) fn new(attachment: Attachment, skipped: Arc<AtomicU64>) -> Member {
        Member {
            attachment,
            skipped,
        }
    }

    /// Messages this member has lost under [`LagPolicy::SkipAhead`].
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Whether the forwarding has ended.
    pub fn is_finished(&self) -> bool {
        self.attachment.is_finished()
    }

    /// Waits until the forwarding ends and says why.
    pub async fn wait(self) -> MemberEnd {
        poll_fn(|cx| self.attachment.poll_end(cx)).await
    }
}

/// What a member forwards: events of a room subscription, possibly
/// translated (a room with history adds its catch-up notices).
pub(crate) trait MemberSource<R: Runtime>: Send {
    /// The room subscription underneath, whose cursor the lag policy
    /// reads.
    fn subscription(&mut self) -> &mut Subscription<R>;

    /// The next event; `Ready(None)` when one was taken that has nothing
    /// to deliver.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<RoomEvent>>;
}

impl<R: Runtime> MemberSource<R> for Subscription<R> {
    fn subscription(&mut self) -> &mut Subscription<R> {
        self
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<RoomEvent>> {
        self.poll_recv(cx).map(Some)
    }
}

/// The member loop (the policy is the core's cursor plus
/// [`Shared::poll_member_ready`](crate::shared::Shared::poll_member_ready)):
/// wait for room in the output queue, take one event, deliver it; stop when
/// the connection can no longer send. `sender` keeps the connection open
/// for the member.
pub(crate) async fn forward<R: Runtime>(
    mut source: impl MemberSource<R>,
    sender: Sender,
    skipped: Arc<AtomicU64>,
    member_queue: usize,
) -> MemberEnd {
    let shared = sender.shared();
    let why = loop {
        let ready = poll_fn(|cx| {
            let (cursor, publisher, registration) = source.subscription().parts();
            shared.poll_member_ready(cx, member_queue, cursor, publisher, registration)
        });
        if let Err(why) = ready.await {
            break why;
        }
        let event = poll_fn(|cx| {
            if let Poll::Ready(event) = source.poll_event(cx) {
                return Poll::Ready(Some(event));
            }
            // Nothing to forward: stop once the connection cannot send.
            shared.poll_send_closed(cx).map(|()| None)
        })
        .await;
        let event = match event {
            None => break None,
            Some(None) => continue,
            Some(Some(event)) => event,
        };
        if let Err(why) = shared.deliver(event, &skipped) {
            break why;
        }
    };
    shared.end_member(shared.now(), why)
}
