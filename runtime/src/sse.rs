//! The Server-Sent Events responder: given a request, writes the `200
//! text/event-stream` head, then events from the application or from a
//! [`Room`](crate::Room), with comment keep-alives while the stream is quiet.
//!
//! Text messages published to a room go out as `data:` events with `id:`
//! set to the room's sequence number, encoded once per message and shared
//! by every subscriber ([`RoomMessage::sse_bytes`](crate::RoomMessage::sse_bytes)).
//! Binary messages have no SSE form and are not sent to SSE subscribers. A
//! slow reader lags like a WebSocket member: it takes the next message only
//! once the previous one was written, and the room's lag policy applies.
//!
//! The decisions are the core's [`SseSession`]: when a keep-alive is due,
//! when a client that stopped reading is dropped
//! ([`SseConfig::write_timeout`]), how long queued events are flushed after
//! a shutdown. This module reads, writes and sleeps.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use wavecast_core::sse::{room_event_bytes, SseSession};
use wavecast_core::{Error, SseConfig, SseEnd, SseEvent, StreamPosition};

use crate::backplane::{StreamEvent, StreamSubscription};
use crate::broadcast::Subscription;
use crate::runtime::{Alarm, Runtime, Transport};
use crate::server::Incoming;
use crate::shared::Watch;

/// Where [`SseStream`] takes its events from.
trait Source {
    /// The next event's bytes (`None`: nothing to write for it), or why
    /// the stream must end.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SseEnd>>;
}

impl<R: Runtime> Source for Subscription<R> {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SseEnd>> {
        self.poll_recv(cx).map(|event| room_event_bytes(&event))
    }
}

impl<R: Runtime> Source for StreamSubscription<R> {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SseEnd>> {
        self.poll_recv(cx).map(|event| event.sse_bytes())
    }
}

impl StreamEvent {
    /// The event's SSE form, as [`SseStream::forward_stream`] writes it (for
    /// servers that write event streams themselves, such as through hyper):
    /// a publication's shared bytes with its position as `id:` (`None` for
    /// binary ones), the catch-up notices as events named `recovered` and
    /// `not_recovered` whose `id:` and `data:` are the position, a comment
    /// for a lag; `Err` when the subscriber was evicted.
    pub fn sse_bytes(&self) -> Result<Option<Bytes>, SseEnd> {
        match self {
            StreamEvent::Publication(message) => Ok(message.sse_bytes().cloned()),
            StreamEvent::Recovered(current) => Ok(Some(notice("recovered", *current))),
            StreamEvent::NotRecovered(current) => Ok(Some(notice("not_recovered", *current))),
            StreamEvent::Lagged(n) => room_event_bytes(&wavecast_core::RoomEvent::Lagged(*n)),
            StreamEvent::Evicted(code) => {
                room_event_bytes(&wavecast_core::RoomEvent::Evicted(*code))
            }
        }
    }
}

/// A catch-up notice as an SSE event named `name`, carrying `current`.
fn notice(name: &str, current: StreamPosition) -> Bytes {
    let position = current.to_string();
    SseEvent::data(position.as_str())
        .event(name)
        .id(position)
        .encode()
}

/// An open event stream to one client. Every write is bounded by the
/// stream's write timeout ([`SseConfig::write_timeout`]): a client that
/// stops reading is dropped, and its `serve` admission permit with it.
pub struct SseStream<S, R: Runtime> {
    stream: S,
    session: SseSession,
    /// Output taken from the session and not written yet.
    queue: VecDeque<Bytes>,
    last_event_id: Option<String>,
    /// Set when the request came through `serve`: ends the stream on
    /// graceful shutdown.
    shutdown: Option<Watch>,
    timer: Alarm<R>,
    runtime: PhantomData<fn() -> R>,
}

