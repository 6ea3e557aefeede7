//! `server`: serve the rust-tcp protocol and print every message received.

mod line_output;
mod print_service;
mod shutdown;
mod sink_service;

use anyhow::Context;
use clap::Parser;
use line_output::spawn_line_output;
use print_service::PrintService;
use rust_tcp::protocol::v2::CallLimits;
use rust_tcp::{AuthTokens, Page, Server, ServerConfig, ServerTls, WebSocketConfig};
use shutdown::terminate_signal;
use sink_service::SinkService;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// Serve the rust-tcp protocol (v1 and v2 on one port) and print each text
/// message received to stdout, one line per message (`Message: "..."`,
/// escaped so that no message can forge a line). v2 requests are answered
/// with their own payload (echo).
///
/// Logs (connections opened and closed, protocol errors) go to stderr; set
/// their level with RUST_LOG (default: info). Stop with Ctrl-C or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "server", version)]
struct Args {
    /// Address to listen on, HOST:PORT. Port 0 picks a free port; the bound
    /// address is logged.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_host_port)]
    addr: String,

    /// This server's name, sent to v2 clients in the WELCOME (1 to 64
    /// bytes; useful to tell servers apart behind a load balancer).
    #[arg(long, default_value = "rust-tcp")]
    name: String,

    /// Connections served at once; past it, new ones are refused at once
    /// with a reason (v2: CLOSE 1016 "server full").
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,

    /// Connections one address may hold at once (IPv6 counted by
    /// --ipv6-prefix, IPv4 by --ipv4-prefix); past it, its new ones are
    /// refused (v2: CLOSE 1008).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_ip: u64,

    /// Connections still in their handshake held at once. When full (or
    /// every slot is taken) a newcomer displaces the oldest of them instead
    /// of being refused; established sessions are never displaced. So
    /// silent sockets from many addresses cannot lock honest clients out.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_pending_handshakes: u64,

    /// The handshake deadline, in seconds, for connections arriving while
    /// more than half of --max-pending-handshakes is in use (if shorter
    /// than --handshake-timeout-secs). Fractions allowed.
    #[arg(long, default_value = "2", value_parser = parse_secs)]
    handshake_timeout_under_pressure_secs: Duration,

    /// New connections per second one address may open (a bucket of ten
    /// seconds' worth); past it, refused at once (v2: CLOSE 1008). 0 = no
    /// limit.
    #[arg(long, default_value_t = 100)]
    max_connection_rate_per_ip: u32,

    /// IPv4 addresses count against the per-address limits by this prefix
    /// length (32: each address alone; 24: per /24 network).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u8).range(0..=32))]
    ipv4_prefix: u8,

    /// IPv6 addresses count against the per-address limits by this prefix
    /// length: a /64 by default, since whoever has one IPv6 address
    /// usually has 2^64 of them.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u8).range(0..=128))]
    ipv6_prefix: u8,

    /// Seconds a shutdown waits for open connections to finish. v2 clients
    /// are sent a go-away at once and get half of this to close themselves.
    #[arg(long, default_value_t = 5)]
    shutdown_grace_secs: u64,

