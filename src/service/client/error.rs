use std::io;
use std::time::Duration;

use crate::protocol::v1::EncodeError;
use crate::protocol::v2::{CodeReason, V2CodecError};

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody accepted the connection (no server, wrong port, firewall…).
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address tried.
        addr: String,
        /// What the OS said.
        source: io::Error,
    },
    /// Connecting or the handshake took longer than the configured timeout.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// The message cannot be carried by v1 (too long).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The frame is larger than the server accepts (v2).
    #[error("message of {len} bytes exceeds the server's limit of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The server's announced limit.
        max: u32,
    },
    /// The server does not speak our version.
    #[error("server does not speak our protocol version: {reason} (it speaks {versions:?})")]
    UnsupportedVersion {
        /// The versions the server listed.
        versions: Vec<u8>,
        /// The server's reason.
        reason: String,
    },
    /// The v2 name must be 1 to 64 bytes (it labels us on the server).
    #[error("client name {0:?} must be 1 to 64 bytes")]
    InvalidName(String),
    /// The server refused the handshake.
    #[error("server refused the connection: {0}")]
    Refused(CodeReason),
    /// The operation needs v2 (requests, binary).
    #[error("{0} needs protocol v2")]
    NeedsV2(&'static str),
    /// The server answered the request with an error.
    #[error("request failed: {0}")]
    RequestFailed(String),
    /// The server is shutting down and takes no new requests.
    #[error("the server is going away; no new requests")]
    GoingAway,
    /// The connection is over.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection failed while in use.
    #[error("connection failed")]
    Io(#[from] io::Error),
}

/// A v2 framing failure as the client reports it.
pub(crate) fn codec_error(e: V2CodecError) -> ClientError {
    match e {
        V2CodecError::Io(e) => ClientError::Io(e),
        V2CodecError::TooLargeToSend { len, max } => ClientError::TooLarge { len, max },
        V2CodecError::Frame(e) => ClientError::Protocol(e.to_string()),
    }
}
