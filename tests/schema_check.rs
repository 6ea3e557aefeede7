//! `client schema check OLD NEW`: each kind of change found, with the
//! peers it breaks in each encoding, exit status 1 on a break — one test
//! per rule, on schemas traced from real types (then changed as a
//! developer would change the types), and one on a new version that breaks
//! nothing.

mod common;

use common::run_client;
use rust_tcp::typed::{CallContext, Field, Protocol, Schema, Shape, Type};
use serde::{Deserialize, Serialize};

mod v1 {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Job {
        pub name: String,
        pub prio: u8,
        pub note: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub enum State {
        Queued,
        Running { progress: u8 },
    }

    #[rust_tcp::service(name = "jobs", versions = 1..=1, event = State)]
    pub trait Jobs {
        async fn submit(job: Job) -> u64;
        async fn state(id: u64) -> State;
    }

    pub struct Q;
    impl Jobs for Q {
        async fn submit(&self, _: &CallContext<JobsProtocol>, _: Job) -> u64 {
            0
        }
        async fn state(&self, _: &CallContext<JobsProtocol>, _: u64) -> State {
            State::Queued
        }
    }
}

/// The same protocol a version later: a field with a default, a call of
/// version 2. Nothing breaks.
mod v2 {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Job {
        pub name: String,
        pub prio: u8,
        pub note: Option<String>,
        #[serde(default)]
        pub tags: Vec<String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub enum State {
        Queued,
        Running { progress: u8 },
    }

    #[rust_tcp::service(name = "jobs", versions = 1..=2, event = State)]
    pub trait Jobs {
        async fn submit(job: Job) -> u64;
        async fn state(id: u64) -> State;
        #[since(2)]
        async fn cancel(id: u64) -> bool;
    }

    pub struct Q;
    impl Jobs for Q {
        async fn submit(&self, _: &CallContext<JobsProtocol>, _: Job) -> u64 {
            0
        }
        async fn state(&self, _: &CallContext<JobsProtocol>, _: u64) -> State {
            State::Queued
        }
        async fn cancel(&self, _: &CallContext<JobsProtocol>, _: u64) -> bool {
            true
        }
    }
}

/// An enum protocol speaking both encodings, for postcard's rules.
mod both {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Request {
        Put { key: String, value: u32 },
    }

    pub struct Kv;
    impl Protocol for Kv {
        const NAME: &'static str = "kv";
        const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
        const ENCODINGS: &'static [rust_tcp::protocol::v2::Encoding] = &[
            rust_tcp::protocol::v2::Encoding::MessagePack,
            rust_tcp::protocol::v2::Encoding::Postcard,
        ];
        type Request = Request;
        type Response = bool;
        type Error = String;
        type Message = ();
        type Event = ();
        type Item = ();
    }
}

fn old() -> Schema {
    Schema::of::<v1::JobsProtocol>().unwrap()
}

/// The fields of `both::Kv`'s `Put` request, to change.
fn put_fields(schema: &mut Schema) -> &mut Vec<Field> {
    let Shape::Enum(vs) = &mut schema.types.get_mut("Request").unwrap().shape else {
        panic!("Request is an enum")
    };
    let Shape::Struct(fs) = &mut vs[0].shape else {
        panic!("Put has fields")
    };
    fs
}

/// `schema check` on the two schemas: its output, and whether it passed.
fn check(old: &Schema, new: &Schema) -> (String, bool) {
    let dir = std::env::temp_dir().join(format!(
        "rust-tcp-check-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (o, n) = (dir.join("old.json"), dir.join("new.json"));
    std::fs::write(&o, old.to_json()).unwrap();
    std::fs::write(&n, new.to_json()).unwrap();
    let out = run_client(
        &["schema", "check", o.to_str().unwrap(), n.to_str().unwrap()],
        None,
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8(out.stdout).unwrap(), out.status.success())
}

/// What `schema check` prints for a schema pair with one breaking change:
/// the change, a line per peer pair and encoding it breaks, the count.
fn one_break(what: &str, breaks: &[&str]) -> (String, bool) {
    let mut out = format!("BREAKING  {what}\n");
    for b in breaks {
        out += &format!("          breaks {b}\n");
    }
    out += "1 changes, 1 breaking\n";
    (out, false)
}

const OCNS: &str = "old client → new server (msgpack)";
const NCOS: &str = "new client → old server (msgpack)";

fn fields<'a>(schema: &'a mut Schema, ty: &str) -> &'a mut Vec<Field> {
    match &mut schema.types.get_mut(ty).unwrap().shape {
        Shape::Struct(fields) => fields,
        other => panic!("{ty} is {other:?}"),
    }
}

fn variants<'a>(schema: &'a mut Schema, ty: &str) -> &'a mut Vec<rust_tcp::typed::Variant> {
    match &mut schema.types.get_mut(ty).unwrap().shape {
        Shape::Enum(variants) => variants,
        other => panic!("{ty} is {other:?}"),
    }
}

#[test]
fn the_same_schema_has_no_changes() {
    assert_eq!(check(&old(), &old()), ("no changes\n".into(), true));
}

#[test]
fn a_new_version_with_a_defaulted_field_and_a_later_call_breaks_nothing() {
    let new = Schema::of::<v2::JobsProtocol>().unwrap();
    let (out, ok) = check(&old(), &new);
    assert_eq!(
        out,
        "ok        call `cancel` added in version 2\n\
         ok        field `tags` of `Job` added with a default\n\
         2 changes, none breaking\n"
    );
    assert!(ok);
}

