//! What the chat server decides, the same on every runtime: routing, input
//! validation, the JSON events, who is in which room, positions and
//! acknowledgements.
//!
//! Chat messages go through a [`StreamHub`] (history, positions, resume;
//! in this process or shared by many through Redis), presence notices
//! through the room's local side only: they describe this process's
//! members and are not kept in the history.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::json;
use wavecast_core::handshake::{HttpVersion, Request};
use wavecast_core::presence::{PresenceBatch, PresenceChange, PresenceConfig};
use wavecast_core::{CloseCode, Config, HostAllowList, HttpResponse, Message, OriginAllowList};
use wavecast_runtime::{
    Envelope, HistoryConfig, Member, RedisConfig, Room, RoomConfig, Runtime, StreamHub,
    StreamPosition, StreamRoom, WebSocket,
};

/// The page, served at `/`.
pub(crate) const PAGE: &str = include_str!("page.html");

/// Longest chat message accepted, in characters.
pub(crate) const MAX_TEXT_CHARS: usize = 1000;

/// Close code for refused input (RFC 6455 §7.4.1: policy violation).
pub(crate) const REFUSED: u16 = 1008;

/// Where a request goes.
pub(crate) enum Route {
    /// The chat page (or its head, for `HEAD`).
    Page,
    /// A WebSocket member of a room.
    Chat(Chatter),
    /// A WebSocket whose room or nickname is invalid: accept, then close
    /// with [`REFUSED`] and this reason, so the page can show it.
    Refuse(String),
    /// A Server-Sent Events listener of a room.
    Listen { room: String },
    /// The plain echo endpoint.
    Echo,
    /// Anything else: answer this response.
    Respond(HttpResponse),
}

/// Who asks to chat, and where.
pub(crate) struct Chatter {
    /// The room's name.
    pub(crate) room: String,
    /// The nickname asked for.
    pub(crate) nick: String,
    /// The page's per-tab id: a connection with the same one may hold the
    /// nickname again (a reload, a reconnect), any other is refused while
    /// it is taken.
    pub(crate) session: Option<String>,
    /// Where the page left off (`?since=`).
    pub(crate) since: Since,
}

/// The `since` query parameter: the position of the last publication the
/// page saw in this room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Since {
    /// None given: a new page, which starts at the room's current position.
    Fresh,
    /// Resume after this position.
    At(StreamPosition),
    /// Not a position. Treated like a position from an epoch the room never
    /// had: the page is told `not_recovered` and starts over from the
    /// current position. Neither refusing the connection (the page would
    /// retry with the same value forever) nor ignoring the value (the page
    /// would silently miss messages) would serve it better.
    Invalid,
}

impl Since {
    fn parse(value: Option<&str>) -> Since {
        match value {
            None | Some("") => Since::Fresh,
            Some(text) => text.parse().map_or(Since::Invalid, Since::At),
        }
    }
}

impl Chatter {
    /// The position to join `room` from: the page's own, or for a new page
    /// the room's current one, so that it is told where it stands (a
    /// `recovered` notice) and can resume even if it disconnects before
    /// anything is published. Call before accepting; `None` (the backplane
    /// is unreachable) joins live, without a notice.
    pub(crate) async fn resume_from<R: Runtime>(
        &self,
        room: &StreamRoom<R>,
    ) -> Option<StreamPosition> {
        match self.since {
            Since::At(position) => Some(position),
            // Epoch 0 is never a room's: this always ends in not_recovered.
            Since::Invalid => Some(StreamPosition::new(0, 0)),
            Since::Fresh => room.position().await.ok(),
        }
    }

