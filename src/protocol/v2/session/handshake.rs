//! The v2 handshake: how a HELLO is judged by a server and a WELCOME by a
//! client, and why either may be refused.

use crate::protocol::v2::frame::FrameSink;
use std::time::{Duration, Instant};

use super::heartbeat::Heartbeat;
use super::{Session, SessionEvent, SessionState};
use crate::protocol::v2::frame::{Frame, Hello, Welcome};
use crate::protocol::v2::limits::{check_max_frame_size, check_name};
use crate::protocol::v2::{CloseCode, SessionError, VERSION};

fn refuse(reason: String) -> SessionError {
    SessionError::new(CloseCode::HANDSHAKE_REFUSED, reason)
}

impl Session {
    /// The HELLO a client opens with.
    pub(super) fn hello(&self) -> Frame {
        Frame::Hello(Hello {
            versions: vec![VERSION],
            max_frame_size: self.local.max_frame_size,
            heartbeat_ms: 0,
            name: self.local.name.clone(),
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
        let heartbeat_ms = self.local.heartbeat_ms();
        Frame::Welcome(Welcome {
            version: VERSION,
            max_frame_size: self.local.max_frame_size,
            heartbeat_ms,
            server_name: self.local.name.clone(),
        })
        .encode(out);
        Ok(self.open(h.name, h.max_frame_size, heartbeat_ms, now))
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
        Ok(self.open(w.server_name, w.max_frame_size, w.heartbeat_ms, now))
    }

    /// Both sides agree: messages may flow, and the heartbeat starts.
    fn open(
        &mut self,
        peer_name: String,
        peer_max_frame_size: u32,
        heartbeat_ms: u32,
        now: Instant,
    ) -> SessionEvent {
        self.state = SessionState::Open;
        self.peer_max_frame_size = peer_max_frame_size;
        self.peer_name = peer_name;
        self.timers.heartbeat = (heartbeat_ms > 0)
            .then(|| Heartbeat::new(Duration::from_millis(heartbeat_ms.into()), now));
        SessionEvent::Opened {
            peer_name: self.peer_name.clone(),
            peer_max_frame_size,
            heartbeat_ms,
        }
    }
}
