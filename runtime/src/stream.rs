//! Messages taken and sent in pieces, never held whole: an
//! [`IncomingMessage`] hands out a message's chunks as they arrive, and
//! [`Sender::send_reader`](crate::Sender::send_reader) sends a message from
//! any [`AsyncRead`] as fragments.
//!
//! Receiving in chunks needs streaming on
//! ([`Config::stream_messages`](wavecast_core::Config::stream_messages) or
//! [`Receiver::set_streaming`](crate::Receiver::set_streaming)); without it
//! every message is one chunk. The connection reads ahead by at most one
//! 64 KiB window of unread chunks, so a slow consumer slows the peer
//! (TCP backpressure) instead of filling memory.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_io::AsyncRead;
use wavecast_core::{Error, Message, Utf8Bytes};

use crate::shared::Shared;

/// Bytes read from a source per chunk sent.
const SEND_CHUNK: usize = 64 << 10;

/// One incoming message, taken chunk by chunk (from
/// [`Receiver::next_message`](crate::Receiver::next_message)).
///
/// As a [`Stream`] it yields the message's bytes in order; as an
/// [`AsyncRead`] it reads them. It ends after the message's last chunk.
/// If the connection fails or closes in the middle, the stream ends with
/// that error ([`Error::Incomplete`] for a clean close), so a truncated
/// message is never mistaken for a whole one.
///
/// Dropping it before the end discards the rest of the message (it is still
/// received and checked, not handed out); the next message comes as usual.
///
/// ```
/// # use wavecast_runtime::{Config, Error, WebSocket};
/// // Messages of up to 1 GiB, streamed: none is held whole.
/// let config = Config::default()
///     .with_stream_messages(true)
///     .with_max_stream_size(1 << 30);
/// # let _ = config;
///
/// /// Echoes every message back as it arrives, chunk by chunk.
/// async fn echo_stream(ws: WebSocket) -> Result<(), Error> {
///     let (sender, mut receiver) = ws.split();
///     while let Some(message) = receiver.next_message().await {
///         let message = message?;
///         let text = message.is_text();
///         sender.send_reader(text, message).await?; // as an `AsyncRead`
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct IncomingMessage<'a> {
    shared: &'a Shared,
    text: bool,
    /// Bytes taken from the connection and not handed out yet.
    current: Bytes,
    /// The message's last chunk (or an error) was taken.
    done: bool,
}

impl<'a> IncomingMessage<'a> {
    /// Waits for the start of the next message. `None` after a clean
    /// close; an error ends the connection, as with `recv`.
    pub(crate) async fn next(shared: &'a Shared) -> Option<Result<IncomingMessage<'a>, Error>> {
        loop {
            let chunk = match poll_fn(|cx| shared.poll_recv_chunk(cx)).await? {
                Ok(chunk) => chunk,
                Err(e) => return Some(Err(e)),
            };
            // Chunks of a message already abandoned by hand are passed over.
            if !chunk.first {
                continue;
            }
            return Some(Ok(IncomingMessage {
                shared,
                text: chunk.data.is_text(),
                current: into_bytes(chunk.data),
                done: chunk.last,
            }));
        }
    }

    /// Whether this is a text message (every chunk of it is then valid
    /// UTF-8 on its own).
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// Polls for the next chunk of bytes; `Ready(None)` after the last.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            if !self.current.is_empty() {
                return Poll::Ready(Some(Ok(std::mem::take(&mut self.current))));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match ready!(self.shared.poll_recv_chunk(cx)) {
                Some(Ok(chunk)) => {
                    self.done = chunk.last;
                    self.current = into_bytes(chunk.data);
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    self.done = true;
                    return Poll::Ready(Some(Err(Error::Incomplete)));
                }
            }
        }
    }

    /// The next chunk of bytes, or `None` after the last. Cancel-safe.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, Error>> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }
}

impl Stream for IncomingMessage<'_> {
    type Item = Result<Bytes, Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx)
    }
}

impl AsyncRead for IncomingMessage<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.current.is_empty() {
            match ready!(this.poll_chunk(cx)) {
                Some(Ok(bytes)) => this.current = bytes,
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => return Poll::Ready(Ok(0)),
            }
        }
        let n = buf.len().min(this.current.len());
        buf[..n].copy_from_slice(&this.current.split_to(n));
        Poll::Ready(Ok(n))
    }
}

impl Drop for IncomingMessage<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.skip_message();
        }
    }
}

fn into_bytes(message: Message) -> Bytes {
    match message {
        Message::Text(t) => t.into_bytes(),
        Message::Binary(b) => b,
    }
}

/// Queues one chunk once the write limit allows. A `poll_fn`, like
/// `send`: the future holds the chunk once.
pub(crate) fn send_chunk(
    shared: &Shared,
    data: Message,
    last: bool,
) -> impl Future<Output = Result<(), Error>> + '_ {
    let mut data = Some(data);
    poll_fn(move |cx| match shared.poll_chunk_ready(cx) {
        Poll::Ready(Ok(())) => {
            Poll::Ready(shared.send_chunk(data.take().expect("polled after completion"), last))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    })
}

/// Closes the connection with 1011 if a message sent from a source is
/// left unfinished (the future dropped, or the source failed).
struct Unfinished<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.abandon_chunks("message source did not finish");
        }
    }
}

/// Sends everything `reader` yields as one message, a chunk per read of up
/// to 64 KiB; returns the message's size. Text must be UTF-8 (a code point
/// may span reads).
pub(crate) async fn send_reader<R: AsyncRead + Unpin>(
    shared: &Shared,
    text: bool,
    mut reader: R,
) -> Result<u64, Error> {
    let mut guard = Unfinished {
        shared,
        armed: true,
    };
    // A chunk is sent once the next read shows it is not the last.
    let mut held: Option<Bytes> = None;
    // The start of a code point cut off by the end of a read.
    let mut carry: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        let mut buf = BytesMut::zeroed(SEND_CHUNK);
        buf[..carry.len()].copy_from_slice(&carry);
        let start = carry.len();
        let n = poll_fn(|cx| Pin::new(&mut reader).poll_read(cx, &mut buf[start..])).await?;
        if n == 0 {
            if !carry.is_empty() {
                return Err(not_utf8());
            }
            let last = held.take().unwrap_or_default();
            total += last.len() as u64;
            send_chunk(shared, kind(text, last), true).await?;
            guard.armed = false;
            return Ok(total);
        }
        buf.truncate(start + n);
        carry.clear();
        if text {
            match std::str::from_utf8(&buf) {
                Ok(_) => {}
                Err(e) if e.error_len().is_none() => {
                    carry.extend_from_slice(&buf[e.valid_up_to()..]);
                    buf.truncate(e.valid_up_to());
                }
                Err(_) => return Err(not_utf8()),
            }
        }
        if let Some(previous) = held.replace(buf.freeze()) {
            total += previous.len() as u64;
            send_chunk(shared, kind(text, previous), false).await?;
        }
    }
}

fn kind(text: bool, bytes: Bytes) -> Message {
    if text {
        // Checked by `send_reader` before it got here.
        Message::Text(Utf8Bytes::try_from(bytes).expect("checked UTF-8"))
    } else {
        Message::Binary(bytes)
    }
}

fn not_utf8() -> Error {
    Error::Io(std::sync::Arc::new(io::Error::new(
        io::ErrorKind::InvalidData,
        "a text message's source is not valid UTF-8",
    )))
}
