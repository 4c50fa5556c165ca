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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use wavecast_core::{Admission, CloseCode, Config};

use crate::driver::now;
use crate::server::{read_request, Incoming};
use wavecast_core::Shared;

/// Settings of [`serve`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Connections whose handler runs at once; more get `503`. Default 10 000.
    pub max_connections: usize,
    /// How long [`Server::shutdown`] waits for handlers. Default 5 s.
    pub shutdown_timeout: Duration,
    /// `Retry-After` sent with a `503`. Default 1 s.
    pub retry_after: Duration,
    /// The WebSocket configuration of every connection.
    pub config: Arc<Config>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections: 10_000,
            shutdown_timeout: Duration::from_secs(5),
            retry_after: Duration::from_secs(1),
            config: Arc::new(Config::default()),
        }
    }
}

impl ServeConfig {
    /// Sets [`ServeConfig::max_connections`].
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets [`ServeConfig::shutdown_timeout`].
    pub fn with_shutdown_timeout(mut self, after: Duration) -> Self {
        self.shutdown_timeout = after;
        self
    }

    /// Sets [`ServeConfig::retry_after`].
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Sets [`ServeConfig::config`].
    pub fn with_config(mut self, config: impl Into<Arc<Config>>) -> Self {
        self.config = config.into();
        self
    }
}

/// Connections accepted through [`serve`], for graceful shutdown.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tracker {
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    conns: Mutex<(Vec<Weak<Shared>>, usize)>,
    shutting_down: AtomicBool,
    notify: Notify,
}

impl Tracker {
    pub(crate) fn track(&self, shared: &Arc<Shared>) {
        let mut guard = self.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        let (conns, prune_at) = &mut *guard;
        if conns.len() >= *prune_at {
            conns.retain(|w| w.strong_count() > 0);
            *prune_at = (conns.len() * 2).max(64);
        }
        conns.push(Arc::downgrade(shared));
        drop(guard);
        if self.is_shutting_down() {
            self.close_all();
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Resolves once shutdown has begun (for SSE streams).
    pub(crate) async fn shutting_down(&self) {
        let notified = self.inner.notify.notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        if self.is_shutting_down() {
            return;
        }
        notified.await;
    }

    fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
        self.close_all();
    }

    fn close_all(&self) {
        let conns: Vec<_> = {
            let guard = self.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
            guard.0.iter().filter_map(Weak::upgrade).collect()
        };
        for shared in conns {
            let _ = shared.close(now(), CloseCode::GOING_AWAY, "server shutting down");
        }
    }
}

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
    let refusals = Admission::new(options.max_connections.clamp(16, 1024));
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
    tracker.begin_shutdown();
    let drained = tokio::time::timeout(options.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    tasks.shutdown().await;
    drained
}
