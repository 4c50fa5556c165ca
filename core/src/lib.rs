//! wavecast-core: the sans-IO WebSocket protocol (RFC 6455).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod config;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod rng;

pub use close::{CloseCode, CloseFrame};
pub use config::{Config, SeedSource};
pub use error::{ConnectionError, HandshakeError, ProtocolError, TimeoutKind, UsageError};
pub use handshake::Negotiated;
pub use message::{Message, Utf8Bytes};
