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
                    // The handler's connections are driven in this task;
                    // cancelling the handler leaves them to close.
                    crate::task::connection_task(async move {
                        race(run, signalled(&cancelled)).await;
                    })
                    .await;
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

#[cfg(all(test, feature = "async-io", feature = "async-broadcast"))]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::io;
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Instant;

    use async_io::{Async, Timer};
    use futures_io::{AsyncRead, AsyncWrite};
    use wavecast_core::SseConfig;

    use crate::runtime::{AsyncBroadcast, BoxFuture};
    use crate::shared::lock;
    use crate::{Hub, SseStream};

    /// A single-threaded executor whose tasks count themselves: a task
    /// stays alive after it finished only while someone keeps its waker,
    /// so `alive` shows wakers retained after their streams closed.
    #[derive(Default)]
    struct Executor {
        ready: Mutex<VecDeque<Arc<Task>>>,
        /// The waker of the thread's `block_on`, for wake-ups from the
        /// async-io reactor's thread.
        main: Mutex<Option<Waker>>,
        alive: AtomicUsize,
    }

    struct Task {
        future: Mutex<Option<BoxFuture<'static, ()>>>,
        executor: Arc<Executor>,
    }

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            let executor = self.executor.clone();
            lock(&executor.ready).push_back(self);
            let main = lock(&executor.main).clone();
            if let Some(main) = main {
                main.wake();
            }
        }
    }

    impl Drop for Task {
        fn drop(&mut self) {
            self.executor.alive.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl Executor {
        fn spawn(self: &Arc<Self>, future: BoxFuture<'static, ()>) {
            self.alive.fetch_add(1, Ordering::SeqCst);
            Arc::new(Task {
                future: Mutex::new(Some(future)),
                executor: self.clone(),
            })
            .wake();
        }

        fn run_ready(&self) {
            loop {
                // Not in a `while let`: the queue's guard would live
                // through the poll, and a task waking itself would
                // deadlock.
                let Some(task) = lock(&self.ready).pop_front() else {
                    return;
                };
                let waker = Waker::from(task.clone());
                let mut future = lock(&task.future);
                if let Some(running) = future.as_mut() {
                    if running
                        .as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_ready()
                    {
                        *future = None;
                    }
                }
            }
        }

        fn alive(&self) -> usize {
            self.alive.load(Ordering::SeqCst)
        }
    }

    thread_local! {
        static EXECUTOR: RefCell<Option<Arc<Executor>>> = const { RefCell::new(None) };
    }

    /// Runs `main` and every task it spawns on this thread.
    fn block_on<T>(main: impl Future<Output = T>) -> T {
        let executor = Arc::new(Executor::default());
        EXECUTOR.with(|e| *e.borrow_mut() = Some(executor.clone()));
        let mut main = std::pin::pin!(main);
        async_io::block_on(poll_fn(|cx| {
            *lock(&executor.main) = Some(cx.waker().clone());
            if let Poll::Ready(value) = main.as_mut().poll(cx) {
                return Poll::Ready(value);
            }
            executor.run_ready();
            Poll::Pending
        }))
    }

    fn executor() -> Arc<Executor> {
        EXECUTOR.with(|e| e.borrow().clone().expect("inside block_on"))
    }

    /// The test's runtime: the executor above, async-io sockets and timers.
    struct Local;

    impl Runtime for Local {
        type Tcp = Async<TcpStream>;
        type Listener = Async<TcpListener>;
        type Timer = Timer;
        type Sleep = Timer;
        type Broadcast = AsyncBroadcast;

        fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
            executor().spawn(Box::pin(future));
        }

        fn timer(deadline: Instant) -> Timer {
            Timer::at(deadline)
        }

        fn sleep_until(deadline: Instant) -> Timer {
            Timer::at(deadline)
        }

        fn connect(_: String, _: u16) -> BoxFuture<'static, io::Result<Async<TcpStream>>> {
            Box::pin(async { Err(io::ErrorKind::Unsupported.into()) })
        }

        fn accept(listener: &Async<TcpListener>) -> BoxFuture<'_, io::Result<Async<TcpStream>>> {
            Box::pin(async move { Ok(listener.accept().await?.0) })
        }

        fn local_addr(listener: &Async<TcpListener>) -> io::Result<SocketAddr> {
            listener.get_ref().local_addr()
        }
    }

    /// Waits (up to 5 s) until `done` holds; returns whether it did.
    async fn settles(mut done: impl FnMut() -> bool) -> bool {
        let give_up = Instant::now() + Duration::from_secs(5);
        while !done() {
            if Instant::now() > give_up {
                return false;
            }
            Timer::after(Duration::from_millis(1)).await;
        }
        true
    }

    /// Opens an SSE stream: sends the request, reads the response head.
    async fn open_stream(addr: SocketAddr) -> Async<TcpStream> {
        let mut tcp = Async::<TcpStream>::connect(addr).await.unwrap();
        let mut request: &[u8] = b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
        while !request.is_empty() {
            let n = poll_fn(|cx| Pin::new(&mut tcp).poll_write(cx, request))
                .await
                .unwrap();
            request = &request[n..];
        }
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut buf = [0u8; 256];
            let n = poll_fn(|cx| Pin::new(&mut tcp).poll_read(cx, &mut buf))
                .await
                .unwrap();
            assert!(n > 0, "the server closed the stream before its head");
            head.extend_from_slice(&buf[..n]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
        tcp
    }

    /// 1,000 SSE streams through `serve`, 50 open at a time: each holds
    /// one waker slot while it runs, and once closed leaves no waker and
    /// no slot behind (slots are reused, so none grows with the streams
    /// ever opened), in the tracker its shutdown watch lives in, the one
    /// the accept loop watches, and anywhere else (no finished task is
    /// kept alive by a waker).
    #[test]
    fn closed_sse_streams_leave_no_waker_behind() {
        const STREAMS: usize = 1000;
        const BATCH: usize = 50;
        block_on(async {
            let room = Hub::<Local>::default().room("feed").unwrap();
            let tracked: Arc<Mutex<Option<Tracker>>> = Arc::default();
            let stash = tracked.clone();
            let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
            let server = serve::<Local, _, _>(listener, ServeConfig::default(), move |incoming| {
                let mut sub = room.subscribe();
                lock(&stash).get_or_insert_with(|| {
                    incoming.tracker().expect("serve tracks requests").clone()
                });
                async move {
                    if let Ok(mut sse) = SseStream::respond(incoming, SseConfig::default()).await {
                        sse.forward(&mut sub).await;
                    }
                }
            })
            .unwrap();
            let addr = server.local_addr();
            for round in 0..STREAMS / BATCH {
                let mut open = Vec::new();
                for _ in 0..BATCH {
                    open.push(open_stream(addr).await);
                }
                let tracker = lock(&tracked).clone().expect("a request was served");
                assert!(
                    settles(|| tracker.watchers() == BATCH).await,
                    "round {round}: {} of {BATCH} open streams watch for shutdown",
                    tracker.watchers()
                );
                drop(open);
                assert!(
                    settles(|| server.active() == 0).await,
                    "round {round}: {} handlers still running",
                    server.active()
                );
                assert_eq!(tracker.watchers(), 0, "round {round}: wakers kept");
            }
            let tracker = lock(&tracked).clone().unwrap();
            assert_eq!(tracker.watchers(), 0);
            assert!(
                tracker.watch_slots() <= BATCH,
                "{} slots for {BATCH} streams at a time",
                tracker.watch_slots()
            );
            // The accept loop's own watch, and nothing more.
            assert_eq!(server.stop.watchers(), 1);
            assert_eq!(server.stop.watch_slots(), 1);
            // Only the accept loop is alive: every finished handler's task
            // was released by all who held its waker (the abort watch
            // `serve` gives each handler and the room's publisher included;
            // the room has published nothing since the streams left).
            let executor = executor();
            assert!(
                settles(|| executor.alive() == 1).await,
                "{} tasks kept alive",
                executor.alive()
            );
            assert!(server.shutdown().await, "every handler had finished");
        });
    }
}
