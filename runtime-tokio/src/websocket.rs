//! The application's handles: [`WebSocket`], and its halves [`Sender`] and
//! [`Receiver`] for use from different tasks.
//!
//! Handles never touch the socket. They lock the shared core, queue or take
//! messages, and wake the driver task that does the I/O.
//!
//! - `send(..).await` returning `Ok` means the message is **queued** in the
//!   core (framed, in order), not yet written; call [`Sender::flush`] to wait
//!   until everything queued has been written to the transport. `send` waits
//!   while queued output is over the write limit (backpressure); a cancelled
//!   `send` has queued the whole message or none of it.
//! - `recv()` is cancel-safe: a message is taken from the core only in the
//!   poll that returns it, so `recv` can sit in a `select!` branch.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use wavecast_core::{
    CloseCode, CloseFrame, Config, Connection, Event, Message, Negotiated, Outcome, Role,
    UsageError,
};

use crate::driver::{lock, now, Driver, Shared, SharedRef};
use crate::error::{Error, TrySendError};

/// A WebSocket connection. Send and receive directly, or [`WebSocket::split`]
/// into halves for separate tasks.
#[derive(Debug)]
pub struct WebSocket {
    sender: Sender,
    receiver: Receiver,
}

/// The sending half. Clone it to send from several tasks at once; each
/// message is queued whole.
#[derive(Debug)]
pub struct Sender {
    shared: SharedRef,
}

/// The receiving half. Dropping it switches the connection to discard mode:
/// data messages are counted and dropped, control frames are still handled,
/// so heartbeats keep working for send-only feeds.
#[derive(Debug)]
pub struct Receiver {
    shared: SharedRef,
    finished: bool,
}

impl WebSocket {
    /// Wraps a stream that has already been upgraded (by this crate's
    /// handshake, or by hyper/axum after a header-level negotiation), and
    /// starts its driver task on the current tokio runtime.
    ///
    /// `leftover` holds bytes that arrived after the HTTP head; they are the
    /// start of the WebSocket stream and are fed to the core first.
    pub fn from_upgraded<S>(
        stream: S,
        role: Role,
        config: impl Into<Arc<Config>>,
        negotiated: &Negotiated,
        leftover: Bytes,
    ) -> WebSocket
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (ws, driver) = WebSocket::build(stream, role, config, negotiated, leftover, Vec::new());
        tokio::spawn(driver);
        ws
    }

    /// Builds the handles and the driver; `prefix` (a `101` response) is
    /// written before any frame.
    pub(crate) fn build<S>(
        stream: S,
        role: Role,
        config: impl Into<Arc<Config>>,
        negotiated: &Negotiated,
        leftover: Bytes,
        prefix: Vec<u8>,
    ) -> (WebSocket, Driver<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let now = now();
        let mut conn = Connection::with_negotiated(role, config, negotiated, now);
        if !leftover.is_empty() {
            conn.receive(now, &leftover);
        }
        let mut shared = Shared::new(conn);
        shared.handles = 2;
        let shared: SharedRef = Arc::new(std::sync::Mutex::new(shared));
        let driver = Driver::new(shared.clone(), stream, prefix);
        let ws = WebSocket {
            sender: Sender {
                shared: shared.clone(),
            },
            receiver: Receiver {
                shared,
                finished: false,
            },
        };
        (ws, driver)
    }

    /// Splits into a sender and a receiver that can live in different tasks.
    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }

    /// Receives the next message; see [`Receiver::recv`].
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.receiver.recv().await
    }

    /// Queues a message; see [`Sender::send`].
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        self.sender.send(message).await
    }

    /// Queues a text message.
    pub async fn send_text(
        &mut self,
        text: impl Into<wavecast_core::Utf8Bytes>,
    ) -> Result<(), Error> {
        self.sender.send(Message::Text(text.into())).await
    }

    /// Queues a binary message.
    pub async fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.sender.send(Message::Binary(data.into())).await
    }

    /// Queues a message without waiting; see [`Sender::try_send`].
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), TrySendError> {
        self.sender.try_send(message)
    }

    /// Sends a ping; see [`Sender::ping`].
    pub async fn ping(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.sender.ping(payload).await
    }

    /// Waits until everything queued has been written.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.sender.flush().await
    }

    /// Closes; see [`Sender::close`].
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<Outcome, Error> {
        self.sender.close(code, reason).await
    }

    /// The negotiated subprotocol, if any.
    pub fn subprotocol(&self) -> Option<String> {
        lock(&self.sender.shared)
            .conn
            .subprotocol()
            .map(str::to_owned)
    }

    /// A clone of the sending half, for other tasks.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// The shared state, for connection tracking (graceful shutdown).
    pub(crate) fn shared(&self) -> &SharedRef {
        &self.sender.shared
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        lock(&self.shared).handles += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut s = lock(&self.shared);
        s.handles -= 1;
        if s.handles == 0 {
            s.wake_driver();
        }
    }
}

