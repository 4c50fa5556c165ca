//! The I/O loop: read into the core, write what it queued, sleep until its
//! next deadline. Everything that decides anything lives in `wavecast-core`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use wavecast_core::{Connection, Event};

/// Bytes read per `poll_read`. The buffer is per thread, not per
/// connection, so idle connections hold no read buffer.
const SCRATCH_LEN: usize = 64 << 10;

/// Reads per wake before yielding to other tasks.
const READS_PER_POLL: usize = 16;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_LEN]);
}

/// State shared by the driver task and the handles: the core plus wakers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) conn: Connection,
    driver: Option<Waker>,
    receiver: Option<Waker>,
    writers: Vec<Waker>,
    /// The receiving half still exists; when it goes, data is discarded.
    pub(crate) receiver_alive: bool,
    /// Live handles (senders and receivers); at zero the driver closes.
    pub(crate) handles: usize,
    /// An I/O error that ended the connection.
    pub(crate) io_error: Option<Arc<std::io::Error>>,
    /// The driver has stopped; nothing more will be read or written.
    pub(crate) done: bool,
    /// The driver holds written-but-unsent bytes.
    pub(crate) unflushed: bool,
}

pub(crate) type SharedRef = Arc<Mutex<Shared>>;

/// Locks the shared state. A panic while it was held cannot leave the core
/// half-updated in a way that matters more than the panic itself, so a
/// poisoned lock is simply taken over.
pub(crate) fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(conn: Connection) -> Shared {
        Shared {
            conn,
            driver: None,
            receiver: None,
            writers: Vec::new(),
            receiver_alive: true,
            handles: 0,
            io_error: None,
            done: false,
            unflushed: false,
        }
    }

    pub(crate) fn wake_driver(&mut self) {
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    pub(crate) fn register_receiver(&mut self, waker: &Waker) {
        match &self.receiver {
            Some(w) if w.will_wake(waker) => {}
            _ => self.receiver = Some(waker.clone()),
        }
    }

    pub(crate) fn register_writer(&mut self, waker: &Waker) {
        if !self.writers.iter().any(|w| w.will_wake(waker)) {
            self.writers.push(waker.clone());
        }
    }

    fn wake_receiver(&mut self) {
        if let Some(w) = self.receiver.take() {
            w.wake();
        }
    }

    fn wake_writers(&mut self) {
        for w in self.writers.drain(..) {
            w.wake();
        }
        if self.writers.capacity() > 0 {
            self.writers = Vec::new();
        }
    }

    /// Hands new events to whoever wants them after an input.
    fn after_input(&mut self) {
        if !self.receiver_alive {
            // Discard mode: control frames were handled by the core; a
            // close or error still needs polling to be answered.
            while let Some(ev) = self.conn.poll_event() {
                drop::<Event>(ev);
            }
        } else if self.conn.has_events() {
            self.wake_receiver();
        }
        if self.conn.outcome().is_some() {
            self.wake_writers();
        }
    }

    fn wake_all(&mut self) {
        self.wake_receiver();
        self.wake_writers();
    }

    /// Whether everything queued has been written.
    pub(crate) fn is_flushed(&self) -> bool {
        !self.unflushed && !self.conn.has_transmit()
    }
}

/// Current time on tokio's clock (which tests can pause), as the core wants it.
pub(crate) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The task that owns the transport.
pub(crate) struct Driver<S> {
    shared: SharedRef,
    stream: S,
    wbuf: Vec<u8>,
    wpos: usize,
    chunk: Option<Bytes>,
    sleep: Option<Pin<Box<Sleep>>>,
    read_eof: bool,
    /// When the core finished, the last chance to flush its final frames.
    linger_until: Option<Instant>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// A driver for `stream`; `prefix` is written before anything the core
    /// queues (the server's `101` response).
    pub(crate) fn new(shared: SharedRef, stream: S, prefix: Vec<u8>) -> Driver<S> {
        lock(&shared).unflushed = !prefix.is_empty();
        Driver {
            shared,
            stream,
            wbuf: prefix,
            wpos: 0,
            chunk: None,
            sleep: None,
            read_eof: false,
            linger_until: None,
        }
    }

