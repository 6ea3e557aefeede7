//! What a client's handles, reader task and writer task share: the write
//! queue (with the session under the same lock), the requests waiting for
//! answers, and how the connection ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, watch};

use super::end::End;
use super::incoming::Pushed;
use super::requests::Requests;
use crate::protocol::v2::{CodeReason, Session};
use crate::transport::{Outgoing, WriteQueue};

/// Waits until `cell` holds a value, and returns it. The sender lives as
/// long as the core that owns it, so a closed channel waits forever.
async fn first_set<T: Clone>(cell: &watch::Sender<Option<T>>) -> T {
    let mut rx = cell.subscribe();
    let value = rx
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|value| value.clone());
    match value {
        Some(value) => value,
        None => std::future::pending().await,
    }
}

/// Everything the reader and writer tasks share with the handles.
pub(crate) struct Core {
    /// The v2 session (`None` for v1) is kept under the queue's lock, so
    /// "may this be sent now", encoding it and queueing it are one step.
    pub(crate) queue: Arc<WriteQueue<Option<Session>>>,
    pub(crate) requests: Requests,
    /// Calls in flight (spec 3.13): where the server's frames for each go.
    pub(crate) calls: super::calls::Routes,
    end: watch::Sender<Option<End>>,
    /// Set when the server says GOAWAY (a reconnecting client moves on).
    going_away: watch::Sender<Option<CodeReason>>,
    /// Set (with why) while a resumable session has no connection: the
    /// reconnecting task resumes it on a new one.
    lost: watch::Sender<Option<String>>,
    /// Whether the application reads pushes: shared by every connection
    /// of one client, since a reconnecting client has several in turn.
    incoming_taken: Arc<AtomicBool>,
    /// Requests cut off by the end fail as interrupted (a reconnecting
    /// client) rather than closed.
    interrupts: bool,
    /// v1: our `exit` is queued. A server that closes before that has not
    /// read everything we sent (v1 has no other way to say it refused).
    pub(crate) v1_exit_queued: AtomicBool,
}

impl Core {
    pub(crate) fn new(
        session: Option<Session>,
        max_queued_bytes: usize,
        incoming_taken: Arc<AtomicBool>,
        interrupts: bool,
    ) -> Self {
        Core {
            queue: Arc::new(WriteQueue::new(session, max_queued_bytes)),
            requests: Requests::default(),
            calls: Default::default(),
            end: watch::channel(None).0,
            going_away: watch::channel(None).0,
            lost: watch::channel(None).0,
            incoming_taken,
            interrupts,
            v1_exit_queued: AtomicBool::new(false),
        }
    }

    /// The server said GOAWAY.
    pub(crate) fn note_going_away(&self, reason: CodeReason) {
        self.going_away.send_replace(Some(reason));
    }

    /// The connection was lost and the session kept for a resume: what is
    /// sent from now on waits in its replay buffer.
    pub(crate) fn note_lost(&self, why: String) {
        self.queue.detach();
        self.session(|s, _| s.detach());
        self.lost.send_replace(Some(why));
    }

    /// The session resumed on a new connection.
    pub(crate) fn note_resumed(&self) {
        self.lost.send_replace(None);
    }

    /// Whether the session waits for a new connection.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.borrow().is_some()
    }

    /// Waits until the connection is lost with the session kept, and says
    /// why.
    pub(crate) async fn wait_lost(&self) -> String {
        first_set(&self.lost).await
    }

    /// Whether the server has said GOAWAY, or the connection has ended:
    /// either way, new work belongs on a new connection.
    pub(crate) fn is_spent(&self) -> bool {
        self.going_away.borrow().is_some() || self.requests.ended().is_some()
    }

    /// Waits until the server says GOAWAY, with its reason.
    pub(crate) async fn wait_going_away(&self) -> CodeReason {
        first_set(&self.going_away).await
    }

    /// Runs `f` on the v2 session with the queue's buffer, whatever is
    /// queued: the reader's receive path and clock, whose answers (pong,
    /// ping, close) must go out even while data is backed up.
    pub(crate) fn session<R>(&self, f: impl FnOnce(&mut Session, &mut Outgoing) -> R) -> R {
        self.queue
            .update(|st, out| f(st.as_mut().expect("v2 has a session"), out))
            .0
    }

    /// Waits until the connection has ended and says how.
    pub(crate) async fn wait_end(&self) -> End {
        let mut end = self.end.subscribe();
        end.wait_for(Option::is_some)
            .await
            .map(|e| e.clone().expect("waited for Some"))
            .unwrap_or_else(|_| End::Lost("connection dropped".into()))
    }

    /// Hands a pushed message to the application, never waiting: the
    /// connection's driver must keep reading, answering PINGs and noticing
    /// the server's end whatever the application does with its pushes.
    ///
    /// Before the application has taken the stream, pushes are kept up to
    /// the capacity and the rest dropped, so a client that only sends
    /// requests is never hurt by pushes it never asked to read. Once it has
    /// taken the stream, nothing is dropped silently: when the application
    /// has let [`ClientConfig::incoming_capacity`](super::ClientConfig::incoming_capacity)
    /// pushes pile up, the stream's last slot (kept for this) gets
    /// [`Pushed::Overflowed`] and this returns the reason to end the
    /// connection with.
    pub(crate) fn deliver(&self, to: &mpsc::Sender<Pushed>, pushed: Pushed) -> Result<(), String> {
        if !self.incoming_taken.load(Ordering::Acquire) {
            let _ = to.try_send(pushed);
            return Ok(());
        }
        if to.capacity() > 1 {
            let _ = to.try_send(pushed);
            return Ok(());
        }
        let unread = to.max_capacity() - 1;
        let _ = to.try_send(Pushed::Overflowed { unread });
        Err(format!(
            "the application is not reading its pushes ({unread} unread)"
        ))
    }

    /// Whether calls cut off by the end fail as interrupted.
    pub(crate) fn interrupts(&self) -> bool {
        self.interrupts
    }

    /// Records the end: fails every waiting request, stops the writer once
    /// it has sent what is queued, and wakes `close`.
    pub(crate) fn finish(&self, end: End) {
        self.requests.end(&end, self.interrupts);
        self.calls.end(&end);
        self.queue.close();
        self.end.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(end);
                true
            } else {
                false
            }
        });
    }
}
