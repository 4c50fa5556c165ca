//! Admission control: the connection cap and graceful shutdown.
//!
//! [`Admission`] counts live connections with atomics, so adapters share it
//! by cloning (it is an `Arc` inside) across accept loops and tasks without a
//! mutex. It is still sans-IO: it never touches a socket, it only decides.
//!
//! Per accepted stream, before the handshake: call [`Admission::try_admit`].
//! On `Ok(permit)`, keep the [`Permit`] alive for as long as the connection
//! lives; dropping it frees the slot. On `Err(rejected)`, write the encoded
//! [`Rejected::response`] (a `503` with `Retry-After`) and close the stream.
//!
//! For graceful shutdown: call [`Admission::begin_shutdown`] (new connections
//! are then rejected), ask live connections to close, and wait until
//! [`Admission::is_drained`] (or a deadline of your own).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::http::HttpResponse;

#[derive(Debug)]
struct Shared {
    max: usize,
    active: AtomicUsize,
    shutting_down: AtomicBool,
}

/// A connection cap shared by every accept loop of a server.
///
/// Cloning is cheap and every clone counts against the same cap.
#[derive(Clone, Debug)]
pub struct Admission {
    shared: Arc<Shared>,
}

impl Admission {
    /// An admission counter allowing at most `max` connections at once.
    /// `max == 0` rejects every connection.
    pub fn new(max: usize) -> Admission {
        Admission {
            shared: Arc::new(Shared {
                max,
                active: AtomicUsize::new(0),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    /// Claims a slot for a new connection. Call when a stream is accepted,
    /// before reading its handshake, and keep the returned [`Permit`] with the
    /// connection.
    ///
    /// # Errors
    ///
    /// [`Rejected::ShuttingDown`] after [`Admission::begin_shutdown`], or
    /// [`Rejected::Full`] when `max` connections are live. Answer with
    /// [`Rejected::response`] and close the stream.
    pub fn try_admit(&self) -> Result<Permit, Rejected> {
        if self.is_shutting_down() {
            return Err(Rejected::ShuttingDown);
        }
        let max = self.shared.max;
        self.shared
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < max).then_some(active + 1)
            })
            .map_err(|_| Rejected::Full { max })?;
        Ok(Permit {
            shared: Arc::clone(&self.shared),
        })
    }

    /// How many connections hold a [`Permit`] right now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// The cap given to [`Admission::new`].
    pub fn max(&self) -> usize {
        self.shared.max
    }

    /// Whether the cap is reached, so the next [`Admission::try_admit`] would
    /// fail unless a connection ends first. Useful to pause accepting.
    pub fn is_full(&self) -> bool {
        self.active() >= self.shared.max
    }

    /// Stops admitting: every later [`Admission::try_admit`] fails with
    /// [`Rejected::ShuttingDown`]. Live connections keep their permits; close
    /// them and wait for [`Admission::is_drained`]. Cannot be undone.
    pub fn begin_shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Release);
    }

    /// Whether [`Admission::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Ordering::Acquire)
    }

    /// Whether shutdown has begun and every permit has been dropped: the
    /// server can exit.
    pub fn is_drained(&self) -> bool {
        self.is_shutting_down() && self.active() == 0
    }
}

/// Proof that a connection was admitted; frees its slot when dropped.
///
/// Hold it for the whole life of the connection (move it into the task that
/// drives the connection).
#[derive(Debug)]
#[must_use = "dropping the permit frees the slot at once"]
pub struct Permit {
    shared: Arc<Shared>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why [`Admission::try_admit`] refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// The connection cap is reached.
    #[error("connection limit of {max} reached")]
    Full {
        /// The configured cap.
        max: usize,
    },
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
}

impl Rejected {
    /// The response to write before closing the stream: `503 Service
    /// Unavailable` with a `Retry-After` of `retry_after` in whole seconds
    /// (rounded up, RFC 9110 §10.2.3) and a short plain-text body;
    /// [`HttpResponse::encode`] adds `Content-Length` and `Connection: close`.
    pub fn response(&self, retry_after: Duration) -> HttpResponse {
        let body = match self {
            Rejected::Full { .. } => "server is at its connection limit\n",
            Rejected::ShuttingDown => "server is shutting down\n",
        };
        let seconds = retry_after
            .as_secs()
            .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
        HttpResponse::text(503, body)
            .header("Retry-After", &seconds.to_string())
            .expect("a decimal Retry-After is a valid, unreserved header")
    }
}

