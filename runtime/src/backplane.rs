//! Rooms with history: every publication gets a position, a client that
//! reconnects with its last position catches up on what it missed, and a
//! publish is acknowledged with its position once the backplane accepted
//! it.
//!
//! A [`StreamHub`] is a [`Hub`] plus a backplane that orders and keeps the
//! publications:
//!
//! - [`StreamHub::local`]: this process only; history in memory
//!   ([`History`] from the core). Needs nothing.
//! - `StreamHub::redis` (feature `redis`): many processes share the rooms
//!   through one Redis server. A publish is one script run on Redis that
//!   appends to the room's history stream and publishes to the room's
//!   channel; each process subscribes to the channels of the rooms it has
//!   local members in and fans every publication out to them through the
//!   room's ring, framed once per process.
//!
//! Either way the local [`Room`] is fed in the backplane's order and every
//! [`RoomMessage`] carries its [`StreamPosition`]. A member that joins with
//! the position it last saw ([`StreamRoom::join`]) subscribes first, then
//! fetches the history after that position; the core's [`CatchUp`] merges
//! the two without a gap or a duplicate, and when the history no longer
//! holds what the client missed the client is told so
//! ([`Envelope::not_recovered`]) and continues from the current position.

use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wavecast_core::history::{CatchUp, CatchUpEvent, History, HistoryConfig, Recovery};
use wavecast_core::presence::{PresenceBatch, PresenceChange, PresenceConfig};
use wavecast_core::rng::Rng;
use wavecast_core::room::{RoomConfig, RoomError, RoomEvent, RoomMessage};
use wavecast_core::{CloseCode, Message, PreparedMessage, SeedSource, StreamPosition};

use crate::broadcast::{forward, Hub, Member, MemberSource, Room, Subscription};
use crate::runtime::{BoxFuture, Runtime};
use crate::websocket::Sender;

mod dedup;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::RedisConfig;

/// How publications and catch-up notices look on the wire for WebSocket
/// members. The default, [`Plain`], sends publications as they were
/// published and no notices, so a client cannot learn positions; an
/// application that wants clients to resume puts the position into what
/// it sends (the chat example wraps each message in JSON with a `pos`).
///
/// Each publication is enveloped once per process, not per member. SSE
/// subscribers get the same enveloped text as `data:`, with the position
/// also as the event's `id:` (binary publications have no SSE form).
pub trait Envelope: Send + Sync + 'static {
    /// The message members receive for a publication at `position`.
    fn publication(&self, position: StreamPosition, message: &Message) -> Message;

    /// Sent to a member whose catch-up completed with nothing lost; it now
    /// stands at `current`.
    fn recovered(&self, current: StreamPosition) -> Option<Message> {
        let _ = current;
        None
    }

    /// Sent to a member that lost publications (history trimmed or expired,
    /// the backplane restarted): it must reload its state; what follows
    /// continues from `current`.
    fn not_recovered(&self, current: StreamPosition) -> Option<Message> {
        let _ = current;
        None
    }

    /// Sent to every member of a room, on every node, for one window of
    /// presence changes coalesced by one node ([`StreamRoom::enter`]).
    /// `None` (the default) announces nothing.
    fn presence(&self, change: &PresenceChange) -> Option<Message> {
        let _ = change;
        None
    }
}

/// Publications go out as published; no catch-up notices.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl Envelope for Plain {
    fn publication(&self, _position: StreamPosition, message: &Message) -> Message {
        message.clone()
    }
}

/// Why the backplane could not do what was asked. `Unavailable`,
/// `Timeout` and `Protocol` are worth a retry once the backplane is back;
/// `Room` and `InvalidId` are the caller's to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackplaneError {
    /// The backplane is not connected (Redis down or restarting); the
    /// process reconnects with backoff by itself.
    #[error("backplane unavailable: {0}")]
    Unavailable(String),
    /// The backplane did not answer in time.
    #[error("backplane did not answer within {0:?}")]
    Timeout(Duration),
    /// The backplane answered something this process cannot read.
    #[error("unexpected answer from the backplane: {0}")]
    Protocol(String),
    /// The room name is not allowed.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// A publication id ([`StreamRoom::publish_with_id`]) was empty or
    /// longer than [`MAX_PUBLISH_ID_LEN`] bytes; it holds the length.
    #[error("a publication id must be 1 to {MAX_PUBLISH_ID_LEN} bytes, not {0}")]
    InvalidId(usize),
}