impl Sender {
    pub(crate) fn poll_ready_inner(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut s = lock(&self.shared);
        if let Some(e) = terminal_error(&s) {
            return Poll::Ready(Err(e));
        }
        if !s.conn.is_open() {
            return Poll::Ready(Err(Error::Usage(UsageError::SendAfterClose)));
        }
        if s.conn.is_write_blocked() {
            s.register_writer(cx.waker());
            s.wake_driver();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn queue(&self, message: Message) -> Result<(), Error> {
        let mut s = lock(&self.shared);
        if let Some(e) = terminal_error(&s) {
            return Err(e);
        }
        s.conn.send(message)?;
        s.wake_driver();
        Ok(())
    }

    /// Waits until queued output is under the write limit, so the next
    /// message can be queued at once (broadcast members call this before
    /// taking a message from their room).
    pub async fn ready(&self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_ready_inner(cx)).await
    }

    /// Bytes queued in the core and not yet handed to the transport.
    pub fn queued_bytes(&self) -> usize {
        lock(&self.shared).conn.queued_bytes()
    }

    /// Ready once the connection can no longer send (closing, closed or
    /// failed).
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = lock(&self.shared);
        if s.done || !s.conn.is_open() {
            return Poll::Ready(());
        }
        s.register_writer(cx.waker());
        Poll::Pending
    }

    /// Queues a message once queued output is under the write limit.
    ///
    /// `Ok` means queued, not written (see [`Sender::flush`]). Cancel-safe:
    /// a cancelled call has queued nothing.
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), Error> {
        let message = message.into();
        poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.queue(message)
    }

    /// Queues a message now, or says why not: [`TrySendError::Full`] (with
    /// the message back) while queued output is over the write limit.
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), TrySendError> {
        let message = message.into();
        let mut s = lock(&self.shared);
        if let Some(e) = terminal_error(&s) {
            return Err(TrySendError::Closed(e));
        }
        if s.conn.is_write_blocked() {
            s.wake_driver();
            return Err(TrySendError::Full(message));
        }
        s.conn
            .send(message)
            .map_err(|e| TrySendError::Closed(e.into()))?;
        s.wake_driver();
        Ok(())
    }

    /// Queues a message framed once for many connections (broadcast).
    pub async fn send_prepared(
        &self,
        prepared: &wavecast_core::PreparedMessage,
    ) -> Result<(), Error> {
        poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        let mut s = lock(&self.shared);
        s.conn.send_prepared(prepared)?;
        s.wake_driver();
        Ok(())
    }

    /// Sends a ping (payload at most 125 bytes).
    pub async fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        let mut s = lock(&self.shared);
        s.conn.send_ping(payload)?;
        s.wake_driver();
        Ok(())
    }

    fn poll_flush_inner(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut s = lock(&self.shared);
        if s.is_flushed() {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = terminal_error(&s) {
            return Poll::Ready(Err(e));
        }
        if s.done {
            return Poll::Ready(Ok(()));
        }
        s.register_writer(cx.waker());
        s.wake_driver();
        Poll::Pending
    }

    /// Waits until everything queued so far has been written to the transport.
    pub async fn flush(&self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// Starts the close handshake and waits until it ends: the peer answers
    /// (a clean [`Outcome`]) or the close timeout passes. Messages that
    /// arrive meanwhile are still delivered to the receiver.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<Outcome, Error> {
        {
            let mut s = lock(&self.shared);
            if s.conn.is_open() && !s.done {
                s.conn.close(now(), code, reason)?;
                s.wake_driver();
            } else {
                // Validate the arguments even when already closing.
                CloseFrame::new(code, reason)?;
            }
        }
        poll_fn(|cx| {
            let mut s = lock(&self.shared);
            if s.done
                || s.conn
                    .outcome()
                    .is_some_and(|o| matches!(o, Outcome::Clean { .. }))
            {
                return Poll::Ready(());
            }
            s.register_writer(cx.waker());
            Poll::Pending
        })
        .await;
        let s = lock(&self.shared);
        if let Some(outcome) = s.conn.outcome() {
            return Ok(outcome.clone());
        }
        match &s.io_error {
            Some(e) => Err(Error::Io(e.clone())),
            None => Err(Error::Eof),
        }
    }

    /// Whether the connection still accepts messages.
    pub fn is_open(&self) -> bool {
        let s = lock(&self.shared);
        s.conn.is_open() && !s.done
    }
}

