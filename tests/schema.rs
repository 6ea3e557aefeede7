//! A protocol's schema as data (`rust_tcp::typed::Schema`): every call,
//! type, field and variant with its version, traced from the serde types
//! (renames as the wire has them, defaults found by probing), written as
//! JSON and read back; and served by a running server on request
//! (reflection, spec 3.13.1).

mod common;

use rust_tcp::typed::{
    CallContext, CallKind, Context, ItemStream, Protocol, Schema, Shape, Stream, Type,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub name: String,
    #[serde(rename = "prio")]
    pub priority: u8,
    pub note: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum State {
    Queued,
    Running { progress: u8 },
    Done(#[serde(with = "bytes_as_bytes")] Vec<u8>),
}

mod bytes_as_bytes {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Filter {
    pub min_progress: u8,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum JobError {
    NoSuchJob(u64),
}

/// A job queue.
#[rust_tcp::service(name = "jobs", versions = 1..=2, event = State)]
pub trait Jobs {
    async fn submit(job: Job) -> Result<u64, JobError>;
    async fn state(id: u64) -> Result<State, JobError>;
    #[since(2)]
    async fn watch(id: u64, filter: Filter) -> Stream<State>;
    #[oneway]
    async fn forget(id: u64);
}

struct Queue;

impl Jobs for Queue {
    async fn submit(&self, _: &CallContext<JobsProtocol>, _job: Job) -> Result<u64, JobError> {
        Ok(7)
    }
    async fn state(&self, _: &CallContext<JobsProtocol>, id: u64) -> Result<State, JobError> {
        Err(JobError::NoSuchJob(id))
    }
    async fn watch(
        &self,
        _: &CallContext<JobsProtocol>,
        _id: u64,
        _filter: Filter,
    ) -> ItemStream<JobsProtocol> {
        Box::pin(futures::stream::empty())
    }
    async fn forget(&self, _: &Context<JobsProtocol>, _id: u64) {}
}

fn named(name: &str) -> Type {
    Type::Named(name.into())
}

#[test]
fn a_service_is_described_call_by_call_with_versions() {
    let schema = Schema::of::<JobsProtocol>().unwrap();
    assert_eq!(schema.protocol, "jobs");
    assert_eq!(schema.versions, [1, 2]);
    assert_eq!(schema.encodings, ["msgpack"]);
    let calls: Vec<_> = schema
        .calls
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.kind,
                c.since,
                c.variant.as_str(),
                c.returns.clone(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("forget", CallKind::OneWay, 1, "Forget", None),
            ("state", CallKind::Unary, 1, "State", Some(named("State"))),
            ("submit", CallKind::Unary, 1, "Submit", Some(Type::U64)),
            (
                "watch",
                CallKind::Streaming,
                2,
                "Watch",
                Some(named("State"))
            ),
        ]
    );
    let watch = schema.call("watch").unwrap();
    let args: Vec<_> = watch
        .args
        .iter()
        .map(|a| (a.name.as_str(), a.ty.clone()))
        .collect();
    assert_eq!(args, [("id", Type::U64), ("filter", named("Filter"))]);
    assert_eq!(schema.error, named("JobError"));
    assert_eq!(schema.event, named("State"));
    assert_eq!(schema.item, named("State"));
    assert_eq!(schema.message, named("JobsMessage"));
}

#[test]
fn fields_are_as_the_wire_has_them_with_their_defaults_and_versions() {
    let schema = Schema::of::<JobsProtocol>().unwrap();
    let job = &schema.types["Job"];
    assert_eq!(job.since, 1);
    let Shape::Struct(fields) = &job.shape else {
        panic!("{job:?}")
    };
    let got: Vec<_> = fields
        .iter()
        .map(|f| (f.name.as_str(), f.ty.clone(), f.default, f.since))
        .collect();
    assert_eq!(
        got,
        [
            ("name", Type::Str, false, 1),
            ("prio", Type::U8, false, 1),
            ("note", Type::Option(Box::new(Type::Str)), true, 1),
            ("tags", Type::Seq(Box::new(Type::Str)), true, 1),
        ]
    );
    // Only the version-2 call reaches Filter.
    assert_eq!(schema.types["Filter"].since, 2);
    let Shape::Enum(variants) = &schema.types["State"].shape else {
        panic!()
    };
    let got: Vec<_> = variants
        .iter()
        .map(|v| (v.name.as_str(), v.index, v.shape.clone()))
        .collect();
    assert_eq!(got[0], ("Queued", 0, Shape::Unit));
    assert_eq!(got[2], ("Done", 2, Shape::Newtype(Type::Bytes)));
    let Shape::Enum(requests) = &schema.types["JobsRequest"].shape else {
        panic!()
    };
    let since: Vec<_> = requests
        .iter()
        .map(|v| (v.name.as_str(), v.since))
        .collect();
    assert_eq!(since, [("Submit", 1), ("State", 1), ("Watch", 2)]);
}

#[test]
fn the_json_reads_back_to_the_same_schema_and_a_newer_layout_is_refused() {
    let schema = Schema::of::<JobsProtocol>().unwrap();
    let json = schema.to_json();
    assert!(json.contains(r#""name": "prio""#), "{json}");
    assert_eq!(Schema::from_json(&json).unwrap(), schema);
    let newer = json.replacen(r#""schema": 1"#, r#""schema": 9"#, 1);
    let err = Schema::from_json(&newer).unwrap_err();
    assert_eq!(err.to_string(), "schema format 9; this version reads 1");
    let err = Schema::from_json("{}").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("not a rust-tcp schema: missing field `schema`"),
        "{err}"
    );
}

/// The enum form: calls are the request's variants, each answered with the
/// whole response type.
#[test]
fn an_enum_protocol_is_described_too() {
    #[derive(Serialize, Deserialize)]
    enum Request {
        Get { key: String },
        Clear,
    }
    struct Kv;
    impl Protocol for Kv {
        const NAME: &'static str = "kv";
        const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
        type Request = Request;
        type Response = Option<String>;
        type Error = String;
        type Message = ();
        type Event = ();
        type Item = ();
    }
    let schema = Schema::of::<Kv>().unwrap();
    let calls: Vec<_> = schema
        .calls
        .iter()
        .map(|c| (c.name.as_str(), c.kind, c.args.len(), c.returns.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("clear", CallKind::Unary, 0, None),
            ("get", CallKind::Unary, 1, None)
        ]
    );
    assert_eq!(schema.response, Type::Option(Box::new(Type::Str)));
    assert_eq!(schema.message, Type::Unit);
}

#[allow(dead_code)]
fn serve(_: JobsServer<Queue>) {}

/// Reflection: a server with it on answers the schema call, even to a
/// client that did not ask for the protocol; one with it off says so.
#[tokio::test]
async fn a_server_with_reflection_gives_its_schema_to_whoever_asks() {
    use common::InProcessServer;
    use rust_tcp::{Client, ClientConfig, ServerConfig};
    let config = ServerConfig::default().app_protocol(JobsProtocol::app_protocol());
    let service = JobsServer::new(Queue).into_service().reflection().unwrap();
    let server = InProcessServer::start(service, config.clone()).await;
    let client = Client::connect_with(&server.addr, ClientConfig::default().name("describe"))
        .await
        .unwrap();
    let schema = Schema::fetch(&client).await.unwrap();
    assert_eq!(schema, Schema::of::<JobsProtocol>().unwrap());
    client.close().await.unwrap();
    server.shut_down().await;

    let service = JobsServer::new(Queue).into_service();
    let server = InProcessServer::start(service, config).await;
    let client = Client::connect_with(&server.addr, ClientConfig::default())
        .await
        .unwrap();
    let err = Schema::fetch(&client).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("reflection is off on this server (it speaks jobs)"),
        "{err}"
    );
    client.close().await.unwrap();
    server.shut_down().await;
}

/// A request built from JSON by the schema is byte for byte what the Rust
/// types send, in both encodings; an answer decodes to the JSON serde
/// would make of it.
#[test]
fn json_through_the_schema_is_what_the_types_send() {
    use rust_tcp::protocol::v2::Encoding;
    use rust_tcp::typed::{Answer, encode};
    use serde_json::json;
    let schema = Schema::of::<JobsProtocol>().unwrap();
    let submit = schema.call("submit").unwrap();
    for encoding in [Encoding::MessagePack, Encoding::Postcard] {
        let args = json!({"job": {"name": "build", "prio": 3, "note": "fast", "tags": ["a", "b"]}});
        let typed = JobsRequest::Submit {
            job: Job {
                name: "build".into(),
                priority: 3,
                note: Some("fast".into()),
                tags: vec!["a".into(), "b".into()],
            },
        };
        assert_eq!(
            schema.encode_call(submit, &args, encoding).unwrap(),
            encode(&typed, encoding).unwrap(),
            "{encoding:?}"
        );
        let watch = schema.call("watch").unwrap();
        let typed = JobsRequest::Watch {
            id: u64::MAX,
            filter: Filter { min_progress: 50 },
        };
        let args = json!({"id": u64::MAX, "filter": {"min_progress": 50}});
        assert_eq!(
            schema.encode_call(watch, &args, encoding).unwrap(),
            encode(&typed, encoding).unwrap()
        );
        let forget = schema.call("forget").unwrap();
        assert_eq!(
            schema
                .encode_call(forget, &json!({"id": 9}), encoding)
                .unwrap(),
            encode(&JobsMessage::Forget { id: 9 }, encoding).unwrap()
        );

        let state = schema.call("state").unwrap();
        let ok: Result<JobsResponse, JobError> =
            Ok(JobsResponse::State(State::Running { progress: 5 }));
        let answer = schema
            .decode_answer(state, &encode(&ok, encoding).unwrap(), encoding)
            .unwrap();
        assert_eq!(answer, Answer::Ok(json!({"Running": {"progress": 5}})));
        let done: Result<JobsResponse, JobError> = Ok(JobsResponse::State(State::Done(vec![1, 2])));
        let answer = schema
            .decode_answer(state, &encode(&done, encoding).unwrap(), encoding)
            .unwrap();
        assert_eq!(answer, Answer::Ok(json!({"Done": [1, 2]})));
        let queued: Result<JobsResponse, JobError> = Ok(JobsResponse::State(State::Queued));
        let answer = schema
            .decode_answer(state, &encode(&queued, encoding).unwrap(), encoding)
            .unwrap();
        assert_eq!(answer, Answer::Ok(json!("Queued")));
        let err: Result<JobsResponse, JobError> = Err(JobError::NoSuchJob(3));
        let answer = schema
            .decode_answer(state, &encode(&err, encoding).unwrap(), encoding)
            .unwrap();
        assert_eq!(answer, Answer::Err(json!({"NoSuchJob": 3})));
        // A stream's items and its end.
        let item = schema
            .decode_value(
                &schema.item,
                &encode(&State::Running { progress: 1 }, encoding).unwrap(),
                encoding,
            )
            .unwrap();
        assert_eq!(item, json!({"Running": {"progress": 1}}));
        let end: Result<(), JobError> = Ok(());
        let answer = schema
            .decode_answer(watch, &encode(&end, encoding).unwrap(), encoding)
            .unwrap();
        assert_eq!(answer, Answer::Ok(json!(null)));
    }
}

/// JSON that does not fit says where and why, before anything is sent.
#[test]
fn json_that_does_not_fit_the_schema_says_where() {
    use rust_tcp::protocol::v2::Encoding;
    use serde_json::json;
    let schema = Schema::of::<JobsProtocol>().unwrap();
    let submit = schema.call("submit").unwrap();
    let cases = [
        (
            json!({"job": {"name": "x", "prio": 300}}),
            "args.Submit.job.prio: 300 does not fit u8",
        ),
        (
            json!({"job": {"name": 1, "prio": 1}}),
            "args.Submit.job.name: expected a string, got a number",
        ),
        (
            json!({"job": {"prio": 1}}),
            "args.Submit.job.name: missing field `name` of `Job`",
        ),
        (
            json!({"job": {"name": "x", "prio": 1, "colour": "red"}}),
            "args.Submit.job: `Job` has no field `colour` (it has: name, prio, note, tags)",
        ),
        (
            json!({}),
            "args.Submit.job: missing field `job` of `Submit`",
        ),
        (
            json!([1]),
            "args: give the arguments as a JSON object by name, not an array",
        ),
    ];
    for (args, said) in cases {
        let err = schema
            .encode_call(submit, &args, Encoding::MessagePack)
            .unwrap_err();
        assert_eq!(err.to_string(), said);
    }
    // A field with a default may be left out in MessagePack (the receiver
    // fills it in), not in postcard, which has no way to leave one out;
    // an Option left out is None in both.
    let args = json!({"job": {"name": "x", "prio": 1}});
    assert!(
        schema
            .encode_call(submit, &args, Encoding::MessagePack)
            .is_ok()
    );
    let err = schema
        .encode_call(submit, &args, Encoding::Postcard)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "args.Submit.job.tags: missing field `tags` of `Job`"
    );
    let state = schema.call("state").unwrap();
    let err = schema
        .decode_answer(state, b"\x81\xa2Ok\x81\xa4Nope\xc0", Encoding::MessagePack)
        .unwrap_err();
    assert!(err.to_string().contains("unknown variant `Nope`"), "{err}");
}
