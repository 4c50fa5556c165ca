//! Messages, UTF-8-checked payloads and reassembly of fragmented messages.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// Bytes that are known to be valid UTF-8: a text payload that can be shared
/// and relayed without copying.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// An empty string.
    pub const fn new() -> Self {
        Utf8Bytes(Bytes::new())
    }

    /// A string from a `'static` str without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    ///
    /// Without `unsafe` a `&str` cannot be made from bytes without checking
    /// them, so this re-checks (with SIMD; gigabytes per second). Bind the
    /// result once when reading a large text many times.
    pub fn as_str(&self) -> &str {
        // Every constructor checks or inherits UTF-8 validity.
        simdutf8::basic::from_utf8(&self.0).expect("Utf8Bytes holds valid UTF-8")
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The shared bytes, for zero-copy relaying.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Wraps bytes already checked to be UTF-8.
    pub(crate) fn from_checked(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<&String> for Utf8Bytes {
    fn from(s: &String) -> Self {
        Utf8Bytes::from(s.as_str())
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        simdutf8::compat::from_utf8(&bytes).map_err(|_| {
            std::str::from_utf8(&bytes).expect_err("simdutf8 and std agree on validity")
        })?;
        Ok(Utf8Bytes(bytes))
    }
}

impl TryFrom<Vec<u8>> for Utf8Bytes {
    type Error = std::str::Utf8Error;
    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        Utf8Bytes::try_from(Bytes::from(bytes))
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8).
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s.into())
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(s: Utf8Bytes) -> Self {
        Message::Text(s)
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b.into())
    }
}

/// A piece of a message taken as it arrives (streaming mode, see
/// [`Config::stream_messages`](crate::Config::stream_messages)), or a piece
/// of a message sent the same way.
///
/// A text chunk is valid UTF-8 on its own: a code point split between two
/// frames or two reads is held back until it is complete, so the whole
/// message's bytes are the chunks' bytes in order. A message that is
/// invalid UTF-8 ends the stream with an error at the chunk where the
/// invalid bytes arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk's bytes, with the message's kind (text or binary).
    pub data: Message,
    /// Whether this is the message's first chunk.
    pub first: bool,
    /// Whether this is the message's last chunk: the next chunk (if any)
    /// starts a new message.
    pub last: bool,
}

impl Chunk {
    /// A whole message as one chunk (both first and last).
    pub fn whole(message: Message) -> Chunk {
        Chunk {
            data: message,
            first: true,
            last: true,
        }
    }
}
