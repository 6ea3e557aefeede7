//! How a [`Client`](super::Client) connects: its protocol, name, limits and
//! timeouts.

use std::time::Duration;

use super::error::ClientError;
use crate::config_setters::setters;
use crate::protocol::v2::{self, SessionConfig};
use crate::transport::ClientTls;

/// Which protocol a [`Client`](super::Client) speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// The tutorial format: text to the server only, `exit` to end.
    V1,
    /// Typed frames both ways, requests, heartbeats, close handshake.
    V2,
}

/// How a [`Client`](super::Client) connects.
///
/// Start from [`ClientConfig::default`] and change what you need with the
/// setters; the struct is `#[non_exhaustive]`, so settings added later
/// (TLS, tokens, reconnecting) never break your code.
///
/// ```
/// use rust_tcp::ClientConfig;
/// use std::time::Duration;
/// let config = ClientConfig::default()
///     .name("sensor-7")
///     .request_timeout(Some(Duration::from_secs(2)));
/// assert!(config.validate().is_ok());
/// ```
///
/// A struct literal does not compile outside the crate, which is what lets
/// us add settings:
///
/// ```compile_fail
/// let config = rust_tcp::ClientConfig { name: "x".into(), ..Default::default() };
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Our name in the v2 hello (chat labels, server logs).
    pub name: String,
    /// The protocol to speak.
    pub version: ProtocolVersion,
    /// Largest payload we accept from the server (v2).
    pub max_frame_size: u32,
    /// Bytes that may wait to be written before senders wait.
    pub max_queued_bytes: usize,
    /// Server-pushed messages kept for [`Client::incoming`](super::Client::incoming). Once
    /// the application has taken that stream and lets this many pile up,
    /// the client ends the connection (see [`Pushed::Overflowed`](super::Pushed::Overflowed)):
    /// every call then fails at once instead of waiting on a connection
    /// the server would drop as a slow consumer.
    pub incoming_capacity: usize,
    /// How long connecting and the handshake may take.
    pub connect_timeout: Duration,
    /// How long one request waits for its response before failing with
    /// [`ClientError::RequestTimeout`]; `None` (the default) waits as long
    /// as the connection lives.
    pub request_timeout: Option<Duration>,
    /// TLS, or plain TCP (`None`, the default).
    pub tls: Option<ClientTls>,
    /// The token sent in the HELLO, for a server that requires one (use
    /// TLS, or it crosses the network in clear text).
    pub auth_token: Option<String>,
    /// Reconnect when the connection is lost or the server goes away
    /// (`None`, the default: the client ends with its connection).
    pub reconnect: Option<super::Reconnect>,
    /// The heartbeat interval we wish for in the HELLO (`None`: the
    /// server's default). A phone saving its battery wishes for long
    /// intervals, a trading client for short ones; the server grants it
    /// within its bounds, and both follow what the WELCOME says.
    pub heartbeat: Option<Duration>,
    /// The application protocol to ask for in the HELLO (spec 3.3.2): the
    /// server must choose a version and encoding from it, or the handshake
    /// fails (with the server's reason, naming both sides).
    pub app_protocol: Option<v2::AppProtocol>,
    /// Ask for calls (spec 3.13: streams, cancellation, deadlines,
    /// metadata; [`Client::call`](super::Client::call)) in the HELLO. On by
    /// default: a server that does not speak them ignores the ask, and its
    /// calls then fail locally with `SendError::CallsNotNegotiated`.
    pub calls: bool,
    /// Ask for a resumable session (spec 3.14): with
    /// [`ClientConfig::reconnect`], a lost connection is followed by a new
    /// one that picks the session up where it was, with nothing lost
    /// either way — requests in flight are answered, pushes sent while we
    /// were away arrive, what we sent and the server had not had is sent
    /// again. The application is told ([`Pushed::Resumed`](super::Pushed::Resumed),
    /// or [`Pushed::ResumeRefused`](super::Pushed::ResumeRefused) with what
    /// may have been lost). `None` (the default): a new session each time.
    pub resume: Option<v2::ResumeSettings>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            name: "rust-tcp-client".into(),
            version: ProtocolVersion::V2,
            max_frame_size: v2::DEFAULT_MAX_FRAME_SIZE,
            max_queued_bytes: 1024 * 1024,
            incoming_capacity: 1024,
            connect_timeout: Duration::from_secs(10),
            request_timeout: None,
            tls: None,
            auth_token: None,
            reconnect: None,
            heartbeat: None,
            app_protocol: None,
            calls: true,
            resume: None,
        }
    }
}

impl ClientConfig {
    setters! {
        version: ProtocolVersion,
        max_frame_size: u32,
        max_queued_bytes: usize,
        incoming_capacity: usize,
        connect_timeout: Duration,
        request_timeout: Option<Duration>,
        reconnect: Option<super::Reconnect>,
        heartbeat: Option<Duration>,
        app_protocol: Option<v2::AppProtocol>,
        calls: bool,
        resume: Option<v2::ResumeSettings>,
    }
    /// Sets [`ClientConfig::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sends this token in the HELLO.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// Connects with TLS, with these settings (see [`ClientTls`]).
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Refuses settings that could never work, by the protocol's own rules
    /// (a name or limit the server would reject in the handshake).
    /// [`Client::connect_with`](super::Client::connect_with) calls it before connecting.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.version == ProtocolVersion::V2 {
            self.session_config(self.connect_timeout)
                .validate()
                .map_err(|e| ClientError::InvalidConfig(format!("client {e}")))?;
        }
        if let Some(p) = &self.app_protocol {
            p.validate().map_err(ClientError::InvalidConfig)?;
        }
        if self.max_queued_bytes == 0 {
            return Err(ClientError::InvalidConfig(
                "max queued bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// What the v2 session is told; the handshake must end within `limit`.
    pub(crate) fn session_config(&self, limit: Duration) -> SessionConfig {
        SessionConfig::default()
            .name(self.name.clone())
            .max_frame_size(self.max_frame_size)
            .handshake_timeout(Some(limit))
            .auth_token(self.auth_token.clone().map(bytes::Bytes::from))
            .heartbeat(self.heartbeat.unwrap_or_default())
            .app_protocol(self.app_protocol.clone())
            .calls(self.calls.then(v2::CallLimits::default))
            .resume(self.resume.clone())
    }
}
