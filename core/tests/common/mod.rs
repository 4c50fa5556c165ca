//! Shared test harness: cores driven in memory with a fake clock.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use wavecast_core::frame::{apply_mask, FrameHeader, OpCode};
use wavecast_core::{Config, Connection, Event, Role, SeedSource};

/// A test config with a fixed seed so runs replay byte for byte.
pub fn config() -> Config {
    Config::default().with_seed(SeedSource::Fixed(7))
}

/// A raw frame as a client would send it (masked with a fixed key).
pub fn client_frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    frame(fin, rsv, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

/// A raw frame with an explicit mask choice.
pub fn frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let h = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    let mut out = Vec::new();
    h.encode_to(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        apply_mask(&mut out[start..], k, 0);
    }
    out
}

/// Drains every queued output byte of `conn`.
pub fn drain_output(conn: &mut Connection) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let mut buf = Vec::new();
        let chunk = conn.poll_transmit(&mut buf);
        all.extend_from_slice(&buf);
        match chunk {
            Some(c) => all.extend_from_slice(&c),
            None if buf.is_empty() => return all,
            None => {}
        }
    }
}

/// Splits bytes into frames (unmasking them), for checking what was sent.
pub fn parse_frames(mut bytes: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (h, n) = FrameHeader::decode(bytes)
            .expect("valid header")
            .expect("complete header");
        let len = h.payload_len as usize;
        let mut payload = bytes[n..n + len].to_vec();
        if let Some(k) = h.mask {
            apply_mask(&mut payload, k, 0);
        }
        out.push((h, payload));
        bytes = &bytes[n + len..];
    }
    out
}

/// Polls every event, answering nothing.
pub fn drain_events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// A client and a server wired back to back with a fake clock.
pub struct Pair {
    pub client: Connection,
    pub server: Connection,
    pub now: Instant,
}

impl Pair {
    pub fn new() -> Pair {
        Pair::with_configs(config(), config())
    }

    pub fn with_configs(client: Config, server: Config) -> Pair {
        let now = Instant::now();
        Pair {
            client: Connection::new(Role::Client, client, now),
            server: Connection::new(Role::Server, server, now),
            now,
        }
    }

    /// Moves bytes both ways until neither side has output.
    pub fn pump(&mut self) {
        loop {
            let c2s = drain_output(&mut self.client);
            let s2c = drain_output(&mut self.server);
            if c2s.is_empty() && s2c.is_empty() {
                return;
            }
            self.server.receive(self.now, &c2s);
            self.client.receive(self.now, &s2c);
        }
    }

    /// Advances the fake clock and fires due deadlines on both sides.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }
}

/// The payload bytes carried by a `Bytes`.
pub fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}
