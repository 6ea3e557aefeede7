//! Limits against a real server: frame sizes, invalid data, the connection
//! limit, and clients that do not read (slow consumers) or vanish.

mod common;

use bytes::Bytes;
use common::*;
use rust_tcp::protocol::v2::{CloseCode, Frame, RequestFrame, SendError};
use rust_tcp::{Client, ClientError, ServerConfig};
use std::io::Write;

#[tokio::test]
async fn frames_over_the_limit_are_refused_on_both_sides() {
    let (collect, mut rx) = Collect::new();
    let config = ServerConfig::default().max_frame_size(1024);
    let server = InProcessServer::start(collect, config).await;

    // The library knows the server's limit from the welcome.
    let client = Client::connect(&server.addr).await.unwrap();
    assert_eq!(client.server_max_frame_size(), 1024);
    assert!(matches!(
        client.send_text("x".repeat(1025)).await,
        Err(ClientError::Refused(SendError::TooLarge {
            len: 1025,
            max: 1024
        }))
    ));
    client.send_text("fits").await.unwrap();
    client.close().await.unwrap();
    assert_eq!(rx.recv().await.unwrap().1, "fits");

    // A peer that ignores the limit is closed with 1009 from the header alone.
    let mut raw = raw_v2(&server.addr, "liar").await;
    use tokio::io::AsyncWriteExt;
    raw.get_mut()
        .write_all(&[2, 3, 0, 0x10, 0, 0])
        .await
        .unwrap();
    match next_frame(&mut raw).await {
        Frame::Close(c) => assert_eq!(c.code, CloseCode::FRAME_TOO_LARGE, "{c}"),
        other => panic!("expected CLOSE, got {other:?}"),
    }
    server.shut_down().await;
}

#[tokio::test]
async fn invalid_utf8_text_closes_only_that_connection() {
    let (collect, mut rx) = Collect::new();
    let server = InProcessServer::start(collect, ServerConfig::default()).await;
    let good = Client::connect_with(&server.addr, named("good"))
        .await
        .unwrap();
    let mut bad = raw_v2(&server.addr, "bad").await;
    use tokio::io::AsyncWriteExt;
    bad.get_mut()
        .write_all(&[2, 3, 0, 0, 0, 2, 0xc3, 0x28])
        .await
        .unwrap();
    match next_frame(&mut bad).await {
        Frame::Close(c) => assert_eq!(c.code, CloseCode::INVALID_DATA, "{c}"),
        other => panic!("expected CLOSE, got {other:?}"),
    }
    good.send_text("unaffected").await.unwrap();
    good.close().await.unwrap();
    assert_eq!(
        rx.recv().await.unwrap(),
        ("good".into(), "unaffected".into())
    );
    server.shut_down().await;
}

