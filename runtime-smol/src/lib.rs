//! wavecast on smol: WebSocket servers and clients, broadcast rooms and
//! Server-Sent Events, driving the sans-IO `wavecast-core`.
//!
//! The same API as `wavecast-tokio`: switching runtime changes an import.
//! The driver runs on the async-io reactor; `wavecast-async-std` reuses it
//! with async-std's executor and sockets.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
#[doc(hidden)]
pub mod driver;
#[doc(hidden)]
pub mod runtime;
mod server;
mod tls;
mod websocket;

pub use client::{client_over, connect, connect_with, Response};
#[doc(hidden)]
pub use client::{client_over_on, connect_with_on};
pub use server::{accept, accept_with, read_request, Incoming};
#[doc(hidden)]
pub use server::{accept_with_on, read_request_on};
#[cfg(feature = "rustls")]
pub use tls::{connect_tls_with, default_client_config};
pub use wavecast_core::handshake::{Accept, ClientRequest, Request};
pub use wavecast_core::{
    CloseCode, CloseFrame, Config, Error, HttpResponse, Message, Negotiated, Outcome,
    PreparedMessage, Role, SeedSource, TrySendError, Utf8Bytes,
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
