//! Who may talk to this server: an allow-list of the host names it serves
//! ([`HostAllowList`], against DNS rebinding) and of the browser origins it
//! accepts ([`OriginAllowList`], RFC 6455 §10.2, against cross-site
//! WebSocket hijacking). Both are checked in the request hook, host first:
//!
//! ```
//! # use wavecast_core::{HostAllowList, HttpResponse, OriginAllowList, Request};
//! fn guard(
//!     hosts: &HostAllowList,
//!     origins: &OriginAllowList,
//!     request: &Request,
//! ) -> Result<(), HttpResponse> {
//!     hosts.check(request)?;
//!     origins.check(request)
//! }
//! ```
//!
//! [`OriginAllowList::same_host`] alone does not stop DNS rebinding. A page
//! on `http://evil.example` whose name the attacker then points at your
//! address (`127.0.0.1`, or a machine on your network) reaches your server
//! with `Host: evil.example` and `Origin: http://evil.example`: the origin
//! names the same host as the request, so `same_host` lets it in, and the
//! page can read everything your server answers. Only the server knows
//! which names are its own; [`HostAllowList`] is that list, and refuses
//! every other `Host` with 421.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::handshake::Request;
use crate::http::HttpResponse;

/// The host names this server answers to, checked against the request's
/// `Host` header (RFC 9110 §7.2): the defence against DNS rebinding, which
/// [`OriginAllowList::same_host`] alone does not give (see the
/// [module docs](self)).
///
/// Entries are `host` or `host:port`, where `host` is a DNS name, an IPv4
/// address or an IPv6 address in brackets (`[::1]`; `::1` is taken too).
/// Matching rules:
///
/// - names compare ASCII case-insensitively, and a trailing dot (the fully
///   qualified form, `localhost.`) is ignored on both sides;
/// - IP addresses compare as addresses, so `[::1]` matches
///   `[0:0:0:0:0:0:0:1]`;
/// - an entry without a port matches the host on any port (and without
///   one); an entry with a port matches only a `Host` that names that
///   port: the core cannot know the scheme's default, so `example.com:443`
///   does not match a bare `example.com`;
/// - there are no wildcards: list each name.
///
/// An entry that is not a valid `host[:port]` matches nothing.
///
/// Answers, per RFC 9110 and RFC 9112:
///
/// - no `Host`, more than one, or one that is not a valid `host[:port]`:
///   **400**, which RFC 9112 §3.2 requires for exactly these cases;
/// - a valid `Host` that is not on the list: **421 Misdirected Request**
///   (RFC 9110 §15.5.20): the request is well-formed and the client may be
///   allowed here, but this server is not authoritative for the name it
///   asked for — which is what a DNS-rebound request is. 403 would blame
///   the client's credentials, 400 its syntax; neither is the problem.
///
/// ```
/// # use wavecast_core::HostAllowList;
/// let hosts = HostAllowList::new(["localhost", "127.0.0.1", "[::1]"]).allow("chat.example:8443");
/// assert!(hosts.allows("LOCALHOST:60000"));
/// assert!(hosts.allows("[0:0:0:0:0:0:0:1]"));
/// assert!(hosts.allows("chat.example:8443"));
/// assert!(!hosts.allows("chat.example"));
/// assert!(!hosts.allows("evil.example"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct HostAllowList {
    hosts: Vec<Option<HostPort>>,
}

impl HostAllowList {
    /// Allows exactly these hosts (`host` or `host:port`, see the matching
    /// rules above). An empty list allows nothing.
    pub fn new<I, T>(hosts: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        HostAllowList {
            hosts: hosts
                .into_iter()
                .map(|h| HostPort::parse_entry(h.as_ref()))
                .collect(),
        }
    }

    /// Also allows `host` (`host` or `host:port`).
    pub fn allow(mut self, host: impl AsRef<str>) -> Self {
        self.hosts.push(HostPort::parse_entry(host.as_ref()));
        self
    }

    /// Whether a `Host` header value names an allowed host. Useful where
    /// the request was parsed elsewhere (hyper, axum).
    pub fn allows(&self, host: &str) -> bool {
        let Some(host) = HostPort::parse(host.trim_matches([' ', '\t'])) else {
            return false;
        };
        self.hosts
            .iter()
            .flatten()
            .any(|entry| entry.matches(&host))
    }

