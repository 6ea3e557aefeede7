//! Resumable sessions (spec 3.14) through a pair of sessions on a made-up
//! wire: negotiated only when both ask, acknowledged, replayed after a cut
//! exactly once and in order, and refused for every reason a server has.

use super::*;
use crate::protocol::v2::codec::decode_frame;
use crate::protocol::v2::{ResumeRefusal, ResumeStatus, ResumeToken, SendError, SessionId};
use bytes::BytesMut;

pub(super) fn frames(out: &mut BytesMut) -> Vec<Frame> {
    let mut got = Vec::new();
    while let Some(f) = decode_frame(out, u32::MAX).unwrap() {
        got.push(f);
    }
    got
}

pub(super) fn settings(max: usize) -> ResumeSettings {
    ResumeSettings::default()
        .expiry(Duration::from_secs(30))
        .replay_max_bytes(max)
}

const ID: SessionId = SessionId([5; 16]);

pub(super) fn token() -> ResumeToken {
    ResumeToken([6; 16])
}

/// A server and a client, both resumable (the server with a replay buffer
/// of `max` bytes), open.
pub(super) fn pair(max: usize) -> (Session, Session) {
    let now = Instant::now();
    let mut wire = BytesMut::new();
    let mut client = Session::client(
        SessionConfig::default().resume(Some(settings(max))),
        now,
        &mut wire,
    );
    let mut server = Session::server(SessionConfig::default().resume(Some(settings(max))), now);
    let mut back = BytesMut::new();
    let [hello] = frames(&mut wire).try_into().unwrap();
    let asked = server.receive(hello, now, &mut back).unwrap();
    assert!(matches!(asked, Some(SessionEvent::ResumeAsked(ref a)) if a.ticket.is_none()));
    assert!(back.is_empty(), "the WELCOME waits for the endpoint");
    let offer = server.take_resume_offer().unwrap();
    let opened = server.open_resumable(offer, Some((ID, token())), None, now, &mut back);
    assert!(matches!(
        opened,
        SessionEvent::Opened {
            resume: Some(ResumeStatus::New),
            ..
        }
    ));
    let [welcome] = frames(&mut back).try_into().unwrap();
    let opened = client.receive(welcome, now, &mut wire).unwrap();
    assert!(matches!(
        opened,
        Some(SessionEvent::Opened {
            resume: Some(ResumeStatus::New),
            ..
        })
    ));
    assert_eq!(client.resume_id(), Some(ID));
    (server, client)
}

fn text(i: usize) -> Frame {
    Frame::Text(crate::protocol::Message::new(format!("m{i}")))
}

fn number(event: &SessionEvent) -> usize {
    match event {
        SessionEvent::Text(m) => m.as_str()[1..].parse().unwrap(),
        other => panic!("not a numbered text: {other:?}"),
    }
}

#[test]
fn only_both_asking_makes_a_session_resumable() {
    let now = Instant::now();
    for (client_asks, server_speaks) in [(true, false), (false, true)] {
        let mut wire = BytesMut::new();
        let ask = client_asks.then(ResumeSettings::default);
        let speak = server_speaks.then(ResumeSettings::default);
        let mut client = Session::client(SessionConfig::default().resume(ask), now, &mut wire);
        let mut server = Session::server(SessionConfig::default().resume(speak), now);
        let mut back = BytesMut::new();
        for f in frames(&mut wire) {
            let opened = server.receive(f, now, &mut back).unwrap();
            assert!(matches!(
                opened,
                Some(SessionEvent::Opened { resume: None, .. })
            ));
        }
        for f in frames(&mut back) {
            let opened = client.receive(f, now, &mut wire).unwrap();
            assert!(matches!(
                opened,
                Some(SessionEvent::Opened { resume: None, .. })
            ));
        }
        assert!(!client.is_resumable() && !server.is_resumable());
        // An ACK where none was agreed breaks the protocol.
        assert!(server.receive(Frame::Ack(0), now, &mut back).is_err());
    }
}

