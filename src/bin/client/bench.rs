//! `client bench`: a load generator against a running server, one-way
//! messages or requests with many in flight.

use bytes::Bytes;
use clap::Args as ClapArgs;
use std::time::Instant;

use crate::{ConnArgs, connect};

#[derive(Debug, ClapArgs)]
pub(crate) struct BenchArgs {
    /// How many messages (or requests) to send.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Content size of each message or request payload, in bytes.
    #[arg(long, default_value_t = 20)]
    size: usize,
    /// Measure request/response instead of one-way messages, with this many
    /// requests in flight at once.
    #[arg(long)]
    in_flight: Option<usize>,
}

pub(crate) async fn run_bench(conn: &ConnArgs, bench: &BenchArgs) -> anyhow::Result<()> {
    let content = "x".repeat(bench.size);
    let client = connect(conn).await?;
    let started = Instant::now();
    let what = match bench.in_flight {
        None => {
            for _ in 0..bench.count {
                client.send_text(content.as_str()).await?;
            }
            client.close().await?;
            "messages"
        }
        Some(in_flight) => {
            let in_flight = in_flight.max(1) as u64;
            let payload = Bytes::from(content);
            let workers: Vec<_> = (0..in_flight)
                .map(|w| {
                    let client = client.clone();
                    let payload = payload.clone();
                    let n = bench.count / in_flight + u64::from(w < bench.count % in_flight);
                    tokio::spawn(async move {
                        for _ in 0..n {
                            client.request(payload.clone()).await?;
                        }
                        anyhow::Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.await??;
            }
            client.close().await?;
            "requests"
        }
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} {what} of {} bytes in {:.3} s: {:.3} M {what}/s{}",
        bench.count,
        bench.size,
        secs,
        bench.count as f64 / secs / 1e6,
        bench
            .in_flight
            .map(|k| format!(
                " ({k} in flight, {:.1} µs each)",
                secs * 1e6 / bench.count as f64 * k as f64
            ))
            .unwrap_or_default()
    );
    Ok(())
}
