//! A resumable session that may move to another server (spec 3.14.1): the
//! server's session written down as a [`SessionImage`] for a store every
//! server of a deployment reads, and a session resumed from one.
//!
//! What makes the move safe is the order the server keeps (its
//! `session_mirror.rs`): nothing the session sends leaves before the image
//! that holds it is stored; nothing received is handed to the handler
//! before the image that counts it is stored; and nothing is acknowledged
//! to the client before the image that says it was *handled* is stored. So
//! another server knows every frame the client may have had (it replays
//! those the client lacks), and the client still holds every frame no
//! stored image calls handled (it resends them).
//!
//! Between "counted" and "handled" lies the instant of a crash: frames the
//! old server had stored as received and may or may not have handed to its
//! handler. A one-way message there is delivered again (at least once, and
//! the new handler is told how many such frames come first); a request or
//! call there, or one the old handler had not answered, is never run
//! again: the new server answers it with an error saying it may have run.

// Only a server with a session store (the `nats` feature) moves sessions.
#![cfg_attr(not(feature = "nats"), allow(dead_code))]

use std::collections::HashSet;
use std::time::Instant;

use super::resume::{PendingHello, Replay, Resumable, ResumeOffer};
use super::{Session, SessionEvent};
use crate::protocol::v2::frame::{
    CallStatus, Extension, Frame, FrameSink, ResponseFrame, StatusFrame,
};
use crate::protocol::v2::resume::{ResumeGrant, ResumeRefusal, ResumeStatus, ResumeToken};
use crate::protocol::v2::session_image::SessionImage;

/// The reason given for a request or call that a server died serving.
pub(crate) const MOVED_REASON: &str = "interrupted: the server serving it stopped; it may have run";

/// What a server tracks so that another can take its session over.
#[derive(Debug, Clone, Default)]
pub(crate) struct Durable {
    /// Received frames handed to the handler.
    pub(super) handled: u64,
    /// Requests received and not answered.
    pub(super) open_requests: HashSet<u32, foldhash::fast::RandomState>,
    /// After a move: the frames the old server may have handled.
    doubt: Option<Box<Doubt>>,
}

/// The frames a client resends after a move that the old server had
/// counted: its requests and calls among them were answered already.
#[derive(Debug, Clone, Default)]
struct Doubt {
    /// The old server's count of received frames.
    upto: u64,
    requests: HashSet<u32, foldhash::fast::RandomState>,
    calls: HashSet<u32, foldhash::fast::RandomState>,
}

impl Durable {
    /// The event of the `received`-th counted frame, unless it is a
    /// request or call the old server had (answered with an error when the
    /// session moved); tracks the requests left to answer.
    pub(super) fn admit(
        &mut self,
        received: u64,
        event: Option<SessionEvent>,
        calls: Option<&mut super::calls::Calls>,
    ) -> Option<SessionEvent> {
        if let Some(doubt) = &self.doubt {
            if received > doubt.upto {
                self.doubt = None;
            } else {
                match &event {
                    Some(SessionEvent::Request(r)) if doubt.requests.contains(&r.id) => {
                        return None;
                    }
                    Some(SessionEvent::Call(c)) if doubt.calls.contains(&c.id) => {
                        if let Some(calls) = calls {
                            calls.forget(c.id);
                        }
                        return None;
                    }
                    _ => {}
                }
            }
        }
        if let Some(SessionEvent::Request(r)) = &event {
            self.open_requests.insert(r.id);
        }
        event
    }
}

impl Session {
    /// Server: from now on the session keeps what another server would
    /// need to take it over ([`Session::image`]).
    pub(crate) fn make_durable(&mut self) {
        if let Some(r) = self.resume.as_deref_mut() {
            r.durable.get_or_insert_with(|| {
                Box::new(Durable {
                    handled: r.received,
                    ..Durable::default()
                })
            });
        }
    }

    /// The handler has been given every frame received so far.
    pub(crate) fn all_handled(&mut self) {
        if let Some(r) = self.resume.as_deref_mut()
            && let Some(d) = r.durable.as_deref_mut()
        {
            d.handled = r.received;
        }
    }

    /// An image saying `handled` frames were handled is stored: they may
    /// be acknowledged to the client (written to `out`).
    pub(crate) fn confirm(&mut self, handled: u64, out: &mut impl FrameSink) {
        let open = self.state == super::SessionState::Open;
        if let Some(r) = self.resume.as_deref_mut()
            && !r.detached
            && open
            && handled > r.acked
        {
            r.acked = handled;
            Frame::Ack(handled).encode(out);
        }
    }