#[test]
fn a_removed_field_breaks_new_clients_of_old_servers() {
    let mut new = old();
    fields(&mut new, "Job").retain(|f| f.name != "prio");
    assert_eq!(
        check(&old(), &new),
        one_break("field `prio` of `Job` removed", &[NCOS])
    );
    // A removed Option (which had a default) breaks nobody in MessagePack.
    let mut new = old();
    fields(&mut new, "Job").retain(|f| f.name != "note");
    assert_eq!(
        check(&old(), &new),
        (
            "ok        field `note` of `Job` removed\n1 changes, none breaking\n".into(),
            true
        )
    );
}

#[test]
fn a_renamed_field_breaks_both_ways() {
    let mut new = old();
    fields(&mut new, "Job")[1].name = "priority".into();
    assert_eq!(
        check(&old(), &new),
        one_break("field `prio` of `Job` renamed to `priority`", &[OCNS, NCOS])
    );
}

#[test]
fn a_changed_type_breaks_both_ways() {
    let mut new = old();
    fields(&mut new, "Job")[1].ty = Type::Str;
    assert_eq!(
        check(&old(), &new),
        one_break("Job.prio: type changed from u8 to String", &[OCNS, NCOS])
    );
}

#[test]
fn a_new_field_without_a_default_breaks_old_clients_of_new_servers() {
    let mut new = old();
    fields(&mut new, "Job").push(Field::new("owner", Type::Str));
    assert_eq!(
        check(&old(), &new),
        one_break("field `owner` of `Job` added without a default", &[OCNS])
    );
}

#[test]
fn variants_added_to_what_servers_send_break_old_clients_and_removed_ones_new_clients() {
    let mut new = old();
    let done = rust_tcp::typed::Variant::new("Done", 2, Shape::Unit);
    variants(&mut new, "State").push(done);
    assert_eq!(
        check(&old(), &new),
        one_break("variant `Done` of `State` added", &[OCNS])
    );
    let mut new = old();
    variants(&mut new, "State").retain(|v| v.name != "Running");
    assert_eq!(
        check(&old(), &new),
        one_break("variant `Running` of `State` removed", &[NCOS])
    );
}

#[test]
fn a_call_added_without_a_new_version_reuses_the_version_number() {
    let mut new = Schema::of::<v2::JobsProtocol>().unwrap();
    new.versions = [1, 1];
    for call in &mut new.calls {
        call.since = 1;
    }
    let (out, ok) = check(&old(), &new);
    let reused = "call `cancel` added in version 1, which old servers speak too (a reused version \
                  number): give it #[since(2)] and the protocol that version";
    assert!(
        out.starts_with(&format!("BREAKING  {reused}\n          breaks {NCOS}\n")),
        "{out}"
    );
    assert!(!ok);
}

#[test]
fn a_removed_call_breaks_old_clients() {
    let mut new = old();
    new.calls.retain(|c| c.name != "state");
    variants(&mut new, "JobsRequest").retain(|v| v.name != "State");
    assert_eq!(
        check(&old(), &new),
        one_break("call `state` removed", &[OCNS])
    );
}

#[test]
fn postcard_is_positional_so_reordering_breaks_it_and_renaming_does_not() {
    let old = Schema::of::<both::Kv>().unwrap();
    let mut new = old.clone();
    put_fields(&mut new).swap(0, 1);
    assert_eq!(
        check(&old, &new),
        one_break(
            "fields of `Request::Put` reordered",
            &[
                "old client → new server (postcard)",
                "new client → old server (postcard)"
            ]
        )
    );
    let mut new = old.clone();
    put_fields(&mut new)[1].name = "amount".into();
    let (out, _) = check(&old, &new);
    assert!(
        out.contains("breaks old client → new server (msgpack)\n") && !out.contains("postcard"),
        "{out}"
    );
}

#[test]
fn a_bad_file_is_one_line_and_exit_status_1() {
    let out = run_client(
        &[
            "schema",
            "check",
            "/nonexistent/old.json",
            "/nonexistent/new.json",
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: reading /nonexistent/old.json: No such file"),
        "{err}"
    );
}

#[allow(dead_code)]
fn servers(_: v1::JobsServer<v1::Q>, _: v2::JobsServer<v2::Q>) {}

/// `schema stamp OLD NEW`: what the last release had keeps its version,
/// what is new appeared in the new highest version — so a field added to
/// a type that existed says when it came, which the types alone cannot.
#[test]
fn stamping_carries_versions_so_an_added_field_says_when_it_came() {
    let dir = std::env::temp_dir().join(format!("rust-tcp-stamp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (o, n) = (dir.join("v1.json"), dir.join("v2.json"));
    std::fs::write(&o, old().to_json()).unwrap();
    let v2 = Schema::of::<v2::JobsProtocol>().unwrap();
    // Traced alone, v2's new field looks as old as its type.
    let Shape::Struct(fields) = &v2.types["Job"].shape else {
        panic!()
    };
    assert_eq!(fields.iter().find(|f| f.name == "tags").unwrap().since, 1);
    std::fs::write(&n, v2.to_json()).unwrap();
    let out = run_client(
        &["schema", "stamp", o.to_str().unwrap(), n.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stamped = Schema::from_json(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let Shape::Struct(fields) = &stamped.types["Job"].shape else {
        panic!()
    };
    let since: Vec<_> = fields.iter().map(|f| (f.name.as_str(), f.since)).collect();
    assert_eq!(since, [("name", 1), ("prio", 1), ("note", 1), ("tags", 2)]);
    assert_eq!(stamped.types["Job"].since, 1);
    assert_eq!(stamped.call("cancel").unwrap().since, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
