//! docs/DEPLOY.md, tested: two real servers behind a real HAProxy (the
//! `haproxy.cfg` is read from the document, only its ports changed), joined
//! by a real nats-server, all on free loopback ports and stopped by PID.
//! `.ci/run` installs `haproxy` and `nats-server` (Debian packages).

mod common;

use common::{ChatProcess, PATIENCE, ServerProcess, free_port, scrape_metrics, wait_for_line};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// HAProxy connects to the servers from this address, so a server that
/// logs 127.0.0.1 for a client took it from the PROXY header.
const BALANCER_SOURCE: &str = "127.0.0.3";

/// A child process killed (by its PID) when dropped, with its stderr lines.
struct Daemon {
    child: Child,
    stderr: Receiver<String>,
    name: &'static str,
}

impl Daemon {
    fn start(name: &'static str, program: &str, args: &[&str]) -> Daemon {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {program} ({e}); .ci/run installs it (apt-get install {name})")
            });
        let (tx, stderr) = channel();
        let from = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        Daemon {
            child,
            stderr,
            name,
        }
    }

    fn wait_for_log(&self, needle: &str) {
        let mut seen = Vec::new();
        if wait_for_line(&self.stderr, PATIENCE, &mut seen, |l| l.contains(needle)).is_none() {
            panic!("{} did not log {needle:?} in time: {seen:?}", self.name);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats(port: u16) -> Daemon {
    let port = port.to_string();
    let nats = Daemon::start(
        "nats-server",
        "nats-server",
        &["-a", "127.0.0.1", "-p", &port],
    );
    nats.wait_for_log("Server is ready");
    nats
}

/// `contrib/haproxy/haproxy.cfg`, which docs/DEPLOY.md shows, with this
/// test's ports.
fn haproxy_config(front: u16, s1: &ServerProcess, s2: &ServerProcess) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let file = std::fs::read_to_string(format!("{root}/contrib/haproxy/haproxy.cfg")).unwrap();
    let doc = std::fs::read_to_string(format!("{root}/docs/DEPLOY.md")).unwrap();
    let start = doc
        .find("```haproxy\n")
        .expect("DEPLOY.md shows the haproxy.cfg")
        + 11;
    let len = doc[start..].find("```").unwrap();
    assert!(
        file.ends_with(&doc[start..start + len]),
        "docs/DEPLOY.md shows contrib/haproxy/haproxy.cfg as it is"
    );
    let config = file
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{front}"))
        .replace("127.0.0.1:9001", &s1.addr_arg())
        .replace("127.0.0.1:9002", &s2.addr_arg())
        .replace(
            "\nbackend servers\n",
            &format!("\nbackend servers\n    source {BALANCER_SOURCE}\n"),
        );
    assert!(config.contains(&s2.addr_arg()), "the ports were replaced");
    config
}

fn server(name: &str, nats_port: u16, extra: &[&str]) -> ServerProcess {
    let url = format!("nats://127.0.0.1:{nats_port}");
    let mut args = vec![
        "--name",
        name,
        "--broadcast",
        "--nats",
        &url,
        "--proxy-protocol",
        "--shutdown-grace-secs",
        "2",
    ];
    args.extend(extra);
    let s = ServerProcess::start(&args);
    s.wait_for_log("NATS connected");
    s
}

/// Which of the servers logged `needle` (a client's session).
fn which(servers: [&ServerProcess; 2], needle: &str) -> usize {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        for (i, s) in servers.iter().enumerate() {
            if s.try_wait_for_log(needle, Duration::from_millis(50))
                .is_some()
            {
                return i;
            }
        }
    }
    panic!("no server logged {needle:?}");
}

/// `from` says `text` until `to` shows it (each try waits up to 2 s for
/// it): right after NATS comes back, a server's subscription may still be
/// on its way, and what is published before it arrives is not relayed.
fn say_until_heard(from: &ChatProcess, from_name: &str, text: &str, to: &ChatProcess) {
    for attempt in 0..10 {
        let line = format!("{text} #{attempt}");
        from.say(&line);
        if to.try_wait_for_line(&format!("{from_name}: {line}"), Duration::from_secs(2)) {
            return;
        }
    }
    panic!("{text:?} never reached the other server's client");
}

