//! Calls (spec 3.13) through a pair of sessions: the extension negotiated,
//! credit kept both ways, and every rule a peer may break caught.

use super::*;
use crate::protocol::v2::codec::decode_frame;
use crate::protocol::v2::{
    CLIENT_STREAMS, CallFrame, CallLimits, CallStatus, ItemFrame, SERVER_STREAMS, SendError,
    StatusFrame,
};
use bytes::BytesMut;

fn frames(out: &mut BytesMut) -> Vec<Frame> {
    let mut got = Vec::new();
    while let Some(f) = decode_frame(out, u32::MAX).unwrap() {
        got.push(f);
    }
    got
}

/// A server with `limits` and a client that asked for calls, open.
fn pair(limits: Option<CallLimits>, client_asks: bool) -> (Session, Session) {
    let now = Instant::now();
    let mut wire = BytesMut::new();
    let asks = client_asks.then(CallLimits::default);
    let mut client = Session::client(
        SessionConfig::default().name("c").calls(asks),
        now,
        &mut wire,
    );
    let mut server = Session::server(SessionConfig::default().name("s").calls(limits), now);
    let mut back = BytesMut::new();
    for f in frames(&mut wire) {
        server.receive(f, now, &mut back).unwrap();
    }
    for f in frames(&mut back) {
        client.receive(f, now, &mut wire).unwrap();
    }
    (server, client)
}

/// Sends `frame` from `from` and receives it at `to`: the event, or the
/// violation.
fn pass(
    from: &mut Session,
    to: &mut Session,
    frame: Frame,
) -> Result<Option<SessionEvent>, SessionError> {
    let now = Instant::now();
    let mut wire = BytesMut::new();
    from.send(&frame, &mut wire).unwrap();
    let mut back = BytesMut::new();
    let [f] = frames(&mut wire).try_into().unwrap();
    to.receive(f, now, &mut back)
}

fn streaming_call(id: u32, credit: u32) -> Frame {
    let mut call = CallFrame::new(id, "follow");
    call.flags = SERVER_STREAMS;
    call.credit = credit;
    Frame::Call(call)
}

