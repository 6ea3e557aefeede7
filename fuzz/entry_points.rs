//! The fuzzers' entry points, shared by the `cargo fuzz` targets
//! (`fuzz/fuzz_targets/`) and by `tests/fuzz_corpus.rs`, which replays the
//! committed corpus through the very same functions on every test run.
//!
//! Each takes arbitrary bytes and checks, besides "never panics", what must
//! hold for any input: decoded frames re-encode to the bytes they came
//! from, and a session that refuses something has said so and ended.

use bytes::BytesMut;
use rust_tcp::protocol::v1::MessageReader;
use rust_tcp::protocol::v2::{
    CLIENT_STREAMS, CallFrame, CallLimits, CallStatus, Frame, ItemFrame, ResumeSettings,
    ResumeToken, SERVER_STREAMS, Session, SessionConfig, SessionEvent, SessionId, SessionState,
    StatusFrame, TokenCheck, V2Codec,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

/// v1: the bytes fed in pieces whose sizes the input also chooses.
pub fn v1_decode(data: &[u8]) {
    let mut reader = MessageReader::new();
    let mut decoded = BytesMut::new();
    let mut rest = data;
    let mut failed = false;
    while !rest.is_empty() && !failed {
        let take = (usize::from(rest[0]) % 17 + 1).min(rest.len());
        reader.feed(&rest[..take]);
        rest = &rest[take..];
        loop {
            match reader.next_message() {
                Ok(Some(m)) => rust_tcp::protocol::v1::encode_message(m.as_str(), &mut decoded)
                    .expect("a decoded message re-encodes"),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
    }
    assert_eq!(&data[..decoded.len()], &decoded[..], "faithful decoding");
}

/// v2: every frame decoded re-encodes to exactly its bytes; the codec
/// never asks for more than the frames it returns.
pub fn v2_codec(data: &[u8]) {
    let mut codec = V2Codec::new(1 << 16, 1 << 16);
    let mut buf = BytesMut::from(data);
    let mut encoded = BytesMut::new();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        frame.encode(&mut encoded);
    }
    assert_eq!(&data[..encoded.len()], &encoded[..], "faithful decoding");
    let _ = codec.decode_eof(&mut buf);
}

/// A server session fed what a client might send.
pub fn v2_session_server(data: &[u8]) {
    v2_session(true, None, false, data)
}

/// A client session fed what a server might send.
pub fn v2_session_client(data: &[u8]) {
    v2_session(false, None, false, data)
}

/// Resumable sessions (spec 3.14), both roles (the first byte's low bit
/// chooses): a server that answers every resume ask, resuming a session it
/// keeps when the ticket names it and opening a new one otherwise; a
/// client that presents a ticket, fed any WELCOME and frames. ACKs, the
/// resume extension's parsers and the replay are all reached.
pub fn v2_resume(data: &[u8]) {
    let as_server = data.first().is_some_and(|b| b & 1 == 0);
    v2_session(as_server, None, true, data)
}

/// The session a fuzzed server keeps and a fuzzed client resumes: id
/// 11…11, token 22…22 (as in the spec's examples).
fn kept_pair(config: &SessionConfig, now: Instant) -> (Session, Session) {
    let mut wire = BytesMut::new();
    let mut client = Session::client(config.clone(), now, &mut wire);
    let mut server = Session::server(config.clone(), now);
    let mut codec = V2Codec::new(u32::MAX, u32::MAX);
    let mut back = BytesMut::new();
    let hello = codec.decode(&mut wire).unwrap().unwrap();
    server.receive(hello, now, &mut back).unwrap();
    let offer = server.take_resume_offer().unwrap();
    let grant = Some((SessionId([0x11; 16]), ResumeToken([0x22; 16])));
    server.open_resumable(offer, grant, None, now, &mut back);
    let welcome = codec.decode(&mut back).unwrap().unwrap();
    client.receive(welcome, now, &mut wire).unwrap();
    // A few frames each way, some acknowledged, so there is a replay.
    for i in 0..3 {
        let _ = server.send(&Frame::Text(format!("s{i}").into()), &mut back);
        let _ = client.send(&Frame::Text(format!("c{i}").into()), &mut wire);
    }
    (server, client)
}

/// The one token the authenticating server below accepts.
#[derive(Debug)]
struct OneToken;

impl TokenCheck for OneToken {
    fn accepts(&self, token: &[u8]) -> bool {
        token == b"s3cret"
    }
}

/// A server session that requires a token (HELLO extension 0x0001), fed
/// what a client might send: the extension parse and the token check.
pub fn v2_hello_auth(data: &[u8]) {
    v2_session(true, Some(Arc::new(OneToken)), false, data)
}

/// The PROXY protocol v2 header a server behind a balancer reads first:
/// the length its fixed part claims, then the whole header, as the server
/// reads them; never a panic, and a header longer than the bound is
/// refused before it is read.
pub fn proxy_header(data: &[u8]) {
    let Some(fixed) = data.get(..16) else {
        return;
    };
    let Ok(total) = rust_tcp::fuzzing::proxy_header_len(fixed) else {
        return;
    };
    assert!(total <= rust_tcp::fuzzing::MAX_PROXY_HEADER);
    if let Some(header) = data.get(..total) {
        let _ = rust_tcp::fuzzing::proxy_header_peer(header);
    }
}

/// A v2 session in one role (the first byte of `data` sets the heartbeat
/// interval), fed whatever frames the rest decodes to, with the clock
/// moved on between them by amounts the input chooses, and the timers
/// driven as a driver would.
fn v2_session(as_server: bool, tokens: Option<Arc<dyn TokenCheck>>, resume: bool, data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut out = BytesMut::new();
    let config = SessionConfig::default()
        .name("fuzz")
        .max_frame_size(1 << 16)
        .heartbeat(Duration::from_millis(u64::from(first) * 100))
        .handshake_timeout(Some(Duration::from_secs(10)))
        .token_check(tokens)
        // Calls (spec 3.13) spoken on both sides, so their rules are
        // fuzzed too: a server with small limits, a client that asks.
        .calls(Some(CallLimits::new(4, 2)))
        .resume(resume.then(|| ResumeSettings::default().replay_max_bytes(4096)));
    let (mut kept, mut session) = match (resume, as_server) {
        (false, true) => (None, Session::server(config, t0)),
        (false, false) => (None, Session::client(config, t0, &mut out)),
        (true, true) => {
            let (mut kept, _) = kept_pair(&config, t0);
            kept.detach();
            (Some(kept), Session::server(config, t0))
        }
        (true, false) => {
            let (_, mut old) = kept_pair(&config, t0);
            old.detach();
            let ticket = old.resume_ticket().expect("resumable");
            (
                Some(old),
                Session::client_resuming(config, ticket, t0, &mut out),
            )
        }
    };
    let mut codec = V2Codec::new(1 << 16, 1 << 16);
    let mut buf = BytesMut::from(rest);
    loop {
        let frame = match codec.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(rust_tcp::protocol::v2::V2CodecError::Frame(e)) => {
                session.receive_invalid(&e, &mut out);
                assert_eq!(session.state(), SessionState::Closed);
                break;
            }
            Err(e) => panic!("decoding from memory cannot fail otherwise: {e}"),
        };
        // The clock moves by the frame's first payload byte, in seconds.
        if let Frame::Text(m) = &frame {
            now += Duration::from_secs(u64::from(m.as_bytes().first().copied().unwrap_or(0)));
        }
        // A driver wakes at each deadline; handling one must move it on,
        // or the driver would spin.
        for _ in 0..8 {
            if session.poll_timeout().is_none_or(|t| t > now) {
                break;
            }
            if session.handle_timeout(now, &mut out).is_some() {
                assert_eq!(session.state(), SessionState::Closed);
            }
        }
        assert!(
            session.poll_timeout().is_none_or(|t| t > now),
            "a deadline that handling does not move"
        );
        if session.state() == SessionState::Closed {
            break;
        }
        let was = session.state();
        match session.receive(frame, now, &mut out) {
            // The server's endpoint answers: the kept session if the
            // ticket resumes it, else a new one told why not.
            Ok(Some(SessionEvent::ResumeAsked(_))) => {
                let offer = session.take_resume_offer().expect("a HELLO waits");
                let resumed = kept.as_mut().map(|k| k.resume_with(&offer, now, &mut out));
                match resumed {
                    Some(Ok(_)) => session = kept.take().expect("resumed"),
                    refused => {
                        let why = refused.and_then(Result::err);
                        let grant = (SessionId([0x33; 16]), ResumeToken([0x44; 16]));
                        session.open_resumable(offer, Some(grant), why, now, &mut out);
                    }
                }
            }
            // The client's old session takes over from the one that
            // carried the handshake.
            Ok(Some(SessionEvent::Resumed { received, .. })) => {
                let mut old = kept
                    .take()
                    .expect("a client that resumed has its old session");
                if old.resumed_by(&session, received, now, &mut out).is_err() {
                    break;
                }
                session = old;
            }
            Ok(_) => {}
            Err(_) => {
                assert_eq!(session.state(), SessionState::Closed, "ended after {was:?}");
                break;
            }
        }
        // Whatever the application might send now is checked, never panics:
        // on the server, a stream's item and a call's end; on the client,
        // a new call and an item of its stream.
        let _ = session.send(&Frame::Ping(1), &mut out);
        let id = u32::from(first) % 4;
        let tries = if as_server {
            [
                Frame::Item(ItemFrame::new(id, "x")),
                Frame::Status(StatusFrame::new(id, CallStatus::Ok, "")),
            ]
        } else {
            let mut call = CallFrame::new(id, "x");
            call.flags = SERVER_STREAMS | CLIENT_STREAMS;
            call.credit = 1;
            [Frame::Call(call), Frame::Item(ItemFrame::new(id, "y"))]
        };
        for frame in tries {
            let _ = session.send(&frame, &mut out);
        }
    }
    // Everything the session wrote is whole, valid frames.
    let mut codec = V2Codec::new(u32::MAX, u32::MAX);
    while codec
        .decode(&mut out)
        .expect("the session writes valid frames")
        .is_some()
    {}
    assert!(out.is_empty(), "only whole frames");
}

/// The WebSocket port's judgement of an HTTP request head (our upgrade
/// parser): never a panic, and every answer's reason on one line, so a
/// peer's bytes can never forge a second line of it.
pub fn websocket_upgrade(data: &[u8]) {
    let verdict = rust_tcp::fuzzing::websocket_upgrade(data);
    assert!(
        !verdict.contains(['\n', '\r']),
        "a one-line answer: {verdict:?}"
    );
}

/// Our WebSocket frame reader on a server, fed what a client might send
/// after the upgrade: never a panic, never more v2 bytes out than came in,
/// and what it carries starts as a v2 frame must.
pub fn websocket_frames(data: &[u8]) {
    let (carried, _) = rust_tcp::fuzzing::websocket_frames(data);
    assert!(carried.len() <= data.len(), "more out than in");
    if let Some(&first) = carried.first() {
        assert_eq!(first, 2, "a message carries a v2 frame");
    }
}

/// A session image as the session store keeps it, and a resume from it
/// (the checks are in `rust_tcp::fuzzing::session_image`).
pub fn session_image(data: &[u8]) {
    rust_tcp::fuzzing::session_image(data)
}