#[test]
fn two_servers_behind_haproxy_share_a_chat_over_nats_and_clients_fail_over() {
    let nats_port = free_port();
    let mut nats_server = nats(nats_port);
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let s1 = server("s1", nats_port, &["--metrics-addr", &metrics_addr]);
    let metrics2_port = free_port();
    let metrics2_addr = format!("127.0.0.1:{metrics2_port}");
    let s2 = server("s2", nats_port, &["--metrics-addr", &metrics2_addr]);

    let front = free_port();
    let config_path = std::env::temp_dir().join(format!("rust-tcp-haproxy-{front}.cfg"));
    std::fs::write(&config_path, haproxy_config(front, &s1, &s2)).unwrap();
    let _haproxy = Daemon::start(
        "haproxy",
        "haproxy",
        &["-f", config_path.to_str().unwrap(), "-db"],
    );
    // The health check completes a whole v2 session on each server, a
    // clean close, counted and logged at debug level only (not at info,
    // where two checks a second would fill the log).
    for port in [metrics_port, metrics2_port] {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let scraped = scrape_metrics(port);
            let checks = scraped
                .lines()
                .any(|l| l.starts_with("rust_tcp_health_checks_total ") && !l.ends_with(" 0"));
            let clean = scraped.lines().any(|l| {
                l.starts_with("rust_tcp_connections_closed_total{reason=\"close_handshake\"}")
            });
            if checks && clean {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no complete health check: {scraped}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    for s in [&s1, &s2] {
        assert!(
            !s.log_so_far().iter().any(|l| l.contains("name=haproxy")),
            "health checks are not logged at info"
        );
    }

    let addr = format!("127.0.0.1:{front}");
    let alice = ChatProcess::start_via(&addr, "alice", &[]);
    let alice_on = which([&s1, &s2], "name=alice");
    let bob = ChatProcess::start_via(&addr, "bob", &[]);
    let bob_on = which([&s1, &s2], "name=bob");
    assert_ne!(
        alice_on, bob_on,
        "leastconn put the two clients on different servers"
    );

    // The servers logged the clients' real addresses, not HAProxy's.
    let sessions: Vec<String> = [&s1, &s2]
        .iter()
        .flat_map(|s| s.log_so_far())
        .filter(|l| l.contains("v2 session open") && !l.contains("name=haproxy"))
        .collect();
    assert_eq!(sessions.len(), 2, "alice's and bob's: {sessions:?}");
    for line in &sessions {
        assert!(line.contains("peer=127.0.0.1:"), "{line}");
        assert!(!line.contains(BALANCER_SOURCE), "{line}");
    }

    // Across servers, both ways.
    alice.say("hello from s-alice");
    bob.wait_for_line("alice: hello from s-alice");
    bob.say("hello from s-bob");
    alice.wait_for_line("bob: hello from s-bob");

    // NATS goes away: each server keeps its own room.
    drop(nats_server);
    s1.wait_for_log("NATS disconnected");
    s2.wait_for_log("NATS disconnected");
    let carol = ChatProcess::start_via(&addr, "carol", &[]);
    let carol_on = which([&s1, &s2], "name=carol");
    let neighbour = if carol_on == alice_on { &alice } else { &bob };
    carol.say("only my server hears this");
    neighbour.wait_for_line("carol: only my server hears this");

    // NATS is back: relaying resumes.
    nats_server = nats(nats_port);
    s1.wait_for_log("NATS connected");
    s2.wait_for_log("NATS connected");
    let far = if carol_on == alice_on { &bob } else { &alice };
    say_until_heard(&carol, "carol", "across again", far);

    // s1 relayed and received through NATS, and says so in its metrics.
    let metrics = scrape_metrics(metrics_port);
    for series in [
        "rust_tcp_bus_published_total ",
        "rust_tcp_bus_received_total ",
    ] {
        let value: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .unwrap_or_else(|| panic!("{series}missing: {metrics}"))
            .trim()
            .parse()
            .unwrap();
        assert!(value >= 1.0, "{series}{value}");
    }

    // SIGTERM alice's server: alice reconnects through HAProxy to the other
    // one and keeps chatting with bob.
    let (leaving, staying) = if alice_on == 0 { (s1, s2) } else { (s2, s1) };
    let status = leaving.stop_with("TERM");
    assert!(status.success(), "{status:?}");
    let notices = alice.wait_for_notice("reconnected to");
    assert!(
        notices.iter().any(|n| n.contains("reconnecting")),
        "alice said why she reconnects: {notices:?}"
    );
    staying.wait_for_log("name=alice");
    alice.say("still here");
    bob.wait_for_line("alice: still here");

    drop(nats_server);
    let _ = std::fs::remove_file(config_path);
    for c in [alice, bob, carol] {
        c.finish();
    }
}

#[test]
fn a_server_whose_nats_is_unreachable_serves_its_own_clients_and_says_so_once() {
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let server = ServerProcess::start(&["--broadcast", "--nats", &nowhere]);
    server.wait_for_log("NATS unreachable");
    let alice = ChatProcess::start(&server, "alice");
    let bob = ChatProcess::start(&server, "bob");
    alice.say("local chat still works");
    bob.wait_for_line("alice: local chat still works");
    // Retries go on in the background without a line each.
    let unreachable = server
        .log_so_far()
        .iter()
        .filter(|l| l.contains("NATS unreachable"))
        .count();
    assert_eq!(unreachable, 1);
    // Ours, that is: RUST_LOG=info also shows the NATS client's own lines.
    let ours_per_attempt = server
        .log_so_far()
        .iter()
        .filter(|l| l.contains("rust_tcp::bus") && l.contains("IO error"))
        .count();
    assert_eq!(ours_per_attempt, 1, "no line of ours per failed attempt");
    for c in [alice, bob] {
        c.finish();
    }
}

/// nats-server with JetStream on, its storage in a fresh directory.
fn nats_with_jetstream(port: u16) -> (Daemon, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("rust-tcp-jetstream-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    let nats = Daemon::start(
        "nats-server",
        "nats-server",
        &[
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-js",
            "-sd",
            dir.to_str().unwrap(),
        ],
    );
    nats.wait_for_log("Server is ready");
    (nats, dir)
}

/// A server of the session-store deployment on `addr`: its sessions in
/// JetStream, each message written to stdout as it is handled.
fn store_server(name: &str, addr: &str, nats_port: u16, metrics_port: u16) -> ServerProcess {
    let store = format!("nats://127.0.0.1:{nats_port}");
    let metrics = format!("127.0.0.1:{metrics_port}");
    ServerProcess::start_on(
        addr,
        &[
            "--name",
            name,
            "--proxy-protocol",
            "--session-store",
            &store,
            "--sync-output",
            "--metrics-addr",
            &metrics,
            "--shutdown-grace-secs",
            "2",
        ],
    )
    // It listens (which `start_on` waits for) only once the store is open.
}

/// Waits until HAProxy's health check has reached the server whose
/// metrics are on `port` (it is in service then).
fn wait_in_service(port: u16) {
    let deadline = Instant::now() + PATIENCE;
    while !scrape_metrics(port)
        .lines()
        .any(|l| l.starts_with("rust_tcp_health_checks_total ") && !l.ends_with(" 0"))
    {
        assert!(
            Instant::now() < deadline,
            "HAProxy never checked the server"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The numbers of the `tN` messages a server printed, in order.
fn printed_texts(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .filter_map(|l| {
            l.strip_prefix("Message: \"t")?
                .strip_suffix('"')?
                .parse()
                .ok()
        })
        .collect()
}

/// Issue 28, item 2: behind HAProxy, the server serving a resumable
/// session is killed (`kill -9`) three times, mid-traffic; each time the
/// client resumes on the other server from the session's record in
/// JetStream. Every request is answered exactly once with its own answer,
/// or, if the dead server had been given it, ends with an error saying so
/// (never run twice); every message is handled, in order; and a message is
/// handled twice only if it was one of those the resuming server said were
/// in doubt (counted by the dead server, which died before recording that
/// it had handled them: they are delivered again rather than lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_server_is_killed_resumes_on_another_with_nothing_lost() {
    use rust_tcp::protocol::v2::ResumeSettings;
    use rust_tcp::{Client, ClientError, Pushed, Reconnect};

    const TEXTS: usize = 3_000;
    const KILLS: [usize; 3] = [600, 1_400, 2_200];
    let nats_port = free_port();
    let (_nats, js_dir) = nats_with_jetstream(nats_port);
    let addrs = [free_port(), free_port()].map(|p| format!("127.0.0.1:{p}"));
    let metrics = [free_port(), free_port()];
    let names = ["s1", "s2"];
    let mut servers: [Option<ServerProcess>; 2] =
        [0, 1].map(|i| Some(store_server(names[i], &addrs[i], nats_port, metrics[i])));
    let front = free_port();
    let config_path = std::env::temp_dir().join(format!("rust-tcp-haproxy-{front}.cfg"));
    std::fs::write(
        &config_path,
        haproxy_config(
            front,
            servers[0].as_ref().unwrap(),
            servers[1].as_ref().unwrap(),
        ),
    )
    .unwrap();
    let _haproxy = Daemon::start(
        "haproxy",
        "haproxy",
        &["-f", config_path.to_str().unwrap(), "-db"],
    );
    metrics.iter().for_each(|p| wait_in_service(*p));

    let config = rust_tcp::ClientConfig::default()
        .name("alice")
        .reconnect(Some(
            Reconnect::default()
                .initial_delay(Duration::from_millis(5))
                .max_delay(Duration::from_millis(100)),
        ))
        .resume(Some(ResumeSettings::default()))
        .request_timeout(Some(PATIENCE * 3));
    let client = Client::connect_with(&format!("127.0.0.1:{front}"), config)
        .await
        .unwrap();
    let mut incoming = client.incoming().unwrap();
    let events = tokio::spawn(async move {
        let (mut resumed, mut refused) = (Vec::new(), Vec::new());
        while let Some(item) = incoming.recv().await {
            match item {
                Pushed::Resumed { replayed, resent } => resumed.push((replayed, resent)),
                Pushed::ResumeRefused { reason, .. } => refused.push(reason),
                _ => {}
            }
        }
        (resumed, refused)
    });
    let mut on = tokio::task::block_in_place(|| {
        which(
            [servers[0].as_ref().unwrap(), servers[1].as_ref().unwrap()],
            "name=alice",
        )
    });

    // One message after another, a request with every fifth (up to 32 in
    // flight); the traffic goes on while the server is killed and the
    // session moves, and waits for each kill a little after it is due.
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let (killed_tx, killed) = tokio::sync::watch::channel(0usize);
    let traffic = tokio::spawn({
        let client = client.clone();
        async move {
            let mut requests = tokio::task::JoinSet::new();
            let mut answers = Vec::new();
            let mut killed = killed;
            for i in 0..TEXTS {
                if let Some(round) = KILLS.iter().position(|k| *k + 200 == i) {
                    killed.wait_for(|k| *k > round).await.unwrap();
                }
                client.send_text(format!("t{i}")).await.unwrap();
                if i % 5 == 0 {
                    let client = client.clone();
                    requests.spawn(async move { (i, client.request(format!("q{i}")).await) });
                    if requests.len() >= 32 {
                        answers.push(requests.join_next().await.unwrap().unwrap());
                    }
                }
                progress_tx.send_replace(i);
            }
            while let Some(answer) = requests.join_next().await {
                answers.push(answer.unwrap());
            }
            answers
        }
    });

    let mut printed = Vec::new();
    let mut in_doubt = 0;
    // Each server's peak resident memory, taken just before it is stopped.
    let mut peaks_kib = Vec::new();
    for (round, at) in KILLS.iter().enumerate() {
        progress.wait_for(|p| p >= at).await.unwrap();
        let victim = servers[on].take().unwrap();
        peaks_kib.push(victim.peak_rss_kib());
        let (_, lines) = victim.stop_and_collect_output("KILL");
        printed.push(printed_texts(&lines));
        killed_tx.send_replace(round + 1);
        let survivor = 1 - on;
        let line = tokio::task::block_in_place(|| {
            servers[survivor]
                .as_ref()
                .unwrap()
                .wait_for_log("v2 session resumed from the session store")
        });
        in_doubt += line
            .split("in_doubt=")
            .nth(1)
            .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
            .expect("the resume says how many frames were in doubt");
        // The dead one comes back (empty), for the next kill to move the
        // session back to it.
        servers[on] = Some(store_server(names[on], &addrs[on], nats_port, metrics[on]));
        tokio::task::block_in_place(|| wait_in_service(metrics[on]));
        on = survivor;
    }
    let answers = tokio::time::timeout(PATIENCE * 4, traffic)
        .await
        .expect("every request ended")
        .unwrap();
    client.close().await.unwrap();
    let (resumed, refused) = events.await.unwrap();

    let (mut answered, mut ended) = (0, 0);
    for (i, answer) in &answers {
        match answer {
            Ok(payload) => {
                assert_eq!(&payload[..], format!("q{i}").as_bytes());
                answered += 1;
            }
            Err(ClientError::RequestFailed(why)) if why.contains("server serving it stopped") => {
                ended += 1
            }
            Err(other) => panic!("request q{i}: {other}"),
        }
    }
    assert_eq!(answers.len(), TEXTS / 5);
    for s in servers.iter_mut() {
        let s = s.take().unwrap();
        peaks_kib.push(s.peak_rss_kib());
        let (_, lines) = s.stop_and_collect_output("TERM");
        printed.push(printed_texts(&lines));
    }
    let mut seen = vec![0u32; TEXTS];
    for list in &printed {
        assert!(
            list.windows(2).all(|w| w[0] < w[1]),
            "each server handled the messages in order"
        );
        list.iter().for_each(|n| seen[*n] += 1);
    }
    let twice: Vec<usize> = (0..TEXTS).filter(|n| seen[*n] > 1).collect();
    let missing: Vec<usize> = (0..TEXTS).filter(|n| seen[*n] == 0).collect();
    println!(
        "{} kills: {} resumes from the store ({resumed:?} replayed/resent), {} refused; \
         {answered} requests answered, {ended} ended by a server's death; {} messages handled once, \
         {} twice, {} missing ({in_doubt} in doubt at the resumes); servers' peak RSS {:?} MiB",
        KILLS.len(),
        resumed.len(),
        refused.len(),
        TEXTS - missing.len() - twice.len(),
        twice.len(),
        missing.len(),
        peaks_kib.iter().map(|k| k / 1024).collect::<Vec<_>>()
    );
    assert!(refused.is_empty(), "no resume was refused: {refused:?}");
    // Bounded: a server's replay buffer per session and its kept sessions
    // are capped, so moves and replays leave no growing residue (a server
    // serving this one session idles at about 10 MiB).
    assert!(
        peaks_kib.iter().all(|k| *k < 64 * 1024),
        "a server's memory grew past 64 MiB: {peaks_kib:?} KiB"
    );
    assert_eq!(resumed.len(), KILLS.len(), "one resume per kill");
    assert!(missing.is_empty(), "never handled: {missing:?}");
    assert!(
        twice.len() <= in_doubt,
        "handled twice {twice:?}, but only {in_doubt} were in doubt"
    );
    assert!(answered + ended == TEXTS / 5 && answered > 0);
    let _ = std::fs::remove_file(config_path);
    let _ = std::fs::remove_dir_all(js_dir);
}

/// What the servers of the test below handled, in order, and how many
/// messages their handlers were told might repeat.
#[derive(Clone, Default)]
struct Handled {
    texts: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
    in_doubt: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

struct Recorder(Handled);

impl rust_tcp::Service for Handled {
    type Handler = Recorder;
    fn connect(&self, peer: &rust_tcp::PeerInfo) -> Recorder {
        self.in_doubt
            .fetch_add(peer.resumed_in_doubt, std::sync::atomic::Ordering::SeqCst);
        Recorder(self.clone())
    }
}

impl rust_tcp::Handler for Recorder {
    async fn on_text(&mut self, m: rust_tcp::Message) {
        let n = m.as_str()[1..].parse().unwrap();
        self.0.texts.lock().unwrap().push(n);
    }
}

/// Forwards each connection it accepts to the next of `targets` in turn,
/// until `cut` is told.
async fn alternating_proxy(
    listener: tokio::net::TcpListener,
    targets: Vec<String>,
    cut: std::sync::Arc<tokio::sync::Notify>,
) {
    for target in targets.iter().cycle() {
        let Ok((mut client, _)) = listener.accept().await else {
            return;
        };
        let mut server = tokio::net::TcpStream::connect(target).await.unwrap();
        let cut = cut.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.notified() => {}
            }
        });
    }
}

/// A client whose connection is cut while both servers live lands on the
/// other one each time (as `balance leastconn` may send it): its session
/// moves through the store, there and back (where the first server's own,
/// stale copy is not used), and every message is handled exactly once, in
/// order (the server that lost the client records so before the next one
/// resumes, which waits for that record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_between_live_servers_through_the_store() {
    use rust_tcp::protocol::v2::ResumeSettings;
    use rust_tcp::{Client, Pushed, Reconnect, ServerConfig, SessionStore};

    let nats_port = free_port();
    let (_nats, js_dir) = nats_with_jetstream(nats_port);
    let url = format!("nats://127.0.0.1:{nats_port}");
    let handled = Handled::default();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let store = SessionStore::connect(&url, "moves", Duration::from_secs(60), 256 * 1024)
            .await
            .unwrap();
        let config = ServerConfig::default().session_store(store);
        servers.push(common::InProcessServer::start(handled.clone(), config).await);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cut = std::sync::Arc::new(tokio::sync::Notify::new());
    let targets = servers.iter().map(|s| s.addr.clone()).collect();
    tokio::spawn(alternating_proxy(listener, targets, cut.clone()));
    let config = rust_tcp::ClientConfig::default()
        .name("mover")
        .reconnect(Some(
            Reconnect::default()
                .initial_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(20)),
        ))
        .resume(Some(ResumeSettings::default()));
    let client = Client::connect_with(&addr, config).await.unwrap();
    let mut incoming = client.incoming().unwrap();
    const MOVES: usize = 4;
    const PER_LEG: usize = 250;
    for leg in 0..=MOVES {
        for i in leg * PER_LEG..(leg + 1) * PER_LEG {
            client.send_text(format!("t{i}")).await.unwrap();
        }
        if leg == MOVES {
            break;
        }
        cut.notify_one();
        loop {
            match tokio::time::timeout(PATIENCE, incoming.recv())
                .await
                .unwrap()
            {
                Some(Pushed::Resumed { .. }) => break,
                Some(Pushed::ResumeRefused { reason, .. }) => panic!("refused: {reason}"),
                Some(_) => {}
                None => panic!("the client ended"),
            }
        }
    }
    client.close().await.unwrap();
    let texts = handled.texts.lock().unwrap().clone();
    let in_doubt = handled.in_doubt.load(std::sync::atomic::Ordering::SeqCst);
    let mut first = Vec::new();
    let mut repeated = 0;
    for n in &texts {
        if first.contains(n) {
            repeated += 1;
        } else {
            first.push(*n);
        }
    }
    println!(
        "{MOVES} moves between live servers: {} messages handled once, {repeated} again \
         ({in_doubt} said to be in doubt)",
        first.len()
    );
    assert_eq!(first, (0..(MOVES + 1) * PER_LEG).collect::<Vec<_>>());
    // A live server records what it handled when it loses the client, and
    // the next one waits for that record: nothing is in doubt.
    assert_eq!((repeated, in_doubt), (0, 0), "each message handled once");
    for s in servers {
        s.shut_down().await;
    }
    let _ = std::fs::remove_dir_all(js_dir);
}
