//! Receiving what a v2 connection has buffered in batches: frames are
//! decoded straight from the read buffer and handed to the session under
//! the one lock it is shared behind, a batch of them per lock instead of
//! one lock per frame; the driver then hands their events to the
//! application. No frame is stored between decoding and receiving (only
//! the one that must wait for the next batch).
//!
//! A frame that may change the session's state (a handshake frame, a
//! CLOSE, a GOAWAY) always travels alone: the batch ends before it, and it
//! comes first in the next one. So every frame is received in exactly the
//! state it would have met one at a time, after the application has seen
//! everything that came before it (the close handshake's promise).

use std::time::Instant;
use tokio::io::AsyncRead;

use super::Connection;
use crate::protocol::v2::frame::FrameSink;
use crate::protocol::v2::{Frame, Session, SessionError, SessionEvent, V2Codec, V2CodecError};

/// Frames per batch at most: enough to amortise the lock, few enough that
/// one batch's events stay in cache and other senders wait little.
pub(crate) const MAX_BATCH: usize = 64;

/// Why a batch ended the connection.
#[derive(Debug)]
pub(crate) enum BatchError {
    /// A frame broke the protocol; the session has queued its CLOSE.
    Session(SessionError),
    /// Bytes that are no frame, or the stream failed.
    Codec(V2CodecError),
}

/// A driver's batching state: the frame held over for the next batch, and
/// what stopped the decoding, if it failed.
#[derive(Debug, Default)]
pub(crate) struct ReceiveBatch {
    held: Option<Frame>,
    failed: Option<V2CodecError>,
}

impl ReceiveBatch {
    /// Whether [`ReceiveBatch::receive`] has anything to do (checked
    /// before taking the lock it needs).
    pub(crate) fn pending<R: AsyncRead + Unpin>(&self, conn: &Connection<R, V2Codec>) -> bool {
        !self.is_drained() || conn.frame_ready()
    }

    /// Whether nothing decoded waits to be received.
    pub(crate) fn is_drained(&self) -> bool {
        self.held.is_none() && self.failed.is_none()
    }

    /// Decodes up to a batch of frames from what `conn` has buffered and
    /// receives them through `session` (call it with the session's lock
    /// held), pushing the events to `events` in order. Returns how many
    /// frames it took; 0 means everything buffered has been received. On
    /// an error, the events of the frames before it are in `events` all
    /// the same (the error comes with the next call): hand them to the
    /// application first.
    pub(crate) fn receive<R: AsyncRead + Unpin>(
        &mut self,
        conn: &mut Connection<R, V2Codec>,
        session: &mut Session,
        now: Instant,
        out: &mut impl FrameSink,
        events: &mut Vec<SessionEvent>,
    ) -> Result<usize, BatchError> {
        let mut taken = 0;
        while taken < MAX_BATCH {
            let frame = match self.held.take() {
                Some(frame) => frame,
                None if self.failed.is_some() => break,
                None => match conn.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        self.failed = Some(e);
                        break;
                    }
                },
            };
            let alone = Session::may_change_state(&frame);
            if alone && taken > 0 {
                // It comes first in the next batch.
                self.held = Some(frame);
                return Ok(taken);
            }
            taken += 1;
            if let Some(event) = session
                .receive(frame, now, out)
                .map_err(BatchError::Session)?
            {
                events.push(event);
            }
            if alone {
                return Ok(taken);
            }
        }
        if taken == 0
            && let Some(e) = self.failed.take()
        {
            return Err(BatchError::Codec(e));
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;
    use crate::protocol::v2::{CloseCode, CodeReason, SessionConfig, SessionState};
    use bytes::BytesMut;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_close_travels_alone_after_everything_before_it() {
        let now = Instant::now();
        let mut wire = BytesMut::new();
        // The client session writes the HELLO that opens the stream.
        Session::client(SessionConfig::default().name("c"), now, &mut wire);
        let mut server = Session::server(SessionConfig::default(), now);
        let text = |s: &str| Frame::Text(Message::new(s));
        let frames = [text("a"), text("b")];
        for f in &frames {
            f.encode(&mut wire);
        }
        Frame::Close(CodeReason::new(CloseCode::NORMAL, "bye")).encode(&mut wire);
        text("late").encode(&mut wire);
        let (mut tx, rx) = tokio::io::duplex(4096);
        tx.write_all(&wire).await.unwrap();
        drop(tx);
        let mut conn = Connection::new(rx, V2Codec::default());
        while conn.fill().await.unwrap() > 0 {}
        let mut batch = ReceiveBatch::default();
        let mut out = BytesMut::new();
        let mut sizes = Vec::new();
        let mut states = Vec::new();
        let end = loop {
            let mut events = Vec::new();
            match batch.receive(&mut conn, &mut server, now, &mut out, &mut events) {
                Ok(0) => break None,
                Ok(n) => sizes.push(n),
                Err(e) => break Some(e),
            }
            states.push(server.state());
        };
        // HELLO alone, the texts together, the CLOSE alone; then the frame
        // after the CLOSE breaks the protocol.
        assert_eq!(sizes, [1, 2, 1]);
        assert_eq!(
            states,
            [
                SessionState::Open,
                SessionState::Open,
                SessionState::PeerClosing
            ]
        );
        assert!(matches!(end, Some(BatchError::Session(_))), "{end:?}");
    }
}
