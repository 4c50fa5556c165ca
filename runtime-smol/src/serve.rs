//! A small server loop: accept on a TCP listener, admit under a connection
//! cap (core [`Admission`]: over it, `503` and close, never a hang), read the
//! request head, and run the application's handler with the [`Incoming`]
//! request — which may be a WebSocket upgrade, an SSE subscription or a
//! plain HTTP request to answer with [`Incoming::respond`] (one response per
//! connection, `Connection: close`). Anything more belongs in hyper.
//!
//! [`Server::shutdown`] stops accepting, closes every WebSocket accepted
//! through it with `1001 Going Away` (core [`Tracker`]), ends SSE streams,
//! and waits for the handlers to finish, at most
//! [`ServeConfig::shutdown_timeout`]; handlers still running then are
//! cancelled.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::channel;
use wavecast_core::{Admission, Tracker};

pub use wavecast_core::ServeConfig;

use crate::runtime::{sleep, until, Runtime, Smol};
use crate::server::{read_request_on, Incoming};

/// A running [`serve`] loop. Dropping it leaves the loop running.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    admission: Admission,
    stop: channel::Sender<()>,
    done: channel::Receiver<bool>,
}

impl Server {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections whose handler is running.
    pub fn active(&self) -> usize {
        self.admission.active()
    }

    /// Graceful shutdown: stop accepting (later connection attempts are
    /// refused by the OS), close every WebSocket with `1001 Going Away`, end
    /// SSE streams, and wait for handlers, at most
    /// [`ServeConfig::shutdown_timeout`]. Returns whether every handler
    /// finished in time (the rest were cancelled).
    pub async fn shutdown(self) -> bool {
        let _ = self.stop.send(()).await;
        self.done.recv().await.unwrap_or(false)
    }
}

/// Serves `listener` on smol: per accepted connection, admits it under
/// [`ServeConfig::max_connections`], reads its request head, and spawns
/// `handler(incoming)`. A connection counts against the cap while its
/// handler runs.
///
/// Over the cap (or during shutdown) the request is answered with `503
/// Service Unavailable` and `Retry-After`, and the stream closed.
pub fn serve<H, F>(
    listener: smol::net::TcpListener,
    options: ServeConfig,
    handler: H,
) -> std::io::Result<Server>
where
    H: Fn(Incoming<smol::net::TcpStream>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    serve_on::<Smol, H, F>(listener, options, handler)
}

/// [`serve`] on runtime `R`.
#[doc(hidden)]
pub fn serve_on<R, H, F>(
    listener: R::Listener,
    options: ServeConfig,
    handler: H,
) -> std::io::Result<Server>
where
    R: Runtime,
    H: Fn(Incoming<R::Tcp, R>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let addr = R::local_addr(&listener)?;
    let admission = Admission::new(options.max_connections);
    let (stop, stopped) = channel::bounded(1);
    let (finished, done) = channel::bounded(1);
    let counted = admission.clone();
    R::spawn(Box::pin(async move {
        let drained = accept_loop::<R, H, F>(listener, options, handler, counted, stopped).await;
        let _ = finished.try_send(drained);
    }));
    Ok(Server {
        addr,
        admission,
        stop,
        done,
    })
}

async fn accept_loop<R, H, F>(
    listener: R::Listener,
    options: ServeConfig,
    handler: H,
    admission: Admission,
    stopped: channel::Receiver<()>,
) -> bool
where
    R: Runtime,
    H: Fn(Incoming<R::Tcp, R>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    let tracker = Tracker::new();
    let refusals = Admission::new(options.refusal_limit());
    // Every handler holds `alive`: `drained` closes when the last one ends.
    // Dropping `abort` cancels handlers still running after the timeout.
    let (alive, drained) = channel::bounded::<()>(1);
    let (abort, aborted) = channel::bounded::<()>(1);
    loop {
        let accepted = smol::future::or(async { Some(R::accept(&listener).await) }, async {
            // A dropped `Server` keeps the loop running; only `shutdown` stops it.
            if stopped.recv().await.is_err() {
                std::future::pending::<()>().await;
            }
            None
        })
        .await;
        let tcp = match accepted {
            None => break,
            Some(Ok(tcp)) => tcp,
            Some(Err(_)) => {
                // Out of file descriptors and the like: give handlers a
                // moment to release some instead of spinning.
                sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let config = options.config.clone();
        match admission.try_admit() {
            Ok(permit) => {
                let handler = handler.clone();
                let tracker = tracker.clone();
                let alive = alive.clone();
                let aborted = aborted.clone();
                R::spawn(Box::pin(async move {
                    let _alive = alive;
                    let _permit = permit;
                    let run = async move {
                        if let Ok(mut incoming) = read_request_on::<_, R>(tcp, config).await {
                            incoming.set_tracker(tracker);
                            handler(incoming).await;
                        }
                    };
                    let cancel = async move {
                        let _ = aborted.recv().await;
                    };
                    smol::future::or(run, cancel).await;
                }));
            }
            Err(rejected) => {
                let Ok(permit) = refusals.try_admit() else {
                    continue;
                };
                let response = rejected.response(options.retry_after);
                R::spawn(Box::pin(async move {
                    let _permit = permit;
                    if let Ok(incoming) = read_request_on::<_, R>(tcp, config).await {
                        let _ = incoming.respond(response).await;
                    }
                }));
            }
        }
    }
    drop(listener);
    admission.begin_shutdown();
    tracker.begin_shutdown(Instant::now());
    drop(alive);
    let deadline = Instant::now() + options.shutdown_timeout;
    let finished = until(deadline, drained.recv()).await.is_some();
    drop(abort);
    finished
}
