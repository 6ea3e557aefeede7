//! The resumable sessions one server keeps (spec 3.14): each connected or
//! waiting for its client after a loss, with the secret that proves a new
//! connection is that client.
//!
//! A session is served by one connection task at a time. When its
//! connection is lost, that task *parks*: it keeps the handler, the calls
//! and the session (whose replay buffer fills with what is sent meanwhile)
//! and waits, until the session's expiry, for a new connection to claim
//! them. A claim while the old connection still looks alive (the server
//! has not noticed the cut yet, as after a NAT rebinding) takes it over:
//! the old connection is told to stop, parks, and hands over at once.

use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::signals::SignalEpoch;
use crate::protocol::v2::{RESUME_ID_LEN, ResumeRefusal, ResumeTicket, ResumeToken, SessionId};

/// What a parked connection hands to the connection that resumes its
/// session (the server's own type, behind `Any`: this table serves every
/// service).
pub(crate) type Handover = Box<dyn Any + Send>;

/// How a claimant asks a parked connection for its session.
type HandoverRequest = oneshot::Sender<Handover>;

/// How long a claim waits for a connection still serving the session to
/// stop and park, and for a parked one to hand over.
const TAKEOVER_WAIT: Duration = Duration::from_secs(3);

/// Who a session belongs to, beyond its token: what the client proved
/// when it opened it. A resume must prove the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) auth_token: Option<Bytes>,
    pub(crate) certificate: Option<CertificateDer<'static>>,
}

#[derive(Debug)]
enum Where {
    /// A connection serves it; cancelling this stops that connection
    /// (which then parks).
    Attached(CancellationToken),
    /// Waiting for its client, until `expires`.
    Parked {
        handover: oneshot::Sender<HandoverRequest>,
        expires: Instant,
    },
}

#[derive(Debug)]
struct Entry {
    token: ResumeToken,
    identity: Identity,
    at: Where,
    /// Told each time the session parks.
    parked: Arc<Notify>,
}

/// The sessions one server keeps. See the module docs.
#[derive(Debug)]
pub(crate) struct KeptSessions {
    entries: Mutex<HashMap<SessionId, Entry>>,
    max: usize,
    /// How many there are (a metric).
    kept: metrics::Gauge,
}

/// A parked session, waiting for a claim or its expiry.
pub(crate) struct Parked {
    pub(crate) claimed: oneshot::Receiver<HandoverRequest>,
    pub(crate) expires: Instant,
}

