//! Connection and handshake configuration.

use std::time::{Duration, Instant};

/// Where a connection's random generator gets its seed.
///
/// The config holds a seed source, never generator state: every connection
/// built from it seeds its own generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SeedSource {
    /// Seed from the operating system's entropy (the default; RFC 6455 §5.3
    /// wants unpredictable mask keys).
    #[default]
    Os,
    /// A fixed seed, so tests replay byte for byte. Do not use in production.
    Fixed(u64),
}

/// Limits, timeouts and behaviour of a connection and its handshake.
///
/// Built with [`Config::default`] and the `with_*` methods; fields are public
/// for reading.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest message accepted, counted after extensions (decompression).
    /// Default 1 MiB, like Python `websockets`.
    pub max_message_size: usize,
    /// Largest single frame accepted. Default 1 MiB. Frames of a streamed
    /// message are not held whole, so only
    /// [`Config::max_stream_size`] limits them.
    pub max_frame_size: usize,
    /// Most fragments accepted in one message. Default: no cap
    /// (`usize::MAX`). Fragments need no cap of their own: each one after
    /// the first counts [`FRAGMENT_COST`](crate::connection::FRAGMENT_COST)
    /// bytes against [`Config::max_message_size`], so a flood of tiny or
    /// empty continuation frames ends at the message limit.
    pub max_fragments: usize,
    /// Answer pings with pongs automatically. Default on.
    pub auto_pong: bool,
    /// Queued output above which senders wait (and `try_send` reports
    /// `Full`); reading goes on. Default 64 KiB.
    pub write_buffer_limit: usize,
    /// Split outgoing data messages into frames of at most this many payload
    /// bytes. Default `None` (one frame per message).
    pub fragment_size: Option<usize>,
    /// Send a ping when the peer has been silent this long. Default `None`.
    pub heartbeat_interval: Option<Duration>,
    /// Fail the connection with 1011 when nothing arrives for this long
    /// (time with reads paused because the application has not taken its
    /// events does not count; time with output over the write limit does).
    /// Default `None`.
    pub idle_timeout: Option<Duration>,
    /// How long to wait for the peer to finish a close handshake. Default 10 s.
    pub close_timeout: Duration,
    /// How long the peer may leave our output unread. Once the transport
    /// accepted no byte of pending output for this long, the connection
    /// queues a close frame with 1011 and fails with
    /// [`TimeoutKind::Write`](crate::TimeoutKind::Write); the driver reports
    /// its writes with [`Connection::record_output`](crate::Connection::record_output).
    /// Default 30 s.
    pub write_timeout: Duration,
    /// How long a peer may take to complete the opening handshake: for a
    /// client the whole connect (TCP connect, TLS handshake and HTTP upgrade
    /// together, see [`Config::connect_deadline`]). Default 10 s.
    pub handshake_timeout: Duration,
    /// Cap on the HTTP head of the handshake, in bytes. Default 8 KiB.
    pub max_head_size: usize,
    /// Cap on header lines in the HTTP head. Default 64.
    pub max_headers: usize,
    /// Seed source for mask keys and handshake keys.
    pub seed: SeedSource,
    /// permessage-deflate (RFC 7692): `Some` to offer it (client) or accept
    /// it (server). Default on, memory-first (no context takeover, see
    /// [`crate::deflate`]).
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::deflate::DeflateConfig>,
    /// Deliver data messages as [`Event::Chunk`](crate::Event::Chunk)s as
    /// their bytes arrive instead of whole (a connection can switch with
    /// [`Connection::set_streaming`](crate::Connection::set_streaming); a
    /// switch applies from the next message). Text is checked for UTF-8 and
    /// compressed messages are inflated piece by piece; reading pauses while
    /// the application holds 64 KiB of unread chunks, so a connection holds
    /// about one read plus that much, whatever the message size. Default off.
    pub stream_messages: bool,
    /// Largest streamed message accepted, counted after decompression
    /// (streamed messages are not held, so [`Config::max_message_size`] and
    /// [`Config::max_frame_size`] do not apply to them). Default: no limit.
    pub max_stream_size: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_size: 1 << 20,
            max_frame_size: 1 << 20,
            max_fragments: usize::MAX,
            auto_pong: true,
            write_buffer_limit: 64 << 10,
            fragment_size: None,
            heartbeat_interval: None,
            idle_timeout: None,
            close_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_head_size: 8 << 10,
            max_headers: 64,
            seed: SeedSource::Os,
            #[cfg(feature = "deflate")]
            deflate: Some(crate::deflate::DeflateConfig::default()),
            stream_messages: false,
            max_stream_size: u64::MAX,
        }
    }
}

