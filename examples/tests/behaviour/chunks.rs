//! Messages streamed in chunks through the runtime layer: far over the
//! message limit, with and without permessage-deflate, abandoned half way
//! in either direction, and with whole sends waiting behind a chunked one.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::AsyncRead;

/// A deterministic byte source of `len` bytes, handed out in reads of
/// changing sizes (so chunk borders fall anywhere).
pub(crate) struct Source {
    left: u64,
    state: u64,
    reads: u64,
    /// Text: printable ASCII with a multi-byte character now and then.
    text: bool,
}

impl Source {
    pub(crate) fn new(len: u64, seed: u64, text: bool) -> Source {
        Source {
            left: len,
            state: seed | 1,
            reads: 0,
            text,
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
}

impl AsyncRead for Source {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.reads += 1;
        let want = [1usize, 7, 1000, 40_000, 1 << 20][(this.reads % 5) as usize];
        let mut n = want.min(buf.len()).min(this.left as usize);
        let mut i = 0;
        while i < n {
            let r = this.next();
            if this.text && r % 97 == 0 && n - i >= 3 {
                buf[i..i + 3].copy_from_slice("✓".as_bytes());
                i += 3;
            } else if this.text {
                buf[i] = b' ' + (r % 90) as u8;
                i += 1;
            } else {
                buf[i] = r as u8;
                i += 1;
            }
        }
        n = i;
        this.left -= n as u64;
        Poll::Ready(Ok(n))
    }
}

/// FNV-1a over a stream of chunks, and the byte count.
#[derive(Default, Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct Digest {
    pub(crate) hash: u64,
    pub(crate) len: u64,
}

impl Digest {
    pub(crate) fn new() -> Digest {
        Digest {
            hash: 0xcbf2_9ce4_8422_2325,
            len: 0,
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        self.len += bytes.len() as u64;
    }
}

/// The digest of what `Source::new(len, seed, text)` yields.
pub(crate) fn source_digest(len: u64, seed: u64, text: bool) -> Digest {
    let mut source = Source::new(len, seed, text);
    let mut digest = Digest::new();
    let mut buf = vec![0u8; 64 << 10];
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    loop {
        match Pin::new(&mut source).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(0)) => return digest,
            Poll::Ready(Ok(n)) => digest.update(&buf[..n]),
            other => panic!("{other:?}"),
        }
    }
}

