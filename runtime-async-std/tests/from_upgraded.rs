//! `from_upgraded` starts the connection's driver on async-std's own
//! executor, not on another runtime's global one (it once went to smol's,
//! whose threads are named `smol-N`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_std::io::{Read, Write};
use async_std::net::{TcpListener, TcpStream};
use wavecast_async_std::{from_upgraded, Config, Message, Negotiated, Role};

/// Where one poll of the transport ran.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// Inside an async-std task (`async_std::task::try_current()`).
    in_async_std_task: bool,
    thread: Option<String>,
}

/// A transport that notes where each of its polls runs.
struct Watched<S> {
    inner: S,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl<S> Watched<S> {
    fn note(&self) {
        let seen = Seen {
            in_async_std_task: async_std::task::try_current().is_some(),
            thread: std::thread::current().name().map(str::to_owned),
        };
        self.seen.lock().unwrap().push(seen);
    }
}

impl<S: Read + Unpin> Read for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.note();
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: Write + Unpin> Write for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.note();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.note();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.note();
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.note();
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[test]
fn from_upgraded_drives_the_connection_on_async_std() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watched = seen.clone();
    async_std::task::block_on(async_std::future::timeout(
        Duration::from_secs(10),
        async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // The kernel completes the connect before the accept.
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            // Both ends as if an HTTP stack had upgraded them already.
            let mut server = from_upgraded(
                Watched {
                    inner: server,
                    seen: watched,
                },
                Role::Server,
                Config::default(),
                &Negotiated::default(),
                Default::default(),
            );
            let mut client = from_upgraded(
                client,
                Role::Client,
                Config::default(),
                &Negotiated::default(),
                Default::default(),
            );
            client.send("ping").await.unwrap();
            let got = server.recv().await.unwrap().unwrap();
            assert_eq!(got, Message::from("ping"));
            server.send("pong").await.unwrap();
            let got = client.recv().await.unwrap().unwrap();
            assert_eq!(got, Message::from("pong"));
        },
    ))
    .expect("the message exchange finished");

    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the server's transport was polled");
    // async-std names its executor's threads `async-std/runtime` unless
    // `ASYNC_STD_THREAD_NAME` says otherwise; smol's are `smol-N`.
    let executor_threads =
        std::env::var("ASYNC_STD_THREAD_NAME").unwrap_or_else(|_| "async-std/runtime".into());
    for poll in &seen {
        assert!(
            poll.in_async_std_task,
            "a transport poll outside any async-std task: {poll:?}"
        );
        let thread = poll.thread.as_deref().unwrap_or("");
        assert!(!thread.starts_with("smol-"), "polled on smol: {poll:?}");
        assert_eq!(thread, executor_threads, "{poll:?}");
    }
}
