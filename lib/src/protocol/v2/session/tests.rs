//! The session on its own: a pair of endpoints wired back to back, on a
//! made-up clock, without sockets.

use super::*;
use crate::protocol::v2::codec::decode_frame;
use crate::protocol::v2::{AUTHENTICATION_FAILED, SendError, TokenCheck, frame::Hello};
use bytes::BytesMut;
use std::time::Duration;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Every frame in `out`, decoded (and `out` emptied).
fn frames(out: &mut BytesMut) -> Vec<Frame> {
    let mut got = Vec::new();
    while let Some(f) = decode_frame(out, u32::MAX).unwrap() {
        got.push(f);
    }
    assert!(out.is_empty(), "only whole frames are written");
    got
}

fn server_config() -> SessionConfig {
    SessionConfig::default()
        .name("srv")
        .max_frame_size(1 << 20)
        .heartbeat(Duration::from_secs(30))
}

/// A server and a client, open, at `t0`.
fn open_pair(t0: Instant) -> (Session, Session) {
    let mut wire = BytesMut::new();
    let mut client = Session::client(
        SessionConfig::default()
            .name("alice")
            .max_frame_size(1 << 20),
        t0,
        &mut wire,
    );
    let mut server = Session::server(server_config(), t0);
    let mut back = BytesMut::new();
    let [hello] = frames(&mut wire).try_into().unwrap();
    let opened = server.receive(hello, t0, &mut back).unwrap();
    assert!(
        matches!(opened, Some(SessionEvent::Opened { ref peer_name, .. }) if peer_name == "alice")
    );
    let [welcome] = frames(&mut back).try_into().unwrap();
    let opened = client.receive(welcome, t0, &mut wire).unwrap();
    assert!(matches!(
        opened,
        Some(SessionEvent::Opened {
            heartbeat_ms: 30_000,
            ..
        })
    ));
    assert!(wire.is_empty());
    (server, client)
}

fn text(s: &str) -> Frame {
    Frame::Text(Message::new(s))
}

fn response(len: usize) -> Frame {
    Frame::Response(ResponseFrame {
        id: 1,
        result: Ok(Bytes::from(vec![0; len])),
    })
}

#[test]
fn handshake_opens_both_sides() {
    let (s, c) = open_pair(Instant::now());
    assert_eq!(s.state(), SessionState::Open);
    assert_eq!(c.state(), SessionState::Open);
    assert_eq!(c.peer_name(), "srv");
    assert_eq!(s.peer_max_frame_size(), 1 << 20);
}

#[test]
fn a_close_before_hello_is_a_protocol_error_too() {
    let now = Instant::now();
    let mut s = Session::server(server_config(), now);
    let mut out = BytesMut::new();
    let bye = Frame::Close(CodeReason::new(CloseCode::NORMAL, "bye"));
    let err = s.receive(bye, now, &mut out).unwrap_err();
    assert_eq!(err.code, CloseCode::PROTOCOL_ERROR);
    assert_eq!(err.reason, "expected HELLO first, got Close");
    assert_eq!(s.state(), SessionState::Closed);
}