    /// `Ok(())` when the request's `Host` is on the list; otherwise 400
    /// (missing, repeated or malformed `Host`) or 421 (another host).
    /// Call it before [`OriginAllowList::check`], for every request, plain
    /// HTTP too: a rebound page could read those answers as well.
    pub fn check(&self, request: &Request) -> Result<(), HttpResponse> {
        let mut values = request.headers().get_all_bytes("host");
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(HttpResponse::text(
                400,
                "the request must carry exactly one Host header\n",
            ));
        };
        let host = std::str::from_utf8(value)
            .ok()
            .and_then(|v| HostPort::parse(v.trim_matches([' ', '\t'])));
        match host {
            None => Err(HttpResponse::text(400, "invalid Host header\n")),
            Some(host) if self.hosts.iter().flatten().any(|e| e.matches(&host)) => Ok(()),
            Some(_) => Err(HttpResponse::text(
                421,
                "this server does not serve that host\n",
            )),
        }
    }
}

/// A parsed `host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostPort {
    host: Host,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    /// A registered name, lower-cased, without a trailing dot.
    Name(String),
}

impl HostPort {
    /// Parses a `Host` value: `uri-host [ ":" port ]` (RFC 9110 §7.2,
    /// RFC 3986 §3.2.2), IPv6 in brackets.
    fn parse(s: &str) -> Option<HostPort> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (ip, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (Host::Ip(IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?)), port)
        } else {
            let (name, port) = match s.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (s, None),
            };
            let host = match name.parse::<Ipv4Addr>() {
                Ok(ip) => Host::Ip(IpAddr::V4(ip)),
                Err(_) => Host::Name(parse_name(name)?),
            };
            (host, port)
        };
        let port = match port {
            // RFC 3986 allows an empty port; it means the default.
            None | Some("") => None,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
            Some(_) => return None,
        };
        Some(HostPort { host, port })
    }

    /// Parses an allow-list entry: a `Host` value, or a bare IPv6 address.
    fn parse_entry(s: &str) -> Option<HostPort> {
        let s = s.trim();
        HostPort::parse(s).or_else(|| {
            let ip = s.parse::<Ipv6Addr>().ok()?;
            Some(HostPort {
                host: Host::Ip(IpAddr::V6(ip)),
                port: None,
            })
        })
    }

    /// Whether `self`, an entry, allows `host`, a request's.
    fn matches(&self, host: &HostPort) -> bool {
        self.host == host.host && (self.port.is_none() || self.port == host.port)
    }
}

/// A registered name (RFC 3986 §3.2.2: unreserved, sub-delims and
/// percent-encoded octets), lower-cased and without a trailing dot.
fn parse_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b));
    ok.then(|| name.to_ascii_lowercase())
}

/// An origin allow-list for the request hook: browsers from other sites are
/// refused with `403`. Requests without `Origin` (non-browser clients) are
/// allowed. Pair it with a [`HostAllowList`]: the origin check alone does
/// not stop DNS rebinding.
#[derive(Clone, Debug, Default)]
pub struct OriginAllowList {
    origins: Vec<String>,
    same_host: bool,
}

impl OriginAllowList {
    /// Allows exactly these origins (`scheme://host[:port]`, compared
    /// case-insensitively).
    pub fn new<I, T>(origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        OriginAllowList {
            origins: origins
                .into_iter()
                .map(|o| o.into().to_ascii_lowercase())
                .collect(),
            same_host: false,
        }
    }

    /// Allows a browser whose `Origin` names the host the request was sent
    /// to: the origin's `host[:port]` equals the `Host` header. So a page
    /// served by this server may connect however it was reached
    /// (`localhost` or `127.0.0.1`), and other sites may not.
    ///
    /// This trusts the `Host` header, which a DNS-rebinding page controls:
    /// it sends its own name as both `Host` and `Origin`, and passes.
    /// Check the host against a [`HostAllowList`] first.
    pub fn same_host() -> Self {
        OriginAllowList {
            origins: Vec::new(),
            same_host: true,
        }
    }

