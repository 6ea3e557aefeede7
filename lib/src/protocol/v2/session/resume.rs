//! Resumable sessions (spec 3.14), the session's part: counting the frames
//! that matter both ways, acknowledging what arrived, keeping what we sent
//! until the peer acknowledges it, and picking the session up again on a
//! new connection, where each side replays what the other had not received.
//!
//! Sequence numbers are implicit, as TCP's are offsets: the n-th counted
//! frame a side sends is number n, on whatever connection it travels, so
//! no frame grows. ACK carries the count received; a resuming HELLO and
//! its WELCOME carry each side's count, and the other side replays from
//! there. Nothing is sent twice on one connection and nothing counted is
//! skipped, so within the session each frame arrives once and in order.

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::heartbeat::Heartbeat;
use super::{Role, Session, SessionEvent, SessionState};
use crate::protocol::StallClock;
use crate::protocol::v2::frame::{Extension, Frame, FrameSink, Welcome};
use crate::protocol::v2::resume::{
    ResumeAsk, ResumeGrant, ResumeRefusal, ResumeStatus, ResumeTicket, ResumeToken, SessionId,
};
use crate::protocol::v2::{AppChoice, CallLimits, CloseCode, SessionError};

/// Acknowledge at the latest after this many counted frames...
const ACK_EVERY_FRAMES: u64 = 64;
/// ...or this many of their bytes...
const ACK_EVERY_BYTES: usize = 64 * 1024;
/// ...or this long after the first one not yet acknowledged.
const ACK_DELAY: Duration = Duration::from_millis(100);

/// One side's settings for resumable sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeSettings {
    /// Client: how long it asks the server to keep its session after a
    /// loss. Server: the longest it grants.
    pub expiry: Duration,
    /// The most bytes of sent, unacknowledged frames kept for replay. Past
    /// it the session can no longer be resumed (it goes on while
    /// connected; a resume is refused as overflowed).
    pub replay_max_bytes: usize,
}

impl Default for ResumeSettings {
    fn default() -> Self {
        ResumeSettings {
            expiry: Duration::from_secs(60),
            replay_max_bytes: 1024 * 1024,
        }
    }
}

impl ResumeSettings {
    crate::config_setters::setters! {
        expiry: Duration,
        replay_max_bytes: usize,
    }
}

/// Frames sent and not yet acknowledged, encoded, oldest first.
#[derive(Debug, Clone, Default)]
pub(super) struct Replay {
    pub(super) bytes: BytesMut,
    pub(super) lens: VecDeque<u32>,
    /// The number of the first frame held: how many the peer acknowledged.
    pub(super) first: u64,
}

impl Replay {
    /// Lets go of everything before frame number `upto`: one move of the
    /// buffer's start (no split, which would share the buffer).
    pub(super) fn trim(&mut self, upto: u64) {
        let mut bytes = 0;
        while self.first < upto {
            let Some(len) = self.lens.pop_front() else {
                break;
            };
            bytes += len as usize;
            self.first += 1;
        }
        bytes::Buf::advance(&mut self.bytes, bytes);
        if self.lens.is_empty() {
            // All acknowledged: an idle session keeps no buffer.
            self.bytes = BytesMut::new();
            self.lens = VecDeque::new();
        }
    }
}

/// A resumable session's counters and replay buffer.
#[derive(Debug, Clone)]
pub(super) struct Resumable {
    pub(super) id: SessionId,
    pub(super) token: ResumeToken,
    pub(super) expiry_ms: u32,
    pub(super) max_bytes: usize,
    /// Counted frames sent.
    pub(super) sent: u64,
    pub(super) replay: Replay,
    /// More was sent than the buffer holds: no resume is possible.
    pub(super) overflowed: bool,
    /// Counted frames received.
    pub(super) received: u64,
    /// The count our last ACK said.
    pub(super) acked: u64,
    /// Bytes of counted frames received since our last ACK.
    unacked_bytes: usize,
    /// When our next ACK is due, if one is owed.
    ack_due: Option<Instant>,
    /// No connection: frames sent go to the replay buffer only.
    pub(super) detached: bool,
    /// Server, when another server may resume the session: how many of
    /// the frames received the handler has been given, and the requests
    /// not answered yet (see `moving.rs`).
    pub(super) durable: Option<Box<super::moving::Durable>>,
}

