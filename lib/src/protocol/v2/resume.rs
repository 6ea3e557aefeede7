//! Resumable sessions (spec 3.14): what a HELLO asks for, what a WELCOME
//! answers, and why a resume may be refused.
//!
//! HELLO, extension 0x0004 (not critical: a server that does not know it
//! opens an ordinary session, and its WELCOME says nothing of resuming):
//! ```text
//! +---------+--------------+-------------------------------------------------+
//! | kind u8 | expiry_ms u32| kind 1 only: id [16] | token [16] | received u64 |
//! +---------+--------------+-------------------------------------------------+
//! ```
//! `kind` 0 asks for a new resumable session, 1 presents the ticket of an
//! earlier one; `received` is how many counted frames the client has had
//! from it.
//!
//! WELCOME, extension 0x0004, only in answer to one in the HELLO:
//! ```text
//! +-----------+-----------+---------------+---------+------------+--------------+----------+
//! | status u8 | reason u8 | expiry_ms u32 | id [16] | token [16] | received u64 | sent u64 |
//! +-----------+-----------+---------------+---------+------------+--------------+----------+
//! ```
//! `status` 0: a new session (the HELLO asked for one); 1: resumed,
//! `received` being how many counted frames the server had from the client
//! and `sent` how many it has sent (so the client knows how many the replay
//! brings); 2: the resume was refused for `reason` and this is a new
//! session. Both counts are 0 unless resumed.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use subtle::ConstantTimeEq;

/// Bytes in a session id and in a resume token.
pub const RESUME_ID_LEN: usize = 16;

/// Names one resumable session on a server (or in a deployment's store).
/// Not a secret: it appears in logs; the token is what proves ownership.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; RESUME_ID_LEN]);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// The secret that lets a client resume its session. Compared in constant
/// time and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ResumeToken(pub [u8; RESUME_ID_LEN]);

impl ResumeToken {
    /// Whether `other` is this token, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, other: &ResumeToken) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeToken(..)")
    }
}

/// What a client presents to resume: the session, its secret, and how
/// many of the server's counted frames it has received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeTicket {
    /// The session.
    pub id: SessionId,
    /// Its secret.
    pub token: ResumeToken,
    /// Counted frames received from the server, over all connections.
    pub received: u64,
}

impl ResumeTicket {
    /// A ticket for session `id`.
    pub fn new(id: SessionId, token: ResumeToken, received: u64) -> Self {
        ResumeTicket {
            id,
            token,
            received,
        }
    }
}

/// The HELLO's resume extension.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeAsk {
    /// How long the client wishes the server to keep the session after a
    /// connection is lost, in ms (the server caps it).
    pub expiry_ms: u32,
    /// `Some` to resume an earlier session.
    pub ticket: Option<ResumeTicket>,
}

/// Why a server would not resume a session. A refused client gets a new
/// session; what it had sent and not had acknowledged may be lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum ResumeRefusal {
    /// No such session here (never was, or gone long since).
    Unknown = 1,
    /// The session outlived its expiry and was dropped.
    Expired = 2,
    /// The token (or the authenticated identity) is not the session's.
    WrongToken = 3,
    /// More was sent to the session while it was away than its replay
    /// buffer holds.
    Overflowed = 4,
    /// The new HELLO asks for another protocol, calls or limits than the
    /// session was opened with.
    Mismatch = 5,
    /// The ticket's count is not one the server can replay from.
    BadPosition = 6,
    /// The server keeps no resumable sessions now (shutting down, or at
    /// its limit of kept sessions).
    Unavailable = 7,
}

impl ResumeRefusal {
    fn from_byte(b: u8) -> Option<Self> {
        use ResumeRefusal::*;
        Some(match b {
            1 => Unknown,
            2 => Expired,
            3 => WrongToken,
            4 => Overflowed,
            5 => Mismatch,
            6 => BadPosition,
            7 => Unavailable,
            _ => return None,
        })
    }
}

impl fmt::Display for ResumeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResumeRefusal::Unknown => "unknown session",
            ResumeRefusal::Expired => "session expired",
            ResumeRefusal::WrongToken => "wrong resume token",
            ResumeRefusal::Overflowed => "the session's replay buffer overflowed",
            ResumeRefusal::Mismatch => "the HELLO does not match the session's",
            ResumeRefusal::BadPosition => "the ticket's position cannot be replayed from",
            ResumeRefusal::Unavailable => "the server keeps no resumable sessions now",
        })
    }
}

/// What the WELCOME says of resuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeStatus {
    /// A new resumable session, as asked.
    New,
    /// The ticket's session goes on.
    Resumed,
    /// The ticket was refused for this reason; this is a new session.
    Refused(ResumeRefusal),
}

/// The WELCOME's resume extension.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeGrant {
    /// New, resumed or refused.
    pub status: ResumeStatus,
    /// How long the server keeps the session after a loss, in ms.
    pub expiry_ms: u32,
    /// The session (the ticket's when resumed).
    pub id: SessionId,
    /// Its secret, for the next resume.
    pub token: ResumeToken,
    /// Resumed: counted frames the server had received from the client.
    pub received: u64,
    /// Resumed: counted frames the server has sent in the session.
    pub sent: u64,
}