/// The longest id [`StreamRoom::publish_with_id`] takes, in bytes. Ids are
/// usually client input, and each is kept for the dedup window.
pub const MAX_PUBLISH_ID_LEN: usize = 256;

/// How long [`StreamRoom::publish_with_id`] remembers an id by default.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(120);

/// How many ids each room remembers at most by default, with the
/// in-process backplane (see [`StreamHub::with_dedup`]).
pub const DEFAULT_DEDUP_IDS: usize = 4096;

/// The dedup settings of [`StreamHub::with_dedup`].
#[derive(Clone, Copy, Debug)]
struct Dedup {
    window: Duration,
    max_ids: usize,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            window: DEFAULT_DEDUP_WINDOW,
            max_ids: DEFAULT_DEDUP_IDS,
        }
    }
}

impl Dedup {
    /// The window in whole milliseconds, at least one.
    fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// Rooms with history and acknowledged publishes over a backplane. Cloning
/// is cheap; clones share the rooms.
pub struct StreamHub<R: Runtime> {
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Clone for StreamHub<R> {
    fn clone(&self) -> Self {
        StreamHub {
            inner: self.inner.clone(),
        }
    }
}

impl<R: Runtime> fmt::Debug for StreamHub<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamHub")
            .field("hub", &self.inner.hub)
            .field("history", &self.inner.history)
            .field("backplane", &self.inner.backend.name())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner<R: Runtime> {
    hub: Hub<R>,
    history: HistoryConfig,
    envelope: Envelopes,
    backend: Backend<R>,
    /// Where [`Inner::now_ms`] counts from (the local history's clock).
    start: Instant,
    /// The presences entered on this node, by room.
    presence: Mutex<HashMap<String, RoomPresence>>,
    presence_config: Mutex<PresenceConfig>,
    /// How [`StreamRoom::publish_with_id`] deduplicates.
    dedup: Mutex<Dedup>,
}

/// One room's presences on this node and the changes not announced yet.
struct RoomPresence {
    /// Client id to its info.
    present: HashMap<String, String>,
    batch: PresenceBatch,
}

enum Backend<R: Runtime> {
    /// The runtime parameter is only used by the Redis backplane.
    Local(Box<Mutex<LocalRooms>>, PhantomData<fn() -> R>),
    #[cfg(feature = "redis")]
    Redis(redis::Node<R>),
}

impl<R: Runtime> Backend<R> {
    fn name(&self) -> &'static str {
        match self {
            Backend::Local(_, _) => "local",
            #[cfg(feature = "redis")]
            Backend::Redis(_) => "redis",
        }
    }
}

/// The in-process backplane's histories, one per room, and the generator
/// of their epochs.
struct LocalRooms {
    rooms: HashMap<String, LocalHistory>,
    rng: Rng,
    /// Uses since idle histories were last dropped.
    since_sweep: usize,
}

struct LocalHistory {
    history: History<Message>,
    /// When the room was last published to (or created).
    active_ms: u64,
    /// The ids of [`StreamRoom::publish_with_id`] it accepted recently.
    recent: dedup::RecentIds,
}

/// How many history uses pass between sweeps for idle rooms.
const SWEEP_EVERY: usize = 256;

impl LocalRooms {
    /// The history of room `name`, created on first use. With a
    /// [`HistoryConfig::ttl_ms`], the histories of rooms not published to
    /// for that long are dropped every [`SWEEP_EVERY`] uses, as Redis
    /// expires an idle room's keys: everything in them had expired, and the
    /// room starts over in a new epoch. (Without a ttl a history lives as
    /// long as the hub: set one where clients choose room names.)
    fn history(
        &mut self,
        name: &str,
        config: HistoryConfig,
        now_ms: u64,
        publishing: bool,
    ) -> &mut History<Message> {
        &mut self.room(name, config, now_ms, publishing).history
    }