impl KeptSessions {
    /// A table of at most `max` sessions.
    pub(crate) fn new(max: usize) -> Self {
        KeptSessions {
            entries: Mutex::default(),
            max,
            kept: super::metrics::ServerMetrics::sessions_kept(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Registers a new session served by the calling connection: its id,
    /// its secret, and the token that stops the connection when another
    /// claims the session. `None` when the table is full.
    pub(crate) fn open(
        &self,
        identity: Identity,
    ) -> Option<(SessionId, ResumeToken, CancellationToken)> {
        let mut entries = self.lock();
        if entries.len() >= self.max {
            return None;
        }
        let (id, token) = loop {
            let (id, token) = (SessionId(random()), ResumeToken(random()));
            if !entries.contains_key(&id) {
                break (id, token);
            }
        };
        let stop = CancellationToken::new();
        entries.insert(
            id,
            Entry {
                token: token.clone(),
                identity,
                at: Where::Attached(stop.clone()),
                parked: Arc::default(),
            },
        );
        self.kept.set(entries.len() as f64);
        Some((id, token, stop))
    }

    /// Registers a session resumed here from the deployment's store, under
    /// its own id; `None` when the table is full or already has it.
    #[cfg(feature = "nats")]
    pub(crate) fn adopt(
        &self,
        id: SessionId,
        token: ResumeToken,
        identity: Identity,
    ) -> Option<CancellationToken> {
        let mut entries = self.lock();
        if entries.len() >= self.max || entries.contains_key(&id) {
            return None;
        }
        let stop = CancellationToken::new();
        entries.insert(
            id,
            Entry {
                token,
                identity,
                at: Where::Attached(stop.clone()),
                parked: Arc::default(),
            },
        );
        self.kept.set(entries.len() as f64);
        Some(stop)
    }

    /// The serving connection was lost: the session waits for its client
    /// until `expires`. `None` if it is no longer kept.
    pub(crate) fn park(&self, id: SessionId, expires: Instant) -> Option<Parked> {
        let mut entries = self.lock();
        let entry = entries.get_mut(&id)?;
        let (handover, claimed) = oneshot::channel();
        entry.at = Where::Parked { handover, expires };
        entry.parked.notify_one();
        Some(Parked { claimed, expires })
    }

    /// The session is over (closed, expired, or its connection ended for
    /// good): nobody can resume it.
    pub(crate) fn forget(&self, id: SessionId) {
        let mut entries = self.lock();
        entries.remove(&id);
        self.kept.set(entries.len() as f64);
    }

    /// A new connection presents `ticket`: the session's handover and the
    /// token that will stop this connection when the next claim comes, or
    /// why not. A session still served elsewhere is taken over.
    pub(crate) async fn claim(
        &self,
        ticket: &ResumeTicket,
        identity: &Identity,
        signals: &SignalEpoch,
    ) -> Result<(Handover, CancellationToken), ResumeRefusal> {
        // A connection still serving it is stopped and parks; a wake-up may
        // be stale (a permit left by an earlier park), so the table is
        // looked at again each time, until the session is handed over or
        // the wait is over.
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        loop {
            match self.step(ticket, identity, signals)? {
                Step::Handover(handover, stop) => {
                    let (give, take) = oneshot::channel();
                    handover.send(give).map_err(|_| ResumeRefusal::Unknown)?;
                    return match tokio::time::timeout(TAKEOVER_WAIT, take).await {
                        Ok(Ok(state)) => Ok((state, stop)),
                        _ => {
                            self.forget(ticket.id);
                            Err(ResumeRefusal::Unknown)
                        }
                    };
                }
                Step::Wait(parked) => {
                    if tokio::time::timeout_at(deadline, parked.notified())
                        .await
                        .is_err()
                    {
                        return Err(ResumeRefusal::Unavailable);
                    }
                }
            }
        }
    }
}

/// What a claim does next.
enum Step {
    /// Ask the parked connection for the session.
    Handover(oneshot::Sender<HandoverRequest>, CancellationToken),
    /// Wait for the serving connection to park.
    Wait(Arc<Notify>),
}

impl KeptSessions {
    /// One look at the table for a claim, under its lock.
    fn step(
        &self,
        ticket: &ResumeTicket,
        identity: &Identity,
        signals: &SignalEpoch,
    ) -> Result<Step, ResumeRefusal> {
        let mut entries = self.lock();
        let entry = entries.get_mut(&ticket.id).ok_or(ResumeRefusal::Unknown)?;
        if !entry.token.matches(&ticket.token) || entry.identity != *identity {
            return Err(ResumeRefusal::WrongToken);
        }
        match &entry.at {
            Where::Parked { expires, .. } if *expires <= Instant::now() => {
                entries.remove(&ticket.id);
                self.kept.set(entries.len() as f64);
                Err(ResumeRefusal::Expired)
            }
            Where::Parked { .. } => {
                let stop = CancellationToken::new();
                match std::mem::replace(&mut entry.at, Where::Attached(stop.clone())) {
                    Where::Parked { handover, .. } => Ok(Step::Handover(handover, stop)),
                    Where::Attached(_) => unreachable!("matched Parked"),
                }
            }
            Where::Attached(serving) => {
                signals.bump();
                serving.cancel();
                Ok(Step::Wait(entry.parked.clone()))
            }
        }
    }
}

/// A session id or token: 128 bits from the operating system's secure
/// generator (through rustls' crypto provider, already linked).
fn random() -> [u8; RESUME_ID_LEN] {
    let mut bytes = [0; RESUME_ID_LEN];
    tokio_rustls::rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .expect("the system's secure random generator failed");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nobody() -> Identity {
        Identity {
            auth_token: None,
            certificate: None,
        }
    }

    /// A connection serving session `id`: when `stop` fires it parks and
    /// hands over `state` to the claim.
    fn serve_until_taken_over<T: Send + 'static>(
        kept: &Arc<KeptSessions>,
        id: SessionId,
        stop: CancellationToken,
        state: T,
    ) -> tokio::task::JoinHandle<()> {
        let kept = kept.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            let parked = kept
                .park(id, Instant::now() + Duration::from_secs(60))
                .unwrap();
            let give = parked.claimed.await.unwrap();
            assert!(give.send(Box::new(state)).is_ok(), "the claim waits");
        })
    }

