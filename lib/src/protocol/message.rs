use bytes::Bytes;
use std::fmt;

/// A text message: content that is known to be valid UTF-8.
///
/// The content is kept as [`Bytes`] rather than `String` so that a decoder can
/// hand out a message that shares the connection's read buffer instead of
/// copying it; validation happens once, when the message is built, so that
/// every later [`Message::as_str`] is free.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Message {
    // Invariant: always valid UTF-8. Every constructor checks it or starts
    // from a `String`/`&str`, and the field is private and never mutated.
    content: Bytes,
}

/// The bytes offered as a message's content were not valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content is not valid UTF-8 (first invalid byte at offset {valid_up_to})")]
pub struct InvalidUtf8 {
    /// How many leading bytes were valid, which is where a reader should look.
    pub valid_up_to: usize,
}

impl Message {
    /// Builds a message from text the caller already owns.
    pub fn new(content: impl Into<String>) -> Self {
        Message {
            content: Bytes::from(content.into()),
        }
    }

    /// Builds a message from a `'static` string without allocating.
    pub const fn from_static(content: &'static str) -> Self {
        Message {
            content: Bytes::from_static(content.as_bytes()),
        }
    }

    /// Checks that `content` is UTF-8 and wraps it without copying.
    pub fn from_utf8(content: Bytes) -> Result<Self, InvalidUtf8> {
        match std::str::from_utf8(&content) {
            Ok(_) => Ok(Message { content }),
            Err(e) => Err(InvalidUtf8 {
                valid_up_to: e.valid_up_to(),
            }),
        }
    }

    /// Passes the content through `rehold`, which must return a view of the
    /// very same bytes (held differently: the transport ties a large
    /// payload to the memory budget it was read with). Checked: a different
    /// view is refused and the content stays as it was.
    pub(crate) fn rehold(&mut self, rehold: impl FnOnce(Bytes) -> Bytes) {
        let (ptr, len) = (self.content.as_ptr(), self.content.len());
        let held = rehold(self.content.clone());
        // The same memory means the same, already validated, UTF-8.
        if held.as_ptr() == ptr && held.len() == len {
            self.content = held;
        }
    }

    /// The content as text.
    pub fn as_str(&self) -> &str {
        // SAFETY: `content` is valid UTF-8 by the type's invariant: `new` and
        // `from_static` start from `str`, `from_utf8` validates before it
        // builds, `rehold` only accepts a view of the same memory, and
        // nothing mutates `content` afterwards (`Bytes` is an immutable
        // view).
        unsafe { std::str::from_utf8_unchecked(&self.content) }
    }

    /// The content as raw bytes, for encoders.
    pub fn as_bytes(&self) -> &[u8] {
        &self.content
    }

    /// The content's reference-counted buffer, so an encoder can share it
    /// (one broadcast to many clients) instead of copying it.
    pub fn as_shared_bytes(&self) -> &Bytes {
        &self.content
    }

    /// Gives the underlying buffer back, e.g. to forward it without copying.
    pub fn into_bytes(self) -> Bytes {
        self.content
    }

    /// Length of the content in bytes (not characters), as on the wire.
    pub fn len(&self) -> usize {
        self.content.len()
    }

    /// Whether the content is empty (a legal message).
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::new(s)
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_invalid_utf8_and_says_where() {
        let err = Message::from_utf8(Bytes::from_static(b"ok\xffno")).unwrap_err();
        assert_eq!(err.valid_up_to, 2);
    }

    #[test]
    fn keeps_text_without_copying() {
        let buf = Bytes::from_static("héllo".as_bytes());
        let msg = Message::from_utf8(buf.clone()).unwrap();
        assert_eq!(msg.as_str(), "héllo");
        assert_eq!(msg.as_bytes().as_ptr(), buf.as_ptr());
        assert_eq!(msg.len(), 6);
    }
}