#[test]
fn calls_are_negotiated_only_when_both_sides_speak_them() {
    let (s, c) = pair(Some(CallLimits::new(7, 3)), true);
    assert_eq!(s.call_limits(), Some(CallLimits::new(7, 3)));
    assert_eq!(c.call_limits(), Some(CallLimits::new(7, 3)));
    for (s, c) in [pair(None, true), pair(Some(CallLimits::default()), false)] {
        assert_eq!((s.call_limits(), c.call_limits()), (None, None));
        assert_eq!(
            c.check_send(&Frame::Call(CallFrame::new(1, "x"))),
            Err(SendError::CallsNotNegotiated)
        );
    }
    // A server that does not speak calls treats their frames as any
    // unknown frame: a protocol error.
    let (mut s, _) = pair(None, true);
    let mut out = BytesMut::new();
    let err = s
        .receive(
            Frame::Call(CallFrame::new(1, "x")),
            Instant::now(),
            &mut out,
        )
        .unwrap_err();
    assert_eq!(err.code, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn a_server_stream_never_runs_ahead_of_its_credit() {
    let (mut s, mut c) = pair(Some(CallLimits::default()), true);
    assert!(matches!(
        pass(&mut c, &mut s, streaming_call(1, 2)).unwrap(),
        Some(SessionEvent::Call(call)) if call.id == 1 && call.credit == 2
    ));
    for i in 0..2 {
        let item = Frame::Item(ItemFrame::new(1, format!("line {i}")));
        assert!(matches!(
            pass(&mut s, &mut c, item).unwrap(),
            Some(SessionEvent::Item(_))
        ));
    }
    let third = Frame::Item(ItemFrame::new(1, "line 2"));
    assert_eq!(s.check_send(&third), Err(SendError::NoCredit { id: 1 }));
    let credit = Frame::Credit { id: 1, items: 1 };
    assert!(matches!(
        pass(&mut c, &mut s, credit).unwrap(),
        Some(SessionEvent::Credit { id: 1, items: 1 })
    ));
    assert_eq!(s.send_credit(1), 1);
    pass(&mut s, &mut c, third).unwrap();
    let status = Frame::Status(StatusFrame::new(1, CallStatus::Ok, ""));
    assert!(matches!(
        pass(&mut s, &mut c, status).unwrap(),
        Some(SessionEvent::Status(_))
    ));
    assert_eq!((s.calls_in_flight(), c.calls_in_flight()), (0, 0));
    // The id is free again once its STATUS came.
    pass(&mut c, &mut s, streaming_call(1, 1)).unwrap();
}

#[test]
fn a_client_stream_never_runs_ahead_of_the_servers_credit() {
    let (mut s, mut c) = pair(Some(CallLimits::new(10, 2)), true);
    let mut call = CallFrame::new(5, "upload");
    call.flags = CLIENT_STREAMS;
    pass(&mut c, &mut s, Frame::Call(call)).unwrap();
    for _ in 0..2 {
        pass(&mut c, &mut s, Frame::Item(ItemFrame::new(5, "chunk"))).unwrap();
    }
    let more = Frame::Item(ItemFrame::new(5, "chunk"));
    assert_eq!(c.check_send(&more), Err(SendError::NoCredit { id: 5 }));
    pass(&mut s, &mut c, Frame::Credit { id: 5, items: 4 }).unwrap();
    pass(&mut c, &mut s, more.clone()).unwrap();
    assert!(matches!(
        pass(&mut c, &mut s, Frame::End(5)).unwrap(),
        Some(SessionEvent::End(5))
    ));
    assert_eq!(c.check_send(&more), Err(SendError::StreamEnded { id: 5 }));
}

#[test]
fn what_a_peer_may_not_do_with_calls_is_a_protocol_error() {
    let now = Instant::now();
    let mut out = BytesMut::new();
    // A client past the server's credit.
    let (mut s, mut c) = pair(Some(CallLimits::new(10, 1)), true);
    let mut call = CallFrame::new(1, "");
    call.flags = CLIENT_STREAMS;
    pass(&mut c, &mut s, Frame::Call(call)).unwrap();
    s.receive(Frame::Item(ItemFrame::new(1, "a")), now, &mut out)
        .unwrap();
    let err = s
        .receive(Frame::Item(ItemFrame::new(1, "b")), now, &mut out)
        .unwrap_err();
    assert_eq!(err.reason, "ITEM for call 1 beyond the credit granted");
    // A second CALL with an id in flight.
    let (mut s, mut c) = pair(Some(CallLimits::default()), true);
    pass(&mut c, &mut s, streaming_call(3, 1)).unwrap();
    let err = s.receive(streaming_call(3, 1), now, &mut out).unwrap_err();
    assert_eq!(err.reason, "CALL 3 while a call with that id is in flight");
    // A server past the client's credit, and frames for calls not in flight.
    let (mut s, mut c) = pair(Some(CallLimits::default()), true);
    pass(&mut c, &mut s, streaming_call(1, 1)).unwrap();
    c.receive(Frame::Item(ItemFrame::new(1, "a")), now, &mut out)
        .unwrap();
    let err = c
        .receive(Frame::Item(ItemFrame::new(1, "b")), now, &mut out)
        .unwrap_err();
    assert_eq!(err.code, CloseCode::PROTOCOL_ERROR);
    let (mut s, mut c) = pair(Some(CallLimits::default()), true);
    pass(&mut c, &mut s, streaming_call(1, 1)).unwrap();
    let stray = Frame::Status(StatusFrame::new(9, CallStatus::Ok, ""));
    let err = c.receive(stray, now, &mut out).unwrap_err();
    assert_eq!(err.reason, "STATUS for call 9, which is not in flight");
}

#[test]
fn frames_that_crossed_a_status_are_ignored_and_a_full_table_refuses() {
    let now = Instant::now();
    let (mut s, mut c) = pair(Some(CallLimits::new(1, 4)), true);
    let mut call = CallFrame::new(1, "");
    call.flags = CLIENT_STREAMS | SERVER_STREAMS;
    call.credit = 1;
    pass(&mut c, &mut s, Frame::Call(call)).unwrap();
    // The server ends the call while the client still sends for it.
    let mut out = BytesMut::new();
    s.send(
        &Frame::Status(StatusFrame::new(1, CallStatus::Failed, "no")),
        &mut out,
    )
    .unwrap();
    for crossed in [
        Frame::Item(ItemFrame::new(1, "late")),
        Frame::Credit { id: 1, items: 1 },
        Frame::End(1),
        Frame::Cancel(1),
    ] {
        assert_eq!(s.receive(crossed, now, &mut out).unwrap(), None);
    }
    // One call allowed: a second is refused with STATUS 4 by the session
    // itself, and the connection goes on.
    let mut out = BytesMut::new();
    s.receive(streaming_call(2, 1), now, &mut out).unwrap();
    assert!(
        s.receive(streaming_call(3, 1), now, &mut out)
            .unwrap()
            .is_none()
    );
    let refused = frames(&mut out);
    assert!(matches!(
        &refused[..],
        [Frame::Status(st)] if st.id == 3 && st.status == CallStatus::Refused
            && st.reason() == "too many calls in flight (at most 1)"
    ));
    assert_eq!(s.state(), SessionState::Open);
}

#[test]
fn after_the_clients_close_only_answers_to_calls_go_out() {
    let (mut s, mut c) = pair(Some(CallLimits::default()), true);
    pass(&mut c, &mut s, streaming_call(1, 1)).unwrap();
    let mut out = BytesMut::new();
    c.close(CloseCode::NORMAL, "bye", &mut out).unwrap();
    let [close] = frames(&mut out).try_into().unwrap();
    s.receive(close, Instant::now(), &mut out).unwrap();
    assert!(s.check_send(&Frame::Item(ItemFrame::new(1, "x"))).is_ok());
    assert!(
        s.check_send(&Frame::Status(StatusFrame::new(1, CallStatus::Ok, "")))
            .is_ok()
    );
    assert_eq!(
        s.check_send(&Frame::Credit { id: 1, items: 1 }),
        Err(SendError::Closing)
    );
}
