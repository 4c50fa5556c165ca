//! The reconnect backoff schedule: exponential growth, a cap, and jitter.
//!
//! Sans-IO like the rest of the core: [`Backoff`] never reads a clock or
//! sleeps. It hands out the next delay, drawing jitter from the caller's
//! [`Rng`]; the adapter sleeps for that long with its own timer and then
//! reconnects.

use std::time::Duration;

use crate::rng::Rng;

/// How random spread is applied to each delay, so that many clients that lost
/// the same server do not all reconnect at the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: exactly the scheduled delay. For tests and for a single
    /// client that cannot cause a thundering herd.
    None,
    /// Uniform in `[0, scheduled]`: the widest spread, but an attempt may
    /// follow the previous one almost at once.
    Full,
    /// Uniform in `[scheduled / 2, scheduled]`: half the spread, and a client
    /// never retries sooner than half the schedule (the default).
    #[default]
    Equal,
}

/// A reconnect backoff schedule.
///
/// The scheduled delay before attempt `n` (counting from 0) is
/// `min(max_delay, initial * factor^n)`, then [`Jitter`] is applied.
///
/// Defaults ([`Backoff::new`]):
///
/// | setting | default | why |
/// |---|---|---|
/// | initial | 500 ms | quick recovery from a blip |
/// | factor | 2 | doubles each attempt |
/// | max delay | 30 s | a recovered server is found within half a minute |
/// | jitter | [`Jitter::Equal`] | spreads a herd, never spins |
/// | max attempts | `None` (retry forever) | like browsers' `EventSource`; the cap keeps retries gentle |
///
/// Call [`Backoff::next_delay`] after each failed or lost connection, sleep
/// that long, then reconnect; call [`Backoff::reset`] once a connection
/// succeeds (for WebSocket: when the handshake completes).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    initial: Duration,
    factor: f64,
    max_delay: Duration,
    jitter: Jitter,
    max_attempts: Option<u32>,
    attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// A schedule with the defaults listed on [`Backoff`].
    pub fn new() -> Backoff {
        Backoff {
            initial: Duration::from_millis(500),
            factor: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: Jitter::Equal,
            max_attempts: None,
            attempts: 0,
        }
    }

    /// Sets the scheduled delay before the first attempt.
    pub fn with_initial(mut self, delay: Duration) -> Backoff {
        self.initial = delay;
        self
    }

    /// Sets the growth factor per attempt. Values below 1 (and NaN) are
    /// treated as 1, a constant delay.
    pub fn with_factor(mut self, factor: f64) -> Backoff {
        self.factor = if factor >= 1.0 { factor } else { 1.0 };
        self
    }

    /// Sets the cap on the scheduled delay (before jitter, which only ever
    /// shortens it).
    pub fn with_max_delay(mut self, cap: Duration) -> Backoff {
        self.max_delay = cap;
        self
    }

    /// Sets how delays are randomised.
    pub fn with_jitter(mut self, jitter: Jitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// Sets how many delays [`Backoff::next_delay`] hands out before giving
    /// up; `None` retries forever.
    pub fn with_max_attempts(mut self, max: Option<u32>) -> Backoff {
        self.max_attempts = max;
        self
    }

    /// The delay to wait before the next reconnect attempt, or `None` once
    /// the maximum number of attempts is used up (stop reconnecting and
    /// report the failure). Each call counts one attempt.
    pub fn next_delay(&mut self, rng: &mut Rng) -> Option<Duration> {
        if self.max_attempts.is_some_and(|max| self.attempts >= max) {
            return None;
        }
        let scheduled = self.scheduled(self.attempts);
        self.attempts = self.attempts.saturating_add(1);
        Some(match self.jitter {
            Jitter::None => scheduled,
            Jitter::Full => uniform(rng, Duration::ZERO, scheduled),
            Jitter::Equal => uniform(rng, scheduled / 2, scheduled),
        })
    }

    /// Starts the schedule over. Call after a connection succeeds, so the
    /// next loss waits only the initial delay.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// How many delays have been handed out since creation or the last
    /// [`Backoff::reset`].
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay before attempt `attempt` ahead of jitter.
    fn scheduled(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.factor.powi(exponent);
        let cap = self.max_delay.as_secs_f64();
        // Infinity and NaN (zero times infinity) fall back to the cap too.
        if secs.is_nan() || secs >= cap {
            return self.max_delay;
        }
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_delay)
    }
}

