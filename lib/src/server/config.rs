//! The server's settings, and why it may refuse to start.

use std::time::Duration;

use super::admission::AdmissionRules;
use super::auth_tokens::AuthTokens;
use crate::config_setters::setters;
use crate::protocol::StallLimits;
use crate::protocol::v2::{self, AppProtocol, LimitError, SessionConfig, TokenCheck};
use crate::transport::ServerTls;
use std::sync::Arc;

/// Limits and timings of a [`Server`](super::Server).
///
/// Start from [`ServerConfig::default`] and change what you need with the
/// setters; the struct is `#[non_exhaustive]`, so settings added later
/// (TLS, authentication, a memory budget) never break your code.
///
/// ```
/// use rust_tcp::ServerConfig;
/// use std::time::Duration;
/// let config = ServerConfig::default()
///     .max_connections(500)
///     .heartbeat(Duration::from_secs(10));
/// assert!(config.validate().is_ok());
/// ```
///
/// A struct literal does not compile outside the crate, which is what lets
/// us add settings:
///
/// ```compile_fail
/// let config = rust_tcp::ServerConfig { max_connections: 500, ..Default::default() };
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Connections served at once, so the server cannot run out of memory
    /// or file descriptors. Past this, new connections are refused at once
    /// with a reason (v2: CLOSE 1016 "server full").
    pub max_connections: usize,
    /// Connections one address group (see [`ServerConfig::ipv6_prefix`])
    /// may hold at once, so that one host cannot take every slot. Past it,
    /// a new connection is refused at once with a reason (v2: CLOSE 1008),
    /// never left waiting.
    pub max_connections_per_ip: usize,
    /// Connections still in their handshake (no HELLO or first v1 message
    /// yet) held at once, OpenSSH's `MaxStartups` idea. When this is full,
    /// or every slot is taken, a newcomer displaces the oldest such
    /// connection instead of being refused; established sessions are never
    /// displaced. So silent sockets from many addresses cannot lock honest
    /// clients out: they only churn among themselves.
    pub max_pending_handshakes: usize,
    /// The handshake deadline for connections that arrive while more than
    /// half of [`ServerConfig::max_pending_handshakes`] is in use (when it
    /// is shorter than [`ServerConfig::handshake_timeout`]): under pressure
    /// a slot is lent for less time, as Envoy's overload manager does.
    pub handshake_timeout_under_pressure: Duration,
    /// New connections per second one address group may open (a token
    /// bucket holding ten seconds' worth, HAProxy's `src_conn_rate`); past
    /// it, refused at once (v2: CLOSE 1008). 0 turns the limit off.
    pub max_connection_rate_per_ip: u32,
    /// IPv4 addresses are counted (per-address limit and rate) by this
    /// prefix: 32, each address on its own, by default.
    pub ipv4_prefix: u8,
    /// IPv6 addresses are counted by this prefix: a /64 by default, since
    /// anyone given an IPv6 network has 2^64 addresses in it.
    pub ipv6_prefix: u8,
    /// How long a shutdown waits for open connections to finish before
    /// abandoning them. v2 clients get a go-away at once and half of this
    /// to close by themselves.
    pub shutdown_grace: Duration,
    /// Largest v2 payload accepted, announced in the welcome.
    pub max_frame_size: u32,
    /// v2 heartbeat interval for clients that state no wish, announced in
    /// the welcome; zero turns heartbeats off for everyone. Silent clients
    /// are pinged after one interval and dropped after three.
    pub heartbeat: Duration,
    /// The shortest heartbeat interval a client's wish is granted (spec
    /// 3.3): shorter wishes get this.
    pub heartbeat_min: Duration,
    /// The longest heartbeat interval a client's wish is granted.
    pub heartbeat_max: Duration,
    /// Bytes that may wait to be sent to one v2 client. A client that lets
    /// more pile up is not reading and is disconnected, so its queue, and
    /// the server's memory, stay bounded.
    pub max_queued_bytes: usize,
    /// How long a new connection has to send its first complete frame (a
    /// v2 HELLO, or a v1 message), counted from accept, whatever bytes it
    /// sends meanwhile.
    pub handshake_timeout: Duration,
    /// Every frame begun must arrive whole within this, plus its length at
    /// [`ServerConfig::min_frame_rate`]: a peer that trickles bytes is cut
    /// (v2: CLOSE 1008).
    pub frame_timeout: Duration,
    /// The slowest transfer rate, in bytes/s, a frame is given time for.
    pub min_frame_rate: u32,
    /// v1 only (v2 has heartbeats): how long a connection may go without a
    /// complete message; `None` keeps it forever.
    pub idle_timeout: Option<Duration>,
    /// The server's name in the welcome.
    pub server_name: String,
    /// One budget, in bytes, for what the server holds on behalf of peers'
    /// large frames: a frame larger than a read (64 KiB) is admitted by the
    /// length it claims before its bytes are buffered, and a connection
    /// that wants more than is free is not read until some is returned.
    pub max_memory: usize,
    /// TLS: with it, the port serves TLS only (v1 and v2 inside it alike);
    /// without it (the default), plain TCP.
    pub tls: Option<ServerTls>,
    /// Token authentication: with it, every v2 client must send a token
    /// these accept (CLOSE 1008 otherwise), and v1 connections, which
    /// cannot carry one, are refused unless `allow_v1` is set.
    pub auth_tokens: Option<AuthTokens>,
    /// With `auth_tokens`: admit v1 connections anyway (unauthenticated).
    pub allow_v1: bool,
    /// Every connection starts with a PROXY protocol v2 header (HAProxy's
    /// `send-proxy-v2`); the client address it names is the one used for
    /// logs, [`PeerInfo`](super::PeerInfo), per-address limits and authentication.
    /// A connection without a valid header is refused. Only behind a
    /// trusted load balancer: anyone reaching the port directly could claim
    /// any address. Off by default.
    pub proxy_protocol: bool,
    /// Time every request (arrival to answer) into the
    /// `rust_tcp_request_duration_seconds` histogram of the installed
    /// `metrics` recorder. Off by default: it costs a clock reading per
    /// request, worth it only when metrics are collected (the `server`
    /// binary turns it on with `--metrics-addr`).
    pub time_requests: bool,
    /// The application protocol this server speaks (spec 3.3.2): clients
    /// that ask for it get a version and encoding both speak, or are
    /// refused with CLOSE 1010 naming both sides. Clients that ask for no
    /// application protocol are served untyped. `None` (the default):
    /// none.
    pub app_protocol: Option<AppProtocol>,
    /// Calls (spec 3.13): streams with credit, cancellation, deadlines and
    /// metadata, for clients that ask for them in their HELLO; the limits
    /// are announced in the WELCOME. Served by [`Handler::on_call`](super::Handler::on_call).
    /// On by default (100 calls in flight per connection, 16 items of
    /// credit per client stream, no deadline cap); `None` turns them off,
    /// and clients that never ask (every v2 peer that predates calls) see
    /// no difference either way.
    pub calls: Option<v2::CallLimits>,
    /// Resumable sessions (spec 3.14), for clients that ask for them: a
    /// lost connection's session is kept for the expiry the client asked
    /// (at most `expiry` here), what is sent to it meanwhile waits in its
    /// replay buffer (at most `replay_max_bytes`), and a client that
    /// presents its ticket on a new connection to this server picks it up
    /// with nothing lost. On by default (60 s, 256 KiB); `None` turns it
    /// off (clients then get ordinary sessions).
    pub resume: Option<v2::ResumeSettings>,
    /// At most this many resumable sessions are kept at once (connected or
    /// waiting for their client); past it new clients get ordinary
    /// sessions, and a refused resume says `Unavailable`. Bounds the
    /// memory of replay buffers to this times `replay_max_bytes`.
    pub max_kept_sessions: usize,
    /// Where resumable sessions are also kept for the other servers of a
    /// deployment (spec 3.14.1): with a store, a client whose server died
    /// resumes on another with nothing lost (a new handler serves it there;
    /// requests and calls the old one had not answered end with an error).
    /// Each frame then waits for its session's record to be written before
    /// it is sent or handed to the handler (one store round trip per
    /// batch). `None` (the default): sessions resume on this server only.
    #[cfg(feature = "nats")]
    pub session_store: Option<super::SessionStore>,
    /// A second listener for browsers: v2 over WebSocket (spec section 4),
    /// served by the same service with the same session rules and limits
    /// (slots, per-address, memory budget, deadlines, tokens); TLS (`wss`)
    /// when [`ServerConfig::tls`] is set. `None` (the default): none.
    #[cfg(feature = "websocket")]
    pub websocket: Option<crate::transport::WebSocketConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            max_pending_handshakes: 1_000,
            handshake_timeout_under_pressure: Duration::from_secs(2),
            // A NAT of a thousand users reconnecting after a restart fits
            // in the bucket (1,000); a flood does not.
            max_connection_rate_per_ip: 100,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            shutdown_grace: Duration::from_secs(5),
            max_frame_size: v2::DEFAULT_MAX_FRAME_SIZE,
            heartbeat: Duration::from_secs(30),
            heartbeat_min: Duration::from_secs(1),
            heartbeat_max: Duration::from_secs(600),
            max_queued_bytes: 8 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: StallLimits::default().frame_base,
            min_frame_rate: StallLimits::default().min_rate,
            // Long enough for a person typing into the tutorial client.
            idle_timeout: Some(Duration::from_secs(300)),
            server_name: "rust-tcp".into(),
            // What a small machine survives; 64 frames of the largest size.
            max_memory: 1024 * 1024 * 1024,
            tls: None,
            auth_tokens: None,
            allow_v1: false,
            proxy_protocol: false,
            time_requests: false,
            app_protocol: None,
            calls: Some(v2::CallLimits::default()),
            resume: Some(v2::ResumeSettings::default().replay_max_bytes(256 * 1024)),
            max_kept_sessions: 1_000,
            #[cfg(feature = "nats")]
            session_store: None,
            #[cfg(feature = "websocket")]
            websocket: None,
        }
    }
}

