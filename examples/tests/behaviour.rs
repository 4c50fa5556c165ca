//! One behaviour suite, written once and run against every runtime adapter:
//! the same scenario names for tokio, async-std and smol, over real TCP on
//! 127.0.0.1, plus cross-runtime pairs. Hostile and silent peers are raw
//! `std::net` sockets on a plain thread, so they behave the same whatever
//! runtime the server uses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

/// A raw peer speaking just enough WebSocket by hand.
mod raw {
    use super::*;

    pub(crate) const UPGRADE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// Opens a TCP connection and sends `request` (a full HTTP head).
    pub(crate) fn send_head(addr: &str, request: &str) -> TcpStream {
        let mut tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(request.as_bytes()).unwrap();
        tcp
    }

    pub(crate) fn upgrade_request(addr: &str, path: &str, extra: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {UPGRADE_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    /// Reads an HTTP response head and returns it.
    pub(crate) fn read_head(tcp: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match tcp.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    /// Reads everything until the server closes.
    pub(crate) fn read_all(tcp: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Completes an upgrade and returns the socket.
    pub(crate) fn upgrade(addr: &str) -> TcpStream {
        let mut tcp = send_head(addr, &upgrade_request(addr, "/", ""));
        let head = read_head(&mut tcp);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        tcp
    }

    /// Opens a TCP connection with a small receive buffer (socket2), so a
    /// peer that never reads stalls the other side's writes quickly.
    pub(crate) fn connect_small(addr: &str) -> TcpStream {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let sock_addr: std::net::SocketAddr = addr.parse().expect("an ip:port");
        socket.connect(&sock_addr.into()).expect("connect");
        let tcp = TcpStream::from(socket);
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp
    }

    /// Completes an upgrade to `path` over a small-buffer socket, then
    /// leaves the reading to the caller (who usually never reads).
    pub(crate) fn upgrade_small(addr: &str, path: &str) -> TcpStream {
        let mut tcp = connect_small(addr);
        tcp.write_all(upgrade_request(addr, path, "").as_bytes())
            .unwrap();
        let head = read_head(&mut tcp);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        tcp
    }

    /// Reads and drops everything until the peer closes (EOF or reset);
    /// true if that happened within `limit`.
    pub(crate) fn drains_to_close(tcp: &mut TcpStream, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut sink = vec![0u8; 64 << 10];
        while std::time::Instant::now() < deadline {
            match tcp.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }

    /// Plays a server: accepts one connection on `listener`, reads the
    /// client's upgrade request and answers 101. Returns the socket.
    pub(crate) fn accept_upgrade(listener: &std::net::TcpListener) -> TcpStream {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let head = read_head(&mut tcp);
        let key = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("the client sent a key");
        let accept = wavecast_core::handshake::accept_key(key.as_bytes());
        tcp.write_all(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        tcp
    }

    /// A masked client frame.
    pub(crate) fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126);
        let key = [1u8, 2, 3, 4];
        let mut out = vec![first_byte, 0x80 | payload.len() as u8];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    /// Reads one unmasked server frame: (first byte, payload).
    pub(crate) fn read_frame(tcp: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).ok()?;
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                tcp.read_exact(&mut b).ok()?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                tcp.read_exact(&mut b).ok()?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).ok()?;
        Some((head[0], payload))
    }
}

#[path = "support/runtimes.rs"]
#[macro_use]
mod runtimes;
use runtimes::{rt_async_std, rt_smol, rt_tokio, wait};

// More scenarios, one `macro_rules!` per theme, expanded inside every
// runtime's module below (they use its `ws`, `block_on`, `spawn`, ...).
#[macro_use]
mod behaviour {
    #[macro_use]
    mod rooms;
    #[macro_use]
    mod serving;
    #[macro_use]
    mod deadlines;
    #[macro_use]
    mod streams;
    #[macro_use]
    pub(crate) mod history;
    #[macro_use]
    pub(crate) mod chunks;
}

/// The scenarios. `$rt` names one of the glue modules above.
macro_rules! behaviour_suite {
    ($suite:ident, $rt:ident) => {
        mod $suite {
            use std::io::Write;
            use std::time::Duration;

            use futures_util::future::{select, Either};
            use futures_util::pin_mut;

            use std::future::Future;
            use std::sync::{mpsc, Arc, Mutex};
            use std::time::Instant;

            use super::raw;
            use super::wait;
            use super::$rt::{block_on, sleep, spawn, ws, Rt, TcpListener};
            use ws::{
                Accept, CloseCode, Config, Error, HostAllowList, HttpResponse, Message,
                OriginAllowList,
            };

            suite_helpers!();

            rooms_scenarios!();
            serving_scenarios!();
            deadlines_scenarios!();
            streams_scenarios!();
            chunks_scenarios!();
            history_scenarios!();

            /// Starts an echo server in a background thread on this runtime
            /// and returns its address. Paths: `/missing` is 404, a foreign
            /// origin is 403, `/close` closes with 4000 "bye" at once.
            fn echo_server(config: Config) -> String {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    block_on(async move {
                        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                        tx.send(listener.local_addr().unwrap().to_string()).unwrap();
                        loop {
                            let Ok((tcp, _)) = listener.accept().await else {
                                return;
                            };
                            let config = config.clone();
                            spawn(async move {
                                let allow = OriginAllowList::new(["http://good.example"]);
                                let mut close_at_once = false;
                                let accepted = ws::accept_with(tcp, config, |req| {
                                    allow.check(req)?;
                                    match req.path() {
                                        "/missing" => return Err(HttpResponse::not_found()),
                                        "/close" => close_at_once = true,
                                        _ => {}
                                    }
                                    Ok(Accept::new())
                                })
                                .await;
                                let Ok(mut ws) = accepted else { return };
                                if close_at_once {
                                    let _ = ws.close(CloseCode(4000), "bye").await;
                                    return;
                                }
                                while let Some(Ok(msg)) = ws.recv().await {
                                    if ws.send(msg).await.is_err() {
                                        break;
                                    }
                                }
                            });
                        }
                    })
                });
                wait(&rx, 5)
            }

            fn big_config() -> Config {
                Config::default()
                    .with_max_message_size(8 << 20)
                    .with_max_frame_size(8 << 20)
            }

            #[test]
            fn echo_text_and_binary() {
                let addr = echo_server(Config::default());
                block_on(async move {
                    let (mut ws, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                    ws.send("hello").await.unwrap();
                    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("hello"));
                    ws.send(vec![0u8, 1, 2, 255]).await.unwrap();
                    assert_eq!(
                        ws.recv().await.unwrap().unwrap(),
                        Message::from(vec![0u8, 1, 2, 255])
                    );
                    ws.send("").await.unwrap();
                    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from(""));
                });
            }

            #[test]
            fn large_message() {
                let addr = echo_server(big_config());
                block_on(async move {
                    let url = format!("ws://{addr}/");
                    let (request, _) = ws::ClientRequest::from_url(&url).unwrap();
                    let (mut ws, _) = ws::connect_with(&url, request, big_config()).await.unwrap();
                    let big: Vec<u8> = (0..(5 << 20)).map(|i| (i % 251) as u8).collect();
                    ws.send(big.clone()).await.unwrap();
                    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from(big));
                });
            }

            /// Large messages back to back, several in flight, of changing
            /// sizes and kinds: payloads are read straight into message
            /// buffers that are recycled from earlier echoes (on both ends),
            /// so stale bytes or a mixed-up buffer would show here.
            #[test]
            fn large_messages_in_a_row() {
                let addr = echo_server(big_config());
                block_on(async move {
                    let url = format!("ws://{addr}/");
                    let (request, _) = ws::ClientRequest::from_url(&url).unwrap();
                    let (mut ws, _) = ws::connect_with(&url, request, big_config()).await.unwrap();
                    let sizes = [1 << 20, 300_000, 1 << 20, 70_000, 2 << 20, 600_000, 1 << 20];
                    let messages: Vec<Message> = sizes
                        .iter()
                        .enumerate()
                        .map(|(k, &len)| {
                            if k % 3 == 1 {
                                let text: String = (0..len)
                                    .map(|i| char::from(b'a' + ((i + k) % 26) as u8))
                                    .collect();
                                Message::from(text.replace('q', "é"))
                            } else {
                                let data: Vec<u8> =
                                    (0..len).map(|i| ((i * 7 + k) % 253) as u8).collect();
                                Message::from(data)
                            }
                        })
                        .collect();
                    for pair in messages.chunks(2) {
                        for m in pair {
                            ws.send(m.clone()).await.unwrap();
                        }
                        for m in pair {
                            assert_eq!(&ws.recv().await.unwrap().unwrap(), m);
                        }
                    }
                });
            }

            #[test]
            fn over_limit_message_closes_1009() {
                let addr = echo_server(Config::default().with_max_message_size(1000));
                block_on(async move {
                    let (mut ws, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                    ws.send(vec![7u8; 2000]).await.unwrap();
                    assert!(ws.recv().await.is_none(), "the server closes");
                    let (_, rx) = ws.split();
                    assert_eq!(rx.close_frame().unwrap().code, CloseCode::MESSAGE_TOO_BIG);
                });
            }

            #[test]
            fn fragmented_send_reassembles() {
                let addr = echo_server(Config::default());
                block_on(async move {
                    let url = format!("ws://{addr}/");
                    let (request, _) = ws::ClientRequest::from_url(&url).unwrap();
                    let cfg = Config::default().with_fragment_size(Some(7));
                    let (mut ws, _) = ws::connect_with(&url, request, cfg).await.unwrap();
                    let text = "fragmented κόσμε message, split mid code point".repeat(20);
                    ws.send(text.as_str()).await.unwrap();
                    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from(text));
                });
            }

            #[test]
            fn ping_is_answered_with_pong() {
                let addr = echo_server(Config::default());
                let mut tcp = raw::upgrade(&addr);
                tcp.write_all(&raw::frame(0x89, b"are you there")).unwrap();
                let (first, payload) = raw::read_frame(&mut tcp).unwrap();
                assert_eq!(first, 0x8a);
                assert_eq!(payload, b"are you there");
            }

            #[test]
            fn client_close_is_clean() {
                let addr = echo_server(Config::default());
                block_on(async move {
                    let (mut ws, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                    let outcome = ws.close(CloseCode::NORMAL, "done").await.unwrap();
                    match outcome {
                        ws::Outcome::Clean {
                            remote,
                            locally_initiated,
                        } => {
                            assert!(locally_initiated);
                            assert_eq!(remote.code, CloseCode::NORMAL);
                        }
                        other => panic!("{other:?}"),
                    }
                    assert!(matches!(ws.send("late").await, Err(Error::Usage(_))));
                });
            }

            #[test]
            fn server_close_reaches_client() {
                let addr = echo_server(Config::default());
                block_on(async move {
                    let (ws, _) = ws::connect(&format!("ws://{addr}/close")).await.unwrap();
                    let (_tx, mut rx) = ws.split();
                    assert!(rx.recv().await.is_none());
                    let frame = rx.close_frame().unwrap();
                    assert_eq!(frame.code, CloseCode(4000));
                    assert_eq!(&*frame.reason, "bye");
                });
            }

            #[test]
            fn close_timeout_when_peer_never_answers() {
                let (tx, rx) = std::sync::mpsc::channel();
                let (atx, arx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    block_on(async move {
                        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                        atx.send(listener.local_addr().unwrap().to_string())
                            .unwrap();
                        let (tcp, _) = listener.accept().await.unwrap();
                        let cfg = Config::default().with_close_timeout(Duration::from_millis(300));
                        let mut ws = ws::accept_with(tcp, cfg, |_| Ok(Accept::new()))
                            .await
                            .unwrap();
                        let res = ws.close(CloseCode::NORMAL, "").await;
                        tx.send(format!("{res:?}")).unwrap();
                    })
                });
                let addr = wait(&arx, 5);
                let _silent = raw::upgrade(&addr);
                let res = wait(&rx, 5);
                assert!(res.contains("Timeout(Close)"), "{res}");
            }

            #[test]
            fn handshake_rejections() {
                let addr = echo_server(Config::default());
                for (path, extra, status) in [
                    ("/", "Origin: http://evil.example\r\n", "403"),
                    ("/missing", "", "404"),
                ] {
                    let mut tcp = raw::send_head(&addr, &raw::upgrade_request(&addr, path, extra));
                    let out = raw::read_all(&mut tcp);
                    assert!(out.starts_with(&format!("HTTP/1.1 {status}")), "{out}");
                }
                let bad_version = raw::upgrade_request(&addr, "/", "")
                    .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
                let mut tcp = raw::send_head(&addr, &bad_version);
                let out = raw::read_all(&mut tcp);
                assert!(out.starts_with("HTTP/1.1 426"), "{out}");
                assert!(out
                    .to_ascii_lowercase()
                    .contains("sec-websocket-version: 13"));
            }

            #[test]
            fn client_reports_rejection_status() {
                let addr = echo_server(Config::default());
                block_on(async move {
                    let err = ws::connect(&format!("ws://{addr}/missing"))
                        .await
                        .unwrap_err();
                    match err {
                        Error::Handshake(e) => assert_eq!(e.status(), 404),
                        other => panic!("{other:?}"),
                    }
                });
            }

            #[test]
            fn handshake_timeout_drops_slowloris() {
                let addr = echo_server(
                    Config::default().with_handshake_timeout(Duration::from_millis(300)),
                );
                let mut tcp = raw::send_head(&addr, "GET / HTTP/1.1\r\nHost: x\r\n");
                let out = raw::read_all(&mut tcp);
                assert!(out.starts_with("HTTP/1.1 408"), "{out}");
            }

            #[test]
            fn protocol_violation_closes_1002() {
                let addr = echo_server(Config::default());
                let mut tcp = raw::upgrade(&addr);
                // RSV1 without a negotiated extension.
                tcp.write_all(&raw::frame(0xc1, b"x")).unwrap();
                let (first, payload) = raw::read_frame(&mut tcp).unwrap();
                assert_eq!(first, 0x88);
                assert_eq!(&payload[..2], &1002u16.to_be_bytes());
            }

            #[test]
            fn invalid_utf8_closes_1007() {
                let addr = echo_server(Config::default());
                let mut tcp = raw::upgrade(&addr);
                tcp.write_all(&raw::frame(0x81, &[b'a', 0xff])).unwrap();
                let (first, payload) = raw::read_frame(&mut tcp).unwrap();
                assert_eq!(first, 0x88);
                assert_eq!(&payload[..2], &1007u16.to_be_bytes());
            }

            #[test]
            fn heartbeat_drops_dead_peer() {
                let (tx, rx) = std::sync::mpsc::channel();
                let (atx, arx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    block_on(async move {
                        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                        atx.send(listener.local_addr().unwrap().to_string())
                            .unwrap();
                        let (tcp, _) = listener.accept().await.unwrap();
                        let cfg = Config::default()
                            .with_heartbeat_interval(Some(Duration::from_millis(100)))
                            .with_idle_timeout(Some(Duration::from_millis(300)));
                        let mut ws = ws::accept_with(tcp, cfg, |_| Ok(Accept::new()))
                            .await
                            .unwrap();
                        let res = ws.recv().await;
                        tx.send(format!("{res:?}")).unwrap();
                    })
                });
                let addr = wait(&arx, 5);
                // Completes the handshake, then neither reads nor writes.
                let _silent = raw::upgrade(&addr);
                let res = wait(&rx, 5);
                assert!(res.contains("Timeout(Idle)"), "{res}");
            }

