//! What the chat server decides, the same on every runtime: routing, input
//! validation, the JSON events, who is in which room, positions and
//! acknowledgements.
//!
//! Chat messages go through a [`StreamHub`] (history, positions, resume;
//! in this process or shared by many through Redis), and so does
//! presence: who is in a room is the room's presence on every node
//! ([`Seats`]), and its notices reach every node's members without being
//! kept in the history.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::json;
use wavecast_core::handshake::{HttpVersion, Request};
use wavecast_core::presence::PresenceChange;
use wavecast_core::rng::Rng;
use wavecast_core::{
    CloseCode, Config, HostAllowList, HttpResponse, Message, OriginAllowList, SeedSource,
};
use wavecast_runtime::{
    BackplaneError, Envelope, HistoryConfig, Member, Presence, RedisConfig, RoomConfig, Runtime,
    StreamHub, StreamPosition, StreamRoom, WebSocket,
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

    /// Takes the nickname in `room` for this connection's page session,
    /// on every node: refused when another session holds it (here or on
    /// any node sharing the backplane), or when the backplane cannot be
    /// asked. Call before accepting; the member list it returns goes to
    /// the connection in [`Chatter::seat`]. Dropping the result (the
    /// handshake failed) gives the nickname back.
    pub(crate) async fn take_seat<R: Runtime>(
        &self,
        room: &StreamRoom<R>,
        seats: &Seats,
    ) -> Result<Taken, Refusal> {
        let (name, nick) = (self.room.as_str(), self.nick.as_str());
        let session = self.session.as_deref();
        let unavailable = |e: BackplaneError| Refusal::try_later(name, nick, &e);
        let seat = match seats.claim(name, nick, session)? {
            SeatClaim::Shared(seat) => {
                // Its first connection is still entering: a page does not
                // reconnect that fast, so this is a rare race; retry.
                if seat.presence.get().is_none() {
                    return Err(Refusal::try_later(name, nick, &"still entering"));
                }
                let present = room.presence().await.map_err(unavailable)?;
                let (list, count) = members_event(name, &present);
                return Ok(Taken { seat, list, count });
            }
            SeatClaim::New(seat) => seat,
        };
        let present = room.presence().await.map_err(unavailable)?;
        if held_by_another(&present, nick, session, &seat.client) {
            return Err(Refusal::taken(name, nick));
        }
        let presence = room.enter(&seat.client, nick).await.map_err(unavailable)?;
        // The check above and the enter are two steps, so two nodes could
        // both pass the check for one nickname at the same instant. Looking
        // again now that we are entered closes that race: the backplane
        // orders the two writes and the two reads, so at least the one who
        // read last sees the other, and whoever sees another session
        // withdraws. Both may withdraw (two people picked one name within a
        // round trip; both are asked to pick another); both never keep it.
        // A withdrawal is a join and a leave in one window, which nobody is
        // told about (unless the window happened to end in between).
        let present = room.presence().await.map_err(unavailable)?;
        if held_by_another(&present, nick, session, &seat.client) {
            drop(presence);
            return Err(Refusal::taken(name, nick));
        }
        let _ = seat.presence.set(presence);
        let (list, count) = members_event(name, &present);
        Ok(Taken { seat, list, count })
    }

    /// Seats the new connection `ws` in `room` with the nickname
    /// [`Chatter::take_seat`] took: joins it to the room's fan-out from
    /// `since` (what [`Chatter::resume_from`] returned: the publications it
    /// missed come first) and queues the member list for it alone (the
    /// others hear of the join in the room's next presence notice). Call
    /// it while accepting, before the `101` (or HTTP/2 `200`) goes out:
    /// nothing published after the handshake can be missed, the presence
    /// notice included. `http` is the request's version, for the log.
    pub(crate) fn seat<R: Runtime>(
        &self,
        ws: &WebSocket,
        room: &StreamRoom<R>,
        since: Option<StreamPosition>,
        taken: Result<Taken, Refusal>,
        http: HttpVersion,
    ) -> Result<Seated, Refusal> {
        let Taken { seat, list, count } = taken?;
        let member = room.join(ws.sender(), since);
        if ws.sender().try_send(list).is_err() {
            tracing::warn!(room = %self.room, nick = %self.nick, "member list not queued");
        }
        let http = match http {
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2",
            _ => "HTTP",
        };
        tracing::info!(
            room = self.room.as_str(),
            nick = self.nick.as_str(),
            members = count,
            http,
            "join"
        );
        Ok(Seated { member, seat })
    }

    /// Runs a connection [`Chatter::seat`] seated (or refused, with the
    /// reason) until it leaves: what it sends is published to the room
    /// and, when it carries an id, acknowledged to it alone (`ack` with
    /// the position, or `nack` when the backplane did not take it); a
    /// bad message gets an error event back.
    pub(crate) async fn converse<R: Runtime>(
        &self,
        mut ws: WebSocket,
        seated: Result<Seated, Refusal>,
        room: &StreamRoom<R>,
    ) {
        let seated = match seated {
            Ok(seated) => seated,
            Err(refusal) => {
                let _ = ws.close(refusal.code, &refusal.reason).await;
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
        // The member goes, then (with its session's last connection
        // here) the presence, which the room hears of in a notice.
        let Seated { member, seat } = seated;
        drop(member);
        drop(seat);
        tracing::info!(
            room = self.room.as_str(),
            nick = self.nick.as_str(),
            "leave"
        );
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
/// after a catch-up `recovered` or `not_recovered` with the position the
/// page now stands at, and the room's `presence` notices.
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

    fn presence(&self, change: &PresenceChange) -> Option<Message> {
        Some(Message::from(presence_event(change)))
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

/// The most nicknames a `members` list names; a larger room's list ends
/// there and gives the count.
pub(crate) const MAX_LISTED: usize = 1000;

/// Why a connection is not seated: the close it gets.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// [`REFUSED`] when the page should not retry as it is (the nickname
    /// is taken), [`CloseCode::TRY_AGAIN_LATER`] when it should (the
    /// backplane could not be asked): the page reconnects by itself after
    /// any close but 1008.
    pub(crate) code: CloseCode,
    /// Short: a close reason is at most 123 bytes.
    pub(crate) reason: String,
}

impl Refusal {
    fn taken(room: &str, nick: &str) -> Refusal {
        tracing::info!(room, nick, "nickname taken");
        Refusal {
            code: CloseCode(REFUSED),
            reason: "that nickname is taken in this room; pick another".to_owned(),
        }
    }

    fn try_later(room: &str, nick: &str, why: &dyn std::fmt::Display) -> Refusal {
        tracing::warn!(room, nick, "not seated: {why}");
        Refusal {
            code: CloseCode::TRY_AGAIN_LATER,
            reason: "the chat cannot seat you right now; retrying".to_owned(),
        }
    }
}

/// The nicknames this process's connections hold, by room.
///
/// Who is in a room, on every node, is the room's presence
/// ([`StreamRoom::enter`], [`StreamRoom::presence`]): each nickname a page
/// session holds is one entry, whose client id is the session id plus a
/// random part (`<session>/<hex>`, so that two nodes never write the same
/// entry). This map only lets the connections of one session on this
/// process share that entry: a reload opens the new connection before the
/// server has seen the old one go, and the room must hear neither a second
/// join nor a leave. It also refuses a second session asking for a
/// nickname held here without a round trip to the backplane.
///
/// The presence rule (so that a crowd joining is not N² notices) is the
/// library's: a connection that joins gets the member list (`members`, at
/// most [`MAX_LISTED`] names and the count) for itself alone; the room
/// hears of joins and leaves in `presence` notices, at most one per room
/// and node every 250 ms, naming up to 16 nicknames that joined and 16
/// that left and counting the rest; a visit inside one window is not
/// announced (see [`wavecast_core::presence`]).
#[derive(Clone)]
pub(crate) struct Seats {
    state: Arc<Mutex<SeatsState>>,
}

impl Default for Seats {
    fn default() -> Self {
        Seats {
            state: Arc::new(Mutex::new(SeatsState {
                held: HashMap::new(),
                rng: Rng::new(SeedSource::Os),
            })),
        }
    }
}

struct SeatsState {
    /// By room and nickname.
    held: HashMap<(String, String), Weak<Seat>>,
    /// The random part of client ids.
    rng: Rng,
}

/// A nickname held in a room by one page session on this process, shared
/// by the session's connections; the room's presence entry goes with the
/// last of them.
pub(crate) struct Seat {
    key: (String, String),
    /// `None` (a client that sent none) shares the nickname with nobody.
    session: Option<String>,
    /// The presence entry's client id.
    client: String,
    /// Set once entered (and checked).
    presence: OnceLock<Presence>,
    seats: Seats,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut state = self.seats.state.lock().unwrap_or_else(|p| p.into_inner());
        // Unless a new seat took the key since this one's last owner went.
        if state
            .held
            .get(&self.key)
            .is_some_and(|held| held.strong_count() == 0)
        {
            state.held.remove(&self.key);
        }
        // The presence (a field) leaves after this.
    }
}

enum SeatClaim {
    /// This session holds the nickname here already.
    Shared(Arc<Seat>),
    /// Nobody here holds it: check the room and enter.
    New(Arc<Seat>),
}

impl Seats {
    fn claim(&self, room: &str, nick: &str, session: Option<&str>) -> Result<SeatClaim, Refusal> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let key = (room.to_owned(), nick.to_owned());
        if let Some(seat) = state.held.get(&key).and_then(Weak::upgrade) {
            return match session {
                Some(session) if seat.session.as_deref() == Some(session) => {
                    Ok(SeatClaim::Shared(seat))
                }
                _ => Err(Refusal::taken(room, nick)),
            };
        }
        let client = format!("{}/{:016x}", session.unwrap_or(""), state.rng.next_u64());
        let seat = Arc::new(Seat {
            key: key.clone(),
            session: session.map(str::to_owned),
            client,
            presence: OnceLock::new(),
            seats: self.clone(),
        });
        state.held.insert(key, Arc::downgrade(&seat));
        Ok(SeatClaim::New(seat))
    }
}

/// The session part of a presence entry's client id (see [`Seats`]).
fn session_of(client: &str) -> Option<&str> {
    client
        .rsplit_once('/')
        .map(|(session, _)| session)
        .filter(|session| !session.is_empty())
}

/// Whether `present` (a room's presence) has `nick` held by someone that
/// `session` may not share it with; `me` (our own entry) does not count.
fn held_by_another(
    present: &[(String, String)],
    nick: &str,
    session: Option<&str>,
    me: &str,
) -> bool {
    present.iter().any(|(client, held)| {
        held == nick && client != me && (session.is_none() || session_of(client) != session)
    })
}

/// A nickname taken by [`Chatter::take_seat`], and the member list to
/// send the connection.
pub(crate) struct Taken {
    seat: Arc<Seat>,
    list: String,
    count: usize,
}

/// A connection seated by [`Chatter::seat`]. Dropping it leaves the room.
pub(crate) struct Seated {
    member: Member,
    seat: Arc<Seat>,
}

fn members_event(room: &str, present: &[(String, String)]) -> (String, usize) {
    // A session can be entered once per node it is connected to.
    let nicks: BTreeSet<&str> = present.iter().map(|(_, nick)| nick.as_str()).collect();
    let names: Vec<&str> = nicks.iter().copied().take(MAX_LISTED).collect();
    let event = json!({ "type": "members", "room": room, "members": names, "count": nicks.len() });
    (event.to_string(), nicks.len())
}

/// The event a listener starts from: who is in `room`, on every node, or
/// an error event when the backplane cannot say.
pub(crate) async fn member_list<R: Runtime>(room: &StreamRoom<R>) -> String {
    match room.presence().await {
        Ok(present) => members_event(room.name(), &present).0,
        Err(e) => {
            tracing::warn!(room = room.name(), "member list unavailable: {e}");
            error_event("the member list is unavailable right now")
        }
    }
}

/// A room's presence notice: one window of one node's joins and leaves.
/// It names no room (the notice only reaches the room's own members) and
/// gives no member count (the node announcing it does not know the
/// others'): the page counts from its list.
fn presence_event(change: &PresenceChange) -> String {
    json!({
        "type": "presence",
        "joined": change.joined,
        "joined_more": change.joined_more,
        "left": change.left,
        "left_more": change.left_more,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wavecast_runtime::{StreamEvent, StreamSubscription};
    use wavecast_tokio::Tokio;

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

    /// Runs `test` on tokio (the hub's presence spawns its announcements).
    fn on_tokio<F: std::future::Future>(test: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(test)
    }

    fn hub() -> StreamHub<Tokio> {
        StreamHub::local(RoomConfig::default(), history()).with_envelope(ChatEnvelope)
    }

    fn chatter(room: &str, nick: &str, session: Option<&str>) -> Chatter {
        Chatter {
            room: room.to_owned(),
            nick: nick.to_owned(),
            session: session.map(str::to_owned),
            since: Since::Fresh,
        }
    }

    /// Takes `nick` in `room` for `session` on the node `seats`.
    async fn take(
        hub: &StreamHub<Tokio>,
        seats: &Seats,
        room: &str,
        nick: &str,
        session: Option<&str>,
    ) -> Result<Taken, Refusal> {
        let room_handle = hub.room(room).await.expect("a room");
        chatter(room, nick, session)
            .take_seat(&room_handle, seats)
            .await
    }

    fn refused_as_taken(taken: Result<Taken, Refusal>) {
        let refusal = taken.err().expect("refused");
        assert_eq!(refusal.code, CloseCode(REFUSED));
        assert!(refusal.reason.contains("taken"), "{}", refusal.reason);
    }

    /// The next message `sub` gets, as JSON.
    async fn next_event(sub: &mut StreamSubscription<Tokio>) -> serde_json::Value {
        let next = tokio::time::timeout(Duration::from_secs(5), sub.recv());
        match next.await.expect("an event in time") {
            StreamEvent::Publication(message) => match message.message() {
                Message::Text(text) => event(text),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_nickname_belongs_to_one_session_per_room() {
        on_tokio(async {
            let hub = hub();
            let (here, there) = (Seats::default(), Seats::default());
            let ada = take(&hub, &here, "r", "ada", Some("tab1")).await.unwrap();
            let list = event(&ada.list);
            assert_eq!(
                (list["type"].as_str(), list["room"].as_str()),
                (Some("members"), Some("r"))
            );
            assert_eq!(
                (&list["members"], &list["count"]),
                (&json!(["ada"]), &json!(1))
            );

            // Another session, or none, is refused with a reason: on this
            // node (its seats), and on another node sharing the room's
            // presence (`there`: the room's presence list).
            for seats in [&here, &there] {
                for other in [Some("tab2"), None] {
                    refused_as_taken(take(&hub, seats, "r", "ada", other).await);
                }
            }
            // The same nickname in another room is someone else's business.
            let elsewhere = take(&hub, &here, "s", "ada", None).await.unwrap();

            // The same session again (a reload), here or on the other node:
            // the list, with ada once.
            let again = take(&hub, &here, "r", "ada", Some("tab1")).await.unwrap();
            assert!(Arc::ptr_eq(&again.seat, &ada.seat), "one entry here");
            let moved = take(&hub, &there, "r", "ada", Some("tab1")).await.unwrap();
            assert_eq!(event(&moved.list)["members"], json!(["ada"]));
            let bob = take(&hub, &there, "r", "bob", None).await.unwrap();
            let list = event(&bob.list);
            assert_eq!(
                (&list["members"], &list["count"]),
                (&json!(["ada", "bob"]), &json!(2))
            );
            let room = hub.room("r").await.unwrap();
            assert_eq!(
                room.presence().await.unwrap().len(),
                3,
                "ada here and there, bob"
            );

            // Ada's older connection goes: her entry here stays.
            drop(ada);
            assert_eq!(room.presence().await.unwrap().len(), 3);
            drop((again, moved));
            let left = room.presence().await.unwrap();
            assert_eq!(
                left.iter()
                    .map(|(_, nick)| nick.as_str())
                    .collect::<Vec<_>>(),
                ["bob"]
            );
            // Now anyone may take the name, on either node.
            let ada = take(&hub, &there, "r", "ada", Some("tab9")).await.unwrap();
            refused_as_taken(take(&hub, &here, "r", "ada", Some("tab1")).await);
            drop((ada, bob, elsewhere));
            assert!(room.presence().await.unwrap().is_empty());
            assert!(here.state.lock().unwrap().held.is_empty(), "forgotten");
        });
    }

    #[test]
    fn client_ids_carry_the_session() {
        assert_eq!(session_of("tab1/00ff"), Some("tab1"));
        assert_eq!(session_of("/00ff"), None);
        let present = [("tab1/01".to_owned(), "ada".to_owned())];
        assert!(!held_by_another(&present, "ada", Some("tab1"), "tab1/02"));
        assert!(held_by_another(&present, "ada", Some("tab2"), "tab2/03"));
        assert!(held_by_another(&present, "ada", None, "/04"));
        assert!(
            !held_by_another(&present, "ada", None, "tab1/01"),
            "ourselves"
        );
        assert!(!held_by_another(&present, "bob", None, "/05"));
    }

    #[test]
    fn a_crowd_joining_is_one_notice_per_window() {
        on_tokio(async {
            let hub = hub();
            let seats = Seats::default();
            let room = hub.room("big").await.unwrap();
            let mut watcher = room.subscribe(None);
            let mut crowd = Vec::new();
            for i in 0..200 {
                let nick = format!("n{i:03}");
                crowd.push(take(&hub, &seats, "big", &nick, None).await.unwrap());
            }
            let notice = next_event(&mut watcher).await;
            assert_eq!(notice["type"], "presence", "{notice}");
            let joined: Vec<String> = (0..16).map(|i| format!("n{i:03}")).collect();
            assert_eq!(notice["joined"], json!(joined));
            assert_eq!(notice["joined_more"], 200 - 16);
            assert_eq!(
                (&notice["left"], &notice["left_more"]),
                (&json!([]), &json!(0))
            );
            // The next window: everyone leaving, in one notice.
            crowd.clear();
            let notice = next_event(&mut watcher).await;
            assert_eq!(
                (&notice["joined"], &notice["joined_more"]),
                (&json!([]), &json!(0))
            );
            assert_eq!(notice["left"].as_array().unwrap().len(), 16);
            assert_eq!(notice["left_more"], 200 - 16);
        });
    }

    #[test]
    fn lists_are_sorted_deduplicated_and_capped() {
        let present: Vec<(String, String)> = (0..MAX_LISTED + 10)
            .rev()
            .flat_map(|i| {
                let nick = format!("n{i:05}");
                [(format!("s{i}/a"), nick.clone()), (format!("s{i}/b"), nick)]
            })
            .collect();
        let (list, count) = members_event("r", &present);
        let list = event(&list);
        assert_eq!(
            (count, &list["count"]),
            (MAX_LISTED + 10, &json!(MAX_LISTED + 10))
        );
        let names = list["members"].as_array().unwrap();
        assert_eq!(names.len(), MAX_LISTED);
        assert_eq!((&names[0], &names[1]), (&json!("n00000"), &json!("n00001")));
    }

    #[test]
    fn listeners_get_the_list_they_start_from() {
        on_tokio(async {
            let hub = hub();
            let room = hub.room("r").await.unwrap();
            assert_eq!(event(&member_list(&room).await)["members"], json!([]));
            let seats = Seats::default();
            let _bob = take(&hub, &seats, "r", "bob", None).await.unwrap();
            let _ada = take(&hub, &seats, "r", "ada", None).await.unwrap();
            let list = event(&member_list(&room).await);
            assert_eq!(
                (list["type"].as_str(), list["room"].as_str()),
                (Some("members"), Some("r"))
            );
            assert_eq!(list["members"], json!(["ada", "bob"]));
        });
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
        let change = PresenceChange {
            joined: vec!["ada".to_owned()],
            joined_more: 3,
            left: vec!["bob".to_owned()],
            left_more: 0,
        };
        assert_eq!(
            notice(ChatEnvelope.presence(&change)),
            json!({"type": "presence", "joined": ["ada"], "joined_more": 3,
                   "left": ["bob"], "left_more": 0})
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
