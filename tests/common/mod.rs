//! Helpers shared by the integration tests: a real `server` process on a
//! free loopback port, with its stdout and stderr readable line by line; a
//! library `Server` in this process; raw v2 conversations (`v2.rs`); chat
//! processes (`chat.rs`); and the split-point helper (`split.rs`).
#![allow(dead_code, unused_imports)]

pub mod certs;
pub mod chat;
pub mod fault_proxy;
pub mod split;
pub mod v2;

pub use chat::ChatProcess;
pub use split::for_every_pair_of_split_points;
pub use v2::{encode, hello, named, next_frame, raw_v2, raw_v2_from};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen at once before it
/// declares failure. A bound on failure, never a synchronisation device.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct ServerProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line read so far.
    log: std::sync::Mutex<Vec<String>>,
}

fn lines_of(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl ServerProcess {
    /// Starts `server --addr 127.0.0.1:0 EXTRA...` and waits for its address.
    pub fn start(extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
        cmd.args(["--addr", "127.0.0.1:0"]).args(extra);
        Self::spawn(cmd)
    }

    /// Starts `server --addr ADDR EXTRA...` (a fixed address, e.g. to
    /// replace a server that stopped).
    pub fn start_on(addr: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
        cmd.args(["--addr", addr]).args(extra);
        Self::spawn(cmd)
    }

    /// Sends `signal` (e.g. "STOP") without waiting.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        if signal == "STOP" {
            // Delivery is asynchronous: wait until the kernel reports the
            // process stopped, so nothing it does afterwards can race.
            let stat = format!("/proc/{}/stat", self.pid());
            let deadline = Instant::now() + PATIENCE;
            while !std::fs::read_to_string(&stat)
                .unwrap()
                .rsplit(") ")
                .next()
                .is_some_and(|rest| rest.starts_with('T'))
            {
                assert!(Instant::now() < deadline, "the server did not stop");
                std::thread::yield_now();
            }
        }
    }

    /// Like `start`, with glibc's allocator told to return every large
    /// allocation to the system when it is freed (a fixed mmap threshold),
    /// so the server's RSS shows what it holds, not what malloc caches.
    pub fn start_measured(extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
        cmd.args(["--addr", "127.0.0.1:0"])
            .args(extra)
            .env("MALLOC_MMAP_THRESHOLD_", "131072")
            .env("MALLOC_TRIM_THRESHOLD_", "131072");
        Self::spawn(cmd)
    }

    /// Like `start`, but with the server's file-descriptor limit set to
    /// `limit`, to drive `accept` into "too many open files".
    pub fn start_with_fd_limit(limit: u32) -> Self {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "ulimit -n {limit} && exec \"$0\" --addr 127.0.0.1:0"
            ))
            .arg(env!("CARGO_BIN_EXE_server"));
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the server binary");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        let mut server = ServerProcess {
            child: Some(child),
            addr: "0.0.0.0:0".parse().unwrap(),
            stdout,
            stderr,
            log: Default::default(),
        };
        let line = server.wait_for_log("listening on ");
        // Text or JSON logs: the address is what follows, up to its end.
        let after = line.rsplit("listening on ").next().unwrap();
        let addr: String = after
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
            .collect();
        server.addr = addr.parse().expect("server logs a socket address");
        server
    }

    pub fn addr_arg(&self) -> String {
        self.addr.to_string()
    }

    /// The next line the server printed to stdout.
    pub fn next_output_line(&self) -> String {
        self.stdout
            .recv_timeout(PATIENCE)
            .expect("the server printed a line in time")
    }

    /// The next `n` lines printed to stdout.
    pub fn output_lines(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.next_output_line()).collect()
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.try_wait_for_log(needle, PATIENCE)
            .unwrap_or_else(|| panic!("no log line containing {needle:?} in time"))
    }

    /// Like `wait_for_log`, but gives up quietly after `limit`: for a test
    /// that asks several servers which one a client reached.
    pub fn try_wait_for_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let mut log = self.log.lock().unwrap();
        wait_for_line(&self.stderr, limit, &mut log, |line| line.contains(needle))
    }

    /// Waits until a log line containing each of `needles` has appeared,
    /// in any order (for events on different connections, whose log lines
    /// race each other), one line per needle (a needle given twice waits
    /// for two such lines).
    pub fn wait_for_logs(&self, needles: &[&str]) {
        let mut missing: Vec<&str> = needles.to_vec();
        let mut log = self.log.lock().unwrap();
        let all = wait_for_line(&self.stderr, PATIENCE, &mut log, |line| {
            if let Some(i) = missing.iter().position(|n| line.contains(n)) {
                missing.remove(i);
            }
            missing.is_empty()
        });
        if all.is_none() {
            panic!("no log lines containing {missing:?} in time");
        }
    }

    /// Every log line read so far (by `wait_for_log`).
    pub fn log_so_far(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends `signal` (e.g. "TERM") and waits for the process to exit.
    pub fn stop_with(mut self, signal: &str) -> ExitStatus {
        self.stop(signal)
    }

    /// Like `stop_with`, and also returns every stdout line not read yet.
    pub fn stop_and_collect_output(mut self, signal: &str) -> (ExitStatus, Vec<String>) {
        let status = self.stop(signal);
        (status, self.stdout.iter().collect())
    }

    /// Like `stop_with`, and also returns every log line not read yet.
    pub fn stop_and_collect_log(mut self, signal: &str) -> (ExitStatus, Vec<String>) {
        let status = self.stop(signal);
        (status, self.stderr.iter().collect())
    }

    fn stop(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(&pid)
            .status();
        assert!(sent.unwrap().success());
        // Wait on a helper thread, so that a server that never exits fails
        // the test after PATIENCE instead of hanging it.
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(PATIENCE) {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("server did not stop within {PATIENCE:?} of SIG{signal}");
            }
        }
    }

    /// All stdout lines printed until the process exits (after `stop_with`).
    pub fn remaining_output(&self) -> Vec<String> {
        self.stdout.iter().collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One v1 frame.
pub fn v1_frame(content: &[u8]) -> Vec<u8> {
    let mut f = vec![1];
    f.extend_from_slice(&(content.len() as u16).to_be_bytes());
    f.extend_from_slice(content);
    f
}

/// A raw TCP connection, for sending arbitrary (also broken) bytes.
pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connecting to the server");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Sends `bytes`, then waits until the server closes the connection.
/// Returns whatever the server sent before closing.
pub fn send_and_wait_for_close(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    stream.write_all(bytes).unwrap();
    read_until_closed(stream)
}

/// Reads until the server closes; panics if it does not within PATIENCE.
pub fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A reset also tells us the server closed (it had unread input).
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("server did not close the connection: {e}"),
        }
    }
}

