//! Typed request/response, side by side: rust-tcp's typed layer (and its
//! raw `request()` underneath), tarpc (serde over TCP, bincode) and tonic
//! (gRPC, unary, prost), each echoing the same small message, each driven
//! by its own client library from this one program.
//!
//!   rpc_race server KIND ADDR
//!   rpc_race client KIND ADDR CONNECTIONS IN_FLIGHT SECONDS
//!
//! KIND: ours (typed), ours-raw (untyped request), tarpc, tonic. The client
//! prints one JSON line: requests/s and latency percentiles in µs.

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
    type Event = ();
    type Item = ();
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
    async fn call(&self, request: Msg, _: &rust_tcp::typed::Context<Echo>) -> Result<Msg, ()> {
        Ok(request)
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
}

#[derive(Clone)]
struct TarpcEcho;

impl EchoService for TarpcEcho {
    async fn echo(self, _: tarpc::context::Context, msg: Msg) -> Msg {
        msg
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
        "ours-raw" => {
            let server = rust_tcp::Server::bind(addr, ours_config()).await?;
            server.run(EchoRaw, never).await;
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
            "ours-raw" => Caller::OursRaw(rust_tcp::Client::connect(addr).await?),
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
             (KIND: ours, ours-raw, tarpc, tonic)"
        ),
    }
}
