//! `hyper-upgrade`: a hyper 1 server that answers ordinary HTTP and upgrades
//! `/ws` itself, handing the upgraded stream to wavecast through the
//! header-level negotiation ([`wavecast_core::handshake::negotiate`]) and the
//! from-upgraded-stream constructor. This is the path axum and hyper users
//! take: their HTTP stack parses the request, wavecast checks the headers and
//! speaks WebSocket on the stream hyper hands over.
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
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, Version};
use wavecast_core::handshake::{negotiate, Accept, UpgradeMode};
use wavecast_core::{Config, HandshakeError, Negotiated};
use wavecast_examples::Runtime;

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
    /// Send `response` (a `101`); once hyper has written it, `on_upgrade`
    /// resolves to the raw stream, to be run with `negotiated`.
    Upgrade {
        response: Response<Body>,
        on_upgrade: OnUpgrade,
        negotiated: Negotiated,
    },
}

/// Routes a request; the same on every runtime.
pub(crate) fn route(request: &mut Request<Incoming>) -> Routed {
    match request.uri().path() {
        "/" => Routed::Plain(text(StatusCode::OK, PAGE)),
        "/ws" => upgrade(request),
        _ => Routed::Plain(text(StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// Checks the upgrade headers with wavecast and builds the `101`.
fn upgrade(request: &mut Request<Incoming>) -> Routed {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()));
    let negotiation = negotiate(
        request.method().as_str(),
        headers,
        &Accept::new(),
        UpgradeMode::Http11,
    );
    // `negotiate` checks an HTTP/1.1 upgrade; hyper also accepts HTTP/1.0.
    let negotiation = match request.version() {
        Version::HTTP_11 => negotiation,
        _ => Err(HandshakeError::UnsupportedHttpVersion),
    };
    let (headers, negotiated) = match negotiation {
        Ok(done) => done,
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = text(status, &format!("{e}\n"));
            if status == StatusCode::UPGRADE_REQUIRED {
                // RFC 6455 §4.4: say which version we speak.
                response
                    .headers_mut()
                    .insert("sec-websocket-version", HeaderValue::from_static("13"));
            }
            return Routed::Plain(response);
        }
    };
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            // wavecast only builds valid header names and values.
            return Routed::Plain(text(StatusCode::INTERNAL_SERVER_ERROR, "bad header\n"));
        };
        response.headers_mut().append(name, value);
    }
    Routed::Upgrade {
        response,
        on_upgrade: hyper::upgrade::on(request),
        negotiated,
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

/// hyper's upgraded stream as futures-io, for the smol and async-std
/// adapters (`smol-hyper` converts only the other way).
pub(crate) mod futures_io_compat {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use hyper::rt::ReadBuf;

    /// Wraps a hyper I/O object (such as `hyper::upgrade::Upgraded`) as a
    /// `futures_io::AsyncRead + AsyncWrite`.
    pub(crate) struct HyperIo<T>(pub(crate) T);

    impl<T: hyper::rt::Read + Unpin> futures_io::AsyncRead for HyperIo<T> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let mut read = ReadBuf::new(buf);
            match Pin::new(&mut self.0).poll_read(cx, read.unfilled()) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(read.filled().len())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    impl<T: hyper::rt::Write + Unpin> futures_io::AsyncWrite for HyperIo<T> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }
}
