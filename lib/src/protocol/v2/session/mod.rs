//! The v2 connection state machine, shared by client and server: every
//! frame in and every frame out passes through it. The handshake is in
//! `handshake.rs`, what may be sent when in `send_rules.rs`, closing and
//! going away in `closing.rs`, and the clock in `timers.rs`.
//!
//! ```text
//!            hello/welcome           we send CLOSE            peer's CLOSE
//! Handshake ───────────────▶ Open ──────────────────▶ Closing ─────────────▶ Closed
//!                              │  peer sends CLOSE                             ▲
//!                              └──────────────────▶ PeerClosing ── ack_close ──┘
//! ```
//!
//! The session never touches I/O. It is fed decoded frames and the time,
//! answers with events for the application, and writes every frame it
//! sends (welcome, pong, ping, close, and the application's own frames
//! through [`Session::send`]) into a buffer the caller hands it. That keeps
//! every rule of the protocol — what may be sent when, how large, how the
//! handshake is judged, when silence ends a connection — in one place that
//! tests drive frame by frame, on a made-up clock.

use bytes::Bytes;

use crate::protocol::StallLimits;
use crate::protocol::v2::frame::FrameSink;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod calls;
mod closing;
mod config;
mod handshake;
mod heartbeat;
mod moving;
mod resume;
mod send_rules;
mod timers;

pub use config::{SessionConfig, TokenCheck};
pub use handshake::AUTHENTICATION_FAILED;
pub use heartbeat::MISSED_HEARTBEATS;
pub use resume::{ResumeOffer, ResumeSettings};
pub use timers::Expired;

use super::frame::{CodeReason, Frame, RequestFrame, ResponseFrame};
use super::{CloseCode, MIN_MAX_FRAME_SIZE, SessionError};
use crate::protocol::{Message, StallClock};
use timers::Timers;

pub use super::state::{Role, SessionState};

/// What a received frame means for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The handshake succeeded.
    Opened {
        /// The peer's name (client name, or server name).
        peer_name: String,
        /// The largest payload we may send to the peer.
        peer_max_frame_size: u32,
        /// The heartbeat interval both sides follow, in ms; 0 = off.
        heartbeat_ms: u32,
        /// Server side: the token the client authenticated with, if the
        /// server checks tokens.
        auth_token: Option<Bytes>,
        /// The application protocol both sides settled on, if the client
        /// asked for one (spec 3.3.2).
        app: Option<crate::protocol::v2::AppChoice>,
        /// The server's limits for calls, when both speak them (spec 3.13).
        calls: Option<crate::protocol::v2::CallLimits>,
        /// Whether the session is resumable (spec 3.14): `None` if not
        /// asked for or not spoken by the server; a refused resume says why.
        resume: Option<crate::protocol::v2::ResumeStatus>,
    },
    /// Server: the HELLO asks for a resumable session, or to resume one.
    /// Answer with [`Session::open_resumable`], or resume a kept session
    /// with [`Session::take_resume_offer`] and [`Session::resume_with`].
    ResumeAsked(crate::protocol::v2::ResumeAsk),
    /// Client: the server resumed the session we asked for, having had
    /// `received` of our counted frames; hand over with
    /// [`Session::resumed_by`] on the session resumed.
    Resumed {
        /// Counted frames the server had received from us.
        received: u64,
        /// Counted frames the server has sent in the session.
        sent: u64,
    },
    /// Text from the peer.
    Text(Message),
    /// Bytes from the peer.
    Binary(Bytes),
    /// A request to answer (server side).
    Request(RequestFrame),
    /// An answer to one of our requests (client side).
    Response(ResponseFrame),
    /// The peer reports a non-fatal error.
    Error(CodeReason),
    /// The server is shutting down (client side).
    GoAway(CodeReason),
    /// The peer started the close handshake. Process everything received
    /// before it, then call [`Session::ack_close`].
    CloseRequested(CodeReason),
    /// The session is over: our close was acknowledged, or the peer refused
    /// the handshake.
    Closed(CodeReason),
    /// A call opened (server side, spec 3.13).
    Call(crate::protocol::v2::CallFrame),
    /// An item of a call's stream from the peer.
    Item(crate::protocol::v2::ItemFrame),
    /// The peer granted `items` more items to our stream of call `id`.
    Credit {
        /// The call.
        id: u32,
        /// How many more.
        items: u32,
    },
    /// The client's stream of call `id` ended (server side).
    End(u32),
    /// The client cancelled call `id` (server side): stop its work.
    Cancel(u32),
    /// A call of ours ended (client side).
    Status(crate::protocol::v2::StatusFrame),
}

