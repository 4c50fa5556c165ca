//! The I/O loop, once for every runtime: read into the core, write what it
//! queued, sleep until its next deadline on the runtime's timer.

use std::cell::RefCell;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use wavecast_core::{BufferPool, Connection};

use crate::metrics::LiveConnection;
use crate::outbox::{Outbox, MAX_SLICES};
use crate::runtime::{Alarm, Runtime, Transport};
use crate::shared::Shared;

/// Bytes read per `poll_read`. The buffer is per thread, not per
/// connection, so idle connections hold no read buffer.
const SCRATCH_LEN: usize = 128 << 10;

/// Reads per wake before yielding to other tasks.
const READS_PER_POLL: usize = 16;

/// Rounds of room members and I/O per wake before yielding.
const ATTACHED_ROUNDS: usize = 4;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_LEN]);
    /// Large payloads written out, reused for the next large messages read.
    static POOL: RefCell<BufferPool> = const { RefCell::new(BufferPool::new()) };
}

/// Runs `f` with this thread's read buffer (at least 2 KiB). Borrow it only
/// within one poll: other connections' tasks use it too.
pub(crate) fn with_scratch<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    SCRATCH.with(|scratch| f(&mut scratch.borrow_mut()))
}

/// The task that owns the transport. Spawn it on the runtime's executor.
pub(crate) struct Driver<R: Runtime, S> {
    shared: Arc<Shared>,
    stream: S,
    out: Outbox,
    timer: Alarm<R>,
    read_eof: bool,
    /// Counted in [`crate::metrics::live_connections`] until dropped.
    _live: LiveConnection,
}

impl<R: Runtime, S: Transport> Driver<R, S> {
    /// A driver for `stream`; `prefix` (the server's `101` response) is
    /// written before anything the core queues.
    pub(crate) fn new(shared: Arc<Shared>, stream: S, prefix: Vec<u8>) -> Driver<R, S> {
        Driver {
            shared,
            stream,
            out: Outbox::with_prefix(prefix),
            timer: Alarm::new(),
            read_eof: false,
            _live: LiveConnection::new(),
        }
    }

    /// Writes what the connection queued until it has no more or the
    /// transport is full (then the transport will wake the task); returns
    /// how many bytes the transport took.
    fn write_out(&mut self, cx: &mut Context<'_>, conn: &mut Connection) -> std::io::Result<usize> {
        let mut wrote = 0;
        loop {
            if self.out.is_empty() {
                self.out.fill(conn);
                if self.out.is_empty() {
                    break;
                }
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.out.io_slices(&mut slices);
            // One slice (small messages: frames copied into the buffer)
            // goes out with a plain write, which the kernel takes on a
            // shorter path than `writev`.
            let res = if n == 1 {
                Pin::new(&mut self.stream).poll_write(cx, &slices[0])
            } else {
                Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..n])
            };
            let n = match res {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(wrote),
            };
            wrote += n;
            POOL.with(|pool| self.out.advance(n, &mut pool.borrow_mut()));
        }
        if wrote > 0 {
            // Buffered transports (TLS) need a flush to hit the wire.
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.stream).poll_flush(cx) {
                return Err(e);
            }
        }
        Ok(wrote)
    }

    /// Bytes staged and not yet written.
    fn unwritten(&self) -> usize {
        self.out.remaining()
    }

    /// One read from the transport into the connection: into the read
    /// target the core lends (the scratch buffer, or a large payload's
    /// message buffer), committed when the read completes.
    fn poll_read_in(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
        now: Instant,
    ) -> Poll<std::io::Result<()>> {
        SCRATCH.with(|scratch| {
            POOL.with(|pool| {
                let (mut scratch, mut pool) = (scratch.borrow_mut(), pool.borrow_mut());
                let mut target = conn.read_target(&mut scratch, &mut pool);
                let n = ready!(Pin::new(&mut self.stream).poll_read(cx, target.buf()))?;
                target.commit(now, n);
                self.read_eof = n == 0;
                Poll::Ready(Ok(()))
            })
        })
    }

    fn release(&mut self) {
        self.timer.clear();
        self.out.clear();
    }
}

impl<R: Runtime, S> Drop for Driver<R, S> {
    fn drop(&mut self) {
        // Attached futures hold handles of this connection: end them with it.
        self.shared.end_attached();
    }
}

impl<R: Runtime, S: Transport> Future for Driver<R, S> {
    type Output = ();

    /// The core's drive loop (see `wavecast_core::connection`): run the room
    /// members woken since the last poll, write what is queued and report
    /// it, read and feed, then stop if the core says the connection is
    /// finished, or sleep until its deadline. Members woken meanwhile (their
    /// output was written) are run again in the same poll, a few rounds at
    /// most, instead of waking the task once more.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        shared.begin_driver_poll();
        for _ in 0..ATTACHED_ROUNDS {
            // Room members run here, so a delivery costs one wake-up.
            shared.poll_attached(cx);
            if this.poll_io(cx, &shared).is_ready() {
                shared.stop_driver_poll();
                return Poll::Ready(());
            }
            if !shared.end_driver_poll() {
                return Poll::Pending;
            }
        }
        shared.stop_driver_poll();
        Poll::Pending
    }
}

impl<R: Runtime, S: Transport> Driver<R, S> {
    /// One pass of reading, writing and deadlines with the state locked.
    ///
    /// The clock is read once per pass: a deadline met a few microseconds
    /// late costs nothing, while a clock read per read and write was ≈ 2 %
    /// of the CPU of a small-message echo (a `clock_gettime` each).
    fn poll_io(&mut self, cx: &mut Context<'_>, shared: &Shared) -> Poll<()> {
        let this = self;
        let now = R::now();
        let mut state = shared.driver(cx.waker(), now);
        let mut reads = 0;
        loop {
            let mut progress = false;

            let was_blocked = state.conn().is_write_blocked();
            // Writing alone needs no second round: the output is written
            // until the connection has no more or the socket is full, and
            // nothing can queue more while we hold the state.
            let wrote = match this.write_out(cx, state.conn()) {
                Ok(wrote) => wrote,
                Err(e) => {
                    state.finish(Some(e));
                    this.release();
                    return Poll::Ready(());
                }
            };
            let unwritten = this.unwritten();
            state.conn().record_output(now, wrote, unwritten > 0);
            state.after_write(was_blocked, unwritten);

            if state.conn().wants_read() && !this.read_eof {
                if reads >= READS_PER_POLL {
                    // Let other connections run; come back at once.
                    cx.waker().wake_by_ref();
                    break;
                }
                match this.poll_read_in(cx, state.conn(), now) {
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
            }
            // The core decides when the transport goes: everything written
            // after the close, or the linger (close timeout) passed.
            if state.conn().is_finished() {
                if unwritten == 0 {
                    let _ = Pin::new(&mut this.stream).poll_close(cx);
                }
                state.finish(None);
                this.release();
                return Poll::Ready(());
            }
            if let Some(deadline) = state.conn().poll_timeout() {
                if deadline <= now || this.timer.poll_at(cx, deadline) {
                    state.conn().handle_timeout(now.max(deadline));
                    state.after_input();
                    progress = true;
                }
            } else {
                this.timer.clear();
            }

            if !progress {
                break;
            }
        }
        // Idle connections hold no write buffer.
        this.out.release();
        state.after_write(false, this.unwritten());
        Poll::Pending
    }
}
