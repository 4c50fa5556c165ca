//! TLS for `wss://`, behind the `rustls` feature.

use std::sync::Arc;

use tokio::net::TcpStream;
use wavecast_core::handshake::ClientRequest;
use wavecast_core::Config;

use crate::client::Response;
use crate::error::Error;
use crate::websocket::WebSocket;

#[cfg(not(feature = "rustls"))]
pub(crate) async fn connect_tls(
    _tcp: TcpStream,
    _host: &str,
    _request: ClientRequest,
    _config: Arc<Config>,
) -> Result<(WebSocket, Response), Error> {
    Err(Error::Tls(
        "wss:// needs the `rustls` feature of wavecast-tokio".to_owned(),
    ))
}

#[cfg(feature = "rustls")]
pub(crate) async fn connect_tls(
    tcp: TcpStream,
    host: &str,
    request: ClientRequest,
    config: Arc<Config>,
) -> Result<(WebSocket, Response), Error> {
    let connector = tokio_rustls::TlsConnector::from(default_client_config());
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| Error::Tls(format!("invalid server name {host:?}: {e}")))?;
    let stream = connector.connect(name, tcp).await?;
    crate::client::client_over_inner(stream, request, config).await
}

/// A rustls client config trusting the webpki roots, with the ring provider.
#[cfg(feature = "rustls")]
pub fn default_client_config() -> Arc<tokio_rustls::rustls::ClientConfig> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Connects over TLS with a caller-supplied rustls config (custom roots,
/// client certificates). The handshake's state is boxed and freed once it
/// ends, as with [`crate::connect_with`].
#[cfg(feature = "rustls")]
pub fn connect_tls_with<'a>(
    url: &'a str,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
) -> impl std::future::Future<Output = Result<(WebSocket, Response), Error>> + 'a {
    Box::pin(connect_tls_with_inner(url, request, config.into(), tls))
}

#[cfg(feature = "rustls")]
async fn connect_tls_with_inner(
    url: &str,
    request: ClientRequest,
    config: Arc<Config>,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
) -> Result<(WebSocket, Response), Error> {
    let (_, target) = ClientRequest::from_url(url)?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
    tcp.set_nodelay(true)?;
    let name = rustls_pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| Error::Tls(format!("invalid server name {:?}: {e}", target.host)))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    crate::client::client_over_inner(stream, request, config).await
}
