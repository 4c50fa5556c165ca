//! Errors: the core's, shared by every adapter, so switching runtime keeps
//! the same error types.

pub use wavecast_core::{Error, TrySendError};
