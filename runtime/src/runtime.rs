//! The contract between wavecast and an async runtime: spawn a task, read
//! the clock, arm a timer, open and accept TCP connections, and carry room
//! messages over the runtime's broadcast channel. Everything else in this
//! crate is written once against these traits.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use wavecast_core::RoomMessage;

/// A boxed future, as runtimes spawn and connect them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream wavecast can drive: a `futures-io` reader and writer.
///
/// The driver uses four operations of it: `poll_read`, `poll_write_vectored`,
/// `poll_flush` and `poll_close` (shutdown of the write side). Every type
/// with those (TCP, TLS, an in-memory pipe, hyper's upgraded stream through a
/// compat wrapper) is a transport; there is nothing to implement.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// An async runtime, as wavecast needs it. Implement it (a unit struct is
/// enough) to run wavecast on a runtime it does not ship an adapter for; the
/// adapter crates `wavecast-tokio`, `wavecast-smol` and `wavecast-async-std`
/// are such implementations and nothing more.
///
/// All methods are associated functions: a runtime is a type, not a value,
/// so handles never carry it.
pub trait Runtime: Send + Sync + Sized + 'static {
    /// The runtime's TCP stream (wrapped, if needed, to speak `futures-io`).
    type Tcp: Transport;
    /// The runtime's TCP listener, for [`crate::serve`].
    type Listener: Send + Sync + 'static;
    /// A resettable one-shot timer (a connection keeps one while it has a
    /// deadline).
    type Timer: Timer;
    /// A one-shot sleep that lives inside the future awaiting it, for
    /// handshake and write deadlines (no allocation of its own). Its
    /// output is ignored.
    type Sleep: Future + Send + 'static;
    /// The broadcast channel rooms carry their messages on.
    type Broadcast: Broadcast;

    /// Spawns a detached task on the runtime's executor. Generic, so a
    /// runtime that stores the future in its task allocation (all of them)
    /// needs no second allocation per connection.
    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F);

    /// The current time on the runtime's clock (a paused or mocked clock
    /// included: every deadline wavecast computes starts here). The system
    /// clock unless the runtime has a clock of its own (tokio's can pause).
    fn now() -> Instant {
        Instant::now()
    }

    /// A timer that fires at `deadline`.
    fn timer(deadline: Instant) -> Self::Timer;

    /// A sleep until `deadline`.
    fn sleep_until(deadline: Instant) -> Self::Sleep;

    /// Opens a TCP connection (resolving `host`) with `TCP_NODELAY` set.
    fn connect(host: String, port: u16) -> BoxFuture<'static, io::Result<Self::Tcp>>;

    /// Accepts the next connection on `listener`, with `TCP_NODELAY` set.
    fn accept(listener: &Self::Listener) -> BoxFuture<'_, io::Result<Self::Tcp>>;

    /// The address `listener` is bound to.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;
}

/// A one-shot timer that can be moved to another deadline without
/// allocating again (the driver keeps one per connection while it has a
/// deadline).
pub trait Timer: Send + Unpin + 'static {
    /// Moves the timer to `deadline` (earlier or later); it fires once.
    fn reset(&mut self, deadline: Instant);

    /// Ready once the deadline has passed; registers the waker otherwise.
    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// What a room's receiver found when it looked for the next message.
#[derive(Debug)]
pub enum TryRecv {
    /// The next message.
    Message(Arc<RoomMessage>),
    /// The ring overwrote this many messages the receiver had not taken.
    Lagged(u64),
    /// Nothing new (the room's publisher wakes waiters when that changes).
    Empty,
}

/// A bounded, overwriting broadcast ring of room messages: a full ring
/// drops its oldest message instead of waiting, and a receiver that missed
/// messages is told how many. The ring may hold more than asked for (tokio
/// rounds up to a power of two); the room's cursor in the core applies the
/// capacity exactly, so behaviour is the same on every runtime.
///
/// Receivers never wait on the channel itself: the room wakes them, so only
/// non-blocking operations are needed.
pub trait Broadcast: 'static {
    /// The publishing side; clones share the ring.
    type Sender: Clone + Send + Sync + fmt::Debug + 'static;
    /// One member's read position.
    type Receiver: Send + Sync + fmt::Debug + 'static;

    /// A ring holding at least `capacity` messages.
    fn channel(capacity: usize) -> Self::Sender;
    /// Puts `message` on the ring; returns how many receivers will see it.
    fn send(tx: &Self::Sender, message: Arc<RoomMessage>) -> usize;
    /// A receiver that sees every message sent from now on.
    fn subscribe(tx: &Self::Sender) -> Self::Receiver;
    /// How many receivers exist.
    fn receivers(tx: &Self::Sender) -> usize;
    /// How many messages the ring holds for its slowest receiver.
    fn queued(tx: &Self::Sender) -> usize;
    /// Takes the receiver's next message without waiting.
    fn try_recv(rx: &mut Self::Receiver) -> TryRecv;
}

