//! How a connection ended: fine (`ConnectionEnd`) or cut for a reason
//! (`ConnectionError`), in the words the server logs.

use std::time::Duration;

use crate::protocol::v1::{self, CodecError};
use crate::protocol::v2::{self, V2CodecError};

/// How a connection ended without fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionEnd {
    /// A v1 client sent `exit`.
    ClientExit,
    /// A v2 client completed the close handshake.
    ClientClosed,
    /// The peer closed its side between frames.
    PeerClosed,
    /// The server is shutting down.
    ServerShutdown,
    /// A resumable session's client resumed it on a new connection.
    TakenOver,
    /// This connection resumed a kept session (it goes on serving it).
    Resumed,
    /// A plain HTTP GET on the WebSocket port, answered with this status
    /// (a page, or 404).
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    HttpServed(u16),
}

/// Why a connection was cut: the peer's fault or the network's, never the
/// server's business beyond a log line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("{0}")]
    V1Protocol(#[from] v1::DecodeError),
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    #[error("{0}")]
    V2Frame(#[from] v2::FrameError),
    #[error("{0}")]
    V2Session(#[from] v2::SessionError),
    #[error("no HELLO in time")]
    HandshakeTimeout,
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error(
        "v1 refused: this server requires a token, which v1 cannot carry (--allow-v1 admits v1)"
    )]
    V1NeedsToken,
    #[error("too slow: {0}")]
    Stalled(crate::protocol::Stalled),
    #[error("client is not reading: {queued} bytes queued for it; disconnected (slow consumer)")]
    SlowConsumer { queued: usize },
    #[error("heartbeat timeout: nothing heard for {0:?}")]
    HeartbeatTimeout(Duration),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The deployment's session store failed this resumable session (or
    /// another server resumed it): it ends here without being kept.
    #[cfg(feature = "nats")]
    #[error("{0}")]
    SessionStore(String),
    /// The HTTP request on the WebSocket port was answered with an error.
    #[error("WebSocket upgrade refused with HTTP {status}: {reason}")]
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    WebSocketUpgrade { status: u16, reason: String },
}

impl From<CodecError> for ConnectionError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Decode(e) => ConnectionError::V1Protocol(e),
            CodecError::Encode(e) => ConnectionError::Io(std::io::Error::other(e)),
            CodecError::Io(e) => ConnectionError::Io(e),
        }
    }
}

impl From<V2CodecError> for ConnectionError {
    fn from(e: V2CodecError) -> Self {
        match e {
            V2CodecError::Frame(e) => ConnectionError::V2Frame(e),
            V2CodecError::Io(e) => ConnectionError::Io(e),
            e @ V2CodecError::TooLargeToSend { .. } => {
                ConnectionError::Io(std::io::Error::other(e))
            }
        }
    }
}

impl ConnectionEnd {
    /// The `reason` label of the closed-connections metric.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            ConnectionEnd::ClientExit => "client_exit",
            ConnectionEnd::ClientClosed => "close_handshake",
            ConnectionEnd::PeerClosed => "peer_disconnected",
            ConnectionEnd::ServerShutdown => "shutdown",
            ConnectionEnd::HttpServed(_) => "http_served",
            ConnectionEnd::TakenOver => "resumed_elsewhere",
            ConnectionEnd::Resumed => "resumed",
        }
    }
}

impl ConnectionError {
    /// The `reason` label of the closed-connections metric.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            ConnectionError::V1Protocol(_)
            | ConnectionError::V2Frame(_)
            | ConnectionError::V2Session(_) => "protocol_error",
            ConnectionError::UnsupportedVersion(_) => "unsupported_version",
            ConnectionError::HandshakeTimeout => "handshake_timeout",
            ConnectionError::Tls(_) => "tls_error",
            ConnectionError::V1NeedsToken => "v1_needs_token",
            ConnectionError::Stalled(_) => "too_slow",
            ConnectionError::SlowConsumer { .. } => "slow_consumer",
            ConnectionError::HeartbeatTimeout(_) => "heartbeat_timeout",
            ConnectionError::Io(_) => "io_error",
            #[cfg(feature = "nats")]
            ConnectionError::SessionStore(_) => "session_store",
            ConnectionError::WebSocketUpgrade { .. } => "websocket_upgrade_refused",
        }
    }

    /// The close code sent for a protocol violation, if it was one.
    pub(crate) fn protocol_code(&self) -> Option<u16> {
        match self {
            ConnectionError::V2Frame(f) => Some(f.close_code().0),
            ConnectionError::V2Session(s) => Some(s.code.0),
            ConnectionError::V1Protocol(_) => Some(1002),
            _ => None,
        }
    }
}
