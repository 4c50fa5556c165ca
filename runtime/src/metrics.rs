//! Process-wide counters, for dashboards and leak checks.
//!
//! They count what every runtime and every adapter in the process does
//! together (a tokio server and a smol client in one process add up), and
//! cost one atomic operation per connection opened and closed.

use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// WebSocket connections alive in this process, client and server side:
/// counted from the end of the handshake (when the connection's driver
/// task is created) until that task has ended and released the transport.
///
/// A connection that closed, failed or timed out leaves the count once its
/// driver has finished, so after the peers of a server are gone this goes
/// back to what it was; a count that keeps growing under a steady load is a
/// leak. Server-Sent Events streams and plain HTTP requests are not
/// WebSocket connections and are not counted (see
/// [`Server::active`](crate::Server::active) for every request a
/// [`serve`](crate::serve) loop is handling).
pub fn live_connections() -> usize {
    LIVE_CONNECTIONS.load(Ordering::Relaxed)
}

/// Counts one live connection while it exists (held by the driver).
#[derive(Debug)]
pub(crate) struct LiveConnection(());

impl LiveConnection {
    pub(crate) fn new() -> LiveConnection {
        LIVE_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        LiveConnection(())
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        LIVE_CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    }
}
