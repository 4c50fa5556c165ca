//! What the chat server decides, the same on every runtime: routing, input
//! validation, the JSON events and who is in which room.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::json;
use wavecast_core::handshake::Request;
use wavecast_core::{Config, HostAllowList, HttpResponse, Message, OriginAllowList};

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
    Chat { room: String, nick: String },
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
        let nick = request
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("nick="))
            .map(|n| percent_decode(&n.replace('+', " ")))
            .unwrap_or_default();
        return match (check_room(&room), check_nick(&nick)) {
            (Err(reason), _) | (_, Err(reason)) => Route::Refuse(reason),
            (Ok(()), Ok(())) => Route::Chat { room, nick },
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

#[derive(Deserialize)]
struct Incoming {
    text: String,
}

/// Turns what a member sent into the event for the room, or an error
/// event for that member alone.
pub(crate) fn on_message(room: &str, nick: &str, message: &Message) -> Result<String, String> {
    let Message::Text(text) = message else {
        return Err(error_event(
            "send JSON text like {\"text\": \"hello\"}, not binary",
        ));
    };
    let incoming: Incoming =
        serde_json::from_str(text).map_err(|e| error_event(&format!("malformed message: {e}")))?;
    let chars = incoming.text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(error_event(&format!(
            "message is {chars} characters; the limit is {MAX_TEXT_CHARS}"
        )));
    }
    if incoming.text.trim().is_empty() {
        return Err(error_event("empty message"));
    }
    Ok(json!({
        "type": "message",
        "room": room,
        "nick": nick,
        "text": incoming.text,
        "time": unix_ms(),
    })
    .to_string())
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

/// Who is in which room (a nickname may be in a room more than once, with
/// several tabs).
#[derive(Clone, Default)]
pub(crate) struct Members {
    rooms: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl Members {
    /// Adds `nick` to `room`, logs it and returns the `join` event.
    pub(crate) fn join(&self, room: &str, nick: &str) -> String {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let list = rooms.entry(room.to_owned()).or_default();
        list.push(nick.to_owned());
        tracing::info!(room, nick, members = list.len(), "join");
        json!({ "type": "join", "nick": nick, "members": list }).to_string()
    }

    /// Removes one `nick` from `room`, logs it and returns the `leave` event.
    pub(crate) fn leave(&self, room: &str, nick: &str) -> String {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let list = rooms.entry(room.to_owned()).or_default();
        if let Some(at) = list.iter().position(|n| n == nick) {
            list.remove(at);
        }
        tracing::info!(room, nick, members = list.len(), "leave");
        let event = json!({ "type": "leave", "nick": nick, "members": list }).to_string();
        if list.is_empty() {
            rooms.remove(room);
        }
        event
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
        assert!(ok.contains(r#""type":"message""#) && ok.contains(r#""text":"hi""#));
        assert!(on_message("r", "n", &Message::from("nope")).is_err());
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(MAX_TEXT_CHARS + 1));
        assert!(on_message("r", "n", &Message::from(long))
            .unwrap_err()
            .contains("limit"));
    }
}
