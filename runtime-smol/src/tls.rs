//! TLS for `wss://`, behind the `rustls` feature.

use std::sync::Arc;

use wavecast_core::handshake::ClientRequest;
use wavecast_core::{Config, Error};

use crate::client::Response;
use crate::runtime::Runtime;
use crate::websocket::WebSocket;

// Same signature as with the feature, which connects through `R`.
#[cfg(not(feature = "rustls"))]
#[allow(clippy::extra_unused_type_parameters)]
pub(crate) async fn connect_tls<R: Runtime>(
    _host: String,
    _port: u16,
    _request: ClientRequest,
    _config: Arc<Config>,
) -> Result<(WebSocket, Response), Error> {
    Err(Error::Tls("wss:// needs the `rustls` feature".to_owned()))
}

#[cfg(feature = "rustls")]
pub(crate) async fn connect_tls<R: Runtime>(
    host: String,
    port: u16,
    request: ClientRequest,
    config: Arc<Config>,
) -> Result<(WebSocket, Response), Error> {
    connect_tls_over::<R>(host, port, request, config, default_client_config()).await
}

#[cfg(feature = "rustls")]
async fn connect_tls_over<R: Runtime>(
    host: String,
    port: u16,
    request: ClientRequest,
    config: Arc<Config>,
    tls: Arc<futures_rustls::rustls::ClientConfig>,
) -> Result<(WebSocket, Response), Error> {
    let tcp = R::connect(host.clone(), port).await?;
    let name = rustls_pki_types::ServerName::try_from(host.clone())
        .map_err(|e| Error::Tls(format!("invalid server name {host:?}: {e}")))?;
    let stream = futures_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    crate::client::client_over_inner::<_, R>(stream, request, config).await
}

/// A rustls client config trusting the webpki roots, with the ring provider.
#[cfg(feature = "rustls")]
pub fn default_client_config() -> Arc<futures_rustls::rustls::ClientConfig> {
    use futures_rustls::rustls;
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
    tls: Arc<futures_rustls::rustls::ClientConfig>,
) -> impl std::future::Future<Output = Result<(WebSocket, Response), Error>> + 'a {
    connect_tls_with_on::<crate::runtime::Smol>(url, request, config, tls)
}

/// [`connect_tls_with`] on runtime `R`.
#[cfg(feature = "rustls")]
#[doc(hidden)]
pub fn connect_tls_with_on<'a, R: Runtime>(
    url: &'a str,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
    tls: Arc<futures_rustls::rustls::ClientConfig>,
) -> impl std::future::Future<Output = Result<(WebSocket, Response), Error>> + 'a {
    let config = config.into();
    Box::pin(async move {
        let (_, target) = ClientRequest::from_url(url)?;
        connect_tls_over::<R>(target.host, target.port, request, config, tls).await
    })
}
