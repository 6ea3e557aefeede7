//! A job queue declared with `#[rust_tcp::service]`: run a job and follow
//! its output as it comes, cancel it by letting go of the call. The shape
//! of a build server, a report generator, a device's firmware update.
//!
//! - `run(lines, every_ms)` is a **streaming call**: the job runs inside
//!   the call, and its output lines are the call's items, sent at the pace
//!   the client reads them (a slow follower slows its own job's stream and
//!   nothing else; it is never dropped for it).
//! - Dropping the call (or its deadline passing) **cancels the job**: the
//!   server drops the job's future, and the job's end is pushed to the
//!   client as an event (`Ended { id, how: "cancelled" }`), so the client
//!   sees that the work stopped, not just that it stopped listening.
//! - `count()` is a unary call answering how many jobs ran, ended
//!   and were cancelled; a `traceparent` in the call's metadata is echoed
//!   in the answer's `trace` field, so a test can see it arrived.
//!
//! `cargo run --example job_queue` runs a demonstration; with `-- --serve
//! HOST:PORT [--ws-addr HOST:PORT]` it only serves (the Python and
//! JavaScript clients' tests use it), printing `listening on ADDR`, with
//! reflection on (`client describe`, `client call`); `-- --schema` prints
//! the protocol's schema, from which the Python and JavaScript clients are
//! generated.

use rust_tcp::typed::{
    CallContext, ItemStream, Protocol, Stream, TypedItems, TypedPushed, TypedPusher,
};
use rust_tcp::{CallOptions, ClientConfig, Server, ServerConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// ---- the protocol ----

/// How many jobs ran, ended and were cancelled.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Counted {
    pub started: u64,
    pub finished: u64,
    pub cancelled: u64,
    /// The trace id of the call's `traceparent`, if it had one.
    pub trace: Option<String>,
}

/// Pushed when a job ends, to the client that ran it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Event {
    Ended { id: u64, how: String },
}

/// The job-queue protocol, version 1: the whole of it.
#[rust_tcp::service(name = "jobs", event = Event)]
pub trait Jobs {
    /// Runs a job that writes `lines` lines, one every `every_ms`: its
    /// output lines are the call's items.
    async fn run(lines: u32, every_ms: u32) -> Stream<String>;
    /// A job fed by the client: each line the client streams comes back
    /// upper-cased (both streams at once).
    async fn upper(input: Stream<String>) -> Stream<String>;
    /// How many jobs ran, ended and were cancelled.
    async fn count() -> Counted;
}

// ---- the service ----

/// What every connection shares: the counts.
#[derive(Default)]
pub struct Queue {
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    next_id: AtomicU64,
    started: AtomicU64,
    finished: AtomicU64,
    cancelled: AtomicU64,
}

/// A running job: when it is dropped before it finished (the call was
/// cancelled, or its deadline passed), it counts and says so.
struct Running {
    id: u64,
    counts: Arc<Counts>,
    pusher: TypedPusher<JobsProtocol>,
    finished: bool,
}

impl Running {
    /// The job wrote all its lines; its drop now counts it as finished.
    fn done(&mut self) {
        self.finished = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let how = if self.finished {
            self.counts.finished.fetch_add(1, Ordering::Relaxed);
            "finished"
        } else {
            self.counts.cancelled.fetch_add(1, Ordering::Relaxed);
            "cancelled"
        };
        let _ = self.pusher.send(&Event::Ended {
            id: self.id,
            how: how.into(),
        });
    }
}

impl Jobs for Queue {
    async fn run(
        &self,
        call: &CallContext<JobsProtocol>,
        lines: u32,
        every_ms: u32,
    ) -> ItemStream<JobsProtocol> {
        let counts = self.counts.clone();
        let id = counts.next_id.fetch_add(1, Ordering::Relaxed);
        counts.started.fetch_add(1, Ordering::Relaxed);
        let job = Running {
            id,
            counts,
            pusher: call.connection.pusher.clone(),
            finished: false,
        };
        // The job is the stream: each line is made when the client can take
        // it; dropping the stream (a cancel, the deadline) drops the job.
        let output = futures::stream::unfold((0, job), move |(n, mut job)| async move {
            if n == lines {
                job.done();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(every_ms.into())).await;
            Some((format!("job line {n}"), (n + 1, job)))
        });
        Box::pin(output)
    }

