//! The server's memory against peers that claim large frames, with the
//! real server: large frames are admitted against one budget before they
//! are buffered, a HELLO must be small, and buffers shrink back after
//! large frames. Honest clients are served throughout.

mod common;

use common::*;
use rust_tcp::protocol::v2::{CloseCode, Frame, RequestFrame, V2Codec};
use rust_tcp::{Client, ClientConfig};
use std::io::Write;
use std::time::Duration;
use tokio_util::codec::Decoder;

const MIB: usize = 1024 * 1024;

/// A raw v2 connection after its HELLO.
fn raw_v2_sync(server: &ServerProcess, name: &str) -> std::net::TcpStream {
    let mut s = raw_connect(server.addr);
    s.write_all(&encode(&[hello(name)])).unwrap();
    s
}

/// Row "100 connections each claim a 16 MiB frame, send 15 MiB, stall:
/// RSS 1.5 GiB, linear, no bound": scaled to 24 × 8 MiB against a 64 MiB
/// budget, the server stays near the budget, and a request from an honest
/// client is answered meanwhile.
#[test]
fn large_claims_wait_for_the_budget_and_memory_stays_bounded() {
    let server = ServerProcess::start_measured(&[
        "--max-memory",
        &(64 * MIB).to_string(),
        "--max-frame-bytes",
        &(8 * MIB).to_string(),
    ]);
    let before = server.rss_kib();
    let mut stalled = Vec::new();
    for i in 0..24 {
        let mut s = raw_v2_sync(&server, &format!("hog{i}"));
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // BINARY claiming 8 MiB; 7 MiB of it sent (as far as the server
        // lets it: a connection waiting for the budget is not read).
        let mut header = vec![2, 4];
        header.extend_from_slice(&((8 * MIB) as u32).to_be_bytes());
        s.write_all(&header).unwrap();
        let body = vec![b'z'; 7 * MIB];
        let _ = s.write_all(&body);
        stalled.push(s);
    }
    let peak = server.rss_kib();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer = rt.block_on(async {
        let client =
            Client::connect_with(&server.addr_arg(), ClientConfig::default().name("honest"))
                .await
                .unwrap();
        let answer = tokio::time::timeout(PATIENCE, client.request("still served?")).await;
        client.close().await.unwrap();
        answer
    });
    assert_eq!(answer.expect("answered in time").unwrap(), "still served?");
    eprintln!("RSS {before} KiB before, {peak} KiB with 24 stalled 8 MiB claims");
    assert!(
        peak < before + 140 * 1024,
        "RSS grew from {before} to {peak} KiB for a 64 MiB budget"
    );
    drop(stalled);
}

/// Row "20 HELLOs claiming 16 MiB each: 300 MiB buffered before any
/// handshake": a HELLO over 1 KiB is refused from its header, with 1009.
#[test]
fn a_large_hello_is_refused_from_its_header() {
    let server = ServerProcess::start(&[]);
    for _ in 0..20 {
        let mut s = raw_connect(server.addr);
        let mut header = vec![2, 1];
        header.extend_from_slice(&((16 * MIB) as u32).to_be_bytes());
        let reply = send_and_wait_for_close(&mut s, &header);
        let mut buf = bytes::BytesMut::from(&reply[..]);
        let close = V2Codec::default().decode(&mut buf).unwrap();
        assert!(
            matches!(&close, Some(Frame::Close(c)) if c.code == CloseCode::FRAME_TOO_LARGE),
            "{close:?}"
        );
    }
    assert!(server.rss_kib() < 64 * 1024);
}

/// Row "one legitimate 16 MiB request, then the client stays idle: 32 MiB
/// kept for as long as it stays": after an 8 MiB echo, the server's
/// memory goes back down while the client stays connected.
#[test]
fn buffers_shrink_back_after_a_large_frame() {
    let server = ServerProcess::start_measured(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt
        .block_on(Client::connect_with(
            &server.addr_arg(),
            ClientConfig::default().name("bulk"),
        ))
        .unwrap();
    assert_eq!(rt.block_on(client.request("warm up")).unwrap(), "warm up");
    let before = server.rss_kib();
    let big = vec![b'q'; 8 * MIB];
    let echoed = rt.block_on(client.request(big.clone())).unwrap();
    assert_eq!(echoed.len(), big.len());
    // One small round trip more: by then the large frame's buffers are
    // behind every queue.
    assert_eq!(
        rt.block_on(client.request("and now idle")).unwrap(),
        "and now idle"
    );
    let after = server.rss_kib();
    eprintln!("RSS {before} KiB before an 8 MiB echo, {after} KiB after, client idle");
    assert!(
        after < before + 4 * 1024,
        "the idle connection still holds {} KiB",
        after.saturating_sub(before)
    );
    rt.block_on(client.close()).unwrap();
    let _ = RequestFrame::new(0, bytes::Bytes::new());
}

/// Row "one 16 MiB broadcast TEXT, 100 clients that don't read: +1.6 GiB,
/// a copy per receiver": scaled to a 12 MiB message and 20 receivers that
/// never read (the kernel takes a few MiB of it for each; the rest waits in
/// the server), the server holds the message about once, not 20 times.
#[test]
fn a_broadcast_is_held_once_whatever_the_number_of_receivers() {
    let server = ServerProcess::start_measured(&[
        "--broadcast",
        "--max-queued-bytes",
        &(64 * MIB).to_string(),
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Receivers with a tiny receive window, so what they do not read stays
    // queued in the server rather than in the kernel.
    let receivers: Vec<_> = (0..20)
        .map(|i| {
            rt.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.set_recv_buffer_size(4096).unwrap();
                let mut s = socket.connect(server.addr).await.unwrap();
                use tokio::io::AsyncWriteExt;
                let hello = Frame::Hello(rust_tcp::protocol::v2::Hello::new(
                    vec![2],
                    16 * MIB as u32,
                    0,
                    format!("deaf{i}"),
                ));
                s.write_all(&encode(&[hello])).await.unwrap();
                s
            })
        })
        .collect();
    server.wait_for_logs(&["v2 session open"; 20]);
    let before = server.rss_kib();
    let sender = rt
        .block_on(Client::connect_with(
            &server.addr_arg(),
            ClientConfig::default().name("loud"),
        ))
        .unwrap();
    rt.block_on(sender.send_text("m".repeat(12 * MIB))).unwrap();
    // A request after it is answered once the broadcast has been queued
    // for everyone.
    let answer =
        rt.block_on(async { tokio::time::timeout(PATIENCE, sender.request("after")).await });
    assert_eq!(answer.expect("answered in time").unwrap(), "after");
    let after = server.rss_kib();
    eprintln!("RSS {before} KiB before a 12 MiB broadcast to 20 deaf clients, {after} KiB after");
    assert!(
        after < before + 64 * 1024,
        "a 12 MiB broadcast to 20 clients took {} KiB",
        after.saturating_sub(before)
    );
    rt.block_on(sender.close()).unwrap();
    drop(receivers);
}