impl ServerConfig {
    setters! {
        max_connections: usize,
        max_connections_per_ip: usize,
        max_pending_handshakes: usize,
        handshake_timeout_under_pressure: Duration,
        max_connection_rate_per_ip: u32,
        ipv4_prefix: u8,
        ipv6_prefix: u8,
        shutdown_grace: Duration,
        max_frame_size: u32,
        heartbeat: Duration,
        heartbeat_min: Duration,
        heartbeat_max: Duration,
        max_queued_bytes: usize,
        handshake_timeout: Duration,
        frame_timeout: Duration,
        min_frame_rate: u32,
        idle_timeout: Option<Duration>,
        max_memory: usize,
        proxy_protocol: bool,
        time_requests: bool,
        calls: Option<v2::CallLimits>,
        resume: Option<v2::ResumeSettings>,
        max_kept_sessions: usize,
    }

    /// Serves TLS only, with these settings (see [`ServerTls`]).
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Keeps resumable sessions in `store` too, for the deployment's other
    /// servers (see [`ServerConfig::session_store`](Self::session_store)).
    #[cfg(feature = "nats")]
    pub fn session_store(mut self, store: super::SessionStore) -> Self {
        self.session_store = Some(store);
        self
    }

    /// Requires a token from these for every v2 client.
    pub fn auth_tokens(mut self, tokens: AuthTokens) -> Self {
        self.auth_tokens = Some(tokens);
        self
    }

