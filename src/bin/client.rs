//! `client`: send messages to a rust-tcp server, from arguments or stdin.

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Parser, Subcommand};
use rust_tcp::service::Client;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

/// Send messages to a rust-tcp server.
///
/// With MESSAGE arguments, sends each as one message, then `exit`, and exits
/// once the server has closed the connection (so every message was read).
/// Without, reads standard input and sends one message per line, so
/// `cat log.txt | client` works; a prompt is shown when stdin is a terminal.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Server address, HOST:PORT.
    #[arg(long, global = true, default_value = "127.0.0.1:8080")]
    addr: String,

    /// Messages to send, one frame each (at most 65535 bytes). A message
    /// `exit` ends the session early. Use `--` before a message that looks
    /// like a subcommand or an option.
    messages: Vec<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure throughput: send COUNT messages of SIZE bytes over one
    /// connection as fast as possible, wait until the server has read them
    /// all, and report messages per second.
    Bench(BenchArgs),
}

#[derive(Debug, ClapArgs)]
struct BenchArgs {
    /// How many messages to send.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Content size of each message in bytes.
    #[arg(long, default_value_t = 20)]
    size: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let result = match args.command {
        Some(Command::Bench(bench)) => run_bench(&args.addr, &bench).await,
        None if args.messages.is_empty() => send_stdin(&args.addr).await,
        None => send_args(&args.addr, &args.messages).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn send_args(addr: &str, messages: &[String]) -> anyhow::Result<()> {
    // Refuse before connecting, so a bad argument sends nothing at all.
    if let Some((i, m)) = messages
        .iter()
        .enumerate()
        .find(|(_, m)| m.len() > rust_tcp::protocol::v1::MAX_CONTENT_LEN)
    {
        bail!(
            "message {} is {} bytes; v1 allows at most {}",
            i + 1,
            m.len(),
            rust_tcp::protocol::v1::MAX_CONTENT_LEN
        );
    }
    let mut client = Client::connect(addr).await?;
    for m in messages {
        client.send(m).await?;
    }
    client.close().await?;
    Ok(())
}

async fn send_stdin(addr: &str) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal();
    let mut client = Client::connect(addr).await?;
    let mut lines = spawn_stdin_lines();
    prompt(interactive);
    while let Some(line) = lines.recv().await {
        let mut line = Some(line);
        // Send everything stdin has ready, then flush: piped input goes out
        // in large writes, a typed line goes out at once.
        while let Some(l) = line {
            let l = l?;
            if let Err(e) = client.send(&l).await {
                client.close().await?;
                return Err(e).context("message not sent; earlier lines were delivered");
            }
            line = lines.try_recv().ok();
        }
        client.flush().await?;
        prompt(interactive);
    }
    client.close().await?;
    Ok(())
}

fn prompt(interactive: bool) {
    if interactive {
        print!("> ");
        let _ = std::io::stdout().flush();
    }
}

/// Reads stdin on a plain thread (reading a terminal blocks) and hands over
/// lines without their line ending.
fn spawn_stdin_lines() -> tokio::sync::mpsc::Receiver<anyhow::Result<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    std::thread::spawn(move || {
        for (n, line) in std::io::stdin().lock().lines().enumerate() {
            let line = line.with_context(|| format!("reading line {} of stdin", n + 1));
            let failed = line.is_err();
            let line = line.map(|mut l| {
                if l.ends_with('\r') {
                    l.pop();
                }
                l
            });
            if tx.blocking_send(line).is_err() || failed {
                break;
            }
        }
    });
    rx
}

async fn run_bench(addr: &str, bench: &BenchArgs) -> anyhow::Result<()> {
    let content = "x".repeat(bench.size);
    let started = Instant::now();
    let mut client = Client::connect(addr).await?;
    for _ in 0..bench.count {
        client.send(&content).await?;
    }
    client.close().await?;
    let secs = started.elapsed().as_secs_f64();
    let bytes = bench.count as f64 * (bench.size + 3) as f64;
    println!(
        "sent {} messages of {} bytes in {:.3} s: {:.2} M messages/s, {:.1} MB/s on the wire",
        bench.count,
        bench.size,
        secs,
        bench.count as f64 / secs / 1e6,
        bytes / secs / 1e6
    );
    Ok(())
}