#[test]
fn acks_let_go_of_what_arrived() {
    let (mut server, mut client) = pair(1 << 20);
    let now = Instant::now();
    let mut wire = BytesMut::new();
    for i in 0..100 {
        server.send(&text(i), &mut wire).unwrap();
    }
    assert_eq!(server.unacknowledged(), 100);
    let mut back = BytesMut::new();
    for f in frames(&mut wire) {
        client.receive(f, now, &mut back).unwrap();
    }
    // One ACK after 64 frames; the rest is owed, due within the delay.
    let acks = frames(&mut back);
    assert_eq!(acks, vec![Frame::Ack(64)]);
    let due = client.poll_timeout().unwrap();
    assert!(due <= now + Duration::from_millis(100));
    client.handle_timeout(due, &mut back);
    let acks = [acks, frames(&mut back)].concat();
    assert_eq!(acks, vec![Frame::Ack(64), Frame::Ack(100)]);
    for ack in acks {
        server.receive(ack, now, &mut wire).unwrap();
    }
    assert_eq!((server.unacknowledged(), server.replay_bytes()), (0, 0));
    // Acknowledging what was never sent is a violation.
    assert!(server.receive(Frame::Ack(101), now, &mut wire).is_err());
}

/// Resumes `client`'s session on `server` over a new connection: the
/// refusal, or the frames each side replayed.
fn resume(
    server: &mut Session,
    client: &mut Session,
    now: Instant,
) -> Result<(Vec<Frame>, Vec<Frame>), ResumeRefusal> {
    let ticket = client.resume_ticket().unwrap();
    resume_with(server, client, ticket, now)
}

fn resume_with(
    server: &mut Session,
    client: &mut Session,
    ticket: crate::protocol::v2::ResumeTicket,
    now: Instant,
) -> Result<(Vec<Frame>, Vec<Frame>), ResumeRefusal> {
    let mut wire = BytesMut::new();
    let mut fresh_client = Session::client_resuming(
        SessionConfig::default().resume(Some(settings(1 << 20))),
        ticket,
        now,
        &mut wire,
    );
    let mut fresh_server = Session::server(
        SessionConfig::default().resume(Some(settings(1 << 20))),
        now,
    );
    let [hello] = frames(&mut wire).try_into().unwrap();
    let mut back = BytesMut::new();
    let asked = fresh_server.receive(hello, now, &mut back).unwrap();
    assert!(matches!(asked, Some(SessionEvent::ResumeAsked(ref a)) if a.ticket.is_some()));
    let offer = fresh_server.take_resume_offer().unwrap();
    server.resume_with(&offer, now, &mut back)?;
    let mut got = frames(&mut back);
    let welcome = got.remove(0);
    let Some(SessionEvent::Resumed { received, .. }) =
        fresh_client.receive(welcome, now, &mut wire).unwrap()
    else {
        panic!("not resumed");
    };
    client
        .resumed_by(&fresh_client, received, now, &mut wire)
        .unwrap();
    Ok((got, frames(&mut wire)))
}

#[test]
fn a_cut_loses_nothing_and_duplicates_nothing_both_ways() {
    let (mut server, mut client) = pair(1 << 20);
    let now = Instant::now();
    let (mut to_client, mut to_server) = (BytesMut::new(), BytesMut::new());
    for i in 0..10 {
        server.send(&text(i), &mut to_client).unwrap();
        client.send(&text(i), &mut to_server).unwrap();
    }
    // The first 4 of each side's frames arrive; the rest die with the
    // connection (the ACKs owed die too).
    let (mut at_client, mut at_server) = (Vec::new(), Vec::new());
    let mut lost = BytesMut::new();
    for f in frames(&mut to_client).into_iter().take(4) {
        at_client.extend(client.receive(f, now, &mut lost).unwrap());
    }
    for f in frames(&mut to_server).into_iter().take(4) {
        at_server.extend(server.receive(f, now, &mut lost).unwrap());
    }
    assert!(server.detach() && client.detach());
    // The server's handler goes on while the client is away.
    let mut nowhere = BytesMut::new();
    for i in 10..12 {
        server.send(&text(i), &mut nowhere).unwrap();
    }
    assert!(nowhere.is_empty(), "a detached session writes nothing");
    let (replayed_to_client, replayed_to_server) = resume(&mut server, &mut client, now).unwrap();
    assert_eq!((replayed_to_client.len(), replayed_to_server.len()), (8, 6));
    for f in replayed_to_client {
        at_client.extend(client.receive(f, now, &mut lost).unwrap());
    }
    for f in replayed_to_server {
        at_server.extend(server.receive(f, now, &mut lost).unwrap());
    }
    let numbers = |events: &[SessionEvent]| events.iter().map(number).collect::<Vec<_>>();
    assert_eq!(numbers(&at_client), (0..12).collect::<Vec<_>>());
    assert_eq!(numbers(&at_server), (0..10).collect::<Vec<_>>());
}

