//! wavecast on tokio: WebSocket servers and clients, broadcast rooms and
//! Server-Sent Events, driving the sans-IO `wavecast-core`.
//!
//! - [`accept`], [`accept_with`], [`read_request`] / [`Incoming`]: serve one
//!   stream; [`serve`]: an accept loop with a connection cap and graceful
//!   shutdown, where the handler answers WebSocket, SSE and plain HTTP
//!   requests on one port.
//! - [`connect`], [`connect_with`], [`client_over`], and [`Reconnect`] for a
//!   client that reconnects with backoff.
//! - [`Hub`] and [`Room`]: broadcast rooms; [`SseStream`]: Server-Sent Events
//!   fed by the same rooms.
//!
//! Not here: HTTP beyond one response per connection (use hyper), and TLS
//! unless the `rustls` feature is on.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod broadcast;
mod client;
mod driver;
mod error;
mod reconnect;
mod serve;
mod server;
mod sse;
mod tls;
mod websocket;

pub use broadcast::{
    Hub, LagPolicy, Member, MemberEnd, Room, RoomConfig, RoomError, RoomEvent, RoomMessage,
    Subscription,
};
pub use client::{client_over, connect, connect_with, Response};
pub use error::{Error, TrySendError};
pub use reconnect::Reconnect;
pub use serve::{serve, ServeConfig, Server};
pub use server::{accept, accept_with, read_request, Incoming, OriginAllowList};
pub use sse::{SseConfig, SseEnd, SseStream};
#[cfg(feature = "rustls")]
pub use tls::{connect_tls_with, default_client_config};
pub use wavecast_core::handshake::{Accept, ClientRequest, Request};
pub use wavecast_core::{
    Backoff, CloseCode, CloseFrame, Config, HttpResponse, Jitter, Message, Negotiated, Outcome,
    PreparedMessage, Role, SeedSource, SseEvent, SseParser, Utf8Bytes,
};
pub use websocket::{Receiver, Sender, WebSocket};
