//! `client`: talk to a rust-tcp server from the command line.

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args as ClapArgs, Parser, Subcommand};
use rust_tcp::service::{Client, ClientConfig, ProtocolVersion, Pushed};
use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

/// Talk to a rust-tcp server.
///
/// With MESSAGE arguments, sends each as one text message, then closes the
/// session and exits once the server has confirmed it processed them all.
/// Without, reads standard input and sends one message per line, so
/// `cat log.txt | client` works; a prompt is shown when stdin is a terminal.
///
/// Speaks protocol v2 unless --v1 is given.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    conn: ConnArgs,

    /// Messages to send, one each. Use `--` before a message that looks
    /// like a subcommand or an option.
    messages: Vec<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, ClapArgs)]
struct ConnArgs {
    /// Server address, HOST:PORT.
    #[arg(long, global = true, default_value = "127.0.0.1:8080")]
    addr: String,

    /// Speak protocol v1 (the tutorial format: text only, ends with `exit`).
    #[arg(long, global = true)]
    v1: bool,

    /// Name to introduce ourselves with (v2).
    #[arg(long, global = true, default_value = "client")]
    name: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send each PAYLOAD as a request (all in flight at once) and print
    /// each response, in argument order.
    Request {
        /// Request payloads.
        #[arg(required = true)]
        payloads: Vec<String>,
    },
    /// Chat: send standard input line by line and print what others send
    /// as it arrives (needs a server started with --broadcast).
    Chat,
    /// Measure throughput against a running server.
    Bench(BenchArgs),
}

#[derive(Debug, ClapArgs)]
struct BenchArgs {
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

// One thread: a client is one connection, and keeping its reader, writer
// and callers on one thread saves a cross-thread wake-up on every hop.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let result = match &args.command {
        Some(Command::Request { payloads }) => run_requests(&args.conn, payloads).await,
        Some(Command::Chat) => run_chat(&args.conn).await,
        Some(Command::Bench(bench)) => run_bench(&args.conn, bench).await,
        None if args.messages.is_empty() => send_stdin(&args.conn).await,
        None => send_args(&args.conn, &args.messages).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn connect(conn: &ConnArgs) -> anyhow::Result<Client> {
    let config = ClientConfig {
        name: conn.name.clone(),
        version: if conn.v1 {
            ProtocolVersion::V1
        } else {
            ProtocolVersion::V2
        },
        ..ClientConfig::default()
    };
    Ok(Client::connect_with(&conn.addr, config).await?)
}

/// The largest message the chosen protocol can carry before connecting.
fn check_sizes(conn: &ConnArgs, messages: &[String]) -> anyhow::Result<()> {
    let max = if conn.v1 {
        rust_tcp::protocol::v1::MAX_CONTENT_LEN
    } else {
        rust_tcp::protocol::v2::DEFAULT_MAX_FRAME_SIZE as usize
    };
    if let Some((i, m)) = messages.iter().enumerate().find(|(_, m)| m.len() > max) {
        let version = if conn.v1 { "v1" } else { "v2" };
        bail!(
            "message {} is {} bytes; {version} allows at most {max}",
            i + 1,
            m.len()
        );
    }
    Ok(())
}

async fn send_args(conn: &ConnArgs, messages: &[String]) -> anyhow::Result<()> {
    // Refuse before connecting, so a bad argument sends nothing at all.
    check_sizes(conn, messages)?;
    let client = connect(conn).await?;
    for m in messages {
        client.send_text(m.as_str()).await?;
    }
    client.close().await?;
    Ok(())
}

async fn send_stdin(conn: &ConnArgs) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal();
    let client = connect(conn).await?;
    let mut lines = spawn_stdin_lines();
    prompt(interactive);
    while let Some(line) = lines.recv().await {
        if let Err(e) = client.send_text(line?).await {
            client.close().await?;
            return Err(e).context("message not sent; earlier lines were delivered");
        }
        if lines.is_empty() {
            prompt(interactive);
        }
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

/// Text from the network, made safe for a terminal: control characters are
/// shown escaped instead of being interpreted.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn show_payload(payload: &Bytes) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => printable(text),
        Err(_) => format!("<{} bytes of binary>", payload.len()),
    }
}

async fn run_requests(conn: &ConnArgs, payloads: &[String]) -> anyhow::Result<()> {
    let client = connect(conn).await?;
    let requests = payloads
        .iter()
        .map(|p| client.request(Bytes::copy_from_slice(p.as_bytes())));
    let responses = futures::future::join_all(requests).await;
    let mut failed = false;
    for (payload, response) in payloads.iter().zip(responses) {
        match response {
            Ok(r) => println!("{}", show_payload(&r)),
            Err(e) => {
                eprintln!("error: request {payload:?}: {e}");
                failed = true;
            }
        }
    }
    client.close().await?;
    if failed {
        bail!("some requests failed");
    }
    Ok(())
}

async fn run_chat(conn: &ConnArgs) -> anyhow::Result<()> {
    if conn.v1 {
        bail!("chat needs protocol v2 (v1 servers send nothing back)");
    }
    let client = connect(conn).await?;
    let mut incoming = client.incoming().expect("first use of the stream");
    let printer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut out = std::io::stdout();
            while let Some(pushed) = incoming.recv().await {
                let going_away = matches!(pushed, Pushed::GoAway(_));
                let line = match pushed {
                    Pushed::Text(m) => printable(m.as_str()),
                    Pushed::Binary(b) => format!("<{} bytes of binary>", b.len()),
                    Pushed::Error(e) => format!("* server error: {e}"),
                    Pushed::GoAway(g) => format!("* server is going away ({g}); leaving"),
                };
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                if going_away {
                    // Going away: finish politely instead of being cut off.
                    return client.close().await;
                }
            }
            Ok(())
        })
    };
    tokio::pin!(printer);
    let mut lines = spawn_stdin_lines();
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => client.send_text(line?).await?,
                None => break,
            },
            // The connection ended (the server left): stop reading stdin.
            ended = &mut printer => return Ok(ended??),
        }
    }
    client.close().await?;
    printer.await??;
    Ok(())
}

async fn run_bench(conn: &ConnArgs, bench: &BenchArgs) -> anyhow::Result<()> {
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