/// A server's HELLO that asked about resuming, judged and waiting for the
/// endpoint to say which session it opens (the session cannot see the
/// other sessions a server keeps).
#[derive(Debug, Clone)]
pub(super) struct PendingHello {
    pub(super) ask: ResumeAsk,
    pub(super) welcome: Welcome,
    pub(super) peer: (String, u32, u32),
    pub(super) token: Option<Bytes>,
    pub(super) app: Option<AppChoice>,
    pub(super) calls: Option<CallLimits>,
}

/// A session a server keeps for a client that asked to resume it later:
/// what a new connection's HELLO offered, handed from the new connection's
/// session to the kept one.
#[derive(Debug, Clone)]
pub struct ResumeOffer(pub(super) Box<PendingHello>);

impl ResumeOffer {
    /// The ticket the client presented, if it asked to resume.
    pub fn ticket(&self) -> Option<&ResumeTicket> {
        self.0.ask.ticket.as_ref()
    }

    /// The token the client authenticated with (when the server checks
    /// tokens): a resume must present the session's own.
    pub fn auth_token(&self) -> Option<&Bytes> {
        self.0.token.as_ref()
    }
}

impl Session {
    /// A client session that asks to resume the session of `ticket`
    /// (see [`Session::resume_ticket`]); writes its HELLO to `out`.
    pub fn client_resuming(
        config: super::SessionConfig,
        ticket: ResumeTicket,
        now: Instant,
        out: &mut impl FrameSink,
    ) -> Session {
        let mut session = Session::new(Role::Client, std::sync::Arc::new(config), now);
        session.ticket = Some(Box::new(ticket));
        session.hello().encode(out);
        session
    }

    /// The HELLO's resume extension, if our settings ask for one.
    pub(super) fn resume_extension(&self) -> Option<Extension> {
        let settings = self.local.resume.as_ref()?;
        let ask = ResumeAsk {
            expiry_ms: super::config::millis(settings.expiry),
            ticket: self.ticket.as_deref().cloned(),
        };
        Some(Extension::new(Extension::RESUME, ask.encode()))
    }

    /// Whether this session can be resumed on another connection: it is
    /// resumable, open, and its replay buffer has not overflowed.
    pub fn is_resumable(&self) -> bool {
        self.resume.as_ref().is_some_and(|r| !r.overflowed)
            && matches!(self.state, SessionState::Open)
    }

    /// The session's id, when it is resumable.
    pub fn resume_id(&self) -> Option<SessionId> {
        self.resume.as_ref().map(|r| r.id)
    }

    /// Server: whether `token` is the session's, compared in constant time.
    pub fn resume_token_matches(&self, token: &ResumeToken) -> bool {
        self.resume.as_ref().is_some_and(|r| r.token.matches(token))
    }

    /// How long the session is kept after a loss.
    pub fn resume_expiry(&self) -> Option<Duration> {
        self.resume
            .as_ref()
            .map(|r| Duration::from_millis(r.expiry_ms.into()))
    }

    /// Client: what to present to resume this session on a new connection.
    pub fn resume_ticket(&self) -> Option<ResumeTicket> {
        let r = self.resume.as_ref().filter(|r| !r.overflowed)?;
        Some(ResumeTicket::new(r.id, r.token.clone(), r.received))
    }

    /// Counted frames we sent that the peer has not acknowledged: what may
    /// be lost if a resume is refused.
    pub fn unacknowledged(&self) -> u64 {
        self.resume.as_ref().map_or(0, |r| r.sent - r.replay.first)
    }

    /// Bytes held for replay.
    pub fn replay_bytes(&self) -> usize {
        self.resume.as_ref().map_or(0, |r| r.replay.bytes.len())
    }

    /// The connection is gone: from now on what is sent waits in the
    /// replay buffer for the next connection (or is refused once it is
    /// full). Returns whether the session can still be resumed.
    pub fn detach(&mut self) -> bool {
        if let Some(r) = &mut self.resume {
            r.detached = true;
            r.ack_due = None;
            // What we had acknowledged is all the peer knows; what came
            // after is said again in the resume handshake.
            r.acked = r.received;
            r.unacked_bytes = 0;
        }
        self.is_resumable()
    }

