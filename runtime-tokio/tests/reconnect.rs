//! The reconnecting client against a server that restarts on the same port.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use wavecast_tokio::{accept, Backoff, Jitter, Message, Reconnect};

/// A server that greets each connection with `greeting`, then echoes.
fn greeter(listener: TcpListener, greeting: &'static str) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = Vec::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            connections.push(tokio::spawn(async move {
                let mut ws = accept(tcp).await.unwrap();
                ws.send(greeting).await.unwrap();
                while let Some(Ok(m)) = ws.recv().await {
                    let _ = ws.send(m).await;
                }
            }));
            // Aborting this task drops the connection tasks' handles only;
            // keep them so the restart test can abort everything.
            connections.retain(|c| !c.is_finished());
            if connections.len() > 8 {
                break;
            }
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

#[tokio::test]
async fn reconnects_after_the_server_restarts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let first = greeter(listener, "first");
    let mut client = Reconnect::new(&format!("ws://{addr}/"))
        .unwrap()
        .with_backoff(backoff());
    let (mut ws, _) = client.connect().await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("first"));

    // The server goes away: the accept loop stops and the connection ends.
    first.abort();
    drop(ws);
    let restart_at = Instant::now() + Duration::from_millis(150);
    let second = tokio::spawn(async move {
        tokio::time::sleep_until(restart_at).await;
        let listener = TcpListener::bind(addr).await.unwrap();
        greeter(listener, "second").await.unwrap();
    });
    let started = Instant::now();
    let (mut ws, _) = timeout(Duration::from_secs(2), client.connect())
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "waited for the restart"
    );
    assert_eq!(client.attempts(), 0, "the schedule starts over");
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("second"));
    second.abort();
}

#[tokio::test]
async fn gives_up_after_the_attempt_limit() {
    // Bind then drop to find a port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut client = Reconnect::new(&format!("ws://{addr}/"))
        .unwrap()
        .with_backoff(backoff().with_max_attempts(Some(3)));
    let started = Instant::now();
    let result = timeout(Duration::from_secs(2), client.connect())
        .await
        .unwrap();
    assert!(result.is_err());
    // 20 + 40 + 80 ms of backoff between four attempts.
    assert!(started.elapsed() >= Duration::from_millis(140));
}
