//! The v2 handshake: how a HELLO is judged by a server and a WELCOME by a
//! client, and why either may be refused.

use crate::protocol::v2::frame::FrameSink;
use std::time::{Duration, Instant};

use super::heartbeat::Heartbeat;
use super::{Session, SessionEvent, SessionState};
use crate::protocol::v2::frame::{Extension, Frame, Hello, Welcome};
use crate::protocol::v2::limits::{check_max_frame_size, check_name};
use crate::protocol::v2::{
    AppChoice, AppProtocol, CALLS_VERSION, CallLimits, CloseCode, ResumeAsk, ResumeStatus,
    SessionError, VERSION,
};

/// The reason every failed authentication gets.
pub const AUTHENTICATION_FAILED: &str = "authentication failed";

fn refuse(reason: String) -> SessionError {
    SessionError::new(CloseCode::HANDSHAKE_REFUSED, reason)
}

/// An extension we read whose data does not parse: a malformed frame.
fn malformed(e: impl std::fmt::Display) -> SessionError {
    SessionError::new(CloseCode::PROTOCOL_ERROR, e.to_string())
}

impl Session {
    /// The HELLO a client opens with.
    pub(super) fn hello(&self) -> Frame {
        Frame::Hello(Hello {
            versions: vec![VERSION],
            max_frame_size: self.local.max_frame_size,
            heartbeat_ms: self.local.heartbeat_ms(),
            name: self.local.name.clone(),
            extensions: self
                .local
                .auth_token
                .iter()
                .map(|t| Extension::new(Extension::AUTH_TOKEN, t.clone()))
                .chain(
                    self.local
                        .app_protocol
                        .iter()
                        .map(|p| Extension::new(Extension::APP_PROTOCOL, p.encode_offer())),
                )
                .chain(
                    self.local
                        .calls
                        .iter()
                        .map(|_| Extension::new(Extension::CALLS, vec![CALLS_VERSION])),
                )
                .chain(self.resume_extension())
                .collect(),
        })
    }

    pub(super) fn accept_hello(
        &mut self,
        h: Hello,
        now: Instant,
        out: &mut impl FrameSink,
    ) -> Result<SessionEvent, SessionError> {
        if !h.versions.contains(&VERSION) {
            return Err(refuse(format!(
                "client offers versions {:?}; this server speaks {}",
                h.versions,
                crate::protocol::spoken_versions()
            )));
        }
        check_name(&h.name).map_err(|e| refuse(format!("client {e}")))?;
        check_max_frame_size(h.max_frame_size).map_err(|e| refuse(format!("client {e}")))?;
        if let Some(unknown) = h
            .extensions
            .iter()
            .find(|e| e.is_critical() && e.kind != Extension::AUTH_TOKEN)
        {
            return Err(refuse(format!(
                "critical extension 0x{:04x} is not supported",
                unknown.kind
            )));
        }
        let token = h
            .extensions
            .iter()
            .find(|e| e.kind == Extension::AUTH_TOKEN)
            .map(|e| e.data.clone());
        if let Some(check) = &self.local.token_check {
            // One reason for every failure: the peer learns nothing more.
            if !token.as_ref().is_some_and(|t| check.accepts(t)) {
                return Err(SessionError::new(
                    CloseCode::POLICY_VIOLATION,
                    AUTHENTICATION_FAILED,
                ));
            }
        }
        let app = match (
            &self.local.app_protocol,
            extension(&h.extensions, Extension::APP_PROTOCOL),
        ) {
            (Some(ours), Some(data)) => {
                // Bytes that are no offer are a malformed frame (1002), as
                // any other field would be; an offer we cannot meet is a
                // refusal (1010).
                let offer = AppProtocol::decode_offer(data).map_err(malformed)?;
                Some(ours.negotiate(&offer).map_err(refuse)?)
            }
            // No application protocol asked for (an untyped client), or
            // none spoken here (the client judges the WELCOME).
            _ => None,
        };
        // Calls, when both speak them; a server that does not reads nothing
        // of the extension (it ignores what it does not know).
        let calls = match (
            &self.local.calls,
            extension(&h.extensions, Extension::CALLS),
        ) {
            (Some(limits), Some(data)) => CallLimits::offered(data)
                .map_err(malformed)?
                .then_some(*limits),
            _ => None,
        };
        // Resuming, when both speak it: the endpoint, which keeps the
        // sessions of lost connections, says which session this opens.
        let resume = match (
            &self.local.resume,
            extension(&h.extensions, Extension::RESUME),
        ) {
            (Some(_), Some(data)) => Some(ResumeAsk::decode(data).map_err(malformed)?),
            _ => None,
        };
        let heartbeat_ms = self.local.negotiate_heartbeat_ms(h.heartbeat_ms);
        let welcome = Welcome {
            version: VERSION,
            max_frame_size: self.local.max_frame_size,
            heartbeat_ms,
            server_name: self.local.name.clone(),
            extensions: app
                .iter()
                .map(|c| Extension::new(Extension::APP_PROTOCOL, c.encode()))
                .chain(
                    calls
                        .iter()
                        .map(|l| Extension::new(Extension::CALLS, l.encode())),
                )
                .collect(),
        };
        let token = self.local.token_check.as_ref().and(token);
        let peer = (h.name, h.max_frame_size, heartbeat_ms);
        if let Some(ask) = resume {
            return Ok(self.hold_hello(ask, welcome, peer, token, app, calls));
        }
        Frame::Welcome(welcome).encode(out);
        Ok(self.open(peer, token, app, calls, None, now))
    }

