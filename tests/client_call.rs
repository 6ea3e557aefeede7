//! `client describe` and `client call` against a typed server with
//! reflection on: the calls listed from the server's own schema, and any
//! call made from JSON with its answer printed as JSON (a stream: a line
//! per item), the protocol's error and every mistake with a clear line and
//! exit status 1.

mod common;

use common::{InProcessServer, run_client};
use rust_tcp::ServerConfig;
use rust_tcp::typed::{CallContext, Context, ItemStream, Protocol, Schema, Stream};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum StoreError {
    ReadOnly { key: String },
}

/// A store to call from the command line.
#[rust_tcp::service(name = "store", versions = 1..=2)]
pub trait Store {
    async fn put(entry: Entry) -> Result<u32, StoreError>;
    async fn count() -> u32;
    async fn countdown(from: u32) -> Stream<u32>;
    #[oneway]
    async fn note(text: String);
    #[since(2)]
    async fn notes() -> Vec<String>;
}

#[derive(Default)]
struct Memory {
    entries: Mutex<Vec<Entry>>,
    notes: Mutex<Vec<String>>,
}

impl Store for Memory {
    async fn put(&self, _: &CallContext<StoreProtocol>, entry: Entry) -> Result<u32, StoreError> {
        if entry.key.starts_with("ro-") {
            return Err(StoreError::ReadOnly { key: entry.key });
        }
        let mut entries = self.entries.lock().unwrap();
        entries.push(entry);
        Ok(entries.len() as u32)
    }
    async fn count(&self, _: &CallContext<StoreProtocol>) -> u32 {
        self.entries.lock().unwrap().len() as u32
    }
    async fn countdown(
        &self,
        _: &CallContext<StoreProtocol>,
        from: u32,
    ) -> ItemStream<StoreProtocol> {
        Box::pin(futures::stream::iter((0..=from).rev()))
    }
    async fn note(&self, _: &Context<StoreProtocol>, text: String) {
        self.notes.lock().unwrap().push(text);
    }
    async fn notes(&self, _: &CallContext<StoreProtocol>) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }
}

async fn start(reflection: bool) -> InProcessServer {
    let config = ServerConfig::default().app_protocol(StoreProtocol::app_protocol());
    let service = StoreServer::new(Memory::default()).into_service();
    let service = if reflection {
        service.reflection().unwrap()
    } else {
        service
    };
    InProcessServer::start(service, config).await
}

