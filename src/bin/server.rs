//! `server`: serve the rust-tcp protocol and print every message received.

use anyhow::Context;
use clap::Parser;
use rust_tcp::service::{PrintService, Server, ServerConfig, spawn_line_output, terminate_signal};
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// Serve the rust-tcp protocol on TCP and print each text message received
/// to stdout, one line per message (`Message: "..."`, escaped so that no
/// message can forge a line).
///
/// Logs (connections opened and closed, protocol errors) go to stderr; set
/// their level with RUST_LOG (default: info). Stop with Ctrl-C or SIGTERM.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on, HOST:PORT. Port 0 picks a free port; the bound
    /// address is logged.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,

    /// Connections served at once; more wait until one closes.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,

    /// Seconds a shutdown waits for open connections to finish.
    #[arg(long, default_value_t = 5)]
    shutdown_grace_secs: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let config = ServerConfig {
        max_connections: args.max_connections,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
    };
    let server = Server::bind(&args.addr, config).await?;
    tracing::info!("listening on {}", server.local_addr());

    // Our own handle on stdout, written by one thread in large batches
    // (std's `Stdout` would add a lock and line buffering per write).
    let stdout = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stdout")?;
    let (out, writer) = spawn_line_output(std::fs::File::from(stdout));
    server.run(PrintService::new(out), terminate_signal()).await;

    // Every handler is gone, so the writer sees the end of its input and
    // finishes writing what is queued.
    tokio::task::spawn_blocking(move || writer.join())
        .await?
        .context("writing messages to stdout")?;
    tracing::info!("server stopped");
    Ok(())
}
