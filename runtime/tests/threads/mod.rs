//! The test runtime of this folder: threads as the executor (one OS thread
//! per task, each parked until woken), async-io sockets and timers,
//! async-broadcast rooms. Plugged in the way a user would plug in a runtime
//! of their own; nothing here is wavecast's.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use async_io::Async;
use wavecast_runtime::{AsyncBroadcast, BoxFuture, Runtime};

/// Wakes a parked thread.
pub(crate) struct Unpark(pub(crate) Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` on this thread, parking it while the future waits.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        thread::park();
    }
}

/// The test's runtime: a thread per task.
pub(crate) struct Threads;

thread_local! {
    /// How many tasks this thread has spawned: each is a thread here.
    static SPAWNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many tasks the calling thread has spawned so far.
#[allow(dead_code)] // Not every test file counts.
pub(crate) fn spawned_here() -> usize {
    SPAWNED.with(|spawned| spawned.get())
}

impl Runtime for Threads {
    type Tcp = Async<TcpStream>;
    type Listener = Async<TcpListener>;
    type Timer = async_io::Timer;
    type Sleep = async_io::Timer;
    type Broadcast = AsyncBroadcast;

    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
        SPAWNED.with(|spawned| spawned.set(spawned.get() + 1));
        thread::spawn(move || block_on(future));
    }

    fn timer(deadline: Instant) -> async_io::Timer {
        async_io::Timer::at(deadline)
    }

    fn sleep_until(deadline: Instant) -> async_io::Timer {
        async_io::Timer::at(deadline)
    }

    fn connect(host: String, port: u16) -> BoxFuture<'static, io::Result<Async<TcpStream>>> {
        Box::pin(async move {
            let addr = (host.as_str(), port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
            let tcp = Async::<TcpStream>::connect(addr).await?;
            tcp.get_ref().set_nodelay(true)?;
            Ok(tcp)
        })
    }

    fn accept(listener: &Async<TcpListener>) -> BoxFuture<'_, io::Result<Async<TcpStream>>> {
        Box::pin(async move {
            let (tcp, _) = listener.accept().await?;
            tcp.get_ref().set_nodelay(true)?;
            Ok(tcp)
        })
    }

    fn local_addr(listener: &Async<TcpListener>) -> io::Result<SocketAddr> {
        listener.get_ref().local_addr()
    }
}
