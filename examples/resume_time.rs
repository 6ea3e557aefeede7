//! How long a resumable session takes to come back after its connection
//! is cut (spec 3.14): a library server in this process, a loopback proxy
//! that cuts the client's connection on demand, and a client with resume;
//! each round cuts the connection and times from the cut to the client's
//! `Pushed::Resumed` notice (which includes the client's first reconnect
//! delay, 1 ms here, jittered to 0.5-1 ms).
//!
//! With `--store nats://HOST:PORT` (nats-server with JetStream), two
//! servers share a session store and the proxy sends each new connection
//! to the other one: every resume is then a session moving to another
//! server (read from the store, claimed, replayed).
//!
//! ```text
//! cargo run --release --example resume_time [ROUNDS] [--store URL]   # default 200
//! ```
//! Prints one JSON object: `rounds`, `across`, `p50_us`, `p99_us`, `max_us`.

use rust_tcp::protocol::v2::ResumeSettings;
use rust_tcp::{
    Client, ClientConfig, Handler, Message, PeerInfo, Pushed, Reconnect, Server, ServerConfig,
    Service,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

struct Quiet;
struct Nothing;

impl Service for Quiet {
    type Handler = Nothing;
    fn connect(&self, _: &PeerInfo) -> Nothing {
        Nothing
    }
}

impl Handler for Nothing {
    async fn on_text(&mut self, _: Message) {}
}

/// Forwards one connection at a time until `cut` is told, each to the
/// next of `targets` in turn.
async fn proxy(listener: TcpListener, targets: Vec<String>, cut: Arc<Notify>) {
    for target in targets.iter().cycle() {
        let Ok((mut client, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut server) = TcpStream::connect(target).await else {
            continue;
        };
        let cut = cut.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.notified() => {}
            }
        });
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let usage = "usage: resume_time [ROUNDS] [--store nats://HOST:PORT]";
    let (mut rounds, mut store) = (200, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => store = Some(args.next().ok_or_else(|| anyhow::anyhow!(usage))?),
            n => rounds = n.parse().map_err(|_| anyhow::anyhow!(usage))?,
        }
    }
    anyhow::ensure!(rounds > 0, "{usage} (at least 1 round)");
    let mut targets = Vec::new();
    for _ in 0..if store.is_some() { 2 } else { 1 } {
        let mut config = ServerConfig::default();
        if let Some(url) = &store {
            let settings = config.resume.clone().expect("on by default");
            let bucket = format!("resume_time_{}", std::process::id());
            let sessions = rust_tcp::SessionStore::connect(
                url,
                &bucket,
                settings.expiry,
                settings.replay_max_bytes,
            )
            .await?;
            config = config.session_store(sessions);
        }
        let server = Server::bind("127.0.0.1:0", config).await?;
        targets.push(server.local_addr().to_string());
        tokio::spawn(server.run(Quiet, std::future::pending()));
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let cut = Arc::new(Notify::new());
    tokio::spawn(proxy(listener, targets, cut.clone()));

    let config = ClientConfig::default()
        .reconnect(Some(
            Reconnect::default()
                .initial_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(10)),
        ))
        .resume(Some(ResumeSettings::default()));
    let client = Client::connect_with(&addr, config).await?;
    let mut incoming = client.incoming().expect("first use");
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        // Something in the session, so the resume has a count to check.
        client.send_text("tick").await?;
        let started = Instant::now();
        cut.notify_one();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), incoming.recv()).await {
                Ok(Some(Pushed::Resumed { .. })) => break,
                Ok(Some(Pushed::ResumeRefused { reason, .. })) => {
                    anyhow::bail!("resume refused: {reason}")
                }
                Ok(Some(_)) => {}
                Ok(None) => anyhow::bail!("the client ended"),
                Err(_) => anyhow::bail!("no resume within 10 s"),
            }
        }
        times.push(started.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_micros();
    println!(
        "{{\"rounds\":{rounds},\"across\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        store.is_some(),
        at(0.5),
        at(0.99),
        times[times.len() - 1].as_micros()
    );
    Ok(())
}
