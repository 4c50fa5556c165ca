//! A small server loop: accept on a `TcpListener`, admit under a connection
//! cap (core [`Admission`]: over it, `503` and close, never a hang), read the
//! request head, and run the application's handler with the [`Incoming`]
//! request — which may be a WebSocket upgrade, an SSE subscription or a
//! plain HTTP request to answer with [`Incoming::respond`] (one response per
//! connection, `Connection: close`). Anything more belongs in hyper.
//!
//! [`Server::shutdown`] stops accepting, closes every WebSocket accepted
//! through it with `1001 Going Away`, ends SSE streams, and waits for the
//! handlers to finish, at most [`ServeConfig::shutdown_timeout`]; handlers
//! still running then are aborted.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use wavecast_core::{Admission, Tracker};

pub use wavecast_core::ServeConfig;

use crate::driver::now;
use crate::server::{read_request, Incoming};

/// A running [`serve`] loop.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    admission: Admission,
    stop: Arc<Notify>,
    task: JoinHandle<bool>,
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
    /// finished in time (the rest were aborted).
    pub async fn shutdown(self) -> bool {
        self.stop.notify_one();
        self.task.await.unwrap_or(false)
    }
}

/// Serves `listener`: per accepted connection, admits it under
/// [`ServeConfig::max_connections`], reads its request head, and spawns
/// `handler(incoming)`. A connection counts against the cap while its
/// handler runs.
///
/// Over the cap (or during shutdown) the request is answered with `503
/// Service Unavailable` and `Retry-After`, and the stream closed.
pub fn serve<H, F>(
    listener: TcpListener,
    options: ServeConfig,
    handler: H,
) -> std::io::Result<Server>
where
    H: Fn(Incoming<TcpStream>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr()?;
    let admission = Admission::new(options.max_connections);
    let stop = Arc::new(Notify::new());
    let task = tokio::spawn(accept_loop(
        listener,
        options,
        handler,
        admission.clone(),
        stop.clone(),
    ));
    Ok(Server {
        addr,
        admission,
        stop,
        task,
    })
}

async fn accept_loop<H, F>(
    listener: TcpListener,
    options: ServeConfig,
    handler: H,
    admission: Admission,
    stop: Arc<Notify>,
) -> bool
where
    H: Fn(Incoming<TcpStream>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    let tracker = Tracker::default();
    // Refusals are cheap but not free: bound how many are being written.
    let refusals = Admission::new(options.refusal_limit());
    let mut tasks = JoinSet::new();
    loop {
        let accepted = {
            let mut stopped = pin!(stop.notified());
            poll_fn(|cx| {
                if stopped.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                listener.poll_accept(cx).map(Some)
            })
            .await
        };
        while tasks.try_join_next().is_some() {}
        let tcp = match accepted {
            None => break,
            Some(Ok((tcp, _))) => tcp,
            Some(Err(_)) => {
                // Out of file descriptors and the like: give handlers a
                // moment to release some instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let config = options.config.clone();
        match admission.try_admit() {
            Ok(permit) => {
                let handler = handler.clone();
                let tracker = tracker.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    if let Ok(mut incoming) = read_request(tcp, config).await {
                        incoming.set_tracker(tracker);
                        handler(incoming).await;
                    }
                });
            }
            Err(rejected) => {
                let Ok(permit) = refusals.try_admit() else {
                    continue;
                };
                let response = rejected.response(options.retry_after);
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Ok(incoming) = read_request(tcp, config).await {
                        let _ = incoming.respond(response).await;
                    }
                });
            }
        }
    }
    drop(listener);
    admission.begin_shutdown();
    tracker.begin_shutdown(now());
    let drained = tokio::time::timeout(options.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    tasks.shutdown().await;
    drained
}
