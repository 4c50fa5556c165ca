//! The parts of a room that wait and share: the publisher's sequence with
//! the wakers of members waiting for the next message, and the hub's
//! registry of named rooms behind a lock, handing out leases.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use std::collections::HashMap;

use wavecast_core::room::{validate_room_name, RoomError, RoomMessage};
use wavecast_core::PreparedMessage;

use crate::shared::lock;

/// A room's publishing side without its channel: numbers each message and
/// wakes members that wait for their output queue to drain, so a stalled
/// member under [`LagPolicy::Disconnect`] is evicted as soon as the room
/// overwrites a message it had not taken. Share it in an `Arc`.
#[derive(Debug, Default)]
pub(crate) struct Publisher {
    seq: AtomicU64,
    waiters: Mutex<Vec<Waker>>,
}

impl Publisher {
    /// Numbers `prepared` as the room's next message. Send the result on
    /// the channel, then call [`Publisher::notify`].
    pub(crate) fn next(&self, prepared: PreparedMessage) -> Arc<RoomMessage> {
        // Concurrent publishers may put numbers on the channel slightly out
        // of order; each number is still unique.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        Arc::new(RoomMessage::new(seq, prepared))
    }

    /// How many messages have been numbered.
    pub(crate) fn published(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Wakes every task waiting in [`Publisher::poll_published`].
    pub(crate) fn notify(&self) {
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for w in waiters {
            w.wake();
        }
    }

    /// Ready once more than `seen` messages were published; otherwise
    /// registers the waker for the next [`Publisher::notify`].
    pub(crate) fn poll_published(&self, cx: &mut Context<'_>, seen: u64) -> Poll<u64> {
        let mut waiters = lock(&self.waiters);
        let now = self.published();
        if now > seen {
            return Poll::Ready(now);
        }
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Named rooms with a count of holders each (members and publisher
/// handles); a room is removed when its count drops to zero.
///
/// `T` is the runtime's per-room state (its channel). [`Rooms`] keeps it
/// behind a lock.
#[derive(Debug)]
pub(crate) struct Registry<T> {
    rooms: HashMap<String, (T, usize)>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            rooms: HashMap::new(),
        }
    }
}

impl<T> Registry<T> {
    /// An empty registry.
    pub(crate) fn new() -> Registry<T> {
        Registry::default()
    }

    /// Takes a hold on room `name`, creating it with `make` if it does not
    /// exist; release it with [`Registry::release`].
    ///
    /// # Errors
    ///
    /// [`RoomError::InvalidName`] (see [`validate_room_name`]).
    pub(crate) fn acquire(
        &mut self,
        name: &str,
        make: impl FnOnce() -> T,
    ) -> Result<&T, RoomError> {
        validate_room_name(name)?;
        let entry = self
            .rooms
            .entry(name.to_owned())
            .or_insert_with(|| (make(), 0));
        entry.1 += 1;
        Ok(&entry.0)
    }

    /// Takes one more hold on an existing room; false if there is none.
    pub(crate) fn retain(&mut self, name: &str) -> bool {
        match self.rooms.get_mut(name) {
            Some(entry) => {
                entry.1 += 1;
                true
            }
            None => false,
        }
    }

    /// Gives back one hold; returns the room's state when that was the last
    /// hold and the room was removed.
    pub(crate) fn release(&mut self, name: &str) -> Option<T> {
        let entry = self.rooms.get_mut(name)?;
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 == 0 {
            return self.rooms.remove(name).map(|(t, _)| t);
        }
        None
    }

    /// How many holds room `name` has (0 if it does not exist).
    #[cfg(test)]
    pub(crate) fn holders(&self, name: &str) -> usize {
        self.rooms.get(name).map_or(0, |(_, n)| *n)
    }

    /// How many rooms exist.
    pub(crate) fn len(&self) -> usize {
        self.rooms.len()
    }
}

/// A [`Registry`] behind a lock, shared by a hub's clones, handing out
/// [`Lease`]s that release their room on drop.
#[derive(Debug)]
pub(crate) struct Rooms<T> {
    inner: Arc<Mutex<Registry<T>>>,
}

impl<T> Clone for Rooms<T> {
    fn clone(&self) -> Self {
        Rooms {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Default for Rooms<T> {
    fn default() -> Self {
        Rooms {
            inner: Arc::new(Mutex::new(Registry::new())),
        }
    }
}

impl<T> Rooms<T> {
    fn lock(&self) -> MutexGuard<'_, Registry<T>> {
        lock(&self.inner)
    }

    /// Takes a hold on room `name` (created with `make` if needed) and
    /// returns what `view` takes from its state, with the lease.
    ///
    /// # Errors
    ///
    /// [`RoomError::InvalidName`] (see [`validate_room_name`]).
    pub(crate) fn acquire<V>(
        &self,
        name: &str,
        make: impl FnOnce() -> T,
        view: impl FnOnce(&T) -> V,
    ) -> Result<(V, Lease<T>), RoomError> {
        let mut rooms = self.lock();
        let v = view(rooms.acquire(name, make)?);
        Ok((
            v,
            Lease {
                rooms: self.clone(),
                name: name.into(),
            },
        ))
    }

    /// How many rooms exist.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no room exists.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().len() == 0
    }
}

/// A hold on one room of a [`Rooms`]; released on drop, retained again on
/// clone. The room is removed when its last lease goes.
#[derive(Debug)]
pub(crate) struct Lease<T> {
    rooms: Rooms<T>,
    name: Arc<str>,
}

impl<T> Lease<T> {
    /// The room's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl<T> Clone for Lease<T> {
    fn clone(&self) -> Self {
        let retained = self.rooms.lock().retain(&self.name);
        debug_assert!(retained, "a room exists while a lease on it exists");
        Lease {
            rooms: self.rooms.clone(),
            name: self.name.clone(),
        }
    }
}

impl<T> Drop for Lease<T> {
    fn drop(&mut self) {
        // The state is dropped after the guard: a channel's drop may wake
        // tasks that take this lock.
        let removed = self.rooms.lock().release(&self.name);
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_removes_empty_rooms() {
        let mut r: Registry<u32> = Registry::new();
        assert_eq!(*r.acquire("a", || 7).unwrap(), 7);
        assert_eq!(*r.acquire("a", || 9).unwrap(), 7);
        assert!(r.retain("a"));
        assert!(!r.retain("b"));
        assert_eq!(r.holders("a"), 3);
        assert_eq!(r.release("a"), None);
        assert_eq!(r.release("a"), None);
        assert_eq!(r.release("a"), Some(7));
        assert_eq!(r.len(), 0);
        assert!(r.acquire("", || 1).is_err());
        assert!(r.acquire("a\nb", || 1).is_err());
        assert!(r.acquire(&"x".repeat(129), || 1).is_err());
    }

    #[test]
    fn leases_release_rooms() {
        let rooms: Rooms<u8> = Rooms::default();
        let (v, lease) = rooms.acquire("a", || 5, |t| *t).unwrap();
        assert_eq!(v, 5);
        let again = lease.clone();
        drop(lease);
        assert_eq!(rooms.len(), 1);
        drop(again);
        assert!(rooms.is_empty());
    }
}
