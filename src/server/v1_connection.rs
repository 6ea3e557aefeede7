//! Serving one v1 connection: hand each message to the handler until the
//! client says `exit`, closes, breaks the protocol, or the server stops.

use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::admission::Slot;
use super::connection_outcome::{ConnectionEnd, ConnectionError};
use super::service::Handler;
use crate::protocol::StallClock;
use crate::protocol::v1::{self, V1Codec};
use crate::transport::{Connection, Deadline};

/// Runs the v1 session on `conn` until it ends, and says how it ended.
///
/// Whatever happens, messages received before the end are handed to the
/// handler and flushed first, so a protocol error loses nothing that was
/// valid before it.
///
/// Only complete messages are progress: `stall` cuts a connection whose
/// first message, any message begun, or the next message after an idle
/// spell does not arrive in time. The first message ends the handshake:
/// `slot` is promoted then.
pub(crate) async fn serve_v1<S, H>(
    conn: &mut Connection<S, V1Codec>,
    handler: &mut H,
    stall: &mut StallClock,
    shutdown: &CancellationToken,
    (messages, bytes): (&metrics::Counter, &metrics::Counter),
    slot: &Slot,
) -> Result<ConnectionEnd, ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut now = Instant::now();
    let mut deadline = Deadline::new();
    let mut promoted = false;
    // Made once: registering with the token takes its tree's lock.
    let stopped = shutdown.cancelled();
    tokio::pin!(stopped);
    loop {
        // Drain every whole frame already received before waiting again.
        while let Some(message) = next(conn, handler).await? {
            stall.frame_received(now);
            messages.increment(1);
            if !promoted {
                slot.promote();
                promoted = true;
            }
            if v1::is_exit(&message) {
                handler.flush().await;
                return Ok(ConnectionEnd::ClientExit);
            }
            handler.on_text(message).await;
        }
        handler.flush().await;
        let left = conn.buffered();
        stall.pending(now, left.len(), v1::claimed_frame_len(left));
        deadline.arm(stall.poll_timeout());

        let read = tokio::select! {
            biased;
            _ = &mut stopped => return Ok(ConnectionEnd::ServerShutdown),
            _ = deadline.fired() => match stall.check(Instant::now()) {
                Some(stalled) => return Err(ConnectionError::Stalled(stalled)),
                None => continue,
            },
            read = conn.fill() => read,
        };
        now = Instant::now();
        let read = read.map_err(ConnectionError::Io)?;
        bytes.increment(read as u64);
        if read == 0 {
            // The peer is gone. The old tutorial kept polling a closed
            // socket here; we report truncation, or a plain hang-up.
            return match conn.finish() {
                Ok(_) => Ok(ConnectionEnd::PeerClosed),
                Err(e) => Err(e.into()),
            };
        }
    }
}

async fn next<S, H>(
    conn: &mut Connection<S, V1Codec>,
    handler: &mut H,
) -> Result<Option<crate::protocol::Message>, ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    match conn.next_buffered() {
        Ok(m) => Ok(m),
        Err(e) => {
            handler.flush().await;
            Err(e.into())
        }
    }
}
