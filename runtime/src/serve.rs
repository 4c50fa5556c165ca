//! A small server loop: accept on a TCP listener, admit under a connection
//! cap (core [`Admission`]: over it, `503` and close, never a hang), read the
//! request head, and run the application's handler with the [`Incoming`]
//! request — which may be a WebSocket upgrade, an SSE subscription or a
//! plain HTTP request to answer with [`Incoming::respond`] (one response per
//! connection, `Connection: close`). Anything more belongs in hyper.
//!
//! [`Server::shutdown`] stops accepting, closes every WebSocket accepted
//! through it with `1001 Going Away`, ends SSE streams, and waits for the
//! handlers to finish, at most [`ServeConfig::shutdown_timeout`]; handlers
//! still running then are cancelled.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use wavecast_core::{Admission, ServeConfig};

use crate::runtime::{race, sleep, until, Runtime};
use crate::server::{read_request, Incoming};
use crate::shared::{Tracker, Watch};

/// A running [`serve`] loop. Dropping it leaves the loop running.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    admission: Admission,
    stop: Tracker,
    done: oneshot::Receiver<bool>,
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
        self.stop.begin_shutdown(std::time::Instant::now());
        self.done.await.unwrap_or(false)
    }
}

/// Waits until `watch`'s tracker begins shutting down.
async fn signalled(watch: &Watch) {
    poll_fn(|cx| watch.poll_shutting_down(cx)).await;
}

/// Serves `listener` on runtime `R`: per accepted connection, admits it
/// under [`ServeConfig::max_connections`], reads its request head, and
/// spawns `handler(incoming)`. A connection counts against the cap while
/// its handler runs.
///
/// Over the cap (or during shutdown) the request is answered with `503
/// Service Unavailable` and `Retry-After`, and the stream closed.
pub fn serve<R, H, F>(
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
    let stop = Tracker::new();
    let (finished, done) = oneshot::channel();
    let counted = admission.clone();
    let stopped = stop.watch();
    R::spawn(async move {
        let drained = accept_loop::<R, H, F>(listener, options, handler, counted, stopped).await;
        let _ = finished.send(drained);
    });
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
    stopped: Watch,
) -> bool
where
    R: Runtime,
    H: Fn(Incoming<R::Tcp, R>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    let tracker = Tracker::new();
    let refusals = Admission::new(options.refusal_limit());
    // Every handler holds a clone of `alive`: the stream `drained` ends
    // when the last one is gone. `abort` cancels handlers still running
    // after the timeout.
    let (alive, mut drained) = mpsc::channel::<()>(0);
    let abort = Tracker::new();
    loop {
        let accepted = race(async { Some(R::accept(&listener).await) }, async {
            signalled(&stopped).await;
            None
        })
        .await;
        let tcp = match accepted {
            None => break,
            Some(Ok(tcp)) => tcp,
            Some(Err(_)) => {
                // Out of file descriptors and the like: give handlers a
                // moment to release some instead of spinning.
                sleep::<R>(Duration::from_millis(10)).await;
                continue;
            }
        };
        let config = options.config.clone();
        match admission.try_admit() {
            Ok(permit) => {
                let handler = handler.clone();
                let tracker = tracker.clone();
                let alive = alive.clone();
                let cancelled = abort.watch();
                R::spawn(async move {
                    let _alive = alive;
                    let _permit = permit;
                    let run = async move {
                        if let Ok(mut incoming) = read_request::<R, _>(tcp, config).await {
                            incoming.set_tracker(tracker);
                            handler(incoming).await;
                        }
                    };
                    race(run, signalled(&cancelled)).await;
                });
            }
            Err(rejected) => {
                let Ok(permit) = refusals.try_admit() else {
                    continue;
                };
                let response = rejected.response(options.retry_after);
                R::spawn(async move {
                    let _permit = permit;
                    if let Ok(incoming) = read_request::<R, _>(tcp, config).await {
                        let _ = incoming.respond(response).await;
                    }
                });
            }
        }
    }
    drop(listener);
    admission.begin_shutdown();
    tracker.begin_shutdown(R::now());
    drop(alive);
    let deadline = R::now() + options.shutdown_timeout;
    let all_ended = poll_fn(|cx| Pin::new(&mut drained).poll_next(cx));
    let finished = until::<R, _>(deadline, all_ended).await.is_some();
    abort.begin_shutdown(R::now());
    finished
}