            #[test]
            fn healthy_idle_peer_is_kept() {
                let cfg = Config::default()
                    .with_heartbeat_interval(Some(Duration::from_millis(50)))
                    .with_idle_timeout(Some(Duration::from_millis(150)));
                let addr = echo_server(cfg);
                block_on(async move {
                    let (mut ws, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                    // Idle for several idle timeouts; pongs keep it alive.
                    {
                        let recv = ws.recv();
                        let pause = sleep(Duration::from_millis(600));
                        pin_mut!(recv, pause);
                        if let Either::Left((res, _)) = select(recv, pause).await {
                            panic!("unexpected {res:?}");
                        }
                    }
                    ws.send("still here").await.unwrap();
                    assert_eq!(
                        ws.recv().await.unwrap().unwrap(),
                        Message::from("still here")
                    );
                });
            }

            #[test]
            fn send_only_feed_keeps_connection() {
                let (tx, rx) = std::sync::mpsc::channel();
                let (atx, arx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    block_on(async move {
                        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                        atx.send(listener.local_addr().unwrap().to_string())
                            .unwrap();
                        let (tcp, _) = listener.accept().await.unwrap();
                        let ws = ws::accept(tcp).await.unwrap();
                        // The application never receives: drop the receiver.
                        let (sender, receiver) = ws.split();
                        drop(receiver);
                        for i in 0..20 {
                            if sender.send(format!("tick {i}")).await.is_err() {
                                tx.send(false).unwrap();
                                return;
                            }
                            sleep(Duration::from_millis(30)).await;
                        }
                        tx.send(sender.is_open()).unwrap();
                    })
                });
                let addr = wait(&arx, 5);
                block_on(async move {
                    let url = format!("ws://{addr}/");
                    let (request, _) = ws::ClientRequest::from_url(&url).unwrap();
                    let cfg = Config::default()
                        .with_heartbeat_interval(Some(Duration::from_millis(50)))
                        .with_idle_timeout(Some(Duration::from_millis(200)));
                    let (mut ws, _) = ws::connect_with(&url, request, cfg).await.unwrap();
                    // The client also sends messages the server discards.
                    for i in 0..20 {
                        ws.send(format!("ignored {i}")).await.unwrap();
                        assert_eq!(
                            ws.recv().await.unwrap().unwrap(),
                            Message::from(format!("tick {i}"))
                        );
                    }
                    // Stay connected while the server checks its side.
                    sleep(Duration::from_millis(300)).await;
                });
                assert!(wait(&rx, 5), "the feed stayed open");
            }

