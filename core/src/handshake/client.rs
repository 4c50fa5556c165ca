//! Client side of the opening handshake.
