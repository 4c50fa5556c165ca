//! TLS for `wss://`, behind the `rustls` feature: `futures-rustls` over the
//! runtime's TCP stream, written once for every runtime. The TLS handshake
//! runs under the same deadline as the TCP connect and the HTTP upgrade.
//! With the `http2` feature too, ALPN may choose HTTP/2, and the WebSocket
//! then opens as in RFC 8441 (`crate::http2`).

use std::sync::Arc;
use std::time::Instant;

use wavecast_core::handshake::ClientRequest;
use wavecast_core::{Config, Error};

use crate::client::Response;
use crate::runtime::Runtime;
use crate::websocket::WebSocket;

/// Why a `wss://` connect could not even start.
fn tls_error(message: String) -> Error {
    Error::tls(message)
}

// Same signature as with the feature, which connects through `R`.
#[cfg(not(feature = "rustls"))]
#[allow(clippy::extra_unused_type_parameters)]
pub(crate) async fn connect_tls<R: Runtime>(
    _host: String,
    _port: u16,
    _request: ClientRequest,
    _config: Arc<Config>,
    _deadline: Instant,
) -> Result<(WebSocket, Response), Error> {
    Err(tls_error("wss:// needs the `rustls` feature".to_owned()))
}

#[cfg(feature = "rustls")]
pub(crate) async fn connect_tls<R: Runtime>(
    host: String,
    port: u16,
    request: ClientRequest,
    config: Arc<Config>,
    deadline: Instant,
) -> Result<(WebSocket, Response), Error> {
    let tls = default_client_config();
    connect_tls_over::<R>(host, port, request, config, tls, deadline).await
}

#[cfg(feature = "rustls")]
async fn connect_tls_over<R: Runtime>(
    host: String,
    port: u16,
    request: ClientRequest,
    config: Arc<Config>,
    tls: Arc<futures_rustls::rustls::ClientConfig>,
    deadline: Instant,
) -> Result<(WebSocket, Response), Error> {
    #[cfg(feature = "http2")]
    let tls = with_alpn(tls, request.allows_http2());
    let stream = open_tls::<R>(&host, port, tls.clone(), deadline).await?;
    #[cfg(feature = "http2")]
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        use crate::http2::{connect_over_h2, Attempt};
        let connect = wavecast_core::handshake::ExtendedConnect::new(&config, &request);
        let attempt = crate::runtime::until::<R, _>(
            deadline,
            connect_over_h2::<R, _>(stream, connect, config.clone()),
        )
        .await
        .ok_or(Error::Handshake(wavecast_core::HandshakeError::Timeout))??;
        return match attempt {
            Attempt::Connected(ws, response) => Ok((ws, response)),
            // The server speaks HTTP/2 but not RFC 8441: a second connection,
            // offering only HTTP/1.1, within what is left of the deadline.
            Attempt::NoConnectProtocol => {
                let stream = open_tls::<R>(&host, port, with_alpn(tls, false), deadline).await?;
                crate::client::client_over_inner::<R, _>(stream, request, config, deadline).await
            }
        };
    }
    crate::client::client_over_inner::<R, _>(stream, request, config, deadline).await
}

/// TCP, then TLS, both before `deadline`.
#[cfg(feature = "rustls")]
async fn open_tls<R: Runtime>(
    host: &str,
    port: u16,
    tls: Arc<futures_rustls::rustls::ClientConfig>,
    deadline: Instant,
) -> Result<futures_rustls::client::TlsStream<R::Tcp>, Error> {
    use crate::runtime::until;
    use wavecast_core::HandshakeError;

    let timeout = || Error::Handshake(HandshakeError::Timeout);
    let tcp = until::<R, _>(deadline, R::connect(host.to_owned(), port))
        .await
        .ok_or_else(timeout)??;
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| tls_error(format!("invalid server name {host:?}: {e}")))?;
    let connecting = futures_rustls::TlsConnector::from(tls).connect(name, tcp);
    Ok(until::<R, _>(deadline, connecting)
        .await
        .ok_or_else(timeout)??)
}

/// The ALPN protocols to offer (RFC 7301): `h2` then `http/1.1` when
/// HTTP/2 is allowed and the config names none of its own (a config that
/// names some is used as it is); without HTTP/2, the config's list without
/// `h2`, or `http/1.1` alone.
#[cfg(all(feature = "rustls", feature = "http2"))]
fn with_alpn(
    tls: Arc<futures_rustls::rustls::ClientConfig>,
    http2: bool,
) -> Arc<futures_rustls::rustls::ClientConfig> {
    let offered = &tls.alpn_protocols;
    let alpn: Vec<Vec<u8>> = if http2 {
        if !offered.is_empty() {
            return tls;
        }
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        let without_h2: Vec<Vec<u8>> = offered
            .iter()
            .filter(|p| p.as_slice() != b"h2")
            .cloned()
            .collect();
        if !without_h2.is_empty() && without_h2.len() == offered.len() {
            return tls;
        }
        if without_h2.is_empty() {
            vec![b"http/1.1".to_vec()]
        } else {
            without_h2
        }
    };
    let mut config = (*tls).clone();
    config.alpn_protocols = alpn;
    Arc::new(config)
}

/// A rustls client config with the webpki roots and the ring provider:
/// what `connect` uses for `wss://`.
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

/// Connects to a `wss://` URL with your own rustls config (private roots,
/// client certificates).
///
/// With the `http2` feature, a config without ALPN protocols gets `h2` and
/// `http/1.1` (see [`connect_with`](crate::connect_with) for when HTTP/2 is
/// used); a config that names its own is used as it is, except that `h2`
/// is dropped from it for [`ClientRequest::http1_only`] requests and for
/// the second connection of a fallback to HTTP/1.1.
#[cfg(feature = "rustls")]
pub fn connect_tls_with<'a, R: Runtime>(
    url: &'a str,
    request: ClientRequest,
    config: impl Into<Arc<Config>>,
    tls: Arc<futures_rustls::rustls::ClientConfig>,
) -> impl std::future::Future<Output = Result<(WebSocket, Response), Error>> + Send + 'a {
    let config = config.into();
    Box::pin(async move {
        let (_, target) = ClientRequest::from_url(url)?;
        let deadline = crate::client::connect_deadline::<R>(&config);
        connect_tls_over::<R>(target.host, target.port, request, config, tls, deadline).await
    })
}

#[cfg(all(test, feature = "rustls", feature = "http2"))]
mod tests {
    use super::*;

    fn alpn(config: &futures_rustls::rustls::ClientConfig) -> Vec<&[u8]> {
        config.alpn_protocols.iter().map(Vec::as_slice).collect()
    }

    fn with(protocols: &[&[u8]]) -> Arc<futures_rustls::rustls::ClientConfig> {
        let mut config = (*default_client_config()).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    #[test]
    fn alpn_offers_h2_unless_told_otherwise() {
        let h2: &[u8] = b"h2";
        let h1: &[u8] = b"http/1.1";
        assert_eq!(alpn(&with_alpn(with(&[]), true)), [h2, h1]);
        assert_eq!(alpn(&with_alpn(with(&[]), false)), [h1]);
        // A config's own list is kept, less `h2` without HTTP/2.
        assert_eq!(alpn(&with_alpn(with(&[h1]), true)), [h1]);
        assert_eq!(alpn(&with_alpn(with(&[h2, h1]), false)), [h1]);
        assert_eq!(alpn(&with_alpn(with(&[h2]), false)), [h1]);
        let kept = with(&[h1]);
        assert!(Arc::ptr_eq(&with_alpn(kept.clone(), false), &kept));
    }
}
