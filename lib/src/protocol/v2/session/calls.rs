//! Calls (spec 3.13) as the session keeps them: which are in flight, which
//! of their streams are open, and how many items each side may still send
//! on each (the credit). Every CALL, ITEM, CREDIT, END, CANCEL and STATUS,
//! in or out, passes the rules here, so a peer that runs ahead of its
//! credit is caught where the bytes arrive, and our own senders cannot
//! break the rules either: a stream's sender waits for credit instead.

use std::collections::HashMap;

use crate::protocol::v2::frame::{CallFrame, CallStatus, Frame, StatusFrame};
use crate::protocol::v2::{CallLimits, CloseCode, SendError, SessionError};

use super::{Role, SessionEvent};

/// One call in flight.
#[derive(Debug, Clone)]
struct InFlight {
    server_streams: bool,
    client_streams: bool,
    /// The client may still send items (its stream is not ended).
    client_open: bool,
    /// The client cancelled it (it sends nothing more for it).
    cancelled: bool,
    /// Items we may still send on our stream of it.
    send_credit: u32,
    /// Items the peer may still send us.
    recv_credit: u32,
}

/// Every call of one session, and the limits both sides agreed to.
#[derive(Debug, Clone)]
pub(crate) struct Calls {
    role: Role,
    limits: CallLimits,
    open: HashMap<u32, InFlight, foldhash::fast::RandomState>,
}

fn violation(reason: String) -> SessionError {
    SessionError::new(CloseCode::PROTOCOL_ERROR, reason)
}

impl Calls {
    pub(crate) fn new(role: Role, limits: CallLimits) -> Self {
        Calls {
            role,
            limits,
            open: HashMap::default(),
        }
    }

    /// The limits the server announced.
    pub(crate) fn limits(&self) -> CallLimits {
        self.limits
    }