    /// Encodes a frame the application sends: a resumable session keeps a
    /// copy for replay and counts it.
    #[inline]
    pub(super) fn encode_sent(&mut self, frame: &Frame, out: &mut impl FrameSink) {
        let Some(r) = self.resume.as_deref_mut() else {
            frame.encode(out);
            return;
        };
        if !frame.frame_type().is_counted() {
            if !r.detached {
                frame.encode(out);
            }
            return;
        }
        r.sent += 1;
        if let (Some(d), Frame::Response(answer)) = (r.durable.as_deref_mut(), frame) {
            d.open_requests.remove(&answer.id);
        }
        if r.overflowed {
            if !r.detached {
                frame.encode(out);
            }
            return;
        }
        let start = r.replay.bytes.len();
        frame.encode(&mut r.replay.bytes);
        let len = r.replay.bytes.len() - start;
        if !r.detached {
            out.buf().extend_from_slice(&r.replay.bytes[start..]);
        }
        r.replay.lens.push_back(len as u32);
        if r.replay.bytes.len() > r.max_bytes {
            // Too much unacknowledged to promise a replay: the session
            // goes on while connected, and a resume is refused.
            r.overflowed = true;
            r.replay = Replay::default();
        }
    }

    /// Whether what is sent now can still reach the peer: connected, or
    /// kept for a resume.
    pub(super) fn check_detached_send(&self) -> Result<(), crate::protocol::v2::SendError> {
        match &self.resume {
            Some(r) if r.detached && r.overflowed => Err(crate::protocol::v2::SendError::Closed),
            _ => Ok(()),
        }
    }

    /// Counts a frame received and writes an ACK when one is due.
    #[inline]
    pub(super) fn count_received(&mut self, len: usize, now: Instant, out: &mut impl FrameSink) {
        let Some(r) = self.resume.as_deref_mut() else {
            return;
        };
        r.received += 1;
        if r.durable.is_some() {
            // Acknowledged once handled and stored (`Session::confirm`).
            return;
        }
        r.unacked_bytes += len;
        if r.received - r.acked >= ACK_EVERY_FRAMES || r.unacked_bytes >= ACK_EVERY_BYTES {
            if self.state == SessionState::Open {
                r.acked = r.received;
                r.unacked_bytes = 0;
                r.ack_due = None;
                Frame::Ack(r.received).encode(out);
            }
        } else if r.ack_due.is_none() {
            r.ack_due = Some(now + ACK_DELAY);
        }
    }

    /// The peer acknowledged `count` of our frames.
    pub(super) fn receive_ack(&mut self, count: u64) -> Result<(), SessionError> {
        let Some(r) = self.resume.as_deref_mut() else {
            return Err(SessionError::new(
                CloseCode::PROTOCOL_ERROR,
                "ACK on a session that is not resumable",
            ));
        };
        if count > r.sent || count < r.replay.first {
            return Err(SessionError::new(
                CloseCode::PROTOCOL_ERROR,
                format!(
                    "ACK of {count} frames, but {} were sent and {} already acknowledged",
                    r.sent, r.replay.first
                ),
            ));
        }
        r.replay.trim(count);
        Ok(())
    }

    /// When an ACK is due, if one is owed.
    pub(super) fn ack_deadline(&self) -> Option<Instant> {
        self.resume.as_ref().and_then(|r| r.ack_due)
    }

    /// Writes the ACK that is due at `now`.
    pub(super) fn ack_if_due(&mut self, now: Instant, out: &mut impl FrameSink) {
        let open = self.state == SessionState::Open;
        if let Some(r) = self.resume.as_deref_mut()
            && r.ack_due.is_some_and(|due| now >= due)
        {
            r.ack_due = None;
            if open && r.received > r.acked {
                r.acked = r.received;
                r.unacked_bytes = 0;
                Frame::Ack(r.received).encode(out);
            }
        }
    }