/// A uniformly random duration in `[low, high]` (nanosecond resolution).
fn uniform(rng: &mut Rng, low: Duration, high: Duration) -> Duration {
    let low_ns = low.as_nanos();
    let span = high.as_nanos().saturating_sub(low_ns);
    // Lemire's multiply-shift maps 64 random bits onto the span; the bias is
    // at most span / 2^64, irrelevant for sleeping. Spans beyond 2^64 ns
    // (584 years) are clamped.
    let span = span.min(u128::from(u64::MAX));
    let offset = (u128::from(rng.next_u64()) * (span + 1)) >> 64;
    let nanos = low_ns + offset;
    Duration::new(
        u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX),
        // Below 10^9, so it fits.
        (nanos % 1_000_000_000) as u32,
    )
}

/// A reconnecting client's schedule: the first connect is tried at once;
/// each later one (after a loss or a failed attempt) waits the next
/// [`Backoff`] delay; a completed handshake starts the schedule over.
///
/// Adapters call [`Reconnecting::begin`] when the application asks to
/// connect, then per attempt [`Reconnecting::next_wait`] (sleep that long
/// with their own timer; `None` means the attempts are used up) and
/// [`Reconnecting::connected`] on success.
#[derive(Debug)]
pub struct Reconnecting {
    backoff: Backoff,
    rng: Rng,
    connected_before: bool,
    wait: bool,
}

impl Reconnecting {
    /// A schedule drawing jitter from a generator seeded by `seed`.
    pub fn new(backoff: Backoff, seed: crate::SeedSource) -> Reconnecting {
        Reconnecting {
            backoff,
            rng: Rng::new(seed),
            connected_before: false,
            wait: false,
        }
    }

    /// Replaces the backoff schedule.
    pub fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    /// Reseeds the jitter generator.
    pub fn reseed(&mut self, seed: crate::SeedSource) {
        self.rng = Rng::new(seed);
    }

    /// The application asks for a connection.
    pub fn begin(&mut self) {
        self.wait = self.connected_before;
    }

    /// How long to wait before the next attempt (`Duration::ZERO`: try
    /// now), or `None` once the attempts are used up.
    pub fn next_wait(&mut self) -> Option<Duration> {
        let wait = std::mem::replace(&mut self.wait, true);
        if !wait {
            return Some(Duration::ZERO);
        }
        self.backoff.next_delay(&mut self.rng)
    }

    /// A handshake completed: the schedule starts over.
    pub fn connected(&mut self) {
        self.backoff.reset();
        self.connected_before = true;
    }

