//! The frames of calls (spec 3.13), sent only once both sides agreed to
//! the calls extension (0x0003) in the handshake:
//!
//! ```text
//! CALL   0x0c client: id u32 | flags u8 | deadline_ms u32 | credit u32 | metadata | payload
//! ITEM   0x0d both:   id u32 | payload
//! CREDIT 0x0e both:   id u32 | items u32
//! END    0x0f client: id u32
//! CANCEL 0x10 client: id u32
//! STATUS 0x11 server: id u32 | status u8 | payload (status 0) or UTF-8 reason
//! metadata: count u8 | count × (key_len u8 | key | value_len u16 | value)
//! ```
//!
//! A CALL opens a call; ITEMs are the streams' items, each side sending no
//! more than the other granted (CREDIT); END closes the client's stream;
//! CANCEL abandons the call; STATUS, exactly one per CALL, ends it.

use bytes::{BufMut, Bytes};

use super::fields::Fields;
use super::sink::FrameSink;
use crate::protocol::v2::FrameError;

/// The most metadata entries one call may carry.
pub const MAX_METADATA_ENTRIES: usize = 16;
/// The most bytes a call's metadata may take on the wire, counts and
/// lengths included.
pub const MAX_METADATA_BYTES: usize = 4096;
/// The longest metadata key.
pub const MAX_METADATA_KEY: usize = 64;

/// A call's metadata: a few bounded key/value pairs the call carries
/// beside its payload (a trace context, an idempotency key, a caller's
/// locale). Keys are 1 to 64 bytes of lowercase ASCII letters, digits, `-`,
/// `_` and `.` (as HTTP/2 and gRPC keep them); values are bytes. At most 16
/// entries and 4096 bytes in all, so a peer can never make the other hold
/// more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, Bytes)>,
}

/// Why metadata cannot be built or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// A key breaks the key rule (empty, too long, other characters).
    #[error("metadata key {0:?}: 1 to 64 bytes of a-z, 0-9, '-', '_' or '.'")]
    BadKey(String),
    /// More entries or bytes than a call may carry.
    #[error("metadata over its limits (at most 16 entries and 4096 bytes)")]
    TooLarge,
}

fn key_ok(key: &[u8]) -> bool {
    (1..=MAX_METADATA_KEY).contains(&key.len())
        && key
            .iter()
            .all(|&b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'))
}

impl Metadata {
    /// No entries.
    pub fn new() -> Self {
        Metadata::default()
    }

    /// Adds an entry (a key may appear more than once), checking the rules
    /// and limits so that what is built can always be sent.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
    ) -> Result<(), MetadataError> {
        let (key, value) = (key.into(), value.into());
        if !key_ok(key.as_bytes()) {
            return Err(MetadataError::BadKey(key));
        }
        if self.entries.len() == MAX_METADATA_ENTRIES
            || self.wire_len() + 3 + key.len() + value.len() > MAX_METADATA_BYTES
            || value.len() > usize::from(u16::MAX)
        {
            return Err(MetadataError::TooLarge);
        }
        self.entries.push((key, value));
        Ok(())
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The first value of `key`, if it is UTF-8 text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every entry, in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn wire_len(&self) -> usize {
        1 + self
            .entries
            .iter()
            .map(|(k, v)| 3 + k.len() + v.len())
            .sum::<usize>()
    }

    fn encode(&self, dst: &mut impl FrameSink) {
        let buf = dst.buf();
        buf.put_u8(self.entries.len() as u8);
        for (k, v) in &self.entries {
            buf.put_u8(k.len() as u8);
            buf.put_slice(k.as_bytes());
            buf.put_u16(v.len() as u16);
            buf.put_slice(v);
        }
    }

    fn decode(f: &mut Fields) -> Result<Self, FrameError> {
        let count = usize::from(f.u8("metadata count")?);
        if count > MAX_METADATA_ENTRIES {
            return Err(f.malformed("more than 16 metadata entries"));
        }
        let mut entries = Vec::with_capacity(count);
        let mut used = 1;
        for _ in 0..count {
            let klen = usize::from(f.u8("metadata key length")?);
            let key = f.bytes(klen, "metadata key")?;
            if !key_ok(&key) {
                return Err(f.malformed(
                    "a metadata key must be 1 to 64 bytes of a-z, 0-9, '-', '_' or '.'",
                ));
            }
            let vlen = usize::from(f.u16("metadata value length")?);
            let value = f.bytes(vlen, "metadata value")?;
            used += 3 + klen + vlen;
            if used > MAX_METADATA_BYTES {
                return Err(f.malformed("metadata over 4096 bytes"));
            }
            // Checked above: ASCII.
            let key = String::from_utf8(key.to_vec()).expect("ASCII key");
            entries.push((key, value));
        }
        Ok(Metadata { entries })
    }
}

/// CALL flag: the server answers with a stream of ITEMs before its STATUS.
pub const SERVER_STREAMS: u8 = 0x01;
/// CALL flag: the client sends a stream of ITEMs, ended by END.
pub const CLIENT_STREAMS: u8 = 0x02;

/// A call: what the client asks, how long it may take, and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallFrame {
    /// Chosen by the client, unique among its calls in flight.
    pub id: u32,
    /// [`SERVER_STREAMS`] and [`CLIENT_STREAMS`]; no other bit is defined.
    pub flags: u8,
    /// The call's time budget in ms from its arrival, relative so clocks
    /// need not agree; 0 for none.
    pub deadline_ms: u32,
    /// Items the client grants the server's stream at once (0 unless the
    /// server streams).
    pub credit: u32,
    /// Key/value pairs beside the payload.
    pub metadata: Metadata,
    /// The request.
    pub payload: Bytes,
}

