//! Resumable sessions (spec 3.14) against real servers over TCP: through a
//! proxy that cuts every connection at a random byte (inside frames,
//! between them, in handshakes and replays) at least 1,000 times, with
//! traffic both ways, every one-way message, request and push arrives
//! exactly once and in order, and no request runs twice; the same for a
//! protocol as Rust types (`rust_tcp::typed`) through 100 cuts. A server that
//! lost the session (killed and restarted) refuses the resume with its
//! reason, and the client says what may have been lost.

mod common;

use bytes::Bytes;
use common::fault_proxy::{FaultProxy, Faults};
use common::{InProcessServer, PATIENCE, ServerProcess, free_port, named, scrape_metrics};
use rust_tcp::protocol::v2::ResumeSettings;
use rust_tcp::{
    Call, CallOptions, Client, ClientError, Handler, Message, PeerInfo, Pushed, Pusher, Reconnect,
    Responder, ServerConfig, Service,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the server saw, over every connection.
#[derive(Clone, Default)]
struct Ledger {
    texts: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<HashMap<String, u32>>>,
}

struct Echo {
    ledger: Ledger,
    pusher: Pusher,
}

impl Service for Ledger {
    type Handler = Echo;
    fn connect(&self, peer: &PeerInfo) -> Echo {
        Echo {
            ledger: self.clone(),
            pusher: peer.pusher.clone(),
        }
    }
}

impl Handler for Echo {
    /// Records `tN` and pushes `pN` back.
    async fn on_text(&mut self, m: Message) {
        self.ledger
            .texts
            .lock()
            .unwrap()
            .push(m.as_str().to_owned());
        let push = format!("p{}", &m.as_str()[1..]);
        self.pusher
            .send_text(push)
            .expect("a kept session takes pushes");
    }

    async fn on_request(&mut self, payload: Bytes, responder: Responder) {
        let key = String::from_utf8_lossy(&payload).into_owned();
        *self.ledger.requests.lock().unwrap().entry(key).or_default() += 1;
        let _ = responder.respond(payload);
    }

    /// Streams `iN` for N below the number asked for, at the pace the
    /// client grants, then answers `done`.
    fn on_call(&mut self, mut call: Call) -> impl Future<Output = ()> + Send + 'static {
        let n: usize = String::from_utf8_lossy(call.payload()).parse().unwrap();
        async move {
            let mut items = call.take_sender().expect("a streaming call");
            for i in 0..n {
                if items.send(format!("i{i}")).await.is_err() {
                    return;
                }
            }
            let _ = call.respond("done");
        }
    }
}

fn resuming(name: &str) -> rust_tcp::ClientConfig {
    named(name)
        .reconnect(Some(
            Reconnect::default()
                .initial_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(20)),
        ))
        .resume(Some(ResumeSettings::default()))
        .request_timeout(Some(PATIENCE * 3))
}

/// A server in this process with `ledger`, a fault proxy in front of it
/// cutting connections after 0 to `max_bytes` bytes (and stalling one chunk
/// in 50), and a resumable client named `name` through the proxy.
async fn through_cuts(
    ledger: Ledger,
    max_bytes: u64,
    seed: u64,
    name: &str,
) -> (InProcessServer, FaultProxy, Client) {
    let server = InProcessServer::start(ledger, ServerConfig::default()).await;
    let faults = Faults {
        max_bytes_before_cut: max_bytes,
        stall_one_in: 50,
        stall: Duration::from_millis(2),
        seed,
    };
    let proxy = FaultProxy::start(&server.addr, faults).await;
    let client = Client::connect_with(&proxy.addr, resuming(name))
        .await
        .unwrap();
    (server, proxy, client)
}

