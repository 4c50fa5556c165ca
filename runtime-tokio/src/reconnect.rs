//! An opt-in reconnecting client: the core's [`Backoff`] schedule (time and
//! randomness as inputs) with tokio's timer.
//!
//! ```no_run
//! # async fn run() -> Result<(), wavecast_tokio::Error> {
//! let mut client = wavecast_tokio::Reconnect::new("ws://127.0.0.1:9000/chat")?;
//! loop {
//!     // Waits out the backoff after a loss; errors once attempts run out.
//!     let (mut ws, _) = client.connect().await?;
//!     while let Some(Ok(message)) = ws.recv().await {
//!         println!("{message:?}");
//!     }
//! }
//! # }
//! ```

use std::sync::Arc;

use wavecast_core::handshake::ClientRequest;
use wavecast_core::{Backoff, Config, Reconnecting};

use crate::client::{connect_with, Response};
use crate::error::Error;
use crate::websocket::WebSocket;

/// Connects to one URL again and again, waiting per the [`Backoff`] schedule
/// between attempts: by default 500 ms doubling up to 30 s, equal jitter,
/// no limit on attempts (see [`Backoff`] for the table; set a limit with
/// [`Backoff::with_max_attempts`]).
#[derive(Debug)]
pub struct Reconnect {
    url: String,
    request: ClientRequest,
    config: Arc<Config>,
    plan: Reconnecting,
}

impl Reconnect {
    /// A reconnecting client for `url` with the default config and schedule.
    ///
    /// # Errors
    ///
    /// [`Error::Handshake`] when the URL cannot be used.
    pub fn new(url: &str) -> Result<Reconnect, Error> {
        let (request, _) = ClientRequest::from_url(url)?;
        let config = Arc::new(Config::default());
        Ok(Reconnect {
            url: url.to_owned(),
            request,
            plan: Reconnecting::new(Backoff::new(), config.seed),
            config,
        })
    }

    /// Sets the schedule.
    pub fn with_backoff(mut self, backoff: Backoff) -> Reconnect {
        self.plan.set_backoff(backoff);
        self
    }

    /// Sets the connection config (its seed also drives the jitter).
    pub fn with_config(mut self, config: impl Into<Arc<Config>>) -> Reconnect {
        self.config = config.into();
        self.plan.reseed(self.config.seed);
        self
    }

    /// Sets the request (subprotocols, headers) sent on every attempt.
    pub fn with_request(mut self, request: ClientRequest) -> Reconnect {
        self.request = request;
        self
    }

    /// Connects. The first call tries at once; each later call (after the
    /// previous connection was lost) and each failed attempt first waits
    /// the next backoff delay. The schedule starts over once a handshake
    /// completes.
    ///
    /// # Errors
    ///
    /// The last attempt's error, once the schedule's attempts are used up.
    pub async fn connect(&mut self) -> Result<(WebSocket, Response), Error> {
        self.plan.begin();
        let mut last_error = None;
        loop {
            match self.plan.next_wait() {
                Some(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
                Some(_) => {}
                None => return Err(last_error.unwrap_or(Error::Eof)),
            }
            match connect_with(&self.url, self.request.clone(), self.config.clone()).await {
                Ok(connected) => {
                    self.plan.connected();
                    return Ok(connected);
                }
                Err(e) => last_error = Some(e),
            }
        }
    }

    /// Delays handed out since the last successful handshake.
    pub fn attempts(&self) -> u32 {
        self.plan.attempts()
    }
}
