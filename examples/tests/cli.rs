//! The programs' command lines: `--help` describes every flag with its
//! default and exits 0, a bad flag exits 2, and a server that cannot listen
//! or a client that cannot connect says where and exits 1.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};

use support::{free_addr, RUNTIMES};

/// A flag and the default its help shows (`None`: a switch, off unless given).
type Flag = (&'static str, Option<&'static str>);

/// Every program with every flag it takes.
const PROGRAMS: [(&str, &str, &[Flag]); 8] = [
    (
        "echo",
        env!("CARGO_BIN_EXE_echo"),
        &[
            ("--runtime", Some("tokio")),
            ("--addr", Some("127.0.0.1:9001")),
            ("--heartbeat", Some("off")),
            ("--stream", None),
        ],
    ),
    (
        "chat",
        env!("CARGO_BIN_EXE_chat"),
        &[
            ("--runtime", Some("tokio")),
            ("--addr", Some("127.0.0.1:60000")),
            ("--max-connections", Some("1000")),
            ("--https", None),
            ("--allow-host", Some("none")),
            ("--redis", Some("none")),
        ],
    ),
    (
        "client",
        env!("CARGO_BIN_EXE_client"),
        &[
            ("--runtime", Some("tokio")),
            ("--url", Some("ws://127.0.0.1:9001/")),
            ("--count", Some("run until Ctrl-C")),
        ],
    ),
    (
        "autobahn-client",
        env!("CARGO_BIN_EXE_autobahn-client"),
        &[
            ("--runtime", Some("tokio")),
            ("--url", Some("ws://127.0.0.1:9001")),
            ("--agent", Some("wavecast")),
        ],
    ),
    (
        "hyper-upgrade",
        env!("CARGO_BIN_EXE_hyper-upgrade"),
        &[
            ("--runtime", Some("tokio")),
            ("--addr", Some("127.0.0.1:9002")),
        ],
    ),
    (
        "axum-chat",
        env!("CARGO_BIN_EXE_axum-chat"),
        &[
            ("--addr", Some("127.0.0.1:3000")),
            ("--ping", Some("10")),
            ("--idle", Some("30")),
        ],
    ),
    (
        "soak",
        env!("CARGO_BIN_EXE_soak"),
        &[
            ("--runtime", Some("tokio")),
            ("--seed", Some("from the clock, printed at the start")),
            ("--connections", Some("3000")),
            ("--concurrency", Some("200")),
            ("--rounds", Some("5")),
            ("--rss-slack-kib", Some("8192")),
        ],
    ),
    (
        "stream-check",
        env!("CARGO_BIN_EXE_stream-check"),
        &[
            ("--url", Some("ws://127.0.0.1:9001/")),
            ("--bytes", Some("1073741824")),
            ("--text", None),
            ("--deflate", None),
            ("--stall", Some("0")),
            ("--hold", Some("5")),
        ],
    ),
];

fn run(exe: &str, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("start {exe}: {e}"))
}