impl CallFrame {
    /// A unary call (no streams, no deadline, no metadata).
    pub fn new(id: u32, payload: impl Into<Bytes>) -> Self {
        CallFrame {
            id,
            flags: 0,
            deadline_ms: 0,
            credit: 0,
            metadata: Metadata::new(),
            payload: payload.into(),
        }
    }

    /// Whether the server answers with a stream.
    pub fn server_streams(&self) -> bool {
        self.flags & SERVER_STREAMS != 0
    }

    /// Whether the client sends a stream.
    pub fn client_streams(&self) -> bool {
        self.flags & CLIENT_STREAMS != 0
    }

    pub(super) fn payload_len(&self) -> usize {
        13 + self.metadata.wire_len() + self.payload.len()
    }

    pub(super) fn encode(&self, dst: &mut impl FrameSink) {
        let buf = dst.buf();
        buf.put_u32(self.id);
        buf.put_u8(self.flags);
        buf.put_u32(self.deadline_ms);
        buf.put_u32(self.credit);
        self.metadata.encode(dst);
        dst.put_payload(&self.payload);
    }

    pub(super) fn decode(f: &mut Fields) -> Result<Self, FrameError> {
        let id = f.u32("id")?;
        let flags = f.u8("flags")?;
        if flags & !(SERVER_STREAMS | CLIENT_STREAMS) != 0 {
            return Err(f.malformed("undefined flag bits"));
        }
        let deadline_ms = f.u32("deadline_ms")?;
        let credit = f.u32("credit")?;
        if flags & SERVER_STREAMS == 0 && credit != 0 {
            return Err(f.malformed("credit for a stream the server does not send"));
        }
        Ok(CallFrame {
            id,
            flags,
            deadline_ms,
            credit,
            metadata: Metadata::decode(f)?,
            payload: f.rest(),
        })
    }
}

/// How a call ended, in its STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallStatus {
    /// Done; the payload is the answer (for a stream: what follows its
    /// last item, often nothing).
    Ok = 0,
    /// The server could not or would not do it; the reason says why.
    Failed = 1,
    /// The client cancelled it; the server's work for it has stopped.
    Cancelled = 2,
    /// Its deadline passed; the server's work for it has stopped.
    DeadlineExceeded = 3,
    /// Refused before any work: a limit of the server's (too many calls in
    /// flight). Safe to try again later.
    Refused = 4,
}

impl CallStatus {
    fn from_byte(b: u8) -> Option<CallStatus> {
        Some(match b {
            0 => CallStatus::Ok,
            1 => CallStatus::Failed,
            2 => CallStatus::Cancelled,
            3 => CallStatus::DeadlineExceeded,
            4 => CallStatus::Refused,
            _ => return None,
        })
    }
}

impl std::fmt::Display for CallStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallStatus::Ok => "ok",
            CallStatus::Failed => "failed",
            CallStatus::Cancelled => "cancelled",
            CallStatus::DeadlineExceeded => "deadline exceeded",
            CallStatus::Refused => "refused",
        })
    }
}

/// The end of a call: exactly one per CALL, after its last ITEM; the id
/// may be used again once it has arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusFrame {
    /// The call ended.
    pub id: u32,
    /// How.
    pub status: CallStatus,
    /// Status 0: the answer's bytes; any other: a UTF-8 reason.
    pub payload: Bytes,
}

