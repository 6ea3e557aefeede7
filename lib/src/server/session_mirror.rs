//! The task that keeps one resumable session's record in the deployment's
//! [`SessionStore`], so another server can resume it if this one dies
//! (spec 3.14.1).
//!
//! Two rules make a resume elsewhere lose and repeat nothing, and this
//! task keeps both for its session:
//! - **nothing leaves before it is stored**: the connection's queue holds
//!   every byte back (`WriteQueue::hold`); a round stages what is queued
//!   together with the image that contains it, writes the record, and only
//!   then lets the writer send those bytes. So every frame the client may
//!   have received is in the store.
//! - **nothing is handed to the handler before it is counted in the
//!   store**: the connection waits for a round that began after a batch
//!   was received ([`Mirror::sync`]) before it hands the batch over. So a
//!   frame a handler may have seen is never resent by the client to
//!   another server.
//!
//! Rounds are group commits: whatever was queued while one was being
//! written goes in the next, so a busy session writes about once per
//! store round trip, whatever its frame rate. An idle one writes every
//! third of its expiry, so its record outlives no server and no client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::kept_sessions::Identity;
use super::session_store::{SessionStore, StoreFailure, record};
use super::signals::SignalEpoch;
use crate::protocol::v2::{ResumeToken, Session, SessionId};
use crate::transport::WriteQueue;

/// How long a round keeps trying a store that does not answer before the
/// session gives up on it (its connection ends; the client resumes from
/// the last record written, here or elsewhere, once the store is back).
const STORE_PATIENCE: Duration = Duration::from_secs(5);

/// A durable session's link to its mirroring task.
#[derive(Debug)]
pub(crate) struct Mirror {
    id: SessionId,
    store: SessionStore,
    /// Rounds begun.
    begun: Arc<AtomicU64>,
    /// Rounds written (the task drops it when it stops).
    written: watch::Receiver<u64>,
    /// Why the task stopped, if it failed.
    failure: Arc<Mutex<Option<StoreFailure>>>,
    /// Cancelled when it failed.
    failed: CancellationToken,
    /// Stops the task: the session is over.
    done: CancellationToken,
    /// The revision the task wrote last.
    revision: Arc<AtomicU64>,
    /// Wakes the task (the queue's own signal for bytes queued).
    nudge: Arc<tokio::sync::Notify>,
}

/// What a round needs to write a record.
struct Owner {
    token: ResumeToken,
    identity: Identity,
}

impl Mirror {
    /// Starts mirroring the session behind `queue` (made durable and held
    /// back here). `revision`: the record's, when this server just claimed
    /// it; `None` for a new session, whose record is created. When the
    /// record is lost (another server resumed the session) or the store
    /// stays away, `stop` is cancelled (after `signals` moved) and the
    /// connection ends.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        store: &SessionStore,
        queue: &Arc<WriteQueue<Session>>,
        id: SessionId,
        token: ResumeToken,
        identity: Identity,
        revision: Option<u64>,
        stop: CancellationToken,
        signals: Arc<SignalEpoch>,
    ) -> Mirror {
        queue.update(|s, _| s.make_durable());
        let queued = queue.hold();
        let (written_tx, written) = watch::channel(0);
        let mirror = Mirror {
            id,
            store: store.clone(),
            begun: Arc::default(),
            written,
            failure: Arc::default(),
            failed: CancellationToken::new(),
            done: CancellationToken::new(),
            revision: Arc::new(AtomicU64::new(revision.unwrap_or(0))),
            nudge: queued.clone(),
        };
        let task = Round {
            store: store.clone(),
            queue: queue.clone(),
            id,
            owner: Owner { token, identity },
            revision,
            begun: mirror.begun.clone(),
            written: written_tx,
            last_revision: mirror.revision.clone(),
        };
        let (failure, done, failed) = (
            mirror.failure.clone(),
            mirror.done.clone(),
            mirror.failed.clone(),
        );
        tokio::spawn(async move {
            let ended = task.run(queued, done.clone()).await;
            if let Err(why) = ended {
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                failed.cancel();
                signals.bump();
                stop.cancel();
            }
        });
        mirror
    }

    /// Waits until everything received so far is counted in the store (a
    /// round that began after this call is written). `Err` when the
    /// mirror failed: the connection must end without handing it over.
    /// A mirror that stopped without failing (the session can no longer
    /// be resumed: its replay overflowed) keeps nobody waiting.
    pub(crate) async fn sync(&self) -> Result<(), StoreFailure> {
        let want = self.begun.load(Ordering::SeqCst) + 1;
        let mut written = self.written.clone();
        // Wake the task: there may be nothing queued to do it.
        self.nudge.notify_one();
        match written.wait_for(|w| *w >= want).await {
            Ok(_) => Ok(()),
            Err(_) => self.failure().map_or(Ok(()), Err),
        }
    }

    /// Why the mirror stopped, if it failed.
    pub(crate) fn failure(&self) -> Option<StoreFailure> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves when the mirror failed (a parked session then stops
    /// waiting: another server has it, or the store is gone).
    pub(crate) fn failed(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.failed.clone().cancelled_owned()
    }

    /// Tells the task the session changed without bytes queued (its
    /// handler was given what it received).
    pub(crate) fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Whether the record is still this server's (no other server has
    /// resumed the session since it was written last).
    pub(crate) async fn still_ours(&self) -> bool {
        if self.failure().is_some() {
            return false;
        }
        match self.store.load(self.id).await {
            Ok(Some(stored)) => stored.revision == self.revision.load(Ordering::SeqCst),
            _ => false,
        }
    }

    /// The session is over: the task stops and, unless another server
    /// owns the record now, deletes it.
    pub(crate) fn finish(&self) {
        self.done.cancel();
    }
}

