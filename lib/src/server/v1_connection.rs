//! Serving one v1 connection: hand each message to the handler until the
//! client says `exit`, closes, breaks the protocol, or the server stops.

use std::future::Future;
use std::task::Poll;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::admission::Slot;
use super::connection_outcome::{ConnectionEnd, ConnectionError};
use super::metrics::OpenGauge;
use super::pusher::Pusher;
use super::service::{Handler, PeerInfo, Service};
use super::shared::{PeerFacts, Shared};
use super::signals::SignalEpoch;
use crate::protocol::StallClock;
use crate::protocol::v1::{self, V1Codec};
use crate::transport::Stream;
use crate::transport::{Connection, Deadline};

/// Serves a v1 connection whose first byte said v1: a handler for it, its
/// stall clock, then [`serve_v1`] until it ends, and a best-effort close.
pub(super) async fn serve_v1_connection<Svc: Service>(
    mut conn: Box<Connection<Stream, V1Codec>>,
    peer: &PeerFacts<'_>,
    service: &Svc,
    shared: &Shared,
) -> Result<ConnectionEnd, ConnectionError> {
    let config = &shared.config;
    let mut handler = service.connect(&PeerInfo {
        addr: peer.addr,
        version: v1::VERSION,
        name: peer.addr.to_string(),
        pusher: Pusher::new(None),
        tls_client_certificate: peer.certificate.clone(),
        auth_token: None,
        app_protocol: None,
        transport: peer.transport,
        resumed_in_doubt: 0,
    });
    let mut stall = StallClock::new(
        config.v1_stall_limits(peer.handshake_timeout),
        peer.accepted,
    );
    let _open = OpenGauge::new(&shared.metrics.open[0]);
    let metrics = (
        &shared.metrics.received_messages[0],
        &shared.metrics.received_bytes[0],
    );
    let result = serve_v1(
        &mut conn,
        &mut handler,
        &mut stall,
        (&shared.stop, &shared.signals),
        metrics,
        peer.slot,
    )
    .await;
    // The handler's own clean-up, bounded (see `Handler::on_close`).
    let _ = tokio::time::timeout(config.shutdown_grace, handler.on_close()).await;
    // Best effort: the peer may already be gone.
    let _ = conn.shutdown().await;
    result
}

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
    (shutdown, signals): (&CancellationToken, &SignalEpoch),
    (messages, bytes): (&metrics::Counter, &metrics::Counter),
    slot: &Slot,
) -> Result<ConnectionEnd, ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let mut now = Instant::now();
    let mut deadline = Deadline::new();
    let mut promoted = false;
    // Made once: registering with the token takes its tree's lock.
    let mut stopped = Box::pin(shutdown.clone().cancelled_owned());
    // The stop future is polled only when the server's signals moved.
    let mut signals_seen = u64::MAX;
    loop {
        // Every whole message already received goes to the handler, in a
        // future that lives only while it works: an idle connection is its
        // buffers and this loop's few words, not a suspended handler call.
        if !conn.buffered().is_empty() {
            let delivered = Box::pin(deliver(conn, handler, stall, now, messages)).await?;
            if delivered.messages > 0 && !promoted {
                // The first message ends the handshake.
                slot.promote();
                promoted = true;
            }
            if delivered.exited {
                return Ok(ConnectionEnd::ClientExit);
            }
        }
        let left = conn.buffered();
        stall.pending(now, left.len(), v1::claimed_frame_len(left));
        deadline.arm(stall.poll_timeout());

        let wake = std::future::poll_fn(|cx| {
            if signals.moved(&mut signals_seen) && stopped.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Stop);
            }
            if deadline.poll_fired(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            conn.poll_fill(cx).map(Wake::Read)
        })
        .await;
        let read = match wake {
            Wake::Stop => return Ok(ConnectionEnd::ServerShutdown),
            Wake::Timer => match stall.check(Instant::now()) {
                Some(stalled) => return Err(ConnectionError::Stalled(stalled)),
                None => continue,
            },
            Wake::Read(read) => read,
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

/// What the loop waits for.
enum Wake {
    Stop,
    Timer,
    Read(std::io::Result<usize>),
}

/// What one [`deliver`] handed over.
struct Delivered {
    /// Messages, `exit` included.
    messages: usize,
    /// The client said `exit`: nothing after it counts.
    exited: bool,
}

/// Hands every whole message buffered to the handler, then flushes it.
/// Whatever happens, messages received before the end are handed over and
/// flushed first, so a protocol error loses nothing valid before it.
async fn deliver<S, H>(
    conn: &mut Connection<S, V1Codec>,
    handler: &mut H,
    stall: &mut StallClock,
    now: Instant,
    messages: &metrics::Counter,
) -> Result<Delivered, ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut delivered = 0;
    loop {
        let message = match conn.next_buffered() {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(e) => {
                handler.flush().await;
                return Err(e.into());
            }
        };
        stall.frame_received(now);
        messages.increment(1);
        delivered += 1;
        if v1::is_exit(&message) {
            handler.flush().await;
            return Ok(Delivered {
                messages: delivered,
                exited: true,
            });
        }
        handler.on_text(message).await;
    }
    if delivered > 0 {
        handler.flush().await;
    }
    Ok(Delivered {
        messages: delivered,
        exited: false,
    })
}