    /// Seats the new connection `ws` in `room`: joins it to the room's
    /// fan-out from `since` (what [`Chatter::resume_from`] returned: the
    /// publications it missed come first) and takes the nickname. Call it
    /// while accepting, before the `101` (or HTTP/2 `200`) goes out:
    /// nothing published after the handshake can be missed, the join
    /// event included. `http` is the request's version, for the log.
    pub(crate) fn seat<R: Runtime>(
        &self,
        ws: &WebSocket,
        room: &StreamRoom<R>,
        since: Option<StreamPosition>,
        members: &Members,
        http: HttpVersion,
    ) -> Result<Member, String> {
        let member = room.join(ws.sender(), since);
        let joined = members.join(
            &self.room,
            &self.nick,
            self.session.as_deref(),
            http,
            R::now(),
        )?;
        // The list goes to this connection alone; the others hear of the
        // join in the room's next presence notice.
        if ws.sender().try_send(joined.list).is_err() {
            tracing::warn!(room = %self.room, nick = %self.nick, "member list not queued");
        }
        if let Some(due) = joined.window {
            announce_at(
                room.local().clone(),
                members.clone(),
                self.room.clone(),
                due,
            );
        }
        Ok(member)
    }

    /// Runs a connection [`Chatter::seat`] seated (or refused, with the
    /// reason) until it leaves: what it sends is published to the room
    /// and, when it carries an id, acknowledged to it alone (`ack` with
    /// the position, or `nack` when the backplane did not take it); a
    /// bad message gets an error event back.
    pub(crate) async fn converse<R: Runtime>(
        &self,
        mut ws: WebSocket,
        seated: Result<Member, String>,
        room: &StreamRoom<R>,
        members: &Members,
    ) {
        let member = match seated {
            Ok(member) => member,
            Err(reason) => {
                let _ = ws.close(CloseCode(REFUSED), &reason).await;
                return;
            }
        };
        let (sender, mut receiver) = ws.split();
        // One message at a time: a member's messages are published in the
        // order it sent them.
        while let Some(Ok(message)) = receiver.recv().await {
            let reply = match on_message(&self.room, &self.nick, &message) {
                Ok(Said { event, id: None }) => match room.publish(event).await {
                    Ok(_) => None,
                    Err(e) => Some(error_event(&format!("message not sent: {e}"))),
                },
                Ok(Said {
                    event,
                    id: Some(id),
                }) => Some(self.publish_once(room, event, &id).await),
                Err(error) => Some(error),
            };
            if let Some(reply) = reply {
                let _ = sender.send(reply).await;
            }
        }
        drop(member);
        if let Some(due) = members.leave(&self.room, &self.nick, R::now()) {
            announce_at(
                room.local().clone(),
                members.clone(),
                self.room.clone(),
                due,
            );
        }
    }

    /// Publishes `event`, sent with `id`, unless this nickname's `id` was
    /// published in this room within the last two minutes, on any node
    /// (`StreamRoom::publish_with_id`); returns the `ack` with the position
    /// of that one publication, or the `nack`.
    ///
    /// This is what makes the page's resends safe: it resends every
    /// message it has no `ack` for after a reconnect, maybe to another
    /// node, and a publish that timed out after Redis took it is acked
    /// with its position on the retry instead of being published again.
    /// Two connections of one page sending the same id at once both get
    /// the ack of the one publication.
    async fn publish_once<R: Runtime>(
        &self,
        room: &StreamRoom<R>,
        event: String,
        id: &str,
    ) -> String {
        match room
            .publish_with_id(&publication_id(&self.nick, id), event)
            .await
        {
            Ok(position) => ack_event(id, position),
            Err(e) => nack_event(id, &e.to_string()),
        }
    }
}

/// How much history each room keeps: enough for a page that was away a
/// little while (a reload, a flaky network) to catch up.
pub(crate) fn history() -> HistoryConfig {
    HistoryConfig::default()
        .with_size(256)
        .with_ttl_ms(Some(10 * 60 * 1000))
}

/// The rooms: in this process, or with `redis` (`--redis URL`) shared with
/// every chat server connected to the same Redis. An unreachable Redis is
/// an error: a node that cannot reach the others should not start.
pub(crate) async fn open_hub<R: Runtime>(redis: Option<&str>) -> io::Result<StreamHub<R>> {
    let hub = match redis {
        None => StreamHub::local(RoomConfig::default(), history()),
        Some(url) => StreamHub::redis(RedisConfig::new(url), RoomConfig::default(), history())
            .await
            .map_err(|e| io::Error::other(format!("cannot use Redis at {url}: {e}")))?,
    };
    Ok(hub.with_envelope(ChatEnvelope))
}

