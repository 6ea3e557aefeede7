//! How long a resumable session takes to come back after its connection
//! is cut (spec 3.14), on the same server: a library server in this
//! process, a loopback proxy that cuts the client's connection on demand,
//! and a client with resume; each round cuts the connection and times from
//! the cut to the client's `Pushed::Resumed` notice (which includes the
//! client's first reconnect delay, 1 ms here, jittered to 0.5-1 ms).
//!
//! ```text
//! cargo run --release --example resume_time [ROUNDS]   # default 200
//! ```
//! Prints one JSON object: `rounds`, `p50_us`, `p99_us`, `max_us`.

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

/// Forwards one connection at a time to `target` until `cut` is told.
async fn proxy(listener: TcpListener, target: String, cut: Arc<Notify>) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut server) = TcpStream::connect(&target).await else {
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
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| anyhow::anyhow!("usage: resume_time [ROUNDS]"))?,
        None => 200,
    };
    anyhow::ensure!(rounds > 0, "usage: resume_time [ROUNDS] (at least 1)");
    let server = Server::bind("127.0.0.1:0", ServerConfig::default()).await?;
    let target = server.local_addr().to_string();
    tokio::spawn(server.run(Quiet, std::future::pending()));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let cut = Arc::new(Notify::new());
    tokio::spawn(proxy(listener, target, cut.clone()));

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
        "{{\"rounds\":{rounds},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        at(0.5),
        at(0.99),
        times[times.len() - 1].as_micros()
    );
    Ok(())
}
