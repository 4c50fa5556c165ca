//! Presence changes of a room, coalesced so that a crowd joining does not
//! turn into a storm of notices.
//!
//! Announcing every join to every member costs N² notices for N joins:
//! 10,000 members joining one room is 50 million frames. A
//! [`PresenceBatch`] collects the joins and leaves of one room instead, and
//! the application publishes them as one [`PresenceChange`] per window:
//!
//! - the first change after a quiet period opens a window of
//!   [`PresenceConfig::interval`]; every change until it ends goes into the
//!   same batch, and [`PresenceBatch::take`] hands the batch out when the
//!   window is over ([`PresenceBatch::poll_timeout`] says when). A room
//!   therefore gets at most one presence notice per interval, whatever the
//!   churn;
//! - a batch names at most [`PresenceConfig::max_names`] joined and as many
//!   left nicknames; changes beyond that are only counted
//!   ([`PresenceChange::joined_more`], [`PresenceChange::left_more`]), so a
//!   notice stays small however many changed;
//! - a join and a leave of the same named nickname inside one window
//!   cancel out (nobody is told about a visit they could not have seen).
//!
//! The full member list is for the one who needs it: a connection that
//! joins gets it once, directly, not through the room.
//!
//! No clock here: the caller passes the time of every change and of every
//! [`PresenceBatch::take`].

use std::time::{Duration, Instant};

/// Default [`PresenceConfig::interval`]: 250 ms.
pub const DEFAULT_PRESENCE_INTERVAL: Duration = Duration::from_millis(250);

/// Default [`PresenceConfig::max_names`]: 16.
pub const DEFAULT_MAX_NAMES: usize = 16;

/// How presence changes are coalesced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceConfig {
    /// How long a window collects changes before they are announced
    /// together; also the shortest time between two notices of one room.
    pub interval: Duration,
    /// Joined (and, separately, left) nicknames named in one notice; the
    /// rest are counted.
    pub max_names: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            interval: DEFAULT_PRESENCE_INTERVAL,
            max_names: DEFAULT_MAX_NAMES,
        }
    }
}

impl PresenceConfig {
    /// Sets [`PresenceConfig::interval`].
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets [`PresenceConfig::max_names`].
    pub fn with_max_names(mut self, names: usize) -> Self {
        self.max_names = names;
        self
    }
}

/// What changed in a room during one window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceChange {
    /// Nicknames that joined, in the order they joined (at most
    /// [`PresenceConfig::max_names`]).
    pub joined: Vec<String>,
    /// Joins beyond the named ones.
    pub joined_more: u64,
    /// Nicknames that left, in the order they left (at most
    /// [`PresenceConfig::max_names`]).
    pub left: Vec<String>,
    /// Leaves beyond the named ones.
    pub left_more: u64,
}

impl PresenceChange {
    /// Whether nothing is left to announce.
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty()
            && self.left.is_empty()
            && self.joined_more == 0
            && self.left_more == 0
    }
}

/// The presence changes of one room waiting for the end of their window.
#[derive(Clone, Debug, Default)]
pub struct PresenceBatch {
    config: PresenceConfig,
    change: PresenceChange,
    /// When the open window ends; `None` while the room is quiet.
    due: Option<Instant>,
}

impl PresenceBatch {
    /// An empty batch coalescing under `config`.
    pub fn new(config: PresenceConfig) -> PresenceBatch {
        PresenceBatch {
            config,
            change: PresenceChange::default(),
            due: None,
        }
    }

    /// Records that `nick` joined at `now`. Returns `true` when this change
    /// opened a window: the caller must then come back at
    /// [`PresenceBatch::poll_timeout`] and [`PresenceBatch::take`] the
    /// batch. (It returns `false` while a window is open: the call already
    /// arranged for that window covers this change too.)
    pub fn join(&mut self, nick: &str, now: Instant) -> bool {
        let opened = self.open(now);
        let change = &mut self.change;
        if let Some(at) = change.left.iter().position(|n| n == nick) {
            // Left and came back inside the window: no change to announce.
            change.left.remove(at);
        } else if change.joined.len() < self.config.max_names {
            change.joined.push(nick.to_owned());
        } else {
            change.joined_more += 1;
        }
        opened
    }

    /// Records that `nick` left at `now`; returns what
    /// [`PresenceBatch::join`] returns.
    pub fn leave(&mut self, nick: &str, now: Instant) -> bool {
        let opened = self.open(now);
        let change = &mut self.change;
        if let Some(at) = change.joined.iter().position(|n| n == nick) {
            // Joined and left inside the window: nobody needs to know.
            change.joined.remove(at);
        } else if change.left.len() < self.config.max_names {
            change.left.push(nick.to_owned());
        } else {
            change.left_more += 1;
        }
        opened
    }