/// What members receive: each chat message as published plus its `"pos"`,
/// and after a catch-up `recovered` or `not_recovered` with the position
/// the page now stands at.
pub(crate) struct ChatEnvelope;

impl Envelope for ChatEnvelope {
    fn publication(&self, position: StreamPosition, message: &Message) -> Message {
        let Message::Text(text) = message else {
            return message.clone();
        };
        // Every publication is a JSON object this server wrote (on any
        // node); anything else goes out as it is.
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
            Ok(mut event) => {
                event.insert("pos".to_owned(), position.to_string().into());
                Message::from(serde_json::Value::Object(event).to_string())
            }
            Err(_) => message.clone(),
        }
    }

    fn recovered(&self, current: StreamPosition) -> Option<Message> {
        Some(Message::from(
            json!({ "type": "recovered", "pos": current.to_string() }).to_string(),
        ))
    }

    fn not_recovered(&self, current: StreamPosition) -> Option<Message> {
        Some(Message::from(
            json!({ "type": "not_recovered", "pos": current.to_string() }).to_string(),
        ))
    }
}

/// The id a message is deduplicated by in its room: the page's own id
/// for it, with the nickname, so that one page cannot ack away another's
/// message. A nickname holds no `:`, so no two pairs give the same id.
fn publication_id(nick: &str, id: &str) -> String {
    format!("{nick}:{id}")
}

fn ack_event(id: &str, position: StreamPosition) -> String {
    json!({ "type": "ack", "id": id, "pos": position.to_string() }).to_string()
}

fn nack_event(id: &str, error: &str) -> String {
    json!({ "type": "nack", "id": id, "error": error }).to_string()
}

/// The host names the server answers to: `localhost`, the loopback
/// addresses, the host it listens on (unless that is every address, which
/// names no host) and `extra` (`--allow-host`). Requests for any other
/// `Host` get 421: that is what stops a DNS-rebinding page, whose `Origin`
/// and `Host` both name the attacker's site and so pass the origin check.
pub(crate) fn allowed_hosts(listen: &str, extra: &[String]) -> HostAllowList {
    let mut hosts = HostAllowList::new(["localhost", "127.0.0.1", "[::1]"]);
    let listen_host = match listen.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => None,
        Ok(SocketAddr::V4(addr)) => Some(addr.ip().to_string()),
        Ok(SocketAddr::V6(addr)) => Some(format!("[{}]", addr.ip())),
        // A name, such as `myhost:60000`.
        Err(_) => listen.rsplit_once(':').map(|(host, _)| host.to_owned()),
    };
    for host in listen_host.iter().chain(extra) {
        hosts = hosts.allow(host);
    }
    hosts
}

/// Decides where `request` goes. Requests for a host this server does not
/// serve get 421, browsers from another origin 403.
pub(crate) fn route(request: &Request, hosts: &HostAllowList) -> Route {
    if let Err(refused) = hosts.check(request) {
        return Route::Respond(refused);
    }
    if let Err(forbidden) = OriginAllowList::same_host().check(request) {
        return Route::Respond(forbidden);
    }
    let path = request.path();
    let upgrade = request.is_websocket_upgrade();
    if path == "/" && !upgrade {
        return Route::Page;
    }
    if path == "/websocket" && upgrade {
        return Route::Echo;
    }
    if let (Some(room), true) = (path.strip_prefix("/ws/"), upgrade) {
        let room = percent_decode(room);
        let nick = query_param(request, "nick").unwrap_or_default();
        let session = query_param(request, "session");
        let since = Since::parse(query_param(request, "since").as_deref());
        let checked = check_room(&room)
            .and_then(|()| check_nick(&nick))
            .and_then(|()| session.as_deref().map_or(Ok(()), check_session));
        return match checked {
            Err(reason) => Route::Refuse(reason),
            Ok(()) => Route::Chat(Chatter {
                room,
                nick,
                session,
                since,
            }),
        };
    }
    if let (Some(room), false) = (path.strip_prefix("/sse/"), upgrade) {
        let room = percent_decode(room);
        return match check_room(&room) {
            Ok(()) => Route::Listen { room },
            Err(reason) => Route::Respond(HttpResponse::text(400, format!("{reason}\n"))),
        };
    }
    Route::Respond(HttpResponse::not_found())
}

