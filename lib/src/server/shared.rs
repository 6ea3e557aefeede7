//! What every connection of one server shares (the settings, the memory
//! budget, the authentication brake and the stop signal), and what it knows
//! of each peer before its first frame ([`PeerFacts`]).

use std::sync::Arc;

use super::admission::Slot;
use super::auth_tokens::AuthBackoff;
use super::config::ServerConfig;
use super::metrics::ServerMetrics;
use super::signals::SignalEpoch;
use crate::transport::MemoryBudget;
use rustls_pki_types::CertificateDer;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One server's shared state, built once by `Server::run`.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) budget: MemoryBudget,
    pub(crate) auth_backoff: AuthBackoff,
    /// Cancelled when the server stops: connections say GOAWAY and drain.
    pub(crate) stop: CancellationToken,
    /// The hot paths' metric handles.
    pub(crate) metrics: ServerMetrics,
    /// What every v2 session of this server shares (its own handshake
    /// deadline aside).
    pub(crate) session_config: Arc<crate::protocol::v2::SessionConfig>,
    /// Moves whenever `stop`, the abandon signal or a displacement fires.
    pub(crate) signals: Arc<SignalEpoch>,
    /// The resumable sessions kept, when the server grants them.
    pub(crate) kept: Option<super::kept_sessions::KeptSessions>,
}

// What the server knows about a peer before its first frame: where it is,
// when it came, and (with mutual TLS) who it proved to be.

/// What the server knows about a peer before its first frame.
pub(crate) struct PeerFacts<'a> {
    /// Its address.
    pub(crate) addr: SocketAddr,
    /// When it was accepted: the first frame's deadline counts from here.
    pub(crate) accepted: Instant,
    /// How long it has for its handshake (shorter when the server was under
    /// pressure as it arrived).
    pub(crate) handshake_timeout: Duration,
    /// Its slot, promoted to a session's once the handshake is done.
    pub(crate) slot: &'a Slot,
    /// A load balancer's health check (PROXY `LOCAL`): logged at debug
    /// level and counted, not logged at info several times a second.
    pub(crate) health_check: bool,
    /// Its verified TLS client certificate, with mutual TLS.
    pub(crate) certificate: Option<CertificateDer<'static>>,
    /// Which listener it came by.
    pub(crate) transport: super::service::Transport,
}
