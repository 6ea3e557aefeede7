//! Hostile peers, second round, against the real server: a slot attack
//! from many addresses does not lock an honest client out (pending
//! handshakes compete among themselves, sessions are never evicted), and
//! every frame that is legal for its receiver reaches a receiver that
//! reads, however large, while one that does not read is still dropped and
//! the memory it costs stays within the budget.

mod common;

use common::*;
use futures::SinkExt;
use rust_tcp::protocol::v2::{CloseCode, Frame, Hello, RequestFrame, V2Codec};
use rust_tcp::{Client, ClientConfig};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio_util::codec::Framed;

const MIB: usize = 1 << 20;
/// The default (and largest legal) `max_frame`.
const MAX_FRAME: usize = 16 * MIB;

/// A HELLO announcing `max_frame`.
fn hello_with(name: &str, max_frame: usize) -> Frame {
    Frame::Hello(Hello::new(vec![2], max_frame as u32, 0, name))
}

/// Sockets from `from` that connect, say nothing, and reconnect the moment
/// they are cut or refused, until `stop`. Counts the connections made.
async fn silent_reconnector(
    server: std::net::SocketAddr,
    from: &'static str,
    stop: Arc<AtomicBool>,
    made: Arc<AtomicU64>,
) {
    let mut sink = [0u8; 256];
    while !stop.load(Ordering::Relaxed) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let Ok(mut stream) = socket.connect(server).await else {
            tokio::task::yield_now().await;
            continue;
        };
        made.fetch_add(1, Ordering::Relaxed);
        // Held until the server cuts it (or the attack ends).
        loop {
            tokio::select! {
                read = stream.read(&mut sink) => if !matches!(read, Ok(n) if n > 0) { break },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Relaxed) { return }
                }
            }
        }
    }
}

/// One honest session: HELLO, a request answered, CLOSE acknowledged.
async fn honest_round_trip(addr: &str) -> Result<(), String> {
    let client = Client::connect_with(addr, named("honest"))
        .await
        .map_err(|e| e.to_string())?;
    let answer = client.request("ping").await.map_err(|e| e.to_string())?;
    if &answer[..] != b"ping" {
        return Err(format!("wrong answer {answer:?}"));
    }
    client.close().await.map_err(|e| e.to_string())
}

