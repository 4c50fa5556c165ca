//! The deadline scenarios on tokio's paused clock: the runtime sleeps
//! through every timeout in no time, so timeouts of 30 s and more take
//! milliseconds and cannot flake on a loaded machine. Every peer runs
//! inside the test's runtime (an in-memory duplex pipe or a tokio socket):
//! a peer on another thread would still be working while the paused clock
//! jumps ahead.
//!
//! Each test checks the virtual time a deadline took against its window,
//! and fails after 10 s of real time: on the system clock (if wavecast
//! stopped reading tokio's through `Runtime::now`) it would sit through
//! its timeouts, or give up early.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::time::Instant;
use wavecast_tokio::{
    connect_with, from_upgraded, Backoff, Bytes, ClientRequest, CloseCode, Config, ConnectionError,
    Error, HandshakeError, Jitter, Message, Negotiated, Outcome, Reconnect, Role, TimeoutKind,
    WebSocket,
};

/// Far longer than any scheduling delay, so only a virtual clock gets
/// through them quickly.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Real time a test may take; a test still running then fails rather
/// than sitting through its timeouts on the system clock.
const REAL_LIMIT: Duration = Duration::from_secs(10);

/// Runs `test`, failing it once it has taken [`REAL_LIMIT`] of real time.
async fn quickly<T>(test: impl Future<Output = T>) -> T {
    // The alarm rings from a thread: the paused clock jumps over sleeps
    // inside the runtime, not over this one.
    let (alarm, rung) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(REAL_LIMIT);
        let _ = alarm.send(());
    });
    tokio::select! {
        value = test => value,
        _ = rung => panic!("still running after {REAL_LIMIT:?} of real time"),
    }
}

/// Asserts `took` is `expected`, give or take scheduling on the virtual
/// clock (which only moves when every task waits).
fn about(took: Duration, expected: Duration) {
    assert!(took >= expected, "after {took:?}, expected {expected:?}");
    assert!(
        took < expected + Duration::from_secs(2),
        "after {took:?}, expected {expected:?}"
    );
}

/// A server connection over an in-memory pipe, and the pipe's other end.
fn server(config: Config) -> (WebSocket, DuplexStream) {
    let (io, peer) = tokio::io::duplex(64 << 10);
    let ws = from_upgraded(
        io,
        Role::Server,
        config,
        &Negotiated::default(),
        Bytes::new(),
    );
    (ws, peer)
}

/// Reads and drops everything `peer` receives until its end; returns when
/// that came.
async fn drain(mut peer: DuplexStream) -> Instant {
    let mut buf = vec![0u8; 16 << 10];
    while peer.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    Instant::now()
}

