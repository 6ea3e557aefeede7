//! What a client's handles, reader task and writer task share: the write
//! queue (with the session under the same lock), the requests waiting for
//! answers, and how the connection ended.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, oneshot, watch};

use super::{ClientError, Pushed};
use crate::protocol::v2::{CodeReason, Session};
use crate::transport::WriteQueue;

/// How the connection ended, as the reader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// Our close (or v1 `exit`) was answered: everything was processed.
    Completed,
    /// The server closed the session, with its reason.
    ByServer(CodeReason),
    /// The connection broke.
    Lost(String),
}

impl End {
    pub(crate) fn to_error(&self) -> ClientError {
        match self {
            End::Completed => ClientError::Closed("closed by us".into()),
            End::ByServer(c) => ClientError::Closed(format!("by the server: {c}")),
            End::Lost(why) => ClientError::Closed(why.clone()),
        }
    }
}

/// Requests waiting for their response. Once the connection has ended no
/// new ones are accepted, so none can wait forever.
#[derive(Default)]
pub(crate) struct Pending {
    waiting: HashMap<u32, Answer>,
    ended: Option<End>,
}

/// Everything the reader and writer tasks share with the handles.
pub(crate) struct Core {
    /// The v2 session (`None` for v1) is kept under the queue's lock, so
    /// "may this be sent now" and queueing it are one atomic step.
    pub(crate) queue: WriteQueue<Option<Session>>,
    pending: Mutex<Pending>,
    end: watch::Sender<Option<End>>,
    incoming_taken: AtomicBool,
}

/// A request's way back to its caller.
pub(crate) type Answer = oneshot::Sender<Result<Bytes, ClientError>>;

impl Core {
    pub(crate) fn new(session: Option<Session>, max_queued_bytes: usize) -> Self {
        Core {
            queue: WriteQueue::new(session, max_queued_bytes),
            pending: Mutex::default(),
            end: watch::channel(None).0,
            incoming_taken: AtomicBool::new(false),
        }
    }

    /// Waits for the request `id`'s answer; refused once the connection
    /// has ended, so no caller can wait forever.
    pub(crate) fn register(&self, id: u32, answer: Answer) -> Result<(), ClientError> {
        let mut pending = self.lock_pending();
        if let Some(end) = &pending.ended {
            return Err(end.to_error());
        }
        pending.waiting.insert(id, answer);
        Ok(())
    }

    /// The request `id` was never sent after all.
    pub(crate) fn forget(&self, id: u32) {
        self.lock_pending().waiting.remove(&id);
    }

    /// Requests sent and not yet answered.
    pub(crate) fn pending_count(&self) -> usize {
        self.lock_pending().waiting.len()
    }

    /// How the connection ended, if it has.
    pub(crate) fn ended(&self) -> Option<End> {
        self.lock_pending().ended.clone()
    }

    /// Waits until the connection has ended and says how.
    pub(crate) async fn wait_end(&self) -> End {
        let mut end = self.end.subscribe();
        end.wait_for(Option::is_some)
            .await
            .map(|e| e.clone().expect("waited for Some"))
            .unwrap_or_else(|_| End::Lost("connection dropped".into()))
    }

    /// From now on pushes wait for the application to take them.
    pub(crate) fn mark_incoming_taken(&self) {
        self.incoming_taken.store(true, Ordering::Release);
    }

    /// Hands a pushed message to the application. Once it has taken the
    /// stream this waits (backpressure to the server); before that, pushes
    /// are kept up to the capacity and then dropped, so a client that only
    /// sends requests is never blocked by pushes it does not read. The
    /// reader owns the sender, so the stream ends when the connection does.
    pub(crate) async fn deliver(&self, to: &mpsc::Sender<Pushed>, pushed: Pushed) {
        if self.incoming_taken.load(Ordering::Acquire) {
            let _ = to.send(pushed).await;
        } else {
            let _ = to.try_send(pushed);
        }
    }

    /// Answers the request `id`.
    pub(crate) fn resolve(&self, id: u32, result: Result<Bytes, String>) -> bool {
        let waiter = self.lock_pending().waiting.remove(&id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(result.map_err(ClientError::RequestFailed));
                true
            }
            None => false,
        }
    }

    /// Records the end: fails every waiting request, stops the writer once
    /// it has sent what is queued, and wakes `close`.
    pub(crate) fn finish(&self, end: End) {
        let waiting = {
            let mut p = self.lock_pending();
            p.ended.get_or_insert(end.clone());
            std::mem::take(&mut p.waiting)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(end.to_error()));
        }
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

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}