            #[test]
            fn cancel_safe_recv() {
                let addr = echo_server(Config::default());
                block_on(async move {
                    let (ws, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
                    let (tx, mut rx) = ws.split();
                    spawn(async move {
                        for i in 0..300 {
                            tx.send(format!("message {i}")).await.unwrap();
                            if i % 10 == 0 {
                                sleep(Duration::from_millis(1)).await;
                            }
                        }
                        let _ = tx.flush().await;
                        sleep(Duration::from_secs(5)).await;
                    });
                    let mut got = 0;
                    while got < 300 {
                        let recv = rx.recv();
                        let tick = sleep(Duration::from_millis(1));
                        pin_mut!(recv, tick);
                        if let Either::Left((msg, _)) = select(recv, tick).await {
                            assert_eq!(
                                msg.unwrap().unwrap(),
                                Message::from(format!("message {got}"))
                            );
                            got += 1;
                        }
                    }
                });
            }

            #[test]
            fn try_send_reports_full() {
                let (atx, arx) = std::sync::mpsc::channel();
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    block_on(async move {
                        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                        atx.send(listener.local_addr().unwrap().to_string())
                            .unwrap();
                        let (tcp, _) = listener.accept().await.unwrap();
                        let cfg = Config::default().with_write_buffer_limit(64 << 10);
                        let ws = ws::accept_with(tcp, cfg, |_| Ok(Accept::new()))
                            .await
                            .unwrap();
                        // The peer never reads: the socket and then our
                        // queue fill up, and try_send must say so.
                        let mut full = false;
                        for _ in 0..10_000 {
                            match ws.try_send(vec![0u8; 16 << 10]) {
                                Ok(()) => sleep(Duration::from_millis(1)).await,
                                Err(ws::TrySendError::Full(_)) => {
                                    full = true;
                                    break;
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                        tx.send(full).unwrap();
                    })
                });
                let addr = wait(&arx, 5);
                let _stalled = raw::upgrade(&addr);
                assert!(wait(&rx, 20), "try_send reported a full buffer");
            }
        }
    };
}