    /// Largest v2 frame payload accepted, in bytes; announced to clients in
    /// the handshake. Larger frames close the connection (code 1009).
    #[arg(long, default_value_t = rust_tcp::protocol::v2::DEFAULT_MAX_FRAME_SIZE,
          value_parser = clap::value_parser!(u32).range(1024..))]
    max_frame_bytes: u32,

    /// v2 heartbeat interval in seconds for clients that state no wish (0 =
    /// heartbeats off for everyone): idle clients are pinged, and dropped
    /// after three intervals of silence.
    #[arg(long, default_value_t = 30)]
    heartbeat_secs: u64,

    /// The shortest heartbeat interval a client may wish for in its HELLO,
    /// in seconds (shorter wishes get this). Fractions allowed.
    #[arg(long, default_value = "1", value_parser = parse_secs)]
    heartbeat_min_secs: Duration,

    /// The longest heartbeat interval a client may wish for, in seconds.
    #[arg(long, default_value = "600", value_parser = parse_secs)]
    heartbeat_max_secs: Duration,

    /// Bytes that may wait to be sent to one v2 client. A client that lets
    /// more pile up is not reading and is disconnected (logged as a slow
    /// consumer).
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    max_queued_bytes: u64,

    /// Seconds a new connection has, from accept, to send its first
    /// complete frame (a v2 HELLO or a v1 message), whatever it sends
    /// meanwhile. Fractions allowed.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    handshake_timeout_secs: Duration,

    /// Seconds every frame begun gets to arrive whole, on top of its length
    /// at --min-frame-rate; a peer that trickles bytes is cut (v2: CLOSE
    /// 1008). Fractions allowed.
    #[arg(long, default_value = "30", value_parser = parse_secs)]
    frame_timeout_secs: Duration,

    /// The slowest transfer rate a frame is given time for, in bytes/s.
    #[arg(long, default_value_t = 256 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    min_frame_rate: u32,

    /// v1 only: seconds a connection may go without a complete message
    /// (0 = no limit; v2 uses heartbeats instead). Fractions allowed.
    #[arg(long, default_value = "300", value_parser = parse_secs)]
    idle_timeout_secs: Duration,

    /// One budget, in bytes, for the large frames the server buffers on
    /// behalf of peers: a frame over 64 KiB is admitted by the length it
    /// claims before it is read; a connection that wants more than is free
    /// waits, unread (its frame deadline still runs). Must be at least
    /// --max-frame-bytes.
    #[arg(long, default_value_t = 1024 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_memory: u64,

    /// Calls (spec 3.13) one v2 connection may have in flight; one more is
    /// refused (STATUS 4) and the connection goes on. 0 turns calls off
    /// (clients that ask are served without them).
    #[arg(long, default_value_t = 100)]
    max_calls_per_connection: u16,

    /// Items a client's stream may send ahead of the server's reading (its
    /// credit): what the server holds for one stream is at most this many
    /// frames.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    call_stream_credit: u32,

    /// The longest deadline a call gets, in seconds (fractions allowed); a
    /// call without a deadline gets this one. 0 = no cap.
    #[arg(long, default_value = "0", value_parser = parse_secs)]
    max_call_deadline_secs: Duration,

    /// How long a lost connection's resumable session is kept for its
    /// client to resume it (spec 3.14; the client asks for its expiry, this
    /// caps it), in seconds (fractions allowed). 0 grants no resumable
    /// sessions (clients that ask get ordinary ones).
    #[arg(long, default_value = "60", value_parser = parse_secs)]
    resume_expiry_secs: Duration,

    /// The most bytes of unacknowledged frames a resumable session keeps
    /// for replay; past it, the session can no longer be resumed.
    #[arg(long, default_value_t = 256 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    resume_buffer_bytes: u64,

    /// At most this many resumable sessions at once (connected or waiting
    /// for their client); past it, new clients get ordinary sessions.
    #[arg(long, default_value_t = 1_000)]
    max_kept_sessions: usize,

    /// Also keep resumable sessions in NATS JetStream at this address
    /// (nats://HOST:PORT; nats-server must run with -js), so that a client
    /// whose server died resumes on another server of the deployment with
    /// nothing lost (a new handler serves it there; requests it had in
    /// flight end with an error). Each frame waits for its session's
    /// record to be stored before it is sent or handled. Without it,
    /// sessions resume on this server only. The server does not start if
    /// the store cannot be reached.
    #[arg(long, value_name = "URL")]
    session_store: Option<String>,

    /// With --session-store: the JetStream key-value bucket, one per
    /// deployment (every server of it names the same); created if missing.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "rust_tcp_sessions",
        requires = "session_store"
    )]
    session_bucket: String,

    /// Serve TLS only, with this certificate chain (PEM); needs --tls-key.
    /// Without it, plain TCP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// Require every client to present a certificate signed by a CA in
    /// this PEM file (mutual TLS). Needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,

    /// Require every v2 client to send one of the tokens in this file (one
    /// per line); re-read on SIGHUP, so tokens rotate without dropping a
    /// connection. v1 connections, which cannot carry a token, are then
    /// refused unless --allow-v1.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<std::path::PathBuf>,

    /// With --auth-token-file: admit v1 connections anyway
    /// (unauthenticated).
    #[arg(long, requires = "auth_token_file")]
    allow_v1: bool,

    /// Write each message's line to stdout as it is handled, one write call
    /// each, instead of in batches from a writer thread: slower, but every
    /// message the server handled is on stdout even if it is killed (with
    /// --session-store: nothing a client was told arrived is missing).
    #[arg(long, conflicts_with = "sink")]
    sync_output: bool,

    /// Measure the stack alone: decode and validate every frame, but print
    /// nothing and answer requests with an empty payload. The count of
    /// messages received is logged at the end.
    #[arg(long, conflicts_with = "broadcast")]
    sink: bool,

    /// Relay each text message to every other connected v2 client,
    /// labelled with the sender's name (`NAME: TEXT`).
    #[arg(long)]
    broadcast: bool,

    /// With --broadcast: relay through NATS at this address
    /// (nats://HOST:PORT) to the clients of every server connected to it,
    /// and deliver theirs here. If NATS is away, local clients are still
    /// served and relaying resumes when it is back.
    #[arg(long, value_name = "URL", requires = "broadcast")]
    nats: Option<String>,

    /// With --nats: the room, whose NATS subject is `rust-tcp.room.ROOM`.
    #[arg(long, value_name = "ROOM", default_value = "lobby", requires = "nats")]
    room: String,

    /// Every connection starts with a PROXY protocol v2 header (HAProxy's
    /// `send-proxy-v2`) naming the client's real address, used for logs,
    /// per-address limits and authentication; connections without one are
    /// refused. Only behind a trusted load balancer: anyone who can reach
    /// this port directly could claim any address.
    #[arg(long)]
    proxy_protocol: bool,

    /// Also listen for WebSockets at HOST:PORT (port 0 picks a free one):
    /// browsers speak v2 there, one frame per binary message (subprotocol
    /// `rust-tcp.v2`, docs/PROTOCOL.md section 4), into the same service
    /// with the same limits; TLS (wss) with --tls-cert. A plain GET of `/`
    /// serves the chat page (for --broadcast), `/rust-tcp.js` its client
    #[arg(long, value_name = "HOST:PORT")]
    ws_addr: Option<String>,

    /// A page origin (`https://chat.example`, scheme://host[:port]) whose
    /// scripts may connect to --ws-addr; repeat for more, `*` for any.
    /// Without it, only pages served by --ws-addr itself (same origin), so
    /// another site cannot drive its visitors' browsers into this server
    #[arg(long, value_name = "ORIGIN", requires = "ws_addr")]
    ws_allowed_origin: Vec<String>,

    /// Also serve the files under DIR on --ws-addr (read once at startup,
    /// at most 1,000 files and 64 MiB, hidden files left out; a file's path
    /// under DIR is its URL path): your own pages and what they load. The
    /// JavaScript client is served at /rust-tcp.js and its MessagePack
    /// module at /msgpack.js anyway; DIR's `index.html` replaces the
    /// built-in chat page at `/`
    #[arg(long, value_name = "DIR", requires = "ws_addr")]
    web_root: Option<std::path::PathBuf>,

    /// Serve Prometheus metrics at http://HOST:PORT/metrics: connections,
    /// messages and bytes each way, request latency, slow consumers,
    /// protocol errors by close code, authentication failures, the memory
    /// budget, NATS relaying (names start with rust_tcp_).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Log lines as text for people, or one JSON object per line for
    /// machines. Each connection's lines carry its peer address, protocol
    /// version and client name (a `conn` span).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Request-latency buckets, in seconds: 10 µs to 10 s.
