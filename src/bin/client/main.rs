//! `client`: talk to a rust-tcp server from the command line.

mod bench;
mod chat;
mod conformance;
mod display;
mod reflection;
mod schema_files;
mod stdin;

use anyhow::{Context, bail};
use bench::{BenchArgs, run_bench};
use bytes::Bytes;
use chat::run_chat;
use clap::{Args as ClapArgs, Parser, Subcommand};
use conformance::{ConformanceArgs, run_conformance};
use display::show_payload;
use reflection::{CallArgs, Called, DescribeArgs, run_call, run_describe};
use rust_tcp::{Client, ClientConfig, ClientTls, ProtocolVersion};
use schema_files::{SchemaCommand, run_schema};
use std::io::Write;
use stdin::send_stdin;

/// Talk to a rust-tcp server.
///
/// With MESSAGE arguments, sends each as one text message, then closes the
/// session and exits once the server has confirmed it processed them all.
/// Without, reads standard input and sends one message per line, so
/// `cat log.txt | client` works; a prompt is shown when stdin is a terminal.
///
/// Speaks protocol v2 unless --v1 is given.
#[derive(Debug, Parser)]
#[command(name = "client", version)]
struct Args {
    #[command(flatten, next_help_heading = "Connection options (any command)")]
    conn: ConnArgs,

    /// Messages to send, one each. Use `--` before a message that looks
    /// like a subcommand or an option.
    messages: Vec<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct ConnArgs {
    /// Server address, HOST:PORT; or ws://HOST:PORT/ for v2 over WebSocket
    /// (a server's --ws-addr), wss:// with --tls or --ca.
    #[arg(long, global = true, default_value = "127.0.0.1:8080")]
    pub(crate) addr: String,

    /// Speak protocol v1 (the tutorial format: text only, ends with `exit`).
    #[arg(long, global = true)]
    pub(crate) v1: bool,

    /// Name to introduce ourselves with (v2).
    #[arg(long, global = true, default_value = "client")]
    pub(crate) name: String,

    /// Connect with TLS, verifying the server against the system's roots
    /// (or --ca).
    #[arg(long, global = true)]
    pub(crate) tls: bool,

    /// Trust only the CA certificates in this PEM file (implies --tls).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) ca: Option<std::path::PathBuf>,

    /// The name the server's certificate must carry (implies --tls);
    /// default: the host of --addr (an IP address is checked as one).
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) server_name: Option<String>,

    /// Present this certificate chain (PEM) to a server that asks
    /// (implies --tls; needs --tls-key).
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<std::path::PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<std::path::PathBuf>,

    /// Authenticate with the token on the first line of this file (v2).
    /// Without it, the RUST_TCP_TOKEN environment variable, if set.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) auth_token_file: Option<std::path::PathBuf>,

    /// Ask for a resumable session (v2, spec 3.14): after a lost
    /// connection, chat picks the session up again with nothing lost
    /// either way. Chat asks for one whenever it reconnects; this flag is
    /// for the other commands (a benchmark of resumable sessions).
    #[arg(long, global = true, conflicts_with = "v1")]
    pub(crate) resume: bool,
}

impl ConnArgs {
    /// The token to authenticate with, if any.
    fn auth_token(&self) -> anyhow::Result<Option<String>> {
        match &self.auth_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the auth token from {}", path.display()))?;
                let token = text.lines().next().unwrap_or("").trim().to_owned();
                if token.is_empty() {
                    bail!("{} holds no token on its first line", path.display());
                }
                Ok(Some(token))
            }
            None => Ok(std::env::var("RUST_TCP_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())),
        }
    }

