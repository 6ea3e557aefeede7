//! Calls (spec 3.13) between the library's client and server over TCP on
//! loopback: unary calls with metadata, streams both ways under credit,
//! cancellation and deadlines that stop the server's work (seen by the
//! handler, not timed), limits, and a stalled stream that holds up nothing
//! else on its connection.

mod common;

use bytes::Bytes;
use common::{InProcessServer, PATIENCE};
use rust_tcp::protocol::v2::{CallLimits, CallStatus, SendError};
use rust_tcp::{
    Call, CallOptions, Client, ClientConfig, ClientError, Handler, Message, PeerInfo, Pusher,
    ServerConfig, Service,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// What the handlers report to the test.
#[derive(Debug, PartialEq)]
enum Seen {
    /// A call's future began its work.
    Started(&'static str),
    /// A call's future was dropped before it finished (cancel, deadline).
    Dropped(&'static str),
    /// The server's stream is waiting for credit, having sent this many.
    Waiting(u64),
}

/// Sends `Seen::Dropped` when dropped: proof that a call's work stopped.
struct DropSignal(&'static str, mpsc::UnboundedSender<Seen>);
impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.1.send(Seen::Dropped(self.0));
    }
}

/// The calls of the tests, by their payload's first word.
#[derive(Clone)]
struct Calls {
    seen: mpsc::UnboundedSender<Seen>,
    pushers: Arc<std::sync::Mutex<Vec<Pusher>>>,
}
struct CallsHandler(Calls);

impl Service for Calls {
    type Handler = CallsHandler;
    fn connect(&self, peer: &PeerInfo) -> CallsHandler {
        self.pushers.lock().unwrap().push(peer.pusher.clone());
        CallsHandler(self.clone())
    }
}

impl Handler for CallsHandler {
    async fn on_text(&mut self, m: Message) {
        for p in self.0.pushers.lock().unwrap().iter() {
            let _ = p.send_text(m.as_str().to_owned());
        }
    }

    fn on_call(&mut self, mut call: Call) -> impl Future<Output = ()> + Send + 'static {
        let seen = self.0.seen.clone();
        async move {
            let payload = call.payload().clone();
            let text = String::from_utf8_lossy(&payload).into_owned();
            let mut words = text.split(' ');
            match words.next().unwrap_or_default() {
                "echo" => {
                    let trace = call.metadata().get_str("traceparent").unwrap_or("-");
                    let answer = format!("{text} / {trace}");
                    let _ = call.respond(answer);
                }
                "count" => {
                    let n: u64 = words.next().unwrap().parse().unwrap();
                    let mut items = call.take_sender().unwrap();
                    for i in 0..n {
                        if items.credit() == 0 {
                            let _ = seen.send(Seen::Waiting(i));
                        }
                        if items.send(i.to_string()).await.is_err() {
                            return;
                        }
                    }
                    let _ = call.respond(format!("{n} sent"));
                }
                "sum" => {
                    let mut items = call.take_items().unwrap();
                    let mut sum = 0u64;
                    while let Some(item) = items.next().await {
                        sum += String::from_utf8_lossy(&item).parse::<u64>().unwrap();
                    }
                    let _ = call.respond(sum.to_string());
                }
                "bidi" => {
                    let (mut items, mut back) =
                        (call.take_items().unwrap(), call.take_sender().unwrap());
                    while let Some(item) = items.next().await {
                        let upper = String::from_utf8_lossy(&item).to_uppercase();
                        if back.send(upper).await.is_err() {
                            return;
                        }
                    }
                    let _ = call.respond("done");
                }
                "forever" => {
                    let _ = seen.send(Seen::Started("forever"));
                    let _signal = DropSignal("forever", seen);
                    std::future::pending::<()>().await;
                }
                "remaining" => {
                    let left = call.remaining().map_or(0, |d| d.as_millis());
                    let _ = call.respond(left.to_string());
                }
                _ => {
                    let _ = call.fail("unknown call");
                }
            }
        }
    }
}

async fn server(config: ServerConfig) -> (InProcessServer, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let service = Calls {
        seen: tx,
        pushers: Default::default(),
    };
    (InProcessServer::start(service, config).await, rx)
}

async fn client(addr: &str) -> Client {
    Client::connect_with(addr, ClientConfig::default().name("caller"))
        .await
        .unwrap()
}

async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(PATIENCE, seen.recv())
        .await
        .expect("the handler reported in time")
        .expect("the handler's channel is open")
}

