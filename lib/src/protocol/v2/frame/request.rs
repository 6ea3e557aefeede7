//! REQUEST (0x05) and RESPONSE (0x06): many requests in flight on one
//! connection, answered in any order, matched by id.
//!
//! REQUEST:
//! ```text
//! +-----------+----------------------+
//! | id u32 BE | payload, rest of frame |
//! +-----------+----------------------+
//! ```
//! RESPONSE:
//! ```text
//! +-----------+-----------+-----------------------------------------+
//! | id u32 BE | status u8 | payload (status 0) or UTF-8 reason (1)  |
//! +-----------+-----------+-----------------------------------------+
//! ```
//! The requester picks ids and must not reuse one that is still in flight.

use bytes::{BufMut, Bytes};

use super::fields::Fields;
use super::sink::FrameSink;
use crate::protocol::v2::FrameError;

/// A request awaiting a [`ResponseFrame`] with the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestFrame {
    /// Correlation id, chosen by the requester.
    pub id: u32,
    /// Application data.
    pub payload: Bytes,
}

/// The answer to the request with the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseFrame {
    /// The id of the request answered.
    pub id: u32,
    /// The answer, or why there is none.
    pub result: Result<Bytes, String>,
}

const STATUS_OK: u8 = 0;
const STATUS_ERROR: u8 = 1;

impl RequestFrame {
    /// Request `id` carrying `payload`.
    pub fn new(id: u32, payload: impl Into<Bytes>) -> Self {
        RequestFrame {
            id,
            payload: payload.into(),
        }
    }

    pub(super) fn payload_len(&self) -> usize {
        4 + self.payload.len()
    }

    pub(super) fn encode(&self, dst: &mut impl FrameSink) {
        dst.buf().put_u32(self.id);
        dst.put_payload(&self.payload);
    }

    pub(super) fn decode(f: &mut Fields) -> Result<Self, FrameError> {
        Ok(RequestFrame {
            id: f.u32("id")?,
            payload: f.rest(),
        })
    }
}

impl ResponseFrame {
    /// The answer to request `id`: its payload, or why it failed.
    pub fn new(id: u32, result: Result<Bytes, String>) -> Self {
        ResponseFrame { id, result }
    }

    pub(super) fn payload_len(&self) -> usize {
        5 + match &self.result {
            Ok(b) => b.len(),
            Err(reason) => reason.len(),
        }
    }

    pub(super) fn encode(&self, dst: &mut impl FrameSink) {
        dst.buf().put_u32(self.id);
        match &self.result {
            Ok(b) => {
                dst.buf().put_u8(STATUS_OK);
                dst.put_payload(b);
            }
            Err(reason) => {
                dst.buf().put_u8(STATUS_ERROR);
                dst.buf().put_slice(reason.as_bytes());
            }
        }
    }

    pub(super) fn decode(f: &mut Fields) -> Result<Self, FrameError> {
        let id = f.u32("id")?;
        let result = match f.u8("status")? {
            STATUS_OK => Ok(f.rest()),
            STATUS_ERROR => Err(f.rest_utf8("reason")?.as_str().to_owned()),
            _ => return Err(f.malformed("status must be 0 or 1")),
        };
        Ok(ResponseFrame { id, result })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::round_trip;
    use super::super::{Frame, FrameType};
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn requests_and_both_kinds_of_response_round_trip() {
        for f in [
            Frame::Request(RequestFrame {
                id: 7,
                payload: Bytes::from_static(b"ping?"),
            }),
            Frame::Response(ResponseFrame {
                id: u32::MAX,
                result: Ok(Bytes::new()),
            }),
            Frame::Response(ResponseFrame {
                id: 1,
                result: Err("no such key".into()),
            }),
        ] {
            assert_eq!(round_trip(&f), f);
        }
    }

    #[test]
    fn the_spec_request_bytes() {
        let mut b = BytesMut::new();
        Frame::Request(RequestFrame {
            id: 1,
            payload: Bytes::from_static(b"hi"),
        })
        .encode(&mut b);
        assert_eq!(&b[..], b"\x02\x05\x00\x00\x00\x06\x00\x00\x00\x01hi");
    }

    #[test]
    fn an_unknown_status_is_malformed() {
        let p = Bytes::from_static(b"\x00\x00\x00\x01\x07");
        assert!(Frame::decode_payload(FrameType::Response, p).is_err());
    }
}