    /// The session written down, when it is durable and can still be
    /// resumed (its replay buffer has not overflowed).
    pub(crate) fn image(&self) -> Option<SessionImage> {
        let r = self.resume.as_deref().filter(|r| !r.overflowed)?;
        let d = r.durable.as_deref()?;
        let mut open_requests: Vec<u32> = d.open_requests.iter().copied().collect();
        open_requests.sort_unstable();
        let mut open_calls = self.calls.as_ref().map_or(Vec::new(), |c| c.open_ids());
        open_calls.sort_unstable();
        Some(SessionImage {
            id: r.id,
            detached: r.detached,
            expiry_ms: r.expiry_ms,
            sent: r.sent,
            received: r.received,
            handled: d.handled,
            peer_max_frame_size: self.peer_max_frame_size,
            calls: self.calls.as_ref().map(|c| c.limits()),
            app: self.app.clone(),
            open_requests,
            open_calls,
            replay_first: r.replay.first,
            replay_lens: r.replay.lens.iter().copied().collect(),
            replay: bytes::Bytes::copy_from_slice(&r.replay.bytes),
        })
    }

    /// Server: this new connection's session (its HELLO held as `offer`)
    /// goes on as the stored session `image`, whose token the client's
    /// ticket proved (`token`; the store keeps only a digest of it). Writes
    /// the WELCOME, every stored frame after the client's count, and an
    /// error answer for each request and call the old server had not
    /// answered, to `out`. Returns the frames replayed, the answers sent,
    /// the frames the client will resend that the old server may have
    /// handled (they come first), and the session's
    /// [`SessionEvent::Opened`] (a new handler serves it). A refusal hands
    /// the offer back unchanged.
    pub(crate) fn resume_image(
        &mut self,
        offer: ResumeOffer,
        image: SessionImage,
        token: ResumeToken,
        now: Instant,
        out: &mut impl FrameSink,
    ) -> Result<(u64, u64, u64, SessionEvent), (ResumeRefusal, ResumeOffer)> {
        let refuse = |why, offer| Err((why, offer));
        let Some(ticket) = offer.0.ask.ticket.as_ref() else {
            return refuse(ResumeRefusal::Unknown, offer);
        };
        if ticket.id != image.id || !ticket.token.matches(&token) {
            return refuse(ResumeRefusal::WrongToken, offer);
        }
        let hello = &offer.0;
        if hello.peer.1 != image.peer_max_frame_size
            || hello.calls != image.calls
            || hello.app != image.app
        {
            return refuse(ResumeRefusal::Mismatch, offer);
        }
        if ticket.received < image.replay_first || ticket.received > image.sent {
            return refuse(ResumeRefusal::BadPosition, offer);
        }
        let from = ticket.received;
        let in_doubt = image.received - image.handled;
        let settings = self.local.resume.clone().unwrap_or_default();
        let PendingHello {
            mut welcome,
            peer,
            token: auth,
            app,
            calls,
            ..
        } = *offer.0;
        let grant = ResumeGrant {
            status: ResumeStatus::Resumed,
            expiry_ms: image.expiry_ms,
            id: image.id,
            token: token.clone(),
            // The client resends what no stored image called handled.
            received: image.handled,
            sent: image.sent,
        };
        welcome
            .extensions
            .push(Extension::new(Extension::RESUME, grant.encode()));
        Frame::Welcome(welcome).encode(out);
        let mut resumable =
            Resumable::new(image.id, token, image.expiry_ms, settings.replay_max_bytes);
        resumable.sent = image.sent;
        resumable.received = image.handled;
        resumable.acked = image.handled;
        resumable.replay = Replay {
            bytes: bytes::BytesMut::from(&image.replay[..]),
            lens: image.replay_lens.into(),
            first: image.replay_first,
        };
        let doubt = Doubt {
            upto: image.received,
            requests: image.open_requests.iter().copied().collect(),
            calls: image.open_calls.iter().copied().collect(),
        };
        resumable.durable = Some(Box::new(Durable {
            handled: image.handled,
            doubt: (image.received > image.handled).then(|| Box::new(doubt)),
            ..Durable::default()
        }));
        self.resume = Some(Box::new(resumable));
        let opened = self.open(peer, auth, app, calls, Some(ResumeStatus::Resumed), now);
        let replayed = {
            let r = self.resume.as_deref_mut().expect("just set");
            r.replay.trim(from);
            out.buf().extend_from_slice(&r.replay.bytes);
            r.replay.lens.len() as u64
        };
        // What the old server's handler was given and did not answer: it
        // may have run, so it is not run again; the client learns it ended.
        let mut answered = 0;
        for id in image.open_requests {
            let failed = Frame::Response(ResponseFrame::new(id, Err(MOVED_REASON.to_owned())));
            self.encode_sent(&failed, out);
            answered += 1;
        }
        for id in image.open_calls {
            let failed = Frame::Status(StatusFrame::new(
                id,
                CallStatus::Failed,
                bytes::Bytes::from_static(MOVED_REASON.as_bytes()),
            ));
            self.encode_sent(&failed, out);
            answered += 1;
        }
        Ok((replayed, answered, in_doubt, opened))
    }
}
