//! The hex examples in docs/PROTOCOL.md, checked against the code byte for
//! byte, so the specification and the implementation cannot drift apart.

mod common;

use bytes::BytesMut;
use common::ServerProcess;
use rust_tcp::protocol::unsupported_version_reply;
use rust_tcp::protocol::v1::MessageReader;
use rust_tcp::protocol::v2::{Frame, V2Codec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

/// Every ```hex KIND block of the spec, as bytes, in document order.
fn spec_blocks(kind: &str) -> Vec<Vec<u8>> {
    let spec = include_str!("../docs/PROTOCOL.md");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in spec.lines() {
        match &mut current {
            None if line.trim() == format!("```hex {kind}") => current = Some(Vec::new()),
            None => {}
            Some(_) if line.trim() == "```" => blocks.push(current.take().unwrap()),
            Some(bytes) => {
                let data = line.split('#').next().unwrap();
                for h in data.split_whitespace() {
                    bytes.push(u8::from_str_radix(h, 16).expect("hex byte in the spec"));
                }
            }
        }
    }
    assert!(!blocks.is_empty(), "the spec has ```hex {kind} blocks");
    blocks
}

fn decode_all(bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut codec = V2Codec::default();
    let mut frames = Vec::new();
    while let Some(f) = codec.decode_eof(&mut buf).expect("spec bytes decode") {
        frames.push(f);
    }
    frames
}

#[test]
fn every_frame_example_decodes_and_encodes_back_to_the_same_bytes() {
    for bytes in spec_blocks("frame") {
        let frames = decode_all(&bytes);
        assert_eq!(frames.len(), 1, "one frame per example: {bytes:02x?}");
        let mut again = BytesMut::new();
        V2Codec::default().encode(&frames[0], &mut again).unwrap();
        assert_eq!(&again[..], &bytes[..], "{:?}", frames[0]);
    }
}

#[test]
fn the_v1_example_is_hello() {
    let mut r = MessageReader::new();
    r.feed(&spec_blocks("v1")[0]);
    assert_eq!(r.next_message().unwrap().unwrap().as_str(), "hello");
    assert_eq!(r.finish(), Ok(()));
}

#[test]
fn the_unsupported_version_example_is_what_the_server_sends() {
    assert_eq!(
        &unsupported_version_reply(7)[..],
        &spec_blocks("reply")[0][..]
    );
}

/// Plays the spec's client side of a whole session to a real server and
/// expects exactly the spec's server side back, then the server's close.
#[tokio::test]
async fn the_whole_session_example_against_a_real_server() {
    let client_bytes: Vec<u8> = spec_blocks("client").concat();
    let server_bytes: Vec<u8> = spec_blocks("server").concat();
    // The real server binary, with its default settings.
    let server = ServerProcess::start(&[]);
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&client_bytes).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(common::PATIENCE, s.read_to_end(&mut got))
        .await
        .expect("the server closes after the close handshake")
        .unwrap();
    assert_eq!(
        got, server_bytes,
        "\n got: {got:02x?}\nwant: {server_bytes:02x?}"
    );
    let (status, printed) = server.stop_and_collect_output("TERM");
    assert!(status.success());
    assert_eq!(
        printed,
        ["Message: \"hi\""],
        "exactly the one text, printed"
    );
}