const REQUEST_SECONDS_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Installs the Prometheus exporter (before the server exists, so every
/// series it registers is exported).
fn serve_metrics(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full("rust_tcp_request_duration_seconds".into()),
            REQUEST_SECONDS_BUCKETS,
        )?
        .install()
        .with_context(|| format!("serving metrics on {addr}"))?;
    tracing::info!("metrics on http://{addr}/metrics");
    Ok(())
}

/// On every SIGHUP, re-reads what can change without a restart: the token
/// file and the TLS certificate and key. Each says whether it reloaded; a
/// bad file keeps what is in use and says why, as fully as at startup.
async fn reload_on_sighup(
    tokens: Option<AuthTokens>,
    tls: Option<ServerTls>,
    mut hangups: tokio::signal::unix::Signal,
) {
    while hangups.recv().await.is_some() {
        if let Some(tokens) = &tokens {
            match tokens.reload() {
                Ok(n) => tracing::info!("SIGHUP: auth tokens reloaded ({n} accepted)"),
                Err(e) => tracing::error!(
                    "SIGHUP: auth tokens not reloaded, the old ones stay: {:#}",
                    anyhow::Error::new(e)
                ),
            }
        }
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => tracing::info!(
                    "SIGHUP: TLS certificate and key reloaded (new connections get them)"
                ),
                Err(e) => tracing::error!(
                    "SIGHUP: TLS certificate not reloaded, the old one stays: {:#}",
                    anyhow::Error::new(e)
                ),
            }
        }
        if tokens.is_none() && tls.is_none() {
            tracing::info!("SIGHUP: nothing to reload (no --auth-token-file, no TLS)");
        }
    }
}