impl Config {
    /// Sets [`Config::max_message_size`] (and raises the frame limit to match if it was larger).
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
    /// Sets [`Config::max_frame_size`].
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }
    /// Sets [`Config::max_fragments`].
    pub fn with_max_fragments(mut self, count: usize) -> Self {
        self.max_fragments = count;
        self
    }
    /// Sets [`Config::auto_pong`].
    pub fn with_auto_pong(mut self, on: bool) -> Self {
        self.auto_pong = on;
        self
    }
    /// Sets [`Config::write_buffer_limit`].
    pub fn with_write_buffer_limit(mut self, bytes: usize) -> Self {
        self.write_buffer_limit = bytes;
        self
    }
    /// Sets [`Config::fragment_size`].
    pub fn with_fragment_size(mut self, bytes: Option<usize>) -> Self {
        self.fragment_size = bytes.map(|b| b.max(1));
        self
    }
    /// Sets [`Config::heartbeat_interval`].
    pub fn with_heartbeat_interval(mut self, every: Option<Duration>) -> Self {
        self.heartbeat_interval = every;
        self
    }
    /// Sets [`Config::idle_timeout`].
    pub fn with_idle_timeout(mut self, after: Option<Duration>) -> Self {
        self.idle_timeout = after;
        self
    }
    /// Sets [`Config::close_timeout`].
    pub fn with_close_timeout(mut self, after: Duration) -> Self {
        self.close_timeout = after;
        self
    }
    /// Sets [`Config::write_timeout`]: how long pending output may go
    /// without the transport accepting a byte before the connection fails.
    pub fn with_write_timeout(mut self, after: Duration) -> Self {
        self.write_timeout = after;
        self
    }
    /// Sets [`Config::handshake_timeout`].
    pub fn with_handshake_timeout(mut self, after: Duration) -> Self {
        self.handshake_timeout = after;
        self
    }
    /// Sets [`Config::max_head_size`].
    pub fn with_max_head_size(mut self, bytes: usize) -> Self {
        self.max_head_size = bytes;
        self
    }
    /// Sets [`Config::max_headers`].
    pub fn with_max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }
    /// Sets [`Config::seed`].
    pub fn with_seed(mut self, seed: SeedSource) -> Self {
        self.seed = seed;
        self
    }
    /// Sets [`Config::deflate`]: `None` disables permessage-deflate.
    #[cfg(feature = "deflate")]
    pub fn with_deflate(mut self, deflate: Option<crate::deflate::DeflateConfig>) -> Self {
        self.deflate = deflate;
        self
    }

    /// Sets [`Config::stream_messages`].
    pub fn with_stream_messages(mut self, on: bool) -> Self {
        self.stream_messages = on;
        self
    }
    /// Sets [`Config::max_stream_size`].
    pub fn with_max_stream_size(mut self, bytes: u64) -> Self {
        self.max_stream_size = bytes;
        self
    }

    /// The instant by which a client connect started at `started` must have
    /// finished: `started +` [`Config::handshake_timeout`]. The one deadline
    /// covers the TCP connect, the TLS handshake and the HTTP upgrade
    /// together, so a slow step early on leaves less time for the later ones.
    ///
    /// Call it once when the connect starts (before resolving or dialing),
    /// give the same instant to every step, and pass it to
    /// [`ClientHandshake::set_deadline`](crate::ClientHandshake::set_deadline)
    /// for the upgrade, whose `poll_timeout` then reports it.
    pub fn connect_deadline(&self, started: Instant) -> Instant {
        started + self.handshake_timeout
    }
}
