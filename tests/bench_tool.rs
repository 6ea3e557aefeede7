//! `client bench` and `server --sink`, end to end: what the tool reports
//! adds up (no timing is asserted: figures belong in benchmarks).

mod common;

use common::*;

fn bench(server: &ServerProcess, args: &[&str]) -> serde_json::Value {
    let addr = server.addr_arg();
    let mut all = vec!["--addr", addr.as_str()];
    all.extend_from_slice(args);
    all.push("--json");
    let out = run_client(&all, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().expect("a JSON line last");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

#[test]
fn requests_over_many_connections_report_counts_and_ordered_percentiles() {
    let server = ServerProcess::start(&["--sink"]);
    let r = bench(
        &server,
        &[
            "bench",
            "--count",
            "3000",
            "--connections",
            "3",
            "--in-flight",
            "4",
        ],
    );
    assert_eq!(r["mode"], "request");
    assert_eq!(r["operations"], 3000);
    assert_eq!(r["connections"], 3);
    assert!(r["per_sec"].as_f64().unwrap() > 0.0);
    assert!(r["mb_per_sec"].as_f64().unwrap() > 0.0);
    let l = &r["latency_us"];
    let q: Vec<f64> = ["p50", "p90", "p99", "p99_9", "max"]
        .iter()
        .map(|k| l[k].as_f64().unwrap())
        .collect();
    assert!(q[0] > 0.0 && q.windows(2).all(|w| w[0] <= w[1]), "{l}");
}

#[test]
fn one_way_modes_deliver_every_message_to_the_sink() {
    let server = ServerProcess::start(&["--sink"]);
    let r = bench(
        &server,
        &[
            "bench",
            "--mode",
            "binary",
            "--count",
            "5000",
            "--size",
            "100",
            "--connections",
            "2",
        ],
    );
    assert_eq!(r["operations"], 5000);
    let r = bench(&server, &["--v1", "bench", "--count", "4000"]);
    assert_eq!(r["mode"], "v1");
    assert_eq!(r["operations"], 4000);
    // 9,000 measured plus 10 warm-up messages per connection (3 of them);
    // each close was acknowledged, so the sink has them all.
    let (status, log) = server.stop_and_collect_log("TERM");
    assert!(status.success());
    assert!(
        log.iter()
            .any(|l| l.contains("9030 messages and requests received")),
        "{log:#?}"
    );
}

#[test]
fn a_duration_run_stops_by_itself() {
    let server = ServerProcess::start(&["--sink"]);
    let r = bench(
        &server,
        &[
            "bench",
            "--duration",
            "0.3",
            "--connections",
            "2",
            "--in-flight",
            "2",
        ],
    );
    assert!(r["operations"].as_u64().unwrap() > 0);
    assert!(r["seconds"].as_f64().unwrap() < 10.0);
}

#[test]
fn idle_mode_holds_its_connections_open_then_closes_them_cleanly() {
    let server = ServerProcess::start(&["--sink"]);
    let r = bench(
        &server,
        &[
            "bench",
            "--mode",
            "idle",
            "--connections",
            "5",
            "--duration",
            "0",
        ],
    );
    assert_eq!(r["mode"], "idle");
    assert_eq!(r["connections"], 5);
    // Each was a whole v2 session: opened, then closed with the handshake.
    let opened = vec!["v2 session open"; 5];
    server.wait_for_logs(&opened);
    let closed = vec!["close handshake complete"; 5];
    server.wait_for_logs(&closed);
    // Each was used once before it went quiet: one request apiece.
    let (_, log) = server.stop_and_collect_log("TERM");
    assert!(
        log.iter()
            .any(|l| l.contains("5 messages and requests received")),
        "{log:?}"
    );
}