/// `--help` text split into one entry per option: the option's text from
/// the line that starts with its flag (`--addr <HOST:PORT>`, `-h, --help`)
/// up to the next option's.
fn options(help: &str) -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = Vec::new();
    let mut in_options = false;
    for line in help.lines() {
        if line == "Options:" {
            in_options = true;
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let long = trimmed
            .split_whitespace()
            .find(|word| word.starts_with("--"))
            .map(|word| word.trim_end_matches(','));
        match long {
            Some(flag) if in_options && indent < 8 && trimmed.starts_with('-') => {
                options.push((flag.to_owned(), format!("{line}\n")))
            }
            _ => {
                if let Some((_, text)) = options.last_mut() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    options
}

#[test]
fn help_lists_every_flag_with_its_default_and_exits_0() {
    for (name, exe, flags) in PROGRAMS {
        let out = run(exe, &["--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --help: {:?}", out.status);
        assert!(help.contains(&format!("Usage: {name} ")), "{name}: {help}");
        let listed = options(&help);
        let mut names: Vec<&str> = listed.iter().map(|(flag, _)| flag.as_str()).collect();
        names.retain(|flag| !["--help", "--version"].contains(flag));
        let expected: Vec<&str> = flags.iter().map(|(flag, _)| *flag).collect();
        assert_eq!(names, expected, "{name}'s flags: {help}");
        for ((flag, text), (_, default)) in listed.iter().zip(flags) {
            // The help describes the flag, not just names it and its value.
            let words = text.split_whitespace().count();
            assert!(words >= 5, "{name} {flag} has no description: {help}");
            match default {
                Some(default) => assert!(
                    text.contains(&format!("[default: {default}]")),
                    "{name} {flag} shows no default {default:?}: {text}"
                ),
                None => assert!(!text.contains("[default:"), "{name} {flag}: {text}"),
            }
        }
    }
}

#[test]
fn runtimes_are_listed_where_taken() {
    for (name, exe, flags) in PROGRAMS {
        if flags.iter().any(|(flag, _)| *flag == "--runtime") {
            let help = String::from_utf8_lossy(&run(exe, &["--help"]).stdout).into_owned();
            for runtime in RUNTIMES {
                assert!(help.contains(&format!("- {runtime}:")), "{name}: {help}");
            }
        }
    }
}

#[test]
fn bad_flags_exit_2_with_what_was_wrong() {
    for (name, exe, flags) in PROGRAMS {
        let out = run(exe, &["--no-such-flag"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains("'--no-such-flag'"), "{name}: {stderr}");
        if flags.iter().any(|(flag, _)| *flag == "--runtime") {
            let out = run(exe, &["--runtime", "tokyo"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
            assert!(
                stderr.contains("tokio, async-std, smol"),
                "{name}: {stderr}"
            );
        }
    }
}

#[test]
fn an_address_in_use_is_named_and_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let addr = taken.local_addr().expect("local addr").to_string();
    let servers = [
        ("echo", env!("CARGO_BIN_EXE_echo")),
        ("chat", env!("CARGO_BIN_EXE_chat")),
        ("hyper-upgrade", env!("CARGO_BIN_EXE_hyper-upgrade")),
        ("axum-chat", env!("CARGO_BIN_EXE_axum-chat")),
    ];
    for (name, exe) in servers {
        let tokio_only = name == "axum-chat";
        for runtime in RUNTIMES {
            let out = if tokio_only {
                run(exe, &["--addr", &addr])
            } else {
                run(exe, &["--runtime", runtime, "--addr", &addr])
            };
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name} on {runtime}: {stderr}");
            let expected = format!("{name}: cannot listen on {addr}: ");
            assert!(
                stderr.starts_with(&expected) && stderr.lines().count() == 1,
                "{name} on {runtime} said {stderr:?}, not {expected:?}…"
            );
        }
    }
}

#[test]
fn chat_https_says_what_it_needs_and_where_it_failed() {
    let exe = env!("CARGO_BIN_EXE_chat");
    let out = run(exe, &["--https", "--runtime", "smol"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--https runs on tokio only"), "{stderr}");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let addr = taken.local_addr().expect("local addr").to_string();
    let out = run(exe, &["--https", "--addr", &addr]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = if cfg!(feature = "rustls") {
        format!("chat: cannot listen on {addr}: ")
    } else {
        "chat: --https needs TLS, which is behind the examples' `rustls` feature".to_owned()
    };
    assert!(
        stderr.starts_with(&expected),
        "chat said {stderr:?}, not {expected:?}…"
    );
}

#[test]
fn chat_with_an_unreachable_redis_says_so_and_exits_1() {
    // A port that was free a moment ago: no Redis there.
    let url = format!("redis://{}", free_addr());
    let exe = env!("CARGO_BIN_EXE_chat");
    for runtime in RUNTIMES {
        let addr = free_addr();
        let out = run(
            exe,
            &["--runtime", runtime, "--addr", &addr, "--redis", &url],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "chat on {runtime}: {stderr}");
        let expected = format!("chat: cannot use Redis at {url}: ");
        assert!(
            stderr.starts_with(&expected) && stderr.lines().count() == 1,
            "chat on {runtime} said {stderr:?}, not {expected:?}…"
        );
    }
}

#[test]
fn a_refused_connection_names_the_url_and_exits_1() {
    // A port that was free a moment ago: nothing listens there.
    let url = format!("ws://{}/", free_addr());
    for runtime in RUNTIMES {
        let out = run(
            env!("CARGO_BIN_EXE_client"),
            &["--runtime", runtime, "--url", &url],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "client on {runtime}: {stderr}");
        let expected = format!("client: cannot connect to {url}: ");
        assert!(stderr.starts_with(&expected), "client said {stderr:?}");
    }
}
