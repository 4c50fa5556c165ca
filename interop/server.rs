//! The interop echo server, written once for every runtime, for interop
//! tests against third-party WebSocket clients (see `.ci/interop`).
//!
//! Each adapter's example (`interop_server`, `interop_server_smol`,
//! `interop_server_async_std`) includes this file as a module and supplies
//! the runtime in a sibling module `rt`: the adapter crate as `ws`, its
//! `TcpListener`, `spawn` for a detached task, `sleep`, `interrupted` (which
//! finishes on Ctrl-C, or never where the runtime leaves Ctrl-C its default
//! action of ending the process) and the program's `NAME` for its messages.
//! Then it runs [`main`] on that runtime.
//!
//! Usage: `NAME [ADDR] [TIMEOUT_SECS]` (defaults `127.0.0.1:9001`, 120).
//! Prints `listening on ADDR` once bound; exits on Ctrl-C or after the
//! timeout.
//!
//! Paths:
//! - `/reject`: the handshake is refused with 403.
//! - `/close`: the server closes right away with 4001 "bye".
//! - `/last-close`: sends one text message, `"<code> <reason>"` of the last
//!   close frame a peer sent us (or `"none"`), then closes with 1000.
//! - anything else: echo. The text `ping-me` makes the server send a ping
//!   with payload `wavecast-ping` before echoing it.
//!
//! Messages longer than 64 KiB are sent fragmented (64 KiB frames).

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use crate::rt::ws::{accept_with, Accept, CloseCode, Config, HttpResponse, Message, Outcome};
use crate::rt::{interrupted, sleep, spawn, TcpListener, NAME};

/// What a connection does once accepted, chosen by its path.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Echo,
    Close,
    LastClose,
}

/// Parses the arguments, binds, prints `listening on ADDR` and serves until
/// interrupted or until the timeout passes.
pub(crate) async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let timeout: u64 = args
        .next()
        .map(|s| s.parse().expect("TIMEOUT_SECS must be a number"))
        .unwrap_or(120);
    let listener = TcpListener::bind(&addr).await.unwrap_or_else(|e| {
        eprintln!("{NAME}: cannot bind {addr}: {e}");
        std::process::exit(2);
    });
    println!("listening on {}", listener.local_addr().unwrap());
    let config = Config::default()
        .with_max_message_size(16 << 20)
        .with_max_frame_size(16 << 20)
        .with_fragment_size(Some(64 << 10));
    let last_close: Arc<Mutex<Option<String>>> = Arc::default();

    let serve = async {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    continue;
                }
            };
            let config = config.clone();
            let last_close = last_close.clone();
            spawn(async move {
                let mut mode = Mode::Echo;
                let accepted = accept_with(tcp, config, |req| {
                    println!("{peer}: GET {}", req.path());
                    match req.path() {
                        "/reject" => Err(HttpResponse::text(403, "forbidden\n")),
                        "/close" => {
                            mode = Mode::Close;
                            Ok(Accept::new())
                        }
                        "/last-close" => {
                            mode = Mode::LastClose;
                            Ok(Accept::new())
                        }
                        _ => Ok(Accept::new()),
                    }
                })
                .await;
                let mut ws = match accepted {
                    Ok(ws) => ws,
                    Err(e) => {
                        println!("{peer}: handshake ended: {e}");
                        return;
                    }
                };
                match mode {
                    Mode::Close => {
                        let outcome = ws.close(CloseCode(4001), "bye").await;
                        println!("{peer}: server-initiated close: {outcome:?}");
                        return;
                    }
                    Mode::LastClose => {
                        let text = last_close
                            .lock()
                            .unwrap()
                            .clone()
                            .unwrap_or_else(|| "none".to_owned());
                        if let Err(e) = ws.send(text).await {
                            println!("{peer}: send failed: {e}");
                        }
                        let outcome = ws.close(CloseCode::NORMAL, "").await;
                        println!("{peer}: closed: {outcome:?}");
                        return;
                    }
                    Mode::Echo => {}
                }
                let (tx, mut rx) = ws.split();
                loop {
                    match rx.recv().await {
                        Some(Ok(msg)) => {
                            if let Message::Text(t) = &msg {
                                if &**t == "ping-me" {
                                    if let Err(e) = tx.ping(&b"wavecast-ping"[..]).await {
                                        println!("{peer}: ping failed: {e}");
                                        break;
                                    }
                                }
                            }
                            if let Err(e) = tx.send(msg).await {
                                println!("{peer}: echo failed: {e}");
                                break;
                            }
                        }
                        Some(Err(e)) => {
                            println!("{peer}: connection failed: {e}");
                            break;
                        }
                        None => {
                            let frame = rx.close_frame();
                            println!("{peer}: peer closed: {frame:?}");
                            if let Some(f) = frame {
                                *last_close.lock().unwrap() =
                                    Some(format!("{} {}", f.code.0, &*f.reason));
                            }
                            // Wait for the close handshake to finish.
                            match tx.close(CloseCode::NORMAL, "").await {
                                Ok(Outcome::Clean { .. }) | Err(_) => {}
                                Ok(other) => println!("{peer}: close outcome {other:?}"),
                            }
                            break;
                        }
                    }
                }
            });
        }
    };
    let on_interrupt = async {
        interrupted().await;
        println!("{NAME}: interrupted, exiting");
    };
    let on_timeout = async {
        sleep(Duration::from_secs(timeout)).await;
        println!("{NAME}: timeout after {timeout} s, exiting");
    };
    first(serve, first(on_interrupt, on_timeout)).await;
}

/// Runs `a` and `b` together until either finishes, then drops the other:
/// a `select` that needs no runtime.
async fn first(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready() || b.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}