impl StatusFrame {
    /// A call's end.
    pub fn new(id: u32, status: CallStatus, payload: impl Into<Bytes>) -> Self {
        StatusFrame {
            id,
            status,
            payload: payload.into(),
        }
    }

    /// The reason, for a status other than 0.
    pub fn reason(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    pub(super) fn payload_len(&self) -> usize {
        5 + self.payload.len()
    }

    pub(super) fn encode(&self, dst: &mut impl FrameSink) {
        dst.buf().put_u32(self.id);
        dst.buf().put_u8(self.status as u8);
        dst.put_payload(&self.payload);
    }

    pub(super) fn decode(f: &mut Fields) -> Result<Self, FrameError> {
        let id = f.u32("id")?;
        let status = CallStatus::from_byte(f.u8("status")?)
            .ok_or_else(|| f.malformed("status must be 0 to 4"))?;
        let payload = if status == CallStatus::Ok {
            f.rest()
        } else {
            f.rest_utf8("reason")?.as_shared_bytes().clone()
        };
        Ok(StatusFrame {
            id,
            status,
            payload,
        })
    }
}

/// One item of a call's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ItemFrame {
    /// The call.
    pub id: u32,
    /// The item.
    pub payload: Bytes,
}

impl ItemFrame {
    /// Item `payload` of call `id`.
    pub fn new(id: u32, payload: impl Into<Bytes>) -> Self {
        ItemFrame {
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
        Ok(ItemFrame {
            id: f.u32("id")?,
            payload: f.rest(),
        })
    }
}

/// A grant of more items to the other side's stream of one call.
pub(super) fn decode_credit(f: &mut Fields) -> Result<(u32, u32), FrameError> {
    let id = f.u32("id")?;
    let items = f.u32("items")?;
    if items == 0 {
        return Err(f.malformed("a credit of 0 items"));
    }
    Ok((id, items))
}

#[cfg(test)]
mod tests {
    use super::super::tests::round_trip;
    use super::super::{Frame, FrameType};
    use super::*;

    fn meta() -> Metadata {
        let mut m = Metadata::new();
        m.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .unwrap();
        m
    }

    #[test]
    fn every_call_frame_round_trips() {
        let call = CallFrame {
            id: 9,
            flags: SERVER_STREAMS | CLIENT_STREAMS,
            deadline_ms: 500,
            credit: 16,
            metadata: meta(),
            payload: Bytes::from_static(b"job"),
        };
        for f in [
            Frame::Call(call),
            Frame::Call(CallFrame::new(1, "x")),
            Frame::Item(ItemFrame::new(9, "line")),
            Frame::Credit { id: 9, items: 4 },
            Frame::End(9),
            Frame::Cancel(9),
            Frame::Status(StatusFrame::new(9, CallStatus::Ok, "done")),
            Frame::Status(StatusFrame::new(9, CallStatus::DeadlineExceeded, "late")),
        ] {
            assert_eq!(round_trip(&f), f);
        }
    }

    #[test]
    fn metadata_keeps_to_its_rules() {
        let mut m = Metadata::new();
        assert!(m.insert("Trace", "x").is_err());
        assert!(m.insert("", "x").is_err());
        assert!(m.insert("k".repeat(65), "x").is_err());
        for i in 0..MAX_METADATA_ENTRIES {
            m.insert(format!("k{i}"), "v").unwrap();
        }
        assert_eq!(m.insert("one-more", "v"), Err(MetadataError::TooLarge));
        let mut big = Metadata::new();
        assert_eq!(
            big.insert("v", vec![0u8; MAX_METADATA_BYTES]),
            Err(MetadataError::TooLarge)
        );
    }

    #[test]
    fn malformed_calls_are_refused() {
        let decode = |bytes: &'static [u8]| {
            Frame::decode_payload(FrameType::Call, Bytes::from_static(bytes))
        };
        // Undefined flag bit.
        assert!(decode(b"\0\0\0\x01\x04\0\0\0\0\0\0\0\0\0").is_err());
        // Credit without a server stream.
        assert!(decode(b"\0\0\0\x01\0\0\0\0\0\0\0\0\x01\0").is_err());
        // A key with an upper-case letter.
        assert!(decode(b"\0\0\0\x01\0\0\0\0\0\0\0\0\0\x01\x01K\0\0").is_err());
        // A credit of 0 and an unknown status.
        assert!(
            Frame::decode_payload(FrameType::Credit, Bytes::from_static(b"\0\0\0\x01\0\0\0\0"))
                .is_err()
        );
        assert!(
            Frame::decode_payload(FrameType::Status, Bytes::from_static(b"\0\0\0\x01\x05"))
                .is_err()
        );
    }
}
