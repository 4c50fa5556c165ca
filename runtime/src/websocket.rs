//! The application's handles: [`WebSocket`], and its halves [`Sender`] and
//! [`Receiver`] for use from different tasks.
//!
//! Handles never touch the socket: they go through the core's
//! shared connection state and wake the driver task that does the I/O.
//!
//! - `send(..).await` returning `Ok` means the message is **queued** in the
//!   core (framed, in order), not yet written; [`Sender::flush`] waits until
//!   everything queued has been written. `send` waits while queued output is
//!   over the write limit; a cancelled `send` has queued the whole message or
//!   none of it.
//! - `recv()` is cancel-safe: a message leaves the core only in the poll that
//!   returns it.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_io::AsyncRead;
use futures_sink::Sink;
use wavecast_core::{
    Chunk, CloseCode, CloseFrame, Config, Connection, Error, Message, Negotiated, Outcome,
    PreparedMessage, Role, TrySendError, Utf8Bytes,
};

use crate::driver::Driver;
use crate::runtime::{Runtime, Transport};
use crate::shared::Shared;
use crate::stream::{self, IncomingMessage};

/// A WebSocket connection. Send and receive directly, or [`WebSocket::split`]
/// into halves for separate tasks.
///
/// You get one from `accept`, `connect` or `serve` in an adapter crate;
/// every adapter re-exports this type (`wavecast_tokio::WebSocket` is this
/// type). Its driver runs in a task of its own, so heartbeats and pongs go
/// out even while you are not calling `recv`.
///
/// ```
/// # use wavecast_runtime::{CloseCode, Error, Message, WebSocket};
/// /// Echoes text back in upper case and binary as it is, until the peer closes.
/// async fn echo(mut ws: WebSocket) -> Result<(), Error> {
///     while let Some(message) = ws.recv().await {
///         match message? {
///             Message::Text(text) => ws.send(text.to_uppercase()).await?,
///             binary => ws.send(binary).await?,
///         }
///     }
///     // `None`: the peer closed cleanly, and this side has answered.
///     if let Some(frame) = ws.close_frame() {
///         println!("peer closed with {:?}", frame.code);
///     }
///     Ok(())
/// }
///
/// /// Says goodbye: waits until the peer answers the close or the close timeout passes.
/// async fn goodbye(mut ws: WebSocket) -> Result<(), Error> {
///     ws.send("bye").await?;
///     ws.close(CloseCode::NORMAL, "done").await?;
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct WebSocket {
    sender: Sender,
    receiver: Receiver,
}

/// The sending half. Clone it to send from several tasks at once; each
/// message is queued whole.
///
/// ```
/// # use wavecast_runtime::{Error, Sender, WebSocket};
/// /// Answers what the peer sends while another task feeds it the news.
/// async fn run(ws: WebSocket) -> Result<(), Error> {
///     let (sender, mut receiver) = ws.split();
///     let news = sender.clone(); // spawn `feed(news, ...)` on your runtime
/// #   drop(news);
///     while let Some(message) = receiver.recv().await {
///         sender.send(message?).await?;
///     }
///     Ok(())
/// }
///
/// async fn feed(sender: Sender, headlines: Vec<String>) -> Result<(), Error> {
///     for headline in headlines {
///         sender.send(headline).await?; // waits while output is over the write limit
///     }
///     sender.flush().await // waits until all of it is written
/// }
/// ```
#[derive(Debug)]
pub struct Sender {
    shared: Arc<Shared>,
}

/// The receiving half. Dropping it switches the connection to discard mode:
/// data messages are counted and dropped, control frames are still handled,
/// so heartbeats keep working for send-only feeds.
///
/// ```
/// # use wavecast_runtime::{Error, Receiver};
/// /// Prints what arrives until the connection ends.
/// async fn print_all(mut receiver: Receiver) -> Result<(), Error> {
///     while let Some(message) = receiver.recv().await {
///         // `Some(Err(..))` is the last item: a protocol error, a timeout, a reset.
///         println!("{:?}", message?);
///     }
///     // `None`: a clean close.
///     println!("closed: {:?}", receiver.close_frame());
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
}

