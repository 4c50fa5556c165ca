//! The Redis backplane: one connection per process, over the runtime's own
//! TCP stream, speaking RESP3 so that the room subscriptions and the
//! publish and history scripts share it.
//!
//! Keys of a room `<name>` under the prefix `<p>` (default `wavecast`):
//!
//! - `{<p>:<name>}` — the pub/sub channel;
//! - `{<p>:<name>}:h` — the history, a stream whose entry ids are the
//!   offsets (`<offset>-0`), trimmed to `history.size` entries;
//! - `{<p>:<name>}:m` — a hash with the epoch (`e`) and the last offset
//!   (`o`);
//! - `{<p>:<name>}:i:<id>` — for a publication with an id
//!   (`publish_with_id`), its position as `<offset> <epoch hex>`,
//!   expiring after the dedup window.
//!
//! The braces are a Redis Cluster hash tag: a room's keys and channel live
//! in one slot, which is what the scripts (and sharded pub/sub) require.
//!
//! A publish runs one script: take the epoch (a new one when the hash is
//! gone: first use, Redis restarted without persistence, or the history
//! expired), increment the offset, append to the stream, publish
//! `<offset> <epoch> <t|b><payload>` on the channel, and answer the
//! position. Redis runs a script atomically, so the channel carries the
//! publications in offset order. With an id the same script first looks
//! the id's key up and, when it is there, answers the position it holds
//! without publishing; otherwise it publishes and sets the key. Being one
//! script, no other publish of that id can slip in between.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, ProtocolVersion, PushInfo, Value,
};
use tokio_util::compat::FuturesAsyncReadCompatExt;
use wavecast_core::backoff::Backoff;
use wavecast_core::history::{CatchUp, CatchUpEvent, HistoryConfig, Recovery};
use wavecast_core::presence::PresenceChange;
use wavecast_core::rng::Rng;
use wavecast_core::Utf8Bytes;
use wavecast_core::{Message, SeedSource, StreamPosition};

use super::{new_epoch, Backend, BackplaneError, Envelopes, StreamHub};
use crate::broadcast::Room;
use crate::runtime::{sleep, until, Runtime};
use wavecast_core::room::RoomConfig;

/// Where the Redis backplane connects and how it behaves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`.
    pub url: String,
    /// Prefix of every key and channel, so several applications can share
    /// one Redis. Default `wavecast`.
    pub prefix: String,
    /// How long a command may take before the caller gets
    /// [`BackplaneError::Timeout`]; also the connect timeout. Default 2 s.
    pub timeout: Duration,
    /// The delays between reconnect attempts after the connection to Redis
    /// is lost (default: 100 ms doubling to 5 s, with jitter, forever).
    pub backoff: Backoff,
    /// How long a presence entry outlives the last refresh of its node:
    /// every node refreshes its entries every third of it, so the entries
    /// of a node that died without cleaning up disappear after at most
    /// this long. Default 30 s.
    pub presence_ttl: Duration,
}

