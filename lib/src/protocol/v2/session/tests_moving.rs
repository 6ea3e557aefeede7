//! A session that moves to another server (spec 3.14.1), sans-IO: the
//! image one server writes, the session another resumes from it, and the
//! order that makes the move lose and repeat nothing.

use super::tests_resume::{frames, pair, settings, token};
use super::*;
use crate::protocol::v2::ResumeStatus;
use crate::protocol::v2::frame::{RequestFrame, ResponseFrame};
use crate::protocol::v2::session_image::SessionImage;
use bytes::BytesMut;

fn text(s: &str) -> Frame {
    Frame::Text(crate::protocol::Message::new(s.to_owned()))
}

fn texts(events: &[SessionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Text(m) => Some(m.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

/// A durable session acknowledges what it received only once it is
/// recorded as handled (`confirm`), never on its own.
#[test]
fn a_durable_session_acknowledges_only_what_is_stored_as_handled() {
    let (mut server, mut client) = pair(1 << 20);
    server.make_durable();
    let now = Instant::now();
    let mut wire = BytesMut::new();
    for i in 0..200 {
        client.send(&text(&format!("m{i}")), &mut wire).unwrap();
    }
    let mut back = BytesMut::new();
    for f in frames(&mut wire) {
        server.receive(f, now, &mut back).unwrap();
    }
    server.handle_timeout(now + Duration::from_secs(1), &mut back);
    assert!(
        !frames(&mut back).iter().any(|f| matches!(f, Frame::Ack(_))),
        "no ACK before the store says handled"
    );
    server.all_handled();
    let image = server.image().unwrap();
    assert_eq!((image.received, image.handled), (200, 200));
    server.confirm(image.handled, &mut back);
    assert_eq!(frames(&mut back), vec![Frame::Ack(200)]);
    server.confirm(image.handled, &mut back);
    assert!(back.is_empty(), "acknowledged once");
}

/// One server handles part of what a client sent, answers one request of
/// two and pushes five frames, of which the client gets three; then it is
/// gone, and another resumes the session from its image: the client gets
/// the two pushes and the answer it lacks, the open request ends with an
/// error (it may have run), the messages the first server had counted but
/// not handed over are delivered (and said to be in doubt), the resent
/// request is not run again, and numbering goes on.
#[test]
fn another_server_resumes_from_the_image_losing_and_rerunning_nothing() {
    let (mut first, mut client) = pair(1 << 20);
    first.make_durable();
    let now = Instant::now();
    let mut wire = BytesMut::new();
    for i in 0..5 {
        client.send(&text(&format!("m{i}")), &mut wire).unwrap();
    }
    client
        .send(&Frame::Request(RequestFrame::new(1, "q1")), &mut wire)
        .unwrap();
    let mut back = BytesMut::new();
    let mut handled = Vec::new();
    for f in frames(&mut wire) {
        handled.extend(first.receive(f, now, &mut back).unwrap());
    }
    first.all_handled();
    for i in 5..10 {
        client.send(&text(&format!("m{i}")), &mut wire).unwrap();
    }
    client
        .send(&Frame::Request(RequestFrame::new(2, "q2")), &mut wire)
        .unwrap();
    // Counted (stored as received), never handed to the handler.
    for f in frames(&mut wire) {
        first.receive(f, now, &mut back).unwrap();
    }
    for i in 0..5 {
        first.send(&text(&format!("p{i}")), &mut back).unwrap();
    }
    first
        .send(
            &Frame::Response(ResponseFrame::new(1, Ok("a1".into()))),
            &mut back,
        )
        .unwrap();
    let mut at_client = Vec::new();
    let mut lost = BytesMut::new();
    for f in frames(&mut back).into_iter().take(3) {
        at_client.extend(client.receive(f, now, &mut lost).unwrap());
    }
    let image = SessionImage::decode(&first.image().unwrap().encode()).unwrap();
    assert_eq!(image.open_requests, vec![2]);
    assert_eq!((image.received, image.handled, image.sent), (12, 6, 6));
    drop(first);

    assert!(client.detach());
    let ticket = client.resume_ticket().unwrap();
    let mut hello = BytesMut::new();
    let config = || SessionConfig::default().resume(Some(settings(1 << 20)));
    let mut fresh_client = Session::client_resuming(config(), ticket, now, &mut hello);
    let mut second = Session::server(config(), now);
    let mut out = BytesMut::new();
    let [h] = frames(&mut hello).try_into().unwrap();
    second.receive(h, now, &mut out).unwrap();
    let offer = second.take_resume_offer().unwrap();
    let (replayed, answered, in_doubt, opened) = second
        .resume_image(offer, image, token(), now, &mut out)
        .unwrap();
    assert_eq!((replayed, answered, in_doubt), (3, 1, 6));
    assert!(matches!(
        opened,
        SessionEvent::Opened {
            resume: Some(ResumeStatus::Resumed),
            ..
        }
    ));
    let mut got = frames(&mut out);
    let welcome = got.remove(0);
    let Some(SessionEvent::Resumed { received, .. }) =
        fresh_client.receive(welcome, now, &mut hello).unwrap()
    else {
        panic!("not resumed");
    };
    assert_eq!(received, 6, "the client resends what was not handled");
    let mut resent = BytesMut::new();
    assert_eq!(
        client
            .resumed_by(&fresh_client, received, now, &mut resent)
            .unwrap(),
        6
    );
    for f in got {
        at_client.extend(client.receive(f, now, &mut lost).unwrap());
    }
    let mut at_second = Vec::new();
    for f in frames(&mut resent) {
        at_second.extend(second.receive(f, now, &mut lost).unwrap());
    }
    second.send(&text("p5"), &mut out).unwrap();
    for f in frames(&mut out) {
        at_client.extend(client.receive(f, now, &mut lost).unwrap());
    }
    assert_eq!(texts(&at_client), ["p0", "p1", "p2", "p3", "p4", "p5"]);
    let answers: Vec<_> = at_client
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Response(r) => Some((r.id, r.result.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        vec![
            (1, Ok("a1".into())),
            (2, Err(super::moving::MOVED_REASON.to_owned()))
        ]
    );
    assert_eq!(texts(&at_second), ["m5", "m6", "m7", "m8", "m9"]);
    assert!(
        !at_second
            .iter()
            .any(|e| matches!(e, SessionEvent::Request(_))),
        "the request the first server had is not run again"
    );
    assert_eq!(texts(&handled), ["m0", "m1", "m2", "m3", "m4"]);
}

/// What the image says must fit the new HELLO: another frame size, a
/// wrong token, a count the image cannot replay from are refused, and the
/// offer comes back for a new session.
#[test]
fn a_resume_the_image_cannot_honour_is_refused() {
    let (mut first, mut client) = pair(1 << 20);
    first.make_durable();
    let image = first.image().unwrap();
    let now = Instant::now();
    let config = || SessionConfig::default().resume(Some(settings(1 << 20)));
    let attempt = |ticket: crate::protocol::v2::ResumeTicket,
                   config: SessionConfig,
                   token: crate::protocol::v2::ResumeToken| {
        let mut hello = BytesMut::new();
        let _ = Session::client_resuming(config.clone(), ticket, now, &mut hello);
        let mut second = Session::server(config, now);
        let mut out = BytesMut::new();
        let [h] = frames(&mut hello).try_into().unwrap();
        second.receive(h, now, &mut out).unwrap();
        let offer = second.take_resume_offer().unwrap();
        second
            .resume_image(offer, image.clone(), token, now, &mut out)
            .map(|_| ())
            .map_err(|(why, _offer)| why)
    };
    let ticket = client.resume_ticket().unwrap();
    assert_eq!(
        attempt(
            ticket.clone(),
            config(),
            crate::protocol::v2::ResumeToken([0; 16])
        ),
        Err(crate::protocol::v2::ResumeRefusal::WrongToken)
    );
    assert_eq!(
        attempt(ticket.clone(), config().max_frame_size(1 << 16), token()),
        Err(crate::protocol::v2::ResumeRefusal::Mismatch)
    );
    let ahead = crate::protocol::v2::ResumeTicket::new(ticket.id, token(), 5);
    assert_eq!(
        attempt(ahead, config(), token()),
        Err(crate::protocol::v2::ResumeRefusal::BadPosition)
    );
    assert_eq!(attempt(ticket, config(), token()), Ok(()));
    let _ = client.detach();
}
