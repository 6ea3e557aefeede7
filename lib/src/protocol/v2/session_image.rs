//! A resumable session written down, so that another server can resume it
//! when the one serving it dies (spec 3.14.1): its counters, the frames it
//! sent that the client has not acknowledged, what the client agreed to,
//! and which of the client's requests and calls it had not answered yet.
//!
//! The image is the protocol's part of a session only. The application's
//! part (the user's handler) lives in the server's memory and dies with
//! it: a session resumed elsewhere gets a new handler, and the requests and
//! calls the old one had not answered are answered with an error, never
//! run again (they may have been run already).
//!
//! Layout (big-endian), version 1:
//! ```text
//! version u8 | flags u8 (bit 0: detached) | id [16] | expiry_ms u32
//! | sent u64 | received u64 | handled u64
//! | peer_max_frame_size u32 | calls: len u8, CallLimits data | app: len u16, AppChoice data
//! | requests: n u32, id u32 × n | calls: n u32, id u32 × n
//! | replay_first u64 | frames: n u32, len u32 × n | the frames' bytes (the rest)
//! ```

// Used by the server's session store (the `nats` feature).
#![cfg_attr(not(feature = "nats"), allow(dead_code))]

use bytes::{BufMut, Bytes, BytesMut};

use super::resume::{ResumeDataError, finish, id_bytes, take, u32_of, u64_of};
use super::{AppChoice, CallLimits, SessionId};

const VERSION: u8 = 1;

/// A resumable session as another server needs it. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionImage {
    pub(crate) id: SessionId,
    /// The serving server had lost the connection (and recorded all its
    /// handler had been given) when it wrote this.
    pub(crate) detached: bool,
    pub(crate) expiry_ms: u32,
    /// Counted frames the server sent.
    pub(crate) sent: u64,
    /// Counted frames the server received.
    pub(crate) received: u64,
    /// Of those, how many its handler had been given (the rest were
    /// received and not yet handed over when this image was taken).
    pub(crate) handled: u64,
    pub(crate) peer_max_frame_size: u32,
    pub(crate) calls: Option<CallLimits>,
    pub(crate) app: Option<AppChoice>,
    /// Requests received and not answered.
    pub(crate) open_requests: Vec<u32>,
    /// Calls received and not ended by the server's STATUS.
    pub(crate) open_calls: Vec<u32>,
    /// The number of the first frame in `replay`.
    pub(crate) replay_first: u64,
    /// The length of each frame in `replay`.
    pub(crate) replay_lens: Vec<u32>,
    /// Sent frames not acknowledged, encoded, oldest first.
    pub(crate) replay: Bytes,
}

/// Reads a list of u32s, refusing a count the bytes cannot hold (so a
/// claimed count allocates nothing before it is checked).
fn u32_list(d: &mut &[u8], what: &'static str) -> Result<Vec<u32>, ResumeDataError> {
    let n = u32_of(d, what)? as usize;
    if d.len() / 4 < n {
        return Err(ResumeDataError(what));
    }
    (0..n).map(|_| u32_of(d, what)).collect()
}

fn put_u32_list(b: &mut BytesMut, list: &[u32]) {
    b.put_u32(list.len() as u32);
    list.iter().for_each(|v| b.put_u32(*v));
}

impl SessionImage {
    /// The image's bytes.
    pub(crate) fn encode(&self) -> Bytes {
        let calls = self.calls.map(|c| c.encode()).unwrap_or_default();
        let app = self.app.as_ref().map(|a| a.encode()).unwrap_or_default();
        let mut b = BytesMut::with_capacity(
            80 + calls.len()
                + app.len()
                + 4 * (self.open_requests.len() + self.open_calls.len() + self.replay_lens.len())
                + self.replay.len(),
        );
        b.put_u8(VERSION);
        b.put_u8(u8::from(self.detached));
        b.put_slice(&self.id.0);
        b.put_u32(self.expiry_ms);
        b.put_u64(self.sent);
        b.put_u64(self.received);
        b.put_u64(self.handled);
        b.put_u32(self.peer_max_frame_size);
        b.put_u8(calls.len() as u8);
        b.put_slice(&calls);
        b.put_u16(app.len() as u16);
        b.put_slice(&app);
        put_u32_list(&mut b, &self.open_requests);
        put_u32_list(&mut b, &self.open_calls);
        b.put_u64(self.replay_first);
        put_u32_list(&mut b, &self.replay_lens);
        b.put_slice(&self.replay);
        b.freeze()
    }

