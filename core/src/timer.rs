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
    /// When reads became paused because the application has not taken its
    /// events, while they are. (A pause because our own output is over the
    /// write limit does not count: the write-stall deadline covers that.)
    pub(crate) paused_since: Option<Instant>,
    /// The write-stall clock.
    pub(crate) stall: WriteStall,
    /// The latest time any input told us.
    pub(crate) last_now: Instant,
}

impl Timers {
    pub(crate) fn new(now: Instant) -> Timers {
        Timers {
            last_heard: now,
            last_ping: None,
            paused_since: None,
            stall: WriteStall::default(),
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

    /// Moves the latest known time forward (never back).
    pub(crate) fn tell(&mut self, now: Instant) {
        if now > self.last_now {
            self.last_now = now;
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

/// Whether output written by a driver is stuck: the peer stopped reading.
/// Shared by [`crate::Connection`] and [`crate::sse::SseSession`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WriteStall {
    /// When pending output last stopped making progress, while the driver
    /// holds bytes the transport has not accepted.
    since: Option<Instant>,
}

impl WriteStall {
    /// Records one write attempt: `wrote` bytes accepted, `pending` whether
    /// the driver still holds bytes. Pending output with no progress starts
    /// the stall clock; progress restarts it; nothing pending stops it.
    pub(crate) fn record(&mut self, now: Instant, wrote: usize, pending: bool) {
        if !pending {
            self.since = None;
        } else if wrote > 0 || self.since.is_none() {
            self.since = Some(now);
        }
    }

    /// Whether the last output report said bytes were still pending (the
    /// stall clock runs exactly then).
    pub(crate) fn is_pending(&self) -> bool {
        self.since.is_some()
    }

    /// When stalled output becomes a write timeout.
    pub(crate) fn deadline(&self, timeout: Duration) -> Option<Instant> {
        self.since.map(|since| since + timeout)
    }
}

/// When the driver stops flushing after the end: `close_timeout` (at least
/// 1 ms) after `now`.
pub(crate) fn linger_deadline(now: Instant, close_timeout: Duration) -> Instant {
    now + close_timeout.max(Duration::from_millis(1))
}

/// The earliest of several optional deadlines.
pub(crate) fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_clock_starts_restarts_and_stops() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let timeout = Duration::from_secs(30);
        let mut t = WriteStall::default();
        assert_eq!(t.deadline(timeout), None);
        t.record(t0, 0, true);
        assert_eq!(t.deadline(timeout), Some(t0 + timeout));
        // No progress: the clock keeps its start.
        t.record(t0 + s, 0, true);
        assert_eq!(t.deadline(timeout), Some(t0 + timeout));
        // Progress, still pending: the clock restarts.
        t.record(t0 + 2 * s, 10, true);
        assert_eq!(t.deadline(timeout), Some(t0 + 2 * s + timeout));
        t.record(t0 + 3 * s, 10, false);
        assert_eq!(t.deadline(timeout), None);
        assert!(!t.is_pending());
    }

    #[test]
    fn linger_is_at_least_a_millisecond() {
        let t0 = Instant::now();
        assert_eq!(
            linger_deadline(t0, Duration::ZERO),
            t0 + Duration::from_millis(1)
        );
        assert_eq!(
            linger_deadline(t0, Duration::from_secs(2)),
            t0 + Duration::from_secs(2)
        );
    }
}