impl WebSocket {
    /// Wraps a stream that has already been upgraded (by hyper or another
    /// HTTP stack) and starts its driver on `R`'s executor. `leftover` holds
    /// bytes that arrived after the HTTP head; they are fed to the core
    /// first. The adapter crates offer this as `from_upgraded`.
    pub fn from_upgraded<R: Runtime, S: Transport>(
        stream: S,
        role: Role,
        config: impl Into<Arc<Config>>,
        negotiated: &Negotiated,
        leftover: Bytes,
    ) -> WebSocket {
        let (ws, driver) = Self::start::<R, S>(
            stream,
            role,
            config.into(),
            negotiated,
            leftover,
            Vec::new(),
        );
        crate::task::spawn_driver::<R, _>(driver);
        ws
    }

    /// Builds the handles and the driver future (for the caller to spawn);
    /// `prefix` (a `101` response) is written before any frame.
    pub(crate) fn start<R: Runtime, S: Transport>(
        stream: S,
        role: Role,
        config: Arc<Config>,
        negotiated: &Negotiated,
        leftover: Bytes,
        prefix: Vec<u8>,
    ) -> (WebSocket, Driver<R, S>) {
        let now = R::now();
        let mut conn = Connection::with_negotiated(role, config, negotiated, now);
        if !leftover.is_empty() {
            conn.receive(now, &leftover);
        }
        let shared = Shared::with_clock(conn, R::now);
        let driver = Driver::<R, S>::new(shared.clone(), stream, prefix);
        let ws = WebSocket {
            sender: Sender {
                shared: shared.clone(),
            },
            receiver: Receiver { shared },
        };
        (ws, driver)
    }

    /// The shared state, for connection tracking (graceful shutdown).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.sender.shared
    }

    /// Splits into a sender and a receiver that can live in different tasks.
    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }

    /// Receives the next message; see [`Receiver::recv`].
    pub fn recv(&mut self) -> impl Future<Output = Option<Result<Message, Error>>> + '_ {
        self.receiver.recv()
    }

    /// Queues a message; see [`Sender::send`].
    // Not an `async fn` (here and below): the future is the sender's own,
    // not a second one wrapped around it holding another copy of the
    // message, so a connection task awaiting it stays small.
    pub fn send(
        &mut self,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        self.sender.send_message(message.into())
    }

    /// Queues a text message.
    pub fn send_text(
        &mut self,
        text: impl Into<Utf8Bytes>,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        self.sender.send_message(Message::Text(text.into()))
    }

    /// Queues a binary message.
    pub fn send_binary(
        &mut self,
        data: impl Into<Bytes>,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        self.sender.send_message(Message::Binary(data.into()))
    }

    /// Queues a message without waiting; see [`Sender::try_send`].
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), TrySendError> {
        self.sender.try_send(message)
    }

    /// Sends a ping; see [`Sender::ping`].
    pub fn ping(
        &mut self,
        payload: impl Into<Bytes>,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        self.sender.ping(payload)
    }

    /// Waits until everything queued has been written.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.sender.flush().await
    }

    /// Waits until the connection has completely ended; see
    /// [`Sender::closed`].
    pub async fn closed(&self) {
        self.sender.closed().await;
    }

    /// Closes; see [`Sender::close`].
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<Outcome, Error> {
        self.sender.close(code, reason).await
    }

    /// The negotiated subprotocol, if any.
    pub fn subprotocol(&self) -> Option<String> {
        self.sender.shared.subprotocol()
    }

    /// The peer's close frame, once it arrived.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        self.receiver.close_frame()
    }

    /// Receives the next piece of a message; see [`Receiver::recv_chunk`].
    pub fn recv_chunk(&mut self) -> impl Future<Output = Option<Result<Chunk, Error>>> + '_ {
        self.receiver.recv_chunk()
    }

    /// Waits for the next message and hands it out as it arrives; see
    /// [`Receiver::next_message`].
    pub async fn next_message(&mut self) -> Option<Result<IncomingMessage<'_>, Error>> {
        self.receiver.next_message().await
    }

    /// Switches streaming on or off; see [`Receiver::set_streaming`].
    pub fn set_streaming(&mut self, on: bool) {
        self.receiver.set_streaming(on);
    }

    /// Queues one chunk of a message sent in pieces; see
    /// [`Sender::send_chunk`].
    pub fn send_chunk(
        &mut self,
        data: impl Into<Message>,
        last: bool,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        self.sender.send_chunk(data, last)
    }

    /// Sends a message read from `reader`; see [`Sender::send_reader`].
    pub async fn send_reader<R: AsyncRead + Unpin>(
        &mut self,
        text: bool,
        reader: R,
    ) -> Result<u64, Error> {
        self.sender.send_reader(text, reader).await
    }

    /// A clone of the sending half, for other tasks.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.shared.add_sender();
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.drop_sender();
    }
}

