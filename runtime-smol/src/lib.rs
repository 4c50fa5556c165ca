//! wavecast on smol: WebSocket servers and clients, broadcast rooms and
//! Server-Sent Events, driving the sans-IO `wavecast-core`.
//!
//! The same API as `wavecast-tokio`: switching runtime changes an import.
//!
//! - [`accept`], [`accept_with`], [`read_request`] / [`Incoming`]: serve one
//!   stream; [`serve`]: an accept loop with a connection cap and graceful
//!   shutdown, where the handler answers WebSocket, SSE and plain HTTP
//!   requests on one port.
//! - [`connect`], [`connect_with`], [`client_over`], and [`Reconnect`] for a
//!   client that reconnects with backoff.
//! - [`Hub`] and [`Room`]: broadcast rooms on `async-broadcast`;
//!   [`SseStream`]: Server-Sent Events fed by the same rooms.
//!
//! The driver runs on the async-io reactor; `wavecast-async-std` reuses it
//! (and these rooms, `serve` and SSE) with async-std's executor and sockets.
//! Types that spawn tasks or open sockets carry a runtime parameter that
//! defaults to smol ([`runtime::Smol`]); smol users never name it.
//!
//! Not here: HTTP beyond one response per connection (use hyper), and TLS
//! unless the `rustls` feature is on.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod broadcast;
mod client;
#[doc(hidden)]
pub mod driver;
mod reconnect;
#[doc(hidden)]
pub mod runtime;
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
#[doc(hidden)]
pub use client::{client_over_on, connect_with_on};
pub use reconnect::Reconnect;
#[doc(hidden)]
pub use serve::serve_on;
pub use serve::{serve, ServeConfig, Server};
pub use server::{accept, accept_with, read_request, Incoming, OriginAllowList};
#[doc(hidden)]
pub use server::{accept_with_on, default_config, read_request_on};
pub use sse::{SseConfig, SseEnd, SseStream};
#[cfg(feature = "rustls")]
#[doc(hidden)]
pub use tls::connect_tls_with_on;
#[cfg(feature = "rustls")]
pub use tls::{connect_tls_with, default_client_config};
pub use wavecast_core::handshake::{Accept, ClientRequest, Request};
pub use wavecast_core::{
    Backoff, CloseCode, CloseFrame, Config, Error, HttpResponse, Jitter, Message, Negotiated,
    Outcome, PreparedMessage, Role, SeedSource, SseEvent, SseParser, TrySendError, Utf8Bytes,
};
pub use websocket::{Receiver, Sender, WebSocket};
/// Wraps an already-upgraded stream (from hyper or another HTTP stack) and
/// starts its driver on smol's executor; the same as
/// [`WebSocket::from_upgraded`].
pub fn from_upgraded<S>(
    stream: S,
    role: Role,
    config: impl Into<std::sync::Arc<Config>>,
    negotiated: &Negotiated,
    leftover: bytes::Bytes,
) -> WebSocket
where
    S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static,
{
    WebSocket::from_upgraded(stream, role, config, negotiated, leftover)
}
