//! The handshake's state is boxed inside the library and freed when the
//! handshake ends, so a task that awaits `accept_with` (or `read_request`,
//! `client_over`, `connect_with`) and then serves the connection is not
//! sized for the handshake for the rest of its life (a future is as large as
//! its largest state). Idle memory per connection depends on it.
//!
//! tokio only: the futures measured are the adapter's (its compat
//! wrapper included); the other adapters hand out the same generic
//! futures from `wavecast-runtime`.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use wavecast_tokio::{
    accept, accept_with, client_over, connect_with, from_upgraded, read_request, Accept,
    ClientRequest, Config, Incoming, Message, Negotiated, Role,
};

const SMALL: usize = 256;

async fn echo(tcp: TcpStream, config: Arc<Config>) {
    let Ok(mut ws) = accept_with(tcp, config, |_req| Ok(Accept::new())).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.recv().await {
        if ws.send(msg).await.is_err() {
            break;
        }
    }
}

#[tokio::test]
async fn public_futures_are_small() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp = || TcpStream::connect(addr);
    let request = || ClientRequest::from_url("ws://127.0.0.1/").unwrap().0;

    // The handshakes: one pointer each, whatever the config is passed as.
    let config = Config::default();
    let sizes = [
        ("accept", size_of_val(&accept(tcp().await.unwrap()))),
        (
            "accept_with",
            size_of_val(&accept_with(tcp().await.unwrap(), config.clone(), |_| {
                Ok(Accept::new())
            })),
        ),
        (
            "read_request",
            size_of_val(&read_request(tcp().await.unwrap(), config.clone())),
        ),
        (
            "client_over",
            size_of_val(&client_over(
                tcp().await.unwrap(),
                request(),
                config.clone(),
            )),
        ),
        (
            "connect_with",
            size_of_val(&connect_with("ws://127.0.0.1/", request(), config.clone())),
        ),
    ];
    for (name, size) in sizes {
        assert!(size <= 16, "{name} future is {size} bytes");
    }
    assert!(size_of::<Incoming<TcpStream>>() <= 16);

    // A whole echo connection task, written the plain way.
    let task = echo(tcp().await.unwrap(), Arc::new(config.clone()));
    assert!(
        size_of_val(&task) < SMALL,
        "echo task {}",
        size_of_val(&task)
    );

    // The per-message futures hold the message once.
    let mut ws = from_upgraded(
        tcp().await.unwrap(),
        Role::Server,
        config,
        &Negotiated::default(),
        Default::default(),
    );
    let recv = size_of_val(&ws.recv());
    assert!(recv <= 32, "recv future is {recv} bytes");
    let send = size_of_val(&ws.send(Message::Text("a".into())));
    assert!(
        send <= size_of::<Message>() + 16,
        "send future is {send} bytes"
    );
}
