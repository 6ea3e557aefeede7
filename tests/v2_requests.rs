//! Requests against a real server: answers in any order reach the right
//! caller, answers precede the close acknowledgement, abandoned requests
//! leave nothing behind, and the limits hold for responses too.

mod common;

use bytes::Bytes;
use common::*;
use rust_tcp::protocol::Message;
use rust_tcp::protocol::v2::SendError;
use rust_tcp::{
    Client, ClientError, Handler, PeerInfo, PushError, Responder, ServerConfig, Service,
};
use std::time::Duration;
use tokio::sync::mpsc;

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

/// Abandoning a request (dropping its future after one poll: sent, not
/// yet answered) removes it at once; the late answers to those ids are
/// dropped quietly and never mistaken for the answer to a later request.
#[tokio::test]
async fn requests_abandoned_after_0_ms_leave_nothing_behind() {
    use futures::FutureExt;
    let (collect, _rx) = Collect::new();
    let server = InProcessServer::start(collect, ServerConfig::default()).await;
    let client = Client::connect(&server.addr).await.unwrap();
    for i in 0..100_000u32 {
        let answered = client.request(format!("abandoned {i}")).now_or_never();
        assert!(answered.is_none(), "no answer can come within one poll");
        assert_eq!(client.pending_requests(), 0);
        // Let the writer send it and the reader take the late answers.
        tokio::task::yield_now().await;
    }
    assert_eq!(client.pending_requests(), 0);
    // Late answers keep arriving; every new request still gets its own.
    for i in 0..100 {
        let answer = client.request(format!("kept {i}")).await.unwrap();
        assert_eq!(answer, format!("kept {i}"));
    }
    assert_eq!(client.pending_requests(), 0);
    client.close().await.unwrap();
    server.shut_down().await;
}

/// Holds every request unanswered for as long as the connection lives.
struct Mute;
struct MuteHandler(Vec<Responder>);
impl Service for Mute {
    type Handler = MuteHandler;
    fn connect(&self, _: &PeerInfo) -> MuteHandler {
        MuteHandler(Vec::new())
    }
}
impl Handler for MuteHandler {
    async fn on_text(&mut self, _: Message) {}
    async fn on_request(&mut self, _: Bytes, responder: Responder) {
        self.0.push(responder);
    }
}

#[tokio::test]
async fn a_request_timeout_is_its_own_error_and_leaves_nothing_behind() {
    let server = InProcessServer::start(Mute, ServerConfig::default()).await;
    let config = named("impatient").request_timeout(Some(Duration::from_millis(50)));
    let client = Client::connect_with(&server.addr, config).await.unwrap();
    let err = client.request("anyone?").await.unwrap_err();
    assert!(
        matches!(err, ClientError::RequestTimeout(t) if t == Duration::from_millis(50)),
        "{err}"
    );
    assert_eq!(client.pending_requests(), 0);
    // Off by default: the default config waits.
    assert_eq!(rust_tcp::ClientConfig::default().request_timeout, None);
    server.shut_down().await;
}

/// Echoes each request and reports what `respond` said.
struct Reporting(mpsc::UnboundedSender<Result<(), PushError>>);
struct ReportingHandler(mpsc::UnboundedSender<Result<(), PushError>>);
impl Service for Reporting {
    type Handler = ReportingHandler;
    fn connect(&self, _: &PeerInfo) -> ReportingHandler {
        ReportingHandler(self.0.clone())
    }
}
impl Handler for ReportingHandler {
    async fn on_text(&mut self, _: Message) {}
    async fn on_request(&mut self, payload: Bytes, responder: Responder) {
        let _ = self.0.send(responder.respond(payload));
    }
}

/// The client accepts at most 1024 bytes; an echo of a 1020-byte request
/// (1025 bytes as a response) is refused by the connection's session, the
/// handler is told, and the client gets an error response instead.
#[tokio::test]
async fn a_response_larger_than_the_clients_limit_is_refused_and_reported() {
    let (tx, mut reported) = mpsc::unbounded_channel();
    let server = InProcessServer::start(Reporting(tx), ServerConfig::default()).await;
    let client = Client::connect_with(&server.addr, named("small").max_frame_size(1024))
        .await
        .unwrap();
    let err = client.request(vec![b'x'; 1020]).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::RequestFailed(why) if why.contains("too large")),
        "{err}"
    );
    assert_eq!(
        reported.recv().await.unwrap(),
        Err(PushError::Refused(SendError::TooLarge {
            len: 1025,
            max: 1024
        }))
    );
    // One byte less fits, and the connection was never harmed.
    assert_eq!(client.request(vec![b'y'; 1019]).await.unwrap().len(), 1019);
    assert_eq!(reported.recv().await.unwrap(), Ok(()));
    client.close().await.unwrap();
    server.shut_down().await;
}

/// A client that took its pushes and stopped reading them does not leave
/// its calls waiting forever: once `incoming_capacity` pushes pile up it
/// ends the connection (telling the server why with CLOSE 1011), the
/// stream's last item says so, and every call fails at once, caused by us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_pushes_fails_its_calls_instead_of_hanging() {
    let server = ServerProcess::start(&["--broadcast"]);
    let addr = server.addr_arg();
    let config = rust_tcp::ClientConfig::default()
        .name("deaf")
        .incoming_capacity(4);
    let deaf = Client::connect_with(&addr, config).await.unwrap();
    let mut pushes = deaf.incoming().unwrap();
    let talker = Client::connect_with(&addr, rust_tcp::ClientConfig::default().name("talker"))
        .await
        .unwrap();
    for i in 0..5 {
        talker.send_text(format!("line {i}")).await.unwrap();
    }
    talker.close().await.unwrap();
    let log = server.wait_for_log("client closed: 1011");
    assert!(log.contains("not reading its pushes (4 unread)"), "{log}");
    let err = tokio::time::timeout(Duration::from_secs(10), deaf.request("x"))
        .await
        .expect("the call ended")
        .unwrap_err();
    assert!(err.is_local(), "{err}");
    assert!(err.to_string().contains("not reading its pushes"), "{err}");
    // Nothing was dropped without a word: four pushes, then the notice.
    for i in 0..4 {
        match pushes.recv().await {
            Some(rust_tcp::Pushed::Text(m)) => assert_eq!(m.as_str(), format!("talker: line {i}")),
            other => panic!("push {i}: {other:?}"),
        }
    }
    assert_eq!(
        pushes.recv().await,
        Some(rust_tcp::Pushed::Overflowed { unread: 4 })
    );
    assert_eq!(pushes.recv().await, None);
}
