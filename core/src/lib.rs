//! wavecast-core: the sans-IO WebSocket protocol (RFC 6455).
//!
//! This crate is a pure state machine: bytes go in, events and bytes come
//! out, and time is a value the caller passes in. It never touches a socket,
//! a clock or a thread, and has no `unsafe` code. The runtime adapters
//! (`wavecast-tokio`, `wavecast-async-std`, `wavecast-smol`) drive it.
//!
//! What it does: the opening handshake for both roles
//! ([`ServerHandshake`], [`ClientHandshake`], and the header-level
//! [`handshake::negotiate`] for hyper/axum), frame coding and masking
//! ([`frame`]), a [`Connection`] per peer that reassembles and validates
//! messages, answers pings, runs the close handshake and turns every
//! protocol violation into the right close code; heartbeat, idle, close and
//! handshake deadlines; [`PreparedMessage`]s framed once for broadcast;
//! Server-Sent Events ([`sse`]); and the policy types adapters share
//! ([`Admission`], [`Backoff`]). What it does not do: I/O, TLS, DNS, task
//! spawning, or HTTP beyond the upgrade and one-shot plain responses.
//!
//! With the `deflate` cargo feature (off by default here, on by default in
//! the adapters) it also negotiates and runs permessage-deflate (RFC 7692)
//! in the `deflate` module: memory-first, with no compression state held by
//! an idle connection unless context takeover is enabled in `DeflateConfig`.
//!
//! # The drive loop
//!
//! ```text
//!   transport ──bytes──▶ receive(now, &[u8]) ─┐
//!   EOF ───────────────▶ receive_eof(now)     ├─▶ Connection ──▶ poll_transmit(&mut buf) ──▶ transport
//!   timer fired ───────▶ handle_timeout(now) ─┘        │     └─▶ poll_timeout() ──▶ sleep until
//!   application ───────▶ send_*/close ────────────────▶│
//!   application ◀────────────────────────────────────── poll_event()
//! ```
//!
//! After every input or command, drain `poll_transmit`, then ask
//! `poll_timeout`. Events are produced when the application asks for them,
//! so a reply to message N is queued before the close caused by frame N+1.
//!
//! # Example: two cores in memory
//!
//! ```
//! use std::time::Instant;
//! use wavecast_core::{Config, Connection, Event, Message, Role, SeedSource};
//!
//! let now = Instant::now();
//! let config = Config::default().with_seed(SeedSource::Fixed(1));
//! let mut client = Connection::new(Role::Client, config.clone(), now);
//! let mut server = Connection::new(Role::Server, config, now);
//!
//! client.send_text("hello")?;
//! let mut wire = Vec::new();
//! while let Some(chunk) = client.poll_transmit(&mut wire) {
//!     wire.extend_from_slice(&chunk);
//! }
//! server.receive(now, &wire);
//!
//! match server.poll_event() {
//!     Some(Event::Message(Message::Text(text))) => {
//!         assert_eq!(text, "hello");
//!         server.send_text(text)?; // echo, without copying the payload
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), wavecast_core::UsageError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod config;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod message;
pub mod rng;

pub use close::{CloseCode, CloseFrame};
pub use config::{Config, SeedSource};
pub use error::{ConnectionError, HandshakeError, ProtocolError, TimeoutKind, UsageError};
pub use handshake::{
    Accept, Accepted, ClientAccepted, ClientHandshake, ClientRequest, Negotiated, Request,
    ServerHandshake, Target, UpgradeMode,
};
pub use http::HttpResponse;
pub use message::{Message, Utf8Bytes};
pub mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod extension;
mod timer;

pub use connection::{
    Connection, DirectRead, Event, Outcome, PreparedMessage, Role, DIRECT_READ_MIN,
};
#[cfg(feature = "deflate")]
pub use deflate::{DeflateConfig, DeflateParams};
pub use extension::Extension;
pub mod admission;
pub mod backoff;
pub mod sse;

pub use admission::{Admission, Permit, Rejected, ServeConfig};
pub use backoff::{Backoff, Jitter, Reconnecting};
pub use sse::{SseConfig, SseEnd, SseError, SseEvent, SseParser};
pub mod room;

pub use room::{
    LagAction, LagPolicy, MemberEnd, Registry, RoomConfig, RoomError, RoomEvent, RoomMessage,
};
pub mod attach;
pub mod origin;
pub mod outbox;
pub mod pool;
pub mod shared;

pub use origin::OriginAllowList;
pub use outbox::Outbox;
pub use pool::BufferPool;

pub use attach::Attachment;
pub use error::{Error, TrySendError};
pub use shared::{DriverState, Shared, Tracker};