/// How the server prints a message whose content is plain text.
pub fn printed(content: &str) -> String {
    format!("Message: {content:?}")
}

/// A library `Server` running in this process on a free port.
pub struct InProcessServer {
    pub addr: String,
    pub stop: tokio_util::sync::CancellationToken,
    pub running: tokio::task::JoinHandle<()>,
}

impl InProcessServer {
    pub async fn start<S: rust_tcp::Service>(service: S, config: rust_tcp::ServerConfig) -> Self {
        let server = rust_tcp::Server::bind("127.0.0.1:0", config).await.unwrap();
        let addr = server.local_addr().to_string();
        let stop = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(server.run(service, stop.clone().cancelled_owned()));
        InProcessServer {
            addr,
            stop,
            running,
        }
    }

    pub async fn shut_down(self) {
        self.stop.cancel();
        self.running.await.unwrap();
    }
}

/// Runs a client binary with `args`, feeding `stdin` if given.
pub fn run_client(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

impl ServerProcess {
    /// The server's process id, to signal it.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The server's resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS:")
    }

    /// The most resident memory the server has had so far, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM:")
    }

    fn proc_status_kib(&self, key: &str) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in /proc/PID/status"))
    }
}

/// A service that forwards every text message to the test as
/// (sender's name, text) and echoes every request. A v1 sender's name is
/// its address.
pub struct Collect(pub tokio::sync::mpsc::UnboundedSender<(String, String)>);
pub struct CollectHandler(tokio::sync::mpsc::UnboundedSender<(String, String)>, String);

impl Collect {
    /// The service and the receiving end of what it collects.
    pub fn new() -> (Self, tokio::sync::mpsc::UnboundedReceiver<(String, String)>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Collect(tx), rx)
    }
}

impl rust_tcp::Service for Collect {
    type Handler = CollectHandler;
    fn connect(&self, peer: &rust_tcp::PeerInfo) -> CollectHandler {
        CollectHandler(self.0.clone(), peer.name.clone())
    }
}

impl rust_tcp::Handler for CollectHandler {
    async fn on_text(&mut self, message: rust_tcp::protocol::Message) {
        let _ = self.0.send((self.1.clone(), message.as_str().to_owned()));
    }
    async fn on_request(&mut self, payload: bytes::Bytes, responder: rust_tcp::Responder) {
        let _ = responder.respond(payload);
    }
}

/// A service that hands the test the `PeerInfo` of every connection it
/// admits, and ignores what they send: for asserting who got in, and as
/// whom (certificate, token).
pub struct Admitted(pub std::sync::mpsc::Sender<rust_tcp::PeerInfo>);
pub struct Ignore;

impl Admitted {
    pub fn new() -> (Self, std::sync::mpsc::Receiver<rust_tcp::PeerInfo>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (Admitted(tx), rx)
    }
}

impl rust_tcp::Service for Admitted {
    type Handler = Ignore;
    fn connect(&self, peer: &rust_tcp::PeerInfo) -> Ignore {
        let _ = self.0.send(peer.clone());
        Ignore
    }
}

impl rust_tcp::Handler for Ignore {
    async fn on_text(&mut self, _: rust_tcp::protocol::Message) {}
}

/// A process's standard error, as text.
pub fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A loopback port nobody listens on now (for programs that need a fixed
/// port: HAProxy, nats-server, a metrics endpoint).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` from 127.0.0.1:`port`: the Prometheus text.
pub fn scrape_metrics(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1."), "{response}");
    response[response.find("\r\n\r\n").unwrap() + 4..].to_owned()
}

/// A fresh file holding `tokens` (one per line), for `--auth-token-file`.
pub fn token_file(tokens: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("rust-tcp-tokens-{}-{n}", std::process::id()));
    std::fs::write(&path, tokens).unwrap();
    path
}

/// The one way a test waits for output: reads `lines` until `wanted`
/// accepts one (returned) or `limit` passes (`None`); every line read is
/// pushed to `seen`, for the failure message.
pub fn wait_for_line(
    lines: &Receiver<String>,
    limit: Duration,
    seen: &mut Vec<String>,
    mut wanted: impl FnMut(&str) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).ok()?;
        seen.push(line.clone());
        if wanted(&line) {
            return Some(line);
        }
    }
}
