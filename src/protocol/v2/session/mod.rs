//! The v2 connection state machine, shared by client and server. The
//! handshake is in `handshake.rs`, closing and going away in `closing.rs`.
//!
//! ```text
//!            hello/welcome           we send CLOSE            peer's CLOSE
//! Handshake ───────────────▶ Open ──────────────────▶ Closing ─────────────▶ Closed
//!                              │  peer sends CLOSE                             ▲
//!                              └──────────────────▶ PeerClosing ── ack_close ──┘
//! ```
//!
//! The session never touches I/O: it is fed decoded frames and answers with
//! events for the application and frames to send. That keeps every rule of
//! the protocol (what may be sent when, how the handshake is judged, what
//! ends a connection) in one place that tests drive frame by frame.

use bytes::Bytes;

mod closing;
mod handshake;

use super::frame::{CodeReason, Frame, Hello, RequestFrame, ResponseFrame};
use super::{CloseCode, MIN_MAX_FRAME_SIZE, SessionError, VERSION};
use crate::protocol::Message;

/// Which end of the connection a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends hello, sends requests, receives go-away.
    Client,
    /// Answers hello, answers requests, may send go-away.
    Server,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for hello (server) or welcome (client).
    Handshake,
    /// Messages flow both ways.
    Open,
    /// We sent CLOSE; frames the peer sent before seeing it are still
    /// processed, until its CLOSE arrives.
    Closing,
    /// The peer sent CLOSE; we process what came before, then acknowledge.
    PeerClosing,
    /// Done: nothing more may be sent or received.
    Closed,
}

/// What a received frame means for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The handshake succeeded.
    Opened {
        /// The peer's name (client name, or server name).
        peer_name: String,
        /// The largest payload we may send to the peer.
        peer_max_frame_size: u32,
        /// The heartbeat interval both sides follow, in ms; 0 = off.
        heartbeat_ms: u32,
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
    /// before it, then send [`Session::ack_close`].
    CloseRequested(CodeReason),
    /// The session is over: our close was acknowledged, or the peer refused
    /// the handshake.
    Closed(CodeReason),
}

/// The outcome of one received frame.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    /// For the application, if anything.
    pub event: Option<SessionEvent>,
    /// To send back at once (welcome, pong), if anything.
    pub reply: Option<Frame>,
}

/// Our side's settings: what we accept and who we are.
#[derive(Debug, Clone)]
struct Local {
    max_frame_size: u32,
    heartbeat_ms: u32,
    name: String,
}

/// One connection's protocol state. See the module docs.
#[derive(Debug, Clone)]
pub struct Session {
    role: Role,
    state: SessionState,
    local: Local,
    peer_max_frame_size: u32,
    heartbeat_ms: u32,
    peer_name: String,
    going_away: bool,
}

impl Session {
    /// A server session waiting for a hello. `max_frame_size` and
    /// `heartbeat_ms` are announced in the welcome.
    pub fn server(max_frame_size: u32, heartbeat_ms: u32, name: impl Into<String>) -> Session {
        Session::new(Role::Server, max_frame_size, heartbeat_ms, name.into())
    }

    /// A client session, and the hello that opens it.
    pub fn client(max_frame_size: u32, name: impl Into<String>) -> (Session, Frame) {
        let session = Session::new(Role::Client, max_frame_size, 0, name.into());
        let hello = Frame::Hello(Hello {
            versions: vec![VERSION],
            max_frame_size,
            heartbeat_ms: 0,
            name: session.local.name.clone(),
        });
        (session, hello)
    }

    fn new(role: Role, max_frame_size: u32, heartbeat_ms: u32, name: String) -> Session {
        Session {
            role,
            state: SessionState::Handshake,
            local: Local {
                max_frame_size,
                heartbeat_ms,
                name,
            },
            peer_max_frame_size: MIN_MAX_FRAME_SIZE,
            heartbeat_ms: 0,
            peer_name: String::new(),
            going_away: false,
        }
    }

    /// Where the session is.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The peer's name, once the handshake is done.
    pub fn peer_name(&self) -> &str {
        &self.peer_name
    }

    /// The agreed heartbeat interval in ms (0 = off), once open.
    pub fn heartbeat_ms(&self) -> u32 {
        self.heartbeat_ms
    }

    /// Whether the server has announced its shutdown.
    pub fn is_going_away(&self) -> bool {
        self.going_away
    }