impl Sender {
    /// Queues a message once queued output is under the write limit.
    ///
    /// `Ok` means queued, not written (see [`Sender::flush`]). Cancel-safe:
    /// a cancelled call has queued nothing.
    pub fn send(
        &self,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        self.send_message(message.into())
    }

    // A `poll_fn` rather than an `async fn`: the future holds the message
    // once (an `async fn` keeps the argument and its moved copy apart).
    fn send_message(&self, message: Message) -> impl Future<Output = Result<(), Error>> + '_ {
        let mut message = Some(message);
        poll_fn(move |cx| match self.shared.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(
                self.shared
                    .send(message.take().expect("polled after completion")),
            ),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        })
    }

    /// Queues a message now, or says why not: [`TrySendError::Full`] (with
    /// the message back) while queued output is over the write limit.
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), TrySendError> {
        self.shared.try_send(message.into())
    }

    /// Queues one chunk of a message sent in pieces, as one frame, once
    /// queued output is under the write limit: the first chunk after a
    /// message ended starts a new one of its kind (text or binary), `last`
    /// ends it. With permessage-deflate each chunk is compressed as it goes.
    ///
    /// Pings, pongs and a close may go out between chunks. Whole messages
    /// sent meanwhile (from clones of this sender, or room broadcasts)
    /// wait and follow the last chunk, so a chunked message must be
    /// finished; [`Sender::send_reader`] closes the connection (1011) if
    /// its message cannot be. Text chunks must each be valid UTF-8.
    pub fn send_chunk(
        &self,
        data: impl Into<Message>,
        last: bool,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        stream::send_chunk(&self.shared, data.into(), last)
    }

    /// Sends everything `reader` yields as one message, without knowing its
    /// size in advance or holding it whole: a chunk (one frame) per read of
    /// up to 64 KiB, each waiting for the write limit, so a peer that reads
    /// slowly slows the reading of the source. Returns the message's size.
    ///
    /// For `text`, the source must be UTF-8 (a code point may span reads).
    /// If the source fails, is not UTF-8, or this future is dropped before
    /// the end, the message cannot be completed and the connection closes
    /// with 1011.
    ///
    /// The source is a `futures-io` reader: a byte slice, `async_fs::File`
    /// on smol, or a tokio file wrapped in `wavecast_tokio::FuturesIo`.
    ///
    /// ```
    /// # use wavecast_runtime::{Error, Sender};
    /// /// Sends `report` as one binary message, 64 KiB per frame.
    /// async fn send_report(sender: &Sender, report: &[u8]) -> Result<(), Error> {
    ///     let size = sender.send_reader(false, report).await?;
    ///     assert_eq!(size, report.len() as u64);
    ///     Ok(())
    /// }
    /// ```
    pub async fn send_reader<R: AsyncRead + Unpin>(
        &self,
        text: bool,
        reader: R,
    ) -> Result<u64, Error> {
        stream::send_reader(&self.shared, text, reader).await
    }

    /// Queues a message framed once for many connections (broadcast).
    pub async fn send_prepared(&self, prepared: &PreparedMessage) -> Result<(), Error> {
        poll_fn(|cx| self.shared.poll_ready(cx)).await?;
        self.shared.send_prepared(prepared)
    }

    /// Sends a ping (payload at most 125 bytes).
    pub fn ping(&self, payload: impl Into<Bytes>) -> impl Future<Output = Result<(), Error>> + '_ {
        self.ping_bytes(payload.into())
    }

    async fn ping_bytes(&self, payload: Bytes) -> Result<(), Error> {
        poll_fn(|cx| self.shared.poll_ready(cx)).await?;
        self.shared.send_ping(payload)
    }

    /// Waits until everything queued so far has been written to the transport.
    pub async fn flush(&self) -> Result<(), Error> {
        poll_fn(|cx| self.shared.poll_flush(cx)).await
    }

    /// Starts the close handshake and waits until it ends: the peer answers
    /// (a clean [`Outcome`]) or the close timeout passes. Messages that
    /// arrive meanwhile are still delivered to the receiver.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<Outcome, Error> {
        self.shared.close(self.shared.now(), code, reason)?;
        poll_fn(|cx| self.shared.poll_closed(cx)).await
    }

    /// Whether the connection still accepts messages.
    pub fn is_open(&self) -> bool {
        self.shared.is_open()
    }

    /// Waits until the connection has completely ended: the close
    /// handshake is over (or the connection failed), our last frames were
    /// written and the transport was shut. `recv` returns `None` as soon as
    /// the peer's close frame arrives, while the answer is still being
    /// written in the background; a program about to exit, or a client
    /// whose next step depends on the peer having seen the end, awaits
    /// this first.
    pub async fn closed(&self) {
        poll_fn(|cx| self.shared.poll_finished(cx)).await;
    }

    /// Waits until a message may be queued without exceeding the write limit.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll_ready(cx)
    }

    /// Waits until queued output is under the write limit, so the next
    /// message can be queued at once (broadcast members call this before
    /// taking a message from their room).
    pub async fn ready(&self) -> Result<(), Error> {
        poll_fn(|cx| self.shared.poll_ready(cx)).await
    }

    /// Output not yet written to the transport: bytes queued in the core
    /// plus bytes the driver staged for a write the transport has not
    /// taken yet.
    pub fn queued_bytes(&self) -> usize {
        self.shared.unwritten()
    }

    /// The connection this half sends on (rooms attach members to it).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.drop_receiver();
    }
}

