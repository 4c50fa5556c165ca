//! Deadlines kept by a connection. The core never reads a clock: every
//! input carries `now`, and [`crate::Connection::poll_timeout`] tells the
//! adapter when to call [`crate::Connection::handle_timeout`].

use std::time::{Duration, Instant};

/// The clocks behind a connection's deadlines.
#[derive(Clone, Debug)]
pub(crate) struct Timers {
    /// When the peer was last heard from, shifted forward by time spent with
    /// reads paused by our own backpressure (which must not count as silence).
    pub(crate) last_heard: Instant,
    /// When we last sent a heartbeat ping.
    pub(crate) last_ping: Option<Instant>,
    /// When reads became paused, while they are.
    pub(crate) paused_since: Option<Instant>,
    /// When an unfinished close handshake gives up.
    pub(crate) close_deadline: Option<Instant>,
    /// The latest time any input told us.
    pub(crate) last_now: Instant,
}

impl Timers {
    pub(crate) fn new(now: Instant) -> Timers {
        Timers {
            last_heard: now,
            last_ping: None,
            paused_since: None,
            close_deadline: None,
            last_now: now,
        }
    }

    /// Records whether reads are paused at `now`; the time spent paused is
    /// credited to the silence clock when reads resume.
    pub(crate) fn observe_pause(&mut self, now: Instant, paused: bool) {
        match (paused, self.paused_since) {
            (true, None) => self.paused_since = Some(now),
            (false, Some(since)) => {
                self.last_heard += now.saturating_duration_since(since);
                self.paused_since = None;
            }
            _ => {}
        }
    }

    /// When the next heartbeat ping is due.
    pub(crate) fn heartbeat_at(&self, interval: Option<Duration>) -> Option<Instant> {
        let interval = interval?;
        if self.paused_since.is_some() {
            return None;
        }
        let base = match self.last_ping {
            Some(p) if p > self.last_heard => p,
            _ => self.last_heard,
        };
        Some(base + interval)
    }

    /// When silence becomes an idle timeout.
    pub(crate) fn idle_at(&self, timeout: Option<Duration>) -> Option<Instant> {
        let timeout = timeout?;
        if self.paused_since.is_some() {
            return None;
        }
        Some(self.last_heard + timeout)
    }
}

/// The earliest of several optional deadlines.
pub(crate) fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}