#[test]
fn a_frame_before_hello_is_a_protocol_error_answered_with_close() {
    let now = Instant::now();
    let mut s = Session::server(server_config(), now);
    let mut out = BytesMut::new();
    let err = s.receive(text("hi"), now, &mut out).unwrap_err();
    assert_eq!(err.code, CloseCode::PROTOCOL_ERROR);
    assert!(
        matches!(&frames(&mut out)[..], [Frame::Close(c)] if c.code == CloseCode::PROTOCOL_ERROR)
    );
    assert_eq!(s.state(), SessionState::Closed);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn hello_without_v2_or_with_a_bad_name_is_refused_with_a_reason() {
    let now = Instant::now();
    let mut out = BytesMut::new();
    let mut s = Session::server(server_config(), now);
    let bad = Frame::Hello(Hello {
        versions: vec![3],
        max_frame_size: 4096,
        heartbeat_ms: 0,
        name: "x".into(),
        extensions: Vec::new(),
    });
    let err = s.receive(bad, now, &mut out).unwrap_err();
    assert_eq!(err.code, CloseCode::HANDSHAKE_REFUSED);
    assert!(err.reason.contains("speaks 1 and 2"));
    for name in ["bad\nname", ""] {
        let mut s = Session::server(server_config(), now);
        let hello = Frame::Hello(Hello {
            versions: vec![2],
            max_frame_size: 4096,
            heartbeat_ms: 0,
            name: name.into(),
            extensions: Vec::new(),
        });
        let err = s.receive(hello, now, &mut out).unwrap_err();
        assert_eq!(err.code, CloseCode::HANDSHAKE_REFUSED, "{name:?}");
    }
}

#[test]
fn pings_are_answered_by_the_session() {
    let now = Instant::now();
    let (mut s, _) = open_pair(now);
    let mut out = BytesMut::new();
    assert_eq!(s.receive(Frame::Ping(9), now, &mut out).unwrap(), None);
    assert_eq!(frames(&mut out), [Frame::Pong(9)]);
}

#[test]
fn close_handshake_from_the_client() {
    let now = Instant::now();
    let (mut s, mut c) = open_pair(now);
    let mut wire = BytesMut::new();
    c.close(CloseCode::NORMAL, "done", &mut wire).unwrap();
    assert_eq!(c.state(), SessionState::Closing);
    let [close] = frames(&mut wire).try_into().unwrap();
    let mut out = BytesMut::new();
    let ev = s.receive(close, now, &mut out).unwrap();
    assert!(matches!(ev, Some(SessionEvent::CloseRequested(_))));
    // Answers to earlier requests may still go out; new work may not.
    s.send(&response(3), &mut out).unwrap();
    assert_eq!(s.send(&text("x"), &mut out), Err(SendError::Closing));
    assert_eq!(frames(&mut out).len(), 1, "only the response was written");
    assert!(s.receive(text("late"), now, &mut out).is_err());
    frames(&mut out);

    let (mut s, mut c) = open_pair(now);
    c.close(CloseCode::NORMAL, "done", &mut wire).unwrap();
    let [close] = frames(&mut wire).try_into().unwrap();
    s.receive(close, now, &mut out).unwrap();
    s.ack_close(&mut out).unwrap();
    assert_eq!(s.state(), SessionState::Closed);
    // The client still takes frames sent before the ack.
    assert!(c.receive(text("in flight"), now, &mut wire).is_ok());
    let [ack] = frames(&mut out).try_into().unwrap();
    let ev = c.receive(ack, now, &mut wire).unwrap();
    assert!(matches!(ev, Some(SessionEvent::Closed(_))));
    assert_eq!(c.state(), SessionState::Closed);
    assert!(wire.is_empty());
}

/// Spec 3.10 on the way out: a push (or a broadcast) to a client whose
/// CLOSE has arrived is refused, and after our own CLOSE nothing goes out.
#[test]
fn pushes_during_the_close_handshake_and_after_close_are_refused() {
    let now = Instant::now();
    let mut out = BytesMut::new();
    // The client closes; the server is draining.
    let (mut s, _) = open_pair(now);
    s.receive(
        Frame::Close(CodeReason::new(CloseCode::NORMAL, "bye")),
        now,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        s.send(&text("broadcast"), &mut out),
        Err(SendError::Closing)
    );
    assert_eq!(
        s.send(&Frame::Binary(Bytes::from_static(b"x")), &mut out),
        Err(SendError::Closing)
    );
    assert!(out.is_empty());
    // The server closes: nothing more, not even a response.
    let (mut s, _) = open_pair(now);
    s.close(CloseCode::GOING_AWAY, "bye", &mut out).unwrap();
    frames(&mut out);
    assert_eq!(s.send(&text("late"), &mut out), Err(SendError::Closing));
    assert_eq!(s.send(&response(1), &mut out), Err(SendError::Closing));
    assert_eq!(
        s.close(CloseCode::NORMAL, "again", &mut out),
        Err(SendError::Closed)
    );
    assert!(out.is_empty());
}

#[test]
fn a_response_larger_than_the_peers_limit_is_refused() {
    let now = Instant::now();
    let mut out = BytesMut::new();
    let mut server = Session::server(server_config(), now);
    let mut hello = BytesMut::new();
    Session::client(
        SessionConfig::default().name("tiny").max_frame_size(1024),
        now,
        &mut hello,
    );
    let [hello] = frames(&mut hello).try_into().unwrap();
    server.receive(hello, now, &mut out).unwrap();
    frames(&mut out);
    assert_eq!(
        server.send(&response(1024 - 5), &mut out),
        Ok(()),
        "id and status take 5 bytes"
    );
    frames(&mut out);
    assert_eq!(
        server.send(&response(1024), &mut out),
        Err(SendError::TooLarge {
            len: 1029,
            max: 1024
        })
    );
    assert_eq!(
        server.send(&Frame::Binary(Bytes::from(vec![0; 1025])), &mut out),
        Err(SendError::TooLarge {
            len: 1025,
            max: 1024
        })
    );
    assert!(out.is_empty());
    assert_eq!(
        server.state(),
        SessionState::Open,
        "a refusal harms nothing"
    );
}

#[test]
fn after_go_away_the_client_starts_no_new_requests() {
    let now = Instant::now();
    let (mut s, mut c) = open_pair(now);
    let mut out = BytesMut::new();
    s.go_away("restarting", now, &mut out).unwrap();
    let [g] = frames(&mut out).try_into().unwrap();
    s.go_away("again", now, &mut out).unwrap();
    assert!(out.is_empty(), "announced once");
    c.receive(g, now, &mut out).unwrap();
    let req = Frame::Request(RequestFrame {
        id: 1,
        payload: Bytes::new(),
    });
    assert_eq!(c.send(&req, &mut out), Err(SendError::GoingAway));
    assert!(c.send(&text("bye"), &mut out).is_ok());
}

#[test]
fn roles_and_control_frames_are_enforced() {
    let now = Instant::now();
    let (mut s, mut c) = open_pair(now);
    let mut out = BytesMut::new();
    assert!(s.receive(response(0), now, &mut out).is_err());
    let (mut s2, _) = open_pair(now);
    let req = Frame::Request(RequestFrame {
        id: 1,
        payload: Bytes::new(),
    });
    assert!(matches!(
        s2.send(&req, &mut out),
        Err(SendError::NotAllowed {
            role: Role::Server,
            ..
        })
    ));
    assert!(c.receive(req, now, &mut out).is_err());
    let (_, mut c) = open_pair(now);
    for f in [
        Frame::GoAway(CodeReason::new(CloseCode::GOING_AWAY, "")),
        Frame::Close(CodeReason::new(CloseCode::NORMAL, "")),
        response(0),
    ] {
        assert!(
            matches!(c.send(&f, &mut out), Err(SendError::NotAllowed { .. })),
            "{f:?}"
        );
    }
    assert!(matches!(
        s.send(&text("x"), &mut out),
        Err(SendError::Closed)
    ));
    let mut fresh = Session::server(server_config(), now);
    assert!(matches!(
        fresh.send(&text("too early"), &mut out),
        Err(SendError::NotAllowed {
            state: SessionState::Handshake,
            ..
        })
    ));
}

// ---- timers, on a made-up clock ----

#[test]
fn the_handshake_deadline_refuses_a_silent_client() {
    let t0 = Instant::now();
    let mut s = Session::server(server_config().handshake_timeout(Some(MS(500))), t0);
    let mut out = BytesMut::new();
    assert_eq!(s.poll_timeout(), Some(t0 + MS(500)));
    assert_eq!(s.handle_timeout(t0 + MS(499), &mut out), None);
    assert!(out.is_empty());
    let expired = s.handle_timeout(t0 + MS(500), &mut out);
    assert!(
        matches!(&expired, Some(Expired::Handshake(e)) if e.reason.contains("no HELLO")),
        "{expired:?}"
    );
    assert!(
        matches!(&frames(&mut out)[..], [Frame::Close(c)] if c.code == CloseCode::POLICY_VIOLATION)
    );
    assert_eq!(s.state(), SessionState::Closed);
    assert_eq!(s.poll_timeout(), None);
    // A client's deadline for the WELCOME works the same way.
    let mut c = Session::client(
        SessionConfig::default().handshake_timeout(Some(MS(100))),
        t0,
        &mut out,
    );
    frames(&mut out);
    assert!(matches!(
        c.handle_timeout(t0 + MS(100), &mut out),
        Some(Expired::Handshake(_))
    ));
    // The handshake's completion cancels the deadline.
    let (s, _) = open_pair(t0);
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + Duration::from_secs(30)),
        "only the heartbeat is left"
    );
}

