//! wavecast-runtime: everything async in wavecast that no particular
//! runtime owns, written once over a small [`Runtime`] trait.
//!
//! wavecast has three layers, each with one job:
//!
//! ```text
//!  wavecast-core      decides: handshake, frames, every deadline, HTTP answers,
//!                     room ring semantics, SSE encoding (sans-IO, no async)
//!        ▲
//!  wavecast-runtime   waits and wakes: the driver task, WebSocket/Sender/Receiver,
//!                     accept/connect, rooms, SSE, serve, reconnect, TLS
//!        ▲            (this crate, generic over `R: Runtime`)
//!  wavecast-tokio     one `Runtime` impl each, its broadcast channel and
//!  wavecast-smol      re-exports with the runtime fixed
//!  wavecast-async-std
//! ```
//!
//! Applications depend on an adapter crate (`wavecast-tokio`, ...), which
//! re-exports this API with its runtime fixed: `wavecast_tokio::connect(url)`
//! is [`connect::<Tokio>`](connect). Use this crate directly to run wavecast
//! on another runtime: implement [`Runtime`] (spawn, clock, a resettable
//! [`Timer`], TCP connect and accept, a [`Broadcast`] channel) for a unit
//! type and call the generic functions, or generate the same fixed-runtime
//! API an adapter has with [`adapter!`].
//!
//! ```no_run
//! use std::future::Future;
//! use std::io;
//! use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
//! use std::time::Instant;
//!
//! use async_io::{Async, Timer};
//! use wavecast_runtime::{AsyncBroadcast, BoxFuture, Runtime};
//!
//! /// A runtime of our own: a thread per task, async-io sockets and timers.
//! struct Threads;
//!
//! impl Runtime for Threads {
//!     type Tcp = Async<TcpStream>;
//!     type Listener = Async<TcpListener>;
//!     type Timer = Timer; // a `wavecast_runtime::Timer` with the `async-io` feature
//!     type Sleep = Timer;
//!     type Broadcast = AsyncBroadcast; // with the `async-broadcast` feature
//!
//!     fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
//!         std::thread::spawn(move || async_io::block_on(future));
//!     }
//!     fn timer(deadline: Instant) -> Timer {
//!         Timer::at(deadline)
//!     }
//!     fn sleep_until(deadline: Instant) -> Timer {
//!         Timer::at(deadline)
//!     }
//!     fn connect(host: String, port: u16) -> BoxFuture<'static, io::Result<Self::Tcp>> {
//!         Box::pin(async move {
//!             let addr = (host.as_str(), port).to_socket_addrs()?.next();
//!             let addr = addr.ok_or(io::ErrorKind::NotFound)?;
//!             let tcp = Async::<TcpStream>::connect(addr).await?;
//!             tcp.get_ref().set_nodelay(true)?;
//!             Ok(tcp)
//!         })
//!     }
//!     fn accept(listener: &Self::Listener) -> BoxFuture<'_, io::Result<Self::Tcp>> {
//!         Box::pin(async move { Ok(listener.accept().await?.0) })
//!     }
//!     fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
//!         listener.get_ref().local_addr()
//!     }
//! }
//!
//! # fn main() -> Result<(), wavecast_runtime::Error> {
//! async_io::block_on(async {
//!     let (mut ws, _) = wavecast_runtime::connect::<Threads>("ws://127.0.0.1:9001/").await?;
//!     ws.send("hello").await?;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! `runtime/tests/custom_runtime.rs` does exactly this with a runtime of
//! its own (threads as the executor).
//!
//! # How a connection runs
//!
//! Each connection has one driver task that owns the transport: it reads
//! into the core, writes what the core queued, and sleeps until the core's
//! next deadline. Handles ([`WebSocket`], [`Sender`], [`Receiver`]) reach
//! the connection through a shared lock plus wakers, never the socket.
//! Room members run inside their connection's driver task.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attach;
mod backplane;
mod broadcast;
mod client;
mod driver;
#[cfg(all(feature = "http2", feature = "rustls"))]
mod http2;
mod io;
pub mod metrics;
mod outbox;
mod reconnect;
mod registry;
mod runtime;
mod serve;
mod server;
mod shared;
mod sse;
mod stream;
mod task;
mod tls;
#[cfg(feature = "hyper")]
mod upgrade;
mod websocket;