    async fn upper(
        &self,
        _call: &CallContext<JobsProtocol>,
        input: TypedItems<JobsProtocol>,
    ) -> ItemStream<JobsProtocol> {
        let upper = futures::stream::unfold(input, |mut input| async move {
            let line = input
                .next()
                .await?
                .unwrap_or_else(|e| format!("undecodable: {e}"));
            Some((line.to_uppercase(), input))
        });
        Box::pin(upper)
    }

    async fn count(&self, call: &CallContext<JobsProtocol>) -> Counted {
        let trace = call
            .metadata
            .get_str("traceparent")
            .and_then(|t| t.split('-').nth(1))
            .map(str::to_owned);
        Counted {
            started: self.counts.started.load(Ordering::Relaxed),
            finished: self.counts.finished.load(Ordering::Relaxed),
            cancelled: self.counts.cancelled.load(Ordering::Relaxed),
            trace,
        }
    }
}

// ---- a demonstration ----

/// Runs one job to its end and cancels another half way, and returns what
/// the client saw, one line each.
pub async fn demo() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let config = ServerConfig::default().app_protocol(JobsProtocol::app_protocol());
    let server = Server::bind("127.0.0.1:0", config).await?;
    let addr = server.local_addr().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = JobsServer::new(Queue::default()).into_service();
    let running = tokio::spawn(server.run(service, async {
        let _ = stopped.await;
    }));
    let jobs = JobsClient::connect(&addr, ClientConfig::default().name("demo")).await?;
    let mut events = jobs.events().expect("first use");
    let mut seen = Vec::new();

    let mut job = jobs.run(3, 1).await?;
    while let Some(line) = job.next_item().await? {
        seen.push(format!("job 0: {line}"));
    }
    job.finish().await?;
    let mut job = jobs.run(1000, 1).await?;
    if let Some(line) = job.next_item().await? {
        seen.push(format!("job 1: {line}, then cancelled"));
    }
    drop(job);
    for _ in 0..2 {
        if let Some(TypedPushed::Event(Event::Ended { id, how })) = events.recv().await {
            seen.push(format!("pushed: job {id} {how}"));
        }
    }
    let counted = jobs.with_options(CallOptions::new()).count().await?;
    seen.push(format!("{counted:?}"));
    jobs.close().await?;
    let _ = stop.send(());
    running.await?;
    Ok(seen)
}

/// Serves the queue on `addr` (and WebSockets on `ws_addr`) until Ctrl-C
/// (SIGTERM ends the process).
#[allow(dead_code)] // run by `main`, not by the test that includes this file
async fn serve(addr: &str, ws_addr: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ServerConfig::default().app_protocol(JobsProtocol::app_protocol());
    if let Some(ws_addr) = ws_addr {
        config = config.websocket(rust_tcp::WebSocketConfig::new(ws_addr).javascript_client());
    }
    let server = Server::bind(addr, config).await?;
    println!("listening on {}", server.local_addr());
    if let Some(ws) = server.websocket_addr() {
        println!("listening for WebSockets on ws://{ws}/");
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    server
        // Reflection on: `client describe` and `client call` read the
        // schema from the running server.
        .run(
            JobsServer::new(Queue::default())
                .into_service()
                .reflection()?,
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await;
    Ok(())
}

#[allow(dead_code)] // run by `cargo run --example`, not by the test that includes this file
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {}
        [flag] if flag == "--schema" => {
            println!(
                "{}",
                rust_tcp::typed::Schema::of::<JobsProtocol>()?.to_json()
            );
            return Ok(());
        }
        [flag, addr] if flag == "--serve" => return serve(addr, None).await,
        [flag, addr, ws, ws_addr] if flag == "--serve" && ws == "--ws-addr" => {
            return serve(addr, Some(ws_addr)).await;
        }
        _ => {
            return Err(
                "usage: job_queue [--schema | --serve HOST:PORT [--ws-addr HOST:PORT]]".into(),
            );
        }
    }
    for line in demo().await? {
        println!("{line}");
    }
    Ok(())
}