    /// Server: a judged HELLO that asks about resuming waits here.
    pub(super) fn hold_hello(
        &mut self,
        ask: ResumeAsk,
        welcome: Welcome,
        peer: (String, u32, u32),
        token: Option<Bytes>,
        app: Option<AppChoice>,
        calls: Option<CallLimits>,
    ) -> SessionEvent {
        let event = SessionEvent::ResumeAsked(ask.clone());
        self.pending = Some(Box::new(PendingHello {
            ask,
            welcome,
            peer,
            token,
            app,
            calls,
        }));
        event
    }

    /// Server: opens the HELLO of `offer` (from [`Session::take_resume_offer`])
    /// as a new session: resumable as `grant` (its id and secret), or an
    /// ordinary one when the server keeps no more (`None`: the WELCOME
    /// says nothing of resuming). `refused` says why the session the client
    /// asked to resume is not resumed. Writes the WELCOME to `out`;
    /// returns [`SessionEvent::Opened`].
    pub fn open_resumable(
        &mut self,
        offer: ResumeOffer,
        grant: Option<(SessionId, ResumeToken)>,
        refused: Option<ResumeRefusal>,
        now: Instant,
        out: &mut impl FrameSink,
    ) -> SessionEvent {
        let settings = self.local.resume.clone().unwrap_or_default();
        let PendingHello {
            ask,
            mut welcome,
            peer,
            token: auth,
            app,
            calls,
        } = *offer.0;
        let expiry_ms = ask.expiry_ms.min(super::config::millis(settings.expiry));
        let status = refused.map_or(ResumeStatus::New, ResumeStatus::Refused);
        if let Some((id, token)) = &grant {
            let grant = ResumeGrant {
                status,
                expiry_ms,
                id: *id,
                token: token.clone(),
                received: 0,
                sent: 0,
            };
            welcome
                .extensions
                .push(Extension::new(Extension::RESUME, grant.encode()));
        }
        Frame::Welcome(welcome).encode(out);
        self.resume = grant.map(|(id, token)| {
            Box::new(Resumable::new(
                id,
                token,
                expiry_ms,
                settings.replay_max_bytes,
            ))
        });
        let status = self.resume.as_ref().map(|_| status);
        self.open(peer, auth, app, calls, status, now)
    }

    /// Server: what the HELLO held by [`SessionEvent::ResumeAsked`]
    /// offers, for the kept session it asks to resume
    /// ([`Session::resume_with`]).
    pub fn take_resume_offer(&mut self) -> Option<ResumeOffer> {
        self.pending.take().map(ResumeOffer)
    }

    /// Server: this kept session goes on with the connection whose HELLO
    /// made `offer`: writes the WELCOME, then every frame after the
    /// client's count, to `out` (the new connection's, empty). Returns the
    /// frames replayed. A refusal changes nothing.
    pub fn resume_with(
        &mut self,
        offer: &ResumeOffer,
        now: Instant,
        out: &mut impl FrameSink,
    ) -> Result<u64, ResumeRefusal> {
        let PendingHello {
            ask,
            welcome,
            peer,
            app,
            calls,
            ..
        } = &*offer.0;
        let Some(ticket) = &ask.ticket else {
            return Err(ResumeRefusal::Unknown);
        };
        let Some(r) = self.resume.as_deref() else {
            return Err(ResumeRefusal::Unknown);
        };
        if r.id != ticket.id || !r.token.matches(&ticket.token) {
            return Err(ResumeRefusal::WrongToken);
        }
        if r.overflowed || self.state != SessionState::Open {
            return Err(ResumeRefusal::Overflowed);
        }
        if peer.1 != self.peer_max_frame_size
            || *calls != self.calls.as_ref().map(|c| c.limits())
            || *app != self.app
        {
            return Err(ResumeRefusal::Mismatch);
        }
        if ticket.received < r.replay.first || ticket.received > r.sent {
            return Err(ResumeRefusal::BadPosition);
        }
        let grant = ResumeGrant {
            status: ResumeStatus::Resumed,
            expiry_ms: r.expiry_ms,
            id: r.id,
            token: r.token.clone(),
            received: r.received,
            sent: r.sent,
        };
        let mut welcome = welcome.clone();
        welcome
            .extensions
            .push(Extension::new(Extension::RESUME, grant.encode()));
        Frame::Welcome(welcome).encode(out);
        let replayed = self.replay_after(ticket.received, out);
        self.reconnected(peer.2, now);
        Ok(replayed)
    }

