//! Output staged for the transport, ready for one vectored write.
//!
//! [`Connection::poll_transmit`] copies small frames into a byte buffer and
//! hands large payloads out as their own chunks. An [`Outbox`] collects
//! several of those rounds — buffer, chunk, buffer, chunk, … — so that an
//! adapter writes a burst of large messages with one `writev` instead of
//! one write per message, and tracks how much of it has been written. Each
//! chunk that has been written completely goes to a [`BufferPool`], to be
//! reused for the next large message read.
//!
//! The adapter's loop: when [`Outbox::is_empty`], [`Outbox::fill`] it from
//! the connection; write [`Outbox::io_slices`] (or [`Outbox::first`] for a
//! transport without vectored writes); report the count with
//! [`Outbox::advance`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

use wavecast_core::{BufferPool, Connection};

/// Chunks staged at most per fill (each adds two slices to a write).
pub(crate) const MAX_CHUNKS: usize = 16;

/// Slices [`Outbox::io_slices`] may fill: enough for a full outbox.
pub(crate) const MAX_SLICES: usize = 2 * MAX_CHUNKS + 1;

/// The largest frame buffer kept for reuse by the next connection this
/// thread writes for.
const SPARE_MAX: usize = 64 << 10;

thread_local! {
    /// A written-out frame buffer, so that a small message does not cost
    /// an allocation and a free: an idle connection gives its buffer back
    /// here, and the next one to write takes it.
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Staged output: `buf[..at₀]`, chunk₀, `buf[at₀..at₁]`, chunk₁, …, `buf[atₙ..]`.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    buf: Vec<u8>,
    /// Each chunk with the buffer offset it follows.
    chunks: VecDeque<(usize, Bytes)>,
    /// Bytes of `buf` written.
    buf_pos: usize,
    /// Bytes of the front chunk written (kept whole so it can be recycled).
    chunk_pos: usize,
}

impl Outbox {
    /// An outbox that starts with `prefix` (a server's `101` response, say),
    /// written before anything the connection queues.
    pub(crate) fn with_prefix(prefix: Vec<u8>) -> Outbox {
        Outbox {
            buf: prefix,
            ..Outbox::default()
        }
    }

