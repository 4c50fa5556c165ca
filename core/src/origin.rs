//! An origin allow-list for the upgrade hook (RFC 6455 §10.2): refusing
//! browsers from other sites prevents cross-site WebSocket hijacking.

use crate::handshake::Request;
use crate::http::HttpResponse;

/// An origin allow-list for the request hook: browsers from other sites are
/// refused with `403`. Requests without `Origin` (non-browser clients) are
/// allowed.
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
