//! Failing over: when the server says GOAWAY or the connection is lost, a
//! client with [`Reconnect`] set opens a new connection (backoff with
//! jitter, the whole handshake and authentication again) and new calls use
//! it. Requests in flight on the old connection fail with
//! [`ClientError::Interrupted`](super::ClientError::Interrupted): they are never resent, since the
//! server may have acted on them already.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::connect::{Resumption, open_link};
use super::end::End;
use super::incoming::Pushed;
use super::{ClientConfig, Shared};
use crate::config_setters::setters;

/// How a client reconnects (see [`ClientConfig::reconnect`]).
///
/// The delay before attempt `n` (from 0) is `initial_delay * 2^n`, capped
/// at `max_delay`, then scaled by a random factor between 0.5 and 1 so that
/// many clients cut off at once do not all return at once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnect {
    /// The first delay.
    pub initial_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Give up after this many failed attempts in a row (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_attempts: None,
        }
    }
}

impl Reconnect {
    setters! {
        initial_delay: Duration,
        max_delay: Duration,
        max_attempts: Option<u32>,
    }

    /// The delay before attempt `attempt` (0 for the first).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let full = self
            .initial_delay
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        // A fresh random hasher is a random number without a dependency.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        full.mul_f64(0.5 + (random % 1000) as f64 / 2000.0)
    }
}

/// Watches the current connection; when it ends or the server says GOAWAY,
/// opens the next one. Ends when the client is closed or dropped, or after
/// `max_attempts` failures in a row.
pub(super) async fn supervise(
    addr: String,
    config: ClientConfig,
    policy: Reconnect,
    shared: Arc<Shared>,
    incoming: mpsc::Sender<Pushed>,
) {
    loop {
        let core = shared.link.borrow().core.clone();
        let (why, resuming) = tokio::select! {
            end = core.wait_end() => (end.to_error().to_string(), false),
            goaway = core.wait_going_away() => {
                (format!("the server is going away ({goaway})"), false)
            }
            lost = core.wait_lost() => (lost, true),
        };
        if shared.closing.load(Ordering::Acquire) {
            return;
        }
        warn!(%addr, "{why}; reconnecting");
        report(&shared, &incoming, Pushed::Disconnected(why)).await;
        let mut attempt = 0;
        let (link, resumption) = loop {
            tokio::time::sleep(policy.delay(attempt)).await;
            if shared.closing.load(Ordering::Acquire) {
                return;
            }
            let old = resuming.then_some(&core);
            match open_link(
                &addr,
                &config,
                &shared.incoming_taken,
                incoming.clone(),
                old,
            )
            .await
            {
                Ok(opened) => break opened,
                Err(e) => {
                    attempt += 1;
                    warn!(%addr, attempt, "reconnecting failed: {e}");
                    let gave_up = policy.max_attempts.is_some_and(|max| attempt >= max);
                    let error = e.to_string();
                    report(
                        &shared,
                        &incoming,
                        Pushed::ReconnectFailed {
                            attempt,
                            error,
                            gave_up,
                        },
                    )
                    .await;
                    if gave_up {
                        warn!(%addr, "giving up after {attempt} attempts");
                        if core.is_lost() {
                            core.finish(End::Lost(format!("gave up reconnecting: {e}")));
                        }
                        shared.gave_up.store(true, Ordering::Release);
                        shared.link.send_modify(|_| {});
                        return;
                    }
                }
            }
        };
        if shared.closing.load(Ordering::Acquire) {
            link.core.queue.close();
            return;
        }
        match resumption {
            Resumption::Resumed { replayed, resent } => {
                // The same session and core: nothing to replace (the
                // application was told by `open_link`, before the replay).
                info!(%addr, replayed, resent, "session resumed");
                core.note_resumed();
                continue;
            }
            Resumption::Refused(reason) => {
                let unacknowledged = core.session(|s, _| s.unacknowledged());
                warn!(%addr, unacknowledged, "resume refused: {reason}");
                // What waited on the old session fails as interrupted.
                core.finish(End::Lost(format!("resume refused: {reason}")));
                report(
                    &shared,
                    &incoming,
                    Pushed::ResumeRefused {
                        reason,
                        unacknowledged,
                    },
                )
                .await;
            }
            Resumption::None => {}
        }
        info!(%addr, server = %link.server_name, "reconnected");
        let server_name = link.server_name.to_string();
        shared.link.send_replace(link);
        // A server going away still serves the old connection until it is
        // closed: close it properly (what was sent on it is processed
        // first), in the background, instead of leaving the server to cut
        // it at the end of its grace period.
        tokio::spawn(close_old(core));
        report(&shared, &incoming, Pushed::Reconnected { server_name }).await;
    }
}

/// How long closing a connection that was left behind may take.
const CLOSE_OLD_WITHIN: Duration = Duration::from_secs(10);

/// Sends CLOSE on a connection that new calls no longer use and waits for
/// the server's acknowledgement (bounded); a connection already over is
/// left as it is.
async fn close_old(core: Arc<super::shared::Core>) {
    if core.requests.ended().is_some() {
        return;
    }
    let queued = core
        .queue
        .push(|session, buf| match session.as_mut() {
            Some(session) => session
                .close(
                    crate::protocol::v2::CloseCode::NORMAL,
                    "moved to a new connection",
                    buf,
                )
                .map_err(|_| ()),
            None => Err(()),
        })
        .await;
    if matches!(queued, Ok(Ok(()))) {
        let _ = tokio::time::timeout(CLOSE_OLD_WITHIN, core.wait_end()).await;
    }
    core.queue.close();
}

/// Tells the application, the same way pushed messages reach it.
async fn report(shared: &Shared, incoming: &mpsc::Sender<Pushed>, event: Pushed) {
    if shared.incoming_taken.load(Ordering::Acquire) {
        let _ = incoming.send(event).await;
    } else {
        let _ = incoming.try_send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter() {
        let policy = Reconnect::default();
        for attempt in 0..40 {
            let d = policy.delay(attempt);
            let full =
                (Duration::from_millis(100) * 2u32.pow(attempt.min(20))).min(policy.max_delay);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
    }
}
