//! What can go wrong for a client, and who caused it: the server, the
//! network, or our own side refusing.

use std::io;
use std::time::Duration;

use crate::protocol::v1::EncodeError;
use crate::protocol::v2::{CallStatus, CloseCode, CodeReason, SendError};

/// Who caused a [`ClientError`] (as h2's `is_remote`/`is_library`): what a
/// caller decides on (retry, report, fix the configuration), as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// Our side: this client's configuration, a local limit, or our own
    /// `close`.
    Us,
    /// The server, playing by the rules: it refused, answered with an
    /// error, closed, or went away.
    Server,
    /// The network: nothing answered, the connection broke or went silent.
    Network,
    /// The server broke the protocol (we closed with a protocol error).
    ProtocolViolation,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cause::Us => "by us",
            Cause::Server => "by the server",
            Cause::Network => "by the network",
            Cause::ProtocolViolation => "by a protocol violation",
        })
    }
}

/// What can go wrong for a client. Each variant says who caused it, and
/// [`ClientError::cause`] says it as data.
///
/// ```
/// use rust_tcp::{Cause, ClientError};
///
/// fn worth_retrying(e: &ClientError) -> bool {
///     matches!(e.cause(), Cause::Network) || matches!(e, ClientError::Interrupted(_))
/// }
/// ```
///
/// New kinds of failure will come, so a `match` needs a `_` arm. This one
/// names every variant there is today and still does not compile, because
/// the enum is `#[non_exhaustive]`:
///
/// ```compile_fail
/// fn local(e: &rust_tcp::ClientError) -> bool {
///     use rust_tcp::ClientError::*;
///     match e {
///         Connect { .. } | Tls(_) | Timeout(_) | Io(_) | UnsupportedVersion { .. } => false,
///         HandshakeRefused(_) | RequestFailed(_) | Protocol { .. } | Closed { .. } => false,
///         Interrupted(_) | Call { .. } => false,
///         TlsConfig(_) | RequestTimeout(_) | InvalidConfig(_) | Encode(_) | Refused(_) => true,
///         NeedsV2(_) => true,
///     }
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nobody accepted the connection (no server, wrong port, firewall…).
    /// Caused by the network or the address.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address tried.
        addr: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The TLS handshake failed (an untrusted or expired certificate, a
    /// name that does not match, a server that does not speak TLS), or the
    /// server speaks TLS and we did not.
    #[error("TLS: {0}")]
    Tls(String),
    /// TLS settings could not be used (a bad file, an invalid name).
    #[error(transparent)]
    TlsConfig(#[from] crate::transport::TlsError),
    /// Connecting or the handshake took longer than the configured timeout.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// The request's own time limit passed before its response came
    /// (local; the connection is unharmed and a late answer is dropped).
    #[error("no response within {0:?}")]
    RequestTimeout(Duration),
    /// The configuration cannot work (local, before connecting).
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
    /// The message cannot be carried by v1 (too long). Local.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Our session refused to send: too large for the server, the server
    /// is going away, or the connection is closing. Local; nothing was
    /// sent.
    #[error("not sent: {0}")]
    Refused(SendError),
    /// The server does not speak our version.
    #[error("server does not speak our protocol version: {reason} (it speaks {versions:?})")]
    UnsupportedVersion {
        /// The versions the server listed.
        versions: Vec<u8>,
        /// The server's reason.
        reason: String,
    },
    /// The server refused the handshake.
    #[error("server refused the connection: {0}")]
    HandshakeRefused(CodeReason),
    /// The operation needs v2 (requests, binary). Local.
    #[error("{0} needs protocol v2")]
    NeedsV2(&'static str),
    /// The server answered the request with an error.
    #[error("request failed: {0}")]
    RequestFailed(String),
    /// The server broke the protocol; we closed with `code`.
    #[error("the server broke the protocol ({code}): {reason}")]
    Protocol {
        /// The close code we sent.
        code: CloseCode,
        /// What it did wrong.
        reason: String,
    },
    /// The connection is over: closed by us, by the server, or lost on the
    /// network (`by` says which).
    #[error("connection closed {by}: {reason}")]
    Closed {
        /// Who ended it.
        by: Cause,
        /// How.
        reason: String,
    },
    /// The connection was lost (or the server went away) while this
    /// request was in flight, and the client is reconnecting. The request
    /// was not resent, since the server may have acted on it: send it
    /// again if that is safe.
    #[error("request interrupted, not resent: {0}")]
    Interrupted(String),
    /// A call (spec 3.13) ended without its answer: the server failed or
    /// refused it, it was cancelled, or its deadline passed (`status`).
    #[error("call {status}: {reason}")]
    Call {
        /// How it ended.
        status: CallStatus,
        /// Why, in the server's words or ours.
        reason: String,
    },
    /// The connection failed while in use.
    #[error("connection failed")]
    Io(#[from] io::Error),
}

impl ClientError {
    /// Who caused it: us, the server, the network, or a protocol
    /// violation by the server.
    pub fn cause(&self) -> Cause {
        use ClientError::*;
        match self {
            Connect { .. } | Timeout(_) | Io(_) => Cause::Network,
            Tls(_) | UnsupportedVersion { .. } | HandshakeRefused(_) | RequestFailed(_) => {
                Cause::Server
            }
            Protocol { .. } => Cause::ProtocolViolation,
            // A cancelled call was cancelled by us; any other end the
            // server decided (a deadline it did not meet included).
            Call {
                status: CallStatus::Cancelled,
                ..
            } => Cause::Us,
            Call { .. } => Cause::Server,
            Closed { by, .. } => *by,
            // The request was cut off by whatever ended its connection; the
            // client is already reconnecting.
            Interrupted(_) => Cause::Network,
            TlsConfig(_) | RequestTimeout(_) | InvalidConfig(_) | Encode(_) | Refused(_)
            | NeedsV2(_) => Cause::Us,
        }
    }

    /// Whether the server caused it (by the rules or breaking them).
    pub fn is_remote(&self) -> bool {
        matches!(self.cause(), Cause::Server | Cause::ProtocolViolation)
    }

    /// Whether our side caused it (configuration, a local limit, our close).
    pub fn is_local(&self) -> bool {
        self.cause() == Cause::Us
    }

    /// Whether the network caused it (nothing answered, the connection
    /// broke or went silent).
    pub fn is_network(&self) -> bool {
        self.cause() == Cause::Network
    }

    /// The same error again, for a second caller (a call's end is read
    /// by each of its methods). Not `Clone`: an `io::Error` is not, so
    /// those are remade from their kind and words.
    pub(crate) fn duplicate(&self) -> Self {
        use ClientError::*;
        match self {
            Connect { addr, source } => Connect {
                addr: addr.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Io(e) => Io(io::Error::new(e.kind(), e.to_string())),
            Tls(s) => Tls(s.clone()),
            Timeout(d) => Timeout(*d),
            RequestTimeout(d) => RequestTimeout(*d),
            InvalidConfig(s) => InvalidConfig(s.clone()),
            Refused(e) => Refused(e.clone()),
            UnsupportedVersion { versions, reason } => UnsupportedVersion {
                versions: versions.clone(),
                reason: reason.clone(),
            },
            HandshakeRefused(c) => HandshakeRefused(c.clone()),
            NeedsV2(what) => NeedsV2(what),
            RequestFailed(s) => RequestFailed(s.clone()),
            Protocol { code, reason } => Protocol {
                code: *code,
                reason: reason.clone(),
            },
            Closed { by, reason } => Closed {
                by: *by,
                reason: reason.clone(),
            },
            Interrupted(s) => Interrupted(s.clone()),
            Call { status, reason } => Call {
                status: *status,
                reason: reason.clone(),
            },
            // Configuration errors, reported once before any call.
            TlsConfig(_) | Encode(_) => Closed {
                by: self.cause(),
                reason: self.to_string(),
            },
        }
    }

    pub(crate) fn closed(by: Cause, reason: impl Into<String>) -> Self {
        ClientError::Closed {
            by,
            reason: reason.into(),
        }
    }
}

// Not `#[from]`: that would also make the `SendError` the error's source,
// and a report of the whole chain (`{:#}`) would say the reason twice.
impl From<SendError> for ClientError {
    fn from(e: SendError) -> Self {
        ClientError::Refused(e)
    }
}
