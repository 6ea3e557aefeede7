//! `rust_tcp::typed` end to end over real sockets: a key-value protocol as
//! Rust types, calls with responses and the protocol's own errors, one-way
//! messages, events pushed to watchers, decode failures that fail only the
//! message, and schema evolution both ways (an optional field, a new
//! variant, a breaking change as a new negotiated version).

mod common;

use common::{InProcessServer, PATIENCE, named};
use rust_tcp::ServerConfig;
use rust_tcp::protocol::v2::{AppProtocol, Encoding};
use rust_tcp::typed::{
    CallError, Context, Protocol, Typed, TypedClient, TypedHandler, TypedPushed, TypedPusher,
    TypedService,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The protocol as the new side knows it (version 2 adds `ttl` and
/// `Delete`; version 1 peers still talk to it).
mod new {
    use super::*;

    pub struct Kv;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    pub enum Request {
        Get {
            key: String,
        },
        Set {
            key: String,
            value: String,
            /// Added without a new version: old peers leave it out.
            #[serde(default)]
            ttl: Option<u64>,
        },
        /// Added without a new version: old servers answer "unknown variant".
        Delete {
            key: String,
        },
        Watch,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    pub enum Response {
        Value(Option<String>),
        Done,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    pub enum Event {
        Changed { key: String, value: String },
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    pub enum KvError {
        ReadOnly(String),
    }

    impl Protocol for Kv {
        const NAME: &'static str = "kv";
        const VERSIONS: std::ops::RangeInclusive<u16> = 1..=2;
        const ENCODINGS: &'static [Encoding] = &[Encoding::MessagePack, Encoding::Postcard];
        type Request = Request;
        type Response = Response;
        type Error = KvError;
        type Message = String;
        type Event = Event;
        type Item = ();
    }
}

/// The protocol as an old peer knows it: version 1 only, no `ttl`, no
/// `Delete`.
mod old {
    use super::*;

    pub struct Kv;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    pub enum Request {
        Get { key: String },
        Set { key: String, value: String },
        Watch,
    }

    pub use super::new::{Event, KvError, Response};

    impl Protocol for Kv {
        const NAME: &'static str = "kv";
        const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
        type Request = Request;
        type Response = Response;
        type Error = KvError;
        type Message = String;
        type Event = Event;
        type Item = ();
    }
}

/// Shared by every connection: the data, and the watchers keyed by
/// connection (not by name, so two clients with one name both get events).
#[derive(Default, Clone)]
struct Store {
    data: Arc<Mutex<HashMap<String, String>>>,
    watchers: Arc<Mutex<Vec<TypedPusher<new::Kv>>>>,
    notes: Arc<Mutex<Vec<String>>>,
}

impl TypedService<new::Kv> for Store {
    type Handler = Store;
    fn connect(&self, _context: &Context<new::Kv>) -> Store {
        self.clone()
    }
}

impl TypedHandler<new::Kv> for Store {
    async fn call(
        &self,
        request: new::Request,
        context: &Context<new::Kv>,
    ) -> Result<new::Response, new::KvError> {
        match request {
            new::Request::Get { key } => Ok(new::Response::Value(
                self.data.lock().unwrap().get(&key).cloned(),
            )),
            new::Request::Set { key, .. } if key.starts_with("ro/") => {
                Err(new::KvError::ReadOnly(key))
            }
            new::Request::Set { key, value, .. } => {
                self.data.lock().unwrap().insert(key.clone(), value.clone());
                let event = new::Event::Changed { key, value };
                self.watchers
                    .lock()
                    .unwrap()
                    .retain(|w| w.send(&event).is_ok());
                Ok(new::Response::Done)
            }
            new::Request::Delete { key } => {
                self.data.lock().unwrap().remove(&key);
                Ok(new::Response::Done)
            }
            new::Request::Watch => {
                self.watchers.lock().unwrap().push(context.pusher.clone());
                Ok(new::Response::Done)
            }
        }
    }

    async fn on_message(&self, message: String, context: &Context<new::Kv>) {
        self.notes
            .lock()
            .unwrap()
            .push(format!("{} v{}: {message}", context.name, context.version));
    }
}

/// A server speaking only the old protocol.
#[derive(Clone, Default)]
struct OldStore(Arc<Mutex<HashMap<String, String>>>);

impl TypedService<old::Kv> for OldStore {
    type Handler = OldStore;
    fn connect(&self, _: &Context<old::Kv>) -> OldStore {
        self.clone()
    }
}

impl TypedHandler<old::Kv> for OldStore {
    async fn call(
        &self,
        request: old::Request,
        _: &Context<old::Kv>,
    ) -> Result<old::Response, old::KvError> {
        match request {
            old::Request::Get { key } => Ok(old::Response::Value(
                self.0.lock().unwrap().get(&key).cloned(),
            )),
            old::Request::Set { key, value } => {
                self.0.lock().unwrap().insert(key, value);
                Ok(old::Response::Done)
            }
            old::Request::Watch => Ok(old::Response::Done),
        }
    }
}

async fn new_server(store: Store) -> InProcessServer {
    let config = ServerConfig::default().app_protocol(new::Kv::app_protocol());
    InProcessServer::start(Typed::new(store), config).await
}

async fn old_server() -> InProcessServer {
    let config = ServerConfig::default().app_protocol(old::Kv::app_protocol());
    InProcessServer::start(Typed::new(OldStore::default()), config).await
}

#[tokio::test]
async fn calls_errors_messages_and_events_to_every_watcher() {
    let store = Store::default();
    let server = new_server(store.clone()).await;
    // Two watchers with the same name: both get the change.
    let watcher_a = TypedClient::<new::Kv>::connect(&server.addr, named("same"))
        .await
        .unwrap();
    let watcher_b = TypedClient::<new::Kv>::connect(&server.addr, named("same"))
        .await
        .unwrap();
    let (mut events_a, mut events_b) = (watcher_a.events().unwrap(), watcher_b.events().unwrap());
    // The one stream is taken: later calls, on a clone too, get `None`. A
    // clone needs no `Clone` on the protocol's marker type (`new::Kv` has
    // none).
    let clone_a = watcher_a.clone();
    assert!(watcher_a.events().is_none() && clone_a.events().is_none());
    for w in [&watcher_a, &watcher_b] {
        assert_eq!(
            w.call(&new::Request::Watch).await.unwrap(),
            new::Response::Done
        );
        assert_eq!(w.negotiated().version, 2);
        assert_eq!(w.negotiated().encoding, Encoding::MessagePack);
    }
    let writer = TypedClient::<new::Kv>::connect(&server.addr, named("writer"))
        .await
        .unwrap();
    let set = new::Request::Set {
        key: "k".into(),
        value: "v".into(),
        ttl: Some(5),
    };
    assert_eq!(writer.call(&set).await.unwrap(), new::Response::Done);
    let get = new::Request::Get { key: "k".into() };
    assert_eq!(
        writer.call(&get).await.unwrap(),
        new::Response::Value(Some("v".into()))
    );
    for events in [&mut events_a, &mut events_b] {
        match tokio::time::timeout(PATIENCE, events.recv()).await.unwrap() {
            Some(TypedPushed::Event(new::Event::Changed { key, value })) => {
                assert_eq!((key.as_str(), value.as_str()), ("k", "v"))
            }
            other => panic!("expected the change, got {other:?}"),
        }
    }
    // The protocol's own error arrives as a value.
    let refused = writer
        .call(&new::Request::Set {
            key: "ro/x".into(),
            value: "v".into(),
            ttl: None,
        })
        .await;
    assert!(
        matches!(refused, Err(CallError::Remote(new::KvError::ReadOnly(ref k))) if k == "ro/x"),
        "{refused:?}"
    );
    // A one-way message; the close handshake makes sure it was handled.
    writer.send(&"hello".to_string()).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(*store.notes.lock().unwrap(), ["writer v2: hello"]);
    watcher_a.close().await.unwrap();
    watcher_b.close().await.unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn a_request_that_does_not_decode_fails_alone() {
    let server = new_server(Store::default()).await;
    // An untyped client on the typed connection's request path: garbage.
    let raw = rust_tcp::Client::connect_with(
        &server.addr,
        named("raw").app_protocol(Some(new::Kv::app_protocol())),
    )
    .await
    .unwrap();
    let failed = raw.request(&b"\xc1 not msgpack"[..]).await;
    match failed {
        Err(rust_tcp::ClientError::RequestFailed(reason)) => {
            assert!(
                reason.starts_with("cannot decode the kv request"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Spec 3.3.3: the reason is serde's own message, quoted its way.
    let unknown = raw.request(&b"\x81\xa6Rename\x80"[..]).await;
    match unknown {
        Err(rust_tcp::ClientError::RequestFailed(reason)) => assert!(
            reason.starts_with("cannot decode the kv request: unknown variant `Rename`"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // A payload is exactly one value: a byte after a good request makes it
    // undecodable, not silently shorter.
    let mut get = rust_tcp::typed::encode(
        &new::Request::Get { key: "k".into() },
        rust_tcp::protocol::v2::Encoding::MessagePack,
    )
    .unwrap()
    .to_vec();
    get.push(0xc0);
    match raw.request(get).await {
        Err(rust_tcp::ClientError::RequestFailed(reason)) => assert_eq!(
            reason,
            "cannot decode the kv request: bytes after the value (a payload holds exactly one)"
        ),
        other => panic!("{other:?}"),
    }
    // The connection is still up.
    let typed = TypedClient::<new::Kv>::connect(&server.addr, named("after"))
        .await
        .unwrap();
    assert!(
        typed
            .call(&new::Request::Get { key: "x".into() })
            .await
            .is_ok()
    );
    assert_eq!(raw.pending_requests(), 0);
    raw.close().await.unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn an_old_client_and_a_new_server_understand_each_other() {
    let server = new_server(Store::default()).await;
    let client = TypedClient::<old::Kv>::connect(&server.addr, named("old"))
        .await
        .unwrap();
    assert_eq!(client.negotiated().version, 1, "the highest both speak");
    // No `ttl` sent: the new server reads its default.
    let set = old::Request::Set {
        key: "a".into(),
        value: "1".into(),
    };
    assert_eq!(client.call(&set).await.unwrap(), old::Response::Done);
    let get = old::Request::Get { key: "a".into() };
    assert_eq!(
        client.call(&get).await.unwrap(),
        old::Response::Value(Some("1".into()))
    );
    client.close().await.unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn a_new_client_and_an_old_server_understand_each_other_where_they_can() {
    let server = old_server().await;
    let client = TypedClient::<new::Kv>::connect(&server.addr, named("new"))
        .await
        .unwrap();
    assert_eq!(client.negotiated().version, 1);
    // An added optional field: the old server ignores it.
    let set = new::Request::Set {
        key: "a".into(),
        value: "1".into(),
        ttl: Some(9),
    };
    assert_eq!(client.call(&set).await.unwrap(), new::Response::Done);
    // An added variant: the old server says what it did not understand,
    // and nobody is disconnected.
    match client.call(&new::Request::Delete { key: "a".into() }).await {
        Err(CallError::Failed(reason)) => {
            assert!(reason.contains("unknown variant"), "{reason}");
            assert!(reason.contains("Delete"), "{reason}");
        }
        other => panic!("expected a failure naming the variant, got {other:?}"),
    }
    let get = new::Request::Get { key: "a".into() };
    assert_eq!(
        client.call(&get).await.unwrap(),
        new::Response::Value(Some("1".into()))
    );
    client.close().await.unwrap();
    server.shut_down().await;
}

/// A breaking change is a new version: a client that speaks only version 2
/// is refused by a server that speaks only version 1, before any message.
#[tokio::test]
async fn a_breaking_change_is_a_version_both_sides_negotiate() {
    let server = old_server().await;
    let only_v2 = AppProtocol::new("kv", 2..=2);
    let refused =
        rust_tcp::Client::connect_with(&server.addr, named("v2").app_protocol(Some(only_v2))).await;
    match refused {
        Err(rust_tcp::ClientError::HandshakeRefused(c)) => {
            assert_eq!(c.reason, "server speaks kv 1, client kv 2")
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a session for incompatible versions"),
    }
    server.shut_down().await;
}

/// postcard, when the client prefers it and the server speaks it.
#[tokio::test]
async fn postcard_is_negotiated_when_both_speak_it() {
    struct Compact;
    impl Protocol for Compact {
        const NAME: &'static str = "kv";
        const VERSIONS: std::ops::RangeInclusive<u16> = 1..=2;
        const ENCODINGS: &'static [Encoding] = &[Encoding::Postcard];
        type Request = new::Request;
        type Response = new::Response;
        type Error = new::KvError;
        type Message = String;
        type Event = new::Event;
        type Item = ();
    }
    let server = new_server(Store::default()).await;
    let client = TypedClient::<Compact>::connect(&server.addr, named("compact"))
        .await
        .unwrap();
    assert_eq!(client.negotiated().encoding, Encoding::Postcard);
    let get = new::Request::Get { key: "none".into() };
    assert_eq!(client.call(&get).await.unwrap(), new::Response::Value(None));
    client.close().await.unwrap();
    server.shut_down().await;
}

/// Spec 3.3.3's examples are what the typed layer writes: a request, an
/// `Ok` and an `Err`, in MessagePack with names.
#[test]
fn the_specs_messagepack_examples_are_what_we_write() {
    #[derive(Serialize)]
    enum Request {
        Get { key: String },
    }
    #[derive(Serialize)]
    enum Response {
        Value(String),
    }
    #[derive(Serialize)]
    enum KvError {
        NoSuchKey(String),
    }
    let hex = |b: bytes::Bytes| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let spec = include_str!("../docs/PROTOCOL.md").replace('\n', " ");
    let get = rust_tcp::typed::encode(&Request::Get { key: "k".into() }, Encoding::MessagePack);
    let ok: Result<Response, KvError> = Ok(Response::Value("v".into()));
    let err: Result<Response, KvError> = Err(KvError::NoSuchKey("k".into()));
    for (what, bytes) in [
        ("request", get.unwrap()),
        (
            "ok",
            rust_tcp::typed::encode(&ok, Encoding::MessagePack).unwrap(),
        ),
        (
            "err",
            rust_tcp::typed::encode(&err, Encoding::MessagePack).unwrap(),
        ),
    ] {
        let bytes = hex(bytes);
        assert!(
            spec.contains(&bytes),
            "the spec's {what} example is not {bytes}"
        );
    }
}

/// A one-way message that does not decode is dropped alone: the messages
/// around it, typed and untyped on the one connection, are all handled,
/// and calls go on. (The server also logs it and counts it in
/// `rust_tcp_typed_undecodable_total`.)
#[tokio::test]
async fn an_undecodable_message_is_dropped_alone_and_text_stays_untyped() {
    let store = Store::default();
    let server = new_server(store.clone()).await;
    let client = TypedClient::<new::Kv>::connect(&server.addr, named("mixed"))
        .await
        .unwrap();
    // Raw bytes where a one-way message (a String) should be.
    client
        .untyped()
        .send_binary(&b"\xc1\xc1\xc1"[..])
        .await
        .unwrap();
    // Untyped text on the same connection.
    client.untyped().send_text("plain text").await.unwrap();
    client.send(&"typed".to_string()).await.unwrap();
    let get = new::Request::Get { key: "x".into() };
    assert_eq!(client.call(&get).await.unwrap(), new::Response::Value(None));
    client.close().await.unwrap();
    assert_eq!(*store.notes.lock().unwrap(), ["mixed v2: typed"]);
    server.shut_down().await;
}