#[tokio::test]
async fn a_unary_call_carries_its_metadata_and_the_trace_id() {
    let (server, _seen) = server(ServerConfig::default()).await;
    let client = client(&server.addr).await;
    let options = CallOptions::new()
        .metadata("traceparent", TRACEPARENT)
        .unwrap();
    let answer = client.call("echo hi", options).await.unwrap();
    assert_eq!(answer, format!("echo hi / {TRACEPARENT}"));
    let failed = client
        .call("nonsense", CallOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&failed, ClientError::Call { status: CallStatus::Failed, reason } if reason == "unknown call"),
        "{failed}"
    );
    assert!(failed.is_remote());
    client.close().await.unwrap();
    server.shut_down().await;
}

/// A million items to a reader that stops now and then: the server never
/// gets more than the window ahead of what was read, and waits (not
/// dropped) while the reader does not grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_items_to_a_slow_reader_stay_within_its_credit() {
    let (server, mut seen) = server(ServerConfig::default()).await;
    let client = client(&server.addr).await;
    let n: u64 = 1_000_000;
    const WINDOW: u32 = 64;
    let mut call = client
        .open_call(
            format!("count {n}"),
            CallOptions::new().server_stream(WINDOW),
        )
        .await
        .unwrap();
    let mut read = 0u64;
    let mut pauses = 0;
    while let Some(item) = call.next_item().await.unwrap() {
        assert_eq!(item, read.to_string());
        read += 1;
        if read.is_multiple_of(n / 4) && read < n {
            // Stop reading until the server is waiting for credit: it has
            // sent no more than we read plus the window.
            loop {
                match next_seen(&mut seen).await {
                    Seen::Waiting(sent) if sent >= read => {
                        assert!(sent <= read + u64::from(WINDOW), "sent {sent}, read {read}");
                        break;
                    }
                    _ => {}
                }
            }
            pauses += 1;
        }
    }
    assert_eq!((read, pauses), (n, 3));
    assert_eq!(call.finish().await.unwrap(), format!("{n} sent"));
    client.close().await.unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn a_client_stream_keeps_to_the_servers_credit_and_both_at_once_work() {
    let limits = CallLimits::new(10, 2);
    let (server, _seen) = server(ServerConfig::default().calls(Some(limits))).await;
    let client = client(&server.addr).await;
    let mut upload = client
        .open_call("sum", CallOptions::new().client_stream(true))
        .await
        .unwrap();
    for i in 1..=100u64 {
        upload.send_item(i.to_string()).await.unwrap();
    }
    // A sender kept past its call's end refuses: the id may be another
    // call's by then.
    let late = upload.sender();
    upload.end_items().await.unwrap();
    assert_eq!(upload.finish().await.unwrap(), "5050");
    let refused = late.send("101".into()).await.unwrap_err();
    assert!(
        matches!(refused, ClientError::Refused(SendError::NoSuchCall { .. })),
        "{refused:?}"
    );

    let mut chat = client
        .open_call(
            "bidi",
            CallOptions::new().client_stream(true).server_stream(4),
        )
        .await
        .unwrap();
    for word in ["a", "b", "c"] {
        chat.send_item(word).await.unwrap();
        assert_eq!(
            chat.next_item().await.unwrap().unwrap(),
            word.to_uppercase()
        );
    }
    chat.end_items().await.unwrap();
    assert_eq!(chat.next_item().await.unwrap(), None);
    assert_eq!(chat.finish().await.unwrap(), "done");
    client.close().await.unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn a_cancelled_call_stops_the_servers_work() {
    let (server, mut seen) = server(ServerConfig::default()).await;
    let client = client(&server.addr).await;
    // Dropping the call's future cancels it.
    let call = client.call("forever", CallOptions::new());
    let mut call = Box::pin(call);
    tokio::select! {
        _ = &mut call => panic!("a call that never ends ended"),
        started = next_seen(&mut seen) => assert_eq!(started, Seen::Started("forever")),
    }
    drop(call);
    assert_eq!(next_seen(&mut seen).await, Seen::Dropped("forever"));
    // So does cancel() on an open call; the connection is unharmed.
    let open = client
        .open_call("forever", CallOptions::new())
        .await
        .unwrap();
    assert_eq!(next_seen(&mut seen).await, Seen::Started("forever"));
    open.cancel();
    assert_eq!(next_seen(&mut seen).await, Seen::Dropped("forever"));
    assert_eq!(
        client.call("echo ok", CallOptions::new()).await.unwrap(),
        "echo ok / -"
    );
    client.close().await.unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn a_deadline_stops_the_work_and_the_server_may_cap_it() {
    let limits = CallLimits::default().max_deadline(Some(Duration::from_millis(300)));
    let (server, mut seen) = server(ServerConfig::default().calls(Some(limits))).await;
    let client = client(&server.addr).await;
    let late = client
        .call(
            "forever",
            CallOptions::new().deadline(Some(Duration::from_millis(100))),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            late,
            ClientError::Call {
                status: CallStatus::DeadlineExceeded,
                ..
            }
        ),
        "{late}"
    );
    assert_eq!(next_seen(&mut seen).await, Seen::Started("forever"));
    assert_eq!(next_seen(&mut seen).await, Seen::Dropped("forever"));
    // No deadline asked: the server's cap applies, and its STATUS says so.
    let capped = client
        .call("forever", CallOptions::new())
        .await
        .unwrap_err();
    match capped {
        ClientError::Call {
            status: CallStatus::DeadlineExceeded,
            reason,
        } => assert_eq!(reason, "deadline exceeded (300 ms)"),
        other => panic!("{other}"),
    }
    assert_eq!(next_seen(&mut seen).await, Seen::Started("forever"));
    assert_eq!(next_seen(&mut seen).await, Seen::Dropped("forever"));
    // The handler sees what is left of its budget.
    let left: u128 = String::from_utf8_lossy(
        &client
            .call(
                "remaining",
                CallOptions::new().deadline(Some(Duration::from_secs(60))),
            )
            .await
            .unwrap(),
    )
    .parse()
    .unwrap();
    assert!((1..=300).contains(&left), "{left} ms left of a capped 300");
    client.close().await.unwrap();
    server.shut_down().await;
}

/// One connection: a stream whose reader stopped granting, unary calls,
/// requests and pushes. The stalled stream holds up none of the others.
#[tokio::test]
async fn a_stalled_stream_holds_up_nothing_else_on_its_connection() {
    let (server, mut seen) = server(ServerConfig::default()).await;
    let client = client(&server.addr).await;
    let mut pushes = client.incoming().unwrap();
    let mut stalled = client
        .open_call("count 1000", CallOptions::new().server_stream(2))
        .await
        .unwrap();
    assert_eq!(stalled.next_item().await.unwrap().unwrap(), "0");
    assert!(matches!(next_seen(&mut seen).await, Seen::Waiting(_)));
    for i in 0..20 {
        let answer = client
            .call(format!("echo {i}"), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(answer, format!("echo {i} / -"));
        assert_eq!(
            &client
                .request(format!("r{i}"))
                .await
                .unwrap_err()
                .to_string()[..],
            "request failed: this service does not answer requests"
        );
    }
    client.send_text("to everyone").await.unwrap();
    assert_eq!(
        tokio::time::timeout(PATIENCE, pushes.recv()).await.unwrap(),
        Some(rust_tcp::Pushed::Text(Message::new("to everyone")))
    );
    drop(stalled);
    client.close().await.unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn limits_refuse_calls_without_harming_the_connection() {
    let (server, _seen) = server(ServerConfig::default().calls(Some(CallLimits::new(1, 4)))).await;
    let client = client(&server.addr).await;
    let _busy = client
        .open_call("forever", CallOptions::new())
        .await
        .unwrap();
    // Our side knows the limit from the WELCOME: refused before sending.
    let refused = client.call("echo x", CallOptions::new()).await.unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Refused(SendError::TooManyCalls { max: 1 })
        ),
        "{refused}"
    );
    drop(_busy);
    // A server that does not speak calls: refused locally, nothing sent.
    let (plain, _s) = server_without_calls().await;
    let other = Client::connect(&plain.addr).await.unwrap();
    let err = other.call("echo", CallOptions::new()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Refused(SendError::CallsNotNegotiated)),
        "{err}"
    );
    assert!(
        other
            .request("still works")
            .await
            .is_err_and(|e| matches!(e, ClientError::RequestFailed(_)))
    );
    other.close().await.unwrap();
    client.close().await.unwrap();
    plain.shut_down().await;
    server.shut_down().await;
}