/// One connection's protocol state. See the module docs.
#[derive(Debug, Clone)]
pub struct Session {
    role: Role,
    state: SessionState,
    /// Ours: a server's sessions all share one.
    local: Arc<SessionConfig>,
    peer_max_frame_size: u32,
    peer_name: String,
    going_away: bool,
    timers: Timers,
    /// Calls, once both sides agreed to speak them (spec 3.13).
    calls: Option<Box<calls::Calls>>,
    /// The application protocol agreed on.
    app: Option<crate::protocol::v2::AppChoice>,
    /// Counters and replay buffer, when resumable (spec 3.14).
    resume: Option<Box<resume::Resumable>>,
    /// Server: a HELLO that asked about resuming, until the endpoint says
    /// which session it opens.
    pending: Option<Box<resume::PendingHello>>,
    /// Client: the session this one asks to resume.
    ticket: Option<Box<crate::protocol::v2::ResumeTicket>>,
}

impl Session {
    /// A server session waiting for a HELLO, which must come within the
    /// configured handshake timeout from `now` (pass the instant the
    /// connection was accepted, so bytes before the HELLO buy no time).
    /// A server shares one configuration among all its sessions (`Arc`).
    pub fn server(config: impl Into<Arc<SessionConfig>>, now: Instant) -> Session {
        Session::new(Role::Server, config.into(), now)
    }

    /// Like [`Session::server`], with this connection's own handshake
    /// deadline instead of the shared configuration's (a server under
    /// pressure gives newcomers less time).
    pub(crate) fn server_with_handshake_timeout(
        config: Arc<SessionConfig>,
        handshake_timeout: Duration,
        now: Instant,
    ) -> Session {
        let mut session = Session::new(Role::Server, config, now);
        let limits = StallLimits {
            first_frame: handshake_timeout,
            ..session.local.stall_limits()
        };
        session.timers.stall = StallClock::new(limits, now);
        session
    }

    /// A client session: writes the HELLO that opens it to `out`.
    pub fn client(config: SessionConfig, now: Instant, out: &mut impl FrameSink) -> Session {
        let session = Session::new(Role::Client, Arc::new(config), now);
        session.hello().encode(out);
        session
    }

    fn new(role: Role, local: Arc<SessionConfig>, now: Instant) -> Session {
        Session {
            role,
            state: SessionState::Handshake,
            timers: Timers {
                stall: StallClock::new(local.stall_limits(), now),
                heartbeat: None,
                drain_deadline: None,
                last_ping: 0,
                progress_at: None,
            },
            local,
            peer_max_frame_size: MIN_MAX_FRAME_SIZE,
            peer_name: String::new(),
            going_away: false,
            calls: None,
            app: None,
            resume: None,
            pending: None,
            ticket: None,
        }
    }

    /// Which end we are.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the session is.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The peer's name, once the handshake is done.
    pub fn peer_name(&self) -> &str {
        &self.peer_name
    }

    /// The largest payload the peer accepts (the minimum until it says).
    pub fn peer_max_frame_size(&self) -> u32 {
        self.peer_max_frame_size
    }

    /// The server's limits for calls, when both sides speak them.
    pub fn call_limits(&self) -> Option<crate::protocol::v2::CallLimits> {
        self.calls.as_ref().map(|c| c.limits())
    }

    /// Calls in flight (0 without calls).
    pub fn calls_in_flight(&self) -> usize {
        self.calls.as_ref().map_or(0, |c| c.in_flight())
    }

    /// Items we may still send on call `id`'s stream.
    pub fn send_credit(&self, id: u32) -> u32 {
        self.calls.as_ref().map_or(0, |c| c.send_credit(id))
    }

    /// Whether the server has announced its shutdown.
    pub fn is_going_away(&self) -> bool {
        self.going_away
    }

    /// Applies one frame from the peer at `now`; any answer the protocol
    /// requires (WELCOME, PONG) is written to `out`. An `Err` means the
    /// peer broke the protocol or refused us: the session has written a
    /// CLOSE saying why and is over.
    pub fn receive(
        &mut self,
        frame: Frame,
        now: Instant,
        out: &mut impl FrameSink,
    ) -> Result<Option<SessionEvent>, SessionError> {
        self.frame_received(now);
        let counted = self.resume.is_some() && frame.frame_type().is_counted();
        let len = if counted { frame.wire_len() } else { 0 };
        let event = self.apply(frame, now, out).map_err(|e| self.fail(e, out))?;
        if counted {
            self.count_received(len, now, out);
            if let Some(r) = self.resume.as_deref_mut()
                && let Some(durable) = r.durable.as_deref_mut()
            {
                return Ok(durable.admit(r.received, event, self.calls.as_deref_mut()));
            }
        }
        Ok(event)
    }