    /// Parses an image, checking that its counts agree with each other.
    pub(crate) fn decode(data: &[u8]) -> Result<Self, ResumeDataError> {
        let d = &mut &data[..];
        if take(d, 1, "version")?[0] != VERSION {
            return Err(ResumeDataError("unknown session image version"));
        }
        let detached = match take(d, 1, "flags")?[0] {
            0 => false,
            1 => true,
            _ => return Err(ResumeDataError("unknown session image flags")),
        };
        let id = SessionId(id_bytes(d, "session id")?);
        let expiry_ms = u32_of(d, "expiry")?;
        let sent = u64_of(d, "sent")?;
        let received = u64_of(d, "received")?;
        let handled = u64_of(d, "handled")?;
        let peer_max_frame_size = u32_of(d, "max frame size")?;
        let calls_len = take(d, 1, "calls")?[0] as usize;
        let calls = match calls_len {
            0 => None,
            n => Some(
                CallLimits::decode(take(d, n, "calls")?)
                    .map_err(|_| ResumeDataError("malformed call limits"))?,
            ),
        };
        let app_len = u16::from_be_bytes(take(d, 2, "app")?.try_into().expect("2")) as usize;
        let app = match app_len {
            0 => None,
            n => Some(
                AppChoice::decode(take(d, n, "app")?)
                    .map_err(|_| ResumeDataError("malformed application protocol"))?,
            ),
        };
        let open_requests = u32_list(d, "open requests")?;
        let open_calls = u32_list(d, "open calls")?;
        let replay_first = u64_of(d, "replay start")?;
        let replay_lens = u32_list(d, "replay lengths")?;
        let total: u64 = replay_lens.iter().map(|l| u64::from(*l)).sum();
        if total != d.len() as u64 {
            return Err(ResumeDataError("replay lengths do not add up"));
        }
        let replay = Bytes::copy_from_slice(take(d, d.len(), "replay")?);
        finish(d)?;
        if handled > received
            || replay_first > sent
            || sent - replay_first != replay_lens.len() as u64
        {
            return Err(ResumeDataError("the image's counts disagree"));
        }
        Ok(SessionImage {
            id,
            detached,
            expiry_ms,
            sent,
            received,
            handled,
            peer_max_frame_size,
            calls,
            app,
            open_requests,
            open_calls,
            replay_first,
            replay_lens,
            replay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v2::Encoding;

    fn image() -> SessionImage {
        SessionImage {
            id: SessionId([3; 16]),
            detached: true,
            expiry_ms: 60_000,
            sent: 12,
            received: 40,
            handled: 38,
            peer_max_frame_size: 1 << 20,
            calls: Some(CallLimits::new(8, 16)),
            app: Some(AppChoice {
                name: "kv".into(),
                version: 2,
                encoding: Encoding::MessagePack,
            }),
            open_requests: vec![7, 9],
            open_calls: vec![1],
            replay_first: 10,
            replay_lens: vec![3, 2],
            replay: Bytes::from_static(b"abcde"),
        }
    }

    #[test]
    fn an_image_round_trips() {
        let full = image();
        assert_eq!(SessionImage::decode(&full.encode()), Ok(full));
        let bare = SessionImage {
            calls: None,
            app: None,
            open_requests: vec![],
            open_calls: vec![],
            replay_first: 12,
            replay_lens: vec![],
            replay: Bytes::new(),
            ..image()
        };
        assert_eq!(SessionImage::decode(&bare.encode()), Ok(bare));
    }

    /// Every prefix of an image is refused, as are counts that disagree
    /// and a list longer than its bytes.
    #[test]
    fn damaged_images_are_refused() {
        let bytes = image().encode();
        for n in 0..bytes.len() {
            assert!(SessionImage::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut wrong = image();
        wrong.sent = 13;
        assert!(SessionImage::decode(&wrong.encode()).is_err());
        let mut wrong = image();
        wrong.handled = 41;
        assert!(SessionImage::decode(&wrong.encode()).is_err());
        let mut huge = image().encode().to_vec();
        // The open requests' count (counted from the end: the replay, its
        // lengths, its start, the open calls, the two request ids), claimed
        // as 2^32 - 1.
        let at = huge.len() - 5 - 12 - 8 - 8 - 8 - 4;
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(SessionImage::decode(&huge).is_err());
    }
}