/// A timer armed on demand for whatever deadline the core asks for next:
/// allocated the first time, moved after that, dropped when there is none.
pub(crate) struct Alarm<R: Runtime> {
    armed: Option<(Instant, R::Timer)>,
}

impl<R: Runtime> Alarm<R> {
    pub(crate) fn new() -> Alarm<R> {
        Alarm { armed: None }
    }

    /// Arms the timer for `deadline` and polls it; true when it has fired.
    pub(crate) fn poll_at(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        let (at, timer) = self
            .armed
            .get_or_insert_with(|| (deadline, R::timer(deadline)));
        if *at != deadline {
            *at = deadline;
            timer.reset(deadline);
        }
        timer.poll_fired(cx).is_ready()
    }

    /// No deadline: frees the timer.
    pub(crate) fn clear(&mut self) {
        self.armed = None;
    }
}

/// Sleeps for `delay` on `R`'s timer.
pub(crate) async fn sleep<R: Runtime>(delay: Duration) {
    let _ = R::sleep_until(R::now() + delay).await;
}

/// Runs `future` until it finishes or `deadline` passes (`None` then).
///
/// A struct rather than an `async fn`: an `async fn` would hold `future`
/// twice (the argument and its pinned copy), and a handshake's boxed state
/// is mostly this future.
pub(crate) fn until<R: Runtime, F: Future>(deadline: Instant, future: F) -> Until<F, R::Sleep> {
    Until {
        future,
        sleep: R::sleep_until(deadline),
    }
}

pin_project_lite::pin_project! {
    /// The future [`until`] returns.
    pub(crate) struct Until<F, S> {
        #[pin]
        future: F,
        #[pin]
        sleep: S,
    }
}

impl<F: Future, S: Future> Future for Until<F, S> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.project();
        if let Poll::Ready(v) = this.future.poll(cx) {
            return Poll::Ready(Some(v));
        }
        this.sleep.poll(cx).map(|_| None)
    }
}

/// Runs both futures until either finishes; `a` is polled first.
pub(crate) async fn race<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(v);
        }
        b.as_mut().poll(cx)
    })
    .await
}

#[cfg(feature = "async-io")]
impl Timer for async_io::Timer {
    fn reset(&mut self, deadline: Instant) {
        self.set_at(deadline);
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(self).poll(cx).map(drop)
    }
}

#[cfg(feature = "async-broadcast")]
pub use self::ring::AsyncBroadcast;

#[cfg(feature = "async-broadcast")]
mod ring {
    use super::{Arc, Broadcast, RoomMessage, TryRecv};
    use async_broadcast::{InactiveReceiver, TryRecvError};

    /// [`Broadcast`] over `async-broadcast`, for runtimes without a
    /// broadcast channel of their own (smol and async-std use it).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct AsyncBroadcast;

    /// The sending side, with an inactive receiver that keeps the ring open
    /// while the room has no members.
    #[derive(Debug, Clone)]
    pub struct RingSender {
        tx: async_broadcast::Sender<Arc<RoomMessage>>,
        _idle: InactiveReceiver<Arc<RoomMessage>>,
    }

    impl Broadcast for AsyncBroadcast {
        type Sender = RingSender;
        type Receiver = async_broadcast::Receiver<Arc<RoomMessage>>;

        fn channel(capacity: usize) -> RingSender {
            let (mut tx, rx) = async_broadcast::broadcast(capacity.max(1));
            tx.set_overflow(true);
            tx.set_await_active(false);
            RingSender {
                tx,
                _idle: rx.deactivate(),
            }
        }

        fn send(tx: &RingSender, message: Arc<RoomMessage>) -> usize {
            match tx.tx.try_broadcast(message) {
                Ok(_) => tx.tx.receiver_count(),
                Err(_) => 0,
            }
        }

        fn subscribe(tx: &RingSender) -> Self::Receiver {
            tx.tx.new_receiver()
        }

        fn receivers(tx: &RingSender) -> usize {
            tx.tx.receiver_count()
        }

        fn queued(tx: &RingSender) -> usize {
            tx.tx.len()
        }

        fn try_recv(rx: &mut Self::Receiver) -> TryRecv {
            match rx.try_recv() {
                Ok(message) => TryRecv::Message(message),
                Err(TryRecvError::Overflowed(n)) => TryRecv::Lagged(n),
                Err(TryRecvError::Empty | TryRecvError::Closed) => TryRecv::Empty,
            }
        }
    }
}