#[test]
fn random_cuts_deliver_every_frame_once_in_order() {
    // A made-up wire that loses a random tail of what is in flight at each
    // cut; 1,000 cuts with traffic both ways.
    let (mut server, mut client) = pair(1 << 20);
    let now = Instant::now();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut sent_down, mut sent_up) = (0, 0);
    let (mut got_down, mut got_up) = (Vec::new(), Vec::new());
    let (mut to_client, mut to_server) = (BytesMut::new(), BytesMut::new());
    for _cut in 0..1_000 {
        for _ in 0..random(20) {
            server.send(&text(sent_down), &mut to_client).unwrap();
            sent_down += 1;
        }
        for _ in 0..random(20) {
            client.send(&text(sent_up), &mut to_server).unwrap();
            sent_up += 1;
        }
        let down = frames(&mut to_client);
        let up = frames(&mut to_server);
        let (keep_down, keep_up) = (random(down.len() + 1), random(up.len() + 1));
        for f in down.into_iter().take(keep_down) {
            got_down.extend(client.receive(f, now, &mut to_server).unwrap());
        }
        for f in up.into_iter().take(keep_up) {
            got_up.extend(server.receive(f, now, &mut to_client).unwrap());
        }
        // ACKs written just now die with the connection too.
        to_client.clear();
        to_server.clear();
        assert!(server.detach() && client.detach());
        let (r_down, r_up) = resume(&mut server, &mut client, now).unwrap();
        for f in r_down {
            got_down.extend(client.receive(f, now, &mut to_server).unwrap());
        }
        for f in r_up {
            got_up.extend(server.receive(f, now, &mut to_client).unwrap());
        }
    }
    let numbers = |events: &[SessionEvent]| events.iter().map(number).collect::<Vec<_>>();
    assert_eq!(numbers(&got_down), (0..sent_down).collect::<Vec<_>>());
    assert_eq!(numbers(&got_up), (0..sent_up).collect::<Vec<_>>());
    assert!(sent_down > 5_000 && sent_up > 5_000);
}

#[test]
fn resumes_are_refused_with_their_reason() {
    let now = Instant::now();
    // Wrong token.
    let (mut server, mut client) = pair(1 << 20);
    server.detach();
    client.detach();
    let mut wrong = client.resume_ticket().unwrap();
    wrong.token = ResumeToken([0; 16]);
    assert_eq!(
        resume_with(&mut server, &mut client, wrong, now).unwrap_err(),
        ResumeRefusal::WrongToken
    );
    // The right one still works after that.
    assert!(resume(&mut server, &mut client, now).is_ok());
    // Overflowed while away: sending is refused, so is the resume.
    let (mut server, mut client) = pair(64);
    server.detach();
    client.detach();
    let mut nowhere = BytesMut::new();
    server.send(&text(1), &mut nowhere).unwrap();
    let big = Frame::Binary(bytes::Bytes::from(vec![0; 100]));
    server.send(&big, &mut nowhere).unwrap();
    assert!(!server.is_resumable());
    assert_eq!(server.send(&text(2), &mut nowhere), Err(SendError::Closed));
    assert_eq!(
        resume(&mut server, &mut client, now).unwrap_err(),
        ResumeRefusal::Overflowed
    );
}

#[test]
fn a_refused_resume_opens_a_new_session_and_says_why() {
    let now = Instant::now();
    let (_, client) = pair(1 << 20);
    let mut wire = BytesMut::new();
    let mut fresh = Session::client_resuming(
        SessionConfig::default().resume(Some(settings(1 << 20))),
        client.resume_ticket().unwrap(),
        now,
        &mut wire,
    );
    let mut server = Session::server(
        SessionConfig::default().resume(Some(settings(1 << 20))),
        now,
    );
    let mut back = BytesMut::new();
    for f in frames(&mut wire) {
        server.receive(f, now, &mut back).unwrap();
    }
    let new_id = SessionId([8; 16]);
    let offer = server.take_resume_offer().unwrap();
    server.open_resumable(
        offer,
        Some((new_id, token())),
        Some(ResumeRefusal::Unknown),
        now,
        &mut back,
    );
    let [welcome] = frames(&mut back).try_into().unwrap();
    let opened = fresh.receive(welcome, now, &mut wire).unwrap();
    assert!(matches!(
        opened,
        Some(SessionEvent::Opened {
            resume: Some(ResumeStatus::Refused(ResumeRefusal::Unknown)),
            ..
        })
    ));
    assert_eq!(fresh.resume_id(), Some(new_id));
}