    /// Applies one frame from the peer. An `Err` means the peer broke the
    /// protocol or refused us: send [`Session::close`] with its code and
    /// reason, then drop the connection.
    pub fn receive(&mut self, frame: Frame) -> Result<Received, SessionError> {
        use SessionState::*;
        let event = |e| {
            Ok(Received {
                event: Some(e),
                reply: None,
            })
        };
        match (self.state, frame) {
            (Closed, f) => Err(self.unexpected(&f)),
            (PeerClosing, f) => Err(SessionError::new(
                CloseCode::PROTOCOL_ERROR,
                format!("{:?} frame after CLOSE", f.frame_type()),
            )),
            (Handshake, Frame::Hello(h)) if self.role == Role::Server => self.accept_hello(h),
            (Handshake, Frame::Welcome(w)) if self.role == Role::Client => self.accept_welcome(w),
            (Handshake, Frame::Close(c)) => {
                self.state = Closed;
                event(SessionEvent::Closed(c))
            }
            (Handshake, f) => Err(SessionError::new(
                CloseCode::PROTOCOL_ERROR,
                format!(
                    "expected {} first, got {:?}",
                    if self.role == Role::Server {
                        "HELLO"
                    } else {
                        "WELCOME"
                    },
                    f.frame_type()
                ),
            )),
            (Open | Closing, Frame::Close(c)) => {
                if self.state == Closing {
                    self.state = Closed;
                    event(SessionEvent::Closed(c))
                } else {
                    self.state = PeerClosing;
                    event(SessionEvent::CloseRequested(c))
                }
            }
            (Open | Closing, Frame::Text(m)) => event(SessionEvent::Text(m)),
            (Open | Closing, Frame::Binary(b)) => event(SessionEvent::Binary(b)),
            // After our CLOSE we send nothing more, not even a pong.
            (Open, Frame::Ping(n)) => Ok(Received {
                event: None,
                reply: Some(Frame::Pong(n)),
            }),
            (Closing, Frame::Ping(_)) => Ok(Received::default()),
            (Open | Closing, Frame::Pong(_)) => Ok(Received::default()),
            (Open | Closing, Frame::Error(e)) => event(SessionEvent::Error(e)),
            (Open | Closing, Frame::Request(r)) if self.role == Role::Server => {
                event(SessionEvent::Request(r))
            }
            (Open | Closing, Frame::Response(r)) if self.role == Role::Client => {
                event(SessionEvent::Response(r))
            }
            (Open | Closing, Frame::GoAway(g)) if self.role == Role::Client => {
                self.going_away = true;
                event(SessionEvent::GoAway(g))
            }
            (_, f) => Err(self.unexpected(&f)),
        }
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

    /// Whether we may send `frame` now: the state allows its type and it
    /// fits the peer's limit. Checked before queueing, so an application
    /// mistake is reported to the caller instead of breaking the session.
    pub fn check_send(&self, frame: &Frame) -> Result<(), SessionError> {
        use SessionState::*;
        let len = frame.payload_len();
        if len > self.peer_max_frame_size as usize {
            return Err(SessionError::new(
                CloseCode::FRAME_TOO_LARGE,
                format!(
                    "frame of {len} bytes exceeds the peer's limit of {}",
                    self.peer_max_frame_size
                ),
            ));
        }
        let allowed = match (self.state, frame) {
            (Open, Frame::Request(_)) if self.role == Role::Client => !self.going_away,
            (Open, Frame::Response(_) | Frame::GoAway(_)) => self.role == Role::Server,
            (Open, Frame::Text(_) | Frame::Binary(_) | Frame::Ping(_) | Frame::Pong(_)) => true,
            (Open, Frame::Error(_)) => true,
            // Answers to what the peer sent before its CLOSE still go out.
            (PeerClosing, Frame::Response(_) | Frame::Pong(_)) => true,
            _ => false,
        };
        if allowed {
            Ok(())
        } else if self.going_away && matches!(frame, Frame::Request(_)) {
            Err(SessionError::new(
                CloseCode::GOING_AWAY,
                "the server is going away: no new requests",
            ))
        } else {
            Err(SessionError::new(
                CloseCode::PROTOCOL_ERROR,
                format!(
                    "cannot send {:?} in state {:?}",
                    frame.frame_type(),
                    self.state
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_pair() -> (Session, Session) {
        let mut server = Session::server(1 << 20, 30_000, "srv");
        let (mut client, hello) = Session::client(1 << 20, "alice");
        let r = server.receive(hello).unwrap();
        assert!(
            matches!(r.event, Some(SessionEvent::Opened { ref peer_name, .. }) if peer_name == "alice")
        );
        let r = client.receive(r.reply.unwrap()).unwrap();
        assert!(matches!(
            r.event,
            Some(SessionEvent::Opened {
                heartbeat_ms: 30_000,
                ..
            })
        ));
        (server, client)
    }

    #[test]
    fn handshake_opens_both_sides() {
        let (s, c) = open_pair();
        assert_eq!(s.state(), SessionState::Open);
        assert_eq!(c.state(), SessionState::Open);
        assert_eq!(c.peer_name(), "srv");
    }

    #[test]
    fn a_frame_before_hello_is_a_protocol_error() {
        let mut s = Session::server(1 << 20, 0, "srv");
        let err = s.receive(Frame::Text(Message::new("hi"))).unwrap_err();
        assert_eq!(err.code, CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn hello_without_v2_or_with_a_bad_name_is_refused_with_a_reason() {
        let mut s = Session::server(1 << 20, 0, "srv");
        let bad = Frame::Hello(Hello {
            versions: vec![3],
            max_frame_size: 4096,
            heartbeat_ms: 0,
            name: "x".into(),
        });
        let err = s.receive(bad).unwrap_err();
        assert_eq!(err.code, CloseCode::HANDSHAKE_REFUSED);
        assert!(err.reason.contains("speaks 1 and 2"));
        let (_, mut hello) = Session::client(4096, "bad\nname");
        let mut s = Session::server(1 << 20, 0, "srv");
        assert_eq!(
            s.receive(std::mem::replace(&mut hello, Frame::Ping(0)))
                .unwrap_err()
                .code,
            CloseCode::HANDSHAKE_REFUSED
        );
    }

    #[test]
    fn pings_are_answered_by_the_session() {
        let (mut s, _) = open_pair();
        assert_eq!(
            s.receive(Frame::Ping(9)).unwrap().reply,
            Some(Frame::Pong(9))
        );
    }

    #[test]
    fn close_handshake_from_the_client() {
        let (mut s, mut c) = open_pair();
        let close = c.close(CloseCode::NORMAL, "done");
        assert_eq!(c.state(), SessionState::Closing);
        let r = s.receive(close).unwrap();
        assert!(matches!(r.event, Some(SessionEvent::CloseRequested(_))));
        // Answers to earlier requests may still go out, new work may not.
        assert!(
            s.check_send(&Frame::Response(ResponseFrame {
                id: 1,
                result: Ok(Bytes::new())
            }))
            .is_ok()
        );
        assert!(s.check_send(&Frame::Text(Message::new("x"))).is_err());
        assert!(s.receive(Frame::Text(Message::new("late"))).is_err());
        let ack = s.ack_close();
        assert_eq!(s.state(), SessionState::Closed);
        // The client still takes frames sent before the ack.
        assert!(c.receive(Frame::Text(Message::new("in flight"))).is_ok());
        let r = c.receive(ack).unwrap();
        assert!(matches!(r.event, Some(SessionEvent::Closed(_))));
        assert_eq!(c.state(), SessionState::Closed);
    }

    #[test]
    fn after_go_away_the_client_starts_no_new_requests() {
        let (mut s, mut c) = open_pair();
        let g = s.go_away("restarting").unwrap();
        assert!(s.go_away("again").is_none());
        c.receive(g).unwrap();
        let req = Frame::Request(RequestFrame {
            id: 1,
            payload: Bytes::new(),
        });
        assert_eq!(c.check_send(&req).unwrap_err().code, CloseCode::GOING_AWAY);
        assert!(c.check_send(&Frame::Text(Message::new("bye"))).is_ok());
    }

    #[test]
    fn roles_are_enforced() {
        let (mut s, mut c) = open_pair();
        assert!(
            s.receive(Frame::Response(ResponseFrame {
                id: 1,
                result: Ok(Bytes::new())
            }))
            .is_err()
        );
        assert!(
            c.receive(Frame::Request(RequestFrame {
                id: 1,
                payload: Bytes::new()
            }))
            .is_err()
        );
        assert!(
            c.check_send(&Frame::GoAway(CodeReason::new(CloseCode::GOING_AWAY, "")))
                .is_err()
        );
    }

    #[test]
    fn sends_over_the_peers_limit_are_refused() {
        let mut server = Session::server(1 << 20, 0, "srv");
        let (_, hello) = Session::client(1024, "tiny");
        server.receive(hello).unwrap();
        let big = Frame::Binary(Bytes::from(vec![0; 1025]));
        assert_eq!(
            server.check_send(&big).unwrap_err().code,
            CloseCode::FRAME_TOO_LARGE
        );
    }
}