    /// Calls in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.open.len()
    }

    /// Applies a call frame from the peer: the event for the application,
    /// `None` for a frame that needs none (a refusal we answered here, a
    /// frame that crossed its call's STATUS), or the violation.
    pub(crate) fn receive(
        &mut self,
        frame: Frame,
        reply: &mut Option<Frame>,
    ) -> Result<Option<SessionEvent>, SessionError> {
        match (self.role, frame) {
            (Role::Server, Frame::Call(call)) => self.receive_call(call, reply),
            (Role::Server, Frame::Item(item)) => {
                // Frames after a STATUS we sent crossed it on the wire.
                let Some(c) = self.open.get_mut(&item.id) else {
                    return Ok(None);
                };
                if !c.client_open {
                    return Err(violation(format!(
                        "ITEM for call {} after its stream ended",
                        item.id
                    )));
                }
                take_credit(&mut c.recv_credit, item.id)?;
                Ok(Some(SessionEvent::Item(item)))
            }
            (Role::Server, Frame::End(id)) => {
                let Some(c) = self.open.get_mut(&id) else {
                    return Ok(None);
                };
                if !c.client_open {
                    return Err(violation(format!(
                        "END for call {id}, whose client has no stream open"
                    )));
                }
                c.client_open = false;
                Ok(Some(SessionEvent::End(id)))
            }
            (Role::Server, Frame::Cancel(id)) => {
                let Some(c) = self.open.get_mut(&id) else {
                    return Ok(None);
                };
                if c.cancelled {
                    return Ok(None);
                }
                c.cancelled = true;
                c.client_open = false;
                Ok(Some(SessionEvent::Cancel(id)))
            }
            (Role::Server, Frame::Credit { id, items }) => {
                let Some(c) = self.open.get_mut(&id) else {
                    return Ok(None);
                };
                if !c.server_streams {
                    return Err(violation(format!(
                        "CREDIT for call {id}, which has no server stream"
                    )));
                }
                c.send_credit = c.send_credit.saturating_add(items);
                Ok(Some(SessionEvent::Credit { id, items }))
            }
            (Role::Client, Frame::Item(item)) => {
                let c = self.client_call(item.id, "ITEM")?;
                if !c.server_streams {
                    return Err(violation(format!(
                        "ITEM for call {}, which has no server stream",
                        item.id
                    )));
                }
                take_credit(&mut c.recv_credit, item.id)?;
                Ok(Some(SessionEvent::Item(item)))
            }
            (Role::Client, Frame::Credit { id, items }) => {
                let c = self.client_call(id, "CREDIT")?;
                if !c.client_streams {
                    return Err(violation(format!(
                        "CREDIT for call {id}, which has no client stream"
                    )));
                }
                c.send_credit = c.send_credit.saturating_add(items);
                Ok(Some(SessionEvent::Credit { id, items }))
            }
            (Role::Client, Frame::Status(status)) => {
                self.client_call(status.id, "STATUS")?;
                self.open.remove(&status.id);
                Ok(Some(SessionEvent::Status(status)))
            }
            (role, f) => Err(violation(format!(
                "unexpected {:?} frame for a {role:?}",
                f.frame_type()
            ))),
        }
    }

    fn receive_call(
        &mut self,
        call: CallFrame,
        reply: &mut Option<Frame>,
    ) -> Result<Option<SessionEvent>, SessionError> {
        if self.open.contains_key(&call.id) {
            return Err(violation(format!(
                "CALL {} while a call with that id is in flight",
                call.id
            )));
        }
        if self.open.len() >= usize::from(self.limits.max_calls) {
            // A limit the client was told: refused, not a violation. The
            // answer is the session's own, so no call is ever opened.
            let reason = format!(
                "too many calls in flight (at most {})",
                self.limits.max_calls
            );
            *reply = Some(Frame::Status(StatusFrame::new(
                call.id,
                CallStatus::Refused,
                reason,
            )));
            return Ok(None);
        }
        let client_streams = call.client_streams();
        self.open.insert(
            call.id,
            InFlight {
                server_streams: call.server_streams(),
                client_streams,
                client_open: client_streams,
                cancelled: false,
                send_credit: call.credit,
                recv_credit: if client_streams {
                    self.limits.stream_credit
                } else {
                    0
                },
            },
        );
        Ok(Some(SessionEvent::Call(call)))
    }

    /// A call of ours the server speaks of: it must be in flight.
    fn client_call(&mut self, id: u32, what: &str) -> Result<&mut InFlight, SessionError> {
        self.open
            .get_mut(&id)
            .ok_or_else(|| violation(format!("{what} for call {id}, which is not in flight")))
    }

    /// Whether we may send `frame` now.
    pub(crate) fn check_send(&self, frame: &Frame) -> Result<(), SendError> {
        let call = |id: u32| self.open.get(&id).ok_or(SendError::NoSuchCall { id });
        match (self.role, frame) {
            (Role::Client, Frame::Call(c)) => {
                if self.open.contains_key(&c.id) {
                    return Err(SendError::CallInFlight { id: c.id });
                }
                if self.open.len() >= usize::from(self.limits.max_calls) {
                    return Err(SendError::TooManyCalls {
                        max: self.limits.max_calls,
                    });
                }
                Ok(())
            }
            (Role::Client, Frame::Item(i)) => {
                let c = call(i.id)?;
                if !c.client_open {
                    return Err(SendError::StreamEnded { id: i.id });
                }
                has_credit(c.send_credit, i.id)
            }
            (Role::Client, Frame::End(id)) => {
                if !call(*id)?.client_open {
                    return Err(SendError::StreamEnded { id: *id });
                }
                Ok(())
            }
            (Role::Client, Frame::Cancel(id)) => call(*id).map(|_| ()),
            (Role::Client, Frame::Credit { id, .. }) => {
                let c = call(*id)?;
                if !c.server_streams || c.cancelled {
                    return Err(SendError::StreamEnded { id: *id });
                }
                Ok(())
            }
            (Role::Server, Frame::Item(i)) => {
                let c = call(i.id)?;
                if !c.server_streams {
                    return Err(SendError::StreamEnded { id: i.id });
                }
                has_credit(c.send_credit, i.id)
            }
            (Role::Server, Frame::Credit { id, .. }) => {
                if !call(*id)?.client_open {
                    return Err(SendError::StreamEnded { id: *id });
                }
                Ok(())
            }
            (Role::Server, Frame::Status(s)) => call(s.id).map(|_| ()),
            _ => Err(SendError::NoSuchCall { id: 0 }),
        }
    }

    /// Records that `frame`, checked, was sent.
    pub(crate) fn sent(&mut self, frame: &Frame) {
        match frame {
            Frame::Call(c) => {
                let client_streams = c.client_streams();
                self.open.insert(
                    c.id,
                    InFlight {
                        server_streams: c.server_streams(),
                        client_streams,
                        client_open: client_streams,
                        cancelled: false,
                        send_credit: if client_streams {
                            self.limits.stream_credit
                        } else {
                            0
                        },
                        recv_credit: c.credit,
                    },
                );
            }
            Frame::Item(i) => {
                if let Some(c) = self.open.get_mut(&i.id) {
                    c.send_credit -= 1;
                }
            }
            Frame::End(id) => {
                if let Some(c) = self.open.get_mut(id) {
                    c.client_open = false;
                }
            }
            Frame::Cancel(id) => {
                if let Some(c) = self.open.get_mut(id) {
                    c.cancelled = true;
                    c.client_open = false;
                }
            }
            Frame::Credit { id, items } => {
                if let Some(c) = self.open.get_mut(id) {
                    c.recv_credit = c.recv_credit.saturating_add(*items);
                }
            }
            Frame::Status(s) => {
                self.open.remove(&s.id);
            }
            _ => {}
        }
    }

    /// The calls in flight, in no particular order.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn open_ids(&self) -> Vec<u32> {
        self.open.keys().copied().collect()
    }

    /// Forgets call `id` (answered already, by a server that took the
    /// session over: see `moving.rs`).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn forget(&mut self, id: u32) {
        self.open.remove(&id);
    }

    /// Items we may still send on call `id`'s stream (0 when it has none).
    pub(crate) fn send_credit(&self, id: u32) -> u32 {
        self.open.get(&id).map_or(0, |c| c.send_credit)
    }
}

fn take_credit(credit: &mut u32, id: u32) -> Result<(), SessionError> {
    if *credit == 0 {
        return Err(violation(format!(
            "ITEM for call {id} beyond the credit granted"
        )));
    }
    *credit -= 1;
    Ok(())
}

fn has_credit(credit: u32, id: u32) -> Result<(), SendError> {
    if credit == 0 {
        return Err(SendError::NoCredit { id });
    }
    Ok(())
}
