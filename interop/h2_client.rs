//! The HTTP/2 interop client, written once for every runtime: WebSockets
//! over HTTP/2 (RFC 8441) against a third-party server over TLS (Hypercorn,
//! see `.ci/interop` and `.ci/interop-peers/h2_peer_server.py`).
//!
//! Each adapter's example (`interop_h2_client`, `interop_h2_client_smol`,
//! `interop_h2_client_async_std`, built with the adapter's `rustls` and
//! `http2` features) includes this file as a module and supplies the
//! runtime in a sibling module `rt`, as for `interop/client.rs`.
//!
//! Usage: `NAME wss://localhost:PORT CERT_PEM [PEER_NAME]`, where
//! `CERT_PEM` is the server's self-signed certificate, trusted as the only
//! root.
//!
//! The peer must echo on any path, answer the text `http-version?` with the
//! HTTP version it saw (`2`), choose the subprotocol `chat` when offered,
//! refuse `/reject` with 403 and close `/close` with 4001 "bye". Every
//! scenario but the last checks that the connection used HTTP/2, and says
//! so in its `PASS` line; the last one asks for HTTP/1.1 on the same server.
//!
//! Prints `PASS <scenario>` or `FAIL <scenario>: <why>` for each scenario
//! and exits with 1 if any failed (2 on a usage error).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::rt::ws::rustls;
use crate::rt::ws::rustls::pki_types::pem::PemObject;
use crate::rt::ws::rustls::pki_types::CertificateDer;
use crate::rt::ws::{
    connect_tls_with, ClientRequest, CloseCode, Config, Error, HandshakeError, HttpVersion,
    Message, Outcome, Response, WebSocket,
};
use crate::rt::{timeout, NAME};

type Res = Result<String, String>;

const STEP: Duration = Duration::from_secs(10);

