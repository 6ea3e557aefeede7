//! Requests waiting for their responses: id allocation, the table of
//! waiters, and the [`Ticket`] that removes its entry when its caller gives
//! up (a `request()` future dropped under a timeout, say), so abandoned
//! requests leave nothing behind.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

use super::end::End;
use super::error::{Cause, ClientError};

/// A request's way back to its caller.
type Answer = oneshot::Sender<Result<Bytes, ClientError>>;

/// The table behind [`Requests`].
#[derive(Default)]
struct Table {
    waiting: HashMap<u32, Answer, foldhash::fast::RandomState>,
    next_id: u32,
    /// Once set, no new requests are accepted, so none can wait forever.
    ended: Option<End>,
}

impl Table {
    /// The next id not in flight. Ids are u32 and wrap; an id still
    /// waiting for its answer is skipped, so a late response can never be
    /// taken for the answer to a newer request with the same id.
    fn allocate(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.waiting.contains_key(&id) {
                return id;
            }
        }
    }
}

/// Requests in flight on one connection, shared by the handles (which
/// start them) and the reader (which answers them).
#[derive(Clone, Default)]
pub(crate) struct Requests(Arc<Mutex<Table>>);

impl Requests {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new request; refused once the connection has ended.
    pub(crate) fn start(&self) -> Result<Ticket, ClientError> {
        let (tx, rx) = oneshot::channel();
        let mut table = self.lock();
        if let Some(end) = &table.ended {
            return Err(end.to_error());
        }
        let id = table.allocate();
        table.waiting.insert(id, tx);
        Ok(Ticket {
            id,
            rx: Some(rx),
            requests: self.clone(),
        })
    }

    /// Answers the request `id`; `false` if nobody waits for it (it was
    /// abandoned, or the server answered an id we never sent).
    pub(crate) fn resolve(&self, id: u32, result: Result<Bytes, String>) -> bool {
        let waiter = self.lock().waiting.remove(&id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(result.map_err(ClientError::RequestFailed));
                true
            }
            None => false,
        }
    }

    /// Requests sent and not yet answered.
    pub(crate) fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// How the connection ended, if it has.
    pub(crate) fn ended(&self) -> Option<End> {
        self.lock().ended.clone()
    }

    /// The connection is over: every waiting request fails with `end`,
    /// and no new one is accepted.
    /// With `interrupts`, requests cut off by a lost connection fail as
    /// [`ClientError::Interrupted`] (a reconnecting client).
    pub(crate) fn end(&self, end: &End, interrupts: bool) {
        let waiting = {
            let mut table = self.lock();
            table.ended.get_or_insert(end.clone());
            std::mem::take(&mut table.waiting)
        };
        for (_, tx) in waiting {
            let error = match end {
                End::Lost(_) | End::ByServer(_) if interrupts => {
                    ClientError::Interrupted(end.to_error().to_string())
                }
                _ => end.to_error(),
            };
            let _ = tx.send(Err(error));
        }
    }

    #[cfg(test)]
    fn set_next_id(&self, id: u32) {
        self.lock().next_id = id;
    }
}

/// One request's place in the table. Dropping it before the answer came
/// removes the entry at once.
pub(crate) struct Ticket {
    id: u32,
    /// `None` once the answer (or the end) has been taken.
    rx: Option<oneshot::Receiver<Result<Bytes, ClientError>>>,
    requests: Requests,
}

impl Ticket {
    /// The request's id on the wire.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Waits for the answer. Cancel-safe: dropping this future (or the
    /// ticket) abandons the request.
    pub(crate) async fn answer(&mut self) -> Result<Bytes, ClientError> {
        let rx = self.rx.as_mut().expect("answer is awaited once");
        let answer = rx
            .await
            .unwrap_or_else(|_| Err(ClientError::closed(Cause::Network, "connection dropped")));
        // Whoever sent it has removed the entry already.
        self.rx = None;
        answer
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.rx.is_some() {
            self.requests.lock().waiting.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_wrap_and_skip_those_in_flight() {
        let requests = Requests::default();
        requests.set_next_id(u32::MAX);
        let oldest = requests.start().unwrap();
        assert_eq!(oldest.id(), u32::MAX);
        let next = requests.start().unwrap();
        assert_eq!(next.id(), 0, "wrapped");
        // Around again: u32::MAX and 0 are still waiting, so 1 is next.
        requests.set_next_id(u32::MAX);
        assert_eq!(requests.start().unwrap().id(), 1);
        assert_eq!(requests.len(), 2, "the dropped ticket left nothing");
    }

    #[test]
    fn an_abandoned_request_leaves_nothing_and_its_late_answer_is_refused() {
        let requests = Requests::default();
        let ticket = requests.start().unwrap();
        let id = ticket.id();
        assert_eq!(requests.len(), 1);
        drop(ticket);
        assert_eq!(requests.len(), 0);
        assert!(!requests.resolve(id, Ok(Bytes::new())));
    }

    #[tokio::test]
    async fn an_answered_ticket_is_not_looked_up_again() {
        let requests = Requests::default();
        let mut ticket = requests.start().unwrap();
        assert!(requests.resolve(ticket.id(), Ok(Bytes::from_static(b"ok"))));
        assert_eq!(ticket.answer().await.unwrap(), "ok");
        assert!(ticket.rx.is_none());
    }

    #[test]
    fn after_the_end_requests_are_refused() {
        let requests = Requests::default();
        let ticket = requests.start().unwrap();
        requests.end(&End::Lost("gone".into()), false);
        assert!(requests.start().is_err());
        drop(ticket);
        assert_eq!(requests.len(), 0);
    }
}
