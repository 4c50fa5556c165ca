//! Shared bits of the bench binaries: argument lookup and the fd limit.

use std::net::SocketAddr;

/// Value of `--name VALUE` (or `--name=VALUE`) on the command line.
pub fn arg(name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == flag {
            return args.next();
        }
        if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            return Some(v.to_owned());
        }
    }
    None
}

/// Whether `--name` is present.
pub fn flag(name: &str) -> bool {
    let flag = format!("--{name}");
    std::env::args().skip(1).any(|a| a == flag)
}

/// `--addr`, default 127.0.0.1:9001.
pub fn addr() -> SocketAddr {
    arg("addr")
        .unwrap_or_else(|| "127.0.0.1:9001".into())
        .parse()
        .expect("--addr must be ip:port")
}

/// Raise the soft RLIMIT_NOFILE to the hard limit (10,000 idle connections
/// need more than the usual 1024). Returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur
    }
}

/// One-worker runtime, as every server in the comparison uses.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
