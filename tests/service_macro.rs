//! `#[rust_tcp::service]` end to end over real sockets: one trait gives the
//! protocol, a client with a method per call and the server's dispatch.
//! Unary calls with their own answer types and the protocol's error,
//! one-way messages, pushed events, server and client streams, deadlines
//! and metadata through `with_options`, a call made in the wrong shape
//! refused with a reason, and the wire being the enum form a hand-written
//! protocol speaks.

mod common;

use common::{InProcessServer, PATIENCE};
use rust_tcp::typed::{
    CallContext, CallError, Context, ItemStream, Protocol, Stream, TypedClient, TypedItems,
    TypedPushed,
};
use rust_tcp::{CallOptions, ClientConfig, ServerConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::timeout;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum KvError {
    ReadOnly { key: String },
    NoSuchKey(String),
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Changed {
    Set { key: String, value: String },
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub keys: usize,
    pub logged: usize,
}

/// A key-value store, the whole protocol in one trait.
#[rust_tcp::service(name = "kv-macro", versions = 1..=2, event = Changed)]
pub trait Kv {
    /// The value under `key`.
    async fn get(key: String) -> Option<String>;
    /// Stores a value; keys starting with `ro-` are read-only.
    async fn set(key: String, value: String) -> Result<(), KvError>;
    /// How many keys and log lines the store holds.
    async fn stats() -> Stats;
    /// One line for the store's log, unanswered.
    #[oneway]
    async fn log(line: String);
    /// `1`, `2`, ... `n`, as a stream.
    async fn count_to(n: u32) -> Stream<String>;
    /// The values from `key` on: refused for a key that does not exist.
    #[since(2)]
    async fn tail(key: String) -> Result<Stream<String>, KvError>;
    /// Each line of the client's stream upper-cased, with `prefix`.
    async fn upper(prefix: String, input: Stream<String>) -> Stream<String>;
    /// Sleeps `ms`, then answers how long it was given.
    async fn slow(ms: u64) -> Option<u64>;
    /// The call's `traceparent` and the client's name.
    async fn whoami() -> (Option<String>, String);
}

#[derive(Default)]
struct Store {
    values: Mutex<HashMap<String, String>>,
    log: Mutex<Vec<String>>,
    /// The names of the clients whose connections ended, as `on_close`
    /// saw them; `closing` wakes whoever waits for one.
    closed: Mutex<Vec<String>>,
    closing: tokio::sync::Notify,
}

impl Kv for Store {
    async fn get(&self, _call: &CallContext<KvProtocol>, key: String) -> Option<String> {
        self.values.lock().unwrap().get(&key).cloned()
    }

    async fn set(
        &self,
        call: &CallContext<KvProtocol>,
        key: String,
        value: String,
    ) -> Result<(), KvError> {
        if key.starts_with("ro-") {
            return Err(KvError::ReadOnly { key });
        }
        self.values
            .lock()
            .unwrap()
            .insert(key.clone(), value.clone());
        let _ = call.pusher().send(&Changed::Set { key, value });
        Ok(())
    }

    async fn stats(&self, _call: &CallContext<KvProtocol>) -> Stats {
        Stats {
            keys: self.values.lock().unwrap().len(),
            logged: self.log.lock().unwrap().len(),
        }
    }

    async fn log(&self, _context: &Context<KvProtocol>, line: String) {
        self.log.lock().unwrap().push(line);
    }

    async fn count_to(&self, _call: &CallContext<KvProtocol>, n: u32) -> ItemStream<KvProtocol> {
        Box::pin(futures::stream::iter((1..=n).map(|i| i.to_string())))
    }

    async fn tail(
        &self,
        _call: &CallContext<KvProtocol>,
        key: String,
    ) -> Result<ItemStream<KvProtocol>, KvError> {
        let values = self.values.lock().unwrap();
        if !values.contains_key(&key) {
            return Err(KvError::NoSuchKey(key));
        }
        let mut keys: Vec<_> = values.keys().filter(|k| **k >= key).cloned().collect();
        keys.sort();
        let found: Vec<String> = keys.iter().map(|k| values[k].clone()).collect();
        Ok(Box::pin(futures::stream::iter(found)))
    }

    async fn upper(
        &self,
        _call: &CallContext<KvProtocol>,
        prefix: String,
        input: TypedItems<KvProtocol>,
    ) -> ItemStream<KvProtocol> {
        use futures::StreamExt;
        Box::pin(input.into_stream().map(move |line| match line {
            Ok(line) => format!("{prefix}{}", line.to_uppercase()),
            Err(e) => format!("undecodable: {e}"),
        }))
    }

    async fn slow(&self, call: &CallContext<KvProtocol>, ms: u64) -> Option<u64> {
        let given = call.remaining().map(|d| d.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        given
    }

    async fn whoami(&self, call: &CallContext<KvProtocol>) -> (Option<String>, String) {
        let trace = call.metadata.get_str("traceparent").map(str::to_owned);
        (trace, call.connection.name.clone())
    }

    async fn on_close(&self, context: &Context<KvProtocol>) {
        // An await in the hook, as a real clean-up would have.
        tokio::task::yield_now().await;
        self.closed.lock().unwrap().push(context.name.clone());
        self.closing.notify_waiters();
    }
}

async fn start() -> (InProcessServer, KvClient) {
    let (server, client, _) = start_with_store().await;
    (server, client)
}

async fn start_with_store() -> (InProcessServer, KvClient, std::sync::Arc<Store>) {
    let store = std::sync::Arc::new(Store::default());
    let config = ServerConfig::default().app_protocol(KvProtocol::app_protocol());
    let service = KvServer::from_arc(store.clone()).into_service();
    let server = InProcessServer::start(service, config).await;
    let client = KvClient::connect(&server.addr, ClientConfig::default().name("macro-test"))
        .await
        .unwrap();
    (server, client, store)
}

/// Closes the client, then stops the server (which would otherwise give
/// the open connection its grace period).
async fn done(server: InProcessServer, kv: &KvClient) {
    timeout(PATIENCE, kv.close()).await.unwrap().unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn unary_calls_answer_their_own_types_and_the_protocols_error() {
    let (server, kv) = start().await;
    assert_eq!(kv.get("a".into()).await.unwrap(), None);
    kv.set("a".into(), "1".into()).await.unwrap();
    assert_eq!(kv.get("a".into()).await.unwrap(), Some("1".into()));
    match kv.set("ro-x".into(), "2".into()).await {
        Err(CallError::Remote(KvError::ReadOnly { key })) => assert_eq!(key, "ro-x"),
        other => panic!("expected the protocol's error, got {other:?}"),
    }
    assert_eq!(kv.stats().await.unwrap(), Stats { keys: 1, logged: 0 });
    // The highest version both sides speak.
    assert_eq!(kv.typed().negotiated().version, 2);
    done(server, &kv).await;
}

#[tokio::test]
async fn one_way_messages_arrive_in_order_before_a_later_call() {
    let (server, kv) = start().await;
    for i in 0..10 {
        kv.log(format!("line {i}")).await.unwrap();
    }
    // Frames of one connection are handled in order: the call after the
    // messages sees them all.
    assert_eq!(kv.stats().await.unwrap().logged, 10);
    done(server, &kv).await;
}

#[tokio::test]
async fn a_set_pushes_its_event_to_the_caller() {
    let (server, kv) = start().await;
    let mut events = kv.events().unwrap();
    assert!(kv.events().is_none(), "the one stream of events is taken");
    kv.set("k".into(), "v".into()).await.unwrap();
    match timeout(PATIENCE, events.recv()).await.unwrap() {
        Some(TypedPushed::Event(Changed::Set { key, value })) => {
            assert_eq!((key.as_str(), value.as_str()), ("k", "v"));
        }
        other => panic!("expected the event, got {other:?}"),
    }
    done(server, &kv).await;
}

#[tokio::test]
async fn a_streaming_call_returns_its_items_then_ends() {
    let (server, kv) = start().await;
    let mut call = kv.count_to(300).await.unwrap();
    let mut got = Vec::new();
    while let Some(item) = timeout(PATIENCE, call.next_item()).await.unwrap().unwrap() {
        got.push(item);
    }
    let want: Vec<String> = (1..=300).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
    done(server, &kv).await;
}

#[tokio::test]
async fn a_streaming_call_may_refuse_with_the_protocols_error() {
    let (server, kv) = start().await;
    kv.set("b".into(), "2".into()).await.unwrap();
    kv.set("c".into(), "3".into()).await.unwrap();
    let mut call = kv.tail("b".into()).await.unwrap();
    assert_eq!(call.next_item().await.unwrap(), Some("2".into()));
    assert_eq!(call.next_item().await.unwrap(), Some("3".into()));
    assert_eq!(call.next_item().await.unwrap(), None);

    let mut refused = kv.tail("zz".into()).await.unwrap();
    match timeout(PATIENCE, refused.next_item()).await.unwrap() {
        Ok(None) => match refused.finish().await {
            Err(CallError::Remote(KvError::NoSuchKey(k))) => assert_eq!(k, "zz"),
            other => panic!("expected NoSuchKey, got {other:?}"),
        },
        Err(CallError::Remote(KvError::NoSuchKey(k))) => assert_eq!(k, "zz"),
        other => panic!("expected NoSuchKey, got {other:?}"),
    }
    done(server, &kv).await;
}

#[tokio::test]
async fn the_client_streams_while_the_server_answers() {
    let (server, kv) = start().await;
    let mut call = kv.upper("> ".into()).await.unwrap();
    let sender = call.sender();
    let feeding = tokio::spawn(async move {
        for i in 0..500 {
            sender.send(&format!("line {i}")).await.unwrap();
        }
        sender.end().await.unwrap();
    });
    let mut got = 0;
    while let Some(line) = timeout(PATIENCE, call.next_item()).await.unwrap().unwrap() {
        assert_eq!(line, format!("> LINE {got}"));
        got += 1;
    }
    assert_eq!(got, 500);
    timeout(PATIENCE, feeding).await.unwrap().unwrap();
    done(server, &kv).await;
}

#[tokio::test]
async fn options_carry_a_deadline_and_metadata() {
    let (server, kv) = start().await;
    // Without options a call has no deadline.
    assert_eq!(kv.slow(0).await.unwrap(), None);
    let hurried = kv.with_options(CallOptions::new().deadline(Some(Duration::from_millis(200))));
    let given = hurried.slow(0).await.unwrap().expect("a deadline");
    assert!(given <= 200, "the server saw {given} ms left");
    match hurried.slow(10_000).await {
        Err(CallError::Client(e)) => {
            assert!(e.to_string().contains("deadline"), "{e}");
        }
        other => panic!("expected the deadline to pass, got {other:?}"),
    }
    let traced = kv.with_options(
        CallOptions::new()
            .metadata("traceparent", "00-abc-def-01")
            .unwrap(),
    );
    let (trace, name) = traced.whoami().await.unwrap();
    assert_eq!(trace.as_deref(), Some("00-abc-def-01"));
    assert_eq!(name, "macro-test");
    done(server, &kv).await;
}

#[tokio::test]
async fn a_call_made_in_the_wrong_shape_is_refused_with_its_name() {
    let (server, kv) = start().await;
    // A streaming call made as a unary request, and as a unary call.
    let request = KvRequest::CountTo { n: 3 };
    match kv.typed().call(&request).await {
        Err(CallError::Failed(why)) => {
            assert!(why.contains("`count_to` is a streaming call"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match kv.typed().call_with(&request, CallOptions::new()).await {
        Err(CallError::Failed(why)) => {
            assert!(why.contains("`count_to` is a streaming call"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A unary call opened as a stream.
    let mut call = kv
        .typed()
        .stream(&KvRequest::Get { key: "a".into() }, CallOptions::new())
        .await
        .unwrap();
    match timeout(PATIENCE, call.next_item()).await.unwrap() {
        Err(CallError::Failed(why)) => assert!(why.contains("`get` is a unary call"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The connection is fine after both.
    assert_eq!(kv.get("a".into()).await.unwrap(), None);
    done(server, &kv).await;
}

#[tokio::test]
async fn the_close_hook_runs_once_a_connection_ends() {
    let (server, kv, store) = start_with_store().await;
    kv.stats().await.unwrap();
    assert!(store.closed.lock().unwrap().is_empty());
    let closed = async {
        loop {
            let woken = store.closing.notified();
            if !store.closed.lock().unwrap().is_empty() {
                return;
            }
            woken.await;
        }
    };
    timeout(PATIENCE, kv.close()).await.unwrap().unwrap();
    timeout(PATIENCE, closed).await.expect("on_close ran");
    assert_eq!(*store.closed.lock().unwrap(), ["macro-test"]);
    server.shut_down().await;
}

/// The same protocol written by hand in the enum form: the macro's wire is
/// this one, so peers of either kind talk.
mod by_hand {
    use serde::{Deserialize, Serialize};

    pub struct Kv;

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Request {
        Get { key: String },
        Set { key: String, value: String },
        Stats,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Response {
        Get(Option<String>),
        Set(()),
        Stats(super::Stats),
    }

    impl rust_tcp::typed::Protocol for Kv {
        const NAME: &'static str = "kv-macro";
        const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
        type Request = Request;
        type Response = Response;
        type Error = super::KvError;
        type Message = ();
        type Event = super::Changed;
        type Item = String;
    }
}

#[tokio::test]
async fn a_hand_written_enum_client_talks_to_the_generated_server() {
    let (server, kv) = start().await;
    let by_hand = TypedClient::<by_hand::Kv>::connect(&server.addr, ClientConfig::default())
        .await
        .unwrap();
    assert_eq!(by_hand.negotiated().version, 1);
    let set = by_hand::Request::Set {
        key: "h".into(),
        value: "1".into(),
    };
    assert!(matches!(
        by_hand.call(&set).await.unwrap(),
        by_hand::Response::Set(())
    ));
    assert_eq!(kv.get("h".into()).await.unwrap(), Some("1".into()));
    match by_hand.call(&by_hand::Request::Stats).await.unwrap() {
        by_hand::Response::Stats(stats) => assert_eq!(stats.keys, 1),
        other => panic!("expected stats, got {other:?}"),
    }
    timeout(PATIENCE, by_hand.close()).await.unwrap().unwrap();
    done(server, &kv).await;
}

/// The generated protocol as a version-1 peer would speak it.
struct KvV1;

impl Protocol for KvV1 {
    const NAME: &'static str = "kv-macro";
    const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
    type Request = KvRequest;
    type Response = KvResponse;
    type Error = KvError;
    type Message = KvMessage;
    type Event = Changed;
    type Item = String;
}

#[tokio::test]
async fn a_call_newer_than_the_negotiated_version_is_refused() {
    let (server, kv) = start().await;
    kv.set("a".into(), "1".into()).await.unwrap();
    let old = TypedClient::<KvV1>::connect(&server.addr, ClientConfig::default())
        .await
        .unwrap();
    assert_eq!(old.negotiated().version, 1);
    let mut call = old
        .stream(&KvRequest::Tail { key: "a".into() }, CallOptions::new())
        .await
        .unwrap();
    match timeout(PATIENCE, call.next_item()).await.unwrap() {
        Err(CallError::Failed(why)) => assert!(
            why.contains("`tail` came in version 2") && why.contains("speaks version 1"),
            "{why}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A version-1 call on the same connection is served.
    assert!(matches!(
        old.call(&KvRequest::Get { key: "a".into() }).await.unwrap(),
        KvResponse::Get(Some(_))
    ));
    timeout(PATIENCE, old.close()).await.unwrap().unwrap();
    done(server, &kv).await;
}

#[test]
fn the_protocol_is_what_the_attribute_says() {
    assert_eq!(KvProtocol::NAME, "kv-macro");
    assert_eq!(KvProtocol::VERSIONS, 1..=2);
    let info = KvProtocol::call_info(&KvRequest::CountTo { n: 1 }).unwrap();
    assert_eq!((info.name, info.streaming), ("count_to", true));
    let info = KvProtocol::call_info(&KvRequest::Stats).unwrap();
    assert_eq!((info.name, info.streaming), ("stats", false));
}