/// The attack of issue 15, scaled to a test: 6 addresses x 150 silent
/// sockets that reconnect at once when cut, against a server whose pending
/// budget (200) they overfill. An honest client from 127.0.0.1 gets a
/// session, a request and a clean close in at least 95 % of 40 tries, and
/// sessions opened before the attack are served all through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_slot_attack_does_not_lock_an_honest_client_out() {
    let server = ServerProcess::start(&[
        "--max-connections",
        "1000",
        "--max-pending-handshakes",
        "200",
        "--handshake-timeout-secs",
        "10",
    ]);
    let addr = server.addr_arg();
    let mut established = Vec::new();
    for i in 0..3 {
        let client = Client::connect_with(&addr, named(&format!("early{i}")))
            .await
            .unwrap();
        established.push(client);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    for from in [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
        "127.0.0.7",
    ] {
        for _ in 0..150 {
            attackers.push(tokio::spawn(silent_reconnector(
                server.addr,
                from,
                stop.clone(),
                made.clone(),
            )));
        }
    }
    // The attack is on once the pending budget has overflowed.
    server.wait_for_log("displaced by a newer connection");

    let tries = 40;
    let mut served = 0;
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..tries {
        let started = Instant::now();
        match tokio::time::timeout(PATIENCE, honest_round_trip(&addr)).await {
            Ok(Ok(())) => served += 1,
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("no answer in time".into()),
        }
        slowest = slowest.max(started.elapsed());
        for (i, client) in established.iter().enumerate() {
            let answer = client.request(format!("early{i}")).await;
            assert_eq!(
                answer.as_deref().ok(),
                Some(format!("early{i}").as_bytes()),
                "an established session stays served: {answer:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.await.unwrap();
    }
    eprintln!(
        "honest: {served}/{tries} served, slowest {slowest:?}; attack sockets: {}; failures: {failures:?}",
        made.load(Ordering::Relaxed)
    );
    assert!(
        served * 100 >= tries * 95,
        "{served}/{tries} honest sessions: {failures:?}"
    );
    for client in established {
        client.close().await.unwrap();
    }
}

/// A group that opens connections faster than its rate is refused at once
/// with the reason (CLOSE 1008), while another address is served.
#[tokio::test]
async fn a_connection_rate_past_the_limit_is_refused_with_the_reason() {
    let server = ServerProcess::start(&["--max-connection-rate-per-ip", "2"]);
    // The bucket holds ten seconds' worth: 20 at once, then 2 a second.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(raw_v2_from(server.addr, "127.0.0.8", hello("fast")).await);
    }
    let mut refused = raw_v2_from(server.addr, "127.0.0.8", hello("fast")).await;
    match next_frame(&mut refused).await {
        Frame::Close(c) => {
            assert_eq!(c.code, CloseCode::POLICY_VIOLATION);
            assert!(
                c.reason
                    .contains("too many new connections from your address (at most 2 per second)"),
                "{c:?}"
            );
        }
        other => panic!("expected CLOSE, got {other:?}"),
    }
    server.wait_for_log("connection refused: too many new connections");
    let mut other = raw_v2_from(server.addr, "127.0.0.9", hello("calm")).await;
    assert!(matches!(next_frame(&mut other).await, Frame::Welcome(_)));
}

/// What a client that announced 16 MiB may be sent: a request of
/// 16,777,215 bytes is echoed as a RESPONSE of 16,777,216, with the
/// default outbound bound of 8 MiB.
#[tokio::test]
async fn a_legal_16_mib_response_reaches_a_client_that_reads() {
    let server = ServerProcess::start(&[]);
    let config = ClientConfig::default()
        .name("big")
        .max_frame_size(MAX_FRAME as u32);
    let client = Client::connect_with(&server.addr_arg(), config)
        .await
        .unwrap();
    // REQUEST payload: id (4) + data; RESPONSE payload: id (4) + status (1) + data.
    let data = vec![0x5a; MAX_FRAME - 5];
    let answer = client.request(data.clone()).await.unwrap();
    assert_eq!(answer.len(), data.len());
    assert!(answer.iter().all(|&b| b == 0x5a));
    client.close().await.unwrap();
    assert!(
        !server
            .log_so_far()
            .iter()
            .any(|l| l.contains("slow consumer")),
        "{:?}",
        server.log_so_far()
    );
}

/// Reads v2 frames from a blocking socket at a modest pace (256 KiB per
/// read, a millisecond between reads); the sizes of the TEXT frames read.
fn read_texts_slowly(stream: &mut std::net::TcpStream, count: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    while sizes.len() < count {
        let mut header = [0u8; 6];
        stream.read_exact(&mut header).unwrap();
        let len = u32::from_be_bytes(header[2..6].try_into().unwrap()) as usize;
        let mut left = len;
        while left > 0 {
            let take = left.min(chunk.len());
            let n = stream.read(&mut chunk[..take]).unwrap();
            assert!(n > 0, "closed inside a frame");
            left -= n;
            std::thread::sleep(Duration::from_millis(1));
        }
        if header[1] == 3 {
            sizes.push(len);
        }
    }
    sizes
}

/// 50 clients that read slowly, but read, each get every 16 MiB broadcast
/// (a payload of exactly the `max_frame` they announced, twice the
/// default outbound bound), the next one sent once the last has arrived.
#[test]
fn slow_readers_get_every_16_mib_broadcast() {
    let server = ServerProcess::start_measured(&["--broadcast"]);
    let receivers: Vec<_> = (0..50)
        .map(|i| {
            let mut s = raw_connect(server.addr);
            s.write_all(&encode(&[hello_with(&format!("r{i}"), MAX_FRAME)]))
                .unwrap();
            // The WELCOME.
            let mut welcome = [0u8; 6];
            s.read_exact(&mut welcome).unwrap();
            let mut rest =
                vec![0u8; u32::from_be_bytes(welcome[2..6].try_into().unwrap()) as usize];
            s.read_exact(&mut rest).unwrap();
            s
        })
        .collect();
    server.wait_for_logs(&["v2 session open"; 50]);
    let mut sender = raw_connect(server.addr);
    sender
        .write_all(&encode(&[hello_with("s", MAX_FRAME)]))
        .unwrap();
    // Relayed as "s: TEXT": exactly MAX_FRAME bytes of payload.
    let text = "x".repeat(MAX_FRAME - "s: ".len());
    let (tx, rx) = std::sync::mpsc::channel();
    let readers: Vec<_> = receivers
        .into_iter()
        .map(|mut s| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut sizes = Vec::new();
                for _ in 0..2 {
                    sizes.extend(read_texts_slowly(&mut s, 1));
                    tx.send(()).unwrap();
                }
                sizes
            })
        })
        .collect();
    for round in 0..2 {
        let frame = Frame::Text(text.as_str().into());
        sender.write_all(&encode(&[frame])).unwrap();
        for _ in 0..50 {
            rx.recv_timeout(PATIENCE * 3)
                .unwrap_or_else(|_| panic!("broadcast {round} not received by all"));
        }
    }
    for r in readers {
        assert_eq!(r.join().unwrap(), vec![MAX_FRAME; 2]);
    }
    assert!(
        !server
            .log_so_far()
            .iter()
            .any(|l| l.contains("slow consumer")),
        "no reader was dropped"
    );
}

