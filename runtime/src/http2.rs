//! The client side of WebSockets over HTTP/2 (RFC 8441), behind the
//! `http2` and `rustls` features: when TLS negotiated `h2` by ALPN, an
//! HTTP/2 connection runs on the TLS stream, and the WebSocket is one
//! extended `CONNECT` stream on it.
//!
//! The `h2` crate is used directly rather than hyper's client: only `h2`
//! tells whether the server enabled the extended CONNECT protocol
//! (`SendRequest::is_extended_connect_protocol_enabled`), which decides
//! between this path and the fallback to HTTP/1.1, and it needs no
//! executor or timer glue (its connection is one future, spawned on `R`).
//! What to send and how to judge the answer is the core's
//! [`ExtendedConnect`]; this module only moves it through `h2`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use wavecast_core::handshake::{ExtendedConnect, Headers, HttpVersion};
use wavecast_core::{Config, Error};

use crate::client::{start_client, Response};
use crate::runtime::{race, Runtime, Transport};
use crate::websocket::WebSocket;

/// The receive window of the WebSocket's stream (and of its connection,
/// which carries nothing else): how much the server may send before we
/// read it. Received bytes are given back to the window as the driver
/// consumes them, so this bounds what `h2` buffers for us.
const RECEIVE_WINDOW: u32 = 256 * 1024;

/// What came of trying HTTP/2 on a connection where ALPN chose `h2`.
pub(crate) enum Attempt {
    /// The WebSocket runs on an HTTP/2 stream.
    Connected(WebSocket, Response),
    /// The server's SETTINGS did not enable the extended CONNECT protocol:
    /// connect again over HTTP/1.1.
    NoConnectProtocol,
}

/// Runs an HTTP/2 connection over `io` (a TLS stream that negotiated
/// `h2`), waits for the server's SETTINGS and, if they allow it, opens the
/// WebSocket as an extended `CONNECT`. The caller bounds it by the
/// connect deadline; dropping it early also ends the connection task.
pub(crate) async fn connect_over_h2<R: Runtime, S: Transport>(
    io: S,
    connect: ExtendedConnect,
    config: Arc<Config>,
) -> Result<Attempt, Error> {
    let max_head = u32::try_from(config.max_head_size).unwrap_or(u32::MAX);
    let (mut send, mut connection) = h2::client::Builder::new()
        .initial_window_size(RECEIVE_WINDOW)
        .initial_connection_window_size(RECEIVE_WINDOW)
        // The response's header block, decoded, as over HTTP/1.1.
        .max_header_list_size(max_head)
        // We never accept pushed streams (RFC 9113 §8.4).
        .enable_push(false)
        .handshake::<_, Bytes>(TokioIo(io))
        .await
        .map_err(h2_error)?;
    let mut ping = connection
        .ping_pong()
        .expect("a new connection still has its ping handle");
    // The connection task runs until `detach` says the WebSocket owns the
    // connection (it then ends by itself once the stream and `send` are
    // gone); if the connect fails or is dropped before that, `detach`
    // drops with it and the task ends at once, closing the socket.
    let (detach, detached) = oneshot::channel::<()>();
    R::spawn(async move {
        let run = async {
            let _ = connection.await;
        };
        let abandoned = async {
            if detached.await.is_ok() {
                std::future::pending::<()>().await;
            }
        };
        race(run, abandoned).await;
    });

    // SETTINGS_ENABLE_CONNECT_PROTOCOL arrives in the server's first
    // SETTINGS frame, which h2 does not report by itself. A PING answered
    // means it has arrived: the server sends its SETTINGS before anything
    // else (RFC 9113 §3.4), and h2 applies a SETTINGS frame before it reads
    // the next frame.
    ping.ping(h2::Ping::opaque()).await.map_err(h2_error)?;
    if !send.is_extended_connect_protocol_enabled() {
        return Ok(Attempt::NoConnectProtocol);
    }

    let mut request = http::Request::builder()
        .method(http::Method::CONNECT)
        .version(http::Version::HTTP_2)
        .uri(format!("https://{}{}", connect.authority(), connect.path()));
    for (name, value) in connect.headers() {
        request = request.header(name, value);
    }
    let mut request = request
        .body(())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static(ExtendedConnect::PROTOCOL));
    send = send.ready().await.map_err(h2_error)?;
    let (response, send_stream) = send.send_request(request, false).map_err(h2_error)?;
    let response = response.await.map_err(h2_error)?;
    let (parts, recv_stream) = response.into_parts();
    let headers: Headers = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    // A refusal drops both halves of the stream, which resets it.
    let accepted = connect.receive_response(parts.status.as_u16(), headers)?;
    let _ = detach.send(());

    let stream = H2Stream {
        send: send_stream,
        recv: recv_stream,
        unread: Bytes::new(),
        finished: false,
    };
    let (ws, response) = start_client::<R, H2Stream>(stream, config, accepted, HttpVersion::Http2);
    Ok(Attempt::Connected(ws, response))
}

