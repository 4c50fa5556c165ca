//! TLS: `wss://` over a loopback rustls server with an `rcgen` certificate
//! when the `rustls` feature is on (`cargo test -p wavecast-tokio --features
//! rustls --test tls`); without it, a prompt `Error::Tls`.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::timeout;
use wavecast_tokio::connect;

#[cfg(not(feature = "rustls"))]
#[tokio::test]
async fn wss_without_the_feature_fails_promptly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let result = timeout(Duration::from_secs(1), connect(&format!("wss://{addr}/")))
        .await
        .expect("no hang");
    assert!(
        matches!(result, Err(wavecast_tokio::Error::Tls(_))),
        "{result:?}"
    );
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_loopback_with_a_custom_root() {
    use std::sync::Arc;

    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use wavecast_tokio::{accept, connect_tls_with, ClientRequest, Config, Message};

    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust us aborts the TLS handshake.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut ws = accept(tls).await.unwrap();
                while let Some(Ok(m)) = ws.recv().await {
                    ws.send(m).await.unwrap();
                }
            });
        }
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let url = format!("wss://localhost:{port}/secure");
    let (request, _) = ClientRequest::from_url(&url).unwrap();
    let (mut ws, _) = timeout(
        Duration::from_secs(2),
        connect_tls_with(&url, request, Config::default(), Arc::new(client_config)),
    )
    .await
    .unwrap()
    .unwrap();
    ws.send("over tls").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("over tls"));

    // Large messages, two in flight: payloads are read straight into message
    // buffers and written from the outbox slice by slice (TLS streams do not
    // write vectored).
    let big: Vec<Message> = (0..4usize)
        .map(|k| {
            Message::from(
                (0..900_000 - k * 1000)
                    .map(|i| (i * 7 + k) as u8)
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();
    for pair in big.chunks(2) {
        for m in pair {
            ws.send(m.clone()).await.unwrap();
        }
        for m in pair {
            assert_eq!(&ws.recv().await.unwrap().unwrap(), m);
        }
    }

    // The default roots do not trust our certificate.
    let refused = timeout(Duration::from_secs(2), connect(&url))
        .await
        .unwrap();
    assert!(refused.is_err());
}
