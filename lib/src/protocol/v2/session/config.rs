//! What one side of a session is and accepts: its name, its limit, and the
//! durations of its timers.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

use crate::config_setters::setters;
use crate::protocol::StallLimits;
use crate::protocol::v2::AppProtocol;
use crate::protocol::v2::limits::{self, DEFAULT_MAX_FRAME_SIZE, LimitError};

/// One side's settings. Start from [`SessionConfig::default`] and change
/// what you need with the setters; new settings may be added without
/// breaking callers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Our name in the HELLO or WELCOME.
    pub name: String,
    /// The largest payload we accept, announced in the handshake.
    pub max_frame_size: u32,
    /// Server: the heartbeat interval for a client that states no wish
    /// (zero turns heartbeats off for everyone). Client: the interval it
    /// wishes for in its HELLO (zero: no preference). Both then follow
    /// what the WELCOME says.
    pub heartbeat: Duration,
    /// Server only: the shortest interval a client's wish is granted
    /// (shorter wishes get this).
    pub heartbeat_min: Duration,
    /// Server only: the longest interval a client's wish is granted.
    pub heartbeat_max: Duration,
    /// How long the peer has to complete the handshake; `None` waits
    /// forever.
    pub handshake_timeout: Option<Duration>,
    /// Server only: how long after a GOAWAY the session closes by itself.
    pub drain_timeout: Duration,
    /// Every frame begun must arrive whole within this, plus its length at
    /// [`SessionConfig::min_frame_rate`]; a peer that trickles is closed
    /// with 1008.
    pub frame_timeout: Duration,
    /// The slowest rate, in bytes/s, a frame is given time for.
    pub min_frame_rate: u32,
    /// Client only: the token sent in the HELLO's auth extension.
    pub auth_token: Option<Bytes>,
    /// Server only: when set, a HELLO must carry a token this accepts, or
    /// the handshake is refused with 1008.
    pub token_check: Option<Arc<dyn TokenCheck>>,
    /// The application protocol spoken over the session (spec 3.3.2).
    /// Client: asked for in the HELLO, and a WELCOME without a fitting
    /// choice is refused. Server: a HELLO that asks for another protocol,
    /// or versions or encodings it does not speak, is refused with 1010; a
    /// HELLO that asks for none opens an untyped session.
    pub app_protocol: Option<AppProtocol>,
    /// Calls (spec 3.13). Server: the limits it keeps, announced to every
    /// client that asks (`None`: it does not speak calls). Client: `Some`
    /// asks for calls in the HELLO (the limits are the server's to set).
    pub calls: Option<crate::protocol::v2::CallLimits>,
    /// Resumable sessions (spec 3.14). Client: `Some` asks for one in the
    /// HELLO. Server: `Some` grants them (its endpoint keeps the sessions
    /// of lost connections); `None` ignores the ask.
    pub resume: Option<super::ResumeSettings>,
}

/// Decides whether a HELLO's token is good: the server's side of token
/// authentication, kept apart from the session so tokens can come from
/// anywhere (a file reloaded on SIGHUP, a database). Compare in constant
/// time: the session tells the peer nothing about why a token failed.
pub trait TokenCheck: Send + Sync + std::fmt::Debug {
    /// Whether `token` may open a session.
    fn accepts(&self, token: &[u8]) -> bool;
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            name: "rust-tcp".into(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            heartbeat: Duration::ZERO,
            heartbeat_min: Duration::from_secs(1),
            heartbeat_max: Duration::from_secs(600),
            handshake_timeout: Some(Duration::from_secs(10)),
            drain_timeout: Duration::from_millis(2500),
            frame_timeout: StallLimits::default().frame_base,
            min_frame_rate: StallLimits::default().min_rate,
            auth_token: None,
            token_check: None,
            app_protocol: None,
            calls: None,
            resume: None,
        }
    }
}

impl SessionConfig {
    setters! {
        max_frame_size: u32,
        heartbeat: Duration,
        heartbeat_min: Duration,
        heartbeat_max: Duration,
        handshake_timeout: Option<Duration>,
        drain_timeout: Duration,
        frame_timeout: Duration,
        min_frame_rate: u32,
        auth_token: Option<Bytes>,
        token_check: Option<Arc<dyn TokenCheck>>,
        app_protocol: Option<AppProtocol>,
        calls: Option<crate::protocol::v2::CallLimits>,
        resume: Option<super::ResumeSettings>,
    }
    /// Sets our name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The stall deadlines this config asks for (no idle limit: v2's
    /// heartbeats judge silence).
    pub(crate) fn stall_limits(&self) -> StallLimits {
        StallLimits {
            first_frame: self.handshake_timeout.unwrap_or(Duration::MAX),
            frame_base: self.frame_timeout,
            min_rate: self.min_frame_rate,
            idle: None,
        }
    }

    /// The heartbeat interval in the wire's unit, milliseconds.
    pub(crate) fn heartbeat_ms(&self) -> u32 {
        millis(self.heartbeat)
    }

    /// Server: the interval a client that wished for `wish_ms` gets (spec
    /// 3.3): none if this server has heartbeats off, its default if the
    /// client has no preference (0), else the wish within the bounds.
    pub(crate) fn negotiate_heartbeat_ms(&self, wish_ms: u32) -> u32 {
        match (self.heartbeat_ms(), wish_ms) {
            (0, _) => 0,
            (default, 0) => default,
            (_, wish) => wish.clamp(millis(self.heartbeat_min), millis(self.heartbeat_max)),
        }
    }

    /// Refuses settings a peer would have to reject in the handshake.
    pub fn validate(&self) -> Result<(), LimitError> {
        limits::check_name(&self.name)?;
        limits::check_max_frame_size(self.max_frame_size)
    }
}

pub(super) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