async fn server_without_calls() -> (InProcessServer, mpsc::UnboundedReceiver<Seen>) {
    server(ServerConfig::default().calls(None)).await
}

/// The same stream over a WebSocket: calls ride the frames exactly as
/// over TCP.
#[tokio::test]
async fn a_stream_over_a_websocket() {
    let (tx, _seen) = mpsc::unbounded_channel();
    let service = Calls {
        seen: tx,
        pushers: Default::default(),
    };
    let ws = rust_tcp::WebSocketConfig::new("127.0.0.1:0");
    let server = rust_tcp::Server::bind("127.0.0.1:0", ServerConfig::default().websocket(ws))
        .await
        .unwrap();
    let url = format!("ws://{}/", server.websocket_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(server.run(service, stop.clone().cancelled_owned()));
    let client = client(&url).await;
    let mut call = client
        .open_call("count 500", CallOptions::new().server_stream(8))
        .await
        .unwrap();
    let mut got = 0u64;
    while let Some(item) = call.next_item().await.unwrap() {
        assert_eq!(item, Bytes::from(got.to_string()));
        got += 1;
    }
    assert_eq!(
        (got, call.finish().await.unwrap()),
        (500, Bytes::from("500 sent"))
    );
    client.close().await.unwrap();
    stop.cancel();
    running.await.unwrap();
}
