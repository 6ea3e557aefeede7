//! Typed request/response, side by side: rust-tcp's typed layer (and its
//! raw `request()` underneath), tarpc (serde over TCP, bincode) and tonic
//! (gRPC, unary, prost), each echoing the same small message, each driven
//! by its own client library from this one program.
//!
//!   rpc_race server KIND ADDR
//!   rpc_race client KIND ADDR CONNECTIONS IN_FLIGHT SECONDS
//!
//! KIND: ours (typed, the message itself as the request), ours-enum (the
//! hand-written enum form: a request enum with an `Echo { msg }` variant,
//! a response enum with `Echo(Msg)`), ours-macro (the same protocol
//! through `#[rust_tcp::service]`'s generated client and dispatch, the
//! very bytes ours-enum sends), ours-raw (untyped request), tarpc, tonic. The client
//! prints one JSON line: requests/s and latency percentiles in µs.
//!
//! Streams and cancellation (calls, spec 3.13), against the same servers:
//!
//!   rpc_race stream KIND ADDR ITEMS     KIND: ours-stream, ours-push, tonic-stream
//!   rpc_race cancel KIND ADDR TIMES     KIND: ours, tarpc
//!   rpc_race stalled ADDR STREAMS SERVER_PID
//!
//! `stream` receives ITEMS messages from the server: ours as a streaming
//! call (a window of 1,024 items, about what tonic's 64 KiB HTTP/2 stream
//! window holds of these messages), ours as pushed events (in batches of 1,000, each
//! asked for by a call, so the queue stays bounded), tonic as server
//! streaming. `cancel` measures, TIMES over, the time from the client
//! dropping a call in flight to the server's work for it being dropped (the
//! server reads the clock in its guard's `Drop`; both read the same clock).
//! `stalled` opens STREAMS streaming calls whose reader never reads, and
//! reports the server's memory before and after.

use anyhow::{Context as _, bail};
use futures::StreamExt;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod pb {
    tonic::include_proto!("echo");
}

/// The message, for the serde contestants.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Msg {
    id: u64,
    text: String,
}

// ---- ours ----

struct Echo;

impl rust_tcp::typed::Protocol for Echo {
    const NAME: &'static str = "echo";
    const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
    type Request = Msg;
    type Response = Msg;
    type Error = ();
    type Message = ();
    type Event = Msg;
    type Item = Msg;
}

/// The server's clock, as both processes read it.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// When the work of cancelled calls was dropped, for `cancel`.
#[derive(Default)]
struct Drops {
    at: std::sync::Mutex<Vec<u64>>,
    started: std::sync::atomic::AtomicU64,
    changed: tokio::sync::Notify,
}

static DROPS: std::sync::LazyLock<Drops> = std::sync::LazyLock::new(Drops::default);

impl Drops {
    fn started(&self) {
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Waits until `n` calls have started.
    async fn wait_started(&self, n: u64) {
        loop {
            let changed = self.changed.notified();
            if self.started.load(std::sync::atomic::Ordering::SeqCst) >= n {
                return;
            }
            changed.await;
        }
    }

    /// The time the `n`th (from 1) dropped call was dropped.
    async fn nth(&self, n: u64) -> u64 {
        loop {
            let changed = self.changed.notified();
            if let Some(&at) = self.at.lock().unwrap().get(n as usize - 1) {
                return at;
            }
            changed.await;
        }
    }
}

/// Dropped with a call's work: records when.
struct DropClock;
impl Drop for DropClock {
    fn drop(&mut self) {
        DROPS.at.lock().unwrap().push(now_ns());
        DROPS.changed.notify_waiters();
    }
}

#[derive(Clone)]
struct EchoTyped;

impl rust_tcp::typed::TypedService<Echo> for EchoTyped {
    type Handler = EchoTyped;
    fn connect(&self, _: &rust_tcp::typed::Context<Echo>) -> EchoTyped {
        EchoTyped
    }
}

impl rust_tcp::typed::TypedHandler<Echo> for EchoTyped {
    async fn call(
        &self,
        request: Msg,
        context: &rust_tcp::typed::Context<Echo>,
    ) -> Result<Msg, ()> {
        if let Some(n) = request.text.strip_prefix("push ") {
            // Our push path: events, fire and forget.
            // Each event made anew, as a stream's items are.
            let text = "x".repeat(32);
            for id in 0..n.parse::<u64>().unwrap_or(0) {
                let item = Msg {
                    id,
                    text: text.clone(),
                };
                if context.pusher.send(&item).is_err() {
                    return Err(());
                }
            }
        }
        if request.text == "last_drop" {
            return Ok(Msg {
                id: DROPS.nth(request.id).await,
                text: String::new(),
            });
        }
        Ok(request)
    }

