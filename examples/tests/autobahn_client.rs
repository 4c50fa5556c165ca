//! Smoke test of the `autobahn-client` binary against a small mock of the
//! conformance suite's fuzzing server, on every runtime.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use wavecast_tokio::{read_request, Accept, CloseCode, Config, Message};

#[derive(Default, Debug)]
struct Seen {
    cases_echoed: Vec<u32>,
    reports_for: Vec<String>,
}

/// Serves `/getCaseCount`, `/runCase` (three messages per case that must
/// come back unchanged) and `/updateReports`.
async fn mock_server(seen: Arc<Mutex<Seen>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let config = Config::default().with_max_message_size(16 << 20);
                let incoming = read_request(tcp, config).await.unwrap();
                let path = incoming.request().path().to_owned();
                let query = incoming.request().query().unwrap_or("").to_owned();
                let mut ws = incoming.accept(Accept::new()).await.unwrap();
                match path.as_str() {
                    "/getCaseCount" => {
                        ws.send("3").await.unwrap();
                    }
                    "/runCase" => {
                        let case: u32 = query
                            .split('&')
                            .find_map(|kv| kv.strip_prefix("case="))
                            .unwrap()
                            .parse()
                            .unwrap();
                        let sent = [
                            Message::from(format!("case {case}")),
                            Message::from(vec![case as u8; 70_000]),
                            Message::from(""),
                        ];
                        for m in &sent {
                            ws.send(m.clone()).await.unwrap();
                        }
                        for m in &sent {
                            assert_eq!(&ws.recv().await.unwrap().unwrap(), m);
                        }
                        seen.lock().unwrap().cases_echoed.push(case);
                    }
                    "/updateReports" => {
                        let agent = query.split('&').find_map(|kv| kv.strip_prefix("agent="));
                        seen.lock()
                            .unwrap()
                            .reports_for
                            .push(agent.unwrap().to_owned());
                    }
                    other => panic!("unexpected path {other}"),
                }
                let _ = ws.close(CloseCode::NORMAL, "").await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_every_case_on_every_runtime() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = mock_server(seen.clone()).await;
    for runtime in ["tokio", "async-std", "smol"] {
        let url = format!("ws://{addr}");
        let agent = format!("wavecast-{runtime}");
        let status = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::from({
                let mut c = Command::new(env!("CARGO_BIN_EXE_autobahn-client"));
                c.args(["--runtime", runtime, "--url", &url, "--agent", &agent]);
                c
            })
            .status(),
        )
        .await
        .expect("autobahn-client finishes")
        .unwrap();
        assert!(status.success(), "{runtime}: {status}");
    }
    let seen = seen.lock().unwrap();
    let mut cases = seen.cases_echoed.clone();
    cases.sort();
    assert_eq!(cases, [1, 1, 1, 2, 2, 2, 3, 3, 3]);
    assert_eq!(
        seen.reports_for,
        ["wavecast-tokio", "wavecast-async-std", "wavecast-smol"]
    );
}
