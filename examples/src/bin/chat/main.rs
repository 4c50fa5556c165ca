//! `chat`: the main example. One port serves
//!
//! - `GET /`: the chat page (no build step, no CDN);
//! - `ws://…/ws/<room>?nick=<name>&session=<id>&since=<pos>`: a room;
//!   every member, the sender too, receives each message as JSON with its
//!   position in the room's history (`"pos"`), and presence events with
//!   the member list. A message sent with an `id`
//!   (`{"text": …, "id": …}`) is answered, to its sender alone, with
//!   `{"type":"ack","id":…,"pos":…}` once the rooms' backplane took it, or
//!   `nack` with the error; an id the same nickname sent to the room in
//!   the last two minutes is acked again with its position, without
//!   publishing twice, whichever node it reaches. A page that reconnects with the last position it
//!   saw gets what it missed, in order, then `recovered`; when that is
//!   no longer held (or `since` is not a position) it gets
//!   `not_recovered` and starts over. A new page gets `recovered` with
//!   the current position right away. A nickname is held by one page session
//!   per room (on every node, with `--redis`): the same `session` may
//!   connect again while its old connection lingers (a reload: it gets the
//!   member list, and the room hears of no second join), any other
//!   connection asking for it is closed with 1008 and the reason. Leaving
//!   or switching room is closing the connection (and opening one to the
//!   other room);
//! - `GET /sse/<room>`: the same room as Server-Sent Events, for listeners,
//!   starting with a `members` event that lists who is there;
//! - `ws://…/websocket`: a plain echo.
//!
//! Heartbeats are on, requests for a host name the server does not serve
//! get 421 (DNS rebinding), browsers from other origins get 403, and
//! connections are capped. It answers to `localhost`, `127.0.0.1`, `[::1]`
//! and the host of --addr; reaching it by another name (a LAN address, a
//! DNS name) needs `--allow-host NAME` for each.
//!
//! ```text
//! cargo run -p wavecast-examples --bin chat -- [--runtime tokio|async-std|smol] [--addr 127.0.0.1:60000] [--allow-host HOST[:PORT]]... [--redis redis://127.0.0.1:6379]
//! ```
//!
//! Rooms keep their last 256 messages for 10 minutes, in this process, or
//! with `--redis` in Redis, shared by every chat server started with the
//! same URL (each one a node of the same chat: member lists and presence
//! notices cover every node).
//!
//! With `--https` (tokio, examples' feature `rustls`) it serves the same
//! over TLS with HTTP/2 and HTTP/1.1, and a browser's WebSockets then run
//! over HTTP/2 (RFC 8441 extended `CONNECT`).

mod chat;
mod on_async_std;
mod on_h2;
mod on_smol;
mod on_tokio;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wavecast_examples::Runtime;

/// A chat server: the page on /, rooms as WebSockets on
/// /ws/<room>?nick=<name> and as Server-Sent Events on /sse/<room>.
/// Logs one line per join and leave; RUST_LOG (e.g. RUST_LOG=debug)
/// changes what is logged.
// This comment is also `--help`'s text, so `<room>` stays plain.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Parser)]
#[command(name = "chat", version)]
struct Cli {
    /// The async runtime to run on.
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    runtime: Runtime,
    #[command(flatten)]
    options: Options,
}

/// Options shared by every runtime's version.
// The field comments are also `--help`'s text, so `[::1]` stays plain.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(clap::Args)]
pub(crate) struct Options {
    /// The address to listen on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:60000")]
    pub(crate) addr: String,
    /// Connections served at once; more are answered with 503.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) max_connections: usize,
    /// Serve HTTPS instead of plain HTTP, with HTTP/2 and HTTP/1.1 on the
    /// port (the browser's WebSockets then run over HTTP/2, RFC 8441) and a
    /// self-signed certificate made at start. Runs on tokio; needs the
    /// examples' `rustls` feature.
    #[arg(long)]
    pub(crate) https: bool,
    /// Another host name to answer to besides localhost, 127.0.0.1, [::1]
    /// and the host of --addr (a LAN address, a DNS name); repeat for
    /// each [default: none].
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    pub(crate) allow_hosts: Vec<String>,
    /// Share the rooms with every chat server connected to this Redis
    /// (redis://[user:password@]host[:port][/db]): a message sent to one
    /// reaches the members of all, and history and resume work across
    /// them, and member lists, presence notices and taken nicknames cover
    /// them all; an unreachable Redis at start is an error. Without it the
    /// rooms live in this process [default: none].
    #[arg(long, value_name = "URL")]
    pub(crate) redis: Option<String>,
}

fn main() {
    let Cli { runtime, options } = Cli::parse();
    // Quiet apart from joins and leaves (and warnings), unless RUST_LOG
    // says otherwise.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,chat=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let result = match runtime {
        Runtime::Tokio if options.https => on_h2::run(options),
        _ if options.https => Err(std::io::Error::other(
            "--https runs on tokio only (hyper's HTTP/2 server); drop --runtime or pick tokio",
        )),
        Runtime::Tokio => on_tokio::run(options),
        Runtime::AsyncStd => on_async_std::run(options),
        Runtime::Smol => on_smol::run(options),
    };
    if let Err(e) = result {
        eprintln!("chat: {e}");
        std::process::exit(1);
    }
}