impl<S, R: Runtime> std::fmt::Debug for SseStream<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream")
            .field("last_event_id", &self.last_event_id)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<S: Transport, R: Runtime> SseStream<S, R> {
    /// Answers `incoming` with the `200 text/event-stream` head.
    ///
    /// A request with a body gets `413` instead and
    /// [`Error::Rejected`]`(413)`.
    pub async fn respond(incoming: Incoming<S, R>, config: SseConfig) -> Result<Self, Error> {
        let session = match SseSession::accept(&config, incoming.request(), R::now()) {
            Ok(session) => session,
            Err(response) => {
                let status = response.status();
                incoming.respond(response).await?;
                return Err(Error::Rejected(status));
            }
        };
        let shutdown = incoming.tracker().map(|t| t.watch());
        // An event-stream client sends nothing after its request head.
        let (stream, request, _leftover) = incoming.into_parts();
        let mut sse = SseStream {
            stream,
            session,
            queue: VecDeque::new(),
            last_event_id: request.last_event_id().map(str::to_owned),
            shutdown,
            timer: Alarm::new(),
            runtime: PhantomData,
        };
        sse.flush().await?;
        Ok(sse)
    }

    /// The client's `Last-Event-ID` header: the id of the last event it saw
    /// before reconnecting, for the application to resume from.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Writes one event; resolves once it is on the wire.
    pub async fn send(&mut self, event: &SseEvent) -> Result<(), Error> {
        self.session.send_event(event)?;
        self.flush().await
    }

    /// Writes a comment keep-alive (the stream sends them by itself while
    /// it waits in [`SseStream::forward`] or [`SseStream::send`]).
    pub async fn send_keep_alive(&mut self) -> Result<(), Error> {
        self.session.send_bytes(wavecast_core::sse::keep_alive())?;
        self.flush().await
    }

    /// Runs the stream until everything queued is written.
    async fn flush(&mut self) -> Result<(), Error> {
        match poll_fn(|cx| self.poll_run(cx, None, true)).await {
            None => Ok(()),
            Some(end) => Err(ended(end)),
        }
    }

    /// Forwards a room subscription as events until the client goes away,
    /// the server shuts down (when the request came through `serve`), the
    /// client stops reading for the write timeout, or the room's lag policy
    /// ends it; keep-alives go out while the room is quiet.
    pub async fn forward(&mut self, subscription: &mut Subscription<R>) -> SseEnd {
        poll_fn(|cx| self.poll_run(cx, Some(&mut *subscription), false))
            .await
            .unwrap_or(SseEnd::Disconnected)
    }

    /// The position the client resumes from: its `Last-Event-ID`, when that
    /// is a position of a room with history (what [`SseStream::forward_stream`]
    /// writes as `id:`).
    pub fn resume_position(&self) -> Option<StreamPosition> {
        self.last_event_id()?.parse().ok()
    }

    /// As [`SseStream::forward`], for a room with history: subscribe with
    /// [`StreamRoom::subscribe`](crate::StreamRoom::subscribe)`(sse.resume_position())`
    /// and a browser's `EventSource` resumes by itself after a reconnect.
    /// Every publication's `id:` is its position; a client that could not
    /// be caught up gets an `event: not_recovered` whose `id:` and `data:`
    /// are the current position (and one that was, an `event: recovered`).
    pub async fn forward_stream(&mut self, subscription: &mut StreamSubscription<R>) -> SseEnd {
        poll_fn(|cx| self.poll_run(cx, Some(&mut *subscription), false))
            .await
            .unwrap_or(SseEnd::Disconnected)
    }

    /// The drive loop of the core's session: read (to notice the client
    /// leave), take the next event while the session wants one, write and
    /// report it, stop when the session is finished, sleep until its
    /// deadline. Ready with `None` once flushed when `until_flushed`; with
    /// the end reason once finished.
    fn poll_run(
        &mut self,
        cx: &mut Context<'_>,
        mut source: Option<&mut dyn Source>,
        until_flushed: bool,
    ) -> Poll<Option<SseEnd>> {
        loop {
            let now = R::now();
            let mut progress = false;
            if self
                .shutdown
                .as_ref()
                .is_some_and(|w| w.poll_shutting_down(cx).is_ready())
            {
                self.session.begin_shutdown(now);
            }
            if self.session.wants_read() {
                let mut scratch = [0u8; 256];
                loop {
                    match Pin::new(&mut self.stream).poll_read(cx, &mut scratch) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            self.drop_output();
                            self.session.receive_eof(now);
                            break;
                        }
                        Poll::Ready(Ok(n)) => self.session.receive(now, &scratch[..n]),
                        Poll::Pending => break,
                    }
                }
            }
            if let Some(sub) = source.as_deref_mut() {
                if self.session.wants_event() {
                    if let Poll::Ready(event) = sub.poll_event(cx) {
                        progress = true;
                        match event {
                            Ok(Some(bytes)) => {
                                let _ = self.session.send_bytes(bytes);
                            }
                            Ok(None) => {}
                            Err(end) => self.session.close(now, end),
                        }
                    }
                }
            }
            let wrote = match self.write_out(cx) {
                Ok(wrote) => wrote,
                Err(_) => {
                    self.drop_output();
                    self.session.receive_eof(now);
                    0
                }
            };
            let pending = !self.queue.is_empty();
            self.session.record_output(R::now(), wrote, pending);
            if self.session.is_finished() {
                if !pending {
                    let _ = Pin::new(&mut self.stream).poll_close(cx);
                }
                self.timer.clear();
                return Poll::Ready(Some(
                    self.session.end_reason().unwrap_or(SseEnd::Disconnected),
                ));
            }
            if until_flushed && !pending && !self.session.has_transmit() {
                return Poll::Ready(None);
            }
            match self.session.poll_timeout() {
                Some(deadline) => {
                    if deadline <= R::now() || self.timer.poll_at(cx, deadline) {
                        self.session.handle_timeout(R::now());
                        progress = true;
                    }
                }
                None => self.timer.clear(),
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Writes what the session queued until done or the transport is full;
    /// returns how many bytes the transport took.
    fn write_out(&mut self, cx: &mut Context<'_>) -> std::io::Result<usize> {
        let mut wrote = 0;
        loop {
            if self.queue.is_empty() {
                let mut buf = Vec::new();
                let chunk = self.session.poll_transmit(&mut buf);
                if !buf.is_empty() {
                    self.queue.push_back(Bytes::from(buf));
                }
                self.queue.extend(chunk);
                if self.queue.is_empty() {
                    break;
                }
            }
            let front = self.queue.front_mut().expect("checked non-empty");
            match Pin::new(&mut self.stream).poll_write(cx, front) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    wrote += n;
                    if n == front.len() {
                        self.queue.pop_front();
                    } else {
                        let _ = front.split_to(n);
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(wrote),
            }
        }
        if wrote > 0 {
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.stream).poll_flush(cx) {
                return Err(e);
            }
        }
        Ok(wrote)
    }

    fn drop_output(&mut self) {
        self.queue.clear();
    }

    /// The underlying stream.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

/// The error a write reports once the stream has ended.
fn ended(end: SseEnd) -> Error {
    let kind = match end {
        SseEnd::WriteTimeout => std::io::ErrorKind::TimedOut,
        _ => std::io::ErrorKind::BrokenPipe,
    };
    Error::Io(Arc::new(std::io::Error::new(
        kind,
        format!("event stream ended: {end:?}"),
    )))
}
