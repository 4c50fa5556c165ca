//! A fourth runtime, plugged in the way a user would: threads as the
//! executor (one OS thread per task, each parked until woken), async-io
//! sockets and timers, async-broadcast rooms. Nothing here is wavecast's;
//! the generic API runs on it unchanged.

use std::future::{poll_fn, Future};
use std::net::{SocketAddr, TcpListener};
use std::pin::{pin, Pin};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use async_io::Async;
use wavecast_runtime::{Accept, Config, Hub, Message, Runtime, Timer};

mod threads;
use threads::{block_on, Threads, Unpark};

/// Runs `future`, failing the test after `limit`.
async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    let mut timer = Threads::timer(Threads::now() + limit);
    poll_fn(|cx| {
        if let Poll::Ready(value) = future.as_mut().poll(cx) {
            return Poll::Ready(value);
        }
        if timer.poll_fired(cx).is_ready() {
            panic!("timed out after {limit:?}");
        }
        Poll::Pending
    })
    .await
}

fn listener() -> (Async<TcpListener>, SocketAddr) {
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = Threads::local_addr(&listener).unwrap();
    (listener, addr)
}

/// An echo server, a task per connection, on a port of its own.
fn echo_server() -> SocketAddr {
    let (listener, addr) = listener();
    Threads::spawn(Box::pin(async move {
        while let Ok(tcp) = Threads::accept(&listener).await {
            Threads::spawn(Box::pin(async move {
                let Ok(mut ws) = wavecast_runtime::accept::<Threads, _>(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.recv().await {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
            }));
        }
    }));
    addr
}

/// Closes `ws` and checks that the close handshake completed.
async fn close_cleanly(mut ws: wavecast_runtime::WebSocket) {
    let outcome = ws
        .close(wavecast_runtime::CloseCode::NORMAL, "done")
        .await
        .unwrap();
    assert!(
        matches!(outcome, wavecast_runtime::Outcome::Clean { .. }),
        "{outcome:?}"
    );
}

#[test]
fn echo_on_a_runtime_of_our_own() {
    let addr = echo_server();
    block_on(within(Duration::from_secs(20), async {
        let url = format!("ws://{addr}/");
        let (mut ws, _) = wavecast_runtime::connect::<Threads>(&url).await.unwrap();
        for i in 0..20 {
            ws.send(format!("hello {i}")).await.unwrap();
            assert_eq!(
                ws.recv().await.unwrap().unwrap(),
                Message::from(format!("hello {i}"))
            );
        }
        let big: Vec<u8> = (0..300_000).map(|i| (i % 253) as u8).collect();
        ws.send(big.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from(big));
        close_cleanly(ws).await;
    }));
}

#[test]
fn room_publish_on_a_runtime_of_our_own() {
    let hub = Hub::<Threads>::default();
    let room = hub.room("news").unwrap();
    let server_room = room.clone();
    let (listener, addr) = listener();
    let (joined_tx, joined) = mpsc::channel();
    Threads::spawn(Box::pin(async move {
        while let Ok(tcp) = Threads::accept(&listener).await {
            let room = server_room.clone();
            let joined_tx = joined_tx.clone();
            Threads::spawn(Box::pin(async move {
                let Ok(incoming) =
                    wavecast_runtime::read_request::<Threads, _>(tcp, Config::default()).await
                else {
                    return;
                };
                let mut member = None;
                let Ok(ws) =
                    incoming.accept_then(Accept::new(), |ws| member = Some(room.join(ws.sender())))
                else {
                    return;
                };
                joined_tx.send(()).unwrap();
                let (_sender, mut receiver) = ws.split();
                while let Some(Ok(_)) = receiver.recv().await {}
                drop(member);
            }));
        }
    }));
    block_on(within(Duration::from_secs(20), async {
        let url = format!("ws://{addr}/");
        let (mut a, _) = wavecast_runtime::connect::<Threads>(&url).await.unwrap();
        let (mut b, _) = wavecast_runtime::connect::<Threads>(&url).await.unwrap();
        for _ in 0..2 {
            joined.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        assert_eq!(room.members(), 2);
        for i in 0..10 {
            assert_eq!(room.publish(format!("news {i}")), 2);
        }
        for ws in [&mut a, &mut b] {
            for i in 0..10 {
                assert_eq!(
                    ws.recv().await.unwrap().unwrap(),
                    Message::from(format!("news {i}"))
                );
            }
        }
    }));
}

/// Subscribers that leave a quiet room take their wakers with them: a
/// room that publishes nothing for a while must not hold on to the tasks
/// of every SSE stream or member that came and went meanwhile.
#[test]
fn subscribers_leaving_a_quiet_room_leave_no_waker_behind() {
    let room = Hub::<Threads>::default().room("quiet").unwrap();
    let wakers: Vec<Arc<Unpark>> = (0..1000)
        .map(|_| Arc::new(Unpark(thread::current())))
        .collect();
    for counted in &wakers {
        let waker = Waker::from(counted.clone());
        let mut sub = room.subscribe();
        assert!(sub.poll_recv(&mut Context::from_waker(&waker)).is_pending());
    }
    let kept = wakers.iter().filter(|w| Arc::strong_count(w) > 1).count();
    assert_eq!(kept, 0, "wakers of departed subscribers kept");
}

/// A task's future, as `Threads::spawn` takes it.
type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves one echo connection in a task of its own (a thread here), as
/// `wrap` makes it; reports how many tasks that task spawned once its
/// client has had its echo, and ends when the task's future has ended.
fn echo_once_in(wrap: fn(Task) -> Task) -> usize {
    let (listener, addr) = listener();
    let (spawned_tx, spawned) = mpsc::channel();
    let (ended_tx, ended) = mpsc::channel();
    Threads::spawn(Box::pin(async move {
        let tcp = Threads::accept(&listener).await.unwrap();
        let app: Task = Box::pin(async move {
            let mut ws = wavecast_runtime::accept::<Threads, _>(tcp).await.unwrap();
            while let Some(Ok(msg)) = ws.recv().await {
                ws.send(msg).await.unwrap();
                spawned_tx.send(threads::spawned_here()).unwrap();
            }
        });
        wrap(app).await;
        ended_tx.send(()).unwrap();
    }));
    block_on(within(Duration::from_secs(20), async {
        let url = format!("ws://{addr}/");
        let (mut ws, _) = wavecast_runtime::connect::<Threads>(&url).await.unwrap();
        ws.send("ping").await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("ping"));
        close_cleanly(ws).await;
    }));
    ended.recv_timeout(Duration::from_secs(5)).unwrap();
    spawned.recv_timeout(Duration::from_secs(5)).unwrap()
}

/// Inside `connection_task` the accepted connection's driver runs in the
/// application's task: no second task is spawned, the echo and a clean
/// close handshake still complete, and the task ends after both. The same
/// application spawned bare starts its driver as a task of its own.
#[test]
fn a_connection_task_drives_its_websockets_itself() {
    assert_eq!(echo_once_in(|app| Box::pin(app)), 1);
    assert_eq!(
        echo_once_in(|app| Box::pin(wavecast_runtime::connection_task(app))),
        0
    );
}

/// A connection task whose application panics leaves nothing behind on its
/// thread: a connection opened there later by a plain task still gets its
/// driver spawned (and so still works).
#[test]
fn a_panicking_connection_task_leaves_spawning_intact() {
    let addr = echo_server();
    let url = format!("ws://{addr}/");
    let panicked = std::panic::catch_unwind(|| {
        block_on(wavecast_runtime::connection_task(async {
            let (_ws, _) = wavecast_runtime::connect::<Threads>(&url).await.unwrap();
            panic!("the application fails");
        }))
    });
    assert!(panicked.is_err());
    // Same thread, no connection task: the driver must be spawned.
    let before = threads::spawned_here();
    block_on(within(Duration::from_secs(20), async {
        let (mut ws, _) = wavecast_runtime::connect::<Threads>(&url).await.unwrap();
        ws.send("still here").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::from("still here")
        );
    }));
    assert_eq!(threads::spawned_here(), before + 1);
}
