//! wavecast-core: the sans-IO WebSocket protocol (RFC 6455).
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
pub mod extension;
mod timer;

pub use connection::{Connection, Event, Outcome, PreparedMessage, Role};
pub use extension::Extension;
pub mod admission;
pub mod backoff;
pub mod sse;

pub use admission::{Admission, Permit, Rejected};
pub use backoff::{Backoff, Jitter};
pub use sse::{SseError, SseEvent, SseParser};