    /// When the open window ends, or `None` while the room is quiet.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due
    }

    /// The batch, once its window has ended at `now`: `None` before that,
    /// while the room is quiet, or when every change in the window
    /// cancelled out. Either way, once the window has ended the room is
    /// quiet again and the next change opens a new window.
    pub fn take(&mut self, now: Instant) -> Option<PresenceChange> {
        let due = self.due?;
        if now < due {
            return None;
        }
        self.due = None;
        let change = std::mem::take(&mut self.change);
        (!change.is_empty()).then_some(change)
    }

    /// Opens a window at `now` unless one is open; `true` if it did.
    fn open(&mut self, now: Instant) -> bool {
        if self.due.is_some() {
            return false;
        }
        self.due = Some(now + self.config.interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn changes_in_one_window_are_one_notice() {
        let t = Instant::now();
        let mut batch = PresenceBatch::new(PresenceConfig::default());
        assert!(batch.join("ada", t));
        assert!(!batch.join("bob", ms(t, 100)));
        assert!(!batch.leave("cy", ms(t, 200)));
        assert_eq!(batch.poll_timeout(), Some(ms(t, 250)));
        assert_eq!(batch.take(ms(t, 249)), None, "the window is still open");
        let change = batch.take(ms(t, 250)).expect("one notice");
        assert_eq!(change.joined, ["ada", "bob"]);
        assert_eq!(change.left, ["cy"]);
        assert_eq!((change.joined_more, change.left_more), (0, 0));
        assert_eq!(batch.poll_timeout(), None, "quiet again");
        assert_eq!(batch.take(ms(t, 1000)), None);
        // The next change opens the next window.
        assert!(batch.join("dee", ms(t, 1000)));
        assert_eq!(batch.poll_timeout(), Some(ms(t, 1250)));
    }

    #[test]
    fn names_beyond_the_limit_are_counted() {
        let t = Instant::now();
        let mut batch = PresenceBatch::new(PresenceConfig::default().with_max_names(2));
        for i in 0..10_000 {
            batch.join(&format!("n{i}"), t);
        }
        for i in 0..5 {
            batch.leave(&format!("old{i}"), t);
        }
        let change = batch.take(ms(t, 250)).expect("one notice");
        assert_eq!(change.joined, ["n0", "n1"]);
        assert_eq!(change.joined_more, 9_998);
        assert_eq!(change.left, ["old0", "old1"]);
        assert_eq!(change.left_more, 3);
    }

    #[test]
    fn a_visit_inside_one_window_cancels_out() {
        let t = Instant::now();
        let mut batch = PresenceBatch::new(PresenceConfig::default());
        batch.join("ada", t);
        batch.leave("ada", ms(t, 10));
        assert_eq!(batch.take(ms(t, 250)), None, "nothing to announce");
        assert_eq!(batch.poll_timeout(), None, "and the window is closed");

        // Leaving and coming back (a reconnect) is no change either.
        batch.leave("bob", ms(t, 300));
        batch.join("bob", ms(t, 310));
        batch.join("cy", ms(t, 320));
        let change = batch.take(ms(t, 550)).expect("cy's join");
        assert_eq!(change.joined, ["cy"]);
        assert!(change.left.is_empty());
    }

    #[test]
    fn a_storm_of_joins_is_one_notice_per_interval() {
        // 10,000 joins spread over 10 s: at most one notice per 250 ms.
        let t = Instant::now();
        let mut batch = PresenceBatch::new(PresenceConfig::default());
        let mut notices = 0;
        let mut named = 0;
        let mut counted = 0;
        for i in 0..10_000u64 {
            let now = t + Duration::from_millis(i);
            if batch.poll_timeout().is_some_and(|due| due <= now) {
                let change = batch.take(now).expect("joins");
                notices += 1;
                named += change.joined.len() as u64;
                counted += change.joined_more;
            }
            batch.join(&format!("n{i}"), now);
        }
        let change = batch
            .take(t + Duration::from_secs(11))
            .expect("the last window");
        notices += 1;
        named += change.joined.len() as u64;
        counted += change.joined_more;
        assert_eq!(notices, 40);
        assert_eq!(named + counted, 10_000, "every join is named or counted");
        assert!(named <= 40 * DEFAULT_MAX_NAMES as u64);
    }
}