    async fn stream(
        &self,
        request: Msg,
        _: rust_tcp::typed::TypedItems<Echo>,
        _: &rust_tcp::typed::CallContext<Echo>,
    ) -> Result<rust_tcp::typed::ItemStream<Echo>, rust_tcp::typed::StreamError<()>> {
        if request.text == "wait" {
            // One item to say it started, then its work waits until dropped.
            let guard = DropClock;
            let started = futures::stream::iter([Msg {
                id: 0,
                text: "started".into(),
            }]);
            let forever = futures::stream::once(async move {
                let _guard = guard;
                std::future::pending::<Msg>().await
            });
            return Ok(Box::pin(started.chain(forever)));
        }
        let text = "x".repeat(32);
        Ok(Box::pin(futures::stream::iter((0..request.id).map(
            move |id| Msg {
                id,
                text: text.clone(),
            },
        ))))
    }
}

/// The same echo as a `#[rust_tcp::service]`: what a user of the macro
/// writes, against the hand-written enum form above.
#[rust_tcp::service(name = "echo-macro")]
trait Echoes {
    async fn echo(msg: Msg) -> Msg;
}

struct EchoesImpl;

impl Echoes for EchoesImpl {
    async fn echo(&self, _: &rust_tcp::typed::CallContext<EchoesProtocol>, msg: Msg) -> Msg {
        msg
    }
}

/// The enum form, by hand: what the macro generates for `Echoes`, written
/// out, so the two race on the same bytes and differ only in the code.
struct EchoEnum;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum EnumRequest {
    Echo { msg: Msg },
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum EnumResponse {
    Echo(Msg),
}

impl rust_tcp::typed::Protocol for EchoEnum {
    const NAME: &'static str = "echo-enum";
    const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
    type Request = EnumRequest;
    type Response = EnumResponse;
    type Error = ();
    type Message = ();
    type Event = ();
    type Item = ();
}

#[derive(Clone)]
struct EchoEnumService;

impl rust_tcp::typed::TypedService<EchoEnum> for EchoEnumService {
    type Handler = EchoEnumService;
    fn connect(&self, _: &rust_tcp::typed::Context<EchoEnum>) -> EchoEnumService {
        EchoEnumService
    }
}

impl rust_tcp::typed::TypedHandler<EchoEnum> for EchoEnumService {
    async fn call(
        &self,
        request: EnumRequest,
        _: &rust_tcp::typed::Context<EchoEnum>,
    ) -> Result<EnumResponse, ()> {
        match request {
            EnumRequest::Echo { msg } => Ok(EnumResponse::Echo(msg)),
        }
    }
}

/// The untyped server: answers each request with its payload.
struct EchoRaw;
struct EchoRawHandler;

impl rust_tcp::Service for EchoRaw {
    type Handler = EchoRawHandler;
    fn connect(&self, _: &rust_tcp::PeerInfo) -> EchoRawHandler {
        EchoRawHandler
    }
}

impl rust_tcp::Handler for EchoRawHandler {
    async fn on_text(&mut self, _: rust_tcp::Message) {}
    async fn on_request(&mut self, payload: bytes::Bytes, responder: rust_tcp::Responder) {
        let _ = responder.respond(payload);
    }
}

fn ours_config() -> rust_tcp::ServerConfig {
    use rust_tcp::typed::Protocol;
    // One load generator opens every connection from one address.
    rust_tcp::ServerConfig::default()
        .max_connection_rate_per_ip(0)
        .app_protocol(Echo::app_protocol())
}

// ---- tarpc ----

#[tarpc::service]
trait EchoService {
    async fn echo(msg: Msg) -> Msg;
    /// Waits until dropped (cancelled by its client).
    async fn wait();
    /// Returns once `n` waits have started.
    async fn started(n: u64);
    /// When the `n`th cancelled wait was dropped.
    async fn last_drop(n: u64) -> u64;
}

#[derive(Clone)]
struct TarpcEcho;

impl EchoService for TarpcEcho {
    async fn echo(self, _: tarpc::context::Context, msg: Msg) -> Msg {
        msg
    }

    async fn wait(self, _: tarpc::context::Context) {
        let _guard = DropClock;
        DROPS.started();
        std::future::pending::<()>().await
    }

    async fn started(self, _: tarpc::context::Context, n: u64) {
        DROPS.wait_started(n).await
    }