    /// With tokens required: admit v1 connections anyway.
    pub fn allow_v1(mut self, allow: bool) -> Self {
        self.allow_v1 = allow;
        self
    }

    /// Speaks `protocol` (see [`ServerConfig::app_protocol`]).
    pub fn app_protocol(mut self, protocol: AppProtocol) -> Self {
        self.app_protocol = Some(protocol);
        self
    }

    /// Listens for WebSockets too (see [`ServerConfig::websocket`]). Like
    /// [`ServerConfig::tls`], it takes the setting itself; leave it out
    /// for none.
    #[cfg(feature = "websocket")]
    pub fn websocket(mut self, websocket: crate::transport::WebSocketConfig) -> Self {
        self.websocket = Some(websocket);
        self
    }

    /// Sets [`ServerConfig::server_name`].
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = name.into();
        self
    }

    /// Refuses settings that could never work, by the protocol's own rules
    /// (a name or limit peers would reject in the handshake) and the
    /// server's. [`Server::bind`](super::Server::bind) calls it too.
    pub fn validate(&self) -> Result<(), ServerError> {
        self.session_config()
            .validate()
            .map_err(|e: LimitError| ServerError::InvalidConfig(format!("server {e}")))?;
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return Err(ServerError::InvalidConfig(
                "max connections (in all and per address) must be at least 1".into(),
            ));
        }
        if self.heartbeat_min > self.heartbeat_max {
            return Err(ServerError::InvalidConfig(format!(
                "the heartbeat bounds are reversed: min {:?} is above max {:?}",
                self.heartbeat_min, self.heartbeat_max
            )));
        }
        if let Some(p) = &self.app_protocol {
            p.validate().map_err(ServerError::InvalidConfig)?;
        }
        if self.max_pending_handshakes == 0 {
            return Err(ServerError::InvalidConfig(
                "max pending handshakes must be at least 1".into(),
            ));
        }
        if self.handshake_timeout.is_zero()
            || self.frame_timeout.is_zero()
            || self.handshake_timeout_under_pressure.is_zero()
        {
            return Err(ServerError::InvalidConfig(
                "the handshake and frame timeouts must be longer than zero".into(),
            ));
        }
        if self.ipv4_prefix > 32 || self.ipv6_prefix > 128 {
            return Err(ServerError::InvalidConfig(format!(
                "address prefixes must be at most /32 (IPv4) and /128 (IPv6), not /{} and /{}",
                self.ipv4_prefix, self.ipv6_prefix
            )));
        }
        if self.max_memory < self.max_frame_size as usize {
            return Err(ServerError::InvalidConfig(format!(
                "max memory {} is below the max frame size {}: such a frame could never be read",
                self.max_memory, self.max_frame_size
            )));
        }
        if self.min_frame_rate == 0 {
            return Err(ServerError::InvalidConfig(
                "min frame rate must be at least 1 byte/s".into(),
            ));
        }
        if self.max_queued_bytes == 0 {
            return Err(ServerError::InvalidConfig(
                "max queued bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The rules of who gets a slot.
    pub(crate) fn admission_rules(&self) -> AdmissionRules {
        AdmissionRules {
            max_total: self.max_connections,
            max_per_group: self.max_connections_per_ip,
            max_pending: self.max_pending_handshakes,
            handshake_timeout: self.handshake_timeout,
            handshake_timeout_under_pressure: self.handshake_timeout_under_pressure,
            rate: self.max_connection_rate_per_ip,
            burst: self.max_connection_rate_per_ip.saturating_mul(10),
            ipv4_prefix: self.ipv4_prefix,
            ipv6_prefix: self.ipv6_prefix,
        }
    }

    /// What each v2 connection's session is told.
    pub(crate) fn session_config(&self) -> SessionConfig {
        SessionConfig::default()
            .name(self.server_name.clone())
            .max_frame_size(self.max_frame_size)
            .heartbeat(self.heartbeat)
            .heartbeat_min(self.heartbeat_min)
            .heartbeat_max(self.heartbeat_max)
            .handshake_timeout(Some(self.handshake_timeout))
            .drain_timeout(self.shutdown_grace / 2)
            .frame_timeout(self.frame_timeout)
            .min_frame_rate(self.min_frame_rate)
            .token_check(
                self.auth_tokens
                    .clone()
                    .map(|t| Arc::new(t) as Arc<dyn TokenCheck>),
            )
            .app_protocol(self.app_protocol.clone())
            .calls(self.calls)
            .resume(self.resume.clone())
    }

    /// The deadlines of a v1 connection, which has no heartbeats, given
    /// this connection's handshake deadline.
    pub(crate) fn v1_stall_limits(&self, handshake_timeout: Duration) -> StallLimits {
        StallLimits {
            first_frame: handshake_timeout,
            frame_base: self.frame_timeout,
            min_rate: self.min_frame_rate,
            idle: self.idle_timeout,
        }
    }
}

/// Why the server could not start. Once running, it does not fail: every
/// error after that belongs to one connection and is logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting cannot work (it would produce frames peers must reject).
    #[error("invalid server configuration: {0}")]
    InvalidConfig(String),
    /// Binding the listening socket failed (address in use, no permission…).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
}