/// Settings of an adapter's `serve` loop.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Connections whose handler runs at once; more get `503`. Default 10 000.
    pub max_connections: usize,
    /// How long graceful shutdown waits for handlers. Default 5 s.
    pub shutdown_timeout: Duration,
    /// `Retry-After` sent with a `503`. Default 1 s.
    pub retry_after: Duration,
    /// The WebSocket configuration of every connection.
    pub config: Arc<Config>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections: 10_000,
            shutdown_timeout: Duration::from_secs(5),
            retry_after: Duration::from_secs(1),
            config: Arc::new(Config::default()),
        }
    }
}

impl ServeConfig {
    /// Sets [`ServeConfig::max_connections`].
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets [`ServeConfig::shutdown_timeout`].
    pub fn with_shutdown_timeout(mut self, after: Duration) -> Self {
        self.shutdown_timeout = after;
        self
    }

    /// Sets [`ServeConfig::retry_after`].
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Sets [`ServeConfig::config`].
    pub fn with_config(mut self, config: impl Into<Arc<Config>>) -> Self {
        self.config = config.into();
        self
    }

    /// The cap on connections being refused at once: refusals are cheap
    /// but not free.
    pub fn refusal_limit(&self) -> usize {
        self.max_connections.clamp(16, 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_cap() {
        let admission = Admission::new(2);
        assert_eq!(admission.max(), 2);
        let a = admission.try_admit().expect("first");
        let b = admission.try_admit().expect("second");
        assert_eq!(admission.active(), 2);
        assert!(admission.is_full());
        assert_eq!(
            admission.try_admit().map(drop),
            Err(Rejected::Full { max: 2 })
        );
        drop(a);
        assert_eq!(admission.active(), 1);
        assert!(!admission.is_full());
        let c = admission.try_admit().expect("slot freed");
        drop((b, c));
        assert_eq!(admission.active(), 0);
    }

    #[test]
    fn zero_cap_rejects_all() {
        let admission = Admission::new(0);
        assert!(admission.is_full());
        assert!(admission.try_admit().is_err());
    }

    #[test]
    fn clones_share_the_count() {
        let admission = Admission::new(1);
        let other = admission.clone();
        let _permit = admission.try_admit().expect("first");
        assert_eq!(other.active(), 1);
        assert!(other.try_admit().is_err());
    }

    #[test]
    fn shutdown_stops_admissions_and_drains() {
        let admission = Admission::new(10);
        let permit = admission.try_admit().expect("admitted");
        assert!(!admission.is_drained());
        admission.begin_shutdown();
        assert!(admission.is_shutting_down());
        assert_eq!(admission.try_admit().map(drop), Err(Rejected::ShuttingDown));
        assert!(!admission.is_drained());
        drop(permit);
        assert!(admission.is_drained());
    }

    #[test]
    fn rejection_response() {
        let response = Rejected::Full { max: 1 }
            .response(Duration::from_millis(1500))
            .encode(false);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut parsed = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head_len) = parsed.parse(&response).expect("valid HTTP")
        else {
            panic!("incomplete response head");
        };
        assert_eq!(parsed.code, Some(503));
        assert_eq!(parsed.reason, Some("Service Unavailable"));
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| std::str::from_utf8(h.value).expect("ascii"))
        };
        assert_eq!(header("retry-after"), Some("2"));
        assert_eq!(header("connection"), Some("close"));
        let body = &response[head_len..];
        assert_eq!(
            header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(body, b"server is at its connection limit\n");
        let response = Rejected::ShuttingDown
            .response(Duration::from_secs(5))
            .encode(false);
        let text = String::from_utf8(response).expect("ascii");
        assert!(text.contains("\r\nRetry-After: 5\r\n"));
        assert!(text.ends_with("\r\n\r\nserver is shutting down\n"));
    }

    #[test]
    fn concurrent_admissions_never_exceed_the_cap() {
        const CAP: usize = 8;
        let admission = Admission::new(CAP);
        let peak = Arc::new(AtomicUsize::new(0));
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let admission = admission.clone();
                let peak = Arc::clone(&peak);
                let admitted = Arc::clone(&admitted);
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for round in 0..2_000 {
                        if let Ok(permit) = admission.try_admit() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            peak.fetch_max(admission.active(), Ordering::Relaxed);
                            held.push(permit);
                        }
                        if round % 3 == 0 {
                            held.clear();
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread finished");
        }
        assert!(peak.load(Ordering::Relaxed) <= CAP);
        assert!(admitted.load(Ordering::Relaxed) >= CAP);
        assert_eq!(admission.active(), 0);
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Admission>();
        check::<Permit>();
    }
}