    /// Delays handed out since the last successful handshake.
    pub fn attempts(&self) -> u32 {
        self.backoff.attempts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SeedSource;

    #[test]
    fn reconnecting_tries_at_once_then_backs_off_and_starts_over() {
        let backoff = Backoff::new()
            .with_initial(Duration::from_millis(10))
            .with_jitter(Jitter::None)
            .with_max_attempts(Some(2));
        let mut plan = Reconnecting::new(backoff, SeedSource::Fixed(1));
        plan.begin();
        assert_eq!(plan.next_wait(), Some(Duration::ZERO));
        assert_eq!(plan.next_wait(), Some(Duration::from_millis(10)));
        assert_eq!(plan.next_wait(), Some(Duration::from_millis(20)));
        assert_eq!(plan.next_wait(), None);
        plan.connected();
        assert_eq!(plan.attempts(), 0);
        // After a loss the first attempt waits.
        plan.begin();
        assert_eq!(plan.next_wait(), Some(Duration::from_millis(10)));
    }

    fn rng() -> Rng {
        Rng::new(SeedSource::Fixed(7))
    }

    #[test]
    fn defaults() {
        let backoff = Backoff::new();
        assert_eq!(backoff.initial, Duration::from_millis(500));
        assert_eq!(backoff.factor, 2.0);
        assert_eq!(backoff.max_delay, Duration::from_secs(30));
        assert_eq!(backoff.jitter, Jitter::Equal);
        assert_eq!(backoff.max_attempts, None);
        assert_eq!(backoff.attempts(), 0);
        assert_eq!(Backoff::default(), backoff);
    }

    #[test]
    fn no_jitter_grows_then_caps() {
        let mut rng = rng();
        let mut backoff = Backoff::new().with_jitter(Jitter::None);
        let delays: Vec<u64> = (0..10)
            .map(|_| backoff.next_delay(&mut rng).expect("unlimited").as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
        );
        assert_eq!(backoff.attempts(), 10);
    }

    #[test]
    fn equal_jitter_within_bounds() {
        let mut rng = rng();
        let mut backoff = Backoff::new();
        let mut previous_low = Duration::ZERO;
        for attempt in 0..40 {
            let scheduled = backoff.scheduled(attempt);
            assert!(scheduled >= previous_low, "schedule grows");
            previous_low = scheduled;
            let delay = backoff.next_delay(&mut rng).expect("unlimited");
            assert!(delay >= scheduled / 2 && delay <= scheduled, "{delay:?}");
            assert!(delay <= Duration::from_secs(30));
        }
    }

    #[test]
    fn full_jitter_within_bounds_and_varies() {
        let mut rng = rng();
        let mut backoff = Backoff::new()
            .with_jitter(Jitter::Full)
            .with_initial(Duration::from_secs(1))
            .with_factor(1.0);
        let delays: Vec<Duration> = (0..50)
            .map(|_| backoff.next_delay(&mut rng).expect("unlimited"))
            .collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(delays.iter().any(|d| *d < Duration::from_millis(500)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(500)));
    }

    #[test]
    fn fixed_seed_replays() {
        let run = || {
            let mut rng = rng();
            let mut backoff = Backoff::new();
            (0..8)
                .map(|_| backoff.next_delay(&mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn exhausts_and_resets() {
        let mut rng = rng();
        let mut backoff = Backoff::new()
            .with_jitter(Jitter::None)
            .with_max_attempts(Some(3));
        assert_eq!(
            backoff.next_delay(&mut rng),
            Some(Duration::from_millis(500))
        );
        assert_eq!(backoff.next_delay(&mut rng), Some(Duration::from_secs(1)));
        assert_eq!(backoff.next_delay(&mut rng), Some(Duration::from_secs(2)));
        assert_eq!(backoff.next_delay(&mut rng), None);
        assert_eq!(backoff.next_delay(&mut rng), None);
        assert_eq!(backoff.attempts(), 3);
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        assert_eq!(
            backoff.next_delay(&mut rng),
            Some(Duration::from_millis(500))
        );
        let mut none = Backoff::new().with_max_attempts(Some(0));
        assert_eq!(none.next_delay(&mut rng), None);
    }

    #[test]
    fn extreme_settings_do_not_panic() {
        let mut rng = rng();
        let mut huge = Backoff::new()
            .with_initial(Duration::MAX)
            .with_max_delay(Duration::MAX)
            .with_factor(f64::INFINITY)
            .with_jitter(Jitter::Full);
        for _ in 0..3 {
            assert!(huge.next_delay(&mut rng).is_some());
        }
        let mut zero = Backoff::new()
            .with_initial(Duration::ZERO)
            .with_factor(f64::INFINITY)
            .with_jitter(Jitter::None);
        // Zero times infinity is NaN: treated as the cap.
        assert_eq!(zero.next_delay(&mut rng), Some(Duration::ZERO));
        assert_eq!(zero.next_delay(&mut rng), Some(Duration::from_secs(30)));
        let mut nan = Backoff::new()
            .with_factor(f64::NAN)
            .with_jitter(Jitter::None);
        assert_eq!(nan.next_delay(&mut rng), Some(Duration::from_millis(500)));
        assert_eq!(nan.next_delay(&mut rng), Some(Duration::from_millis(500)));
        let mut many = Backoff::new().with_jitter(Jitter::None);
        many.attempts = u32::MAX;
        assert_eq!(many.next_delay(&mut rng), Some(Duration::from_secs(30)));
        assert_eq!(many.attempts(), u32::MAX);
    }
}
