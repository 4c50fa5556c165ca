//! Per-runtime glue for the test suites: run a future to completion,
//! spawn, sleep, and the runtime's listener; and `suite_helpers!`, the
//! waiting helpers every suite expands next to its scenarios.

/// `within`, `wait_for`, `yield_now` and `background`, written against the
/// `block_on`, `sleep` and `TcpListener` in scope where it is expanded.
macro_rules! suite_helpers {
    () => {
        /// Runs `future` to completion, failing the test after `limit`.
        async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> T {
            let timer = sleep(limit);
            pin_mut!(future, timer);
            match select(future, timer).await {
                Either::Left((value, _)) => value,
                Either::Right(_) => panic!("timed out after {limit:?}"),
            }
        }

        /// Waits (up to 5 s) until `cond` holds.
        async fn wait_for(mut cond: impl FnMut() -> bool) {
            within(Duration::from_secs(5), async {
                while !cond() {
                    sleep(Duration::from_millis(2)).await;
                }
            })
            .await
        }

        /// Lets other tasks run once.
        #[allow(dead_code)] // Not every suite needs it.
        async fn yield_now() {
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    return std::task::Poll::Ready(());
                }
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            })
            .await
        }

        /// Binds a listener on a thread of its own running this
        /// runtime, runs `serve(listener)` there (for as long as it
        /// likes), and returns the address.
        fn background<F, Fut>(serve: F) -> String
        where
            F: FnOnce(TcpListener) -> Fut + Send + 'static,
            Fut: Future<Output = ()>,
        {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    tx.send(listener.local_addr().unwrap().to_string()).unwrap();
                    serve(listener).await;
                })
            });
            wait(&rx, 5)
        }
    };
}

/// Waits for a value from a server thread, failing the test on timeout.
pub(crate) fn wait<T>(rx: &std::sync::mpsc::Receiver<T>, secs: u64) -> T {
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .expect("the server reported in time")
}
pub(crate) mod rt_tokio {
    use std::future::Future;
    use std::time::Duration;

    pub(crate) use tokio::net::TcpListener;
    pub(crate) use wavecast_tokio as ws;
    pub(crate) type Rt = ws::Tokio;

    pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    pub(crate) fn spawn(f: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(f);
    }

    pub(crate) async fn sleep(d: Duration) {
        tokio::time::sleep(d).await;
    }
}

pub(crate) mod rt_smol {
    use std::future::Future;
    use std::time::Duration;

    pub(crate) use smol::net::TcpListener;
    pub(crate) use wavecast_smol as ws;
    pub(crate) type Rt = ws::Smol;

    pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
        smol::block_on(f)
    }

    pub(crate) fn spawn(f: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(f).detach();
    }

    pub(crate) async fn sleep(d: Duration) {
        smol::Timer::after(d).await;
    }
}

pub(crate) mod rt_async_std {
    use std::future::Future;
    use std::time::Duration;

    pub(crate) use async_std::net::TcpListener;
    pub(crate) use wavecast_async_std as ws;
    pub(crate) type Rt = ws::AsyncStd;

    pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
        async_std::task::block_on(f)
    }

    pub(crate) fn spawn(f: impl Future<Output = ()> + Send + 'static) {
        async_std::task::spawn(f);
    }

    pub(crate) async fn sleep(d: Duration) {
        async_std::task::sleep(d).await;
    }
}
