//! Per-runtime glue for the test suites: run a future to completion,
//! spawn, sleep, and the runtime's listener. Everything else is shared.
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

