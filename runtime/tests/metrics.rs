//! `metrics::live_connections` counts both ends of every connection from
//! the handshake until its driver has finished. In its own test binary (its
//! own process), so no other test's connections are counted.

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use async_io::Async;
use wavecast_runtime::metrics::live_connections;

mod threads;
use threads::Threads;
use wavecast_runtime::{CloseCode, Runtime};

/// Waits (up to 10 s) until `live_connections()` is `n`.
fn settles_at(n: usize) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while live_connections() != n {
        assert!(
            Instant::now() < give_up,
            "{} live connections, expected {n}",
            live_connections()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn live_connections_count_both_ends_until_their_drivers_end() {
    assert_eq!(live_connections(), 0);
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = Threads::local_addr(&listener).unwrap();
    Threads::spawn(async move {
        while let Ok(tcp) = Threads::accept(&listener).await {
            Threads::spawn(async move {
                if let Ok(mut ws) = wavecast_runtime::accept::<Threads, _>(tcp).await {
                    while let Some(Ok(_)) = ws.recv().await {}
                }
            });
        }
    });
    let url = format!("ws://{addr}/");
    let (mut clean, _) = async_io::block_on(wavecast_runtime::connect::<Threads>(&url)).unwrap();
    let (dropped, _) = async_io::block_on(wavecast_runtime::connect::<Threads>(&url)).unwrap();
    // Two clients and the two server ends.
    settles_at(4);
    async_io::block_on(clean.close(CloseCode::NORMAL, "")).unwrap();
    settles_at(2);
    // Dropping every handle ends the connection too.
    drop(dropped);
    settles_at(0);
}