/// Where to connect and whom to trust.
struct Peer {
    base: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Peer {
    async fn open(
        &self,
        path: &str,
        request: impl FnOnce(ClientRequest) -> ClientRequest,
    ) -> Result<(WebSocket, Response), Error> {
        let url = format!("{}{path}", self.base);
        let (base, _) = ClientRequest::from_url(&url)?;
        let connecting = connect_tls_with(&url, request(base), config(), self.tls.clone());
        timeout(STEP, connecting)
            .await
            .unwrap_or(Err(Error::Handshake(HandshakeError::Timeout)))
    }

    /// Opens `path` and insists on HTTP/2.
    async fn open_h2(&self, path: &str) -> Result<(WebSocket, Response), String> {
        let (ws, response) = self
            .open(path, |r| r)
            .await
            .map_err(|e| format!("connect to {path} failed: {e}"))?;
        check_h2(&response)?;
        Ok((ws, response))
    }
}

fn config() -> Config {
    Config::default()
        .with_max_message_size(16 << 20)
        .with_max_frame_size(16 << 20)
}

fn check_h2(response: &Response) -> Result<(), String> {
    match response.http_version {
        HttpVersion::Http2 => Ok(()),
        other => Err(format!("expected HTTP/2, the connection used {other:?}")),
    }
}

async fn recv(ws: &mut WebSocket) -> Result<Message, String> {
    match timeout(STEP, ws.recv()).await {
        Err(_) => Err("no message within 10 s".into()),
        Ok(None) => Err("the connection closed".into()),
        Ok(Some(Err(e))) => Err(format!("receive failed: {e}")),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

async fn echo(ws: &mut WebSocket, message: Message) -> Result<(), String> {
    ws.send(message.clone())
        .await
        .map_err(|e| format!("send failed: {e}"))?;
    let got = recv(ws).await?;
    if got != message {
        return Err(format!(
            "echo differs: sent {} bytes, got {} bytes",
            message.len(),
            got.len()
        ));
    }
    Ok(())
}

async fn close(ws: &mut WebSocket) -> Result<(), String> {
    match timeout(STEP, ws.close(CloseCode::NORMAL, "done")).await {
        Err(_) => Err("close handshake timed out".into()),
        Ok(Err(e)) => Err(format!("close failed: {e}")),
        Ok(Ok(Outcome::Clean { .. })) => Ok(()),
        Ok(Ok(other)) => Err(format!("close ended {other:?}")),
    }
}

/// Both ends agree on HTTP/2: our `Response`, and the version the peer saw.
async fn extended_connect(peer: &Peer) -> Res {
    let (mut ws, response) = peer.open_h2("/echo").await?;
    ws.send("http-version?")
        .await
        .map_err(|e| format!("send failed: {e}"))?;
    match recv(&mut ws).await? {
        Message::Text(t) if t.as_str() == "2" => {}
        other => return Err(format!("the peer saw HTTP version {other:?}")),
    }
    close(&mut ws).await?;
    Ok(format!("{:?}, peer saw 2", response.http_version))
}

async fn text(peer: &Peer) -> Res {
    let (mut ws, response) = peer.open_h2("/echo").await?;
    echo(&mut ws, Message::from("héllo over h2")).await?;
    close(&mut ws).await?;
    Ok(format!("{:?}", response.http_version))
}

async fn binary(peer: &Peer) -> Res {
    let (mut ws, response) = peer.open_h2("/echo").await?;
    echo(&mut ws, Message::from((0..=255u8).collect::<Vec<u8>>())).await?;
    close(&mut ws).await?;
    Ok(format!("{:?}", response.http_version))
}

/// 1 MiB of incompressible bytes each way: many times the HTTP/2 windows.
async fn one_mib(peer: &Peer) -> Res {
    let (mut ws, response) = peer.open_h2("/echo").await?;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let payload: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    echo(&mut ws, Message::from(payload)).await?;
    close(&mut ws).await?;
    Ok(format!("{:?}", response.http_version))
}

async fn deflate_and_subprotocol(peer: &Peer) -> Res {
    let (mut ws, response) = peer
        .open("/echo", |r| r.subprotocol("chat").expect("a token"))
        .await
        .map_err(|e| format!("connect failed: {e}"))?;
    check_h2(&response)?;
    if response.subprotocol.as_deref() != Some("chat") {
        return Err(format!(
            "expected subprotocol chat, got {:?}",
            response.subprotocol
        ));
    }
    let ext = response
        .headers
        .get("sec-websocket-extensions")
        .unwrap_or("");
    if !ext.starts_with("permessage-deflate") {
        return Err(format!(
            "expected permessage-deflate, the peer answered {ext:?}"
        ));
    }
    echo(&mut ws, Message::from("compressed ".repeat(1000))).await?;
    close(&mut ws).await?;
    Ok(format!("{:?}", response.http_version))
}

async fn close_by_peer(peer: &Peer) -> Res {
    let (mut ws, response) = peer.open_h2("/close").await?;
    match timeout(STEP, ws.recv()).await {
        Err(_) => return Err("the peer did not close".into()),
        Ok(Some(Ok(m))) => return Err(format!("unexpected message {m:?}")),
        Ok(_) => {}
    }
    match ws.close_frame() {
        Some(f) if f.code == CloseCode(4001) && &*f.reason == "bye" => {
            Ok(format!("{:?}", response.http_version))
        }
        other => Err(format!("expected close 4001 \"bye\", got {other:?}")),
    }
}

async fn rejected(peer: &Peer) -> Res {
    match peer.open("/reject", |r| r).await {
        Ok(_) => Err("handshake succeeded, expected 403".into()),
        Err(Error::Handshake(HandshakeError::Rejected { status: 403, .. })) => {
            Ok("403 to the extended CONNECT".into())
        }
        Err(e) => Err(format!("expected a 403 rejection, got: {e} ({e:?})")),
    }
}

/// `http1_only` on the same server: HTTP/1.1, and the peer agrees.
async fn http1_only(peer: &Peer) -> Res {
    let (mut ws, response) = peer
        .open("/echo", ClientRequest::http1_only)
        .await
        .map_err(|e| format!("connect failed: {e}"))?;
    if response.http_version != HttpVersion::Http11 {
        return Err(format!(
            "expected HTTP/1.1, got {:?}",
            response.http_version
        ));
    }
    ws.send("http-version?")
        .await
        .map_err(|e| format!("send failed: {e}"))?;
    match recv(&mut ws).await? {
        Message::Text(t) if t.as_str() == "1.1" => {}
        other => return Err(format!("the peer saw HTTP version {other:?}")),
    }
    close(&mut ws).await?;
    Ok(format!("{:?}, peer saw 1.1", response.http_version))
}

async fn run(name: &str, f: impl Future<Output = Res>, failures: &mut u32) {
    let start = std::time::Instant::now();
    let res = match timeout(Duration::from_secs(30), f).await {
        Ok(r) => r,
        Err(_) => Err("scenario timed out after 30 s".into()),
    };
    let ms = start.elapsed().as_millis();
    match res {
        Ok(note) => println!("PASS {name} ({note}, {ms} ms)"),
        Err(e) => {
            *failures += 1;
            println!("FAIL {name}: {e}");
        }
    }
}

/// A client config that trusts only the certificate in `path`, with no
/// ALPN of its own (the connect offers `h2` and `http/1.1`).
fn trusting(path: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let cert = CertificateDer::from_pem_file(path).map_err(|e| format!("{path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).map_err(|e| format!("{path}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Parses the arguments, runs every scenario in order and exits non-zero if
/// any failed.
pub(crate) async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(cert)) = (args.next(), args.next()) else {
        eprintln!("usage: {NAME} wss://localhost:PORT CERT_PEM [PEER_NAME]");
        std::process::exit(2);
    };
    let tls = trusting(&cert).unwrap_or_else(|e| {
        eprintln!("{NAME}: {e}");
        std::process::exit(2);
    });
    let peer_name = args.next().unwrap_or_else(|| "peer".into());
    let peer = Peer {
        base: base.trim_end_matches('/').to_owned(),
        tls,
    };
    let name = |scenario: &str| format!("wavecast h2 client -> {peer_name} server: {scenario}");
    let mut failures = 0;
    let f = &mut failures;
    let p = &peer;
    run(
        &name("extended CONNECT over HTTP/2"),
        extended_connect(p),
        f,
    )
    .await;
    run(&name("text"), text(p), f).await;
    run(&name("binary"), binary(p), f).await;
    run(&name("1 MiB"), one_mib(p), f).await;
    run(
        &name("permessage-deflate and subprotocol"),
        deflate_and_subprotocol(p),
        f,
    )
    .await;
    run(&name("close 4001 (peer closes)"), close_by_peer(p), f).await;
    run(&name("rejected handshake 403"), rejected(p), f).await;
    run(&name("http1_only takes HTTP/1.1"), http1_only(p), f).await;
    if failures > 0 {
        eprintln!(
            "{NAME}: {failures} scenario(s) failed against {peer_name} at {}",
            peer.base
        );
        std::process::exit(1);
    }
}
