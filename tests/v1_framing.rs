//! v1 framing, sans-IO: round trips, every split point, any segmentation.

mod common;

use bytes::BytesMut;
use proptest::prelude::*;
use rust_tcp::protocol::v1::{DecodeError, MessageReader, V1Codec, encode_message};
use tokio_util::codec::Decoder;

fn stream_of(messages: &[String]) -> Vec<u8> {
    let mut b = BytesMut::new();
    for m in messages {
        encode_message(m, &mut b).unwrap();
    }
    b.to_vec()
}

/// Feeds `chunks` in order and collects every message decoded.
fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    let mut r = MessageReader::new();
    let mut out = Vec::new();
    for c in chunks {
        r.feed(c);
        while let Some(m) = r.next_message().unwrap() {
            out.push(m.as_str().to_owned());
        }
    }
    r.finish().expect("stream ends between frames");
    out
}

#[test]
fn every_pair_of_split_points_of_a_multi_frame_stream() {
    let messages: Vec<String> = ["hello", "", "wörld\n", "exit"].map(String::from).to_vec();
    let bytes = stream_of(&messages);
    common::for_every_pair_of_split_points(&bytes, |i, j, chunks| {
        assert_eq!(decode_chunks(chunks), messages, "split at {i} and {j}");
    });
}

#[test]
fn the_largest_and_the_empty_message() {
    let messages = vec!["y".repeat(65535), String::new(), "é".repeat(30000)];
    let bytes = stream_of(&messages);
    assert_eq!(decode_chunks([&bytes[..]]), messages);
    assert_eq!(decode_chunks(bytes.chunks(1000)), messages);
}

#[test]
fn a_cut_stream_is_reported_at_every_cut_inside_a_frame() {
    let bytes = stream_of(&["abc".into(), "defg".into()]);
    let boundaries = [0, 6, bytes.len()];
    for cut in 0..=bytes.len() {
        let mut r = MessageReader::new();
        r.feed(&bytes[..cut]);
        while r.next_message().unwrap().is_some() {}
        let res = r.finish();
        if boundaries.contains(&cut) {
            assert_eq!(res, Ok(()), "cut at {cut}");
        } else {
            assert!(
                matches!(res, Err(DecodeError::Truncated { .. })),
                "cut at {cut}"
            );
        }
    }
}

proptest! {
    #[test]
    fn any_segmentation_yields_the_same_messages(
        messages in prop::collection::vec(".{0,300}", 0..20),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
    ) {
        let bytes = stream_of(&messages);
        let chunks = common::split::cut_at(&bytes, &cuts);
        prop_assert_eq!(decode_chunks(chunks), messages.clone());

        // The codec (what `Framed` uses) agrees with the reader.
        let mut buf = BytesMut::from(&bytes[..]);
        let mut via_codec = Vec::new();
        while let Some(m) = V1Codec.decode_eof(&mut buf).unwrap() {
            via_codec.push(m.as_str().to_owned());
        }
        prop_assert_eq!(via_codec, messages);
    }

    /// Any bytes at all: no panic, and whatever is decoded is exactly what
    /// the bytes said, message by message, from the start.
    #[test]
    fn arbitrary_bytes_decode_faithfully_or_fail_cleanly(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut r = MessageReader::new();
        r.feed(&bytes);
        let mut decoded = Vec::new();
        let failed = loop {
            match r.next_message() {
                Ok(Some(m)) => decoded.push(m.as_str().to_owned()),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        let consumed = stream_of(&decoded);
        prop_assert_eq!(&bytes[..consumed.len()], &consumed[..]);
        if !failed {
            // Whatever was not decoded is an incomplete frame, and only then
            // does the end of the stream count as truncation.
            prop_assert_eq!(r.buffered_len(), bytes.len() - consumed.len());
            prop_assert_eq!(r.finish().is_ok(), r.buffered_len() == 0);
        }
    }
}

#[tokio::test]
async fn the_codec_works_with_framed() {
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;
    let (a, b) = tokio::io::duplex(7); // tiny pipe: frames arrive in pieces
    let mut sender = Framed::new(a, V1Codec);
    let mut receiver = Framed::new(b, V1Codec);
    let send = tokio::spawn(async move {
        for m in ["one", "", "three"] {
            sender.send(m).await.unwrap();
        }
        assert!(sender.send("x".repeat(65536).as_str()).await.is_err());
    });
    let mut got = Vec::new();
    while let Some(m) = receiver.next().await {
        got.push(m.unwrap().as_str().to_owned());
    }
    send.await.unwrap();
    assert_eq!(got, ["one", "", "three"]);
}
