//! Reuse of large message buffers.
//!
//! A large message costs a fresh allocation of its whole size; for sizes
//! past the allocator's mmap threshold that means page faults and zeroing
//! on every message, and an unmap when it is freed. An adapter keeps one
//! [`BufferPool`] per thread: it hands back the payloads it has finished
//! writing ([`BufferPool::recycle`]), and [`Connection::read_target`] takes
//! the buffer for the next large incoming message from it.
//!
//! The pool is small and bounded ([`MAX_POOLED`] buffers of at most
//! [`MAX_POOLED_CAPACITY`] bytes each, [`MAX_POOLED_BYTES`] in all), holds nothing that any connection
//! still uses (only payloads nobody else references), and hands a buffer
//! out only for a message that needs at least half its capacity, so a
//! message never holds more than twice its size.
//!
//! [`Connection::read_target`]: crate::Connection::read_target

use bytes::{Bytes, BytesMut};

/// Smallest buffer worth keeping: below this the allocator serves
/// requests from its own free lists cheaply.
pub const MIN_POOLED_CAPACITY: usize = 64 << 10;

/// Largest buffer kept.
pub const MAX_POOLED_CAPACITY: usize = 16 << 20;

/// Buffers kept at most.
pub const MAX_POOLED: usize = 4;

/// Bytes kept at most (over all pooled buffers).
pub const MAX_POOLED_BYTES: usize = 16 << 20;

/// A bounded cache of emptied message buffers (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Vec<BytesMut>,
}

impl BufferPool {
    /// An empty pool.
    pub const fn new() -> BufferPool {
        BufferPool { free: Vec::new() }
    }

    /// Offers a payload whose last byte has been written. It is kept if
    /// nothing else references it, its size is in the pooled range and the
    /// pool has room; otherwise it is simply dropped.
    pub fn recycle(&mut self, payload: Bytes) {
        if payload.len() < MIN_POOLED_CAPACITY / 2
            || payload.len() > MAX_POOLED_CAPACITY
            || self.free.len() >= MAX_POOLED
        {
            return;
        }
        let Ok(mut buf) = payload.try_into_mut() else {
            return;
        };
        // The last fragment of a message sent in pieces owns the whole
        // message's allocation once the others are written, but its view
        // starts partway in: reclaim the allocation from its start, so the
        // capacity checked and counted is what the buffer really holds.
        buf.clear();
        let _ = buf.try_reclaim(buf.capacity() + 1);
        if !(MIN_POOLED_CAPACITY..=MAX_POOLED_CAPACITY).contains(&buf.capacity())
            || self.capacity_bytes() + buf.capacity() > MAX_POOLED_BYTES
        {
            return;
        }
        self.free.push(buf);
    }

    /// The smallest pooled buffer that holds `capacity` bytes and is at most
    /// twice that large.
    pub fn take(&mut self, capacity: usize) -> Option<BytesMut> {
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= capacity && b.capacity() / 2 <= capacity)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)?;
        Some(self.free.swap_remove(best))
    }

    /// Buffers currently held.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// Whether the pool holds no buffer.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }

    /// Bytes held by pooled buffers.
    pub fn capacity_bytes(&self) -> usize {
        self.free.iter().map(BytesMut::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    #[test]
    fn keeps_unique_large_payloads_and_hands_them_back() {
        let mut pool = BufferPool::new();
        pool.recycle(payload(1 << 20));
        assert_eq!(pool.len(), 1);
        assert!(pool.take(2 << 20).is_none(), "too small for 2 MiB");
        assert!(pool.take(1000).is_none(), "more than twice 1000 bytes");
        let buf = pool.take(700 << 10).expect("1 MiB serves 700 KiB");
        assert!(buf.is_empty());
        assert_eq!(buf.capacity(), 1 << 20);
        assert!(pool.is_empty());
    }

    #[test]
    fn refuses_shared_small_huge_and_overflow() {
        let mut pool = BufferPool::new();
        let shared = payload(1 << 20);
        let _other = shared.clone();
        pool.recycle(shared);
        pool.recycle(payload(1024));
        pool.recycle(payload(MAX_POOLED_CAPACITY + 1));
        pool.recycle(Bytes::from_static(&[0; 70_000]));
        assert!(pool.is_empty());
        for _ in 0..MAX_POOLED + 2 {
            pool.recycle(payload(100 << 10));
        }
        assert_eq!(pool.len(), MAX_POOLED);
        assert_eq!(pool.capacity_bytes(), MAX_POOLED * (100 << 10));
    }

    #[test]
    fn total_bytes_are_capped() {
        let mut pool = BufferPool::new();
        pool.recycle(payload(MAX_POOLED_CAPACITY));
        pool.recycle(payload(1 << 20));
        assert_eq!(pool.len(), 1, "the second would pass the byte cap");
        assert_eq!(pool.capacity_bytes(), MAX_POOLED_BYTES);
    }

    /// A message sent in fragments: once the other pieces are written, the
    /// last one owns the whole allocation. The pool counts (and hands out)
    /// the whole of it, not the 64 KiB view.
    #[test]
    fn the_last_fragment_counts_its_whole_allocation() {
        let mut pool = BufferPool::new();
        let mut message = payload(1 << 20);
        let mut pieces = Vec::new();
        while !message.is_empty() {
            pieces.push(message.split_to((64 << 10).min(message.len())));
        }
        let last = pieces.pop().unwrap();
        drop(pieces);
        pool.recycle(last);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.capacity_bytes(), 1 << 20);
        assert!(
            pool.take(64 << 10).is_none(),
            "1 MiB is more than twice 64 KiB"
        );
        assert_eq!(pool.take(600 << 10).unwrap().capacity(), 1 << 20);
    }

    #[test]
    fn takes_the_smallest_fit() {
        let mut pool = BufferPool::new();
        pool.recycle(payload(1 << 20));
        pool.recycle(payload(256 << 10));
        pool.recycle(payload(512 << 10));
        assert_eq!(pool.take(200 << 10).unwrap().capacity(), 256 << 10);
        assert_eq!(pool.take(200 << 10).map(|b| b.capacity()), None);
        assert_eq!(pool.take(300 << 10).unwrap().capacity(), 512 << 10);
    }
}