/// `HOST:PORT` (an IP address, `[IPv6]`, or a name), checked when the
/// arguments are read, so a typo is a usage error like any other.
fn parse_host_port(text: &str) -> Result<String, String> {
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    match text.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
        {
            Ok(text.to_owned())
        }
        _ => Err(format!(
            "{text:?} is not HOST:PORT (for example 127.0.0.1:8080, [::1]:8080 or localhost:8080)"
        )),
    }
}

/// A number of seconds, fractions allowed (`0.5`), as a duration.
fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{text} is not a valid number of seconds"))
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
    // The NATS client's own lines are for debugging it; ours say what matters.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr)?;
    }

    let config = ServerConfig::default()
        .max_connections(usize::try_from(args.max_connections).unwrap_or(usize::MAX))
        .max_connections_per_ip(usize::try_from(args.max_connections_per_ip).unwrap_or(usize::MAX))
        .max_pending_handshakes(usize::try_from(args.max_pending_handshakes).unwrap_or(usize::MAX))
        .handshake_timeout_under_pressure(args.handshake_timeout_under_pressure_secs)
        .max_connection_rate_per_ip(args.max_connection_rate_per_ip)
        .ipv4_prefix(args.ipv4_prefix)
        .ipv6_prefix(args.ipv6_prefix)
        .shutdown_grace(Duration::from_secs(args.shutdown_grace_secs))
        .max_frame_size(args.max_frame_bytes)
        .heartbeat(Duration::from_secs(args.heartbeat_secs))
        .heartbeat_min(args.heartbeat_min_secs)
        .heartbeat_max(args.heartbeat_max_secs)
        .max_queued_bytes(usize::try_from(args.max_queued_bytes).unwrap_or(usize::MAX))
        .handshake_timeout(args.handshake_timeout_secs)
        .frame_timeout(args.frame_timeout_secs)
        .min_frame_rate(args.min_frame_rate)
        .max_memory(usize::try_from(args.max_memory).unwrap_or(usize::MAX))
        .proxy_protocol(args.proxy_protocol)
        .time_requests(args.metrics_addr.is_some())
        .server_name(args.name.clone())
        .idle_timeout((!args.idle_timeout_secs.is_zero()).then_some(args.idle_timeout_secs))
        .calls((args.max_calls_per_connection > 0).then(|| {
            CallLimits::new(args.max_calls_per_connection, args.call_stream_credit).max_deadline(
                (!args.max_call_deadline_secs.is_zero()).then_some(args.max_call_deadline_secs),
            )
        }))
        .resume((!args.resume_expiry_secs.is_zero()).then(|| {
            rust_tcp::protocol::v2::ResumeSettings::default()
                .expiry(args.resume_expiry_secs)
                .replay_max_bytes(usize::try_from(args.resume_buffer_bytes).unwrap_or(usize::MAX))
        }))
        .max_kept_sessions(args.max_kept_sessions);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(
            cert,
            key,
            args.tls_client_ca.as_deref(),
        )?),
        _ => None,
    };
    let config = match &tls {
        Some(tls) => config.tls(tls.clone()),
        None => config,
    };
    let tokens = match &args.auth_token_file {
        Some(path) => Some(AuthTokens::from_file(path)?),
        None => None,
    };
    let config = match &tokens {
        Some(tokens) => config.auth_tokens(tokens.clone()).allow_v1(args.allow_v1),
        None => config,
    };
    let config = match &args.ws_addr {
        Some(addr) => {
            // The chat page and the JavaScript client built in, then the
            // files of --web-root, which win over them.
            let chat = Page::new(
                "/",
                "text/html; charset=utf-8",
                &include_bytes!("../../../clients/js/chat.html")[..],
            );
            let mut ws = WebSocketConfig::new(addr.clone())
                .allowed_origins(args.ws_allowed_origin.clone())
                .pages(vec![chat])
                .javascript_client();
            if let Some(root) = &args.web_root {
                ws = ws.directory(root).context("--web-root")?;
            }
            config.websocket(ws)
        }
        None => config,
    };
    let config = match &args.session_store {
        #[cfg(feature = "nats")]
        Some(url) => {
            let Some(resume) = &config.resume else {
                anyhow::bail!(
                    "--session-store needs resumable sessions (--resume-expiry-secs above 0)"
                );
            };
            let store = rust_tcp::SessionStore::connect(
                url,
                &args.session_bucket,
                resume.expiry,
                resume.replay_max_bytes,
            )
            .await?;
            tracing::info!(bucket = %args.session_bucket, "session store connected");
            config.session_store(store)
        }
        #[cfg(not(feature = "nats"))]
        Some(url) => {
            anyhow::bail!("--session-store {url}: this server was built without the `nats` feature")
        }
        None => config,
    };
    let server = Server::bind(&args.addr, config).await?;
    let secure = tls.is_some();
    // Registered now, before the address is announced: a SIGHUP's default
    // action would end the process.
    use tokio::signal::unix::{SignalKind, signal};
    let hangups = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    tokio::spawn(reload_on_sighup(tokens, tls, hangups));
    // Handlers first: whoever reads the address below may signal at once.
    let stop = terminate_signal();
    tracing::info!("listening on {}", server.local_addr());
    if let Some(ws) = server.websocket_addr() {
        let (scheme, page) = if secure {
            ("wss", "https")
        } else {
            ("ws", "http")
        };
        tracing::info!("listening for WebSockets on {scheme}://{ws}/ (chat page: {page}://{ws}/)");
    }

    if args.sink {
        let sink = SinkService::default();
        server.run(sink.clone(), stop).await;
        tracing::info!(
            "server stopped; {} messages and requests received",
            sink.received()
        );
        return Ok(());
    }

    // Our own handle on stdout, written by one thread in large batches
    // (std's `Stdout` would add a lock and line buffering per write).
    let stdout = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stdout")?;
    let (out, writer) = spawn_line_output(std::fs::File::from(stdout));
    let mut service = PrintService::new(out);
    if args.sync_output {
        let stdout = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stdout")?;
        service = service.with_sync_output(std::fs::File::from(stdout));
    }
    if args.broadcast {
        service = service.with_broadcast();
    }
    if let Some(url) = &args.nats {
        #[cfg(feature = "nats")]
        {
            let bus = rust_tcp::bus::NatsBus::connect(url, "rust-tcp.room").await?;
            service = service.with_bus(bus, &args.room).await?;
        }
        #[cfg(not(feature = "nats"))]
        anyhow::bail!("--nats {url}: this server was built without the `nats` feature");
    }
    server.run(service, stop).await;

    // Every handler is gone, so the writer sees the end of its input and
    // finishes writing what is queued.
    tokio::task::spawn_blocking(move || writer.join())
        .await?
        .context("writing messages to stdout")?;
    tracing::info!("server stopped");
    Ok(())
}