    pub(super) fn accept_welcome(
        &mut self,
        w: Welcome,
        now: Instant,
    ) -> Result<SessionEvent, SessionError> {
        if w.version != VERSION {
            return Err(refuse(format!(
                "server chose version {}; we asked for 2",
                w.version
            )));
        }
        check_max_frame_size(w.max_frame_size).map_err(|e| refuse(format!("server {e}")))?;
        if let Some(unknown) = w.extensions.iter().find(|e| e.is_critical()) {
            return Err(refuse(format!(
                "critical extension 0x{:04x} is not supported",
                unknown.kind
            )));
        }
        let app = match &self.local.app_protocol {
            None => None,
            Some(offer) => {
                let data = extension(&w.extensions, Extension::APP_PROTOCOL).ok_or_else(|| {
                    refuse(format!(
                        "the server speaks no application protocol; we asked for {}",
                        offer.name
                    ))
                })?;
                let choice = AppChoice::decode(data).map_err(malformed)?;
                if !choice.fits(offer) {
                    return Err(refuse(format!(
                        "the server chose {choice}, which we did not offer"
                    )));
                }
                Some(choice)
            }
        };
        // A server that does not answer the calls extension speaks none:
        // the session opens without them (calls fail locally).
        let calls = match (
            &self.local.calls,
            extension(&w.extensions, Extension::CALLS),
        ) {
            (Some(_), Some(data)) => Some(CallLimits::decode(data).map_err(malformed)?),
            _ => None,
        };
        let resume = self.accept_grant(extension(&w.extensions, Extension::RESUME))?;
        let peer = (w.server_name, w.max_frame_size, w.heartbeat_ms);
        let opened = self.open(peer, None, app, calls, resume.map(|r| r.0), now);
        Ok(match resume {
            // This session only carried the handshake: the one resumed
            // takes over (`Session::resumed_by`).
            Some((ResumeStatus::Resumed, received, sent)) => {
                SessionEvent::Resumed { received, sent }
            }
            _ => opened,
        })
    }

    /// Both sides agree: messages may flow, and the heartbeat starts.
    pub(super) fn open(
        &mut self,
        (peer_name, peer_max_frame_size, heartbeat_ms): (String, u32, u32),
        auth_token: Option<bytes::Bytes>,
        app: Option<AppChoice>,
        calls: Option<CallLimits>,
        resume: Option<ResumeStatus>,
        now: Instant,
    ) -> SessionEvent {
        self.calls = calls.map(|limits| Box::new(super::calls::Calls::new(self.role, limits)));
        self.app = app.clone();
        self.state = SessionState::Open;
        self.peer_max_frame_size = peer_max_frame_size;
        self.peer_name = peer_name;
        self.timers.heartbeat = (heartbeat_ms > 0)
            .then(|| Heartbeat::new(Duration::from_millis(heartbeat_ms.into()), now));
        SessionEvent::Opened {
            peer_name: self.peer_name.clone(),
            peer_max_frame_size,
            heartbeat_ms,
            auth_token,
            app,
            calls,
            resume,
        }
    }
}

/// The data of the first extension of type `kind`.
fn extension(extensions: &[Extension], kind: u16) -> Option<&[u8]> {
    extensions
        .iter()
        .find(|e| e.kind == kind)
        .map(|e| &e.data[..])
}
