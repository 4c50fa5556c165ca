//! An opt-in reconnecting client: the core's [`Reconnecting`] schedule
//! (time and randomness as inputs) with the runtime's timer. Each attempt
//! is bounded by the connect deadline (TCP, TLS and upgrade together).

use std::marker::PhantomData;
use std::sync::Arc;

use wavecast_core::handshake::ClientRequest;
use wavecast_core::{Backoff, Config, Error, Message, Reconnecting, StreamPosition};

use crate::client::{connect_with, Response};
use crate::runtime::{sleep, Runtime};
use crate::websocket::WebSocket;

/// Connects to one URL again and again, waiting per the [`Backoff`] schedule
/// between attempts: by default 500 ms doubling up to 30 s, equal jitter,
/// no limit on attempts (see [`Backoff`] for the table; set a limit with
/// [`Backoff::with_max_attempts`]).
///
/// ```no_run
/// # async fn run<R: wavecast_runtime::Runtime>() -> Result<(), wavecast_runtime::Error> {
/// // With an adapter: `wavecast_tokio::Reconnect::new(url)`.
/// let mut client = wavecast_runtime::Reconnect::<R>::new("ws://127.0.0.1:9000/chat")?;
/// loop {
///     // Waits out the backoff after a loss; errors once attempts run out.
///     let (mut ws, _) = client.connect().await?;
///     while let Some(Ok(message)) = ws.recv().await {
///         println!("{message:?}");
///     }
/// }
/// # }
/// ```
pub struct Reconnect<R: Runtime> {
    url: String,
    request: ClientRequest,
    config: Arc<Config>,
    plan: Reconnecting,
    resume: Option<Resume>,
    /// The last position seen, sent on the next connect.
    position: Option<StreamPosition>,
    runtime: PhantomData<fn() -> R>,
}

/// Reads a position out of a received message.
type PositionOf = Box<dyn Fn(&Message) -> Option<StreamPosition> + Send + Sync>;

/// How positions are read from messages and sent back.
struct Resume {
    param: String,
    position_of: PositionOf,
}

impl<R: Runtime> std::fmt::Debug for Reconnect<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnect")
            .field("url", &self.url)
            .field("plan", &self.plan)
            .field("resume", &self.resume.as_ref().map(|r| &r.param))
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Reconnect<R> {
    /// A reconnecting client whose connections run on runtime `R`.
    pub fn new(url: &str) -> Result<Reconnect<R>, Error> {
        let (request, _) = ClientRequest::from_url(url)?;
        let config = Arc::new(Config::default());
        Ok(Reconnect {
            url: url.to_owned(),
            request,
            plan: Reconnecting::new(Backoff::new(), config.seed),
            config,
            resume: None,
            position: None,
            runtime: PhantomData,
        })
    }

    /// Sets the schedule.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.plan.set_backoff(backoff);
        self
    }

    /// Sets the connection config (its seed also drives the jitter).
    pub fn with_config(mut self, config: impl Into<Arc<Config>>) -> Self {
        self.config = config.into();
        self.plan.reseed(self.config.seed);
        self
    }

    /// Sets the request (subprotocols, headers) sent on every attempt.
    pub fn with_request(mut self, request: ClientRequest) -> Self {
        self.request = request;
        self
    }

    /// Resumes rooms with history ([`StreamRoom`](crate::StreamRoom)):
    /// [`Reconnect::saw`] reads a position out of each message received
    /// with `position_of` (the format is the server's
    /// [`Envelope`](crate::Envelope)'s), and every connect after one was
    /// seen adds `<param>=<position>` to the URL's query, so the server
    /// replays what was missed.
    pub fn with_resume(
        mut self,
        param: &str,
        position_of: impl Fn(&Message) -> Option<StreamPosition> + Send + Sync + 'static,
    ) -> Self {
        self.resume = Some(Resume {
            param: param.to_owned(),
            position_of: Box::new(position_of),
        });
        self
    }

    /// Records the position `message` carries (see
    /// [`Reconnect::with_resume`]); call it for every message received.
    /// Returns the position it found.
    pub fn saw(&mut self, message: &Message) -> Option<StreamPosition> {
        let position = (self.resume.as_ref()?.position_of)(message)?;
        self.position = Some(position);
        Some(position)
    }

    /// The position the next connect resumes from.
    pub fn position(&self) -> Option<StreamPosition> {
        self.position
    }

    /// Sets the position to resume from (for one stored across restarts).
    pub fn set_position(&mut self, position: Option<StreamPosition>) {
        self.position = position;
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
                Some(delay) if !delay.is_zero() => sleep::<R>(delay).await,
                Some(_) => {}
                None => return Err(last_error.unwrap_or(Error::Eof)),
            }
            let config = self.config.clone();
            let request = match (&self.resume, self.position) {
                (Some(resume), Some(position)) => self
                    .request
                    .clone()
                    .with_query_param(&resume.param, &position.to_string())?,
                _ => self.request.clone(),
            };
            match connect_with::<R>(&self.url, request, config).await {
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