/// Connection settings: heartbeats on, so dead peers are dropped.
pub(crate) fn config() -> Config {
    Config::default()
        .with_max_message_size(64 << 10)
        .with_heartbeat_interval(Some(Duration::from_secs(15)))
        .with_idle_timeout(Some(Duration::from_secs(45)))
}

fn check_room(room: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&room.len())
        && room
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err("room names are 1-32 letters, digits, '-' or '_'".to_owned())
    }
}

fn check_nick(nick: &str) -> Result<(), String> {
    let chars = nick.chars().count();
    let ok = (1..=24).contains(&chars)
        && nick.trim() == nick
        && nick
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err("nicknames are 1-24 letters, digits, spaces, '-' or '_'".to_owned())
    }
}

fn check_session(session: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&session.len())
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err("session ids are 1-64 letters, digits, '-' or '_'".to_owned())
    }
}

/// The first `name=value` of the query, decoded (`+` is a space, as
/// forms and `URLSearchParams` write it).
/// Where an SSE listener resumes: its `Last-Event-ID` (EventSource sends
/// it when it reconnects by itself), else the page's `?since=` (a new
/// EventSource, made after the browser gave up on the old one, carries
/// none). Not a position: epoch 0, which no room has, so the listener is
/// told `not_recovered`.
pub(crate) fn listen_since(request: &Request) -> Option<StreamPosition> {
    let given = request
        .last_event_id()
        .map(str::to_owned)
        .or_else(|| query_param(request, "since"));
    match Since::parse(given.as_deref()) {
        Since::Fresh => None,
        Since::At(position) => Some(position),
        Since::Invalid => Some(StreamPosition::new(0, 0)),
    }
}

fn query_param(request: &Request, name: &str) -> Option<String> {
    request
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(|v| percent_decode(&v.replace('+', " ")))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a member sends: `{"text": ..., "id": ...}`. The id is the page's
/// own, to match the `ack` and to resend safely; without one the message
/// is published and not acknowledged.
#[derive(Deserialize)]
struct Incoming {
    text: String,
    id: Option<String>,
}

/// A message for the room.
#[derive(Debug)]
pub(crate) struct Said {
    /// The event to publish.
    pub(crate) event: String,
    /// The sender's id for it, if it gave one.
    pub(crate) id: Option<String>,
}

/// Turns what a member sent into the event for the room, or an error
/// event for that member alone.
pub(crate) fn on_message(room: &str, nick: &str, message: &Message) -> Result<Said, String> {
    let Message::Text(text) = message else {
        return Err(error_event(
            "send JSON text like {\"text\": \"hello\", \"id\": \"a1\"}, not binary",
        ));
    };
    let incoming: Incoming =
        serde_json::from_str(text).map_err(|e| error_event(&format!("malformed message: {e}")))?;
    if let Some(id) = &incoming.id {
        check_id(id).map_err(|reason| error_event(&reason))?;
    }
    let chars = incoming.text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(error_event(&format!(
            "message is {chars} characters; the limit is {MAX_TEXT_CHARS}"
        )));
    }
    if incoming.text.trim().is_empty() {
        return Err(error_event("empty message"));
    }
    let mut event = json!({
        "type": "message",
        "room": room,
        "nick": nick,
        "text": incoming.text,
        "time": unix_ms(),
    });
    if let Some(id) = &incoming.id {
        // The sender's page recognises its own message by it.
        event["id"] = id.as_str().into();
    }
    Ok(Said {
        event: event.to_string(),
        id: incoming.id,
    })
}

