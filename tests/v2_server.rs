//! Protocol v2 against a real server over TCP: both versions on one port,
//! the frozen version reply, requests in any order, the close handshake,
//! go-away, limits, heartbeats and slow consumers.

mod common;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use rust_tcp::protocol::Message;
use rust_tcp::protocol::unsupported_version_reply;
use rust_tcp::protocol::v2::{CloseCode, CodeReason, Frame, Hello, RequestFrame, V2Codec};
use rust_tcp::service::{
    Client, ClientConfig, ClientError, Handler, PeerInfo, Pushed, Responder, ServerConfig, Service,
};
use std::io::{Read, Write};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

fn hello(name: &str) -> Frame {
    Frame::Hello(Hello {
        versions: vec![2],
        max_frame_size: 1 << 20,
        heartbeat_ms: 0,
        name: name.into(),
    })
}

/// A raw frame-level v2 conversation, after a successful handshake.
async fn raw_v2(addr: &str, name: &str) -> Framed<TcpStream, V2Codec> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(stream, V2Codec::default());
    framed.send(hello(name)).await.unwrap();
    let welcome = next_frame(&mut framed).await;
    assert!(matches!(welcome, Frame::Welcome(_)), "{welcome:?}");
    framed
}

async fn next_frame(framed: &mut Framed<TcpStream, V2Codec>) -> Frame {
    tokio::time::timeout(PATIENCE, framed.next())
        .await
        .expect("a frame in time")
        .expect("connection open")
        .expect("a valid frame")
}

fn named(name: &str) -> ClientConfig {
    ClientConfig {
        name: name.into(),
        ..ClientConfig::default()
    }
}

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
    server.wait_for_log("client sent exit");
    server.wait_for_log("close handshake complete");
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

/// Holds responders until `batch` requests have arrived, then answers them
/// in reverse order of arrival, and reports (arrival order, answer order).
struct Reverse {
    batch: usize,
    answered: mpsc::UnboundedSender<(Vec<u32>, Vec<u32>)>,
}
struct ReverseHandler {
    batch: usize,
    held: Vec<(Bytes, Responder)>,
    answered: mpsc::UnboundedSender<(Vec<u32>, Vec<u32>)>,
}
impl Service for Reverse {
    type Handler = ReverseHandler;
    fn connect(&self, _: &PeerInfo) -> ReverseHandler {
        ReverseHandler {
            batch: self.batch,
            held: Vec::new(),
            answered: self.answered.clone(),
        }
    }
}
impl Handler for ReverseHandler {
    async fn on_text(&mut self, _: Message) {}
    async fn on_request(&mut self, payload: Bytes, responder: Responder) {
        self.held.push((payload, responder));
        if self.held.len() == self.batch {
            let arrival = self.held.iter().map(|(_, r)| r.id()).collect();
            let mut order = Vec::new();
            while let Some((payload, responder)) = self.held.pop() {
                order.push(responder.id());
                let answer = format!("answer to {}", String::from_utf8_lossy(&payload));
                responder.respond(answer).unwrap();
            }
            let _ = self.answered.send((arrival, order));
        }
    }
}

#[tokio::test]
async fn requests_answered_out_of_order_reach_the_right_caller() {
    let (tx, mut answered) = mpsc::unbounded_channel();
    let server = InProcessServer::start(
        Reverse {
            batch: 16,
            answered: tx,
        },
        ServerConfig::default(),
    )
    .await;
    let client = Client::connect(&server.addr).await.unwrap();
    let callers: Vec<_> = (0..16)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let r = client.request(format!("q{i}")).await.unwrap();
                assert_eq!(r, format!("answer to q{i}"));
            })
        })
        .collect();
    for c in callers {
        c.await.unwrap();
    }
    // Each caller got its own answer (asserted above) although the server
    // answered in exactly the reverse of the order the requests arrived.
    let (mut arrival, order) = answered.recv().await.unwrap();
    assert_ne!(arrival, order);
    arrival.reverse();
    assert_eq!(arrival, order);
    client.close().await.unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn the_close_handshake_loses_no_message() {
    let (collect, mut rx) = Collect::new();
    let server = InProcessServer::start(collect, ServerConfig::default()).await;
    let client = Client::connect_with(&server.addr, named("bulk"))
        .await
        .unwrap();
    for i in 0..10_000 {
        client.send_text(format!("m{i}")).await.unwrap();
    }
    client.close().await.unwrap();
    // The acknowledgement came after the server processed everything before
    // the CLOSE, so all 10,000 are already there.
    for i in 0..10_000 {
        let (from, text) = rx
            .try_recv()
            .expect("processed before the close was acknowledged");
        assert_eq!((from.as_str(), text), ("bulk", format!("m{i}")));
    }
    assert!(rx.try_recv().is_err());
    server.shut_down().await;
}

