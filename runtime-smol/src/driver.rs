//! The I/O loop over `futures-io` streams and async-io timers: read into
//! the core, write what it queued, sleep until its next deadline. smol and
//! async-std both run on this reactor, so both adapters use this driver.

use std::cell::RefCell;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_io::{AsyncRead, AsyncWrite};
use wavecast_core::outbox::MAX_SLICES;
use wavecast_core::{BufferPool, Connection, Outbox, Shared};

/// Bytes read per `poll_read`. The buffer is per thread, not per
/// connection, so idle connections hold no read buffer.
const SCRATCH_LEN: usize = 128 << 10;

/// Reads per wake before yielding to other tasks.
const READS_PER_POLL: usize = 16;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_LEN]);
    /// Large payloads written out, reused for the next large messages read.
    static POOL: RefCell<BufferPool> = const { RefCell::new(BufferPool::new()) };
}

/// The task that owns the transport. Spawn it on the runtime's executor.
#[doc(hidden)]
pub struct Driver<S> {
    shared: Arc<Shared>,
    stream: S,
    out: Outbox,
    timer: Option<(Instant, Timer)>,
    read_eof: bool,
    linger_until: Option<Instant>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// A driver for `stream`; `prefix` (the server's `101` response) is
    /// written before anything the core queues.
    pub fn new(shared: Arc<Shared>, stream: S, prefix: Vec<u8>) -> Driver<S> {
        Driver {
            shared,
            stream,
            out: Outbox::with_prefix(prefix),
            timer: None,
            read_eof: false,
            linger_until: None,
        }
    }

    /// Writes what the connection queued until it has no more or the
    /// transport is full (then the transport will wake the task).
    fn write_out(&mut self, cx: &mut Context<'_>, conn: &mut Connection) -> std::io::Result<()> {
        let mut wrote = false;
        loop {
            if self.out.is_empty() {
                self.out.fill(conn);
                if self.out.is_empty() {
                    break;
                }
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.out.io_slices(&mut slices);
            let res = Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..n]);
            let n = match res {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            };
            wrote = true;
            POOL.with(|pool| self.out.advance(n, &mut pool.borrow_mut()));
        }
        if wrote {
            // Buffered transports (TLS) need a flush to hit the wire.
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.stream).poll_flush(cx) {
                return Err(e);
            }
        }
        Ok(())
    }

    fn has_unwritten(&self) -> bool {
        !self.out.is_empty()
    }

    /// Reads a large payload straight into its message buffer, when the
    /// connection expects one; `None` otherwise.
    fn poll_direct_read(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
    ) -> Option<Poll<std::io::Result<usize>>> {
        let mut direct = POOL.with(|pool| conn.direct_read(&mut pool.borrow_mut()))?;
        // futures-io reads need initialized memory: zero a piece at a time.
        let target = direct.zeroed(SCRATCH_LEN * 2);
        let read = Pin::new(&mut self.stream).poll_read(cx, target);
        if let Poll::Ready(Ok(n)) = read {
            direct.commit(Instant::now(), n);
        }
        Some(read)
    }

    fn poll_read_in(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
    ) -> Poll<std::io::Result<()>> {
        let read = match self.poll_direct_read(cx, conn) {
            Some(read) => read,
            None => SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let read = Pin::new(&mut self.stream).poll_read(cx, &mut scratch[..]);
                if let Poll::Ready(Ok(n @ 1..)) = read {
                    POOL.with(|pool| {
                        conn.receive_pooled(Instant::now(), &scratch[..n], &mut pool.borrow_mut());
                    });
                }
                read
            }),
        };
        if ready!(read)? == 0 {
            self.read_eof = true;
            conn.receive_eof(Instant::now());
        }
        Poll::Ready(Ok(()))
    }

    /// Arms the timer for `deadline` and polls it; true when it has fired.
    fn poll_timer(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        match &mut self.timer {
            Some((at, timer)) if *at == deadline => Pin::new(timer).poll(cx).is_ready(),
            Some((at, timer)) => {
                *at = deadline;
                timer.set_at(deadline);
                Pin::new(timer).poll(cx).is_ready()
            }
            None => {
                let mut timer = Timer::at(deadline);
                let fired = Pin::new(&mut timer).poll(cx).is_ready();
                self.timer = Some((deadline, timer));
                fired
            }
        }
    }

    fn release(&mut self) {
        self.timer = None;
        self.out.clear();
    }
}

impl<S> Drop for Driver<S> {
    fn drop(&mut self) {
        // Attached futures hold handles of this connection: end them with it.
        self.shared.end_attached();
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Driver<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        // Room members run here, so a delivery costs one wake-up.
        shared.poll_attached(cx);
        let mut state = shared.driver(cx.waker(), Instant::now());
        let mut reads = 0;
        loop {
            let mut progress = false;

            let was_blocked = state.conn().is_write_blocked();
            // Writing alone needs no second round: the output is written
            // until the connection has no more or the socket is full, and
            // nothing can queue more while we hold the state.
            if let Err(e) = this.write_out(cx, state.conn()) {
                state.finish(Some(e));
                this.release();
                return Poll::Ready(());
            }
            state.after_write(was_blocked, this.has_unwritten());

            if state.conn().wants_read() && !this.read_eof {
                if reads >= READS_PER_POLL {
                    // Let other connections run; come back at once.
                    cx.waker().wake_by_ref();
                    break;
                }
                match this.poll_read_in(cx, state.conn()) {
                    Poll::Ready(Ok(())) => {
                        reads += 1;
                        progress = true;
                        state.after_input();
                    }
                    Poll::Ready(Err(e)) => {
                        state.finish(Some(e));
                        this.release();
                        return Poll::Ready(());
                    }
                    Poll::Pending => {}
                }
            }

            if state.conn().is_closed() {
                state.wake_receiver_if_events();
                if !this.has_unwritten() && !state.conn().has_transmit() {
                    let _ = Pin::new(&mut this.stream).poll_close(cx);
                    state.finish(None);
                    this.release();
                    return Poll::Ready(());
                }
                // Flushing the last frames is bounded by the close timeout.
                let linger = state
                    .conn()
                    .config()
                    .close_timeout
                    .max(Duration::from_millis(1));
                let until = *this
                    .linger_until
                    .get_or_insert_with(|| Instant::now() + linger);
                if this.poll_timer(cx, until) {
                    state.finish(None);
                    this.release();
                    return Poll::Ready(());
                }
            } else if let Some(deadline) = state.conn().poll_timeout() {
                if deadline <= Instant::now() || this.poll_timer(cx, deadline) {
                    state.conn().handle_timeout(Instant::now());
                    state.after_input();
                    progress = true;
                }
            } else {
                this.timer = None;
            }

            if !progress {
                break;
            }
        }
        // Idle connections hold no write buffer.
        this.out.release();
        state.after_write(false, this.has_unwritten());
        Poll::Pending
    }
}
