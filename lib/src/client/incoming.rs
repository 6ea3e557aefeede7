//! What the server sends without being asked, and the stream the
//! application reads it from.

use bytes::Bytes;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

use crate::protocol::Message;
use crate::protocol::v2::CodeReason;

/// Something the server sent without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pushed {
    /// A text message (in chat: `NAME: TEXT` from another client).
    Text(Message),
    /// Bytes.
    Binary(Bytes),
    /// A non-fatal error report.
    Error(CodeReason),
    /// The server is shutting down: finish up and close (a reconnecting
    /// client moves to a new connection by itself).
    GoAway(CodeReason),
    /// Not from the server: the connection was lost or the server went
    /// away (why), and the client is reconnecting
    /// ([`ClientConfig::reconnect`](super::ClientConfig::reconnect)).
    Disconnected(String),
    /// Not from the server: the client is connected again, to this server.
    Reconnected {
        /// The new server's name from its welcome.
        server_name: String,
    },
    /// Not from the server: the client is connected again and its session
    /// resumed (spec 3.14): nothing was lost either way.
    Resumed {
        /// Frames the server sent while we were away, or that were lost
        /// with the old connection: they follow this item, in order.
        replayed: u64,
        /// Our frames the server had not received, sent again.
        resent: u64,
    },
    /// Not from the server: the session could not be resumed and a new
    /// one began ([`Pushed::Reconnected`] follows). Requests in flight
    /// failed as interrupted; pushes sent while we were away are lost.
    ResumeRefused {
        /// The server's reason (or "the server does not resume sessions").
        reason: String,
        /// Frames we had sent that the server had not acknowledged: they
        /// may or may not have arrived.
        unacknowledged: u64,
    },
    /// Not from the server: an attempt to reconnect failed. With
    /// `gave_up`, it was the last one allowed
    /// ([`Reconnect::max_attempts`](super::Reconnect::max_attempts)): the client is done, and the
    /// stream ends after this.
    ReconnectFailed {
        /// Failed attempts in a row so far (1 for the first).
        attempt: u32,
        /// Why it failed.
        error: String,
        /// No more attempts will be made.
        gave_up: bool,
    },
    /// Not from the server: the application let this many pushes pile up
    /// unread ([`ClientConfig::incoming_capacity`](super::ClientConfig::incoming_capacity)),
    /// so the client ended the connection (CLOSE 1011, telling the server
    /// why) instead of dropping pushes silently or leaving calls hanging.
    /// Every waiting call fails with [`ClientError::Closed`](super::ClientError::Closed)
    /// caused by us. A reconnecting client then reconnects; pushes sent in
    /// between are lost, which this item says.
    Overflowed {
        /// The pushes waiting when it happened (the capacity).
        unread: usize,
    },
}

/// Server-pushed messages, in arrival order. Ends when the connection does
/// (for a reconnecting client: when the client is closed or gives up).
#[derive(Debug)]
pub struct Incoming {
    pub(super) rx: mpsc::Receiver<Pushed>,
}

impl Incoming {
    /// The next pushed message, or `None` once the connection is over.
    pub async fn recv(&mut self) -> Option<Pushed> {
        self.rx.recv().await
    }
}

impl Stream for Incoming {
    type Item = Pushed;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Pushed>> {
        self.rx.poll_recv(cx)
    }
}
