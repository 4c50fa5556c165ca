//! Server side of the opening handshake.
