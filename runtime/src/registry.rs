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
///
/// Every publish wakes every waiting member, and each member registers
/// again: with thousands of members, a check "already registered?" that
/// scanned the list would make every publish quadratic. A member keeps a
/// [`Registration`] instead, which finds its own slot in O(1).
///
/// [`LagPolicy::Disconnect`]: wavecast_core::room::LagPolicy::Disconnect
#[derive(Debug, Default)]
pub(crate) struct Publisher {
    seq: AtomicU64,
    waiters: Mutex<Waiters>,
}

/// The wakers registered since the last notify.
#[derive(Debug, Default)]
struct Waiters {
    /// `None` where a member left before the notify.
    list: Vec<Option<Waker>>,
    /// Empty slots of `list`, reused before it grows.
    free: Vec<usize>,
    /// Counts notifies: a registration made in an earlier round is gone.
    round: u64,
}

/// Where a member's waker sits in its publisher's list, if it is there.
#[derive(Debug, Default)]
pub(crate) struct Registration {
    /// The notify round and index of the slot.
    slot: Option<(u64, usize)>,
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

    /// As [`Publisher::next`], for a publication at `position` in its
    /// room's history.
    pub(crate) fn next_at(
        &self,
        prepared: PreparedMessage,
        position: wavecast_core::StreamPosition,
    ) -> Arc<RoomMessage> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        Arc::new(RoomMessage::with_position(seq, prepared, position))
    }

    /// How many messages have been numbered.
    pub(crate) fn published(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Wakes every task waiting in [`Publisher::poll_published`].
    pub(crate) fn notify(&self) {
        let list = {
            let mut waiters = lock(&self.waiters);
            waiters.round += 1;
            waiters.free.clear();
            std::mem::take(&mut waiters.list)
        };
        for w in list.into_iter().flatten() {
            w.wake();
        }
    }

    /// Ready once more than `seen` messages were published; otherwise
    /// registers the waker for the next [`Publisher::notify`], once per
    /// round: polled again before that notify, the member's slot is found
    /// through `registration` (and its waker replaced if the task changed).
    pub(crate) fn poll_published(
        &self,
        cx: &mut Context<'_>,
        seen: u64,
        registration: &mut Registration,
    ) -> Poll<u64> {
        let mut waiters = lock(&self.waiters);
        let now = self.published();
        if now > seen {
            return Poll::Ready(now);
        }
        let round = waiters.round;
        match registration.slot {
            Some((r, at)) if r == round => match &mut waiters.list[at] {
                Some(slot) if slot.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            },
            _ => {
                let waker = Some(cx.waker().clone());
                let at = match waiters.free.pop() {
                    Some(at) => {
                        waiters.list[at] = waker;
                        at
                    }
                    None => {
                        waiters.list.push(waker);
                        waiters.list.len() - 1
                    }
                };
                registration.slot = Some((round, at));
            }
        }
        Poll::Pending
    }

    /// Gives up a member's slot (it leaves the room): its task is not kept
    /// alive by the waker until the room's next publish, and the slot is
    /// reused, so members coming and going in a quiet room cost nothing.
    pub(crate) fn deregister(&self, registration: &mut Registration) {
        let Some((round, at)) = registration.slot.take() else {
            return;
        };
        let mut waiters = lock(&self.waiters);
        if waiters.round == round && waiters.list[at].take().is_some() {
            waiters.free.push(at);
        }
    }

    /// Wakers registered now (for tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        lock(&self.waiters).list.iter().flatten().count()
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
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn waker() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    /// A member polled many times between two publishes holds one slot;
    /// moved to another task it is woken there; every member is woken once
    /// per publish, and registers afresh after it.
    #[test]
    fn each_member_holds_one_slot_per_round() {
        let p = Publisher::default();
        let members: Vec<_> = (0..1000)
            .map(|_| (waker(), Registration::default()))
            .collect();
        let mut members = members;
        for _ in 0..3 {
            for ((_, w), reg) in &mut members {
                let mut cx = Context::from_waker(w);
                assert!(p.poll_published(&mut cx, 0, reg).is_pending());
            }
        }
        assert_eq!(p.waiting(), 1000);
        // The first member's subscription moves to another task.
        let (moved, other) = waker();
        let mut cx = Context::from_waker(&other);
        assert!(p.poll_published(&mut cx, 0, &mut members[0].1).is_pending());
        assert_eq!(p.waiting(), 1000);

        p.next(PreparedMessage::new("a"));
        p.notify();
        assert_eq!(moved.0.load(Ordering::Relaxed), 1);
        let ((first, _), _) = &members[0];
        assert_eq!(
            first.0.load(Ordering::Relaxed),
            0,
            "woken in its new task only"
        );
        for ((counter, _), _) in &members[1..] {
            assert_eq!(counter.0.load(Ordering::Relaxed), 1);
        }
        assert_eq!(p.waiting(), 0);
        for ((_, w), reg) in &mut members {
            let mut cx = Context::from_waker(w);
            assert_eq!(p.poll_published(&mut cx, 0, reg), Poll::Ready(1));
            assert!(p.poll_published(&mut cx, 1, reg).is_pending());
        }
        assert_eq!(p.waiting(), 1000);
        // Members leaving a quiet room release their wakers, and members
        // joining take the freed slots.
        for (_, reg) in &mut members[..600] {
            p.deregister(reg);
        }
        assert_eq!(p.waiting(), 400);
        let (late, w) = waker();
        let mut reg = Registration::default();
        for _ in 0..600 {
            assert!(p
                .poll_published(&mut Context::from_waker(&w), 1, &mut reg)
                .is_pending());
            p.deregister(&mut reg);
        }
        assert!(p
            .poll_published(&mut Context::from_waker(&w), 1, &mut reg)
            .is_pending());
        assert_eq!(p.waiting(), 401);
        assert_eq!(lock(&p.waiters).list.len(), 1000, "freed slots were reused");
        p.notify();
        assert_eq!(late.0.load(Ordering::Relaxed), 1);
    }

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