    #[tokio::test]
    async fn a_parked_session_is_claimed_once_with_its_token_only() {
        let kept = KeptSessions::new(10);
        let signals = SignalEpoch::default();
        let (id, token, _stop) = kept.open(nobody()).unwrap();
        let parked = kept
            .park(id, Instant::now() + Duration::from_secs(60))
            .unwrap();
        let wrong = ResumeTicket::new(id, ResumeToken([0; RESUME_ID_LEN]), 0);
        assert_eq!(
            kept.claim(&wrong, &nobody(), &signals).await.unwrap_err(),
            ResumeRefusal::WrongToken
        );
        let other = Identity {
            auth_token: Some(Bytes::from_static(b"mallory")),
            certificate: None,
        };
        let right = ResumeTicket::new(id, token, 0);
        assert_eq!(
            kept.claim(&right, &other, &signals).await.unwrap_err(),
            ResumeRefusal::WrongToken
        );
        let parked_task = tokio::spawn(async move {
            let give = parked.claimed.await.unwrap();
            give.send(Box::new(7u32)).unwrap();
        });
        let (state, _) = kept.claim(&right, &nobody(), &signals).await.unwrap();
        assert_eq!(*state.downcast::<u32>().unwrap(), 7);
        parked_task.await.unwrap();
        let unknown = ResumeTicket::new(SessionId([1; RESUME_ID_LEN]), right.token.clone(), 0);
        assert_eq!(
            kept.claim(&unknown, &nobody(), &signals).await.unwrap_err(),
            ResumeRefusal::Unknown
        );
    }

    #[tokio::test]
    async fn a_served_session_is_taken_over_and_an_expired_one_refused() {
        let kept = Arc::new(KeptSessions::new(10));
        let signals = SignalEpoch::default();
        let (id, token, stop) = kept.open(nobody()).unwrap();
        let serving = serve_until_taken_over(&kept, id, stop, "handed");
        let ticket = ResumeTicket::new(id, token, 0);
        let (state, _) = kept.claim(&ticket, &nobody(), &signals).await.unwrap();
        assert_eq!(*state.downcast::<&str>().unwrap(), "handed");
        serving.await.unwrap();
        let _parked = kept.park(id, Instant::now()).unwrap();
        assert_eq!(
            kept.claim(&ticket, &nobody(), &signals).await.unwrap_err(),
            ResumeRefusal::Expired
        );
        assert_eq!(kept.len(), 0);
    }

    #[tokio::test]
    async fn a_takeover_is_not_fooled_by_an_earlier_park() {
        let kept = Arc::new(KeptSessions::new(10));
        let signals = SignalEpoch::default();
        let (id, token, _) = kept.open(nobody()).unwrap();
        let ticket = ResumeTicket::new(id, token, 0);
        // A first loss and resume: the park's wake-up is left unused.
        let parked = kept
            .park(id, Instant::now() + Duration::from_secs(60))
            .unwrap();
        let first = tokio::spawn(async move {
            parked.claimed.await.unwrap().send(Box::new(1u8)).unwrap();
        });
        let (_, stop) = kept.claim(&ticket, &nobody(), &signals).await.unwrap();
        first.await.unwrap();
        // The resumed connection serves it now; a second claim stops it.
        let serving = serve_until_taken_over(&kept, id, stop, 2u8);
        let (state, _) = kept.claim(&ticket, &nobody(), &signals).await.unwrap();
        assert_eq!(*state.downcast::<u8>().unwrap(), 2);
        serving.await.unwrap();
    }

    #[test]
    fn the_table_is_bounded_and_ids_are_random() {
        let kept = KeptSessions::new(2);
        let (a, ..) = kept.open(nobody()).unwrap();
        let (b, ..) = kept.open(nobody()).unwrap();
        assert_ne!(a, b);
        assert!(kept.open(nobody()).is_none());
        kept.forget(a);
        assert!(kept.open(nobody()).is_some());
    }
}