/// Resume data that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed resume extension: {0}")]
pub struct ResumeDataError(pub(super) &'static str);

pub(super) fn take<'a>(
    data: &mut &'a [u8],
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], ResumeDataError> {
    if data.len() < n {
        return Err(ResumeDataError(what));
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Ok(head)
}

pub(super) fn id_bytes(
    data: &mut &[u8],
    what: &'static str,
) -> Result<[u8; RESUME_ID_LEN], ResumeDataError> {
    Ok(take(data, RESUME_ID_LEN, what)?
        .try_into()
        .expect("length taken"))
}

pub(super) fn u32_of(data: &mut &[u8], what: &'static str) -> Result<u32, ResumeDataError> {
    Ok(u32::from_be_bytes(
        take(data, 4, what)?.try_into().expect("4"),
    ))
}

pub(super) fn u64_of(data: &mut &[u8], what: &'static str) -> Result<u64, ResumeDataError> {
    Ok(u64::from_be_bytes(
        take(data, 8, what)?.try_into().expect("8"),
    ))
}

pub(super) fn finish(data: &[u8]) -> Result<(), ResumeDataError> {
    match data.is_empty() {
        true => Ok(()),
        false => Err(ResumeDataError("bytes after the last field")),
    }
}

impl ResumeAsk {
    /// The extension's bytes.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(45);
        b.put_u8(u8::from(self.ticket.is_some()));
        b.put_u32(self.expiry_ms);
        if let Some(t) = &self.ticket {
            b.put_slice(&t.id.0);
            b.put_slice(&t.token.0);
            b.put_u64(t.received);
        }
        b.freeze()
    }

    /// Parses the extension's bytes.
    pub fn decode(mut data: &[u8]) -> Result<Self, ResumeDataError> {
        let d = &mut data;
        let kind = take(d, 1, "kind")?[0];
        let expiry_ms = u32_of(d, "expiry")?;
        let ticket = match kind {
            0 => None,
            1 => Some(ResumeTicket {
                id: SessionId(id_bytes(d, "session id")?),
                token: ResumeToken(id_bytes(d, "token")?),
                received: u64_of(d, "received")?,
            }),
            _ => return Err(ResumeDataError("kind is neither 0 nor 1")),
        };
        finish(d)?;
        Ok(ResumeAsk { expiry_ms, ticket })
    }
}

impl ResumeGrant {
    /// The extension's bytes.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(54);
        let (status, reason) = match self.status {
            ResumeStatus::New => (0, 0),
            ResumeStatus::Resumed => (1, 0),
            ResumeStatus::Refused(r) => (2, r as u8),
        };
        b.put_u8(status);
        b.put_u8(reason);
        b.put_u32(self.expiry_ms);
        b.put_slice(&self.id.0);
        b.put_slice(&self.token.0);
        b.put_u64(self.received);
        b.put_u64(self.sent);
        b.freeze()
    }

    /// Parses the extension's bytes.
    pub fn decode(mut data: &[u8]) -> Result<Self, ResumeDataError> {
        let d = &mut data;
        let head = take(d, 2, "status")?;
        let status = match (head[0], head[1]) {
            (0, 0) => ResumeStatus::New,
            (1, 0) => ResumeStatus::Resumed,
            (2, r) => ResumeStatus::Refused(
                ResumeRefusal::from_byte(r).ok_or(ResumeDataError("unknown refusal reason"))?,
            ),
            _ => return Err(ResumeDataError("unknown status")),
        };
        let grant = ResumeGrant {
            status,
            expiry_ms: u32_of(d, "expiry")?,
            id: SessionId(id_bytes(d, "session id")?),
            token: ResumeToken(id_bytes(d, "token")?),
            received: u64_of(d, "received")?,
            sent: u64_of(d, "sent")?,
        };
        finish(d)?;
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_and_grants_round_trip() {
        let ticket = ResumeTicket::new(SessionId([7; 16]), ResumeToken([9; 16]), 42);
        for ask in [
            ResumeAsk {
                expiry_ms: 30_000,
                ticket: None,
            },
            ResumeAsk {
                expiry_ms: 1,
                ticket: Some(ticket),
            },
        ] {
            assert_eq!(ResumeAsk::decode(&ask.encode()), Ok(ask));
        }
        for status in [
            ResumeStatus::New,
            ResumeStatus::Resumed,
            ResumeStatus::Refused(ResumeRefusal::Overflowed),
        ] {
            let grant = ResumeGrant {
                status,
                expiry_ms: 5,
                id: SessionId([1; 16]),
                token: ResumeToken([2; 16]),
                received: u64::MAX,
                sent: 3,
            };
            assert_eq!(ResumeGrant::decode(&grant.encode()), Ok(grant));
        }
    }

    #[test]
    fn short_long_and_unknown_data_is_refused() {
        assert!(ResumeAsk::decode(&[]).is_err());
        assert!(ResumeAsk::decode(&[1, 0, 0, 0, 1]).is_err());
        assert!(ResumeAsk::decode(&[0, 0, 0, 0, 1, 0]).is_err());
        assert!(ResumeAsk::decode(&[2, 0, 0, 0, 1]).is_err());
        let mut grant = ResumeGrant {
            status: ResumeStatus::New,
            expiry_ms: 5,
            id: SessionId([1; 16]),
            token: ResumeToken([2; 16]),
            received: 0,
            sent: 0,
        }
        .encode()
        .to_vec();
        grant[1] = 3;
        assert!(ResumeGrant::decode(&grant).is_err());
        grant[0] = 2;
        grant[1] = 99;
        assert!(ResumeGrant::decode(&grant).is_err());
    }

    #[test]
    fn tokens_compare_whole_and_never_print() {
        let a = ResumeToken([1; 16]);
        let mut other = [1; 16];
        other[15] = 2;
        assert!(a.matches(&ResumeToken([1; 16])));
        assert!(!a.matches(&ResumeToken(other)));
        assert_eq!(format!("{a:?}"), "ResumeToken(..)");
    }
}
