//! The client's read side, a thin driver around the session: it reads, or
//! sleeps until the session's next deadline (heartbeats), and turns what
//! the server sends into responses for waiting requests, pushed messages,
//! and the end of the connection.

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
use crate::protocol::v2::{
    CloseCode, Expired, SessionEvent, SessionState, V2Codec, V2CodecError, claimed_frame_len,
};
use crate::transport::{BatchError, Connection, Deadline, ReceiveBatch, Stream};

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

/// Reads a v2 connection until it ends, then records how.
pub(crate) async fn read_v2(
    mut reader: Connection<ReadHalf<Stream>, V2Codec>,
    core: Arc<Core>,
    incoming: mpsc::Sender<Pushed>,
) {
    let end = drive(&mut reader, &core, &incoming).await;
    core.finish(end);
}

async fn drive(
    reader: &mut Connection<ReadHalf<Stream>, V2Codec>,
    core: &Core,
    incoming: &mpsc::Sender<Pushed>,
) -> End {
    let mut now = Instant::now();
    let mut deadline = Deadline::new();
    let mut batch = ReceiveBatch::default();
    let mut events = Vec::new();
    loop {
        // Everything buffered, in batches through the session, then their
        // events to the application.
        loop {
            let received = core.session(|s, out| batch.receive(s, reader, now, out, &mut events));
            for event in events.drain(..) {
                if let Some(end) = on_event(event, core, incoming).await {
                    return end;
                }
            }
            match received {
                Ok(0) => break,
                Ok(_) => {}
                Err(BatchError::Session(e)) => return End::violation(e.code, e.reason),
                Err(BatchError::Codec(e)) => return codec_failure(core, e),
            }
        }
        // What is left is part of a frame: it has a deadline of its own.
        let (left, claimed) = (
            reader.buffered().len(),
            claimed_frame_len(reader.buffered()),
        );
        deadline.arm(core.session(|s, _| {
            s.pending(now, left, claimed);
            s.poll_timeout()
        }));
        tokio::select! {
            read = reader.fill() => match read {
                Ok(0) => {
                    return match reader.finish() {
                        Err(e) => codec_failure(core, e),
                        Ok(_) if core.session(|s, _| s.state()) == SessionState::Closed => {
                            End::Completed
                        }
                        Ok(_) => End::Lost(
                            "the server closed the connection without a close handshake".into(),
                        ),
                    };
                }
                Ok(_) => {
                    // One clock reading per read, not per frame.
                    now = Instant::now();
                }
                Err(e) => return End::Lost(format!("reading from the server: {e}")),
            },
            _ = deadline.fired() => {
                match core.session(|s, out| s.handle_timeout(Instant::now(), out)) {
                    Some(Expired::Heartbeat(silent)) => {
                        return End::Lost(format!("heartbeat timeout: nothing heard for {silent:?}"));
                    }
                    Some(Expired::Stalled(stalled)) => {
                        return End::violation(CloseCode::POLICY_VIOLATION, stalled.to_string());
                    }
                    // A client session has neither a handshake deadline here
                    // (the handshake is over) nor a go-away drain.
                    Some(other @ (Expired::Handshake(_) | Expired::Drained)) => {
                        return End::Lost(format!("session expired: {other:?}"));
                    }
                    None => {}
                }
            }
        }
    }
}

/// Bytes that are no v2 frame: the session tells the server why.
fn codec_failure(core: &Core, e: V2CodecError) -> End {
    match e {
        V2CodecError::Frame(f) => {
            let e = core.session(|s, out| s.receive_invalid(&f, out));
            End::violation(e.code, e.reason)
        }
        other => End::Lost(format!("reading from the server: {other}")),
    }
}

/// Acts on one event of a received frame; `Some` when it ended the
/// connection.
async fn on_event(
    event: SessionEvent,
    core: &Core,
    incoming: &mpsc::Sender<Pushed>,
) -> Option<End> {
    match event {
        SessionEvent::Response(r) => {
            let id = r.id;
            let waited_for = core.requests.resolve(id, r.result);
            if !waited_for {
                // Most likely the answer to a request its caller gave up on.
                tracing::debug!(id, "response to no waiting request; dropped");
            }
        }
        SessionEvent::Text(m) => core.deliver(incoming, Pushed::Text(m)).await,
        SessionEvent::Binary(b) => core.deliver(incoming, Pushed::Binary(b)).await,
        SessionEvent::Error(e) => core.deliver(incoming, Pushed::Error(e)).await,
        SessionEvent::GoAway(g) => {
            core.note_going_away(g.clone());
            core.deliver(incoming, Pushed::GoAway(g)).await
        }
        SessionEvent::CloseRequested(reason) => {
            let _ = core.session(|s, out| s.ack_close(out));
            return Some(End::ByServer(reason));
        }
        SessionEvent::Closed(_) => return Some(End::Completed),
        _ => {}
    }
    None
}