/// The client binary's stdout, stderr and whether it succeeded.
async fn client(args: &[&str]) -> (String, String, bool) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_client(&args, None)
    })
    .await
    .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_lists_the_calls_and_types_from_the_server() {
    let server = start(true).await;
    let (out, err, ok) = client(&["--addr", &server.addr, "describe"]).await;
    assert!(ok, "{err}");
    let expected = [
        "store 1-2 (msgpack)",
        "calls:",
        "  count() -> u32",
        "  countdown(from: u32) -> stream of u32",
        "  note(text: String) (one-way)",
        "  notes() -> Vec<String>  (since 2)",
        "  put(entry: Entry) -> u32",
        "error: StoreError",
        "item: u32",
        "types:",
        "  struct Entry { key: String, value?: Option<String> }",
        "  enum StoreError { ReadOnly { key: String } }",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
    let (json, _, ok) = client(&["--addr", &server.addr, "describe", "--json"]).await;
    assert!(ok);
    assert_eq!(
        Schema::from_json(&json).unwrap(),
        Schema::of::<StoreProtocol>().unwrap()
    );
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_makes_any_call_from_json_and_prints_json() {
    let server = start(true).await;
    let addr = server.addr.as_str();
    let put = r#"{"entry": {"key": "colour", "value": "blue"}}"#;
    assert_eq!(
        client(&["--addr", addr, "call", "put", put]).await,
        ("1\n".into(), String::new(), true)
    );
    // An Option field may be left out.
    let put = r#"{"entry": {"key": "size"}}"#;
    assert_eq!(client(&["--addr", addr, "call", "put", put]).await.0, "2\n");
    assert_eq!(client(&["--addr", addr, "call", "count"]).await.0, "2\n");
    // A stream: one line per item.
    let (out, _, ok) = client(&["--addr", addr, "call", "countdown", r#"{"from": 3}"#]).await;
    assert!(ok);
    assert_eq!(out, "3\n2\n1\n0\n");
    // One-way, then a version-2 call that sees it (the closing handshake
    // means the note was handled before the first client exited).
    let (_, err, ok) = client(&["--addr", addr, "call", "note", r#"{"text": "hi"}"#]).await;
    assert!(ok && err.contains("sent `note`"), "{err}");
    assert_eq!(
        client(&["--addr", addr, "call", "notes"]).await.0,
        "[\"hi\"]\n"
    );
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mistake_is_one_clear_line_and_exit_status_1() {
    let server = start(true).await;
    let addr = server.addr.as_str();
    // The protocol's own error: printed as JSON, said on stderr.
    let (out, err, ok) = client(&[
        "--addr",
        addr,
        "call",
        "put",
        r#"{"entry": {"key": "ro-x"}}"#,
    ])
    .await;
    assert!(!ok);
    assert_eq!(out, "{\"ReadOnly\":{\"key\":\"ro-x\"}}\n");
    assert!(
        err.contains("`put` answered with the protocol's error"),
        "{err}"
    );
    let cases: [(&[&str], &str); 5] = [
        (
            &["call", "get"],
            "store has no call `get`; it has: count, countdown, note, notes, put",
        ),
        (&["call", "put", "{oops"], "the arguments are not JSON"),
        (
            &["call", "put", r#"{"entry": {"key": 5}}"#],
            "args.Put.entry.key: expected a string, got a number",
        ),
        (
            &["call", "count", "--encoding", "postcard"],
            "no common encoding: server speaks msgpack, client postcard",
        ),
        (
            &["--v1", "call", "count"],
            "typed protocols need protocol v2",
        ),
    ];
    for (args, said) in cases {
        let mut full = vec!["--addr", addr];
        full.extend_from_slice(args);
        let (out, err, ok) = client(&full).await;
        assert!(!ok, "{args:?} succeeded");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains(said), "{args:?}: {err}");
    }
    server.shut_down().await;

    let server = start(false).await;
    let (_, err, ok) = client(&["--addr", &server.addr, "describe"]).await;
    assert!(!ok);
    assert!(
        err.contains("reflection is off on this server (it speaks store)"),
        "{err}"
    );
    server.shut_down().await;
}

/// An enum protocol speaking both encodings: `--encoding postcard` makes
/// the same call positionally, encoded and decoded through the schema.
mod both {
    use super::*;
    use rust_tcp::protocol::v2::Encoding;
    use rust_tcp::typed::{TypedHandler, TypedService};

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Request {
        Add {
            a: i32,
            b: i32,
            label: Option<String>,
        },
    }

    pub struct Sum;
    impl Protocol for Sum {
        const NAME: &'static str = "sum";
        const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
        const ENCODINGS: &'static [Encoding] = &[Encoding::MessagePack, Encoding::Postcard];
        type Request = Request;
        type Response = (i64, String);
        type Error = String;
        type Message = ();
        type Event = ();
        type Item = ();
    }

    #[derive(Clone)]
    pub struct Adder;
    impl TypedService<Sum> for Adder {
        type Handler = Adder;
        fn connect(&self, _: &Context<Sum>) -> Adder {
            Adder
        }
    }
    impl TypedHandler<Sum> for Adder {
        async fn call(
            &self,
            request: Request,
            context: &Context<Sum>,
        ) -> Result<(i64, String), String> {
            let Request::Add { a, b, label } = request;
            let encoding = format!("{:?}", context.encoding);
            Ok((i64::from(a) + i64::from(b), label.unwrap_or(encoding)))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn call_speaks_postcard_when_asked() {
    let config = ServerConfig::default().app_protocol(both::Sum::app_protocol());
    let service = rust_tcp::typed::Typed::new(both::Adder)
        .reflection()
        .unwrap();
    let server = InProcessServer::start(service, config).await;
    let addr = server.addr.as_str();
    // `add` with `args`, in `encoding` if given: what it printed.
    let add = |args: &'static str, encoding: Option<&'static str>| async move {
        let mut argv = vec!["--addr", addr, "call", "add", args];
        argv.extend(encoding.map(|e| ["--encoding", e]).into_iter().flatten());
        let (out, err, ok) = client(&argv).await;
        assert!(ok, "{argv:?}: {err}");
        out
    };
    let args = r#"{"a": 2, "b": -5}"#;
    assert_eq!(add(args, Some("postcard")).await, "[-3,\"Postcard\"]\n");
    assert_eq!(add(args, None).await, "[-3,\"MessagePack\"]\n");
    let labelled = r#"{"a": 1, "b": 1, "label": "x"}"#;
    assert_eq!(add(labelled, Some("postcard")).await, "[2,\"x\"]\n");
    server.shut_down().await;
}
