//! `client bench`: a load generator users can point at any of our servers.
//! Many connections (spread over the runtime's threads), many requests in
//! flight on each, for a count or a duration; one-way v1, text or binary,
//! or request/response with latency percentiles from an HDR histogram.

use anyhow::bail;
use bytes::Bytes;
use clap::{Args as ClapArgs, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rust_tcp::Client;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{ConnArgs, connect};

/// What each operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// One-way v1 messages (implies --v1).
    V1,
    /// One-way v2 text messages.
    Text,
    /// One-way v2 binary messages.
    Binary,
    /// v2 requests, each waiting for its response (latency measured).
    Request,
    /// Open the connections (v1 or v2), use each once (v2: one request;
    /// v1: one message), then hold them quiet for --duration seconds
    /// (default 10), for measuring what an idle connection costs the server.
    Idle,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct BenchArgs {
    /// Operations in all, over every connection (ignored with --duration).
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Run for this many seconds instead of a count.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Content size of each message or request payload, in bytes.
    #[arg(long, default_value_t = 20)]
    size: usize,
    /// Connections, dealt out to one thread per core.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) connections: u64,
    /// Requests in flight at once on each connection (implies
    /// --mode request unless a mode is given).
    #[arg(long)]
    in_flight: Option<usize>,
    /// What to send: v1, text, binary (one-way), request, or idle. Default:
    /// request with --in-flight, v1 with --v1, else text.
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Print one JSON object with the results as the last line of stdout.
    #[arg(long)]
    json: bool,
}

impl BenchArgs {
    fn mode(&self, conn: &ConnArgs) -> Mode {
        match (self.mode, self.in_flight, conn.v1) {
            (Some(mode), ..) => mode,
            (None, Some(_), _) => Mode::Request,
            (None, None, true) => Mode::V1,
            (None, None, false) => Mode::Text,
        }
    }
}

/// What one connection did.
struct Done {
    operations: u64,
    latency_ns: Option<Histogram<u64>>,
}

/// Everything the connections share: the budget of operations, the clock,
/// and the progress counter.
struct Plan {
    mode: Mode,
    payload: Bytes,
    in_flight: usize,
    /// Operations left to claim (count mode).
    left: AtomicU64,

    done: AtomicU64,
    stop: AtomicBool,
}

impl Plan {
    /// Claims the next operation; `false` when the run is over.
    fn claim(&self, until: Option<Instant>) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        match until {
            Some(until) => Instant::now() < until,
            None => self
                .left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// Runs the benchmark: the connections are dealt out to one thread per
/// core, each with its own single-threaded runtime, so a connection's
/// reader, writer and callers wake each other without crossing threads.
pub(crate) fn run_bench(conn: &ConnArgs, bench: &BenchArgs) -> anyhow::Result<()> {
    let mode = bench.mode(conn);
    if mode == Mode::Idle {
        return hold_idle(conn, bench);
    }
    if mode == Mode::V1 && !conn.v1 {
        bail!("--mode v1 needs --v1 (the connection's protocol)");
    }
    if mode != Mode::V1 && conn.v1 {
        bail!("--v1 connections can only send one-way v1 messages (--mode v1)");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let threads = bench.connections.min(cores);
    let payload = Bytes::from("x".repeat(bench.size));
    let plan = Arc::new(Plan {
        mode,
        payload,
        in_flight: bench.in_flight.unwrap_or(1).max(1),
        left: AtomicU64::new(bench.count),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    // Every thread connects its share (with a warm-up) first; the clock
    // starts once all are ready.
    let ready = Arc::new(std::sync::Barrier::new(threads as usize + 1));
    let start = Arc::new(std::sync::OnceLock::<(Instant, Option<Instant>)>::new());
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let share = bench.connections / threads + u64::from(t < bench.connections % threads);
            let (conn, plan, ready, start) =
                (conn.clone(), plan.clone(), ready.clone(), start.clone());
            std::thread::spawn(move || -> anyhow::Result<Vec<Done>> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let mut clients = Vec::new();
                    let connected = async {
                        for _ in 0..share {
                            let client = connect(&conn).await?;
                            for _ in 0..10 {
                                warm_up(&client, plan.mode, &plan.payload).await?;
                            }
                            clients.push(client);
                        }
                        anyhow::Ok(())
                    }
                    .await;
                    ready.wait();
                    connected?;
                    let (_, until) = *start.wait();
                    // One histogram per thread, not per request loop: with
                    // 10,000 connections, one each would be gigabytes.
                    let latency = Arc::new(Mutex::new(new_histogram()?));
                    let runs: Vec<_> = clients
                        .into_iter()
                        .map(|c| {
                            tokio::spawn(run_connection(c, plan.clone(), until, latency.clone()))
                        })
                        .collect();
                    let mut done = Vec::new();
                    for r in runs {
                        done.push(r.await??);
                    }
                    if plan.mode == Mode::Request {
                        let h = std::mem::replace(&mut *lock(&latency), new_histogram()?);
                        done.push(Done {
                            operations: 0,
                            latency_ns: Some(h),
                        });
                    }
                    Ok(done)
                })
            })
        })
        .collect();
    ready.wait();
    let started = Instant::now();
    let until = bench
        .duration
        .map(|secs| started + Duration::from_secs_f64(secs.max(0.0)));
    let _ = start.set((started, until));
    let progress = progress_bar(bench, &plan);
    let mut operations = 0;
    let mut latency: Option<Histogram<u64>> = None;
    for w in workers {
        let done = w
            .join()
            .map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))??;
        for d in done {
            operations += d.operations;
            if let Some(h) = d.latency_ns {
                match &mut latency {
                    Some(all) => all.add(h)?,
                    None => latency = Some(h),
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    report(
        bench,
        mode,
        plan.in_flight,
        operations,
        secs,
        latency.as_ref(),
    );
    Ok(())
}

/// Idle mode: every connection opened and used once (v2: one request,
/// answered; v1: one message), so what is measured is a connection that
/// worked and went quiet, not one still in its handshake; one line on
/// stderr once all are open, held for the duration, then closed cleanly.
/// All on one thread: they do nothing after.
fn hold_idle(conn: &ConnArgs, bench: &BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let hold = Duration::from_secs_f64(bench.duration.unwrap_or(10.0).max(0.0));
    runtime.block_on(async {
        let started = Instant::now();
        let mut clients = Vec::with_capacity(bench.connections as usize);
        for _ in 0..bench.connections {
            let client = connect(conn).await?;
            match client.request(Bytes::new()).await {
                Err(rust_tcp::ClientError::NeedsV2(_)) => client.send_text("idle").await?,
                answered => drop(answered?),
            }
            clients.push(client);
        }
        let opened = started.elapsed().as_secs_f64();
        eprintln!(
            "{} idle connections open (in {opened:.2} s); holding them for {:.1} s",
            clients.len(),
            hold.as_secs_f64()
        );
        tokio::time::sleep(hold).await;
        for c in &clients {
            c.close().await?;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{} idle connections held for {:.1} s",
            clients.len(),
            hold.as_secs_f64()
        );
        if bench.json {
            let json = serde_json::json!({
                "mode": "idle", "connections": clients.len(), "open_seconds": opened,
                "per_sec": 0.0, "mb_per_sec": 0.0,
            });
            let _ = writeln!(out, "{json}");
        }
        Ok(())
    })
}

/// Latencies in nanoseconds, up to a minute, three significant digits.
fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000_000, 3)?)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn warm_up(client: &Client, mode: Mode, payload: &Bytes) -> anyhow::Result<()> {
    match mode {
        Mode::Request => drop(client.request(payload.clone()).await?),
        Mode::Binary => client.send_binary(payload.clone()).await?,
        Mode::V1 | Mode::Text => client.send_text(text(payload)).await?,
        Mode::Idle => {}
    }
    Ok(())
}

fn text(payload: &Bytes) -> rust_tcp::Message {
    rust_tcp::Message::from_utf8(payload.clone()).expect("the payload is ASCII")
}

/// One connection: one-way messages as fast as they go, or `in_flight`
/// request loops; the clock stops when the server has confirmed the close
/// (it has processed everything).
async fn run_connection(
    client: Client,
    plan: Arc<Plan>,
    until: Option<Instant>,
    latency: Arc<Mutex<Histogram<u64>>>,
) -> anyhow::Result<Done> {
    let done = match plan.mode {
        Mode::Request => {
            let loops: Vec<_> = (0..plan.in_flight)
                .map(|_| {
                    let (client, plan, latency) = (client.clone(), plan.clone(), latency.clone());
                    tokio::spawn(async move {
                        let mut n = 0;
                        while plan.claim(until) {
                            let sent = Instant::now();
                            client.request(plan.payload.clone()).await?;
                            lock(&latency).saturating_record(sent.elapsed().as_nanos() as u64);
                            n += 1;
                            plan.done.fetch_add(1, Ordering::Relaxed);
                        }
                        anyhow::Ok(n)
                    })
                })
                .collect();
            let mut operations = 0;
            for l in loops {
                operations += l.await??;
            }
            Done {
                operations,
                latency_ns: None,
            }
        }
        mode => {
            let mut operations = 0;
            while plan.claim(until) {
                match mode {
                    Mode::Binary => client.send_binary(plan.payload.clone()).await?,
                    _ => client.send_text(text(&plan.payload)).await?,
                }
                operations += 1;
                if operations % 1024 == 0 {
                    plan.done.fetch_add(1024, Ordering::Relaxed);
                }
            }
            Done {
                operations,
                latency_ns: None,
            }
        }
    };
    client.close().await?;
    Ok(done)
}

/// A progress line on stderr, when it is a terminal.
fn progress_bar(bench: &BenchArgs, plan: &Arc<Plan>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match bench.duration {
        Some(_) => ProgressBar::new_spinner(),
        None => ProgressBar::new(bench.count),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} {per_sec} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (bar2, plan) = (bar.clone(), plan.clone());
    std::thread::spawn(move || {
        while !bar2.is_finished() {
            bar2.set_position(plan.done.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    Some(bar)
}

fn report(
    bench: &BenchArgs,
    mode: Mode,
    in_flight: usize,
    operations: u64,
    secs: f64,
    latency_ns: Option<&Histogram<u64>>,
) {
    let per_sec = operations as f64 / secs;
    let mb_per_sec = per_sec * bench.size as f64 / 1e6;
    let what = if mode == Mode::Request {
        "requests"
    } else {
        "messages"
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head -1`) is not an error worth a panic.
    let _ = writeln!(
        out,
        "{operations} {what} of {} bytes over {} connection(s) in {secs:.3} s: {:.3} M {what}/s, {mb_per_sec:.1} MB/s",
        bench.size,
        bench.connections,
        per_sec / 1e6,
    );
    let us = |q: f64| latency_ns.map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1e3);
    let max = latency_ns.map_or(0.0, |h| h.max() as f64 / 1e3);
    if latency_ns.is_some() {
        let _ = writeln!(
            out,
            "latency ({in_flight} in flight per connection): p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {max:.1} µs",
            us(0.5),
            us(0.9),
            us(0.99),
            us(0.999)
        );
    }
    if bench.json {
        let json = serde_json::json!({
            "mode": format!("{mode:?}").to_lowercase(),
            "connections": bench.connections,
            "in_flight": in_flight,
            "size": bench.size,
            "operations": operations,
            "seconds": secs,
            "per_sec": per_sec,
            "mb_per_sec": mb_per_sec,
            "latency_us": {
                "p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "p99_9": us(0.999), "max": max,
            },
        });
        let _ = writeln!(out, "{json}");
    }
}