    /// Whether receiving `frame` can move a session to another state: the
    /// handshake's frames, CLOSE and GOAWAY. Every other frame meets the
    /// same state whether it is received alone or in a batch, so a driver
    /// batches those and lets these travel alone.
    pub fn may_change_state(frame: &Frame) -> bool {
        matches!(
            frame,
            Frame::Hello(_) | Frame::Welcome(_) | Frame::Close(_) | Frame::GoAway(_)
        )
    }

    #[inline]
    fn apply(
        &mut self,
        frame: Frame,
        now: Instant,
        out: &mut impl FrameSink,
    ) -> Result<Option<SessionEvent>, SessionError> {
        use SessionState::*;
        let event = match (self.state, frame) {
            (Closed, f) => return Err(self.unexpected(&f)),
            (PeerClosing, f) => {
                return Err(SessionError::new(
                    CloseCode::PROTOCOL_ERROR,
                    format!("{:?} frame after CLOSE", f.frame_type()),
                ));
            }
            (Handshake, Frame::Hello(h)) if self.role == Role::Server => {
                self.accept_hello(h, now, out)?
            }
            (Handshake, Frame::Welcome(w)) if self.role == Role::Client => {
                self.accept_welcome(w, now)?
            }
            // A client's CLOSE here is the server refusing the handshake. A
            // server gets nothing but a HELLO first (spec 3.10): a client
            // that gives up before its HELLO just disconnects.
            (Handshake, Frame::Close(c)) if self.role == Role::Client => {
                self.state = Closed;
                SessionEvent::Closed(c)
            }
            (Handshake, f) => {
                return Err(SessionError::new(
                    CloseCode::PROTOCOL_ERROR,
                    format!(
                        "expected {} first, got {:?}",
                        match self.role {
                            Role::Server => "HELLO",
                            Role::Client => "WELCOME",
                        },
                        f.frame_type()
                    ),
                ));
            }
            (Closing, Frame::Close(c)) => {
                self.state = Closed;
                SessionEvent::Closed(c)
            }
            (Open, Frame::Close(c)) => {
                self.state = PeerClosing;
                SessionEvent::CloseRequested(c)
            }
            (Open | Closing, Frame::Text(m)) => SessionEvent::Text(m),
            (Open | Closing, Frame::Binary(b)) => SessionEvent::Binary(b),
            (Open, Frame::Ping(n)) => {
                Frame::Pong(n).encode(out);
                return Ok(None);
            }
            // After our CLOSE we send nothing more, not even a pong.
            (Closing, Frame::Ping(_)) | (Open | Closing, Frame::Pong(_)) => return Ok(None),
            (Open | Closing, Frame::Error(e)) => SessionEvent::Error(e),
            (Open | Closing, Frame::Request(r)) if self.role == Role::Server => {
                SessionEvent::Request(r)
            }
            (Open | Closing, Frame::Response(r)) if self.role == Role::Client => {
                SessionEvent::Response(r)
            }
            (Open | Closing, Frame::GoAway(g)) if self.role == Role::Client => {
                self.going_away = true;
                SessionEvent::GoAway(g)
            }
            (Open | Closing, f) if f.frame_type().is_call_frame() && self.calls.is_some() => {
                let calls = self.calls.as_mut().expect("checked");
                let mut reply = None;
                let event = calls.receive(f, &mut reply);
                if let Some(reply) = reply {
                    self.encode_sent(&reply, out);
                }
                return event;
            }
            (Open | Closing, Frame::Ack(n)) => {
                self.receive_ack(n)?;
                return Ok(None);
            }
            (_, f) => return Err(self.unexpected(&f)),
        };
        Ok(Some(event))
    }

    fn unexpected(&self, f: &Frame) -> SessionError {
        SessionError::new(
            CloseCode::PROTOCOL_ERROR,
            format!(
                "unexpected {:?} frame for a {:?} in state {:?}",
                f.frame_type(),
                self.role,
                self.state
            ),
        )
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_calls;

#[cfg(test)]
mod tests_resume;

#[cfg(all(test, feature = "nats"))]
mod tests_moving;
