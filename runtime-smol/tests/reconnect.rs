//! The reconnecting client against a server that restarts on the same port.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_io::Timer;
use smol::net::TcpListener;
use smol::Task;
use wavecast_smol::{accept, Backoff, Jitter, Message, Reconnect};

async fn timeout<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    smol::future::or(f, async {
        Timer::after(limit).await;
        panic!("timed out after {limit:?}")
    })
    .await
}

/// A server that greets each connection with `greeting`, then echoes.
/// Dropping the task cancels it and its connections.
fn greeter(listener: TcpListener, greeting: &'static str) -> Task<()> {
    smol::spawn(async move {
        let mut connections = Vec::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            connections.push(smol::spawn(async move {
                let mut ws = accept(tcp).await.unwrap();
                ws.send(greeting).await.unwrap();
                while let Some(Ok(m)) = ws.recv().await {
                    let _ = ws.send(m).await;
                }
            }));
        }
    })
}

fn backoff() -> Backoff {
    Backoff::new()
        .with_initial(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(100))
        .with_jitter(Jitter::None)
        .with_max_attempts(Some(30))
}

#[test]
fn reconnects_after_the_server_restarts() {
    smol::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let first = greeter(listener, "first");
        let mut client = Reconnect::new(&format!("ws://{addr}/"))
            .unwrap()
            .with_backoff(backoff());
        let (mut ws, _) = client.connect().await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("first"));

        // The server goes away: the accept loop stops and the connection ends.
        drop(first);
        drop(ws);
        let second = smol::spawn(async move {
            Timer::after(Duration::from_millis(150)).await;
            let listener = TcpListener::bind(addr).await.unwrap();
            greeter(listener, "second").await;
        });
        let started = Instant::now();
        let (mut ws, _) = timeout(Duration::from_secs(2), client.connect())
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100), "waited");
        assert_eq!(client.attempts(), 0, "the schedule starts over");
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("second"));
        drop(second);
    })
}

#[test]
fn gives_up_after_the_attempt_limit() {
    smol::block_on(async {
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let mut client = Reconnect::new(&format!("ws://{addr}/"))
            .unwrap()
            .with_backoff(backoff().with_max_attempts(Some(3)));
        let started = Instant::now();
        let result = timeout(Duration::from_secs(2), client.connect()).await;
        assert!(result.is_err());
        // 20 + 40 + 80 ms of backoff between four attempts.
        assert!(started.elapsed() >= Duration::from_millis(140));
    })
}
