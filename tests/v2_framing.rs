//! v2 framing, sans-IO: every frame type round-trips through any
//! segmentation, and every split point of a session stream decodes.

mod common;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rust_tcp::protocol::Message;
use rust_tcp::protocol::v2::{
    CloseCode, CodeReason, Extension, Frame, FrameError, Hello, RequestFrame, ResponseFrame,
    V2Codec, V2CodecError, Welcome,
};
use tokio_util::codec::{Decoder, Encoder};

fn any_frame() -> impl Strategy<Value = Frame> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from);
    let text = || ".{0,60}";
    let code_reason = || (any::<u16>(), text()).prop_map(|(c, r)| CodeReason::new(CloseCode(c), r));
    prop_oneof![
        (
            prop::collection::vec(any::<u8>(), 0..4),
            any::<u32>(),
            any::<u32>(),
            ".{0,20}",
            prop::collection::vec((any::<u16>(), bytes()), 0..3),
        )
            .prop_map(
                |(versions, max_frame_size, heartbeat_ms, name, extensions)| Frame::Hello(
                    Hello::new(versions, max_frame_size, heartbeat_ms, name).with_extensions(
                        extensions
                            .into_iter()
                            .map(|(kind, data)| Extension::new(kind, data))
                            .collect()
                    )
                )
            ),
        (any::<u8>(), any::<u32>(), any::<u32>(), ".{0,20}").prop_map(
            |(version, max_frame_size, heartbeat_ms, server_name)| Frame::Welcome(Welcome::new(
                version,
                max_frame_size,
                heartbeat_ms,
                server_name
            ))
        ),
        text().prop_map(|t| Frame::Text(Message::new(t))),
        bytes().prop_map(Frame::Binary),
        (any::<u32>(), bytes())
            .prop_map(|(id, payload)| Frame::Request(RequestFrame::new(id, payload))),
        (any::<u32>(), bytes()).prop_map(|(id, b)| Frame::Response(ResponseFrame::new(id, Ok(b)))),
        (any::<u32>(), text()).prop_map(|(id, r)| Frame::Response(ResponseFrame::new(id, Err(r)))),
        any::<u64>().prop_map(Frame::Ping),
        any::<u64>().prop_map(Frame::Pong),
        code_reason().prop_map(Frame::Error),
        code_reason().prop_map(Frame::Close),
        code_reason().prop_map(Frame::GoAway),
    ]
}

fn encode_all(frames: &[Frame]) -> Vec<u8> {
    let mut b = BytesMut::new();
    for f in frames {
        V2Codec::default().encode(f, &mut b).unwrap();
    }
    b.to_vec()
}

/// Feeds `chunks` one at a time, as reads from a socket would.
fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Frame> {
    let mut codec = V2Codec::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            out.push(f);
        }
    }
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    out
}

proptest! {
    #[test]
    fn every_frame_type_survives_any_segmentation(
        frames in prop::collection::vec(any_frame(), 1..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let bytes = encode_all(&frames);
        let chunks = common::split::cut_at(&bytes, &cuts);
        prop_assert_eq!(decode_chunks(chunks), frames);
    }

    #[test]
    /// Any bytes at all: no panic, and every frame decoded re-encodes to
    /// exactly the bytes it came from.
    fn arbitrary_bytes_decode_faithfully_or_fail_cleanly(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut codec = V2Codec::new(1 << 20, 1 << 20);
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoded = Vec::new();
        let failed = loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => decoded.push(f),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        let consumed = encode_all(&decoded);
        prop_assert_eq!(&bytes[..consumed.len()], &consumed[..]);
        if !failed {
            prop_assert_eq!(buf.len(), bytes.len() - consumed.len());
            prop_assert_eq!(codec.decode_eof(&mut buf).is_ok(), buf.is_empty());
        }
    }
}

#[test]
fn every_pair_of_split_points_of_a_session_stream() {
    let frames = vec![
        Frame::Hello(Hello::new(vec![2], 4096, 0, "alice")),
        Frame::Text(Message::new("hi")),
        Frame::Request(RequestFrame::new(1, Bytes::from_static(b"ping"))),
        Frame::Ping(7),
        Frame::Close(CodeReason::new(CloseCode::NORMAL, "bye")),
    ];
    let bytes = encode_all(&frames);
    common::for_every_pair_of_split_points(&bytes, |i, j, chunks| {
        assert_eq!(decode_chunks(chunks), frames, "split at {i} and {j}");
    });
}

#[test]
fn a_cut_stream_is_truncation_at_every_cut_inside_a_frame() {
    let frames = vec![Frame::Text(Message::new("abc")), Frame::Ping(1)];
    let bytes = encode_all(&frames);
    let boundaries = [0, 9, bytes.len()];
    for cut in 0..=bytes.len() {
        let mut codec = V2Codec::default();
        let mut buf = BytesMut::from(&bytes[..cut]);
        while codec.decode(&mut buf).unwrap().is_some() {}
        let end = codec.decode_eof(&mut buf);
        if boundaries.contains(&cut) {
            assert!(matches!(end, Ok(None)), "cut at {cut}");
        } else {
            assert!(
                matches!(end, Err(V2CodecError::Frame(FrameError::Truncated { .. }))),
                "cut at {cut}: {end:?}"
            );
        }
    }
}

proptest! {
    /// Whatever well-formed frames a peer sends, in whatever order, the
    /// session never panics, never hands an application an event its role
    /// cannot receive, and after the end accepts nothing more.
    #[test]
    fn arbitrary_frame_sequences_keep_the_session_rules(
        frames in prop::collection::vec(any_frame(), 0..30),
        as_server in any::<bool>(),
    ) {
        use rust_tcp::protocol::v2::{Session, SessionConfig, SessionEvent, SessionState};
        let now = std::time::Instant::now();
        let config = SessionConfig::default().name("me").max_frame_size(1 << 20);
        let mut out = BytesMut::new();
        let mut session = if as_server {
            Session::server(config.heartbeat(std::time::Duration::from_secs(1)), now)
        } else {
            Session::client(config, now, &mut out)
        };
        for f in frames {
            let was = session.state();
            out.clear();
            match session.receive(f, now, &mut out) {
                Ok(event) => {
                    prop_assert!(was != SessionState::Closed && was != SessionState::PeerClosing);
                    let wrong_role = match event {
                        Some(SessionEvent::Request(_)) => !as_server,
                        Some(SessionEvent::Response(_) | SessionEvent::GoAway(_)) => as_server,
                        _ => false,
                    };
                    prop_assert!(!wrong_role, "{:?}", event);
                }
                Err(e) => {
                    // The session has said why, with the error's code,
                    // unless our CLOSE had already gone out.
                    prop_assert_eq!(session.state(), SessionState::Closed);
                    let said = V2Codec::default().decode(&mut out).unwrap();
                    if was == SessionState::Closing || was == SessionState::Closed {
                        prop_assert_eq!(said, None);
                    } else {
                        prop_assert!(
                            matches!(said, Some(Frame::Close(ref c)) if c.code == e.code),
                            "{:?}", said
                        );
                    }
                    break;
                }
            }
            // Whatever the session answers decodes as whole frames.
            let mut codec = V2Codec::default();
            while codec.decode(&mut out).unwrap().is_some() {}
            prop_assert!(out.is_empty());
        }
    }
}
