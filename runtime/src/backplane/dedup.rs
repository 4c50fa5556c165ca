//! The publication ids a room accepted recently, for the in-process
//! backplane's [`StreamRoom::publish_with_id`](super::StreamRoom::publish_with_id).
//! (The Redis backplane keeps them in Redis, next to the room's history.)

use std::collections::{HashMap, VecDeque};

use wavecast_core::StreamPosition;

/// A room's recent ids, each with the position of its publication, for a
/// window of time and at most a number of them: ids are client input, so
/// the oldest is forgotten first when a room holds too many.
#[derive(Debug, Default)]
pub(super) struct RecentIds {
    by_id: HashMap<Box<str>, Accepted>,
    /// Oldest first. An id accepted again after it expired has an older,
    /// stale entry here too; `seq` tells them apart.
    order: VecDeque<(Box<str>, u64)>,
    next_seq: u64,
}

#[derive(Debug)]
struct Accepted {
    seq: u64,
    position: StreamPosition,
    expires_ms: u64,
}

impl RecentIds {
    /// Where `id` was published, if that was less than its window before
    /// `now_ms`.
    pub(super) fn get(&mut self, id: &str, now_ms: u64) -> Option<StreamPosition> {
        self.expire(now_ms);
        self.by_id
            .get(id)
            .filter(|accepted| accepted.expires_ms > now_ms)
            .map(|accepted| accepted.position)
    }

    /// Remembers that `id` was published at `position`, for `window_ms`;
    /// forgets the oldest ids beyond `max_ids`.
    pub(super) fn insert(
        &mut self,
        id: &str,
        position: StreamPosition,
        now_ms: u64,
        window_ms: u64,
        max_ids: usize,
    ) {
        if max_ids == 0 || window_ms == 0 {
            return;
        }
        while self.order.len() >= max_ids {
            self.forget_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(
            id.into(),
            Accepted {
                seq,
                position,
                expires_ms: now_ms.saturating_add(window_ms),
            },
        );
        self.order.push_back((id.into(), seq));
    }

    /// How many ids are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some((id, seq)) = self.order.front() {
            let live = self
                .by_id
                .get(id)
                .is_some_and(|a| a.seq == *seq && a.expires_ms > now_ms);
            if live {
                // Entries expire about in order; a later one that expired
                // sooner (the window was shortened) is refused by `get`
                // and goes when it reaches the front.
                return;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((id, seq)) = self.order.pop_front() {
            if self.by_id.get(&id).is_some_and(|a| a.seq == seq) {
                self.by_id.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_for_their_window_and_up_to_the_cap() {
        let mut ids = RecentIds::default();
        let a = StreamPosition::new(9, 1);
        let b = StreamPosition::new(9, 2);
        assert_eq!(ids.get("a", 0), None);
        ids.insert("a", a, 0, 100, 3);
        assert_eq!(ids.get("a", 99), Some(a));
        assert_eq!(ids.get("a", 100), None, "expired");
        assert_eq!(ids.len(), 0, "and forgotten");
        // Accepted again after it expired: the new position counts.
        ids.insert("a", b, 100, 100, 3);
        assert_eq!(ids.get("a", 150), Some(b));
        // At most three: the oldest goes first.
        for (i, id) in ["x", "y", "z"].into_iter().enumerate() {
            ids.insert(id, StreamPosition::new(9, 3 + i as u64), 150, 100, 3);
        }
        assert_eq!(ids.len(), 3);
        assert_eq!(ids.get("a", 150), None);
        assert_eq!(ids.get("x", 150), Some(StreamPosition::new(9, 3)));
        // A window of zero, or no room for ids, remembers nothing.
        ids.insert("w", a, 150, 0, 3);
        assert_eq!(ids.get("w", 150), None);
        let mut none = RecentIds::default();
        none.insert("n", a, 0, 100, 0);
        assert_eq!(none.get("n", 0), None);
    }

    #[test]
    fn a_stale_entry_does_not_forget_the_id_accepted_again() {
        let mut ids = RecentIds::default();
        let old = StreamPosition::new(1, 1);
        let new = StreamPosition::new(1, 2);
        // A long window first, then a short one for another id, so that
        // the order no longer follows expiry.
        ids.insert("long", old, 0, 1_000, 8);
        ids.insert("short", old, 0, 10, 8);
        assert_eq!(ids.get("short", 20), None);
        ids.insert("short", new, 20, 1_000, 8);
        // Expiring "long" pops the stale "short" entry behind it, which
        // must leave the live one alone.
        assert_eq!(ids.get("long", 1_000), None);
        assert_eq!(ids.get("short", 1_000), Some(new));
    }
}