// The runtime contract.
#[cfg(feature = "async-broadcast")]
pub use runtime::AsyncBroadcast;
pub use runtime::{BoxFuture, Broadcast, Runtime, Timer, Transport, TryRecv};

// Connections.
pub use client::{client_over, connect, connect_with, Response};
pub use reconnect::Reconnect;
pub use server::{accept, accept_with, default_config, read_request, Incoming};
pub use stream::IncomingMessage;
pub use task::{connection_task, ConnectionTask};
#[cfg(feature = "rustls")]
pub use tls::{connect_tls_with, default_client_config};
#[cfg(feature = "hyper")]
pub use upgrade::{request_from_http, UpgradeRejection, WebSocketUpgrade};
pub use websocket::{Receiver, Sender, WebSocket};

// Rooms, SSE and the server loop.
#[cfg(feature = "redis")]
pub use backplane::RedisConfig;
pub use backplane::{
    BackplaneError, Envelope, Plain, Presence, StreamEvent, StreamHub, StreamRoom,
    StreamSubscription, DEFAULT_DEDUP_IDS, DEFAULT_DEDUP_WINDOW, MAX_PUBLISH_ID_LEN,
};
pub use broadcast::{Hub, Member, Room, Subscription};
pub use serve::{serve, Server};
pub use sse::SseStream;

// The core's types an application names.
pub use wavecast_core::handshake::{Accept, ClientRequest, Headers, HttpVersion, Request};
pub use wavecast_core::history::{HistoryConfig, Recovery, StreamPosition};
pub use wavecast_core::presence::{PresenceChange, PresenceConfig};
pub use wavecast_core::room::{
    LagPolicy, MemberEnd, RoomConfig, RoomError, RoomEvent, RoomMessage,
};
pub use wavecast_core::{
    Backoff, Chunk, CloseCode, CloseFrame, Config, ConnectionError, Error, HandshakeError,
    HostAllowList, HttpResponse, Jitter, Message, Negotiated, OriginAllowList, Outcome,
    PreparedMessage, ProtocolError, Role, SeedSource, ServeConfig, SseConfig, SseEnd, SseEvent,
    SseParser, TimeoutKind, TrySendError, UsageError, Utf8Bytes,
};

