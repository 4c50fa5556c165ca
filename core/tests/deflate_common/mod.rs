//! permessage-deflate test helpers: a client–server pair that ran the real
//! opening handshake, so the extension is negotiated as in production.
#![allow(dead_code, unreachable_pub)]

use std::time::Instant;

use wavecast_core::handshake::{ClientHandshake, ClientRequest};
use wavecast_core::{Accept, Config, Connection, Negotiated, Role, ServerHandshake};

use crate::common::Pair;

/// Runs the opening handshake between `client` and `server` configs and
/// returns what each side negotiated.
pub fn handshake(client: &Config, server: &Config) -> (Negotiated, Negotiated) {
    let now = Instant::now();
    let mut hs = ClientHandshake::new(client, ClientRequest::new("h", "/").unwrap(), now);
    let mut srv = ServerHandshake::new(server, now);
    let request = srv
        .receive(now, hs.request_bytes())
        .expect("request")
        .expect("complete");
    let accepted = srv.accept(&request, Accept::new()).expect("accept");
    let done = hs
        .receive(now, &accepted.response)
        .expect("response")
        .expect("complete");
    assert_eq!(done.negotiated, accepted.negotiated);
    (done.negotiated, accepted.negotiated)
}

/// A pair whose connections were built from a real handshake.
pub fn negotiated_pair(client: Config, server: Config) -> Pair {
    let (c, s) = handshake(&client, &server);
    let now = Instant::now();
    Pair {
        client: Connection::with_negotiated(Role::Client, client, &c, now),
        server: Connection::with_negotiated(Role::Server, server, &s, now),
        now,
    }
}