/// What the client's reader saw.
#[derive(Default, Debug)]
struct Seen {
    pushes: Vec<String>,
    resumed: u64,
    replayed: u64,
    resent: u64,
    refused: Vec<String>,
    disconnected: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_cuts_lose_and_duplicate_nothing() {
    const CUTS: u64 = 1_000;
    let ledger = Ledger::default();
    let (server, proxy, client) = through_cuts(ledger.clone(), 3_000, 0x5eed_1234, "cutter").await;
    let mut incoming = client.incoming().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let reader = tokio::spawn({
        let seen = seen.clone();
        async move {
            while let Some(pushed) = incoming.recv().await {
                let mut seen = seen.lock().unwrap();
                match pushed {
                    Pushed::Text(m) => seen.pushes.push(m.as_str().to_owned()),
                    Pushed::Resumed { replayed, resent } => {
                        seen.resumed += 1;
                        seen.replayed += replayed;
                        seen.resent += resent;
                    }
                    Pushed::ResumeRefused { reason, .. } => seen.refused.push(reason),
                    Pushed::Disconnected(_) => seen.disconnected += 1,
                    _ => {}
                }
            }
        }
    });

    // Bounded in count and in time: stop at 1,000 cuts, 500,000 messages
    // or two minutes, whichever comes first (the cuts are asserted).
    let started = Instant::now();
    let mut sent = 0usize;
    let mut asked = 0usize;
    while proxy.cuts() < CUTS && sent < 500_000 && started.elapsed() < Duration::from_secs(120) {
        client.send_text(format!("t{sent}")).await.unwrap();
        sent += 1;
        if sent.is_multiple_of(8) {
            let key = format!("r{asked}");
            assert_eq!(client.request(key.clone()).await.unwrap(), key);
            asked += 1;
        }
    }
    let cuts = proxy.cuts();
    proxy.calm_down();
    // One last answered request: everything sent before it has arrived.
    assert_eq!(client.request("last").await.unwrap(), "last");
    let deadline = Instant::now() + PATIENCE;
    while seen.lock().unwrap().pushes.len() < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client.close().await.unwrap();
    reader.await.unwrap();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let texts = std::mem::take(&mut *ledger.texts.lock().unwrap());
    let requests = std::mem::take(&mut *ledger.requests.lock().unwrap());
    println!(
        "cuts {cuts}, connections {}, messages {sent}, requests {asked}, \
         disconnections {}, resumed {}, frames replayed to the client {}, resent by it {}",
        proxy.connections(),
        seen.disconnected,
        seen.resumed,
        seen.replayed,
        seen.resent
    );
    assert!(cuts >= CUTS, "only {cuts} cuts in the time allowed");
    assert_eq!(seen.refused, Vec::<String>::new(), "no resume was refused");
    let expected = |p: &str| (0..sent).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    assert!(
        *texts == expected("t"),
        "the server got every message once, in order"
    );
    assert!(
        seen.pushes == expected("p"),
        "the client got every push once, in order"
    );
    assert_eq!(requests.len(), asked + 1);
    assert!(
        requests.values().all(|&n| n == 1),
        "no request ran twice: {:?}",
        requests
            .iter()
            .filter(|(_, n)| **n != 1)
            .collect::<Vec<_>>()
    );
    assert!(seen.resumed >= seen.disconnected);
    // Bounded: each session's replay buffer is capped, so a thousand cuts
    // and replays leave no growing residue. The server, the proxy and the
    // client share this process (with this file's other tests, which may
    // run meanwhile): its peak bounds them all.
    let peak_kib = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    println!("peak RSS of this test process: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 256 * 1024, "memory grew to {peak_kib} KiB");
    server.shut_down().await;
}

#[tokio::test]
async fn a_server_that_lost_the_session_refuses_with_its_reason() {
    let first = ServerProcess::start(&["--name", "first"]);
    let addr = first.addr_arg();
    let client = Client::connect_with(&addr, resuming("rita")).await.unwrap();
    let mut incoming = client.incoming().unwrap();
    assert_eq!(client.request("before").await.unwrap(), "before");
    // Frozen, the server cannot answer: the request stays in flight until
    // the server is killed under it.
    first.signal("STOP");
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.request("in flight").await }
    });
    while client.pending_requests() == 0 {
        tokio::task::yield_now().await;
    }
    first.stop_with("KILL");
    let metrics = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics}");
    let _second = ServerProcess::start_on(
        &addr,
        &["--name", "second", "--metrics-addr", &metrics_addr],
    );
    let mut refused = None;
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        match tokio::time::timeout(PATIENCE, incoming.recv())
            .await
            .unwrap()
        {
            Some(Pushed::ResumeRefused {
                reason,
                unacknowledged,
            }) => refused = Some((reason, unacknowledged)),
            Some(Pushed::Reconnected { server_name }) => {
                assert_eq!(server_name, "second");
                break;
            }
            Some(_) => {}
            None => panic!("the client gave up"),
        }
    }
    let (reason, unacknowledged) = refused.expect("the resume was refused first");
    assert_eq!(reason, "unknown session");
    assert!(unacknowledged >= 1, "the request in flight may be lost");
    match in_flight.await.unwrap() {
        Err(ClientError::Interrupted(why)) => assert!(why.contains("resume refused")),
        other => panic!("expected an interrupted request, got {other:?}"),
    }
    assert_eq!(client.request("after").await.unwrap(), "after");
    let scraped = scrape_metrics(metrics);
    assert!(
        scraped.contains("rust_tcp_resumes_refused_total{reason=\"unknown\"} 1"),
        "{scraped}"
    );
    // The new session is kept (resumable) while connected.
    assert!(scraped.contains("rust_tcp_sessions_kept 1"), "{scraped}");
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_server_counts_the_sessions_it_resumes() {
    let metrics = free_port();
    let server = ServerProcess::start(&["--metrics-addr", &format!("127.0.0.1:{metrics}")]);
    let faults = Faults {
        max_bytes_before_cut: 400,
        stall_one_in: 1_000,
        stall: Duration::ZERO,
        seed: 5,
    };
    let proxy = FaultProxy::start(&server.addr_arg(), faults).await;
    let client = Client::connect_with(&proxy.addr, resuming("counted"))
        .await
        .unwrap();
    let mut incoming = client.incoming().unwrap();
    // Requests until 10 cuts (bounded: 10,000 requests).
    for i in 0..10_000 {
        if proxy.cuts() >= 10 {
            break;
        }
        let key = format!("q{i}");
        assert_eq!(client.request(key.clone()).await.unwrap(), key);
    }
    assert!(proxy.cuts() >= 10);
    proxy.calm_down();
    assert_eq!(client.request("last").await.unwrap(), "last");
    // Every notice came before the last answer: they are all queued.
    let (mut resumed, mut failed) = (0.0, 0.0);
    while let Some(Some(pushed)) = futures::FutureExt::now_or_never(incoming.recv()) {
        match pushed {
            Pushed::Resumed { .. } => resumed += 1.0,
            Pushed::ReconnectFailed { .. } => failed += 1.0,
            _ => {}
        }
    }
    let scraped = scrape_metrics(metrics);
    let counted: f64 = scraped
        .lines()
        .find_map(|l| l.strip_prefix("rust_tcp_sessions_resumed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(resumed >= 1.0, "the client resumed");
    // A resume the server made whose WELCOME was cut on its way is counted
    // there, and is a failed attempt here.
    assert!(
        resumed <= counted && counted <= resumed + failed,
        "client: {resumed} resumed, {failed} failed; server: {counted}"
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_stream_keeps_its_position_and_credit_across_cuts() {
    const ITEMS: usize = 5_000;
    let (server, proxy, client) = through_cuts(Ledger::default(), 2_000, 0xca11, "streamer").await;
    let mut call = client
        .open_call(ITEMS.to_string(), CallOptions::new().server_stream(4))
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(item) = call.next_item().await.unwrap() {
            got.push(String::from_utf8(item.to_vec()).unwrap());
        }
    });
    read.await.expect("the stream ended in time");
    proxy.calm_down();
    assert_eq!(call.finish().await.unwrap(), "done");
    println!("{} items through {} cuts", got.len(), proxy.cuts());
    assert!(proxy.cuts() >= 50, "only {} cuts", proxy.cuts());
    assert!(got == (0..ITEMS).map(|i| format!("i{i}")).collect::<Vec<_>>());
    client.close().await.unwrap();
    server.shut_down().await;
}

/// A protocol as Rust types (`rust_tcp::typed`) for the typed test: a
/// request is answered with its own number, a message is pushed back as
/// an event with its number.
mod numbers {
    use rust_tcp::typed::Protocol;

    pub struct Numbers;

    impl Protocol for Numbers {
        const NAME: &'static str = "numbers";
        const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
        type Request = u64;
        type Response = u64;
        type Error = String;
        type Message = u64;
        type Event = u64;
        type Item = ();
    }
}

/// What the typed server saw, over every connection.
#[derive(Clone, Default)]
struct TypedLedger {
    messages: Arc<Mutex<Vec<u64>>>,
    calls: Arc<Mutex<HashMap<u64, u32>>>,
}

impl rust_tcp::typed::TypedService<numbers::Numbers> for TypedLedger {
    type Handler = TypedLedger;
    fn connect(&self, _: &rust_tcp::typed::Context<numbers::Numbers>) -> TypedLedger {
        self.clone()
    }
}

impl rust_tcp::typed::TypedHandler<numbers::Numbers> for TypedLedger {
    async fn call(
        &self,
        n: u64,
        _: &rust_tcp::typed::Context<numbers::Numbers>,
    ) -> Result<u64, String> {
        *self.calls.lock().unwrap().entry(n).or_default() += 1;
        Ok(n)
    }

    async fn on_message(&self, n: u64, context: &rust_tcp::typed::Context<numbers::Numbers>) {
        self.messages.lock().unwrap().push(n);
        context
            .pusher
            .send(&n)
            .expect("a kept session takes events");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_protocol_resumes_across_cuts() {
    use rust_tcp::typed::{Protocol, Typed, TypedClient, TypedPushed};
    const CUTS: u64 = 100;
    let ledger = TypedLedger::default();
    let config = ServerConfig::default().app_protocol(numbers::Numbers::app_protocol());
    let server = InProcessServer::start(Typed::new(ledger.clone()), config).await;
    let faults = Faults {
        max_bytes_before_cut: 2_000,
        stall_one_in: 50,
        stall: Duration::from_millis(2),
        seed: 0x7e5_7ed,
    };
    let proxy = FaultProxy::start(&server.addr, faults).await;
    let client = TypedClient::<numbers::Numbers>::connect(&proxy.addr, resuming("typed"))
        .await
        .unwrap();
    let mut events = client.events().unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut resumed = 0u64;
        while let Some(pushed) = events.recv().await {
            match pushed {
                TypedPushed::Event(n) => seen_tx.send(n).unwrap(),
                TypedPushed::Other(Pushed::Resumed { .. }) => resumed += 1,
                TypedPushed::Other(Pushed::ResumeRefused { reason, .. }) => {
                    panic!("resume refused: {reason}")
                }
                _ => {}
            }
        }
        resumed
    });

    // Bounded: 100 cuts, 100,000 messages or a minute, whichever first.
    let started = Instant::now();
    let mut sent = 0u64;
    while proxy.cuts() < CUTS && sent < 100_000 && started.elapsed() < Duration::from_secs(60) {
        client.send(&sent).await.unwrap();
        if sent.is_multiple_of(4) {
            assert_eq!(client.call(&sent).await.unwrap(), sent);
        }
        sent += 1;
    }
    let cuts = proxy.cuts();
    proxy.calm_down();
    let mut events_seen = Vec::new();
    while (events_seen.len() as u64) < sent {
        match tokio::time::timeout(PATIENCE, seen.recv()).await {
            Ok(Some(n)) => events_seen.push(n),
            _ => break,
        }
    }
    client.close().await.unwrap();
    let resumed = reader.await.unwrap();
    let messages = std::mem::take(&mut *ledger.messages.lock().unwrap());
    let calls = std::mem::take(&mut *ledger.calls.lock().unwrap());
    println!(
        "typed: cuts {cuts}, messages {sent}, calls {}, resumed {resumed}",
        calls.len()
    );
    assert!(cuts >= CUTS, "only {cuts} cuts in the time allowed");
    assert!(resumed >= 1, "the typed session resumed");
    let expected: Vec<u64> = (0..sent).collect();
    assert!(
        messages == expected,
        "the server got every message once, in order"
    );
    assert!(
        events_seen == expected,
        "the client got every event once, in order"
    );
    assert_eq!(calls.len() as u64, sent.div_ceil(4), "every call ran");
    assert!(calls.values().all(|&n| n == 1), "no call ran twice");
    server.shut_down().await;
}
