//! Bounds-checked reading of payload fields: a peer's bytes never make us
//! read past the end (which `bytes::Buf` would answer with a panic).

use bytes::{Buf, Bytes};

use super::FrameType;
use crate::protocol::Message;
use crate::protocol::v2::FrameError;

pub(crate) struct Fields {
    frame_type: FrameType,
    bytes: Bytes,
}

impl Fields {
    pub(crate) fn new(frame_type: FrameType, bytes: Bytes) -> Self {
        Fields { frame_type, bytes }
    }

    fn need(&self, n: usize, what: &'static str) -> Result<(), FrameError> {
        if self.bytes.len() < n {
            return Err(self.malformed(what));
        }
        Ok(())
    }

    pub(crate) fn malformed(&self, what: &'static str) -> FrameError {
        FrameError::Malformed {
            frame_type: self.frame_type,
            what,
        }
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, FrameError> {
        self.need(1, what)?;
        Ok(self.bytes.get_u8())
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, FrameError> {
        self.need(2, what)?;
        Ok(self.bytes.get_u16())
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, FrameError> {
        self.need(4, what)?;
        Ok(self.bytes.get_u32())
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, FrameError> {
        self.need(8, what)?;
        Ok(self.bytes.get_u64())
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes, FrameError> {
        self.need(n, what)?;
        Ok(self.bytes.split_to(n))
    }

    /// A u16-length-prefixed UTF-8 string.
    pub(crate) fn short_string(&mut self, what: &'static str) -> Result<String, FrameError> {
        let len = self.u16(what)? as usize;
        let raw = self.bytes(len, what)?;
        self.utf8(raw, what).map(|m| m.as_str().to_owned())
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.bytes)
    }

    /// Everything that is left, as UTF-8 text (the field called `what`).
    pub(crate) fn rest_utf8(&mut self, what: &'static str) -> Result<Message, FrameError> {
        let raw = self.rest();
        self.utf8(raw, what)
    }

    fn utf8(&self, raw: Bytes, field: &'static str) -> Result<Message, FrameError> {
        Message::from_utf8(raw).map_err(|detail| FrameError::InvalidUtf8 {
            frame_type: self.frame_type,
            field,
            detail,
        })
    }

    /// Whether every byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Frames with fixed fields must not carry trailing bytes.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        if !self.bytes.is_empty() {
            return Err(self.malformed("unexpected bytes after the last field"));
        }
        Ok(())
    }
}
