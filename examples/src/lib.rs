//! The wavecast examples are the binaries in `src/bin/`; this library holds
//! the few pieces of their command lines they share, and compiles the
//! README's code blocks as doctests, so the code a newcomer copies first is
//! known to build.

use std::io;
use std::time::Duration;

/// The async runtime a program runs on (`--runtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// tokio, through wavecast-tokio.
    Tokio,
    /// async-std, through wavecast-async-std (discontinued upstream).
    AsyncStd,
    /// smol, through wavecast-smol.
    Smol,
}

impl Runtime {
    /// The name `--runtime` takes, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Tokio => "tokio",
            Runtime::AsyncStd => "async-std",
            Runtime::Smol => "smol",
        }
    }
}

/// Parses a flag given in seconds, fractions allowed (`--heartbeat 0.5`).
pub fn seconds(value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{value:?} seconds: {e}"))
}

/// Names the address a server could not bind, keeping the error's kind:
/// `cannot listen on 127.0.0.1:9001: Address already in use (os error 98)`.
/// Use as `TcpListener::bind(addr).await.map_err(cannot_listen(addr))?`.
pub fn cannot_listen(addr: &str) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
}

/// An error a client program prints as it is: what it was doing, where, and
/// the cause (`cannot connect to ws://127.0.0.1:9001/: i/o error: …`).
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_take_fractions_and_refuse_the_rest() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("30"), Ok(Duration::from_secs(30)));
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
    }

    #[test]
    fn a_failed_bind_names_its_address() {
        let e = cannot_listen("127.0.0.1:9001")(io::ErrorKind::AddrInUse.into());
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e
            .to_string()
            .starts_with("cannot listen on 127.0.0.1:9001: "));
    }
}
