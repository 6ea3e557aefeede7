//! The v2 handshake against a real server: both versions on one port, the
//! frozen version reply, refusals, the handshake deadline, and what comes
//! instead of a HELLO.

mod common;

use common::*;
use rust_tcp::protocol::Message;
use rust_tcp::protocol::unsupported_version_reply;
use rust_tcp::protocol::v2::{CloseCode, CodeReason, Frame};
use rust_tcp::{Client, ServerConfig};
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn a_v1_and_a_v2_client_on_one_server_at_once() {
    let server = ServerProcess::start(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let v2 = rt.block_on(Client::connect(&server.addr_arg())).unwrap();
    let mut v1 = raw_connect(server.addr);
    for i in 0..3 {
        v1.write_all(&v1_frame(format!("v1 says {i}").as_bytes()))
            .unwrap();
        rt.block_on(v2.send_text(format!("v2 says {i}"))).unwrap();
    }
    // Both sessions are open at the same time; now both end properly.
    v1.write_all(&v1_frame(b"exit")).unwrap();
    read_until_closed(&mut v1);
    rt.block_on(v2.close()).unwrap();

    let mut got = server.output_lines(6);
    got.sort();
    let mut want: Vec<String> = (0..3)
        .flat_map(|i| {
            [
                printed(&format!("v1 says {i}")),
                printed(&format!("v2 says {i}")),
            ]
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    // Two connections: their log lines may come in either order.
    server.wait_for_logs(&["client sent exit", "close handshake complete"]);
}

#[test]
fn an_unknown_version_byte_gets_the_frozen_reply() {
    let server = ServerProcess::start(&[]);
    let mut c = raw_connect(server.addr);
    let reply = send_and_wait_for_close(&mut c, &[7, 0, 0]);
    assert_eq!(reply, &unsupported_version_reply(7)[..]);
    let line = server.wait_for_log("unsupported protocol version 7");
    assert!(line.contains(&c.local_addr().unwrap().port().to_string()));

    // Any other byte gets the same layout, and it parses as the spec says.
    let mut c = raw_connect(server.addr);
    let mut raw = Vec::new();
    c.write_all(&[0xff]).unwrap();
    c.read_to_end(&mut raw).unwrap();
    let (versions, reason) = rust_tcp::protocol::parse_unsupported_version_reply(&raw).unwrap();
    assert_eq!(versions, [1, 2]);
    assert!(reason.contains("this server speaks 1 and 2"), "{reason}");
}

#[test]
fn close_or_garbage_instead_of_hello_does_not_disturb_the_server() {
    let server = ServerProcess::start(&[]);
    let frame = |f: Frame| {
        let mut b = bytes::BytesMut::new();
        f.encode(&mut b);
        b.to_vec()
    };
    // CLOSE before HELLO: a frame the state does not allow (spec 3.3,
    // 3.10), answered like any other with CLOSE 1002 saying so.
    let mut early = raw_connect(server.addr);
    let close = frame(Frame::Close(CodeReason::new(
        CloseCode::NORMAL,
        "never mind",
    )));
    assert_eq!(
        send_and_wait_for_close(&mut early, &close),
        frame(Frame::Close(CodeReason::new(
            CloseCode::PROTOCOL_ERROR,
            "expected HELLO first, got Close"
        )))
    );
    // TEXT before HELLO: a protocol error, answered with CLOSE 1002.
    let mut rude = raw_connect(server.addr);
    let reply = send_and_wait_for_close(&mut rude, &frame(Frame::Text(Message::new("hi"))));
    // A CLOSE frame (02 0a), code 1002 (03 ea), then the reason.
    assert_eq!(
        (&reply[..2], &reply[6..8]),
        (&[2u8, 0x0a][..], &[0x03u8, 0xea][..]),
        "{reply:02x?}"
    );
    server.wait_for_log("expected HELLO first");
    // The server is still serving, and nothing panicked along the way.
    let out = run_client(&["--addr", &server.addr_arg(), "still up"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_output_line(), printed("still up"));
    server.wait_for_log("close handshake complete");
    let log = server.log_so_far();
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
}

/// The server judges the HELLO by the protocol's rules even when the peer
/// is not our client (which checks its name before connecting).
#[tokio::test]
async fn a_bad_name_is_refused_with_a_reason() {
    use futures::SinkExt;
    let (collect, _rx) = Collect::new();
    let server = InProcessServer::start(collect, ServerConfig::default()).await;
    for name in ["bad\nname", "", &"n".repeat(65)] {
        let stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        let mut raw = tokio_util::codec::Framed::new(stream, Default::default());
        raw.send(hello(name)).await.unwrap();
        match next_frame(&mut raw).await {
            Frame::Close(CodeReason { code, reason }) => {
                assert_eq!(code, CloseCode::HANDSHAKE_REFUSED);
                assert!(reason.contains("name"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    server.shut_down().await;
}

/// The session's handshake deadline, driven by the server: a peer that
/// picks v2 and then says nothing is told why (CLOSE 1008, a deadline) and
/// dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_sends_its_hello_is_closed_at_the_deadline() {
    let (collect, _rx) = Collect::new();
    let config = ServerConfig::default().handshake_timeout(Duration::from_millis(200));
    let server = InProcessServer::start(collect, config).await;
    let mut c = raw_connect(server.addr.parse().unwrap());
    // The version byte alone: v2 is chosen, the HELLO never completes.
    // (A blocking socket, so off the runtime's threads.)
    let reply = tokio::task::spawn_blocking(move || send_and_wait_for_close(&mut c, &[2, 1]))
        .await
        .unwrap();
    let mut buf = bytes::BytesMut::from(&reply[..]);
    let mut codec = rust_tcp::protocol::v2::V2Codec::default();
    let frame = tokio_util::codec::Decoder::decode(&mut codec, &mut buf).unwrap();
    assert!(
        matches!(&frame, Some(Frame::Close(c)) if c.code == CloseCode::POLICY_VIOLATION && c.reason.contains("no HELLO within 200ms")),
        "{frame:?}"
    );
    // A socket that sends nothing has no version to be answered in: it is
    // closed without a word (spec 3.3).
    let mut silent = raw_connect(server.addr.parse().unwrap());
    let reply = tokio::task::spawn_blocking(move || send_and_wait_for_close(&mut silent, &[]))
        .await
        .unwrap();
    assert!(reply.is_empty(), "{reply:?}");
    server.shut_down().await;
}

#[test]
fn the_client_binary_speaks_v2_by_default() {
    let server = ServerProcess::start(&[]);
    let out = run_client(&["--addr", &server.addr_arg(), "one", "two"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.output_lines(2), [printed("one"), printed("two")]);
    server.wait_for_log("v2 session open");
    server.wait_for_log("close handshake complete");
}