#[test]
fn the_close_handshake_loses_no_message_through_the_binaries() {
    let server = ServerProcess::start(&[]);
    let input: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
    let out = run_client(&["--addr", &server.addr_arg()], Some(input.as_bytes()));
    assert!(out.status.success(), "{out:?}");
    let want: Vec<_> = (0..10_000).map(|i| printed(&format!("line {i}"))).collect();
    assert_eq!(server.output_lines(10_000), want);
}

#[test]
fn the_request_subcommand_prints_each_response() {
    let server = ServerProcess::start(&[]);
    let out = run_client(
        &[
            "--addr",
            &server.addr_arg(),
            "request",
            "first",
            "second one",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "first\nsecond one\n"
    );
}

#[test]
fn two_chat_clients_see_each_others_messages() {
    let server = ServerProcess::start(&["--broadcast"]);
    let alice = ChatProcess::start(&server, "alice");
    let bob = ChatProcess::start(&server, "bob");
    alice.say("hello bob");
    assert_eq!(bob.next_line(), "alice: hello bob");
    bob.say("hi alice");
    assert_eq!(alice.next_line(), "bob: hi alice");
    // Both print what they send on the server as well.
    let mut got = server.output_lines(2);
    got.sort();
    assert_eq!(got, [printed("hello bob"), printed("hi alice")]);
    assert!(alice.finish().success());
    assert!(bob.finish().success());
}

struct ChatProcess {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ChatProcess {
    fn start(server: &ServerProcess, name: &str) -> Self {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_client"))
            .args(["--addr", &server.addr_arg(), "--name", name, "chat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        // It is in the room once the server has opened its session.
        server.wait_for_log(&format!("name={name}"));
        ChatProcess {
            child,
            stdin,
            lines,
        }
    }

    fn say(&self, text: &str) {
        let mut stdin = self.stdin.as_ref().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("a chat line in time")
    }

    fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }
}

/// A client that sends requests but never reads the responses: the server
/// must drop it once its bounded queue is full, and stay small meanwhile.
#[test]
fn a_client_that_never_reads_is_dropped_and_memory_stays_bounded() {
    let server = ServerProcess::start(&["--max-queued-bytes", "1048576"]);
    let mut c = raw_connect(server.addr);
    c.set_write_timeout(Some(PATIENCE)).unwrap();
    let mut bytes = bytes::BytesMut::new();
    hello("mute").encode(&mut bytes);
    c.write_all(&bytes).unwrap();

    let payload = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut sent = 0usize;
    let mut cut_off = false;
    // Up to 512 MiB of requests, each answered with 64 KiB nobody reads.
    for id in 0..8192u32 {
        let mut frame = bytes::BytesMut::new();
        Frame::Request(RequestFrame {
            id,
            payload: payload.clone(),
        })
        .encode(&mut frame);
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

#[tokio::test]
async fn go_away_lets_clients_finish_and_close() {
    let (collect, _rx) = Collect::new();
    let config = ServerConfig {
        shutdown_grace: Duration::from_secs(20),
        ..ServerConfig::default()
    };
    let server = InProcessServer::start(collect, config).await;
    let client = Client::connect(&server.addr).await.unwrap();
    let mut incoming = client.incoming().unwrap();
    assert_eq!(client.request("before").await.unwrap(), "before");
    server.stop.cancel();
    let pushed = tokio::time::timeout(PATIENCE, incoming.recv())
        .await
        .unwrap();
    assert!(
        matches!(pushed, Some(Pushed::GoAway(ref g)) if g.code == CloseCode::GOING_AWAY),
        "{pushed:?}"
    );
    assert!(matches!(
        client.request("after").await,
        Err(ClientError::GoingAway)
    ));
    client.send_text("last words").await.unwrap();
    client.close().await.unwrap();
    tokio::time::timeout(PATIENCE, server.running)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_bad_name_is_refused_with_a_reason() {
    let (collect, _rx) = Collect::new();
    let server = InProcessServer::start(collect, ServerConfig::default()).await;
    let err = Client::connect_with(&server.addr, named("bad\nname"))
        .await
        .unwrap_err();
    match err {
        ClientError::Refused(CodeReason { code, reason }) => {
            assert_eq!(code, CloseCode::HANDSHAKE_REFUSED);
            assert!(reason.contains("name"), "{reason}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    server.shut_down().await;
}

#[tokio::test]
async fn frames_over_the_limit_are_refused_on_both_sides() {
    let (collect, mut rx) = Collect::new();
    let config = ServerConfig {
        max_frame_size: 1024,
        ..ServerConfig::default()
    };
    let server = InProcessServer::start(collect, config).await;

    // The library knows the server's limit from the welcome.
    let client = Client::connect(&server.addr).await.unwrap();
    assert_eq!(client.server_max_frame_size(), 1024);
    assert!(matches!(
        client.send_text("x".repeat(1025)).await,
        Err(ClientError::TooLarge {
            len: 1025,
            max: 1024
        })
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

#[tokio::test]
async fn a_silent_client_is_pinged_then_dropped() {
    let (collect, _rx) = Collect::new();
    let config = ServerConfig {
        heartbeat: Duration::from_millis(100),
        ..ServerConfig::default()
    };
    let server = InProcessServer::start(collect, config).await;
    let mut raw = raw_v2(&server.addr, "silent").await;
    assert!(matches!(next_frame(&mut raw).await, Frame::Ping(_)));
    // We never answer; after three intervals of silence the server closes.
    loop {
        match next_frame(&mut raw).await {
            Frame::Ping(_) => continue,
            Frame::Close(c) => {
                assert_eq!(c.code, CloseCode::HEARTBEAT_TIMEOUT, "{c}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // A client that answers pings (the library does) stays connected.
    let client = Client::connect(&server.addr).await.unwrap();
    let mut beats = tokio::time::interval(Duration::from_millis(120));
    for _ in 0..5 {
        beats.tick().await;
    }
    assert_eq!(client.request("alive").await.unwrap(), "alive");
    client.close().await.unwrap();
    server.shut_down().await;
}

#[test]
fn close_or_garbage_instead_of_hello_does_not_disturb_the_server() {
    let server = ServerProcess::start(&[]);
    let frame = |f: Frame| {
        let mut b = bytes::BytesMut::new();
        f.encode(&mut b);
        b.to_vec()
    };
    // CLOSE before HELLO: the client gave up; the server just closes.
    let mut early = raw_connect(server.addr);
    let close = frame(Frame::Close(CodeReason::new(
        CloseCode::NORMAL,
        "never mind",
    )));
    assert!(send_and_wait_for_close(&mut early, &close).is_empty());
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

#[test]
fn the_client_binary_speaks_v2_by_default() {
    let server = ServerProcess::start(&[]);
    let out = run_client(&["--addr", &server.addr_arg(), "one", "two"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.output_lines(2), [printed("one"), printed("two")]);
    server.wait_for_log("v2 session open");
    server.wait_for_log("close handshake complete");
}

#[test]
fn chat_clients_leave_politely_when_the_server_goes_away() {
    let server = ServerProcess::start(&["--broadcast"]);
    let mut carol = ChatProcess::start(&server, "carol");
    let status = server.stop_with("TERM");
    assert_eq!(status.code(), Some(0));
    let line = carol.next_line();
    assert!(line.starts_with("* server is going away"), "{line}");
    // Its stdin is still open: it left because the server asked it to.
    let exit = carol.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    drop(carol.stdin.take());
}

#[test]
fn past_max_connections_new_clients_wait_their_turn() {
    let server = ServerProcess::start(&["--max-connections", "1"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let first = rt.block_on(Client::connect(&server.addr_arg())).unwrap();
    server.wait_for_log("connection limit reached");
    // The second is accepted by the kernel but not served yet.
    let second = std::thread::spawn({
        let addr = server.addr_arg();
        move || run_client(&["--addr", &addr, "second"], None)
    });
    rt.block_on(first.send_text("first")).unwrap();
    assert_eq!(server.next_output_line(), printed("first"));
    rt.block_on(first.close()).unwrap();
    // Once the first leaves, the second is served.
    let out = second.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_output_line(), printed("second"));
}

/// Answers requests late, from another task, as a slow backend would.
struct Slow;
struct SlowHandler;
impl Service for Slow {
    type Handler = SlowHandler;
    fn connect(&self, _: &PeerInfo) -> SlowHandler {
        SlowHandler
    }
}
impl Handler for SlowHandler {
    async fn on_text(&mut self, _: Message) {}
    async fn on_request(&mut self, payload: Bytes, responder: Responder) {
        tokio::spawn(async move {
            // The work takes a while (simulated), long after the CLOSE came in.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = responder.respond(payload);
        });
    }
}

#[tokio::test]
async fn requests_sent_before_close_are_answered_before_the_acknowledgement() {
    let server = InProcessServer::start(Slow, ServerConfig::default()).await;
    let client = Client::connect(&server.addr).await.unwrap();
    let pending: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.request(format!("r{i}")).await })
        })
        .collect();
    // Wait until all eight are on their way, then close at once.
    while client.pending_requests() < 8 {
        tokio::task::yield_now().await;
    }
    client.close().await.unwrap();
    for (i, p) in pending.into_iter().enumerate() {
        assert_eq!(p.await.unwrap().unwrap(), format!("r{i}"));
    }
    server.shut_down().await;
}

/// Pings oblige the server to answer; a client that pings without ever
/// reading the pongs must not be able to grow the server's queue either.
#[test]
fn a_ping_flood_that_never_reads_is_dropped_too() {
    let server = ServerProcess::start(&["--max-queued-bytes", "1048576"]);
    let mut c = raw_connect(server.addr);
    c.set_write_timeout(Some(PATIENCE)).unwrap();
    let mut bytes = bytes::BytesMut::new();
    hello("pinger").encode(&mut bytes);
    c.write_all(&bytes).unwrap();
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
        Frame::Request(RequestFrame {
            id,
            payload: Bytes::from(vec![b'y'; 64 * 1024]),
        })
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
