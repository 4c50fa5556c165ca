//! `hyper-upgrade`: a hyper 1 server that answers ordinary HTTP and upgrades
//! `/ws` through wavecast's `WebSocketUpgrade` (the `hyper` feature of every
//! adapter crate): hyper parses the request, wavecast checks the headers,
//! builds the `101` and speaks WebSocket on the stream hyper hands over.
//!
//! - `GET /`: a small text page;
//! - `ws://…/ws`: echo;
//! - anything else: 404.
//!
//! hyper is executor-agnostic: on tokio it uses `hyper-util`'s glue; on smol
//! and async-std it uses `smol-hyper`'s futures-io adapter and async-io timer
//! (both runtimes sit on async-io), so no tokio runs in those programs.
//!
//! ```text
//! cargo run -p wavecast-examples --bin hyper-upgrade -- [--runtime tokio|async-std|smol] [--addr 127.0.0.1:9002]
//! ```

mod on_async_std;
mod on_smol;
mod on_tokio;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use wavecast_examples::Runtime;
use wavecast_runtime::{Config, WebSocket, WebSocketUpgrade};

/// A hyper 1 server that answers GET / with a text page and upgrades
/// /ws itself, handing the stream to wavecast, which echoes on it: the
/// path axum and hyper users take.
#[derive(Parser)]
#[command(name = "hyper-upgrade", version)]
struct Cli {
    /// The async runtime to run on.
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    runtime: Runtime,
    #[command(flatten)]
    options: Options,
}

/// Options shared by every runtime's version.
#[derive(clap::Args)]
pub(crate) struct Options {
    /// The address to listen on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9002")]
    pub(crate) addr: String,
}

fn main() {
    let Cli { runtime, options } = Cli::parse();
    let result = match runtime {
        Runtime::Tokio => on_tokio::run(options),
        Runtime::AsyncStd => on_async_std::run(options),
        Runtime::Smol => on_smol::run(options),
    };
    if let Err(e) = result {
        eprintln!("hyper-upgrade: {e}");
        std::process::exit(1);
    }
}

/// The page served on `/`.
const PAGE: &str = "wavecast behind hyper: connect a WebSocket client to /ws and it echoes.\n";

/// The body type every response uses.
pub(crate) type Body = Full<Bytes>;

/// What to do with one request.
pub(crate) enum Routed {
    /// Send this response; nothing more.
    Plain(Response<Body>),
    /// Send `response` (a `101`) and echo on `ws`, which starts working
    /// once hyper has written the response and handed over the stream.
    Upgrade {
        response: Response<Body>,
        ws: WebSocket,
    },
}

/// Routes a request on runtime `R` (`Tokio`, `Smol`, `AsyncStd`); the same
/// on every runtime.
pub(crate) fn route<R: wavecast_runtime::Runtime>(request: &mut Request<Incoming>) -> Routed {
    match request.uri().path() {
        "/" => Routed::Plain(text(StatusCode::OK, PAGE)),
        "/ws" => {
            // wavecast checks the upgrade headers and builds the `101`, or
            // says why not (400, 405, 426, 505, ...).
            let upgrade = WebSocketUpgrade::<R>::from_request(request)
                .and_then(|upgrade| upgrade.config(config()).respond());
            match upgrade {
                Ok((response, ws)) => Routed::Upgrade { response, ws },
                Err(rejection) => Routed::Plain(rejection.into_response()),
            }
        }
        _ => Routed::Plain(text(StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// Sends every message back.
pub(crate) async fn echo(mut ws: WebSocket) {
    while let Some(Ok(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// A `text/plain` response.
fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Body::new(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Connection settings for the upgraded WebSockets.
pub(crate) fn config() -> Config {
    Config::default()
}
