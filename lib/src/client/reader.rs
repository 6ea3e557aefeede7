//! The client's end of a connection: it turns what the server sends into
//! responses for waiting requests, pushed messages, and the end of the
//! connection. A v2 connection runs on the driver it shares with the
//! server; a v1 one only waits for the server's end of the stream.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::io::ReadHalf;
use tokio::sync::mpsc;

use super::end::End;
use super::incoming::Pushed;
use super::shared::Core;
use crate::protocol::parse_unsupported_version_reply;
use crate::protocol::v1::V1Codec;
use crate::protocol::v2::{CloseCode, Expired, SessionEvent, SessionState, V2Codec};
use crate::transport::{Connection, Driver, DriverCounters, Endpoint, Exit, Stream, Work};

/// What a v1 client can say when the server did not read everything.
const V1_NOT_READ: &str = "the messages may not have been received (was it refused? \
     a server that is full, or that requires a token, closes v1 connections unread)";

/// v1 servers send nothing; we only wait for the end of the stream (or the
/// frozen reply of a server that does not speak v1). v1 has no
/// acknowledgement, but how the stream ends still tells: a server that
/// read everything closes in order after our `exit`; one that closes
/// before our `exit` was queued, or resets the connection, did not.
pub(crate) async fn read_v1(mut reader: Connection<ReadHalf<Stream>, V1Codec>, core: Arc<Core>) {
    let end = loop {
        match reader.fill().await {
            Ok(0) => {
                break match parse_unsupported_version_reply(reader.buffered()) {
                    Some((versions, reason)) => End::Lost(format!(
                        "server does not speak v1: {reason} (it speaks {versions:?})"
                    )),
                    None if core.v1_exit_queued.load(Ordering::Acquire) => End::Completed,
                    None => End::Lost(format!(
                        "the server closed the connection before we sent `exit`: {V1_NOT_READ}"
                    )),
                };
            }
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                break End::Lost(format!("the server reset the connection: {V1_NOT_READ}"));
            }
            Err(e) => break End::Lost(format!("read failed: {e}")),
        }
    };
    core.finish(end);
}

/// Drives a v2 connection until it ends (the connection driver shared
/// with the server, `transport/driver.rs`), then records how.
pub(crate) async fn drive_v2(
    conn: Connection<Stream, V2Codec>,
    core: Arc<Core>,
    incoming: mpsc::Sender<Pushed>,
) {
    let mut driver = Driver::new(conn, core.queue.clone(), None, DriverCounters::default());
    let mut end = ClientEnd {
        core: core.clone(),
        incoming,
    };
    let exit = driver.run(&mut end).await;
    let overflow = matches!(exit, Exit::Overflow { .. });
    let end = match exit {
        Exit::Ended(end) => end,
        Exit::PeerClosed if core.session(|s, _| s.state()) == SessionState::Closed => {
            End::Completed
        }
        Exit::PeerClosed => {
            End::Lost("the server closed the connection without a close handshake".into())
        }
        Exit::Violation(e) => End::violation(e.code, e.reason),
        Exit::Malformed(_, e) => End::violation(e.code, e.reason),
        Exit::Codec(e) => End::Lost(format!("reading from the server: {e}")),
        Exit::Expired(Expired::Heartbeat(silent)) => {
            End::Lost(format!("heartbeat timeout: nothing heard for {silent:?}"))
        }
        Exit::Expired(Expired::Stalled(stalled)) => {
            End::violation(CloseCode::POLICY_VIOLATION, stalled.to_string())
        }
        // A client session has neither a handshake deadline here (the
        // handshake is over) nor a go-away drain.
        Exit::Expired(other) => End::Lost(format!("session expired: {other:?}")),
        Exit::ReadFailed(e) => End::Lost(format!("reading from the server: {e}")),
        Exit::WriteFailed(e) => End::Lost(format!("write failed: {e}")),
        Exit::Overflow { queued } => End::Lost(format!("{queued} bytes could not be sent")),
    };
    // A resumable session outlives its connection: the reconnecting task
    // picks it up on the next one, and nothing waiting fails.
    if let End::Lost(why) = &end
        && !overflow
        && core.interrupts()
        && core.session(|s, _| s.is_resumable())
    {
        core.note_lost(why.clone());
        return;
    }
    // Callers learn the end at once, not after the last flush below: a
    // call made meanwhile must get this reason, not "closing".
    core.requests.end(&end, core.interrupts());
    core.calls.end(&end);
    // What is queued (our CLOSE's acknowledgement, a protocol error's
    // CLOSE) still goes out, briefly.
    driver.finish(std::time::Duration::from_secs(1)).await;
    core.finish(end);
}

/// The client's end of the connection: responses to waiting requests,
/// pushes to the application.
struct ClientEnd {
    core: Arc<Core>,
    incoming: mpsc::Sender<Pushed>,
}

impl Endpoint for ClientEnd {
    type End = End;

    fn deliver<'a>(
        &'a mut self,
        events: &'a mut Vec<SessionEvent>,
        _caught_up: bool,
        _now: Instant,
    ) -> Work<'a, End> {
        Box::pin(async move {
            // A stream's items come in runs: each run is handed to its
            // calls under one lock, not one each.
            let mut items = Vec::new();
            for event in events.drain(..) {
                if let SessionEvent::Item(item) = event {
                    items.push(item);
                    continue;
                }
                self.core.calls.items(&mut items);
                if let Some(end) = on_event(event, &self.core, &self.incoming) {
                    return Some(end);
                }
            }
            self.core.calls.items(&mut items);
            None
        })
    }
}

/// The application let its pushes pile up: rather than lose one silently
/// or stop reading the socket (which would leave every call waiting on a
/// connection the server has given up on), we end the connection and tell
/// the server why (CLOSE 1011: our side failed, not the server).
fn overflowed(core: &Core, delivered: Result<(), String>) -> Option<End> {
    let reason = delivered.err()?;
    let _ = core.session(|s, out| s.close(CloseCode::INTERNAL_ERROR, reason.as_str(), out));
    Some(End::Abandoned(reason))
}

/// Acts on one event of a received frame; `Some` when it ended the
/// connection.
fn on_event(event: SessionEvent, core: &Core, incoming: &mpsc::Sender<Pushed>) -> Option<End> {
    match event {
        SessionEvent::Response(r) => {
            let id = r.id;
            let waited_for = core.requests.resolve(id, r.result);
            if !waited_for {
                // Most likely the answer to a request its caller gave up on.
                tracing::debug!(id, "response to no waiting request; dropped");
            }
        }
        SessionEvent::Text(m) => return overflowed(core, core.deliver(incoming, Pushed::Text(m))),
        SessionEvent::Binary(b) => {
            return overflowed(core, core.deliver(incoming, Pushed::Binary(b)));
        }
        SessionEvent::Error(e) => {
            return overflowed(core, core.deliver(incoming, Pushed::Error(e)));
        }
        SessionEvent::GoAway(g) => {
            core.note_going_away(g.clone());
            return overflowed(core, core.deliver(incoming, Pushed::GoAway(g)));
        }
        SessionEvent::CloseRequested(reason) => {
            let _ = core.session(|s, out| s.ack_close(out));
            return Some(End::ByServer(reason));
        }
        SessionEvent::Closed(_) => return Some(End::Completed),
        SessionEvent::Item(item) => core.calls.items(&mut vec![item]),
        SessionEvent::Credit { id, .. } => core.calls.credit(id),
        SessionEvent::Status(status) => core.calls.status(status),
        _ => {}
    }
    None
}