fn check_id(id: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err("message ids are 1-64 letters, digits, '-' or '_'".to_owned())
    }
}

/// An error for one member.
pub(crate) fn error_event(reason: &str) -> String {
    json!({ "type": "error", "reason": reason }).to_string()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Publishes the presence notice of `name`'s window when it ends at `due`
/// (see [`Members`]).
fn announce_at<R: Runtime>(room: Room<R>, members: Members, name: String, due: Instant) {
    R::spawn(async move {
        R::sleep_until(due).await;
        members.announce(&name, due, |event| {
            room.publish(event);
        });
    });
}

/// The most nicknames a `members` list names; a larger room's list ends
/// there and gives the count.
pub(crate) const MAX_LISTED: usize = 1000;

/// Who is in which room. A nickname belongs to one page session per room
/// at a time; that session may hold it over several connections at once
/// (a reload opens the new connection before the server has seen the old
/// one go), and it stays listed until the last of them leaves.
///
/// Presence rule (so that a crowd joining is not N² notices): a
/// connection that joins gets the member list (`members`, at most
/// [`MAX_LISTED`] names and the count) for itself alone. The room hears of
/// joins and leaves in `presence` notices, at most one per room every
/// 250 ms: the first change after a quiet spell opens the window, the
/// notice at its end names up to 16 nicknames that joined and 16 that left
/// and counts the rest (`joined_more`, `left_more`), with the room's member
/// count; a visit inside one window is not announced. See
/// [`wavecast_core::presence`].
///
/// Notices are published while the lock is held, so the room sees them in
/// the order the changes happened.
#[derive(Clone, Default)]
pub(crate) struct Members {
    rooms: Arc<Mutex<HashMap<String, Seats>>>,
}

/// One room's nicknames and the presence changes not yet announced.
#[derive(Default)]
struct Seats {
    seats: Vec<Seat>,
    presence: PresenceBatch,
}

/// A nickname in a room.
struct Seat {
    nick: String,
    /// The session that holds it; `None` (a client that sent none) can
    /// share it with nobody.
    session: Option<String>,
    /// Its open connections.
    connections: usize,
}

/// A connection seated by [`Members::join`].
pub(crate) struct Joined {
    /// The `members` event for the new connection.
    pub(crate) list: String,
    /// When the presence window this join opened ends; the caller
    /// publishes it then with [`Members::announce`].
    pub(crate) window: Option<Instant>,
}

fn members_event(room: &str, seats: &[Seat]) -> String {
    let names: Vec<&str> = seats
        .iter()
        .take(MAX_LISTED)
        .map(|seat| seat.nick.as_str())
        .collect();
    json!({ "type": "members", "room": room, "members": names, "count": seats.len() }).to_string()
}

fn presence_event(room: &str, change: &PresenceChange, count: usize) -> String {
    json!({
        "type": "presence",
        "room": room,
        "joined": change.joined,
        "joined_more": change.joined_more,
        "left": change.left,
        "left_more": change.left_more,
        "count": count,
    })
    .to_string()
}

impl Members {
    /// Seats `nick` in `room` at `now`: the member list for the new
    /// connection, and the join goes into the room's presence batch when
    /// the nickname is new there. Refused with the reason when another
    /// session holds the nickname in that room.
    pub(crate) fn join(
        &self,
        room: &str,
        nick: &str,
        session: Option<&str>,
        http: HttpVersion,
        now: Instant,
    ) -> Result<Joined, String> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let entry = rooms.entry(room.to_owned()).or_insert_with(|| Seats {
            seats: Vec::new(),
            presence: PresenceBatch::new(PresenceConfig::default()),
        });
        let mut window = None;
        match entry.seats.iter_mut().find(|seat| seat.nick == nick) {
            Some(seat) if session.is_some() && seat.session.as_deref() == session => {
                seat.connections += 1;
            }
            Some(_) => {
                tracing::info!(room, nick, "nickname taken");
                // Short and fixed: a close reason is at most 123 bytes.
                return Err("that nickname is taken in this room; pick another".to_owned());
            }
            None => {
                entry.seats.push(Seat {
                    nick: nick.to_owned(),
                    session: session.map(str::to_owned),
                    connections: 1,
                });
                if entry.presence.join(nick, now) {
                    window = entry.presence.poll_timeout();
                }
            }
        }
        let http = match http {
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2",
            _ => "HTTP",
        };
        tracing::info!(room, nick, members = entry.seats.len(), http, "join");
        Ok(Joined {
            list: members_event(room, &entry.seats),
            window,
        })
    }

    /// Takes one connection of `nick` out of `room` at `now`; the leave
    /// goes into the presence batch when it was the nickname's last.
    /// Returns when the window this leave opened ends, if it opened one.
    pub(crate) fn leave(&self, room: &str, nick: &str, now: Instant) -> Option<Instant> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let entry = rooms.get_mut(room)?;
        let at = entry.seats.iter().position(|seat| seat.nick == nick)?;
        entry.seats[at].connections -= 1;
        if entry.seats[at].connections == 0 {
            entry.seats.remove(at);
        }
        tracing::info!(room, nick, members = entry.seats.len(), "leave");
        let mut window = None;
        if entry.seats.iter().all(|seat| seat.nick != nick) && entry.presence.leave(nick, now) {
            window = entry.presence.poll_timeout();
        }
        if entry.seats.is_empty() && entry.presence.poll_timeout().is_none() {
            rooms.remove(room);
        }
        window
    }

    /// Publishes `room`'s presence notice for the window that ends at
    /// `due` (nothing if every change in it cancelled out, or if that
    /// window was announced already).
    pub(crate) fn announce(&self, room: &str, due: Instant, publish: impl FnOnce(String)) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = rooms.get_mut(room) else {
            return;
        };
        // The window's own end, not the clock: a timer that fires a little
        // early must still close it, or no later change would open another.
        if entry.presence.poll_timeout() != Some(due) {
            return;
        }
        if let Some(change) = entry.presence.take(due) {
            publish(presence_event(room, &change, entry.seats.len()));
        }
        if entry.seats.is_empty() {
            rooms.remove(room);
        }
    }

    /// Subscribes a listener with `subscribe` and returns the subscription
    /// with the `members` event to send it first. Both happen under the
    /// lock, so the list is exactly the state the subscription starts from
    /// (joins still in the presence window are listed, and announced again
    /// when it ends: the page treats the list as a set).
    pub(crate) fn listen<T>(&self, room: &str, subscribe: impl FnOnce() -> T) -> (T, String) {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let seats = rooms
            .get(room)
            .map(|e| e.seats.as_slice())
            .unwrap_or_default();
        let subscription = subscribe();
        (subscription, members_event(room, seats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        assert!(check_room("lobby").is_ok());
        assert!(check_room("").is_err());
        assert!(check_room("a/b").is_err());
        assert!(check_nick("Ada L").is_ok());
        assert!(check_nick(" ada").is_err());
        assert!(check_nick(&"x".repeat(25)).is_err());
        assert_eq!(percent_decode("Ada%20L%C3%B6"), "Ada Lö");
        assert_eq!(percent_decode("bad%2"), "bad%2");
    }

    #[test]
    fn allowed_hosts_cover_loopback_the_listen_address_and_extras() {
        let hosts = allowed_hosts("192.168.1.5:60000", &["chat.example".to_owned()]);
        for ok in [
            "localhost:60000",
            "127.0.0.1:60000",
            "[::1]:60000",
            "192.168.1.5:60000",
            "chat.example",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        assert!(!hosts.allows("evil.example:60000"));
        assert!(!allowed_hosts("0.0.0.0:60000", &[]).allows("0.0.0.0:60000"));
        assert!(allowed_hosts("[::]:1", &[]).allows("[::1]:1"));
        assert!(allowed_hosts("[fe80::2]:1", &[]).allows("[fe80::2]:1"));
        assert!(allowed_hosts("myhost:1", &[]).allows("MYHOST:1"));
    }

    #[test]
    fn messages() {
        let ok = on_message("r", "n", &Message::from(r#"{"text":"hi"}"#)).unwrap();
        assert!(ok.event.contains(r#""type":"message""#) && ok.event.contains(r#""text":"hi""#));
        assert_eq!(ok.id, None);
        let with_id = on_message("r", "n", &Message::from(r#"{"text":"hi","id":"a-1"}"#)).unwrap();
        assert_eq!(with_id.id.as_deref(), Some("a-1"));
        assert_eq!(event(&with_id.event)["id"], "a-1");
        for bad in [r#"{"text":"hi","id":""}"#, r#"{"text":"hi","id":"a b"}"#] {
            assert!(on_message("r", "n", &Message::from(bad))
                .unwrap_err()
                .contains("message ids"));
        }
        assert!(on_message("r", "n", &Message::from("nope")).is_err());
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(MAX_TEXT_CHARS + 1));
        assert!(on_message("r", "n", &Message::from(long))
            .unwrap_err()
            .contains("limit"));
    }

    fn event(json: &str) -> serde_json::Value {
        serde_json::from_str(json).expect("JSON")
    }

    const H11: HttpVersion = HttpVersion::Http11;

    /// Publishes whatever the window ending at `due` holds.
    fn announced(members: &Members, room: &str, due: Option<Instant>) -> Vec<serde_json::Value> {
        let mut events = Vec::new();
        members.announce(room, due.expect("a window"), |e| events.push(event(&e)));
        events
    }

    #[test]
    fn a_nickname_belongs_to_one_session_per_room() {
        let members = Members::default();
        let t = Instant::now();
        let ada = members.join("r", "ada", Some("tab1"), H11, t).unwrap();
        let list = event(&ada.list);
        assert_eq!(
            (list["type"].as_str(), list["count"].as_u64()),
            (Some("members"), Some(1))
        );
        assert_eq!(list["members"], json!(["ada"]));
        let window = ada.window;
        assert_eq!(window, Some(t + Duration::from_millis(250)));

        // Another session, or none, is refused with a reason.
        for other in [Some("tab2"), None] {
            let refused = members.join("r", "ada", other, H11, t);
            assert!(refused.err().expect("refused").contains("taken"));
        }
        // The same nickname in another room is someone else's business.
        members.join("s", "ada", None, H11, t).unwrap();

        // The same session again (a reload): the list, and no second join.
        let again = members.join("r", "ada", Some("tab1"), H11, t).unwrap();
        assert_eq!(event(&again.list)["members"], json!(["ada"]));
        assert_eq!(again.window, None);
        let bob = members.join("r", "bob", None, H11, t).unwrap();
        assert_eq!(event(&bob.list)["members"], json!(["ada", "bob"]));
        assert_eq!(bob.window, None, "inside ada's window");

        // One notice for the window: both joins, and the count.
        let notices = announced(&members, "r", window);
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0]["type"], "presence");
        assert_eq!(notices[0]["joined"], json!(["ada", "bob"]));
        assert_eq!(notices[0]["count"], 2);
        assert!(
            announced(&members, "r", window).is_empty(),
            "announced once"
        );

        // Ada's older connection goes: she is still there, nothing to say.
        let later = t + Duration::from_secs(1);
        assert_eq!(members.leave("r", "ada", later), None);
        let window = members.leave("r", "ada", later);
        let notices = announced(&members, "r", window);
        assert_eq!(notices[0]["left"], json!(["ada"]));
        assert_eq!(notices[0]["joined"], json!([]));
        assert_eq!(notices[0]["count"], 1);
        // Now anyone may take the name.
        members.join("r", "ada", Some("tab9"), H11, later).unwrap();
        // Leaving a room or nickname that is not there changes nothing.
        assert_eq!(members.leave("nowhere", "x", later), None);
        assert_eq!(members.leave("r", "x", later), None);
    }

    #[test]
    fn a_crowd_joining_is_one_notice_per_window() {
        let members = Members::default();
        let t = Instant::now();
        let mut windows = Vec::new();
        for i in 0..5000 {
            let joined = members.join("big", &format!("n{i}"), None, H11, t).unwrap();
            windows.extend(joined.window);
            if i == 4999 {
                let list = event(&joined.list);
                assert_eq!(list["count"], 5000);
                assert_eq!(list["members"].as_array().unwrap().len(), MAX_LISTED);
            }
        }
        assert_eq!(windows.len(), 1);
        let notices = announced(&members, "big", windows.pop());
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0]["joined"].as_array().unwrap().len(), 16);
        assert_eq!(notices[0]["joined_more"], 5000 - 16);
        assert_eq!(notices[0]["count"], 5000);
    }

    #[test]
    fn an_empty_room_is_forgotten_after_its_last_notice() {
        let members = Members::default();
        let t = Instant::now();
        let window = members.join("r", "ada", None, H11, t).unwrap().window;
        assert_eq!(members.leave("r", "ada", t), None, "same window");
        // The visit cancelled out: no notice, and the room is gone.
        assert!(announced(&members, "r", window).is_empty());
        assert!(members.rooms.lock().unwrap().is_empty());
    }

    #[test]
    fn listeners_get_the_list_they_start_from() {
        let members = Members::default();
        let ((), empty) = members.listen("r", || ());
        assert_eq!(event(&empty)["members"], json!([]));
        let t = Instant::now();
        members.join("r", "ada", None, H11, t).unwrap();
        members.join("r", "bob", None, H11, t).unwrap();
        let (subscribed, list) = members.listen("r", || 7);
        assert_eq!(subscribed, 7);
        let list = event(&list);
        assert_eq!(
            (list["type"].as_str(), list["room"].as_str()),
            (Some("members"), Some("r"))
        );
        assert_eq!(list["members"], json!(["ada", "bob"]));
    }

    #[test]
    fn since_parses_or_is_invalid() {
        assert_eq!(Since::parse(None), Since::Fresh);
        assert_eq!(Since::parse(Some("")), Since::Fresh);
        assert_eq!(
            Since::parse(Some("42_1f")),
            Since::At(StreamPosition::new(0x1f, 42))
        );
        for bad in ["42", "x_1f", "42_zz", "-1_1"] {
            assert_eq!(Since::parse(Some(bad)), Since::Invalid, "{bad}");
        }
    }

    #[test]
    fn the_envelope_adds_the_position() {
        let pos = StreamPosition::new(0xab, 7);
        let Message::Text(out) =
            ChatEnvelope.publication(pos, &Message::from(r#"{"type":"message","text":"hi"}"#))
        else {
            panic!("text");
        };
        let out = event(&out);
        assert_eq!((&out["pos"], &out["text"]), (&json!("7_ab"), &json!("hi")));
        let not_json = Message::from("plain");
        assert_eq!(ChatEnvelope.publication(pos, &not_json), not_json);
        let notice = |m: Option<Message>| match m {
            Some(Message::Text(t)) => event(&t),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            notice(ChatEnvelope.recovered(pos)),
            json!({"type": "recovered", "pos": "7_ab"})
        );
        assert_eq!(
            notice(ChatEnvelope.not_recovered(pos)),
            json!({"type": "not_recovered", "pos": "7_ab"})
        );
    }

    #[test]
    fn publication_ids_name_the_sender_and_fit_the_backplane() {
        assert_ne!(publication_id("ada", "m1"), publication_id("bob", "m1"));
        assert!(check_nick("a:b").is_err(), "the separator is no nickname");
        // The longest nickname (24 four-byte characters) and id fit.
        let nick = "\u{10348}".repeat(24);
        let id = "x".repeat(64);
        assert!(check_nick(&nick).is_ok() && check_id(&id).is_ok());
        assert!(publication_id(&nick, &id).len() <= wavecast_runtime::MAX_PUBLISH_ID_LEN);
    }

    #[test]
    fn session_ids() {
        assert!(check_session("a-Z_09").is_ok());
        assert!(check_session("").is_err());
        assert!(check_session(&"x".repeat(65)).is_err());
        assert!(check_session("a b").is_err());
    }
}
