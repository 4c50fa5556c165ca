//! wavecast on tokio: WebSocket servers and clients, broadcast rooms and
//! Server-Sent Events, driving the sans-IO `wavecast-core`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod driver;
mod error;
mod server;
mod tls;
mod websocket;

pub use client::{client_over, connect, connect_with, Response};
pub use error::{Error, TrySendError};
pub use server::{accept, accept_with, read_request, Incoming, OriginAllowList};
#[cfg(feature = "rustls")]
pub use tls::{connect_tls_with, default_client_config};
pub use wavecast_core::handshake::{Accept, ClientRequest, Request};
pub use wavecast_core::{
    CloseCode, CloseFrame, Config, HttpResponse, Message, Negotiated, Outcome, PreparedMessage,
    Role, SeedSource, Utf8Bytes,
};
pub use websocket::{Receiver, Sender, WebSocket};