impl Receiver {
    /// Polls for the next message; the `Stream` impl and [`Receiver::recv`]
    /// use this.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        self.shared.poll_recv(cx)
    }

    /// Receives the next message.
    ///
    /// `None` means the connection closed cleanly (see
    /// [`Receiver::close_frame`] for the peer's code and reason);
    /// `Some(Err(..))` means it failed (protocol error, timeout, reset) and
    /// is the last item. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| self.shared.poll_recv(cx)).await
    }

    /// Polls for the next piece of a message; see [`Receiver::recv_chunk`].
    pub fn poll_recv_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk, Error>>> {
        self.shared.poll_recv_chunk(cx)
    }

    /// Receives the next piece of a message: with streaming on, chunks as
    /// they arrive (`first` and `last` mark each message's ends; text
    /// chunks are valid UTF-8 on their own); otherwise each message whole,
    /// as one chunk. `None` and errors as for [`Receiver::recv`].
    /// Cancel-safe.
    pub async fn recv_chunk(&mut self) -> Option<Result<Chunk, Error>> {
        poll_fn(|cx| self.shared.poll_recv_chunk(cx)).await
    }

    /// Waits for the start of the next message and hands it out as it
    /// arrives, as a [`Stream`] of byte chunks or an
    /// [`AsyncRead`](futures_io::AsyncRead): a message of any size (up to
    /// [`Config::max_stream_size`]) passes through a window of 64 KiB.
    /// Needs streaming on to stream (else a message comes whole, in one
    /// chunk). `None` after a clean close.
    ///
    /// ```
    /// # use wavecast_runtime::{Error, Receiver};
    /// /// Prints the size of every message without holding one whole.
    /// async fn sizes(mut receiver: Receiver) -> Result<(), Error> {
    ///     receiver.set_streaming(true);
    ///     while let Some(message) = receiver.next_message().await {
    ///         let mut message = message?;
    ///         let mut size = 0;
    ///         while let Some(chunk) = message.chunk().await {
    ///             size += chunk?.len(); // an error here: the message is cut short
    ///         }
    ///         println!("{size} bytes");
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn next_message(&mut self) -> Option<Result<IncomingMessage<'_>, Error>> {
        IncomingMessage::next(&self.shared).await
    }

    /// Switches streaming on or off for messages that start from now on
    /// (the default is [`Config::stream_messages`]). With streaming on,
    /// take messages with [`Receiver::next_message`] or
    /// [`Receiver::recv_chunk`]: [`Receiver::recv`] returns
    /// [`UsageError::Streaming`](wavecast_core::UsageError::Streaming) for a
    /// message that comes in more than one chunk.
    pub fn set_streaming(&mut self, on: bool) {
        self.shared.set_streaming(on);
    }

    /// The peer's close frame, once it arrived.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        self.shared.close_frame()
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
        self.shared.poll_ready(cx)
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.shared.send(item)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.shared.is_open() {
            self.shared
                .close(self.shared.now(), CloseCode::NORMAL, "")?;
        }
        self.shared.poll_flush(cx)
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
        Sink::poll_flush(Pin::new(&mut self.get_mut().sender), cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Sink::poll_close(Pin::new(&mut self.get_mut().sender), cx)
    }
}
