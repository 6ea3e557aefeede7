//! Turning a connection away at once, with a reason it can read: a v2 peer
//! gets a CLOSE instead of a WELCOME (1016 server full, 1008 for too many
//! from its address); a v1 peer, which reads nothing, is closed. Refusals
//! are bounded too, so a flood of them costs little.

use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::warn;

use super::admission::Refusal;
use super::log_gate::{admit_global, suppressed_field};
use crate::protocol::v2::{self, CloseCode, Session, SessionConfig};

/// How long a refused peer gets to show its version byte.
const FIRST_BYTE_WAIT: Duration = Duration::from_secs(1);

/// Reads the peer's first byte (briefly), answers in its version, closes.
pub(crate) async fn refuse(mut stream: TcpStream, peer: SocketAddr, why: Refusal) {
    if let Some(suppressed) = admit_global() {
        warn!(%peer, suppressed = suppressed_field(suppressed), "connection refused: {why}");
    }
    let mut first = [0u8; 1];
    let version = match tokio::time::timeout(FIRST_BYTE_WAIT, stream.read(&mut first)).await {
        Ok(Ok(1)) => Some(first[0]),
        _ => None,
    };
    if version == Some(v2::VERSION) {
        let code = match why {
            Refusal::ServerFull { .. } => CloseCode::SERVER_FULL,
            Refusal::TooManyFromAddress { .. } | Refusal::TooFast { .. } => {
                CloseCode::POLICY_VIOLATION
            }
        };
        // The session writes the CLOSE, as it writes every v2 frame.
        let mut out = BytesMut::new();
        let mut session = Session::server(SessionConfig::default(), Instant::now());
        let _ = session.close(code, why.to_string(), &mut out);
        let _ = tokio::time::timeout(FIRST_BYTE_WAIT, stream.write_all(&out)).await;
    } else {
        // v1 reads nothing, so it can only learn of a refusal from how the
        // connection ends: a reset, never the orderly close that follows
        // its `exit` when everything was read.
        let _ = stream.set_zero_linger();
        return;
    }
    let _ = stream.shutdown().await;
    // Closing with its HELLO unread would reset the connection and could
    // destroy our CLOSE before the peer reads it: read what it sends until
    // it closes too, briefly.
    let mut sink = [0u8; 1024];
    let until = tokio::time::Instant::now() + FIRST_BYTE_WAIT;
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, stream.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}