impl RedisConfig {
    /// The defaults, for the server at `url`.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            prefix: "wavecast".to_owned(),
            timeout: Duration::from_secs(2),
            backoff: Backoff::new()
                .with_initial(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(5))
                .with_max_attempts(None),
            presence_ttl: Duration::from_secs(30),
        }
    }

    /// Sets [`RedisConfig::presence_ttl`] (at least 30 ms).
    pub fn with_presence_ttl(mut self, ttl: Duration) -> RedisConfig {
        self.presence_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Sets [`RedisConfig::prefix`].
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> RedisConfig {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`RedisConfig::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.timeout = timeout;
        self
    }
}

impl<R: Runtime> StreamHub<R> {
    /// Rooms shared with every process connected to the same Redis (see
    /// the module docs of [`StreamHub`]). Connects before returning; from
    /// then on a lost connection is re-established in the background with
    /// [`RedisConfig::backoff`], and the rooms with local members are
    /// subscribed again.
    ///
    /// # Errors
    ///
    /// [`BackplaneError::Unavailable`] when the URL is invalid or Redis
    /// cannot be reached now; [`BackplaneError::Timeout`] when it does not
    /// answer within [`RedisConfig::timeout`].
    pub async fn redis(
        config: RedisConfig,
        rooms: RoomConfig,
        history: HistoryConfig,
    ) -> Result<StreamHub<R>, BackplaneError> {
        let info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| BackplaneError::Unavailable(format!("{}: {e}", config.url)))?;
        let (host, port) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            _ => {
                return Err(BackplaneError::Unavailable(format!(
                    "{}: only redis:// over TCP is supported",
                    config.url
                )))
            }
        };
        let redis = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let envelopes = Envelopes::default();
        let shared = Arc::new(NodeShared {
            host,
            port,
            redis,
            config,
            history,
            conn: Mutex::new(None),
            rooms: Mutex::new(HashMap::new()),
            envelopes: envelopes.clone(),
            rng: Mutex::new(Rng::new(SeedSource::Os)),
            publish: redis::Script::new(PUBLISH),
            recover: redis::Script::new(RECOVER),
            enter: redis::Script::new(ENTER),
            presence: redis::Script::new(PRESENCE),
            stopped: AtomicBool::new(false),
        });
        let ended = connect(&shared).await?;
        R::spawn(supervise(Arc::downgrade(&shared), ended));
        let refresh_every = shared.config.presence_ttl / 3;
        let hub =
            StreamHub::with_backend(rooms, history, envelopes, Backend::Redis(Node { shared }));
        R::spawn(refresh_presence(Arc::downgrade(&hub.inner), refresh_every));
        Ok(hub)
    }
}

/// Appends and publishes. KEYS: history stream, meta hash, and for a
/// publication with an id its key. ARGV: payload, kind (`t` or `b`),
/// history size, ttl in seconds (0: none), channel, epoch to start if there
/// is none, dedup window in ms (used with the id key).
const PUBLISH: &str = r"
if KEYS[3] then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local space = string.find(seen, ' ', 1, true)
    return {string.sub(seen, 1, space - 1), string.sub(seen, space + 1)}
  end
end
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[6]
  redis.call('HSET', KEYS[2], 'e', epoch)
end
local offset = redis.call('HINCRBY', KEYS[2], 'o', 1)
if tonumber(ARGV[3]) > 0 then
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], offset .. '-0', 'k', ARGV[2], 'd', ARGV[1])
end
if tonumber(ARGV[4]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[5], offset .. ' ' .. epoch .. ' ' .. ARGV[2] .. ARGV[1])
if KEYS[3] then
  redis.call('SET', KEYS[3], offset .. ' ' .. epoch, 'PX', ARGV[7])
end
return {offset, epoch}
";

/// Reads the position and, when asked, the entries after an offset.
/// KEYS: history stream, meta hash. ARGV: offset to read after (-1: none),
/// epoch to start if there is none, most entries to read, ttl in seconds.
const RECOVER: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[2], 'e', epoch, 'o', 0)
  if tonumber(ARGV[4]) > 0 then
    redis.call('EXPIRE', KEYS[2], ARGV[4])
  end
end
local top = redis.call('HGET', KEYS[2], 'o') or '0'
local items = {}
if tonumber(ARGV[1]) >= 0 then
  items = redis.call('XRANGE', KEYS[1], (tonumber(ARGV[1]) + 1) .. '-0', '+', 'COUNT', ARGV[3])
end
return {epoch, top, items}
";

/// Enters or refreshes presences. KEYS: expiry zset, info hash. ARGV: ttl
/// in ms, then client and info pairs.
const ENTER: &str = r"
local t = redis.call('TIME')
local expiry = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], expiry, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
";

/// Drops the expired presences; answers the infos of those dropped and the
/// rest as client, info pairs. KEYS: expiry zset, info hash.
const PRESENCE: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = {}
for _, client in ipairs(dead) do
  local info = redis.call('HGET', KEYS[2], client)
  if info then
    table.insert(gone, info)
  end
  redis.call('HDEL', KEYS[2], client)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {gone, redis.call('HGETALL', KEYS[2])}
";

/// The Redis side of a [`StreamHub`].
pub(crate) struct Node<R: Runtime> {
    shared: Arc<NodeShared<R>>,
}

impl<R: Runtime> Drop for Node<R> {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
    }
}

struct NodeShared<R: Runtime> {
    host: String,
    port: u16,
    redis: redis::RedisConnectionInfo,
    config: RedisConfig,
    history: HistoryConfig,
    /// `None` while disconnected.
    conn: Mutex<Option<MultiplexedConnection>>,
    /// The rooms this process has members in, by name.
    rooms: Mutex<HashMap<String, Held<R>>>,
    envelopes: Envelopes,
    rng: Mutex<Rng>,
    publish: redis::Script,
    recover: redis::Script,
    enter: redis::Script,
    presence: redis::Script,
    stopped: AtomicBool,
}

struct Held<R: Runtime> {
    room: Room<R>,
    holders: usize,
    /// Whether Redis confirmed the subscription on the current connection.
    subscribed: bool,
    /// The position of the last publication handed to the local room.
    tail: Option<StreamPosition>,
    /// After a reconnect, while the publications missed during the outage
    /// are read from the history: the live ones arriving meanwhile wait
    /// here, to go after them (see [`refill`]).
    refill: Option<CatchUp<Message>>,
}

impl<R: Runtime> Held<R> {
    fn new(room: Room<R>) -> Held<R> {
        Held {
            room,
            holders: 0,
            subscribed: false,
            tail: None,
            refill: None,
        }
    }

    /// Hands a publication to the local room, framed once for its members.
    fn deliver(&mut self, position: StreamPosition, message: &Message, envelopes: &Envelopes) {
        self.tail = Some(position);
        self.room
            .publish_at(position, envelopes.prepare(position, message));
    }
}

/// Keeps this process subscribed to a room while a `StreamRoom` for it
/// lives.
struct Hold<R: Runtime> {
    shared: Weak<NodeShared<R>>,
    name: String,
}

impl<R: Runtime> Drop for Hold<R> {
    fn drop(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let last = {
            let mut rooms = lock(&shared.rooms);
            match rooms.get_mut(&self.name) {
                Some(held) if held.holders > 1 => {
                    held.holders -= 1;
                    false
                }
                Some(_) => {
                    rooms.remove(&self.name);
                    true
                }
                None => false,
            }
        };
        if last {
            if let Some(mut conn) = lock(&shared.conn).clone() {
                let channels = shared.channels(&self.name);
                let timeout = shared.config.timeout;
                R::spawn(async move {
                    let _ = until::<R, _>(R::now() + timeout, conn.unsubscribe(channels.to_vec()))
                        .await;
                });
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R: Runtime> NodeShared<R> {
    fn base(&self, room: &str) -> String {
        format!("{{{}:{}}}", self.config.prefix, room)
    }

    /// The room's publication channel and its presence channel.
    fn channels(&self, room: &str) -> [String; 2] {
        let base = self.base(room);
        let presence = format!("{base}:x");
        [base, presence]
    }

    /// The room a channel belongs to, and whether it is the presence
    /// channel.
    fn room_of<'a>(&self, channel: &'a str) -> Option<(&'a str, bool)> {
        let rest = channel
            .strip_prefix('{')?
            .strip_prefix(self.config.prefix.as_str())?
            .strip_prefix(':')?;
        let (room, kind) = rest.rsplit_once('}')?;
        match kind {
            "" => Some((room, false)),
            ":x" => Some((room, true)),
            _ => None,
        }
    }

    fn epoch_candidate(&self) -> String {
        format!("{:x}", new_epoch(&mut lock(&self.rng)))
    }

    fn connection(&self) -> Result<MultiplexedConnection, BackplaneError> {
        lock(&self.conn)
            .clone()
            .ok_or_else(|| BackplaneError::Unavailable("not connected to Redis".to_owned()))
    }

    async fn bounded<T>(
        &self,
        request: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BackplaneError> {
        match until::<R, _>(R::now() + self.config.timeout, request).await {
            None => Err(BackplaneError::Timeout(self.config.timeout)),
            Some(Err(e)) => Err(BackplaneError::Unavailable(e.to_string())),
            Some(Ok(v)) => Ok(v),
        }
    }

    /// A publication pushed by Redis: into the local room's ring, framed
    /// once for every local member.
    fn on_push(&self, info: PushInfo) {
        let Some(msg) = redis::Msg::from_push_info(info) else {
            return;
        };
        let Some((name, is_presence)) = self.room_of(msg.get_channel_name()) else {
            return;
        };
        if is_presence {
            let room = match lock(&self.rooms).get(name) {
                Some(held) => held.room.clone(),
                None => return,
            };
            let Some(change) = decode_presence(msg.get_payload_bytes()) else {
                return;
            };
            if let Some(notice) = self.envelopes.get().presence(&change) {
                room.publish_prepared(wavecast_core::PreparedMessage::new(notice));
            }
            return;
        }
        let Some((position, message)) = parse_publication(msg.get_payload_bytes()) else {
            return;
        };
        // Under the lock: a refill that ends concurrently hands over in
        // order.
        let mut rooms = lock(&self.rooms);
        let Some(held) = rooms.get_mut(name) else {
            return;
        };
        match &mut held.refill {
            Some(refill) => refill.on_live(position, message),
            None => held.deliver(position, &message, &self.envelopes),
        }
    }

    /// The publications of `room` after `since`, from the history (see
    /// [`super::StreamRoom::recover`]).
    async fn recover(
        &self,
        mut conn: MultiplexedConnection,
        room: &str,
        since: Option<StreamPosition>,
    ) -> Result<Recovery<Message>, BackplaneError> {
        let history = &self.history;
        let base = self.base(room);
        let after: i64 = since.map_or(-1, |s| i64::try_from(s.offset).unwrap_or(i64::MAX));
        let mut invocation = self.recover.key(format!("{base}:h"));
        invocation
            .key(format!("{base}:m"))
            .arg(after)
            .arg(self.epoch_candidate())
            .arg(history.max_replay.saturating_add(1))
            .arg(ttl_seconds(history));
        let value: Value = self.bounded(invocation.invoke_async(&mut conn)).await?;
        let Value::Array(parts) = value else {
            return Err(protocol(&value));
        };
        let [epoch_v, top_v, items_v] = &parts[..] else {
            return Err(BackplaneError::Protocol(format!("{parts:?}")));
        };
        let current = StreamPosition::new(epoch(epoch_v)?, integer(top_v)?);
        let Some(since) = since else {
            return Ok(Recovery::NotRecovered { current });
        };
        let missed = current.offset.saturating_sub(since.offset);
        if since.epoch != current.epoch
            || since.offset > current.offset
            || usize::try_from(missed).map_or(true, |m| m > history.max_replay)
        {
            return Ok(Recovery::NotRecovered { current });
        }
        let Value::Array(entries) = items_v else {
            return Err(protocol(items_v));
        };
        let mut items = Vec::with_capacity(entries.len());
        for entry in entries {
            let (offset, message) = stream_entry(entry)?;
            if offset > current.offset {
                break;
            }
            items.push((StreamPosition::new(current.epoch, offset), message));
        }
        // Everything after `since` must still be there, without a hole.
        let complete = items.len() as u64 == missed
            && items
                .iter()
                .enumerate()
                .all(|(i, (p, _))| p.offset == since.offset + 1 + i as u64);
        Ok(if complete {
            Recovery::Recovered { items, current }
        } else {
            Recovery::NotRecovered { current }
        })
    }
}

/// `<offset> <epoch hex> <t|b><payload>`.
fn parse_publication(payload: &[u8]) -> Option<(StreamPosition, Message)> {
    let mut parts = payload.splitn(3, |&b| b == b' ');
    let offset = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let epoch = u64::from_str_radix(std::str::from_utf8(parts.next()?).ok()?, 16).ok()?;
    let rest = parts.next()?;
    let message = message_of(*rest.first()?, &rest[1..])?;
    Some((StreamPosition::new(epoch, offset), message))
}

fn message_of(kind: u8, data: &[u8]) -> Option<Message> {
    match kind {
        b't' => Utf8Bytes::try_from(Bytes::copy_from_slice(data))
            .ok()
            .map(Message::Text),
        b'b' => Some(Message::Binary(Bytes::copy_from_slice(data))),
        _ => None,
    }
}

/// Opens the connection, subscribes every held room, and installs it.
/// Returns a future that completes when the connection is lost.
async fn connect<R: Runtime>(
    shared: &Arc<NodeShared<R>>,
) -> Result<futures_channel::oneshot::Receiver<()>, BackplaneError> {
    let deadline = R::now() + shared.config.timeout;
    let opened = until::<R, _>(deadline, async {
        let tcp = R::connect(shared.host.clone(), shared.port)
            .await
            .map_err(|e| BackplaneError::Unavailable(format!("{}: {e}", shared.config.url)))?;
        let weak = Arc::downgrade(shared);
        let push = move |info: PushInfo| -> Result<(), ()> {
            match weak.upgrade() {
                Some(shared) => {
                    shared.on_push(info);
                    Ok(())
                }
                None => Err(()),
            }
        };
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(None)
            .set_push_sender(push);
        MultiplexedConnection::new_with_config(&shared.redis, tcp.compat(), config)
            .await
            .map_err(|e| BackplaneError::Unavailable(format!("{}: {e}", shared.config.url)))
    })
    .await;
    let (mut conn, driver) = match opened {
        None => return Err(BackplaneError::Timeout(shared.config.timeout)),
        Some(result) => result?,
    };
    let (ended_tx, ended) = futures_channel::oneshot::channel();
    R::spawn(async move {
        driver.await;
        let _ = ended_tx.send(());
    });
    // The rooms that had publications before the connection was lost miss
    // what was published meanwhile: from now on their live publications
    // wait until those are read from the history.
    let refills: Vec<(String, StreamPosition)> = lock(&shared.rooms)
        .iter_mut()
        .filter_map(|(name, held)| {
            let tail = held.tail?;
            held.refill = Some(CatchUp::new(Some(tail), shared.history.catch_up_buffer()));
            Some((name.clone(), tail))
        })
        .collect();
    subscribe_pending(shared, &mut conn).await?;
    *lock(&shared.conn) = Some(conn.clone());
    // A room opened while the connection was being set up found none, and
    // left its subscription to this one; from here on `hold` subscribes
    // by itself.
    subscribe_pending(shared, &mut conn).await?;
    refill(shared, conn, refills).await;
    Ok(ended)
}

/// Subscribes the held rooms whose subscription Redis has not confirmed on
/// this connection.
async fn subscribe_pending<R: Runtime>(
    shared: &Arc<NodeShared<R>>,
    conn: &mut MultiplexedConnection,
) -> Result<(), BackplaneError> {
    let names: Vec<String> = lock(&shared.rooms)
        .iter()
        .filter(|(_, held)| !held.subscribed)
        .map(|(name, _)| name.clone())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    subscribe(shared, conn, names).await
}

/// Subscribes the rooms `names` and, once Redis confirmed, marks them so.
async fn subscribe<R: Runtime>(
    shared: &Arc<NodeShared<R>>,
    conn: &mut MultiplexedConnection,
    names: Vec<String>,
) -> Result<(), BackplaneError> {
    let channels: Vec<String> = names.iter().flat_map(|n| shared.channels(n)).collect();
    shared.bounded(conn.subscribe(channels)).await?;
    let mut rooms = lock(&shared.rooms);
    for name in names {
        if let Some(held) = rooms.get_mut(&name) {
            held.subscribed = true;
        }
    }
    Ok(())
}

/// Hands each room the publications it missed while disconnected, read
/// from the history, then the live ones that arrived meanwhile, without a
/// gap or a duplicate. Where the history no longer holds them (Redis
/// restarted: a new epoch; or more were published than it keeps), the
/// room goes on with the live ones and its members see the gap, so each
/// is told it was not recovered.
async fn refill<R: Runtime>(
    shared: &Arc<NodeShared<R>>,
    conn: MultiplexedConnection,
    rooms: Vec<(String, StreamPosition)>,
) {
    for (name, since) in rooms {
        let recovery = shared
            .recover(conn.clone(), &name, Some(since))
            .await
            // Unreadable now: not recovered; the members notice the gap.
            .unwrap_or(Recovery::NotRecovered { current: since });
        let mut rooms = lock(&shared.rooms);
        let Some(held) = rooms.get_mut(&name) else {
            continue;
        };
        let Some(mut catch_up) = held.refill.take() else {
            continue;
        };
        catch_up.on_history(recovery);
        while let Some(event) = catch_up.poll_event() {
            if let CatchUpEvent::Publication(position, message) = event {
                held.deliver(position, &message, &shared.envelopes);
            }
        }
    }
}

/// Reconnects whenever the connection is lost, until the hub is dropped.
async fn supervise<R: Runtime>(
    shared: Weak<NodeShared<R>>,
    mut ended: futures_channel::oneshot::Receiver<()>,
) {
    let mut rng = Rng::new(SeedSource::Os);
    loop {
        let _ = (&mut ended).await;
        let Some(node) = shared.upgrade() else {
            return;
        };
        *lock(&node.conn) = None;
        for held in lock(&node.rooms).values_mut() {
            held.subscribed = false;
        }
        let mut backoff = node.config.backoff.clone();
        drop(node);
        loop {
            let delay = backoff
                .next_delay(&mut rng)
                .unwrap_or(Duration::from_secs(5));
            sleep::<R>(delay).await;
            let Some(node) = shared.upgrade() else {
                return;
            };
            if node.stopped.load(Ordering::Relaxed) {
                return;
            }
            if let Ok(next) = connect(&node).await {
                ended = next;
                break;
            }
        }
    }
}

impl<R: Runtime> Node<R> {
    pub(crate) fn is_connected(&self) -> bool {
        lock(&self.shared.conn).is_some()
    }

    /// Keeps this process subscribed to `room` while the result lives;
    /// waits for Redis to confirm the first subscription.
    pub(crate) async fn hold(&self, room: &Room<R>) -> Arc<dyn Send + Sync> {
        let name = room.name().to_owned();
        let subscribed = {
            let mut rooms = lock(&self.shared.rooms);
            let held = rooms
                .entry(name.clone())
                .or_insert_with(|| Held::new(room.clone()));
            held.holders += 1;
            held.subscribed
        };
        let hold = Arc::new(Hold {
            shared: Arc::downgrade(&self.shared),
            name: name.clone(),
        });
        // Every caller that finds the subscription unconfirmed subscribes
        // (again: Redis keeps one) and waits for the confirmation, so none
        // returns before publications reach this process. While
        // disconnected the reconnect subscribes it.
        if !subscribed {
            if let Ok(mut conn) = self.shared.connection() {
                let _ = subscribe(&self.shared, &mut conn, vec![name]).await;
            }
        }
        hold
    }

    /// Publishes `message`; with `id` (and its dedup window in ms) only
    /// when that id was not published in the window, answering the
    /// position of its publication then.
    pub(crate) async fn publish(
        &self,
        room: &str,
        message: &Message,
        history: &HistoryConfig,
        id: Option<(&str, u64)>,
    ) -> Result<StreamPosition, BackplaneError> {
        let shared = &self.shared;
        let mut conn = shared.connection()?;
        let base = shared.base(room);
        let kind = if message.is_text() { "t" } else { "b" };
        let mut invocation = shared.publish.key(format!("{base}:h"));
        invocation
            .key(format!("{base}:m"))
            .arg(message.as_bytes())
            .arg(kind)
            .arg(history.size)
            .arg(ttl_seconds(history))
            .arg(&base)
            .arg(shared.epoch_candidate());
        if let Some((id, window_ms)) = id {
            // In the room's hash tag, so that it shares the room's slot.
            invocation.key(format!("{base}:i:{id}")).arg(window_ms);
        }
        let value: Value = shared.bounded(invocation.invoke_async(&mut conn)).await?;
        match value {
            Value::Array(items) if items.len() == 2 => {
                let offset = integer(&items[0])?;
                let epoch = epoch(&items[1])?;
                Ok(StreamPosition::new(epoch, offset))
            }
            other => Err(protocol(&other)),
        }
    }

    pub(crate) async fn recover(
        &self,
        room: &str,
        since: Option<StreamPosition>,
    ) -> Result<Recovery<Message>, BackplaneError> {
        let conn = self.shared.connection()?;
        self.shared.recover(conn, room, since).await
    }
}

impl<R: Runtime> Node<R> {
    /// Writes (or refreshes) presences of `room`.
    async fn write_presence(
        &self,
        room: &str,
        entries: &[(&str, &str)],
    ) -> Result<(), BackplaneError> {
        let shared = &self.shared;
        let mut conn = shared.connection()?;
        let base = shared.base(room);
        let ttl_ms = u64::try_from(shared.config.presence_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = shared.enter.key(format!("{base}:pz"));
        invocation.key(format!("{base}:ph")).arg(ttl_ms);
        for (client, info) in entries {
            invocation.arg(*client).arg(*info);
        }
        let _: Value = shared.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    pub(crate) async fn enter(
        &self,
        room: &str,
        client: &str,
        info: &str,
    ) -> Result<(), BackplaneError> {
        self.write_presence(room, &[(client, info)]).await
    }

    /// Removes a presence, in the background.
    pub(crate) fn leave(&self, room: &str, client: &str) {
        let Ok(mut conn) = self.shared.connection() else {
            // It expires by itself.
            return;
        };
        let base = self.shared.base(room);
        let client = client.to_owned();
        let timeout = self.shared.config.timeout;
        R::spawn(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("ZREM")
                .arg(format!("{base}:pz"))
                .arg(&client)
                .ignore();
            pipe.cmd("HDEL")
                .arg(format!("{base}:ph"))
                .arg(&client)
                .ignore();
            let _ = until::<R, _>(R::now() + timeout, pipe.query_async::<()>(&mut conn)).await;
        });
    }

    /// Who is present in `room`. Expired entries (of a node that died)
    /// are removed first, and announced to every node as leaves, named up
    /// to `max_names` and counted beyond: the script removes each once, so
    /// one node announces it.
    pub(crate) async fn presence(
        &self,
        room: &str,
        max_names: usize,
    ) -> Result<Vec<(String, String)>, BackplaneError> {
        let shared = &self.shared;
        let mut conn = shared.connection()?;
        let base = shared.base(room);
        let mut invocation = shared.presence.key(format!("{base}:pz"));
        invocation.key(format!("{base}:ph"));
        let value: Value = shared.bounded(invocation.invoke_async(&mut conn)).await?;
        let text = |v: &Value| {
            bytes_of(v)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .ok_or_else(|| protocol(v))
        };
        let [gone, present] = match &value {
            Value::Array(parts) => match &parts[..] {
                [gone, present] => [gone, present],
                _ => return Err(protocol(&value)),
            },
            other => return Err(protocol(other)),
        };
        let Value::Array(gone) = gone else {
            return Err(protocol(gone));
        };
        if !gone.is_empty() {
            let mut left = gone.iter().map(text).collect::<Result<Vec<_>, _>>()?;
            let named = left.len().min(max_names);
            let change = PresenceChange {
                left_more: (left.len() - named) as u64,
                left: {
                    left.truncate(named);
                    left
                },
                ..PresenceChange::default()
            };
            self.announce(room, &change).await;
        }
        match present {
            Value::Array(flat) => flat
                .chunks(2)
                .map(|pair| match pair {
                    [client, info] => Ok((text(client)?, text(info)?)),
                    _ => Err(protocol(present)),
                })
                .collect(),
            Value::Map(pairs) => pairs
                .iter()
                .map(|(client, info)| Ok((text(client)?, text(info)?)))
                .collect(),
            other => Err(protocol(other)),
        }
    }

    /// Publishes one window of this node's presence changes to every node.
    pub(crate) async fn announce(&self, room: &str, change: &PresenceChange) {
        let Ok(mut conn) = self.shared.connection() else {
            return;
        };
        let [_, channel] = self.shared.channels(room);
        let publish = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(encode_presence(change))
            .to_owned();
        let _ = self
            .shared
            .bounded(async move { publish.query_async::<Value>(&mut conn).await })
            .await;
    }
}

/// Keeps this node's presences alive in Redis, and removes (announcing
/// their leaves) the expired entries of nodes that died in the rooms this
/// node holds, until the hub is dropped.
async fn refresh_presence<R: Runtime>(inner: Weak<super::Inner<R>>, every: Duration) {
    loop {
        sleep::<R>(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let Backend::Redis(node) = &inner.backend else {
            return;
        };
        for (room, entries) in inner.local_presences() {
            let entries: Vec<(&str, &str)> = entries
                .iter()
                .map(|(c, i)| (c.as_str(), i.as_str()))
                .collect();
            // One that fails is retried on the next round, well within
            // the entries' lifetime.
            let _ = node.write_presence(&room, &entries).await;
        }
        let held: Vec<String> = lock(&node.shared.rooms).keys().cloned().collect();
        let max_names = lock(&inner.presence_config).max_names;
        for room in held {
            let _ = node.presence(&room, max_names).await;
        }
    }
}

/// A presence change on the wire: `J<n> L<n>` and then each name as
/// `j<len>:<name>` or `l<len>:<name>`, so any name survives.
fn encode_presence(change: &PresenceChange) -> Vec<u8> {
    let mut out = format!("J{} L{}", change.joined_more, change.left_more).into_bytes();
    for (tag, names) in [(b'j', &change.joined), (b'l', &change.left)] {
        for name in names {
            out.push(b' ');
            out.push(tag);
            out.extend_from_slice(format!("{}:", name.len()).as_bytes());
            out.extend_from_slice(name.as_bytes());
        }
    }
    out
}

fn decode_presence(mut bytes: &[u8]) -> Option<PresenceChange> {
    /// `<tag><digits>`, advancing `bytes` past it.
    fn number(bytes: &mut &[u8], tag: u8) -> Option<u64> {
        let rest = bytes.strip_prefix(&[tag])?;
        let end = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        let n = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
        *bytes = &rest[end..];
        Some(n)
    }
    let joined_more = number(&mut bytes, b'J')?;
    bytes = bytes.strip_prefix(b" ")?;
    let mut change = PresenceChange {
        joined_more,
        left_more: number(&mut bytes, b'L')?,
        ..PresenceChange::default()
    };
    while let Some(rest) = bytes.strip_prefix(b" ") {
        let tag = *rest.first()?;
        let mut after_tag = &rest[1..];
        let colon = after_tag.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&after_tag[..colon])
            .ok()?
            .parse()
            .ok()?;
        after_tag = &after_tag[colon + 1..];
        let name = String::from_utf8(after_tag.get(..len)?.to_vec()).ok()?;
        match tag {
            b'j' => change.joined.push(name),
            b'l' => change.left.push(name),
            _ => return None,
        }
        bytes = &after_tag[len..];
    }
    bytes.is_empty().then_some(change)
}

fn ttl_seconds(history: &HistoryConfig) -> u64 {
    history.ttl_ms.map_or(0, |ms| ms.div_ceil(1000).max(1))
}

fn protocol(value: &Value) -> BackplaneError {
    BackplaneError::Protocol(format!("{value:?}"))
}

fn bytes_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

fn integer(value: &Value) -> Result<u64, BackplaneError> {
    match value {
        Value::Int(n) => u64::try_from(*n).map_err(|_| protocol(value)),
        other => bytes_of(other)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| protocol(other)),
    }
}

fn epoch(value: &Value) -> Result<u64, BackplaneError> {
    bytes_of(value)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| protocol(value))
}

/// `[id, [k, <t|b>, d, <payload>]]` with id `<offset>-0`.
fn stream_entry(entry: &Value) -> Result<(u64, Message), BackplaneError> {
    let bad = || protocol(entry);
    let Value::Array(pair) = entry else {
        return Err(bad());
    };
    let [id, fields] = &pair[..] else {
        return Err(bad());
    };
    let id = bytes_of(id)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let offset = id
        .strip_suffix("-0")
        .and_then(|o| o.parse().ok())
        .ok_or_else(bad)?;
    let fields: Vec<&[u8]> = match fields {
        Value::Array(f) => f.iter().filter_map(bytes_of).collect(),
        Value::Map(m) => m
            .iter()
            .flat_map(|(k, v)| [bytes_of(k), bytes_of(v)])
            .flatten()
            .collect(),
        _ => return Err(bad()),
    };
    let mut kind = None;
    let mut data = None;
    for kv in fields.chunks(2) {
        if let [k, v] = kv {
            match *k {
                b"k" => kind = v.first().copied(),
                b"d" => data = Some(*v),
                _ => {}
            }
        }
    }
    let message = message_of(kind.ok_or_else(bad)?, data.ok_or_else(bad)?).ok_or_else(bad)?;
    Ok((offset, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publications_parse_and_refuse_garbage() {
        let (pos, message) = parse_publication(b"7 1f ttext with spaces").unwrap();
        assert_eq!(pos, StreamPosition::new(0x1f, 7));
        assert_eq!(message, Message::from("text with spaces"));
        let (_, binary) = parse_publication(b"1 a b\x00\xff").unwrap();
        assert_eq!(binary, Message::Binary(Bytes::from_static(b"\x00\xff")));
        for bad in [
            &b""[..],
            b"7",
            b"7 1f",
            b"7 zz tx",
            b"x 1f tx",
            b"7 1f q",
            b"7 1f t\xff",
        ] {
            assert!(parse_publication(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn presence_changes_round_trip_and_refuse_garbage() {
        let change = PresenceChange {
            joined: vec!["ann".to_owned(), "b o:b 7".to_owned(), String::new()],
            joined_more: 12,
            left: vec!["ünï".to_owned()],
            left_more: 0,
        };
        assert_eq!(decode_presence(&encode_presence(&change)), Some(change));
        assert_eq!(decode_presence(b"J0 L0"), Some(PresenceChange::default()));
        for bad in [
            &b""[..],
            b"J0",
            b"J0 L",
            b"J0 L0 j9:ab",
            b"J0 L0 x1:a",
            b"J0 L0 j1:ab",
            b"J0 L0 ",
        ] {
            assert!(decode_presence(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn stream_entries_parse() {
        let entry = Value::Array(vec![
            Value::BulkString(b"12-0".to_vec()),
            Value::Array(vec![
                Value::BulkString(b"k".to_vec()),
                Value::BulkString(b"t".to_vec()),
                Value::BulkString(b"d".to_vec()),
                Value::BulkString(b"hi".to_vec()),
            ]),
        ]);
        assert_eq!(stream_entry(&entry).unwrap(), (12, Message::from("hi")));
        let bad = Value::Array(vec![
            Value::BulkString(b"12-1".to_vec()),
            Value::Array(vec![]),
        ]);
        assert!(stream_entry(&bad).is_err());
    }
}