    async fn last_drop(self, _: tarpc::context::Context, n: u64) -> u64 {
        DROPS.nth(n).await
    }
}

// ---- tonic ----

#[derive(Default)]
struct TonicEcho;

#[tonic::async_trait]
impl pb::echo_server::Echo for TonicEcho {
    async fn echo(
        &self,
        request: tonic::Request<pb::Msg>,
    ) -> Result<tonic::Response<pb::Msg>, tonic::Status> {
        Ok(tonic::Response::new(request.into_inner()))
    }

    type StreamStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::Msg, tonic::Status>> + Send>>;

    async fn stream(
        &self,
        request: tonic::Request<pb::Msg>,
    ) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> {
        let n = request.into_inner().id;
        let text = "x".repeat(32);
        let items = (0..n).map(move |id| {
            Ok(pb::Msg {
                id,
                text: text.clone(),
            })
        });
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(items))))
    }
}

async fn serve(kind: &str, addr: &str) -> anyhow::Result<()> {
    let never = std::future::pending::<()>();
    match kind {
        "ours" => {
            let server = rust_tcp::Server::bind(addr, ours_config()).await?;
            server
                .run(rust_tcp::typed::Typed::new(EchoTyped), never)
                .await;
        }
        "ours-macro" => {
            use rust_tcp::typed::Protocol;
            let config = rust_tcp::ServerConfig::default()
                .max_connection_rate_per_ip(0)
                .app_protocol(EchoesProtocol::app_protocol());
            let server = rust_tcp::Server::bind(addr, config).await?;
            server
                .run(EchoesServer::new(EchoesImpl).into_service(), never)
                .await;
        }
        "ours-raw" => {
            let server = rust_tcp::Server::bind(addr, ours_config()).await?;
            server.run(EchoRaw, never).await;
        }
        "ours-enum" => {
            use rust_tcp::typed::Protocol;
            let config = rust_tcp::ServerConfig::default()
                .max_connection_rate_per_ip(0)
                .app_protocol(EchoEnum::app_protocol());
            let server = rust_tcp::Server::bind(addr, config).await?;
            server
                .run(rust_tcp::typed::Typed::new(EchoEnumService), never)
                .await;
        }
        "tarpc" => {
            use tarpc::server::{Channel, incoming::Incoming};
            let listener = tarpc::serde_transport::tcp::listen(
                addr,
                tarpc::tokio_serde::formats::Bincode::default,
            )
            .await?;
            listener
                .filter_map(|r| futures::future::ready(r.ok()))
                .map(tarpc::server::BaseChannel::with_defaults)
                .max_channels_per_key(u32::MAX, |_| 0)
                .map(|channel| {
                    channel.execute(TarpcEcho.serve()).for_each(|f| async move {
                        tokio::spawn(f);
                    })
                })
                .buffer_unordered(100_000)
                .for_each(|_| async {})
                .await;
        }
        "tonic" => {
            tonic::transport::Server::builder()
                .add_service(pb::echo_server::EchoServer::new(TonicEcho))
                .serve(addr.parse()?)
                .await?;
        }
        other => bail!("unknown kind {other}"),
    }
    Ok(())
}

/// One connection's caller: `in_flight` requests at a time until `until`.
enum Caller {
    Ours(rust_tcp::typed::TypedClient<Echo>),
    OursMacro(EchoesClient),
    OursEnum(rust_tcp::typed::TypedClient<EchoEnum>),
    OursRaw(rust_tcp::Client),
    Tarpc(EchoServiceClient),
    Tonic(pb::echo_client::EchoClient<tonic::transport::Channel>),
}

impl Caller {
    async fn connect(kind: &str, addr: &str) -> anyhow::Result<Caller> {
        Ok(match kind {
            "ours" => Caller::Ours(
                rust_tcp::typed::TypedClient::connect(addr, rust_tcp::ClientConfig::default())
                    .await?,
            ),
            "ours-macro" => Caller::OursMacro(
                EchoesClient::connect(addr, rust_tcp::ClientConfig::default()).await?,
            ),
            "ours-raw" => Caller::OursRaw(rust_tcp::Client::connect(addr).await?),
            "ours-enum" => Caller::OursEnum(
                rust_tcp::typed::TypedClient::connect(addr, rust_tcp::ClientConfig::default())
                    .await?,
            ),
            "tarpc" => {
                let transport = tarpc::serde_transport::tcp::connect(
                    addr,
                    tarpc::tokio_serde::formats::Bincode::default,
                )
                .await?;
                Caller::Tarpc(
                    EchoServiceClient::new(tarpc::client::Config::default(), transport).spawn(),
                )
            }
            "tonic" => {
                Caller::Tonic(pb::echo_client::EchoClient::connect(format!("http://{addr}")).await?)
            }
            other => bail!("unknown kind {other}"),
        })
    }

