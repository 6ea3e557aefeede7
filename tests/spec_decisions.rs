//! Rules of docs/PROTOCOL.md that need more than one connection, a signal
//! or an application of their own, so they are not conformance cases (the
//! rest are: docs/conformance/v2.json, tests/conformance.rs).

mod common;

use bytes::Bytes;
use common::*;
use futures::SinkExt;
use rust_tcp::protocol::v2::{CloseCode, Frame, RequestFrame};
use rust_tcp::{Handler, Message, PeerInfo, Responder, ServerConfig, Service};
use std::io::Read;
use std::time::Duration;

/// Spec 3.5/3.9: a REQUEST that arrives after GOAWAY, before the drain
/// ends, is answered like any other.
#[tokio::test]
async fn a_request_after_goaway_is_answered() {
    let (collect, _rx) = Collect::new();
    let config = ServerConfig::default().shutdown_grace(Duration::from_secs(20));
    let server = InProcessServer::start(collect, config).await;
    let mut raw = raw_v2(&server.addr, "late").await;
    server.stop.cancel();
    assert!(matches!(next_frame(&mut raw).await, Frame::GoAway(_)));
    raw.send(Frame::Request(RequestFrame::new(
        5,
        Bytes::from_static(b"anyway"),
    )))
    .await
    .unwrap();
    match next_frame(&mut raw).await {
        Frame::Response(r) => {
            assert_eq!(r.id, 5);
            assert_eq!(r.result.as_deref(), Ok(&b"anyway"[..]));
        }
        other => panic!("expected a RESPONSE, got {other:?}"),
    }
}

/// Spec 3.9: a server shutting down accepts no new connections: its
/// listener is gone, so a connect is refused by the system.
#[test]
fn a_server_shutting_down_refuses_new_connections() {
    let server = ServerProcess::start(&["--broadcast", "--shutdown-grace-secs", "20"]);
    let addr = server.addr;
    let _chat = ChatProcess::start_with(&server, "stays", &["--no-reconnect"]);
    server.signal("TERM");
    server.wait_for_log("stopped accepting");
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

/// Spec 3.12: a newcomer refused because every slot is a session gets
/// CLOSE 1016 once its first byte shows v2, and a silent one is reset
/// without a word within about a second.
#[test]
fn a_refused_newcomer_hears_1016_or_nothing() {
    let server = ServerProcess::start(&["--max-connections", "1", "--broadcast"]);
    let _holder = ChatProcess::start(&server, "holder");
    let mut v2 = raw_connect(server.addr);
    let reply = send_and_wait_for_close(&mut v2, &encode(&[hello("late")]));
    let mut buf = bytes::BytesMut::from(&reply[..]);
    let frame = tokio_util::codec::Decoder::decode(
        &mut rust_tcp::protocol::v2::V2Codec::default(),
        &mut buf,
    )
    .unwrap();
    assert!(
        matches!(&frame, Some(Frame::Close(c)) if c.code == CloseCode::SERVER_FULL),
        "{frame:?}"
    );
    let mut silent = raw_connect(server.addr);
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    match silent.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    assert!(got.is_empty(), "{got:?}");
}

/// Hands every request's responder to the test (through a channel), so the
/// test decides when, and whether, it is answered.
struct Held(tokio::sync::mpsc::UnboundedSender<Responder>);
struct HeldHandler(tokio::sync::mpsc::UnboundedSender<Responder>);
impl Service for Held {
    type Handler = HeldHandler;
    fn connect(&self, _: &PeerInfo) -> HeldHandler {
        HeldHandler(self.0.clone())
    }
}
impl Handler for HeldHandler {
    async fn on_text(&mut self, _: Message) {}
    async fn on_request(&mut self, _: Bytes, responder: Responder) {
        let _ = self.0.send(responder);
    }
}

/// Spec 3.5, ordering: a PONG is sent when the PING arrives, so it may
/// overtake the RESPONSE to a request sent before the PING; the RESPONSE
/// still comes, and the close acknowledgement only after it.
#[tokio::test]
async fn a_pong_may_overtake_earlier_responses_but_the_close_ack_may_not() {
    let (tx, mut held) = tokio::sync::mpsc::unbounded_channel();
    let server = InProcessServer::start(Held(tx), ServerConfig::default()).await;
    let mut raw = raw_v2(&server.addr, "order").await;
    raw.send(Frame::Request(RequestFrame::new(
        1,
        Bytes::from_static(b"slow"),
    )))
    .await
    .unwrap();
    raw.send(Frame::Ping(9)).await.unwrap();
    assert_eq!(next_frame(&mut raw).await, Frame::Pong(9), "the PONG first");
    raw.send(Frame::Close(rust_tcp::protocol::v2::CodeReason::new(
        CloseCode::NORMAL,
        "bye",
    )))
    .await
    .unwrap();
    let responder = held.recv().await.unwrap();
    responder.respond("done").unwrap();
    match next_frame(&mut raw).await {
        Frame::Response(r) => assert_eq!(r.id, 1),
        other => panic!("the RESPONSE before the acknowledgement, got {other:?}"),
    }
    assert!(matches!(next_frame(&mut raw).await, Frame::Close(c) if c.code == CloseCode::NORMAL));
    server.shut_down().await;
}
