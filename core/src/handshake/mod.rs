//! The opening handshake (RFC 6455 §4): a typed step before a [`crate::Connection`].
//!
//! The server side parses the upgrade request, lets the application inspect
//! it, and builds the `101` (or a rejection); the client side builds the
//! request and validates the answer. Either hands over [`Negotiated`]
//! parameters and any bytes that arrived after the HTTP head.

pub mod client;
pub mod server;

/// The GUID appended to the client's key before hashing (RFC 6455 §1.3).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Parameters both sides agreed on during the handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// The subprotocol the server chose, if any.
    pub subprotocol: Option<String>,
    /// Accepted extensions, as the server's `Sec-WebSocket-Extensions` items.
    /// Empty until an extension (permessage-deflate) is implemented.
    pub extensions: Vec<String>,
}

impl Negotiated {
    /// Parameters with a subprotocol and no extensions.
    pub fn with_subprotocol(subprotocol: Option<String>) -> Self {
        Negotiated {
            subprotocol,
            extensions: Vec::new(),
        }
    }
}

/// `Sec-WebSocket-Accept` for a client key: base64 of SHA-1 of key + GUID (§4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc_1_3_accept_example() {
        assert_eq!(
            super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