    /// Writes queued output until done or the transport pushes back.
    /// Returns whether anything was written.
    fn poll_write_out(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
    ) -> Poll<std::io::Result<bool>> {
        let mut wrote = false;
        loop {
            if self.wpos == self.wbuf.len() && self.chunk.is_none() {
                self.wbuf.clear();
                self.wpos = 0;
                self.chunk = conn.poll_transmit(&mut self.wbuf);
                if self.wbuf.is_empty() && self.chunk.is_none() {
                    break;
                }
            }
            let pending_buf = &self.wbuf[self.wpos..];
            let res = match (&self.chunk, pending_buf.is_empty()) {
                (Some(chunk), false) if self.stream.is_write_vectored() => {
                    let bufs = [
                        std::io::IoSlice::new(pending_buf),
                        std::io::IoSlice::new(chunk),
                    ];
                    Pin::new(&mut self.stream).poll_write_vectored(cx, &bufs)
                }
                (_, false) => Pin::new(&mut self.stream).poll_write(cx, pending_buf),
                (Some(chunk), true) => Pin::new(&mut self.stream).poll_write(cx, chunk),
                (None, true) => unreachable!("loop head refills or breaks"),
            };
            let mut n = match res {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if wrote => return Poll::Ready(Ok(true)),
                Poll::Pending => return Poll::Pending,
            };
            wrote = true;
            let from_buf = n.min(self.wbuf.len() - self.wpos);
            self.wpos += from_buf;
            n -= from_buf;
            if n > 0 {
                if let Some(chunk) = self.chunk.as_mut() {
                    chunk.advance(n);
                }
            }
            if self.chunk.as_ref().is_some_and(|c| c.is_empty()) {
                self.chunk = None;
            }
        }
        if wrote {
            // Buffered transports (TLS) need a flush to hit the wire.
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
        }
        Poll::Ready(Ok(wrote))
    }

    fn has_unwritten(&self) -> bool {
        self.wpos < self.wbuf.len() || self.chunk.is_some()
    }

    /// Reads once into the shared scratch buffer and feeds the core.
    fn poll_read_in(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
    ) -> Poll<std::io::Result<()>> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut buf = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let filled = buf.filled();
                    if filled.is_empty() {
                        self.read_eof = true;
                        conn.receive_eof(now());
                    } else {
                        conn.receive(now(), filled);
                    }
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    fn arm_sleep(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
            }
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        let sleep = self.sleep.as_mut().expect("armed just above");
        sleep.as_mut().poll(cx).is_ready()
    }

    fn finish(&mut self, shared: &mut Shared, error: Option<std::io::Error>) {
        if let Some(e) = error {
            if !shared.conn.is_closed() {
                shared.io_error = Some(Arc::new(e));
            }
        }
        shared.done = true;
        shared.unflushed = false;
        shared.wake_all();
        self.sleep = None;
        self.wbuf = Vec::new();
        self.chunk = None;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Driver<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared_ref = this.shared.clone();
        let mut guard = lock(&shared_ref);
        let shared = &mut *guard;
        match &shared.driver {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => shared.driver = Some(cx.waker().clone()),
        }
        if shared.handles == 0 && shared.conn.is_open() {
            // Every handle is gone: say goodbye instead of lingering.
            let _ = shared
                .conn
                .close(now(), wavecast_core::CloseCode::GOING_AWAY, "");
        }
        let mut reads = 0;
        loop {
            let mut progress = false;

            let was_blocked = shared.conn.is_write_blocked();
            match this.poll_write_out(cx, &mut shared.conn) {
                Poll::Ready(Ok(wrote)) => progress |= wrote,
                Poll::Ready(Err(e)) => {
                    this.finish(shared, Some(e));
                    return Poll::Ready(());
                }
                Poll::Pending => {}
            }
            shared.unflushed = this.has_unwritten();
            if (was_blocked && !shared.conn.is_write_blocked()) || shared.is_flushed() {
                shared.wake_writers();
            }

            if shared.conn.wants_read() && !this.read_eof && reads < READS_PER_POLL {
                match this.poll_read_in(cx, &mut shared.conn) {
                    Poll::Ready(Ok(())) => {
                        reads += 1;
                        progress = true;
                        shared.after_input();
                    }
                    Poll::Ready(Err(e)) => {
                        this.finish(shared, Some(e));
                        return Poll::Ready(());
                    }
                    Poll::Pending => {}
                }
            } else if reads >= READS_PER_POLL {
                // Let other connections run; come back at once.
                cx.waker().wake_by_ref();
                break;
            }

            if shared.conn.is_closed() {
                if shared.conn.has_events() {
                    shared.wake_receiver();
                }
                if !this.has_unwritten() && !shared.conn.has_transmit() {
                    let _ = Pin::new(&mut this.stream).poll_shutdown(cx);
                    this.finish(shared, None);
                    return Poll::Ready(());
                }
                // Flushing the last frames is bounded by the close timeout.
                let until = *this.linger_until.get_or_insert_with(|| {
                    Instant::now()
                        + shared
                            .conn
                            .config()
                            .close_timeout
                            .max(Duration::from_millis(1))
                });
                if this.arm_sleep(cx, until) {
                    this.finish(shared, None);
                    return Poll::Ready(());
                }
            } else if let Some(deadline) = shared.conn.poll_timeout() {
                let deadline = Instant::from_std(deadline);
                if deadline <= Instant::now() || this.arm_sleep(cx, deadline) {
                    shared.conn.handle_timeout(now());
                    progress = true;
                    shared.after_input();
                }
            } else {
                this.sleep = None;
            }

            if !progress {
                break;
            }
        }
        if !this.has_unwritten() && this.wbuf.capacity() > 0 {
            // Idle connections hold no write buffer.
            this.wbuf = Vec::new();
            this.wpos = 0;
        }
        shared.unflushed = this.has_unwritten();
        Poll::Pending
    }
}