/// Drives both sessions through `until`, in steps of `step`, delivering
/// what each writes to the other when `connected`, and returns every frame
/// each side sent and how each ended.
fn run_pair(
    server: &mut Session,
    client: &mut Session,
    t0: Instant,
    until: Duration,
    client_answers: bool,
) -> (Vec<Frame>, Vec<Frame>, Option<Expired>, Option<Expired>) {
    let (mut sent_s, mut sent_c) = (Vec::new(), Vec::new());
    let (mut end_s, mut end_c) = (None, None);
    let mut now = t0;
    while now <= t0 + until && (end_s.is_none() || end_c.is_none()) {
        // Each wakes at its own deadline, as a driver would.
        let next = [server.poll_timeout(), client.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        now = next.max(now);
        let mut from_s = BytesMut::new();
        let mut from_c = BytesMut::new();
        if server.poll_timeout() <= Some(now) && end_s.is_none() {
            end_s = server.handle_timeout(now, &mut from_s);
        }
        if client.poll_timeout() <= Some(now) && end_c.is_none() {
            end_c = client.handle_timeout(now, &mut from_c);
        }
        for f in frames(&mut from_s) {
            sent_s.push(f.clone());
            if client_answers && end_c.is_none() {
                let mut answer = BytesMut::new();
                let _ = client.receive(f, now, &mut answer);
                for a in frames(&mut answer) {
                    sent_c.push(a.clone());
                    let _ = server.receive(a, now, &mut BytesMut::new());
                }
            }
        }
        for f in frames(&mut from_c) {
            sent_c.push(f.clone());
            if client_answers {
                let mut answer = BytesMut::new();
                let _ = server.receive(f, now, &mut answer);
                for a in frames(&mut answer) {
                    sent_s.push(a.clone());
                    let _ = client.receive(a, now, &mut BytesMut::new());
                }
            }
        }
    }
    (sent_s, sent_c, end_s, end_c)
}

#[test]
fn heartbeats_keep_a_responsive_pair_open_for_an_hour() {
    let t0 = Instant::now();
    let (mut s, mut c) = open_pair(t0);
    let (sent_s, _, end_s, end_c) = run_pair(&mut s, &mut c, t0, Duration::from_secs(3600), true);
    assert_eq!(end_s, None);
    assert_eq!(end_c, None);
    assert!(
        sent_s
            .iter()
            .filter(|f| matches!(f, Frame::Ping(_)))
            .count()
            >= 100
    );
    assert_eq!(s.state(), SessionState::Open);
    assert_eq!(c.state(), SessionState::Open);
}

#[test]
fn a_silent_peer_is_pinged_twice_then_given_up_after_three_intervals() {
    let t0 = Instant::now();
    let (mut s, mut c) = open_pair(t0);
    let (sent_s, _, end_s, _) = run_pair(&mut s, &mut c, t0, Duration::from_secs(3600), false);
    assert_eq!(end_s, Some(Expired::Heartbeat(secs(90))));
    assert!(
        matches!(
            &sent_s[..],
            [Frame::Ping(1), Frame::Ping(2), Frame::Close(c)] if c.code == CloseCode::HEARTBEAT_TIMEOUT
        ),
        "{sent_s:?}"
    );
    assert_eq!(s.state(), SessionState::Closed);
    // Any sign of life resets the count.
    let (mut s, _) = open_pair(t0);
    let mut out = BytesMut::new();
    assert_eq!(s.handle_timeout(t0 + secs(30), &mut out), None);
    assert_eq!(frames(&mut out), [Frame::Ping(1)]);
    s.receive(Frame::Pong(1), t0 + secs(59), &mut out).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + secs(89)));
    assert_eq!(s.handle_timeout(t0 + secs(89), &mut out), None);
    assert_eq!(frames(&mut out), [Frame::Ping(2)]);
}

