//! The v2 handshake: how a HELLO is judged by a server and a WELCOME by a
//! client, and why either may be refused.

use super::{Received, Session, SessionEvent, SessionState};
use crate::protocol::v2::frame::{Frame, Hello, Welcome};
use crate::protocol::v2::{CloseCode, MAX_NAME_LEN, MIN_MAX_FRAME_SIZE, SessionError, VERSION};

impl Session {
    pub(super) fn accept_hello(&mut self, h: Hello) -> Result<Received, SessionError> {
        let refuse = |reason: String| Err(SessionError::new(CloseCode::HANDSHAKE_REFUSED, reason));
        if !h.versions.contains(&VERSION) {
            return refuse(format!(
                "client offers versions {:?}; this server speaks 1 and 2",
                h.versions
            ));
        }
        if let Err(why) = check_name(&h.name) {
            return refuse(format!("client name {why}"));
        }
        check_max_frame_size("client", h.max_frame_size)?;
        self.state = SessionState::Open;
        self.peer_max_frame_size = h.max_frame_size;
        self.heartbeat_ms = self.local.heartbeat_ms;
        self.peer_name = h.name;
        Ok(Received {
            event: Some(self.opened_event()),
            reply: Some(Frame::Welcome(Welcome {
                version: VERSION,
                max_frame_size: self.local.max_frame_size,
                heartbeat_ms: self.heartbeat_ms,
                server_name: self.local.name.clone(),
            })),
        })
    }

    pub(super) fn accept_welcome(&mut self, w: Welcome) -> Result<Received, SessionError> {
        let refuse = |reason: String| Err(SessionError::new(CloseCode::HANDSHAKE_REFUSED, reason));
        if w.version != VERSION {
            return refuse(format!(
                "server chose version {}; we asked for 2",
                w.version
            ));
        }
        check_max_frame_size("server", w.max_frame_size)?;
        self.state = SessionState::Open;
        self.peer_max_frame_size = w.max_frame_size;
        self.heartbeat_ms = w.heartbeat_ms;
        self.peer_name = w.server_name;
        Ok(Received {
            event: Some(self.opened_event()),
            reply: None,
        })
    }

    fn opened_event(&self) -> SessionEvent {
        SessionEvent::Opened {
            peer_name: self.peer_name.clone(),
            peer_max_frame_size: self.peer_max_frame_size,
            heartbeat_ms: self.heartbeat_ms,
        }
    }
}

/// Every limit must leave room for the handshake and control frames.
fn check_max_frame_size(who: &str, size: u32) -> Result<(), SessionError> {
    if size < MIN_MAX_FRAME_SIZE {
        return Err(SessionError::new(
            CloseCode::HANDSHAKE_REFUSED,
            format!("{who} max frame size {size} is below the minimum {MIN_MAX_FRAME_SIZE}"),
        ));
    }
    Ok(())
}

/// Names label chat messages and log lines, so they must be short and
/// printable.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "must be 1 to {MAX_NAME_LEN} bytes, got {}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}