    /// The TLS settings the flags ask for, if any.
    fn client_tls(&self) -> anyhow::Result<Option<ClientTls>> {
        let wanted =
            self.tls || self.ca.is_some() || self.server_name.is_some() || self.tls_cert.is_some();
        if !wanted {
            return Ok(None);
        }
        let mut tls = match &self.ca {
            Some(ca) => ClientTls::with_ca_file(ca)?,
            None => ClientTls::system_roots()?,
        };
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            tls = tls.with_client_certificate(cert, key)?;
        }
        if let Some(name) = &self.server_name {
            tls = tls.with_server_name(name)?;
        }
        Ok(Some(tls))
    }
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
    /// as it arrives (needs a server started with --broadcast). A lost
    /// connection, or a server going away, is followed by reconnecting
    /// (said on stderr), unless --no-reconnect.
    Chat {
        /// End when the connection ends instead of reconnecting.
        #[arg(long)]
        no_reconnect: bool,

        /// Give up (exit status 1) after this many failed reconnection
        /// attempts in a row; without it, keep trying.
        #[arg(long, value_name = "N", conflicts_with = "no_reconnect",
              value_parser = clap::value_parser!(u32).range(1..))]
        max_reconnect_attempts: Option<u32>,
    },
    /// Measure throughput against a running server.
    Bench(BenchArgs),
    /// Check a v2 server (ours or another implementation) against the
    /// spec's testable rules (docs/conformance/v2.json): one line per case
    /// (PASS, FAIL with what differed and the bytes, SKIP with the setting
    /// it needs) and a summary; exit status 1 if any case failed.
    Conformance(ConformanceArgs),
    /// List a typed server's calls and types, as the server describes
    /// itself (it must have reflection on: spec 3.13.1); --json prints the
    /// whole schema.
    Describe(DescribeArgs),
    /// Make any call of a typed server from JSON, and print its answer as
    /// JSON (a stream: one line per item). The server's schema says how to
    /// encode it, so nothing about the protocol is needed beforehand. Exit
    /// status 1 when the server answers with the protocol's error (printed
    /// as JSON too) or the call fails.
    ///
    /// client --addr 127.0.0.1:7000 call get '{"key": "colour"}'
    Call(CallArgs),
    /// Work with schema files (`describe --json`, an example's --schema).
    #[command(subcommand)]
    Schema(SchemaCommand),
}

fn main() {
    let args = Args::parse();
    if args.conn.v1 {
        // What v1 cannot do is a usage error, found before connecting.
        let needs_v2 = match &args.command {
            Some(Command::Request { .. }) => Some("requests need protocol v2"),
            Some(Command::Chat { .. }) => {
                Some("chat needs protocol v2 (v1 servers send nothing back)")
            }
            Some(Command::Describe(_) | Command::Call(_)) => {
                Some("typed protocols need protocol v2")
            }
            _ => None,
        };
        if let Some(why) = needs_v2 {
            use clap::CommandFactory;
            Args::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("{why}; leave out --v1"),
                )
                .exit();
        }
    }
    let result = match &args.command {
        // The benchmark picks its own runtime (one thread or all).
        Some(Command::Bench(bench)) => run_bench(&args.conn, bench),
        // No connection: two files compared.
        Some(Command::Schema(command)) => match run_schema(command) {
            Ok(true) => std::process::exit(1),
            other => other.map(|_| ()),
        },
        _ => run_one_connection(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

// One thread: a client is one connection, and keeping its reader, writer
// and callers on one thread saves a cross-thread wake-up on every hop.
#[tokio::main(flavor = "current_thread")]
async fn run_one_connection(args: &Args) -> anyhow::Result<()> {
    match &args.command {
        Some(Command::Request { payloads }) => run_requests(&args.conn, payloads).await,
        Some(Command::Chat {
            no_reconnect,
            max_reconnect_attempts,
        }) => run_chat(&args.conn, !no_reconnect, *max_reconnect_attempts).await,
        Some(Command::Bench(_) | Command::Schema(_)) => unreachable!("run by main"),
        Some(Command::Conformance(c)) => run_conformance(&args.conn.addr, c).await,
        Some(Command::Describe(d)) => run_describe(&args.conn, d).await,
        Some(Command::Call(c)) => match run_call(&args.conn, c).await? {
            Called::Answered => Ok(()),
            // Said on stderr already; the exit status tells a script.
            Called::ProtocolError => std::process::exit(1),
        },
        None if args.messages.is_empty() => send_stdin(&args.conn).await,
        None => send_args(&args.conn, &args.messages).await,
    }
}

pub(crate) async fn connect(conn: &ConnArgs) -> anyhow::Result<Client> {
    Ok(Client::connect_with(&conn.addr, client_config(conn)?).await?)
}

/// The library settings the connection flags ask for.
pub(crate) fn client_config(conn: &ConnArgs) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::default()
        .name(conn.name.clone())
        .version(if conn.v1 {
            ProtocolVersion::V1
        } else {
            ProtocolVersion::V2
        });
    if let Some(tls) = conn.client_tls()? {
        config = config.tls(tls);
    }
    if let Some(token) = conn.auth_token()? {
        config = config.auth_token(token);
    }
    if conn.resume {
        config = config.resume(Some(rust_tcp::protocol::v2::ResumeSettings::default()));
    }
    Ok(config)
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

async fn run_requests(conn: &ConnArgs, payloads: &[String]) -> anyhow::Result<()> {
    let client = connect(conn).await?;
    let requests = payloads
        .iter()
        .map(|p| client.request(Bytes::copy_from_slice(p.as_bytes())));
    let responses = futures::future::join_all(requests).await;
    let mut failed = false;
    for (payload, response) in payloads.iter().zip(responses) {
        match response {
            Ok(r) => {
                // A closed pipe (`| head -1`) is not an error worth a panic.
                let _ = writeln!(std::io::stdout(), "{}", show_payload(&r));
            }
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