    /// The room `name`, as [`LocalRooms::history`] finds or creates it.
    fn room(
        &mut self,
        name: &str,
        config: HistoryConfig,
        now_ms: u64,
        publishing: bool,
    ) -> &mut LocalHistory {
        self.since_sweep += 1;
        if let (Some(ttl), true) = (config.ttl_ms, self.since_sweep >= SWEEP_EVERY) {
            self.since_sweep = 0;
            self.rooms
                .retain(|_, room| now_ms.saturating_sub(room.active_ms) < ttl);
        }
        let rng = &mut self.rng;
        let room = self
            .rooms
            .entry(name.to_owned())
            .or_insert_with(|| LocalHistory {
                history: History::new(config, new_epoch(rng)),
                active_ms: now_ms,
                recent: dedup::RecentIds::default(),
            });
        if publishing {
            room.active_ms = now_ms;
        }
        room
    }
}

/// A fresh epoch: random, so that a process restarted with empty histories
/// never hands out a position an old client could confuse with its own.
fn new_epoch(rng: &mut Rng) -> u64 {
    // 0 is reserved for "no epoch yet" in some clients' storage.
    rng.next_u64().max(1)
}

impl<R: Runtime> StreamHub<R> {
    /// Rooms in this process only, with histories kept in memory.
    pub fn local(rooms: RoomConfig, history: HistoryConfig) -> StreamHub<R> {
        StreamHub::with_backend(
            rooms,
            history,
            Envelopes::default(),
            Backend::Local(
                Box::new(Mutex::new(LocalRooms {
                    rooms: HashMap::new(),
                    rng: Rng::new(SeedSource::Os),
                    since_sweep: 0,
                })),
                PhantomData,
            ),
        )
    }

    fn with_backend(
        rooms: RoomConfig,
        history: HistoryConfig,
        envelope: Envelopes,
        backend: Backend<R>,
    ) -> Self {
        StreamHub {
            inner: Arc::new(Inner {
                hub: Hub::new(rooms),
                history,
                envelope,
                backend,
                start: R::now(),
                presence: Mutex::new(HashMap::new()),
                presence_config: Mutex::new(PresenceConfig::default()),
                dedup: Mutex::new(Dedup::default()),
            }),
        }
    }

    /// Sets how publications and notices look to WebSocket members, for
    /// every clone of this hub and for publications framed from now on.
    pub fn with_envelope(self, envelope: impl Envelope) -> StreamHub<R> {
        self.inner.envelope.set(Arc::new(envelope));
        self
    }

    /// Sets how presence changes are coalesced ([`StreamRoom::enter`]),
    /// for every clone of this hub and every room whose presence starts
    /// from now on.
    pub fn with_presence(self, config: PresenceConfig) -> StreamHub<R> {
        *lock(&self.inner.presence_config) = config;
        self
    }

    /// Sets how [`StreamRoom::publish_with_id`] deduplicates, for every
    /// clone of this hub: an id is remembered for `window` after its
    /// publication (default [`DEFAULT_DEDUP_WINDOW`], two minutes), and
    /// the in-process backplane remembers at most `max_ids` per room
    /// (default [`DEFAULT_DEDUP_IDS`]), forgetting the oldest first. With
    /// Redis each id is a key that expires after `window`, so Redis holds
    /// as many as the rooms accept in one window; `max_ids` does not apply.
    /// A window shorter than a millisecond counts as one.
    pub fn with_dedup(self, window: Duration, max_ids: usize) -> StreamHub<R> {
        *lock(&self.inner.dedup) = Dedup { window, max_ids };
        self
    }

    /// The room called `name`. With the Redis backplane this process
    /// subscribes to the room's channel the first time (and waits for Redis
    /// to confirm it, so nothing published after this returns is missed);
    /// while Redis is down the room is opened anyway and subscribed when
    /// the connection is back.
    ///
    /// # Errors
    ///
    /// [`BackplaneError::Room`] for an invalid name.
    pub async fn room(&self, name: &str) -> Result<StreamRoom<R>, BackplaneError> {
        let room = self.inner.hub.room(name)?;
        let hold: Option<Arc<dyn Send + Sync>> = match &self.inner.backend {
            Backend::Local(_, _) => None,
            #[cfg(feature = "redis")]
            Backend::Redis(node) => Some(node.hold(&room).await),
        };
        Ok(StreamRoom {
            inner: self.inner.clone(),
            room,
            _hold: hold,
        })
    }

