//! A runtime that counts its tasks: the adapter's runtime with a spawn hook,
//! so a leaked task shows on every runtime, not only where the executor has
//! metrics of its own.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use wavecast_runtime::{BoxFuture, Runtime};

static TASKS: AtomicUsize = AtomicUsize::new(0);

/// Tasks spawned through [`Counted`] whose future has not been dropped
/// (executors drop a task's future when it completes or is cancelled).
pub(crate) fn tasks() -> usize {
    TASKS.load(Ordering::SeqCst)
}

/// `R`, with every spawned task counted in [`tasks`].
pub(crate) struct Counted<R>(PhantomData<fn() -> R>);

/// A spawned future, counted until dropped.
struct Task<F> {
    future: Pin<Box<F>>,
}

impl<F> Drop for Task<F> {
    fn drop(&mut self) {
        TASKS.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<F: Future<Output = ()>> Future for Task<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl<R: Runtime> Runtime for Counted<R> {
    type Tcp = R::Tcp;
    type Listener = R::Listener;
    type Timer = R::Timer;
    type Sleep = R::Sleep;
    type Broadcast = R::Broadcast;

    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
        TASKS.fetch_add(1, Ordering::SeqCst);
        R::spawn(Task {
            future: Box::pin(future),
        });
    }

    fn now() -> Instant {
        R::now()
    }

    fn timer(deadline: Instant) -> R::Timer {
        R::timer(deadline)
    }

    fn sleep_until(deadline: Instant) -> R::Sleep {
        R::sleep_until(deadline)
    }

    fn connect(host: String, port: u16) -> BoxFuture<'static, io::Result<R::Tcp>> {
        R::connect(host, port)
    }

    fn accept(listener: &R::Listener) -> BoxFuture<'_, io::Result<R::Tcp>> {
        R::accept(listener)
    }

    fn local_addr(listener: &R::Listener) -> io::Result<SocketAddr> {
        R::local_addr(listener)
    }
}