/// Writes the fixed-runtime API of an adapter crate: type aliases
/// (`Hub`, `Room`, `Incoming`, ...) and functions (`accept`, `connect`,
/// `serve`, ...) with the runtime chosen, so users never name it.
///
/// The invoking crate must have, in scope:
/// - `type Io<S>`: what a user's stream `S` becomes to be a [`Transport`]
///   (`S` itself, or a compat wrapper), and `fn io<S>(stream: S) -> Io<S>`;
///
/// and passes, for the examples in the generated docs, its own crate name,
/// its runtime's `net` module and a `block_on` expression (the examples
/// are doctests of the invoking crate); then the runtime type, its TCP
/// stream type as users know it, and the bounds on a user's stream:
///
/// ```text
/// wavecast_runtime::adapter!(
///     docs("wavecast_smol", "smol::net", "smol::block_on"),
///     Smol, smol::net::TcpStream, Transport
/// );
/// ```
///
/// (`wavecast-smol`'s whole `lib.rs` is that call, its `Runtime` impl and
/// `type Io<S> = S; fn io<S>(s: S) -> S { s }`.)
#[macro_export]
macro_rules! adapter {
    (docs($krate:literal, $net:literal, $block_on:literal), $rt:ty, $tcp:ty, $($bound:tt)+) => {
        /// Named broadcast rooms sharing one [`RoomConfig`](crate::RoomConfig)
        /// (see [`wavecast_runtime::Hub`] for the lag policy). Cloning is
        /// cheap and clones share the rooms; a room is removed once nothing
        /// holds it.
        ///
        #[doc = concat!(
            "```\n",
            "# fn main() -> Result<(), Box<dyn std::error::Error>> { ", $block_on, "(async {\n",
            "use ", $krate, "::{Hub, RoomConfig, RoomEvent};\n",
            "\n",
            "let hub = Hub::new(RoomConfig::default());\n",
            "let news = hub.room(\"news\")?; // created on first use\n",
            "let mut subscription = news.subscribe();\n",
            "\n",
            "// Anywhere else: the same name is the same room.\n",
            "hub.room(\"news\")?.publish(\"hello\");\n",
            "\n",
            "match subscription.recv().await {\n",
            "    RoomEvent::Message(message) => assert_eq!(message.message().as_bytes(), b\"hello\"),\n",
            "    other => panic!(\"{other:?}\"),\n",
            "}\n",
            "assert!(hub.room(\"\").is_err()); // names are 1 to 128 bytes, no control characters\n",
            "# Ok::<(), Box<dyn std::error::Error>>(()) }) }\n",
            "```",
        )]
        pub type Hub = $crate::Hub<$rt>;

        /// One room: publish to it, and join connections to it. A message is
        /// framed once and the same bytes go to every member; a member that
        /// falls behind gets the room's lag policy (see
        /// [`wavecast_runtime::Room`]).
        ///
        /// Join a connection before its `101` is written, with
        /// [`Incoming::accept_then`](crate::Incoming::accept_then), so it
        /// misses nothing published after the client sees the handshake
        /// complete:
        ///
        #[doc = concat!(
            "```\n",
            "use ", $krate, "::{Accept, Incoming, Room};\n",
            "\n",
            "/// Everything a member sends goes to every member, itself included.\n",
            "async fn chat(incoming: Incoming, room: Room) {\n",
            "    let mut member = None;\n",
            "    let accepted = incoming.accept_then(Accept::new(), |ws| {\n",
            "        member = Some(room.join(ws.sender()));\n",
            "    });\n",
            "    let (Ok(ws), Some(member)) = (accepted, member) else { return };\n",
            "    let _ = room.chat(ws, member).await;\n",
            "}\n",
            "```",
        )]
        pub type Room = $crate::Room<$rt>;
        /// A room subscription (see [`wavecast_runtime::Subscription`]).
        pub type Subscription = $crate::Subscription<$rt>;

        /// A client that reconnects with backoff: 500 ms doubling up to
        /// 30 s, with jitter, no limit on attempts by default (see
        /// [`wavecast_runtime::Reconnect`] and [`Backoff`](crate::Backoff)).
        ///
        #[doc = concat!(
            "```no_run\n",
            "# fn main() -> Result<(), Box<dyn std::error::Error>> { ", $block_on, "(async {\n",
            "use ", $krate, "::Reconnect;\n",
            "\n",
            "let mut client = Reconnect::new(\"ws://127.0.0.1:9001/chat\")?;\n",
            "loop {\n",
            "    // Waits out the backoff after a loss; errors once attempts run out.\n",
            "    let (mut ws, _) = client.connect().await?;\n",
            "    while let Some(Ok(message)) = ws.recv().await {\n",
            "        println!(\"{message:?}\");\n",
            "    }\n",
            "}\n",
            "# Ok::<(), Box<dyn std::error::Error>>(()) }) }\n",
            "```",
        )]
        pub type Reconnect = $crate::Reconnect<$rt>;
        /// A request read but not answered yet (see
        /// [`wavecast_runtime::Incoming`]).
        pub type Incoming<S = $tcp> = $crate::Incoming<Io<S>, $rt>;

        /// A Server-Sent Events stream: the `200 text/event-stream` answer to
        /// a request, then events you send or a room's text messages, with
        /// keep-alives while it is quiet (see [`wavecast_runtime::SseStream`]).
        ///
        #[doc = concat!(
            "```\n",
            "use ", $krate, "::{Error, Incoming, Room, SseConfig, SseEvent, SseStream};\n",
            "\n",
            "/// Answers with an event stream of `room` (use it as a `serve` handler's branch).\n",
            "async fn listen(incoming: Incoming, room: Room) -> Result<(), Error> {\n",
            "    let mut subscription = room.subscribe(); // before answering: nothing is missed\n",
            "    let mut sse = SseStream::respond(incoming, SseConfig::default()).await?;\n",
            "    sse.send(&SseEvent::data(\"welcome\")).await?;\n",
            "    let end = sse.forward(&mut subscription).await; // until the client leaves\n",
            "    println!(\"stream ended: {end:?}\");\n",
            "    Ok(())\n",
            "}\n",
            "```",
        )]
        pub type SseStream<S = $tcp> = $crate::SseStream<Io<S>, $rt>;
        /// A WebSocket upgrade in a hyper service or an axum handler (see
        /// [`wavecast_runtime::WebSocketUpgrade`]).
        #[cfg(feature = "hyper")]
        pub type WebSocketUpgrade = $crate::WebSocketUpgrade<$rt>;

        /// Accepts a WebSocket on `stream` with the default configuration
        /// and no checks beyond RFC 6455: any path, any origin (see
        /// [`wavecast_runtime::accept`]). Use [`accept_with`] to check the
        /// request, or [`serve`] for the accept loop.
        ///
        #[doc = concat!(
            "```no_run\n",
            "# fn main() -> Result<(), Box<dyn std::error::Error>> { ", $block_on, "(async {\n",
            "use ", $net, "::TcpListener;\n",
            "use ", $krate, "::accept;\n",
            "\n",
            "let listener = TcpListener::bind(\"127.0.0.1:9001\").await?;\n",
            "loop {\n",
            "    let (tcp, _) = listener.accept().await?;\n",
            "    // One client at a time: spawn a task here to serve several.\n",
            "    let Ok(mut ws) = accept(tcp).await else { continue };\n",
            "    while let Some(Ok(message)) = ws.recv().await {\n",
            "        ws.send(message).await?;\n",
            "    }\n",
            "}\n",
            "# Ok::<(), Box<dyn std::error::Error>>(()) }) }\n",
            "```",
        )]
        pub fn accept<S: $($bound)+>(
            stream: S,
        ) -> impl ::std::future::Future<Output = Result<$crate::WebSocket, $crate::Error>> + Send {
            $crate::accept::<$rt, Io<S>>(io(stream))
        }

        /// Accepts with a hook that sees the request and decides: `Ok` with
        /// an [`Accept`](crate::Accept) (subprotocol, extra headers), or `Err`
        /// with the [`HttpResponse`](crate::HttpResponse) to answer (see
        /// [`wavecast_runtime::accept_with`]).
        ///
        #[doc = concat!(
            "```no_run\n",
            "# fn main() -> Result<(), Box<dyn std::error::Error>> { ", $block_on, "(async {\n",
            "use std::sync::Arc;\n",
            "use ", $net, "::TcpListener;\n",
            "use ", $krate, "::{accept_with, Accept, Config, HttpResponse, OriginAllowList};\n",
            "\n",
            "let listener = TcpListener::bind(\"127.0.0.1:9001\").await?;\n",
            "let config = Arc::new(Config::default().with_max_message_size(1 << 20));\n",
            "let origins = OriginAllowList::same_host();\n",
            "let (tcp, _) = listener.accept().await?;\n",
            "let mut ws = accept_with(tcp, config.clone(), |request| {\n",
            "    origins.check(request)?; // 403 for other sites' pages\n",
            "    match request.path() {\n",
            "        \"/chat\" => Ok(Accept::new()),\n",
            "        _ => Err(HttpResponse::not_found()),\n",
            "    }\n",
            "})\n",
            ".await?;\n",
            "ws.send(\"welcome\").await?;\n",
            "# Ok::<(), Box<dyn std::error::Error>>(()) }) }\n",
            "```",
        )]
        pub fn accept_with<S, F>(
            stream: S,
            config: impl Into<::std::sync::Arc<$crate::Config>>,
            hook: F,
        ) -> impl ::std::future::Future<Output = Result<$crate::WebSocket, $crate::Error>> + Send
        where
            S: $($bound)+,
            F: FnOnce(&$crate::Request) -> Result<$crate::Accept, $crate::HttpResponse> + Send,
        {
            $crate::accept_with::<$rt, Io<S>, F>(io(stream), config, hook)
        }

        /// Reads one request head, within the handshake timeout (see
        /// [`wavecast_runtime::read_request`]).
        pub fn read_request<S: $($bound)+>(
            stream: S,
            config: impl Into<::std::sync::Arc<$crate::Config>>,
        ) -> impl ::std::future::Future<Output = Result<Incoming<S>, $crate::Error>> + Send {
            $crate::read_request::<$rt, Io<S>>(io(stream), config)
        }

        /// Connects to a `ws://` or `wss://` URL with the default config
        /// (see [`wavecast_runtime::connect`]; `wss://` needs the `rustls`
        /// feature).
        ///
        #[doc = concat!(
            "```no_run\n",
            "# fn main() -> Result<(), Box<dyn std::error::Error>> { ", $block_on, "(async {\n",
            "use ", $krate, "::{connect, CloseCode};\n",
            "\n",
            "let (mut ws, _response) = connect(\"ws://127.0.0.1:9001/\").await?;\n",
            "ws.send(\"hello\").await?; // Ok = queued; ws.flush() waits for the write\n",
            "if let Some(reply) = ws.recv().await { // None = closed cleanly\n",
            "    println!(\"got {:?}\", reply?);\n",
            "}\n",
            "ws.close(CloseCode::NORMAL, \"done\").await?; // resolves when the close handshake ends\n",
            "# Ok::<(), Box<dyn std::error::Error>>(()) }) }\n",
            "```",
        )]
        pub fn connect(
            url: &str,
        ) -> impl ::std::future::Future<
            Output = Result<($crate::WebSocket, $crate::Response), $crate::Error>,
        > + Send + '_ {
            $crate::connect::<$rt>(url)
        }

        /// Connects with a prepared request (subprotocols, headers such as
        /// `Authorization`) and a config (see
        /// [`wavecast_runtime::connect_with`]).
        ///
        #[doc = concat!(
            "```no_run\n",
            "# fn main() -> Result<(), Box<dyn std::error::Error>> { ", $block_on, "(async {\n",
            "use std::time::Duration;\n",
            "use ", $krate, "::{connect_with, ClientRequest, Config};\n",
            "\n",
            "let url = \"ws://127.0.0.1:9001/chat\";\n",
            "let (request, _) = ClientRequest::from_url(url)?;\n",
            "let request = request\n",
            "    .subprotocol(\"chat.v1\")?\n",
            "    .header(\"Authorization\", \"Bearer 123\")?;\n",
            "let config = Config::default().with_heartbeat_interval(Some(Duration::from_secs(20)));\n",
            "let (mut ws, response) = connect_with(url, request, config).await?;\n",
            "println!(\"subprotocol: {:?}\", response.subprotocol);\n",
            "ws.send(\"hello\").await?;\n",
            "# Ok::<(), Box<dyn std::error::Error>>(()) }) }\n",
            "```",
        )]
        pub fn connect_with(
            url: &str,
            request: $crate::ClientRequest,
            config: impl Into<::std::sync::Arc<$crate::Config>>,
        ) -> impl ::std::future::Future<
            Output = Result<($crate::WebSocket, $crate::Response), $crate::Error>,
        > + Send + '_ {
            $crate::connect_with::<$rt>(url, request, config)
        }

        /// Runs the client handshake over a stream you opened (see
        /// [`wavecast_runtime::client_over`]).
        pub fn client_over<S: $($bound)+>(
            stream: S,
            request: $crate::ClientRequest,
            config: impl Into<::std::sync::Arc<$crate::Config>>,
        ) -> impl ::std::future::Future<
            Output = Result<($crate::WebSocket, $crate::Response), $crate::Error>,
        > + Send {
            $crate::client_over::<$rt, Io<S>>(io(stream), request, config)
        }

        /// Wraps a stream another HTTP stack already upgraded (hyper,
        /// axum) and starts its driver (see
        /// [`wavecast_runtime::WebSocket::from_upgraded`]).
        pub fn from_upgraded<S: $($bound)+>(
            stream: S,
            role: $crate::Role,
            config: impl Into<::std::sync::Arc<$crate::Config>>,
            negotiated: &$crate::Negotiated,
            leftover: $crate::Bytes,
        ) -> $crate::WebSocket {
            $crate::WebSocket::from_upgraded::<$rt, Io<S>>(
                io(stream),
                role,
                config,
                negotiated,
                leftover,
            )
        }

        /// Serves `listener`: admission under a connection cap, request
        /// heads, the handler per connection, graceful shutdown (see
        /// [`wavecast_runtime::serve`]). The handler gets every request —
        /// WebSocket upgrades, SSE and plain HTTP on one port.
        ///
        #[doc = concat!(
            "```\n",
            "# fn main() -> Result<(), Box<dyn std::error::Error>> { ", $block_on, "(async {\n",
            "use ", $net, "::TcpListener;\n",
            "use ", $krate, "::{connect, serve, Accept, CloseCode, HttpResponse, ServeConfig};\n",
            "\n",
            "let listener = TcpListener::bind(\"127.0.0.1:0\").await?;\n",
            "let limits = ServeConfig::default().with_max_connections(1000); // then 503\n",
            "let server = serve(listener, limits, |incoming| async move {\n",
            "    if !incoming.is_websocket_upgrade() {\n",
            "        let _ = incoming.respond(HttpResponse::text(200, \"hello\\n\")).await;\n",
            "        return;\n",
            "    }\n",
            "    let Ok(mut ws) = incoming.accept(Accept::new()).await else { return };\n",
            "    while let Some(Ok(message)) = ws.recv().await {\n",
            "        if ws.send(message).await.is_err() {\n",
            "            break;\n",
            "        }\n",
            "    }\n",
            "})?;\n",
            "\n",
            "// A client, here in the same program.\n",
            "let (mut ws, _) = connect(&format!(\"ws://{}/\", server.local_addr())).await?;\n",
            "ws.send(\"ping\").await?;\n",
            "let echo = ws.recv().await.expect(\"an echo\")?;\n",
            "assert_eq!(echo.as_bytes(), b\"ping\");\n",
            "ws.close(CloseCode::NORMAL, \"done\").await?;\n",
            "\n",
            "// Stops accepting, closes open WebSockets with 1001, waits for the handlers.\n",
            "assert!(server.shutdown().await);\n",
            "# Ok::<(), Box<dyn std::error::Error>>(()) }) }\n",
            "```",
        )]
        pub fn serve<H, F>(
            listener: <$rt as $crate::Runtime>::Listener,
            options: $crate::ServeConfig,
            handler: H,
        ) -> ::std::io::Result<$crate::Server>
        where
            H: Fn(Incoming) -> F + Send + Sync + 'static,
            F: ::std::future::Future<Output = ()> + Send + 'static,
        {
            $crate::serve::<$rt, H, F>(listener, options, handler)
        }

        /// Connects to a `wss://` URL with your own rustls config (see
        /// [`wavecast_runtime::connect_tls_with`]).
        #[cfg(feature = "rustls")]
        pub fn connect_tls_with(
            url: &str,
            request: $crate::ClientRequest,
            config: impl Into<::std::sync::Arc<$crate::Config>>,
            tls: ::std::sync::Arc<$crate::rustls::ClientConfig>,
        ) -> impl ::std::future::Future<
            Output = Result<($crate::WebSocket, $crate::Response), $crate::Error>,
        > + Send + '_ {
            $crate::connect_tls_with::<$rt>(url, request, config, tls)
        }
    };
}

/// The rustls crate wavecast's TLS uses, for building client configs.
#[cfg(feature = "rustls")]
pub use futures_rustls::rustls;

/// Shared byte buffers, as messages and leftover handshake bytes use them.
pub use bytes::Bytes;