    /// The history settings of every room.
    pub fn history_config(&self) -> HistoryConfig {
        self.inner.history
    }

    /// The hub holding this process's side of the rooms.
    pub fn hub(&self) -> &Hub<R> {
        &self.inner.hub
    }

    /// Whether the backplane is connected (always for the local one).
    pub fn is_connected(&self) -> bool {
        match &self.inner.backend {
            Backend::Local(_, _) => true,
            #[cfg(feature = "redis")]
            Backend::Redis(node) => node.is_connected(),
        }
    }
}

impl<R: Runtime> Inner<R> {
    fn now_ms(&self) -> u64 {
        let elapsed = R::now().saturating_duration_since(self.start);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The hub's [`Envelope`], shared with the backplane's receiving side.
#[derive(Clone)]
pub(crate) struct Envelopes(Arc<RwLock<Arc<dyn Envelope>>>);

impl Default for Envelopes {
    fn default() -> Self {
        Envelopes(Arc::new(RwLock::new(Arc::new(Plain))))
    }
}

impl Envelopes {
    fn set(&self, envelope: Arc<dyn Envelope>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = envelope;
    }

    pub(crate) fn get(&self) -> Arc<dyn Envelope> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Frames a publication for this process's members, once.
    pub(crate) fn prepare(&self, position: StreamPosition, message: &Message) -> PreparedMessage {
        PreparedMessage::new(self.get().publication(position, message))
    }
}

/// A handle on one room with history. Cloning is cheap.
pub struct StreamRoom<R: Runtime> {
    inner: Arc<Inner<R>>,
    room: Room<R>,
    /// Keeps this process subscribed to the room on the backplane.
    _hold: Option<Arc<dyn Send + Sync>>,
}

impl<R: Runtime> Clone for StreamRoom<R> {
    fn clone(&self) -> Self {
        StreamRoom {
            inner: self.inner.clone(),
            room: self.room.clone(),
            _hold: self._hold.clone(),
        }
    }
}

impl<R: Runtime> fmt::Debug for StreamRoom<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamRoom")
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> StreamRoom<R> {
    /// The room's name.
    pub fn name(&self) -> &str {
        self.room.name()
    }

    /// This process's side of the room: its members and ring. Publishing
    /// on it directly bypasses the backplane and the history.
    pub fn local(&self) -> &Room<R> {
        &self.room
    }

    /// Publishes `message` and waits until the backplane accepted it: the
    /// result is its position in the room's history. With Redis that is
    /// after Redis ran the publish (history append and channel publish in
    /// one step); members in every process receive it from there.
    ///
    /// # Errors
    ///
    /// [`BackplaneError::Unavailable`] or [`BackplaneError::Timeout`] when
    /// Redis is down or slow: the message may or may not have been
    /// published. Where a retry must not publish it twice, publish with
    /// [`StreamRoom::publish_with_id`].
    pub async fn publish(
        &self,
        message: impl Into<Message>,
    ) -> Result<StreamPosition, BackplaneError> {
        self.append(None, message.into()).await
    }

    /// Publishes `message` as [`StreamRoom::publish`] does, unless a
    /// publication with the same `id` was accepted in this room within the
    /// dedup window ([`StreamHub::with_dedup`], two minutes by default):
    /// then nothing is published and the result is the position of that
    /// first publication. The check and the publish are one atomic step on
    /// the backplane (one script run with Redis), so the same id sent at
    /// once to two processes of the same Redis is still published once.
    ///
    /// This is what makes a retry safe: a client that resends a message
    /// whose acknowledgement it never got (the connection dropped, the
    /// publish timed out after Redis took it), to this process or another,
    /// gets the position the message already has. The id should name the
    /// message uniquely within the room, and include who sent it when
    /// clients choose ids, so that one client cannot acknowledge away
    /// another's message. The message itself is not compared: a second
    /// message with a used id is dropped.
    ///
    /// Ids are remembered per room for the window, with the in-process
    /// backplane also at most the configured number per room (the oldest
    /// are forgotten first), and are forgotten with the room's history
    /// when it expires ([`HistoryConfig::ttl_ms`]).
    ///
    /// # Errors
    ///
    /// [`BackplaneError::InvalidId`] for an empty id or one longer than
    /// [`MAX_PUBLISH_ID_LEN`] bytes; otherwise as for
    /// [`StreamRoom::publish`], after which retrying with the same id is
    /// safe.
    pub async fn publish_with_id(
        &self,
        id: &str,
        message: impl Into<Message>,
    ) -> Result<StreamPosition, BackplaneError> {
        if id.is_empty() || id.len() > MAX_PUBLISH_ID_LEN {
            return Err(BackplaneError::InvalidId(id.len()));
        }
        let dedup = *lock(&self.inner.dedup);
        self.append(Some((id, dedup)), message.into()).await
    }

    /// Publishes, or with an id finds the earlier publication of that id.
    async fn append(
        &self,
        id: Option<(&str, Dedup)>,
        message: Message,
    ) -> Result<StreamPosition, BackplaneError> {
        match &self.inner.backend {
            Backend::Local(local, _) => {
                let now = self.inner.now_ms();
                let mut local = local.lock().unwrap_or_else(|e| e.into_inner());
                let room = local.room(self.name(), self.inner.history, now, true);
                // Looked up and recorded under the lock of the append, so
                // two sends of one id cannot both publish.
                if let Some((id, _)) = id {
                    if let Some(position) = room.recent.get(id, now) {
                        return Ok(position);
                    }
                }
                let position = room.history.append(message.clone(), now);
                if let Some((id, dedup)) = id {
                    room.recent
                        .insert(id, position, now, dedup.window_ms(), dedup.max_ids);
                }
                // Under the lock: the ring gets the publications in the
                // order of their offsets.
                self.room
                    .publish_at(position, self.inner.envelope.prepare(position, &message));
                Ok(position)
            }
            #[cfg(feature = "redis")]
            Backend::Redis(node) => {
                let id = id.map(|(id, dedup)| (id, dedup.window_ms()));
                node.publish(self.name(), &message, &self.inner.history, id)
                    .await
            }
        }
    }

    /// The publications after `since` and the room's current position, or
    /// [`Recovery::NotRecovered`] when they are no longer all held (at most
    /// [`HistoryConfig::max_replay`] are replayed).
    ///
    /// # Errors
    ///
    /// As for [`StreamRoom::publish`].
    pub async fn recover(
        &self,
        since: Option<StreamPosition>,
    ) -> Result<Recovery<Message>, BackplaneError> {
        recover(&self.inner, self.name(), since).await
    }

    /// The room's current position (the last publication's).
    ///
    /// # Errors
    ///
    /// As for [`StreamRoom::publish`].
    pub async fn position(&self) -> Result<StreamPosition, BackplaneError> {
        Ok(self.recover(None).await?.current())
    }

    /// Marks `client` (an id unique to one connection, such as a session
    /// id) present in the room with `info` (such as a nickname) until the
    /// returned [`Presence`] is dropped. Joins and leaves are announced to
    /// the room's members on every node, coalesced per window
    /// ([`StreamHub::with_presence`], through [`Envelope::presence`]).
    /// With Redis the entry is written there before this returns, kept
    /// fresh by this node, and expires [`RedisConfig`]'s `presence_ttl`
    /// after this node stops refreshing it (it died).
    ///
    /// # Errors
    ///
    /// As for [`StreamRoom::publish`]; nothing was entered then.
    pub async fn enter(&self, client: &str, info: &str) -> Result<Presence, BackplaneError> {
        #[cfg(feature = "redis")]
        if let Backend::Redis(node) = &self.inner.backend {
            node.enter(self.name(), client, info).await?;
        }
        self.inner.presence_changed(self.name(), client, Some(info));
        Ok(Presence {
            inner: Box::new(self.inner.clone()),
            room: self.name().to_owned(),
            client: client.to_owned(),
        })
    }

    /// Who is present in the room: `(client, info)` pairs, on every node
    /// (with Redis; expired entries of dead nodes are removed first), in no
    /// particular order.
    ///
    /// # Errors
    ///
    /// As for [`StreamRoom::publish`].
    pub async fn presence(&self) -> Result<Vec<(String, String)>, BackplaneError> {
        match &self.inner.backend {
            Backend::Local(_, _) => {
                let presence = lock(&self.inner.presence);
                Ok(presence
                    .get(self.name())
                    .map(|room| {
                        room.present
                            .iter()
                            .map(|(c, i)| (c.clone(), i.clone()))
                            .collect()
                    })
                    .unwrap_or_default())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(node) => {
                let max_names = lock(&self.inner.presence_config).max_names;
                node.presence(self.name(), max_names).await
            }
        }
    }

    /// Subscribes now and catches up from `since`: the subscription yields
    /// the publications after `since` (fetched from the history), then live
    /// ones, with no gap and no duplicate, or says they could not be
    /// recovered. With `since` `None` it starts live.
    pub fn subscribe(&self, since: Option<StreamPosition>) -> StreamSubscription<R> {
        let sub = self.room.subscribe();
        let catch_up = CatchUp::new(since, self.inner.history.catch_up_buffer());
        let fetch = since.map(|since| {
            let inner = self.inner.clone();
            let name = self.name().to_owned();
            let fetch: BoxFuture<'static, _> =
                Box::pin(async move { recover(&inner, &name, Some(since)).await });
            fetch
        });
        StreamSubscription {
            sub,
            catch_up,
            fetch,
            since,
            inner: self.inner.clone(),
        }
    }

    /// Subscribes now and forwards the room to `sender` from `since` (see
    /// [`StreamRoom::subscribe`]), enveloped, under the room's lag policy;
    /// like [`Room::join`] the forwarding runs inside the connection's own
    /// task. Call before the `101` is written.
    pub fn join(&self, sender: Sender, since: Option<StreamPosition>) -> Member {
        let sub = self.subscribe(since);
        let member_queue = self.inner.hub.config().member_queue.max(1);
        let skipped = Arc::new(AtomicU64::new(0));
        let shared = sender.shared().clone();
        let envelope = self.inner.envelope.get();
        let forwarding = forward(
            StreamSource { sub, envelope },
            sender,
            skipped.clone(),
            member_queue,
        );
        let attachment = shared.attach(Box::pin(forwarding));
        Member::new(attachment, skipped)
    }
}

/// A client's presence in a room (see [`StreamRoom::enter`]); dropping it
/// leaves.
pub struct Presence {
    inner: Box<dyn Leave>,
    room: String,
    client: String,
}

impl fmt::Debug for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presence")
            .field("room", &self.room)
            .field("client", &self.client)
            .finish()
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.inner.leave(&self.room, &self.client);
    }
}

/// The hub behind a [`Presence`], without its runtime parameter.
trait Leave: Send + Sync {
    fn leave(&self, room: &str, client: &str);
}

impl<R: Runtime> Leave for Arc<Inner<R>> {
    fn leave(&self, room: &str, client: &str) {
        #[cfg(feature = "redis")]
        if let Backend::Redis(node) = &self.backend {
            node.leave(room, client);
        }
        self.presence_changed(room, client, None);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R: Runtime> Inner<R> {
    /// `client` entered with `info` (`Some`) or left (`None`): recorded,
    /// and put into the room's batch; the first change of a window arms
    /// its announcement.
    fn presence_changed(self: &Arc<Self>, room: &str, client: &str, info: Option<&str>) {
        let now = R::now();
        let opened = {
            let mut presence = lock(&self.presence);
            let entry = presence
                .entry(room.to_owned())
                .or_insert_with(|| RoomPresence {
                    present: HashMap::new(),
                    batch: PresenceBatch::new(*lock(&self.presence_config)),
                });
            let opened = match info {
                Some(info) => {
                    entry.present.insert(client.to_owned(), info.to_owned());
                    entry.batch.join(info, now)
                }
                None => match entry.present.remove(client) {
                    Some(info) => entry.batch.leave(&info, now),
                    None => false,
                },
            };
            entry.batch.poll_timeout().filter(|_| opened)
        };
        if let Some(due) = opened {
            let inner = Arc::downgrade(self);
            let room = room.to_owned();
            R::spawn(async move {
                let _ = R::sleep_until(due).await;
                if let Some(inner) = inner.upgrade() {
                    inner.announce(&room).await;
                }
            });
        }
    }

    /// Hands the room's batch to every node's members.
    async fn announce(&self, room: &str) {
        let change = {
            let mut presence = lock(&self.presence);
            let Some(entry) = presence.get_mut(room) else {
                return;
            };
            // The sleep may end a little early on a coarse timer.
            let due = entry.batch.poll_timeout();
            let change = due.and_then(|due| entry.batch.take(R::now().max(due)));
            if entry.present.is_empty() && entry.batch.poll_timeout().is_none() {
                presence.remove(room);
            }
            change
        };
        let Some(change) = change else {
            return;
        };
        match &self.backend {
            Backend::Local(_, _) => self.deliver_presence(room, &change),
            #[cfg(feature = "redis")]
            Backend::Redis(node) => node.announce(room, &change).await,
        }
    }

    /// Gives this node's members of `room` a presence change.
    pub(crate) fn deliver_presence(&self, room: &str, change: &PresenceChange) {
        let Some(notice) = self.envelope.get().presence(change) else {
            return;
        };
        // A room nobody holds is created and dropped again: no members.
        if let Ok(room) = self.hub.room(room) {
            room.publish_prepared(PreparedMessage::new(notice));
        }
    }

    /// This node's presences, by room (what the Redis node refreshes).
    #[cfg(feature = "redis")]
    pub(crate) fn local_presences(&self) -> Vec<(String, Vec<(String, String)>)> {
        lock(&self.presence)
            .iter()
            .filter(|(_, p)| !p.present.is_empty())
            .map(|(room, p)| {
                let entries = p
                    .present
                    .iter()
                    .map(|(c, i)| (c.clone(), i.clone()))
                    .collect();
                (room.clone(), entries)
            })
            .collect()
    }
}

async fn recover<R: Runtime>(
    inner: &Inner<R>,
    name: &str,
    since: Option<StreamPosition>,
) -> Result<Recovery<Message>, BackplaneError> {
    match &inner.backend {
        Backend::Local(local, _) => {
            let now = inner.now_ms();
            let mut local = local.lock().unwrap_or_else(|e| e.into_inner());
            let history = local.history(name, inner.history, now, false);
            Ok(match since {
                Some(since) => history.recover(since, now),
                None => Recovery::NotRecovered {
                    current: history.top(),
                },
            })
        }
        #[cfg(feature = "redis")]
        Backend::Redis(node) => node.recover(name, since).await,
    }
}

/// What a [`StreamSubscription`] hands on.
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamEvent {
    /// A publication, framed for members ([`RoomMessage::position`] is its
    /// position).
    Publication(Arc<RoomMessage>),
    /// The catch-up completed with nothing lost; the subscriber stands at
    /// this position.
    Recovered(StreamPosition),
    /// Publications were lost: reload state; what follows continues from
    /// this position.
    NotRecovered(StreamPosition),
    /// The room's ring overwrote this many messages this subscriber had
    /// not taken (a [`StreamEvent::NotRecovered`] follows with the next
    /// publication).
    Lagged(u64),
    /// The room's lag policy closes this subscriber.
    Evicted(CloseCode),
}

/// A subscription to a room with history that catches up after a
/// reconnect (see [`StreamRoom::subscribe`]).
pub struct StreamSubscription<R: Runtime> {
    sub: Subscription<R>,
    catch_up: CatchUp<Arc<RoomMessage>>,
    fetch: Option<BoxFuture<'static, Result<Recovery<Message>, BackplaneError>>>,
    since: Option<StreamPosition>,
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> fmt::Debug for StreamSubscription<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSubscription")
            .field("position", &self.catch_up.position())
            .field("fetching", &self.fetch.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> StreamSubscription<R> {
    /// The next event; cancel-safe.
    pub async fn recv(&mut self) -> StreamEvent {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The position of the last event handed out (what a client would
    /// reconnect with).
    pub fn position(&self) -> Option<StreamPosition> {
        self.catch_up.position()
    }

    /// Polls for the next event. While the history is fetched, live
    /// publications wait in the room's ring.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<StreamEvent> {
        loop {
            if let Some(event) = self.catch_up.poll_event() {
                return Poll::Ready(match event {
                    CatchUpEvent::Publication(_, message) => StreamEvent::Publication(message),
                    CatchUpEvent::Recovered { current } => StreamEvent::Recovered(current),
                    CatchUpEvent::NotRecovered { current } => StreamEvent::NotRecovered(current),
                    // Events added to the core later carry nothing to deliver.
                    _ => continue,
                });
            }
            if let Some(fetch) = &mut self.fetch {
                let recovery = match fetch.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(recovery)) => recovery,
                    // The history could not be read: the client cannot be
                    // told it missed nothing. It reloads; its position
                    // moves on with the next publication.
                    Poll::Ready(Err(_)) => Recovery::NotRecovered {
                        current: self.since.unwrap_or(StreamPosition::new(0, 0)),
                    },
                };
                self.fetch = None;
                let current = recovery.current();
                let recovery = match recovery {
                    Recovery::Recovered { items, current } => Recovery::Recovered {
                        items: items
                            .into_iter()
                            .map(|(pos, message)| {
                                let prepared = self.inner.envelope.prepare(pos, &message);
                                (pos, Arc::new(RoomMessage::with_position(0, prepared, pos)))
                            })
                            .collect(),
                        current,
                    },
                    _ => Recovery::NotRecovered { current },
                };
                self.catch_up.on_history(recovery);
                continue;
            }
            match self.sub.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(RoomEvent::Message(message)) => match message.position() {
                    Some(position) => self.catch_up.on_live(position, message),
                    // Published on the local room directly: no position.
                    None => return Poll::Ready(StreamEvent::Publication(message)),
                },
                Poll::Ready(RoomEvent::Lagged(n)) => return Poll::Ready(StreamEvent::Lagged(n)),
                Poll::Ready(RoomEvent::Evicted(code)) => {
                    return Poll::Ready(StreamEvent::Evicted(code))
                }
                Poll::Ready(_) => {}
            }
        }
    }
}

/// What a member of [`StreamRoom::join`] forwards: the subscription's
/// events, with the catch-up notices enveloped for the client.
struct StreamSource<R: Runtime> {
    sub: StreamSubscription<R>,
    envelope: Arc<dyn Envelope>,
}

impl<R: Runtime> MemberSource<R> for StreamSource<R> {
    fn subscription(&mut self) -> &mut Subscription<R> {
        &mut self.sub.sub
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<RoomEvent>> {
        self.sub.poll_recv(cx).map(|event| match event {
            StreamEvent::Publication(message) => Some(RoomEvent::Message(message)),
            StreamEvent::Lagged(n) => Some(RoomEvent::Lagged(n)),
            StreamEvent::Evicted(code) => Some(RoomEvent::Evicted(code)),
            StreamEvent::Recovered(current) => self
                .envelope
                .recovered(current)
                .map(|notice| RoomEvent::Message(notice_message(notice))),
            StreamEvent::NotRecovered(current) => self
                .envelope
                .not_recovered(current)
                .map(|notice| RoomEvent::Message(notice_message(notice))),
        })
    }
}

fn notice_message(notice: Message) -> Arc<RoomMessage> {
    Arc::new(RoomMessage::new(0, PreparedMessage::new(notice)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_local_histories_are_dropped_after_their_ttl() {
        let config = HistoryConfig::default()
            .with_size(8)
            .with_ttl_ms(Some(1_000));
        let mut local = LocalRooms {
            rooms: HashMap::new(),
            rng: Rng::new(SeedSource::Fixed(7)),
            since_sweep: 0,
        };
        let first = local
            .history("idle", config, 0, true)
            .append(Message::from("x"), 0);
        local
            .history("busy", config, 0, true)
            .append(Message::from("y"), 0);
        // Reading does not keep a room alive; publishing does.
        for _ in 0..SWEEP_EVERY {
            local.history("idle", config, 900, false);
            local.history("busy", config, 900, true);
        }
        for _ in 0..SWEEP_EVERY {
            local.history("other", config, 1_500, true);
        }
        assert!(!local.rooms.contains_key("idle"));
        assert!(local.rooms.contains_key("busy"));
        // Used again, the room starts over in another epoch.
        let again = local.history("idle", config, 1_600, true).top();
        assert_eq!(again.offset, 0);
        assert_ne!(again.epoch, first.epoch);
        // Without a ttl nothing is dropped.
        let forever = HistoryConfig::default().with_size(8);
        local.history("kept", forever, 0, true);
        for _ in 0..2 * SWEEP_EVERY {
            local.history("other", forever, u64::MAX / 2, true);
        }
        assert!(local.rooms.contains_key("kept"));
    }
}
