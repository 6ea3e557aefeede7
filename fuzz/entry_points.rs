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
    CLIENT_STREAMS, CallFrame, CallLimits, CallStatus, Frame, ItemFrame, SERVER_STREAMS, Session,
    SessionConfig, SessionState, StatusFrame, TokenCheck, V2Codec,
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
    v2_session(true, None, data)
}

/// A client session fed what a server might send.
pub fn v2_session_client(data: &[u8]) {
    v2_session(false, None, data)
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
    v2_session(true, Some(Arc::new(OneToken)), data)
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
fn v2_session(as_server: bool, tokens: Option<Arc<dyn TokenCheck>>, data: &[u8]) {
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
        .calls(Some(CallLimits::new(4, 2)));
    let mut session = if as_server {
        Session::server(config, t0)
    } else {
        Session::client(config, t0, &mut out)
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