#[test]
fn go_away_closes_by_itself_at_the_drain_deadline() {
    let t0 = Instant::now();
    let (mut s, _) = open_pair(t0);
    let mut s = {
        // A fresh session with a short drain, opened the same way.
        let mut cfg = server_config();
        cfg.drain_timeout = MS(250);
        s.local = std::sync::Arc::new(cfg);
        s
    };
    let mut out = BytesMut::new();
    s.go_away("restarting", t0, &mut out).unwrap();
    assert!(matches!(&frames(&mut out)[..], [Frame::GoAway(_)]));
    assert_eq!(s.poll_timeout(), Some(t0 + MS(250)));
    assert_eq!(
        s.handle_timeout(t0 + MS(250), &mut out),
        Some(Expired::Drained)
    );
    assert!(matches!(&frames(&mut out)[..], [Frame::Close(c)] if c.code == CloseCode::GOING_AWAY));
    assert_eq!(s.state(), SessionState::Closed);
}

/// Bytes are not life: a peer that starts a frame and then trickles it a
/// byte at a time is closed with 1008 at that frame's deadline (the frame
/// timeout plus its claimed length at the minimum rate), whatever it sends
/// meanwhile; heartbeats wait while the frame arrives.
#[test]
fn a_frame_trickled_in_is_cut_at_its_deadline() {
    let t0 = Instant::now();
    let (mut s, _) = open_pair(t0);
    let mut out = BytesMut::new();
    // 30 s base + 262,144 bytes at 256 KiB/s = 31 s, from its first byte.
    s.pending(t0 + secs(5), 1, None);
    for t in (6..36).step_by(5) {
        s.pending(t0 + secs(t), 7 + t as usize, Some(262_144));
    }
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + secs(36)),
        "not the 30 s heartbeat"
    );
    assert_eq!(s.handle_timeout(t0 + secs(35), &mut out), None);
    assert!(out.is_empty(), "no ping while the peer is mid-frame");
    let expired = s.handle_timeout(t0 + secs(36), &mut out);
    assert!(matches!(expired, Some(Expired::Stalled(_))), "{expired:?}");
    assert!(matches!(
        &frames(&mut out)[..],
        [Frame::Close(c)] if c.code == CloseCode::POLICY_VIOLATION && c.reason.contains("262144 bytes")
    ));
    assert_eq!(s.state(), SessionState::Closed);
    // A frame that completes in time resets everything.
    let (mut s, _) = open_pair(t0);
    s.pending(t0 + secs(1), 3, None);
    s.receive(text("finally"), t0 + secs(20), &mut out).unwrap();
    s.pending(t0 + secs(20), 0, None);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(50)), "the heartbeat again");
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[derive(Debug)]
struct Only(&'static [u8]);
impl TokenCheck for Only {
    fn accepts(&self, token: &[u8]) -> bool {
        token == self.0
    }
}

/// A server that checks tokens opens only for a HELLO carrying a good one,
/// and says the same thing whatever was wrong.
#[test]
fn a_token_is_checked_before_the_welcome() {
    let now = Instant::now();
    let check: std::sync::Arc<dyn TokenCheck> = std::sync::Arc::new(Only(b"s3cret"));
    for (token, opens) in [
        (None, false),
        (Some("guess"), false),
        (Some("s3cret"), true),
    ] {
        let mut hello = BytesMut::new();
        let mut config = SessionConfig::default().name("c");
        if let Some(t) = token {
            config = config.auth_token(Some(Bytes::from(t)));
        }
        Session::client(config, now, &mut hello);
        let [hello] = frames(&mut hello).try_into().unwrap();
        let mut server = Session::server(server_config().token_check(Some(check.clone())), now);
        let mut out = BytesMut::new();
        match server.receive(hello, now, &mut out) {
            Ok(Some(SessionEvent::Opened { auth_token, .. })) => {
                assert!(opens, "{token:?} opened");
                assert_eq!(auth_token.as_deref(), Some(&b"s3cret"[..]));
                assert!(matches!(&frames(&mut out)[..], [Frame::Welcome(_)]));
            }
            Err(e) => {
                assert!(!opens, "{token:?} refused");
                assert_eq!(e.code, CloseCode::POLICY_VIOLATION);
                assert_eq!(e.reason, AUTHENTICATION_FAILED);
                assert!(
                    matches!(&frames(&mut out)[..], [Frame::Close(c)] if c.reason == AUTHENTICATION_FAILED)
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_malformed_app_protocol_extension_is_a_protocol_error_where_it_is_read() {
    use crate::protocol::v2::{AppProtocol, Extension};
    let now = Instant::now();
    // Name length 5 but only "kv" follows.
    let broken = Extension::new(Extension::APP_PROTOCOL, Bytes::from_static(b"\x05kv"));
    let hello =
        || Frame::Hello(Hello::new(vec![2], 4096, 0, "x").with_extensions(vec![broken.clone()]));
    let typed = server_config().app_protocol(Some(AppProtocol::new("kv", 1..=1)));
    let mut s = Session::server(typed, now);
    let mut out = BytesMut::new();
    let err = s.receive(hello(), now, &mut out).unwrap_err();
    assert_eq!(err.code, CloseCode::PROTOCOL_ERROR, "{}", err.reason);
    assert!(
        err.reason
            .starts_with("malformed application protocol extension"),
        "{}",
        err.reason
    );
    // A server that speaks no application protocol does not read it.
    let mut s = Session::server(server_config(), now);
    let event = s.receive(hello(), now, &mut out).unwrap();
    assert!(matches!(
        event,
        Some(SessionEvent::Opened { app: None, .. })
    ));
}
