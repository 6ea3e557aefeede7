//! Measures broadcast across servers (`scripts/cluster_bench.sh` starts the
//! servers, NATS and HAProxy and runs this):
//!
//! - `fanout FROM TO RECEIVERS COUNT`: RECEIVERS chat clients on server TO,
//!   one sender on server FROM sends COUNT messages; prints the messages
//!   delivered per second (COUNT x RECEIVERS over the time until the last
//!   receiver has them all).
//! - `latency FROM TO COUNT`: one message at a time from a client on FROM to
//!   a client on TO, each waited for; prints the median and p99 in µs (FROM
//!   = TO gives the same-server figure, the difference is the NATS hop).
//! - `failover ADDR`: connects through the balancer at ADDR with
//!   reconnecting on, waits for the server to go away, and prints how long
//!   the client took from the notice to being connected again.

use rust_tcp::{Client, ClientConfig, Pushed, Reconnect};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["fanout", from, to, receivers, count] => {
            fanout(from, to, receivers.parse()?, count.parse()?).await
        }
        ["latency", from, to, count] => latency(from, to, count.parse()?).await,
        ["failover", addr] => failover(addr).await,
        _ => anyhow::bail!(
            "usage: cluster_bench fanout FROM TO RECEIVERS COUNT | latency FROM TO COUNT | failover ADDR"
        ),
    }
}

async fn connect(addr: &str, name: &str) -> anyhow::Result<Client> {
    let config = ClientConfig::default()
        .name(name)
        .incoming_capacity(1 << 16)
        .max_queued_bytes(64 << 20);
    Ok(Client::connect_with(addr, config).await?)
}

async fn fanout(from: &str, to: &str, receivers: usize, count: usize) -> anyhow::Result<()> {
    let mut waiting = Vec::new();
    for i in 0..receivers {
        let client = connect(to, &format!("r{i}")).await?;
        let mut incoming = client.incoming().expect("first use");
        waiting.push(tokio::spawn(async move {
            let mut got = 0;
            while got < count {
                match tokio::time::timeout(Duration::from_secs(30), incoming.recv()).await {
                    Ok(Some(Pushed::Text(_))) => got += 1,
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            drop(client);
            got
        }));
    }
    let sender = connect(from, "sender").await?;
    // Everyone is in the room; the clock starts with the first message.
    let started = Instant::now();
    for i in 0..count {
        sender.send_text(format!("message {i}")).await?;
    }
    let mut delivered = 0;
    for w in waiting {
        delivered += w.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fanout: {count} messages to {receivers} receivers on the other server: {delivered} delivered in {secs:.3} s = {:.0} deliveries/s ({:.0} messages/s in)",
        delivered as f64 / secs,
        count as f64 / secs
    );
    sender.close().await?;
    Ok(())
}

async fn latency(from: &str, to: &str, count: usize) -> anyhow::Result<()> {
    let receiver = connect(to, "latency-rx").await?;
    let mut incoming = receiver.incoming().expect("first use");
    let sender = connect(from, "latency-tx").await?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..count + 100 {
        let sent = Instant::now();
        sender.send_text(format!("{i}")).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), incoming.recv()).await {
                Ok(Some(Pushed::Text(m))) if m.as_str().ends_with(&format!(": {i}")) => break,
                Ok(Some(_)) => {}
                _ => anyhow::bail!("message {i} was not relayed within 5 s"),
            }
        }
        // The first 100 warm up.
        if i >= 100 {
            samples.push(sent.elapsed().as_secs_f64() * 1e6);
        }
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "latency {from} -> {to}: p50 {:.0} µs, p99 {:.0} µs over {count} messages",
        samples[count / 2],
        samples[count * 99 / 100]
    );
    Ok(())
}

async fn failover(addr: &str) -> anyhow::Result<()> {
    let config = ClientConfig::default()
        .name("failover")
        .reconnect(Some(Reconnect::default()));
    let client = Client::connect_with(addr, config).await?;
    let mut incoming = client.incoming().expect("first use");
    println!(
        "connected to {}; waiting for it to go away",
        client.server_name()
    );
    let mut lost = None;
    while let Some(pushed) = incoming.recv().await {
        match pushed {
            Pushed::GoAway(_) | Pushed::Disconnected(_) if lost.is_none() => {
                lost = Some(Instant::now())
            }
            Pushed::Reconnected { server_name } => {
                let took = lost.map_or(Duration::ZERO, |t| t.elapsed());
                println!(
                    "failover: reconnected to {server_name} {:.1} ms after the server went away",
                    took.as_secs_f64() * 1e3
                );
                client.request("still there?").await?;
                client.close().await?;
                return Ok(());
            }
            _ => {}
        }
    }
    anyhow::bail!("the client ended without reconnecting")
}