/// Past `--max-connections` a new client is not left in the kernel's
/// backlog: it is refused at once with a reason (CLOSE 1016), and served
/// once a slot is free again.
#[test]
fn past_max_connections_new_clients_are_refused_at_once_with_a_reason() {
    let server = ServerProcess::start(&["--max-connections", "1"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let first = rt.block_on(Client::connect(&server.addr_arg())).unwrap();
    let refused = rt
        .block_on(Client::connect(&server.addr_arg()))
        .unwrap_err();
    match refused {
        ClientError::HandshakeRefused(c) => {
            assert_eq!(c.code, CloseCode::SERVER_FULL);
            assert!(
                c.reason.contains("server full (at most 1 connection)"),
                "{c}"
            );
        }
        other => panic!("expected a refusal, got {other}"),
    }
    // The binary says so in one line and fails.
    let out = run_client(&["--addr", &server.addr_arg(), "second"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server full"), "{err}");
    server.wait_for_log("connection refused: server full");
    rt.block_on(first.send_text("first")).unwrap();
    assert_eq!(server.next_output_line(), printed("first"));
    rt.block_on(first.close()).unwrap();
    server.wait_for_log("close handshake complete");
    // Once the first has left, the next is served.
    let out = run_client(&["--addr", &server.addr_arg(), "third"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_output_line(), printed("third"));
}

/// One address cannot take every slot: past `--max-connections-per-ip` its
/// new connections are refused (CLOSE 1008), while another address is
/// served.
#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    use futures::StreamExt;
    let server = ServerProcess::start(&["--max-connections-per-ip", "2"]);
    let from = |ip: &'static str| raw_v2_from(server.addr, ip, hello("from-host"));
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut f = from("127.0.0.2").await;
        assert!(matches!(next_frame(&mut f).await, Frame::Welcome(_)));
        held.push(f);
    }
    let mut third = from("127.0.0.2").await;
    match next_frame(&mut third).await {
        Frame::Close(c) => {
            assert_eq!(c.code, CloseCode::POLICY_VIOLATION);
            assert!(
                c.reason.contains("too many connections from your address"),
                "{c}"
            );
        }
        other => panic!("expected CLOSE, got {other:?}"),
    }
    assert!(third.next().await.is_none(), "then closed");
    let mut other = from("127.0.0.3").await;
    assert!(matches!(next_frame(&mut other).await, Frame::Welcome(_)));
}

/// A client that sends requests but never reads the responses: the server
/// must drop it once its bounded queue is full, and stay small meanwhile.
#[test]
fn a_client_that_never_reads_is_dropped_and_memory_stays_bounded() {
    let server = ServerProcess::start(&["--max-queued-bytes", "1048576"]);
    let mut c = raw_connect(server.addr);
    c.set_write_timeout(Some(PATIENCE)).unwrap();
    c.write_all(&encode(&[hello("mute")])).unwrap();

    let payload = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut sent = 0usize;
    let mut cut_off = false;
    // Up to 512 MiB of requests, each answered with 64 KiB nobody reads.
    for id in 0..8192u32 {
        let mut frame = bytes::BytesMut::new();
        Frame::Request(RequestFrame::new(id, payload.clone())).encode(&mut frame);
        if c.write_all(&frame).is_err() {
            cut_off = true;
            break;
        }
        sent += frame.len();
    }
    assert!(
        cut_off,
        "the server kept a client that never reads ({sent} bytes sent)"
    );
    server.wait_for_log("slow consumer");
    let rss_kib = server.rss_kib();
    eprintln!("cut off after {sent} bytes sent; server RSS {rss_kib} KiB");
    assert!(
        rss_kib < 128 * 1024,
        "server memory {rss_kib} KiB after {sent} bytes of unread responses"
    );
}

/// Pings oblige the server to answer; a client that pings without ever
/// reading the pongs must not be able to grow the server's queue either.
#[test]
fn a_ping_flood_that_never_reads_is_dropped_too() {
    let server = ServerProcess::start(&["--max-queued-bytes", "1048576"]);
    let mut c = raw_connect(server.addr);
    c.set_write_timeout(Some(PATIENCE)).unwrap();
    c.write_all(&encode(&[hello("pinger")])).unwrap();
    let mut pings = bytes::BytesMut::new();
    for n in 0..4096u64 {
        Frame::Ping(n).encode(&mut pings);
    }
    let mut cut_off = false;
    // Up to 4096 × 1024 pings (56 MiB of pongs nobody reads).
    for _ in 0..1024 {
        if c.write_all(&pings).is_err() {
            cut_off = true;
            break;
        }
    }
    assert!(
        cut_off,
        "the server kept answering a client that never reads"
    );
    server.wait_for_log("slow consumer");
    assert!(server.rss_kib() < 128 * 1024);
}

/// Clients that vanish mid-conversation (reset while responses are being
/// written) end only their own connection, without a panic on either the
/// read or the write side.
#[test]
fn clients_that_reset_mid_response_do_not_disturb_the_server() {
    let server = ServerProcess::start(&[]);
    let mut hello_bytes = bytes::BytesMut::new();
    hello("vanisher").encode(&mut hello_bytes);
    let mut requests = bytes::BytesMut::new();
    for id in 0..64u32 {
        Frame::Request(RequestFrame::new(id, Bytes::from(vec![b'y'; 64 * 1024])))
            .encode(&mut requests);
    }
    for _ in 0..50 {
        let mut c = raw_connect(server.addr);
        c.write_all(&hello_bytes).unwrap();
        // Some of the requests go out, then the socket is dropped with the
        // welcome and responses unread, which makes the kernel reset it.
        let _ = c.write_all(&requests[..requests.len() / 2]);
        drop(c);
    }
    let out = run_client(&["--addr", &server.addr_arg(), "after the resets"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_output_line(), printed("after the resets"));
    server.wait_for_log("close handshake complete");
    let log = server.log_so_far();
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
}