macro_rules! chunks_scenarios {
    () => {
        use super::behaviour::chunks::{source_digest, Digest, Source};

        /// A server that echoes each chunk as it comes, never holding a
        /// message: 1 MiB message limit, streaming on.
        fn stream_echo_server(config: Config) -> String {
            background(move |listener| async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let config = config.clone();
                    spawn(async move {
                        let Ok(mut ws) = ws::accept_with(tcp, config, |_| Ok(Accept::new())).await
                        else {
                            return;
                        };
                        while let Some(Ok(chunk)) = ws.recv_chunk().await {
                            if ws.send_chunk(chunk.data, chunk.last).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            })
        }

        /// Accepts one connection with streaming on and hands it to
        /// `handle`; returns the address.
        fn one_streaming_peer<F, Fut>(handle: F) -> String
        where
            F: FnOnce(ws::WebSocket) -> Fut + Send + 'static,
            Fut: Future<Output = ()>,
        {
            background(move |listener| async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let socket = ws::accept_with(tcp, streaming_config(false), |_| Ok(Accept::new()))
                    .await
                    .unwrap();
                handle(socket).await;
            })
        }

        fn streaming_config(deflate: bool) -> Config {
            let config = Config::default()
                .with_max_message_size(1 << 20)
                .with_stream_messages(true);
            if deflate {
                config
            } else {
                config.with_deflate(None)
            }
        }

        /// Sends `len` bytes from a source as one message while reading the
        /// echo with `next_message`, on the same connection (split), and
        /// checks the echo's digest.
        async fn stream_round_trip(addr: &str, config: Config, len: u64, text: bool) {
            let url = format!("ws://{addr}/");
            let (request, _) = ws::ClientRequest::from_url(&url).unwrap();
            let (ws, _) = ws::connect_with(&url, request, config).await.unwrap();
            let (tx, mut rx) = ws.split();
            let reader = async {
                let mut message = rx.next_message().await.unwrap().unwrap();
                assert_eq!(message.is_text(), text);
                let mut digest = Digest::new();
                while let Some(chunk) = message.chunk().await {
                    let chunk = chunk.unwrap();
                    assert!(chunk.len() <= 128 << 10, "{}", chunk.len());
                    if text {
                        assert!(std::str::from_utf8(&chunk).is_ok());
                    }
                    digest.update(&chunk);
                }
                digest
            };
            let writer = async {
                let sent = tx
                    .send_reader(text, Source::new(len, 7, text))
                    .await
                    .unwrap();
                assert_eq!(sent, len);
            };
            let (digest, ()) = futures_util::future::join(reader, writer).await;
            assert_eq!(digest, source_digest(len, 7, text));
        }

        #[test]
        fn a_message_far_over_the_limit_streams_through_an_echo() {
            let addr = stream_echo_server(streaming_config(false));
            block_on(async move {
                within(
                    Duration::from_secs(60),
                    stream_round_trip(&addr, streaming_config(false), 48 << 20, false),
                )
                .await;
                within(
                    Duration::from_secs(60),
                    stream_round_trip(&addr, streaming_config(false), 3 << 20, true),
                )
                .await;
            });
        }

        #[test]
        fn a_compressed_message_streams_through_an_echo() {
            let addr = stream_echo_server(streaming_config(true));
            block_on(async move {
                within(
                    Duration::from_secs(60),
                    stream_round_trip(&addr, streaming_config(true), 6 << 20, true),
                )
                .await;
            });
        }

        #[test]
        fn a_close_in_the_middle_ends_the_message_with_an_error() {
            let (tx, rx) = mpsc::channel();
            let addr = one_streaming_peer(move |mut socket| async move {
                let mut message = socket.next_message().await.unwrap().unwrap();
                let first = message.chunk().await.unwrap().unwrap();
                let end = message.chunk().await;
                tx.send((first, format!("{end:?}"))).unwrap();
            });
            block_on(async move {
                let (mut ws, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                ws.send_chunk(Message::from("half a mess"), false)
                    .await
                    .unwrap();
                ws.flush().await.unwrap();
                let _ = within(Duration::from_secs(5), ws.close(CloseCode::NORMAL, "")).await;
            });
            let (first, end) = wait(&rx, 10);
            assert_eq!(&first[..], b"half a mess");
            assert_eq!(end, format!("{:?}", Some(Err::<(), _>(Error::Incomplete))));
        }

        #[test]
        fn a_dropped_incoming_message_is_skipped() {
            let (tx, rx) = mpsc::channel();
            let addr = one_streaming_peer(move |mut socket| async move {
                {
                    let mut big = socket.next_message().await.unwrap().unwrap();
                    let _ = big.chunk().await;
                    // Dropped after one chunk of 8 MiB.
                }
                let mut next = socket.next_message().await.unwrap().unwrap();
                let mut text = Vec::new();
                while let Some(chunk) = next.chunk().await {
                    text.extend_from_slice(&chunk.unwrap());
                }
                tx.send(text).unwrap();
            });
            block_on(async move {
                let (mut ws, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                ws.send_reader(false, Source::new(8 << 20, 3, false))
                    .await
                    .unwrap();
                ws.send("the next one").await.unwrap();
                ws.flush().await.unwrap();
                let got = wait_async(&rx).await;
                assert_eq!(got, b"the next one");
            });
        }

        #[test]
        fn whole_sends_wait_behind_a_chunked_message() {
            let addr = echo_server(big_config());
            block_on(async move {
                let url = format!("ws://{addr}/");
                let (request, _) = ws::ClientRequest::from_url(&url).unwrap();
                let (mut ws, _) = ws::connect_with(&url, request, big_config()).await.unwrap();
                let other = ws.sender();
                ws.send_chunk(Message::from("one "), false).await.unwrap();
                // Queued now, sent after the chunked message ends.
                other.send("two").await.unwrap();
                ws.send_chunk(Message::from("and a half"), true)
                    .await
                    .unwrap();
                let first = within(Duration::from_secs(5), ws.recv()).await;
                let second = within(Duration::from_secs(5), ws.recv()).await;
                assert_eq!(first.unwrap().unwrap(), Message::from("one and a half"));
                assert_eq!(second.unwrap().unwrap(), Message::from("two"));
            });
        }

        #[test]
        fn an_abandoned_source_closes_with_1011() {
            let (tx, rx) = mpsc::channel();
            let addr = one_streaming_peer(move |mut socket| async move {
                let mut message = socket.next_message().await.unwrap().unwrap();
                let mut end = None;
                while let Some(chunk) = message.chunk().await {
                    if let Err(e) = chunk {
                        end = Some(e);
                        break;
                    }
                }
                drop(message);
                tx.send((format!("{end:?}"), socket.close_frame())).unwrap();
            });
            block_on(async move {
                let (mut ws, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                {
                    // A source that never ends, given up after a moment.
                    let send = ws.send_reader(true, Source::new(u64::MAX, 5, true));
                    let _ = within_or_none(Duration::from_millis(300), send).await;
                }
                let _ = within(Duration::from_secs(5), ws.recv()).await;
            });
            let (end, frame) = wait(&rx, 10);
            assert_eq!(end, format!("{:?}", Some(Error::Incomplete)));
            assert_eq!(frame.map(|f| f.code), Some(CloseCode::INTERNAL_ERROR));
        }

        /// A raw client streams a 1 GiB message in 4 MiB fragments with a
        /// ping after each; the streaming echo answers every ping while
        /// the message is still passing through.
        #[test]
        fn pings_are_answered_in_the_middle_of_a_1_gib_message() {
            use std::io::Read;
            const FRAGMENT: usize = 4 << 20;
            const FRAGMENTS: usize = 256;
            let addr = stream_echo_server(streaming_config(false));
            let mut tcp = raw::upgrade(&addr);
            let mut reader = tcp.try_clone().unwrap();
            let counting = std::thread::spawn(move || {
                let (mut data, mut pongs_mid, mut pongs) = (0usize, 0, 0);
                while data < FRAGMENT * FRAGMENTS || pongs < FRAGMENTS {
                    let mut head = [0u8; 2];
                    reader.read_exact(&mut head).unwrap();
                    let len = match head[1] & 0x7f {
                        126 => {
                            let mut b = [0u8; 2];
                            reader.read_exact(&mut b).unwrap();
                            u16::from_be_bytes(b) as usize
                        }
                        127 => {
                            let mut b = [0u8; 8];
                            reader.read_exact(&mut b).unwrap();
                            u64::from_be_bytes(b) as usize
                        }
                        n => n as usize,
                    };
                    let mut payload = vec![0u8; len];
                    reader.read_exact(&mut payload).unwrap();
                    match head[0] & 0x0f {
                        0x0 | 0x2 => {
                            assert!(payload.iter().all(|&b| b == 0x5a));
                            data += len;
                        }
                        0xa => {
                            pongs += 1;
                            if data < FRAGMENT * FRAGMENTS {
                                pongs_mid += 1;
                            }
                        }
                        other => panic!("opcode {other}"),
                    }
                }
                (data, pongs, pongs_mid)
            });
            // A zero mask key leaves the payload as it is.
            let payload = vec![0x5au8; FRAGMENT];
            for i in 0..FRAGMENTS {
                let opcode = if i == 0 { 0x2 } else { 0x0 };
                let fin = if i + 1 == FRAGMENTS { 0x80 } else { 0 };
                let mut head = vec![fin | opcode, 0x80 | 127];
                head.extend_from_slice(&(FRAGMENT as u64).to_be_bytes());
                head.extend_from_slice(&[0, 0, 0, 0]);
                tcp.write_all(&head).unwrap();
                tcp.write_all(&payload).unwrap();
                tcp.write_all(&raw::frame(0x89, format!("ping {i}").as_bytes()))
                    .unwrap();
            }
            let (data, pongs, pongs_mid) = counting.join().unwrap();
            assert_eq!(data, FRAGMENT * FRAGMENTS);
            assert_eq!(pongs, FRAGMENTS);
            assert!(
                pongs_mid >= FRAGMENTS - 1,
                "{pongs_mid} pongs before the end"
            );
        }

        /// Runs `future` for at most `limit`; `None` if it did not finish.
        async fn within_or_none<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
            let timer = sleep(limit);
            pin_mut!(future, timer);
            match select(future, timer).await {
                Either::Left((value, _)) => Some(value),
                Either::Right(_) => None,
            }
        }

        /// Waits for a value from another thread without blocking this
        /// runtime's thread.
        async fn wait_async<T>(rx: &mpsc::Receiver<T>) -> T {
            within(Duration::from_secs(20), async {
                loop {
                    if let Ok(value) = rx.try_recv() {
                        return value;
                    }
                    sleep(Duration::from_millis(5)).await;
                }
            })
            .await
        }
    };
}