behaviour_suite!(tokio_runtime, rt_tokio);
behaviour_suite!(smol_runtime, rt_smol);
behaviour_suite!(async_std_runtime, rt_async_std);

/// Cross-runtime pairs: a client on one runtime against a server on another.
mod cross_runtime {
    use super::*;

    fn tokio_echo_server() -> String {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            rt_tokio::block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().to_string()).unwrap();
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let mut ws = wavecast_tokio::accept(tcp).await.unwrap();
                        while let Some(Ok(m)) = ws.recv().await {
                            ws.send(m).await.unwrap();
                        }
                    });
                }
            })
        });
        wait(&rx, 5)
    }

    fn smol_echo_server() -> String {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            smol::block_on(async move {
                let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().to_string()).unwrap();
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    smol::spawn(async move {
                        let mut ws = wavecast_smol::accept(tcp).await.unwrap();
                        while let Some(Ok(m)) = ws.recv().await {
                            ws.send(m).await.unwrap();
                        }
                    })
                    .detach();
                }
            })
        });
        wait(&rx, 5)
    }

    #[test]
    fn smol_client_tokio_server() {
        let addr = tokio_echo_server();
        smol::block_on(async move {
            let (mut ws, _) = wavecast_smol::connect(&format!("ws://{addr}/"))
                .await
                .unwrap();
            for i in 0..50 {
                ws.send(format!("smol {i}")).await.unwrap();
                assert_eq!(
                    ws.recv().await.unwrap().unwrap(),
                    wavecast_smol::Message::from(format!("smol {i}"))
                );
            }
            ws.close(wavecast_smol::CloseCode::NORMAL, "")
                .await
                .unwrap();
        });
    }

    #[test]
    fn async_std_client_smol_server() {
        let addr = smol_echo_server();
        async_std::task::block_on(async move {
            let (mut ws, _) = wavecast_async_std::connect(&format!("ws://{addr}/"))
                .await
                .unwrap();
            let big = vec![42u8; 200_000];
            ws.send(big.clone()).await.unwrap();
            assert_eq!(
                ws.recv().await.unwrap().unwrap(),
                wavecast_async_std::Message::from(big)
            );
            ws.close(wavecast_async_std::CloseCode::NORMAL, "")
                .await
                .unwrap();
        });
    }

    #[test]
    fn tokio_client_smol_server() {
        let addr = smol_echo_server();
        rt_tokio::block_on(async move {
            let (mut ws, _) = wavecast_tokio::connect(&format!("ws://{addr}/"))
                .await
                .unwrap();
            ws.send("from tokio").await.unwrap();
            assert_eq!(
                ws.recv().await.unwrap().unwrap(),
                wavecast_tokio::Message::from("from tokio")
            );
        });
    }
}