    async fn call(&self, id: u64, text: &str) -> anyhow::Result<()> {
        let echoed = match self {
            Caller::Ours(c) => {
                c.call(&Msg {
                    id,
                    text: text.into(),
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .id
            }
            Caller::OursMacro(c) => {
                c.echo(Msg {
                    id,
                    text: text.into(),
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .id
            }
            Caller::OursEnum(c) => {
                let msg = Msg {
                    id,
                    text: text.into(),
                };
                match c
                    .call(&EnumRequest::Echo { msg })
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                {
                    EnumResponse::Echo(msg) => msg.id,
                }
            }
            Caller::OursRaw(c) => {
                let mut payload = id.to_be_bytes().to_vec();
                payload.extend_from_slice(text.as_bytes());
                let answer = c.request(payload).await?;
                u64::from_be_bytes(answer[..8].try_into()?)
            }
            Caller::Tarpc(c) => {
                let msg = Msg {
                    id,
                    text: text.into(),
                };
                c.echo(tarpc::context::current(), msg).await?.id
            }
            Caller::Tonic(c) => {
                let msg = pb::Msg {
                    id,
                    text: text.into(),
                };
                c.clone().echo(msg).await?.into_inner().id
            }
        };
        if echoed != id {
            bail!("answer {echoed} for request {id}");
        }
        Ok(())
    }
}

async fn load(
    kind: &str,
    addr: &str,
    connections: usize,
    in_flight: usize,
    seconds: f64,
) -> anyhow::Result<()> {
    let mut callers = Vec::new();
    for _ in 0..connections {
        callers.push(Arc::new(
            Caller::connect(kind, addr).await.context("connecting")?,
        ));
    }
    let text = "x".repeat(32);
    // Warm up, then measure.
    for c in &callers {
        c.call(0, &text).await?;
    }
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for (c, caller) in callers.iter().enumerate() {
        for k in 0..in_flight {
            let (caller, text) = (caller.clone(), text.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
                let mut id = ((c * in_flight + k) as u64) << 32;
                while Instant::now() < until {
                    id += 1;
                    let t = Instant::now();
                    caller.call(id, &text).await?;
                    latencies.saturating_record(t.elapsed().as_micros() as u64);
                }
                anyhow::Ok(latencies)
            }));
        }
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for t in tasks {
        all.add(t.await??)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"kind\":\"{kind}\",\"connections\":{connections},\"in_flight\":{in_flight},\"operations\":{},\"per_sec\":{:.1},\"latency_us\":{{\"p50\":{},\"p99\":{},\"max\":{}}}}}",
        all.len(),
        all.len() as f64 / elapsed,
        all.value_at_quantile(0.5),
        all.value_at_quantile(0.99),
        all.max()
    );
    Ok(())
}

/// Receives `items` messages from the server, one of three ways; items/s.
async fn stream(kind: &str, addr: &str, items: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut got = 0u64;
    match kind {
        "ours-stream" => {
            let c = rust_tcp::typed::TypedClient::<Echo>::connect(
                addr,
                rust_tcp::ClientConfig::default(),
            )
            .await?;
            let request = Msg {
                id: items,
                text: "stream".into(),
            };
            // A window of 1,024 items (~46 KB of these messages): what tonic's
            // HTTP/2 stream window (64 KiB) holds of them, roughly.
            let options = rust_tcp::CallOptions::new().server_stream(1024);
            let mut call = c
                .stream(&request, options)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            while call
                .next_item()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .is_some()
            {
                got += 1;
            }
            c.close().await?;
        }
        "ours-push" => {
            let c = rust_tcp::typed::TypedClient::<Echo>::connect(
                addr,
                rust_tcp::ClientConfig::default(),
            )
            .await?;
            let mut events = c.events().expect("first use");
            while got < items {
                let batch = (items - got).min(1000);
                let ask = Msg {
                    id: 0,
                    text: format!("push {batch}"),
                };
                c.call(&ask).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                for _ in 0..batch {
                    match events.recv().await {
                        Some(rust_tcp::typed::TypedPushed::Event(_)) => got += 1,
                        other => bail!("expected an event, got {other:?}"),
                    }
                }
            }
            c.close().await?;
        }
        "tonic-stream" => {
            let mut c = pb::echo_client::EchoClient::connect(format!("http://{addr}")).await?;
            let mut s = c
                .stream(pb::Msg {
                    id: items,
                    text: "stream".into(),
                })
                .await?
                .into_inner();
            while s.message().await?.is_some() {
                got += 1;
            }
        }
        other => bail!("unknown stream kind {other}"),
    }
    if got != items {
        bail!("{got} items of {items}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"kind\":\"{kind}\",\"items\":{items},\"operations\":{items},\"per_sec\":{:.1}}}",
        items as f64 / elapsed
    );
    Ok(())
}

/// `times` calls cancelled while in flight: from the client's drop to the
/// server's work dropped, in µs.
async fn cancel(kind: &str, addr: &str, times: u64) -> anyhow::Result<()> {
    let mut took = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    match kind {
        "ours" => {
            let c = rust_tcp::typed::TypedClient::<Echo>::connect(
                addr,
                rust_tcp::ClientConfig::default(),
            )
            .await?;
            for n in 1..=times {
                let wait = Msg {
                    id: 0,
                    text: "wait".into(),
                };
                let mut call = c
                    .stream(&wait, rust_tcp::CallOptions::new())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                call.next_item().await.map_err(|e| anyhow::anyhow!("{e}"))?; // started
                let t0 = now_ns();
                drop(call);
                let at = c
                    .call(&Msg {
                        id: n,
                        text: "last_drop".into(),
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .id;
                took.saturating_record(at.saturating_sub(t0) / 1000);
            }
        }
        "tarpc" => {
            let transport = tarpc::serde_transport::tcp::connect(
                addr,
                tarpc::tokio_serde::formats::Bincode::default,
            )
            .await?;
            let c = EchoServiceClient::new(tarpc::client::Config::default(), transport).spawn();
            for n in 1..=times {
                let waiting = {
                    let c = c.clone();
                    tokio::spawn(async move { c.wait(tarpc::context::current()).await })
                };
                c.started(tarpc::context::current(), n).await?;
                let t0 = now_ns();
                waiting.abort(); // drops the call's future: tarpc cancels it
                let at = c.last_drop(tarpc::context::current(), n).await?;
                took.saturating_record(at.saturating_sub(t0) / 1000);
            }
        }
        other => bail!("unknown cancel kind {other}"),
    }
    println!(
        "{{\"kind\":\"{kind}\",\"times\":{times},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        took.value_at_quantile(0.5),
        took.value_at_quantile(0.99),
        took.max()
    );
    Ok(())
}

fn rss_kib(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

/// `streams` streaming calls (100 per connection) whose reader never
/// reads: each server stream fills its window (16 items) and waits. The
/// server's memory before and once they all wait.
async fn stalled(addr: &str, streams: usize, server_pid: &str) -> anyhow::Result<()> {
    let before = rss_kib(server_pid)?;
    let mut clients = Vec::new();
    let mut calls = Vec::new();
    for i in 0..streams {
        if i % 100 == 0 {
            clients.push(
                rust_tcp::typed::TypedClient::<Echo>::connect(
                    addr,
                    rust_tcp::ClientConfig::default(),
                )
                .await?,
            );
        }
        let request = Msg {
            id: 1_000_000,
            text: "stream".into(),
        };
        let options = rust_tcp::CallOptions::new().server_stream(16);
        let c = clients.last().expect("one per 100");
        calls.push(
            c.stream(&request, options)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
    }
    // Every stream has its window of items sent and waits for credit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(server_pid)?;
    println!(
        "{{\"streams\":{streams},\"rss_before_kib\":{before},\"rss_after_kib\":{after},\"bytes_per_stream\":{:.0}}}",
        (after.saturating_sub(before) * 1024) as f64 / streams as f64
    );
    drop(calls);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["server", kind, addr] => serve(kind, addr).await,
        ["stream", kind, addr, items] => stream(kind, addr, items.parse()?).await,
        ["cancel", kind, addr, times] => cancel(kind, addr, times.parse()?).await,
        ["stalled", addr, streams, pid] => stalled(addr, streams.parse()?, pid).await,
        ["client", kind, addr, connections, in_flight, seconds] => {
            load(
                kind,
                addr,
                connections.parse()?,
                in_flight.parse()?,
                seconds.parse()?,
            )
            .await
        }
        _ => bail!(
            "usage: rpc_race server KIND ADDR | rpc_race client KIND ADDR CONNECTIONS IN_FLIGHT SECONDS \
             (KIND: ours, ours-enum, ours-macro, ours-raw, tarpc, tonic)"
        ),
    }
}
