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
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::broadcast;
use wavecast_core::room::{Cursor, Lease, Publisher, Rooms};
use wavecast_core::{Attachment, CloseCode, Message, PreparedMessage};

pub use wavecast_core::room::{
    LagPolicy, MemberEnd, RoomConfig, RoomError, RoomEvent, RoomMessage,
};

use crate::driver::now;
use crate::error::Error;
use crate::websocket::{Sender, WebSocket};

#[derive(Debug)]
struct RoomState {
    tx: broadcast::Sender<Arc<RoomMessage>>,
    publisher: Arc<Publisher>,
}

/// Named rooms sharing one [`RoomConfig`]. Cloning is cheap and clones
/// share the rooms.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    rooms: Rooms<RoomState>,
    config: RoomConfig,
}

impl Hub {
    /// A hub whose rooms use `config`.
    pub fn new(config: RoomConfig) -> Hub {
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
    pub fn room(&self, name: &str) -> Result<Room, RoomError> {
        let capacity = self.config.capacity.max(1);
        let ((tx, publisher), lease) = self.rooms.acquire(
            name,
            || RoomState {
                tx: broadcast::channel(capacity).0,
                publisher: Arc::default(),
            },
            |state| (state.tx.clone(), state.publisher.clone()),
        )?;
        Ok(Room {
            tx,
            publisher,
            capacity: capacity.next_power_of_two(),
            policy: self.config.lag_policy,
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
#[derive(Clone, Debug)]
pub struct Room {
    tx: broadcast::Sender<Arc<RoomMessage>>,
    publisher: Arc<Publisher>,
    /// The ring's real size: tokio rounds the capacity up to a power of two.
    capacity: usize,
    policy: LagPolicy,
    lease: Lease<RoomState>,
}

impl Room {
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
        let delivered = self.tx.send(self.publisher.next(prepared)).unwrap_or(0);
        // Members blocked on a full output queue check for overflow.
        self.publisher.notify();
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
        self.publisher.published()
    }

    /// Subscribes now: the subscription receives every message published
    /// from this call on. Drive it yourself with [`Subscription::recv`].
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            cursor: Cursor::new(self.policy, self.capacity, self.publisher.published()),
            publisher: self.publisher.clone(),
            _lease: self.lease.clone(),
        }
    }

    /// Subscribes now and forwards the room to `sender` under the room's
    /// lag policy, until the connection ends or the returned [`Member`] is
    /// dropped. The forwarding runs inside the connection's own task (see
    /// [`wavecast_core::attach`]), not a task of its own.
    pub fn join(&self, sender: Sender) -> Member {
        let sub = self.subscribe();
        let skipped = Arc::new(AtomicU64::new(0));
        let shared = sender.shared().clone();
        let attachment = shared.attach(Box::pin(forward(sub, sender, skipped.clone())));
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
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<RoomMessage>>,
    cursor: Cursor,
    publisher: Arc<Publisher>,
    _lease: Lease<RoomState>,
}

impl Subscription {
    /// The next event; cancel-safe. Never ends while the subscription lives
    /// (it keeps its room alive).
    pub async fn recv(&mut self) -> RoomEvent {
        loop {
            match self.rx.recv().await {
                Ok(message) => return self.cursor.on_message(message),
                Err(broadcast::error::RecvError::Lagged(n)) => return self.cursor.on_lagged(n),
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
        self.cursor.skipped()
    }

    /// Messages waiting for this member (more than the room holds once it
    /// has fallen behind).
    pub fn pending(&self) -> usize {
        self.rx.len()
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

/// The member loop (the policy is the core's, see
/// [`Shared::poll_member_ready`](wavecast_core::Shared::poll_member_ready)):
/// wait for room in the output queue, take one event, deliver it; stop when
/// the connection can no longer send. `sender` keeps the connection open
/// for the member.
async fn forward(mut sub: Subscription, sender: Sender, skipped: Arc<AtomicU64>) -> MemberEnd {
    let shared = sender.shared();
    let why = loop {
        let ready = poll_fn(|cx| shared.poll_member_ready(cx, &mut sub.cursor, &sub.publisher));
        if let Err(why) = ready.await {
            break why;
        }
        let event = {
            let mut next = pin!(sub.recv());
            poll_fn(|cx| {
                if let Poll::Ready(event) = next.as_mut().poll(cx) {
                    return Poll::Ready(Some(event));
                }
                // Nothing to forward: stop once the connection cannot send.
                shared.poll_send_closed(cx).map(|()| None)
            })
            .await
        };
        let Some(event) = event else {
            break None;
        };
        if let Err(why) = shared.deliver(event, &skipped) {
            break why;
        }
    };
    shared.end_member(now(), why)
}