fn h2_error(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e.into_io().expect("is_io says it holds an io::Error");
    }
    let kind = if e.is_reset() || e.is_go_away() {
        io::ErrorKind::ConnectionReset
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e)
}

/// The WebSocket's transport: one HTTP/2 stream, read from its DATA frames
/// and written as DATA frames within the flow-control window.
struct H2Stream {
    send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    /// The rest of a DATA frame the driver has not read yet; its bytes are
    /// given back to the receive window as the driver takes them.
    unread: Bytes,
    /// END_STREAM sent: our side is closed.
    finished: bool,
}

impl futures_io::AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        while this.unread.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.unread = data,
                // END_STREAM: the server closed its side.
                None => return Poll::Ready(Ok(0)),
                Some(Err(e)) => return Poll::Ready(Err(h2_error(e))),
            }
        }
        let n = buf.len().min(this.unread.len());
        buf[..n].copy_from_slice(&this.unread.split_to(n));
        this.recv
            .flow_control()
            .release_capacity(n)
            .map_err(h2_error)?;
        Poll::Ready(Ok(n))
    }
}

impl H2Stream {
    /// Waits until the stream may send at least one byte and returns how
    /// many it may send, having asked for `wanted`.
    fn poll_send_capacity(
        &mut self,
        cx: &mut Context<'_>,
        wanted: usize,
    ) -> Poll<io::Result<usize>> {
        if self.finished {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // Asks the connection for window up to `wanted` (a total, not an
        // increment: what the last write did not use is asked for again).
        self.send.reserve_capacity(wanted);
        loop {
            let available = self.send.capacity();
            if available > 0 {
                return Poll::Ready(Ok(available.min(wanted)));
            }
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Err(h2_error(e))),
                // The stream can no longer send (reset by the server).
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }
}

impl futures_io::AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        let n = ready!(this.poll_send_capacity(cx, total))?;
        // One DATA frame for as much of the slices as the window allows:
        // the driver hands over small frames and large payloads separately.
        let mut data = BytesMut::with_capacity(n);
        for slice in bufs {
            let take = (n - data.len()).min(slice.len());
            data.extend_from_slice(&slice[..take]);
            if data.len() == n {
                break;
            }
        }
        this.send
            .send_data(data.freeze(), false)
            .map_err(h2_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Sent data is the connection task's to write: h2 keeps no more
        // than the window allowed, and the task flushes as it writes.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.finished {
            this.finished = true;
            // An empty DATA frame with END_STREAM closes our side (RFC 8441
            // §5: the stream's end is the TCP connection's end). A stream the
            // server already reset has nothing left to close.
            let _ = this.send.send_data(Bytes::new(), true);
        }
        Poll::Ready(Ok(()))
    }
}

/// A `futures-io` transport seen through the tokio I/O traits `h2` reads
/// and writes (only the traits: no tokio runtime is involved).
struct TokioIo<S>(S);

impl<S: Transport> tokio::io::AsyncRead for TokioIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(Pin::new(&mut self.get_mut().0).poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: Transport> tokio::io::AsyncWrite for TokioIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_close(cx)
    }
}
