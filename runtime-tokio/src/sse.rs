//! The Server-Sent Events responder: given a request, writes the `200
//! text/event-stream` head, then events from the application or from a
//! [`Room`](crate::Room), with comment keep-alives while the stream is quiet.
//!
//! Text messages published to a room go out as `data:` events with `id:`
//! set to the room's sequence number, encoded once per message and shared
//! by every subscriber ([`RoomMessage::sse_bytes`]). Binary messages have no
//! SSE form and are not sent to SSE subscribers. A slow reader lags like a
//! WebSocket member: it takes the next message only once the previous one
//! was written, and the room's lag policy applies.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use wavecast_core::sse::{answer, keep_alive, room_event_bytes};
use wavecast_core::{SseEvent, Tracker};

pub use wavecast_core::{SseConfig, SseEnd};

use crate::broadcast::{RoomEvent, Subscription};
use crate::error::Error;
use crate::server::Incoming;

/// An open event stream to one client.
#[derive(Debug)]
pub struct SseStream<S> {
    stream: S,
    last_event_id: Option<String>,
    keep_alive: Duration,
    tracker: Option<Tracker>,
}

impl<S> SseStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Answers `incoming` with the `200 text/event-stream` head.
    ///
    /// A request with a body gets `413` instead and
    /// [`Error::Rejected`]`(413)`.
    pub async fn respond(incoming: Incoming<S>, config: SseConfig) -> Result<SseStream<S>, Error> {
        let head = match answer(incoming.request()) {
            Ok(head) => head,
            Err(response) => {
                let status = response.status();
                incoming.respond(response).await?;
                return Err(Error::Rejected(status));
            }
        };
        let tracker = incoming.tracker().cloned();
        let (mut stream, request) = incoming.into_parts();
        stream.write_all(&head).await?;
        stream.flush().await?;
        Ok(SseStream {
            stream,
            last_event_id: request.last_event_id().map(str::to_owned),
            keep_alive: config.keep_alive,
            tracker,
        })
    }

    /// The client's `Last-Event-ID` header: the id of the last event it saw
    /// before reconnecting, for the application to resume from.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Writes one event.
    pub async fn send(&mut self, event: &SseEvent) -> Result<(), Error> {
        self.write(&event.encode()).await
    }

    /// Writes a comment keep-alive.
    pub async fn send_keep_alive(&mut self) -> Result<(), Error> {
        self.write(&keep_alive()).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Forwards a room subscription to the client — text messages as
    /// events, keep-alives when quiet, a `: skipped N` comment after lag
    /// under skip-ahead — until the client leaves, the subscription is
    /// evicted, or the server shuts down.
    pub async fn forward(&mut self, subscription: &mut Subscription) -> SseEnd {
        let tracker = self.tracker.clone();
        let mut quiet = pin!(tokio::time::sleep(self.keep_alive));
        loop {
            let step = {
                let mut next = pin!(subscription.recv());
                let stream = &mut self.stream;
                poll_fn(|cx| {
                    if tracker
                        .as_ref()
                        .is_some_and(|t| t.poll_shutting_down(cx).is_ready())
                    {
                        return Poll::Ready(Step::Shutdown);
                    }
                    // The client sends nothing after its request; a read
                    // that ends means it went away.
                    let mut scratch = [0u8; 256];
                    loop {
                        let mut buf = ReadBuf::new(&mut scratch);
                        match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
                            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                                return Poll::Ready(Step::Gone)
                            }
                            Poll::Ready(Ok(())) => continue,
                            Poll::Ready(Err(_)) => return Poll::Ready(Step::Gone),
                            Poll::Pending => break,
                        }
                    }
                    if let Poll::Ready(event) = next.as_mut().poll(cx) {
                        return Poll::Ready(Step::Event(event));
                    }
                    if quiet.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Step::Quiet);
                    }
                    Poll::Pending
                })
                .await
            };
            let written = match step {
                Step::Shutdown => return SseEnd::Shutdown,
                Step::Gone => return SseEnd::Disconnected,
                Step::Quiet => self.send_keep_alive().await,
                Step::Event(event) => match room_event_bytes(&event) {
                    Ok(Some(bytes)) => self.write(&bytes).await,
                    Ok(None) => Ok(()),
                    Err(end) => {
                        let _ = self.stream.shutdown().await;
                        return end;
                    }
                },
            };
            if written.is_err() {
                return SseEnd::Disconnected;
            }
            quiet
                .as_mut()
                .reset(tokio::time::Instant::now() + self.keep_alive);
        }
    }

    /// The underlying stream, to end it yourself.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

enum Step {
    Shutdown,
    Gone,
    Quiet,
    Event(RoomEvent),
}
