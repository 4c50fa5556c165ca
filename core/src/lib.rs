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
//! protocol violation into the right close code; heartbeat, idle, close,
//! write-stall, linger and handshake deadlines; [`PreparedMessage`]s framed once for broadcast;
//! Server-Sent Events ([`sse`]); and the policy types adapters share
//! ([`Admission`], [`Backoff`], the room [`room::Cursor`] with its lag
//! policy, room [`History`] and the [`CatchUp`] of a reconnecting
//! subscriber) and the [`SseSession`] that runs an event stream. What it does
//! not do: I/O, TLS, DNS, task spawning, waiting, or HTTP beyond the
//! upgrade and one-shot plain responses — `wavecast-runtime` drives it for
//! every async runtime, and `wavecast-tokio`, `wavecast-smol` and
//! `wavecast-async-std` plug a runtime in.
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

pub mod admission;
pub mod backoff;
pub mod close;
pub mod config;
pub mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod error;
pub mod extension;
pub mod frame;
pub mod handshake;
pub mod history;
pub mod http;
pub mod message;
pub mod origin;
pub mod pool;
pub mod presence;
pub mod rng;
pub mod room;
pub mod sse;
mod timer;

// The connection: the state machine, its messages, close codes, settings.
pub use close::{CloseCode, CloseFrame};
pub use config::{Config, SeedSource};
pub use connection::{
    Connection, Event, Outcome, PreparedMessage, ReadTarget, Role, FRAGMENT_COST, STREAM_CHUNK,
};
pub use message::{Chunk, Message, Utf8Bytes};
pub use pool::BufferPool;

// Extensions.
#[cfg(feature = "deflate")]
pub use deflate::{DeflateConfig, DeflateParams};
pub use extension::Extension;

// The opening handshake and plain HTTP answers.
pub use handshake::{
    Accept, Accepted, ClientAccepted, ClientHandshake, ClientRequest, Negotiated, Request,
    ServerHandshake, Target, UpgradeMode,
};
pub use http::HttpResponse;
pub use origin::{HostAllowList, OriginAllowList};

// Errors, split by who is at fault.
pub use error::{
    ConnectionError, Error, HandshakeError, ProtocolError, TimeoutKind, TrySendError, UsageError,
};

// Policy shared by every runtime: admission, reconnect backoff, rooms, SSE.
pub use admission::{Admission, Permit, Rejected, ServeConfig};
pub use backoff::{Backoff, Jitter, Reconnecting};
pub use history::{
    CatchUp, CatchUpEvent, History, HistoryConfig, PositionParseError, Recovery, StreamPosition,
};
pub use presence::{PresenceBatch, PresenceChange, PresenceConfig};
pub use room::{LagAction, LagPolicy, MemberEnd, RoomConfig, RoomError, RoomEvent, RoomMessage};
pub use sse::{SseConfig, SseEnd, SseError, SseEvent, SseParser, SseSession};