    /// Client: the fresh session that resumed (its event was
    /// [`SessionEvent::Resumed`]) hands over to this one, the session it
    /// resumed: every frame after the server's count goes to `out`.
    /// Returns the frames replayed; `Err` when the server claims more than
    /// we sent (it broke the protocol).
    pub fn resumed_by(
        &mut self,
        fresh: &Session,
        server_received: u64,
        now: Instant,
        out: &mut impl FrameSink,
    ) -> Result<u64, SessionError> {
        let Some(r) = self.resume.as_deref() else {
            return Err(SessionError::new(
                CloseCode::PROTOCOL_ERROR,
                "resumed a session that is not resumable",
            ));
        };
        if server_received < r.replay.first || server_received > r.sent {
            return Err(SessionError::new(
                CloseCode::PROTOCOL_ERROR,
                format!(
                    "the server resumed at {server_received}, but we sent {} and it acknowledged {}",
                    r.sent, r.replay.first
                ),
            ));
        }
        self.peer_max_frame_size = fresh.peer_max_frame_size;
        let heartbeat_ms = fresh
            .timers
            .heartbeat
            .as_ref()
            .map_or(0, |h| super::config::millis(h.interval()));
        let replayed = self.replay_after(server_received, out);
        self.reconnected(heartbeat_ms, now);
        Ok(replayed)
    }

    /// Writes the frames after number `from` to `out`; the ones before it
    /// the peer has, and are let go.
    fn replay_after(&mut self, from: u64, out: &mut impl FrameSink) -> u64 {
        let r = self.resume.as_deref_mut().expect("checked resumable");
        r.replay.trim(from);
        out.buf().extend_from_slice(&r.replay.bytes);
        r.replay.lens.len() as u64
    }

    /// A new connection: its own clocks, and nothing owed on it yet.
    fn reconnected(&mut self, heartbeat_ms: u32, now: Instant) {
        let r = self.resume.as_deref_mut().expect("checked resumable");
        r.detached = false;
        r.acked = r.received;
        r.unacked_bytes = 0;
        r.ack_due = None;
        self.timers.stall = StallClock::new(self.local.stall_limits(), now);
        self.timers.stall.frame_received(now);
        self.timers.progress_at = None;
        self.timers.heartbeat = (heartbeat_ms > 0)
            .then(|| Heartbeat::new(Duration::from_millis(heartbeat_ms.into()), now));
    }

    /// Client: reads the WELCOME's resume extension. `Ok(None)`: the
    /// server said nothing of resuming (an older server: the session is
    /// not resumable).
    pub(super) fn accept_grant(
        &mut self,
        data: Option<&[u8]>,
    ) -> Result<Option<(ResumeStatus, u64, u64)>, SessionError> {
        let (Some(settings), Some(data)) = (&self.local.resume, data) else {
            return Ok(None);
        };
        let grant = ResumeGrant::decode(data)
            .map_err(|e| SessionError::new(CloseCode::PROTOCOL_ERROR, e.to_string()))?;
        if grant.status == ResumeStatus::Resumed
            && self.ticket.as_ref().is_none_or(|t| t.id != grant.id)
        {
            return Err(SessionError::new(
                CloseCode::PROTOCOL_ERROR,
                "the server resumed a session we did not ask for",
            ));
        }
        self.resume = Some(Box::new(Resumable::new(
            grant.id,
            grant.token,
            grant.expiry_ms,
            settings.replay_max_bytes,
        )));
        Ok(Some((grant.status, grant.received, grant.sent)))
    }
}

impl Resumable {
    pub(super) fn new(id: SessionId, token: ResumeToken, expiry_ms: u32, max_bytes: usize) -> Self {
        Resumable {
            id,
            token,
            expiry_ms,
            max_bytes,
            sent: 0,
            replay: Replay::default(),
            overflowed: false,
            received: 0,
            acked: 0,
            unacked_bytes: 0,
            ack_due: None,
            detached: false,
            durable: None,
        }
    }
}