    /// Whether everything staged has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.buf_pos == self.buf.len()
    }

    /// Staged bytes not yet written.
    pub(crate) fn remaining(&self) -> usize {
        let chunks: usize = self.chunks.iter().map(|(_, c)| c.len()).sum();
        self.buf.len() - self.buf_pos + chunks - self.chunk_pos
    }

    /// Stages the connection's queued output (call when empty): frames and
    /// chunks until the connection has nothing more, [`MAX_CHUNKS`] chunks
    /// are staged, or the staged bytes reach the connection's write buffer
    /// limit.
    pub(crate) fn fill(&mut self, conn: &mut Connection) {
        debug_assert!(self.is_empty(), "fill an outbox only once it is written");
        if self.buf.capacity() == 0 {
            self.buf = SPARE.with(|spare| std::mem::take(&mut *spare.borrow_mut()));
        }
        self.buf.clear();
        self.buf_pos = 0;
        self.chunk_pos = 0;
        let limit = conn.config().write_buffer_limit;
        let mut staged = 0;
        while let Some(chunk) = conn.poll_transmit(&mut self.buf) {
            if chunk.is_empty() {
                // Nothing to write; `advance` relies on chunks being non-empty.
                continue;
            }
            staged += chunk.len();
            self.chunks.push_back((self.buf.len(), chunk));
            if self.chunks.len() >= MAX_CHUNKS || staged + self.buf.len() >= limit {
                break;
            }
        }
    }

    /// The unwritten output as slices, in order, into `out`; returns how
    /// many were filled (0 when empty).
    pub(crate) fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut from = self.buf_pos;
        let mut chunk_pos = self.chunk_pos;
        for (at, chunk) in &self.chunks {
            if n + 2 > out.len() {
                return n;
            }
            if from < *at {
                out[n] = IoSlice::new(&self.buf[from..*at]);
                n += 1;
            }
            out[n] = IoSlice::new(&chunk[chunk_pos..]);
            n += 1;
            from = *at;
            chunk_pos = 0;
        }
        if from < self.buf.len() && n < out.len() {
            out[n] = IoSlice::new(&self.buf[from..]);
            n += 1;
        }
        n
    }

    /// The first unwritten slice (for transports that write one at a time).
    #[cfg(test)]
    pub(crate) fn first(&self) -> &[u8] {
        match self.chunks.front() {
            Some((at, _)) if self.buf_pos < *at => &self.buf[self.buf_pos..*at],
            Some((_, chunk)) => &chunk[self.chunk_pos..],
            None => &self.buf[self.buf_pos..],
        }
    }

    /// Marks `n` more bytes written; chunks written completely go to `pool`.
    pub(crate) fn advance(&mut self, mut n: usize, pool: &mut BufferPool) {
        while n > 0 {
            match self.chunks.front() {
                Some((at, _)) if self.buf_pos < *at => {
                    let take = n.min(*at - self.buf_pos);
                    self.buf_pos += take;
                    n -= take;
                }
                Some((_, chunk)) => {
                    let take = n.min(chunk.len() - self.chunk_pos);
                    self.chunk_pos += take;
                    n -= take;
                    if self.chunk_pos == chunk.len() {
                        self.chunk_pos = 0;
                        if let Some((_, done)) = self.chunks.pop_front() {
                            pool.recycle(done);
                        }
                    }
                }
                None => {
                    let take = n.min(self.buf.len() - self.buf_pos);
                    self.buf_pos += take;
                    if take < n {
                        debug_assert!(false, "advanced past the staged output");
                        return;
                    }
                    n = 0;
                }
            }
        }
    }

    /// Drops the buffers once written, so that an idle connection holds no
    /// output memory.
    pub(crate) fn release(&mut self) {
        if self.is_empty() {
            let mut buf = std::mem::take(&mut self.buf);
            if buf.capacity() > 0 && buf.capacity() <= SPARE_MAX {
                buf.clear();
                SPARE.with(|spare| {
                    let mut spare = spare.borrow_mut();
                    if spare.capacity() < buf.capacity() {
                        *spare = buf;
                    }
                });
            }
            self.buf_pos = 0;
            self.chunks = VecDeque::new();
        }
    }

    /// Drops everything staged (the transport is gone).
    pub(crate) fn clear(&mut self) {
        *self = Outbox::default();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use wavecast_core::{Config, Message, Role};

    fn server_with_output(messages: &[Message]) -> Connection {
        let config = Config::default().with_write_buffer_limit(1 << 30);
        let mut conn = Connection::new(Role::Server, config, Instant::now());
        for m in messages {
            conn.send(m.clone()).expect("open connection");
        }
        conn
    }

    fn concat(slices: &[IoSlice<'_>]) -> Vec<u8> {
        slices.iter().flat_map(|s| s.iter().copied()).collect()
    }

    /// Writes everything staged `step` bytes at a time, by slices or by
    /// `first`, and returns the bytes in order.
    fn drain(outbox: &mut Outbox, conn: &mut Connection, step: usize, vectored: bool) -> Vec<u8> {
        let mut pool = BufferPool::new();
        let mut wire = Vec::new();
        loop {
            if outbox.is_empty() {
                outbox.fill(conn);
                if outbox.is_empty() {
                    return wire;
                }
            }
            // Copy up to `step` bytes of what one write would be offered.
            let before = wire.len();
            if vectored {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = outbox.io_slices(&mut slices);
                for s in &slices[..n] {
                    let room = step - (wire.len() - before);
                    wire.extend_from_slice(&s[..s.len().min(room)]);
                }
            } else {
                let first = outbox.first();
                wire.extend_from_slice(&first[..first.len().min(step)]);
            }
            let n = wire.len() - before;
            assert!(n > 0);
            outbox.advance(n, &mut pool);
        }
    }

    fn reference(messages: &[Message]) -> Vec<u8> {
        let mut conn = server_with_output(messages);
        let mut wire = Vec::new();
        loop {
            let mut buf = Vec::new();
            let chunk = conn.poll_transmit(&mut buf);
            wire.extend_from_slice(&buf);
            match chunk {
                Some(c) => wire.extend_from_slice(&c),
                None if buf.is_empty() => return wire,
                None => {}
            }
        }
    }

    fn mixed() -> Vec<Message> {
        (0..40)
            .map(|k| match k % 4 {
                0 => Message::from(format!("small {k}")),
                1 => Message::from(vec![k as u8; 5000 + k]),
                2 => Message::from(vec![k as u8; 100]),
                _ => Message::from(vec![k as u8; 70_000]),
            })
            .collect()
    }

    #[test]
    fn any_write_pattern_gives_the_same_bytes() {
        let messages = mixed();
        let expected = reference(&messages);
        for step in [1, 7, 4096, 65_536, usize::MAX] {
            for vectored in [true, false] {
                let mut conn = server_with_output(&messages);
                let mut outbox = Outbox::with_prefix(b"HTTP/1.1 101\r\n\r\n".to_vec());
                let wire = drain(&mut outbox, &mut conn, step, vectored);
                assert_eq!(&wire[..16], b"HTTP/1.1 101\r\n\r\n");
                assert!(
                    wire[16..] == expected[..],
                    "step {step}, vectored {vectored}"
                );
                outbox.release();
                assert_eq!(outbox.buf.capacity(), 0);
            }
        }
    }

    #[test]
    fn a_fill_stages_a_bounded_batch() {
        let mut conn = server_with_output(&mixed());
        let mut outbox = Outbox::default();
        outbox.fill(&mut conn);
        assert_eq!(outbox.chunks.len(), MAX_CHUNKS);
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = outbox.io_slices(&mut slices);
        assert!(n <= MAX_SLICES);
        let mut small = [IoSlice::new(&[]); 3];
        let k = outbox.io_slices(&mut small);
        assert_eq!(concat(&small[..k]), concat(&slices[..k]));
    }

    #[test]
    fn written_chunks_are_recycled() {
        let payload = Bytes::from(vec![9u8; 200_000]);
        let ptr = payload.as_ptr();
        let mut conn = server_with_output(&[]);
        conn.send(Message::Binary(payload)).expect("open");
        let mut outbox = Outbox::default();
        outbox.fill(&mut conn);
        let mut pool = BufferPool::new();
        let total = outbox.first().len() + 200_000;
        outbox.advance(total, &mut pool);
        assert!(outbox.is_empty());
        let reused = pool.take(200_000).expect("the written payload");
        assert_eq!(reused.as_ptr(), ptr);
    }
}