/// The mirroring task's state.
struct Round {
    store: SessionStore,
    queue: Arc<WriteQueue<Session>>,
    id: SessionId,
    owner: Owner,
    /// The record's revision; `None` until it is created.
    revision: Option<u64>,
    begun: Arc<AtomicU64>,
    written: watch::Sender<u64>,
    last_revision: Arc<AtomicU64>,
}

impl Round {
    async fn run(
        mut self,
        queued: Arc<tokio::sync::Notify>,
        done: CancellationToken,
    ) -> Result<(), StoreFailure> {
        let refresh = self.store.refresh_every();
        let mut confirmed = 0;
        loop {
            tokio::select! {
                biased;
                _ = done.cancelled() => break,
                _ = queued.notified() => {}
                _ = tokio::time::sleep(refresh) => {}
            }
            let round = self.begun.fetch_add(1, Ordering::SeqCst) + 1;
            let Some(image) = self.queue.stage(|s| s.image()) else {
                // Not resumable any more (its replay overflowed, or it is
                // closing): nothing to keep; what is queued goes out as
                // for any session.
                break;
            };
            let record = record(&self.owner.token, &self.owner.identity, &image);
            let revision = self.write(record).await?;
            self.revision = Some(revision);
            self.last_revision.store(revision, Ordering::SeqCst);
            self.queue.release();
            self.written.send_replace(round);
            // Handled and stored: the client may let those frames go (the
            // ACK is itself stored with the next round, then sent).
            if image.handled > confirmed {
                confirmed = image.handled;
                self.queue.update(|s, out| s.confirm(confirmed, out));
            }
        }
        self.queue.ungate();
        if let Some(revision) = self.revision {
            self.store.delete(self.id, revision).await;
        }
        Ok(())
    }

    /// Writes one record, trying again while the store does not answer,
    /// for up to [`STORE_PATIENCE`].
    async fn write(&self, record: bytes::Bytes) -> Result<u64, StoreFailure> {
        let give_up = tokio::time::Instant::now() + STORE_PATIENCE;
        let mut pause = Duration::from_millis(10);
        loop {
            let tried = match self.revision {
                None => self.store.create(self.id, record.clone()).await,
                Some(revision) => self.store.save(self.id, record.clone(), revision).await,
            };
            match tried {
                Ok(revision) => return Ok(revision),
                Err(StoreFailure::Lost) => return Err(StoreFailure::Lost),
                Err(failure) if tokio::time::Instant::now() + pause >= give_up => {
                    return Err(failure);
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }
}