    /// Also allows `origin`.
    pub fn allow(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into().to_ascii_lowercase());
        self
    }

    fn allows(&self, request: &Request, origin: &str) -> bool {
        let origin = origin.trim();
        if self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        if !self.same_host {
            return false;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        match (authority, request.host()) {
            (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host.trim()),
            _ => false,
        }
    }

    /// `Ok(())` when the request may proceed, or a 403 response.
    pub fn check(&self, request: &Request) -> Result<(), HttpResponse> {
        match request.origin() {
            None => Ok(()),
            Some(origin) if self.allows(request, origin) => Ok(()),
            Some(_) => Err(HttpResponse::text(403, "origin not allowed\n")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::handshake::ServerHandshake;
    use crate::Config;

    fn request(host: &str, origin: Option<&str>) -> Request {
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\n{origin}\r\n");
        let mut hs = ServerHandshake::new(&Config::default(), Instant::now());
        hs.receive(Instant::now(), head.as_bytes())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn same_host_policy() {
        let policy = OriginAllowList::same_host();
        assert!(policy.check(&request("localhost:60000", None)).is_ok());
        assert!(policy
            .check(&request("localhost:60000", Some("http://localhost:60000")))
            .is_ok());
        assert!(policy
            .check(&request("127.0.0.1:60000", Some("http://127.0.0.1:60000")))
            .is_ok());
        let refused = policy
            .check(&request("localhost:60000", Some("http://evil.example")))
            .unwrap_err();
        assert_eq!(refused.status(), 403);
        assert!(policy
            .check(&request("localhost:60000", Some("http://localhost:60001")))
            .is_err());
    }

    fn head(raw: &str) -> Request {
        let mut hs = ServerHandshake::new(&Config::default(), Instant::now());
        hs.receive(Instant::now(), raw.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn host_matching_rules() {
        let hosts = HostAllowList::new(["localhost", "127.0.0.1", "[::1]"])
            .allow("Chat.Example.:8443")
            .allow("fe80::1")
            .allow("not a host")
            .allow("[::1");
        for ok in [
            "localhost",
            "localhost:60000",
            "LocalHost:1",
            "localhost.",
            "localhost.:80",
            "localhost:",
            "127.0.0.1",
            "127.0.0.1:60000",
            "[::1]",
            "[::1]:60000",
            "[0:0:0:0:0:0:0:1]:60000",
            "[FE80::1]",
            "chat.example:8443",
            "CHAT.EXAMPLE.:8443",
            " localhost ",
        ] {
            assert!(hosts.allows(ok), "{ok:?} should be allowed");
        }
        for refused in [
            "evil.example",
            "evil.example:60000",
            "localhost.evil.example",
            "evillocalhost",
            "chat.example",
            "chat.example:443",
            "127.0.0.2",
            "[::2]",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "localhost:99999",
            "localhost:-1",
            "user@localhost",
            "local host",
            "",
            "not a host",
        ] {
            assert!(!hosts.allows(refused), "{refused:?} should be refused");
        }
        assert!(!HostAllowList::default().allows("localhost"));
    }

    #[test]
    fn host_check_statuses() {
        let hosts = HostAllowList::new(["localhost"]);
        assert!(hosts.check(&request("localhost:60000", None)).is_ok());
        // DNS rebinding: Host and Origin are both the attacker's name, which
        // `same_host` accepts and the host list does not.
        let rebound = request("evil.example:60000", Some("http://evil.example:60000"));
        assert!(OriginAllowList::same_host().check(&rebound).is_ok());
        let refused = hosts.check(&rebound).unwrap_err();
        assert_eq!(refused.status(), 421);
        assert!(String::from_utf8(refused.encode(false))
            .unwrap()
            .starts_with("HTTP/1.1 421 Misdirected Request\r\n"));
        // Missing, repeated or malformed Host: 400 (RFC 9112 §3.2).
        for raw in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: local host\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: localhost:http\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: é\r\n\r\n",
            "GET / HTTP/1.1\r\nHost:\r\n\r\n",
        ] {
            let status = hosts.check(&head(raw)).unwrap_err().status();
            assert_eq!(status, 400, "{raw:?}");
        }
    }

    #[test]
    fn allow_list() {
        let policy = OriginAllowList::new(["https://app.example"]);
        assert!(policy
            .check(&request("x", Some("https://APP.example")))
            .is_ok());
        assert!(policy
            .check(&request("x", Some("https://other.example")))
            .is_err());
    }
}