/// A client that sends 16 MiB requests and reads nothing is still dropped
/// as a slow consumer once answers pile up behind the first; and the
/// memory that 12 such clients cost stays within the budget (the echoed
/// payloads keep the budget they were read with), not 12 x 16 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_read_nothing_are_dropped_and_bounded_by_the_budget() {
    let budget = 64 * MIB;
    let server = ServerProcess::start_measured(&["--max-memory", &budget.to_string()]);
    let data = bytes::Bytes::from(vec![1u8; MAX_FRAME - 5]);
    let request = move |id| Frame::Request(RequestFrame::new(id, data.clone()));

    // One client asks three times and never reads: dropped.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut framed = Framed::new(stream, V2Codec::new(MAX_FRAME as u32, MAX_FRAME as u32));
    framed.send(hello_with("deaf", MAX_FRAME)).await.unwrap();
    for id in 1..=3 {
        // The server may drop it while the third is still being sent.
        if framed.send(request(id)).await.is_err() {
            break;
        }
    }
    server.wait_for_log("(slow consumer)");
    drop(framed);

    // Twelve ask once each and never read.
    let mut deaf = Vec::new();
    for i in 0..12 {
        let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut framed = Framed::new(stream, V2Codec::new(MAX_FRAME as u32, MAX_FRAME as u32));
        framed
            .send(hello_with(&format!("deaf{i}"), MAX_FRAME))
            .await
            .unwrap();
        let first = request(1);
        let sending = tokio::spawn(async move {
            let _ = framed.send(first).await;
            framed
        });
        deaf.push(sending);
    }
    // Three of them fit in the budget (16 MiB and a header each); the rest
    // wait unread (TCP pushes back). Let them all get as far as they can: the budget's gauge is
    // full, and every connection's request has been offered.
    server.wait_for_logs(&["v2 session open"; 12]);
    let until = Instant::now() + PATIENCE;
    while deaf.iter().filter(|t| t.is_finished()).count() < 3 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = server.peak_rss_kib() as usize * 1024;
    eprintln!(
        "server peak RSS with 12 deaf 16 MiB clients: {} MiB (budget {} MiB)",
        held / MIB,
        budget / MIB
    );
    assert!(
        held < budget + 48 * MIB,
        "peak RSS {} MiB for a budget of {} MiB: 12 x 16 MiB were held",
        held / MIB,
        budget / MIB
    );
    for d in deaf {
        d.abort();
    }
    // Still serving others.
    let client = Client::connect(&server.addr_arg()).await.unwrap();
    assert_eq!(&client.request("ok").await.unwrap()[..], b"ok");
}

/// Spec 3.7: a broadcast larger than one receiver's `max_frame` is skipped
/// for that receiver alone (the others get it), counted in
/// `rust_tcp_frames_too_large_for_peer_total`, and said in a log line.
#[tokio::test]
async fn a_broadcast_too_large_for_one_receiver_is_skipped_counted_and_logged() {
    let port = free_port();
    let server = ServerProcess::start(&[
        "--broadcast",
        "--metrics-addr",
        &format!("127.0.0.1:{port}"),
    ]);
    let mut small = raw_v2_from(server.addr, "127.0.0.1", hello_with("small", 1024)).await;
    assert!(matches!(next_frame(&mut small).await, Frame::Welcome(_)));
    let mut big = raw_v2_from(server.addr, "127.0.0.1", hello_with("big", MAX_FRAME)).await;
    assert!(matches!(next_frame(&mut big).await, Frame::Welcome(_)));
    let mut sender = raw_v2_from(server.addr, "127.0.0.1", hello_with("s", MAX_FRAME)).await;
    assert!(matches!(next_frame(&mut sender).await, Frame::Welcome(_)));
    let long = "y".repeat(2000);
    sender
        .send(Frame::Text(long.as_str().into()))
        .await
        .unwrap();
    sender.send(Frame::Text("short".into())).await.unwrap();
    match next_frame(&mut big).await {
        Frame::Text(m) => assert_eq!(m.as_str(), format!("s: {long}")),
        other => panic!("{other:?}"),
    }
    // The small receiver gets the next broadcast, not the one it cannot take.
    match next_frame(&mut small).await {
        Frame::Text(m) => assert_eq!(m.as_str(), "s: short"),
        other => panic!("{other:?}"),
    }
    let line = server.wait_for_log("not sent to this client");
    assert!(line.contains("2003 bytes exceeds"), "{line}");
    let scraped = scrape_metrics(port);
    assert!(
        scraped.contains("rust_tcp_frames_too_large_for_peer_total 1"),
        "{scraped}"
    );
}