/// A peer that upgraded, then never reads while the server keeps sending:
/// once no byte moved for the write timeout, the pending `send` fails with
/// the write timeout instead of waiting forever, and the server gives the
/// connection up.
#[tokio::test(start_paused = true)]
async fn write_stall_fails_the_pending_send_after_the_write_timeout() {
    quickly(async {
        let config = Config::default()
            .with_write_timeout(TIMEOUT)
            .with_close_timeout(TIMEOUT)
            .with_write_buffer_limit(64 << 10);
        let (mut ws, stalled) = server(config);
        let started = Instant::now();
        let payload = vec![3u8; 16 << 10];
        let mut sent = 0u64;
        let error = loop {
            match ws.send(payload.clone()).await {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
        };
        about(started.elapsed(), TIMEOUT);
        assert!(sent > 0, "the pipe took some messages first");
        assert!(
            matches!(error, Error::Timeout(TimeoutKind::Write)),
            "{error:?}"
        );
        let error = ws
            .recv()
            .await
            .expect("the failure is reported")
            .unwrap_err();
        assert!(
            matches!(error, Error::Timeout(TimeoutKind::Write)),
            "{error:?}"
        );
        // The server drops its end (after at most its close timeout): the
        // peer, reading at last, reaches the end.
        let ended = drain(stalled).await;
        assert!(ended - started <= TIMEOUT * 2 + Duration::from_secs(2));
    })
    .await;
}

/// With heartbeats every 30 s and an idle timeout of 60 s, a peer that
/// reads but never answers is dropped after the idle timeout.
#[tokio::test(start_paused = true)]
async fn heartbeat_drops_a_silent_peer_after_the_idle_timeout() {
    quickly(async {
        let config = Config::default()
            .with_heartbeat_interval(Some(TIMEOUT))
            .with_idle_timeout(Some(TIMEOUT * 2));
        let (mut ws, silent) = server(config);
        let peer = tokio::spawn(drain(silent));
        let started = Instant::now();
        let error = ws
            .recv()
            .await
            .expect("the failure is reported")
            .unwrap_err();
        about(started.elapsed(), TIMEOUT * 2);
        assert!(
            matches!(error, Error::Timeout(TimeoutKind::Idle)),
            "{error:?}"
        );
        assert!(ws.recv().await.is_none());
        // The silent peer sees the connection end.
        let ended = peer.await.unwrap();
        assert!(ended - started <= TIMEOUT * 2 + Duration::from_secs(2));
    })
    .await;
}

/// A peer that answers the heartbeat pings stays connected for ten idle
/// timeouts and more.
#[tokio::test(start_paused = true)]
async fn heartbeat_keeps_a_peer_that_answers_pings() {
    quickly(async {
        let config = Config::default()
            .with_heartbeat_interval(Some(TIMEOUT))
            .with_idle_timeout(Some(TIMEOUT * 2));
        let (mut ws, io) = server(config);
        // A wavecast client answers pings in its driver, with no `recv`.
        let mut client = from_upgraded(
            io,
            Role::Client,
            Config::default(),
            &Negotiated::default(),
            Bytes::new(),
        );
        let started = Instant::now();
        let quiet = tokio::time::timeout(TIMEOUT * 20, ws.recv()).await;
        assert!(quiet.is_err(), "ended: {:?}", quiet.unwrap());
        about(started.elapsed(), TIMEOUT * 20);
        client.send("still here").await.unwrap();
        let got = ws.recv().await.unwrap().unwrap();
        assert_eq!(got, Message::from("still here"));
    })
    .await;
}

/// A peer that never answers the close frame: `close` returns once the
/// close timeout passed, with the connection failed, not clean.
#[tokio::test(start_paused = true)]
async fn close_gives_up_on_a_peer_that_never_answers() {
    quickly(async {
        let (mut ws, silent) = server(Config::default().with_close_timeout(TIMEOUT));
        let peer = tokio::spawn(drain(silent));
        let started = Instant::now();
        let outcome = ws.close(CloseCode::NORMAL, "bye").await;
        about(started.elapsed(), TIMEOUT);
        match outcome {
            Ok(Outcome::Failed(ConnectionError::Timeout(TimeoutKind::Close))) => {}
            other => panic!("{other:?}"),
        }
        let ended = peer.await.unwrap();
        assert!(ended - started <= TIMEOUT + Duration::from_secs(2));
    })
    .await;
}

/// A server that accepts TCP connections and never says a word; it holds
/// the sockets for as long as the runtime runs. Returns its `ws://` URL.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    url
}

/// `connect` to a server that never answers fails with the handshake
/// timeout once the connect deadline passed; the reconnecting client
/// gives up after its attempts instead of hanging.
#[tokio::test(start_paused = true)]
async fn connect_deadline_against_a_silent_server() {
    quickly(async {
        let url = silent_server().await;
        let config = Config::default().with_handshake_timeout(TIMEOUT);
        let (request, _) = ClientRequest::from_url(&url).unwrap();
        let started = Instant::now();
        let result = connect_with(&url, request, config.clone()).await;
        about(started.elapsed(), TIMEOUT);
        assert!(
            matches!(result, Err(Error::Handshake(HandshakeError::Timeout))),
            "{:?}",
            result.map(|_| ())
        );

        let mut client = Reconnect::new(&url)
            .unwrap()
            .with_config(config)
            .with_backoff(
                Backoff::new()
                    .with_initial(TIMEOUT)
                    .with_max_delay(TIMEOUT * 4)
                    .with_jitter(Jitter::None)
                    .with_max_attempts(Some(2)),
            );
        let started = Instant::now();
        let result = client.connect().await;
        assert!(
            matches!(result, Err(Error::Handshake(HandshakeError::Timeout))),
            "{:?}",
            result.map(|_| ())
        );
        // Three attempts of 30 s each, 30 s and 60 s apart.
        about(started.elapsed(), TIMEOUT * 6);
    })
    .await;
}
