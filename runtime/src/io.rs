//! The few byte-stream operations the handshakes need, as futures over a
//! [`Transport`], so no runtime's extension traits are required.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;

use crate::runtime::Transport;

/// Reads once into `buf`; 0 at end of stream.
pub(crate) async fn read<S: Transport>(stream: &mut S, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, buf)).await
}

/// Writes all of `bytes` and flushes.
pub(crate) async fn write_all<S: Transport>(stream: &mut S, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, bytes)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    poll_fn(|cx| Pin::new(&mut *stream).poll_flush(cx)).await
}

/// Closes the write side (TLS: sends close_notify).
pub(crate) async fn shutdown<S: Transport>(stream: &mut S) -> io::Result<()> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_close(cx)).await
}

/// Writes a one-shot answer and closes.
pub(crate) async fn write_and_close<S: Transport>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    write_all(stream, bytes).await?;
    shutdown(stream).await
}