fn terminal_error(s: &Shared) -> Option<Error> {
    if let Some(e) = &s.io_error {
        return Some(Error::Io(e.clone()));
    }
    if s.done && s.conn.outcome().is_none() {
        return Some(Error::Eof);
    }
    None
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut s = lock(&self.shared);
        s.receiver_alive = false;
        s.conn.set_discard(true);
        s.handles -= 1;
        s.wake_driver();
    }
}

impl Receiver {
    /// Polls for the next message; the `Stream` impl and [`Receiver::recv`]
    /// use this.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let mut s = lock(&self.shared);
        loop {
            let was_paused = !s.conn.wants_read();
            let event = s.conn.poll_event();
            if event.is_some()
                && (s.conn.has_transmit()
                    || (was_paused && s.conn.wants_read())
                    || s.conn.is_closed())
            {
                s.wake_driver();
            }
            match event {
                Some(Event::Message(m)) => return Poll::Ready(Some(Ok(m))),
                Some(Event::Ping(_)) | Some(Event::Pong(_)) => continue,
                Some(Event::Close(_)) => {
                    self.finished = true;
                    return Poll::Ready(None);
                }
                Some(Event::Error(e)) => {
                    self.finished = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Some(_) => continue,
                None => {}
            }
            if s.done || s.conn.is_closed() {
                self.finished = true;
                if let Some(e) = &s.io_error {
                    return Poll::Ready(Some(Err(Error::Io(e.clone()))));
                }
                return Poll::Ready(match s.conn.outcome() {
                    Some(Outcome::Failed(e)) => Some(Err(e.clone().into())),
                    Some(_) => None,
                    None => Some(Err(Error::Eof)),
                });
            }
            s.register_receiver(cx.waker());
            return Poll::Pending;
        }
    }

    /// Receives the next message.
    ///
    /// `None` means the connection closed cleanly (see [`Receiver::close_frame`]
    /// for the peer's code and reason); `Some(Err(..))` means it failed
    /// (protocol error, timeout, reset) and is the last item. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The peer's close frame, once it arrived.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        lock(&self.shared).conn.close_received().cloned()
    }
}

impl Stream for Receiver {
    type Item = Result<Message, Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl Stream for WebSocket {
    type Item = Result<Message, Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().receiver.poll_recv(cx)
    }
}

impl Sink<Message> for Sender {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_ready_inner(cx)
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.queue(item)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush_inner(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        {
            let mut s = lock(&self.shared);
            if s.conn.is_open() && !s.done {
                let _ = s.conn.close(now(), CloseCode::NORMAL, "");
                s.wake_driver();
            }
        }
        self.poll_flush_inner(cx)
    }
}

impl Sink<Message> for WebSocket {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.get_mut().sender).poll_ready(cx)
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        Pin::new(&mut self.get_mut().sender).start_send(item)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.get_mut().sender).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.get_mut().sender).poll_close(cx)
    }
}
