//! Turns the results of `scripts/bench.sh` into `docs/BENCHMARKS.md`, its
//! plots (SVG, drawn with `plotters`) and the table of ratios on stdout.
//!
//! `bench_report RESULTS.jsonl MACHINE.txt OUT.md`: every figure in the
//! document comes from RESULTS, one JSON object per run
//! (`{"case", "impl", "round", "result"}`); ratios are paired within a
//! round (ours and the reference measured back to back) and the median of
//! the rounds is reported, because this machine's speed swings between
//! runs far more than it does within one.

use anyhow::{Context, bail};
use plotters::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

struct Run {
    case: String,
    imp: String,
    round: u64,
    result: Value,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [results, machine, out] = args.as_slice() else {
        bail!("usage: bench_report RESULTS.jsonl MACHINE.txt OUT.md");
    };
    let runs = read_runs(results)?;
    let machine: BTreeMap<String, String> = std::fs::read_to_string(machine)
        .with_context(|| format!("reading {machine}"))?
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let out = Path::new(out);
    let plots = out.parent().unwrap_or(Path::new(".")).join("bench");
    std::fs::create_dir_all(&plots)?;

    let table = comparisons(&runs);
    let mut md = String::new();
    header(&mut md, &machine);
    side_by_side(&mut md, &table);
    plot_side_by_side(&plots.join("side_by_side.svg"), &table)?;
    server_cpu(&mut md, &runs);
    per_request(&mut md, &runs);
    before_and_after(&mut md, &runs);
    tls(&mut md, &runs);
    idle(&mut md, &runs);
    scaling(&mut md, &runs, &plots)?;
    rpc_race(&mut md, &runs);
    service_macro(&mut md, &runs);
    streams(&mut md, &runs);
    python_client(&mut md, &runs, &machine);
    websocket(&mut md, &runs);
    resumable(&mut md, &runs);
    stored(&mut md, &runs);
    slot_attack(&mut md, &runs);
    std::fs::write(out, &md).with_context(|| format!("writing {}", out.display()))?;

    println!(
        "{:<58} {:>10} {:>8} {:>6}",
        "comparison", "ratio", "target", "met"
    );
    for c in &table {
        println!(
            "{:<58} {:>10.3} {:>8} {:>6}",
            c.what,
            c.ratio,
            c.target.map_or("-".into(), |t| format!("≥ {t}")),
            c.met().map_or("", |m| if m { "yes" } else { "NO" })
        );
    }
    println!("wrote {} and {}", out.display(), plots.display());
    Ok(())
}

fn read_runs(path: &str) -> anyhow::Result<Vec<Run>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{path}:{}: not JSON", i + 1))?;
            Ok(Run {
                case: v["case"].as_str().unwrap_or_default().to_owned(),
                imp: v["impl"].as_str().unwrap_or_default().to_owned(),
                round: v["round"].as_u64().unwrap_or_default(),
                result: v["result"].clone(),
            })
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A figure of one run: a top-level field, or `latency_us.FIELD`.
fn field(v: &Value, name: &str) -> Option<f64> {
    match name.split_once('.') {
        Some((a, b)) => v[a][b].as_f64(),
        None => v[name].as_f64(),
    }
}

/// The values of `metric` for (case, impl), by round.
fn by_round(runs: &[Run], case: &str, imp: &str, metric: &str) -> BTreeMap<u64, f64> {
    runs.iter()
        .filter(|r| r.case == case && r.imp == imp)
        .filter_map(|r| Some((r.round, field(&r.result, metric)?)))
        .collect()
}

fn median_of(runs: &[Run], case: &str, imp: &str, metric: &str) -> f64 {
    median(by_round(runs, case, imp, metric).into_values().collect())
}

/// One line of the ratio table.
struct Comparison {
    what: String,
    case: &'static str,
    ours: f64,
    reference: f64,
    unit: &'static str,
    reference_name: &'static str,
    /// Paired per round, median of rounds; above 1 means ours is better.
    ratio: f64,
    target: Option<f64>,
}

impl Comparison {
    fn met(&self) -> Option<bool> {
        self.target.map(|t| self.ratio >= t)
    }
}

/// Ours against each reference, every ratio paired within its round.
fn comparisons(runs: &[Run]) -> Vec<Comparison> {
    // (case, description, metric, unit, scale, reference impl, reference
    // name, target, lower is better)
    type Spec = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        f64,
        &'static str,
        &'static str,
        Option<f64>,
        bool,
    );
    const SPECS: &[Spec] = &[
        (
            "oneway32",
            "v2 one-way, 1 conn, 32 B, counting: messages/s",
            "per_sec",
            "M msg/s",
            1e-6,
            "ldc",
            "LengthDelimitedCodec",
            Some(1.0),
            false,
        ),
        (
            "oneway32",
            "v2 one-way, 1 conn, 32 B, counting: bytes/s",
            "mb_per_sec",
            "MB/s",
            1.0,
            "raw",
            "raw TCP sink",
            Some(0.5),
            false,
        ),
        (
            "oneway64k",
            "v2 one-way, 1 conn, 64 KiB, counting: bytes/s",
            "mb_per_sec",
            "MB/s",
            1.0,
            "raw",
            "raw TCP sink",
            Some(0.9),
            false,
        ),
        (
            "oneway64k",
            "v2 one-way, 1 conn, 64 KiB, counting: bytes/s",
            "mb_per_sec",
            "MB/s",
            1.0,
            "ldc",
            "LengthDelimitedCodec",
            None,
            false,
        ),
        (
            "v1print",
            "v1 ingest, 1 conn, 20 B, printing to a file",
            "per_sec",
            "M msg/s",
            1e-6,
            "ldc",
            "LengthDelimitedCodec",
            Some(1.5),
            false,
        ),
        (
            "req_50x16",
            "requests, 50 conns x 16 in flight",
            "per_sec",
            "M req/s",
            1e-6,
            "redis",
            "redis PING -c 50 -P 16",
            Some(1.0),
            false,
        ),
        (
            "req_50x16",
            "requests, 50 conns x 16 in flight",
            "per_sec",
            "M req/s",
            1e-6,
            "ldc",
            "LengthDelimitedCodec",
            None,
            false,
        ),
        (
            "req_50x1",
            "requests, 50 conns x 1 in flight",
            "per_sec",
            "M req/s",
            1e-6,
            "redis",
            "redis PING -c 50",
            Some(1.0),
            false,
        ),
        (
            "req_50x1",
            "requests, 50 conns x 1 in flight",
            "per_sec",
            "M req/s",
            1e-6,
            "ldc",
            "LengthDelimitedCodec",
            None,
            false,
        ),
        (
            "req_1x1",
            "requests, 1 conn x 1: p50 latency",
            "latency_us.p50",
            "µs",
            1.0,
            "redis",
            "redis PING -c 1",
            Some(1.0),
            true,
        ),
        (
            "req_1x1",
            "requests, 1 conn x 1: p50 latency",
            "latency_us.p50",
            "µs",
            1.0,
            "ldc",
            "LengthDelimitedCodec",
            None,
            true,
        ),
        (
            "race_50x16",
            "typed requests, 50 conns x 16: requests/s",
            "per_sec",
            "k req/s",
            1e-3,
            "tonic",
            "tonic (gRPC, unary)",
            Some(2.0),
            false,
        ),
        (
            "race_50x16",
            "typed requests, 50 conns x 16: requests/s",
            "per_sec",
            "k req/s",
            1e-3,
            "tarpc",
            "tarpc (bincode)",
            Some(1.2),
            false,
        ),
        (
            "race_50x16",
            "typed requests, 50 conns x 16: requests/s",
            "per_sec",
            "k req/s",
            1e-3,
            "ours-raw",
            "our untyped request()",
            Some(0.85),
            false,
        ),
        (
            "race_50x1",
            "typed requests, 50 conns x 1: requests/s",
            "per_sec",
            "k req/s",
            1e-3,
            "tonic",
            "tonic (gRPC, unary)",
            None,
            false,
        ),
        (
            "race_50x1",
            "typed requests, 50 conns x 1: requests/s",
            "per_sec",
            "k req/s",
            1e-3,
            "tarpc",
            "tarpc (bincode)",
            None,
            false,
        ),
        (
            "race_1x1",
            "typed requests, 1 conn x 1: p50 latency",
            "latency_us.p50",
            "µs",
            1.0,
            "tonic",
            "tonic (gRPC, unary)",
            Some(1.0),
            true,
        ),
        (
            "race_1x1",
            "typed requests, 1 conn x 1: p50 latency",
            "latency_us.p50",
            "µs",
            1.0,
            "tarpc",
            "tarpc (bincode)",
            Some(1.0),
            true,
        ),
        (
            "stream_items",
            "server streaming, 1 conn, 500,000 items: items/s",
            "per_sec",
            "M items/s",
            1e-6,
            "tonic-stream",
            "tonic server streaming",
            Some(3.0),
            false,
        ),
        (
            "stream_items",
            "server streaming, 1 conn, 500,000 items: items/s",
            "per_sec",
            "M items/s",
            1e-6,
            "ours-push",
            "our pushed events",
            Some(0.8),
            false,
        ),
        (
            "cancel",
            "a dropped call's work stopped: p50 time",
            "p50_us",
            "µs",
            1.0,
            "tarpc",
            "tarpc",
            None,
            true,
        ),
        (
            "py_pipelined_1x64",
            "Python client, 1 conn x 64 in flight (`request_all`): requests/s",
            "per_sec",
            "k req/s",
            1e-3,
            "redis-py",
            "redis-py asyncio, a pipeline of 64 PINGs",
            Some(1.0),
            false,
        ),
        (
            "py_gather_1x64",
            "Python client, 1 conn x 64 in flight (`gather` of `request()`): requests/s",
            "per_sec",
            "k req/s",
            1e-3,
            "redis-py",
            "redis-py asyncio, a pipeline of 64 PINGs",
            None,
            false,
        ),
        (
            "py_1x1",
            "Python client, 1 conn x 1: p50 latency",
            "latency_us.p50",
            "µs",
            1.0,
            "redis-py",
            "redis-py asyncio PING",
            Some(1.0),
            true,
        ),
    ];
    SPECS
        .iter()
        .filter_map(
            |&(case, what, metric, unit, scale, reference, name, target, lower)| {
                let ours = by_round(runs, case, "ours", metric);
                let theirs = by_round(runs, case, reference, metric);
                let paired: Vec<f64> = ours
                    .iter()
                    .filter_map(|(round, o)| {
                        let t = theirs.get(round)?;
                        Some(if lower { t / o } else { o / t })
                    })
                    .collect();
                if paired.is_empty() {
                    return None;
                }
                Some(Comparison {
                    what: format!("{what} vs {name}"),
                    case,
                    ours: median(ours.into_values().collect()) * scale,
                    reference: median(theirs.into_values().collect()) * scale,
                    unit,
                    reference_name: name,
                    ratio: median(paired),
                    target,
                })
            },
        )
        .collect()
}

fn header(md: &mut String, m: &BTreeMap<String, String>) {
    let get = |k: &str| m.get(k).map_or("?", String::as_str);
    let _ = writeln!(
        md,
        "# Benchmarks\n\n\
         Every figure on this page was produced by one run of `scripts/bench.sh` \
         (on {date}, commit `{commit}`); rerun it to get your own. Nothing here is \
         asserted by the test suite.\n\n\
         | machine | |\n|---|---|\n\
         | CPU | {cpu}, {cores} cores |\n| memory | {mem} |\n| kernel | {kernel} |\n\
         | compiler | {rustc} |\n| redis | {redis} |\n| rounds | {rounds} alternated, {secs} s per measured run |\n\n\
         Client and server share the machine's cores over loopback, so every \
         figure is for the pair; the same load generator (`client bench`) drives \
         our server and the references, except for redis, which is driven by \
         `redis-benchmark`. Ratios are paired within a round and the median of the \
         rounds is shown: this machine's speed swings by up to 2x between runs, \
         far less within one.\n",
        date = get("date"),
        commit = get("commit"),
        cpu = get("cpu"),
        cores = get("cores"),
        mem = get("memory"),
        kernel = get("kernel"),
        rustc = get("rustc"),
        redis = get("redis"),
        rounds = get("rounds"),
        secs = get("secs"),
    );
    let _ = writeln!(
        md,
        "## What is compared\n\n\
         - **ours**: `server --sink` (decodes and validates every frame, answers \
         requests with empty responses, prints nothing), or `server` printing to a \
         file for v1 ingest.\n\
         - **raw TCP sink** (`examples/raw_sink.rs`): reads and discards bytes, \
         parsing nothing: what loopback TCP carries from this generator to a \
         server that does no work. Not a ceiling: a server that reads in \
         larger batches can take more (see the 64 KiB row).\n\
         - **LengthDelimitedCodec** (`examples/ldc_server.rs`): what a user would \
         write instead: tokio-util's codec doing the same work (UTF-8 checks, \
         printing or counting, requests answered) with none of our limits or \
         session rules.\n\
         - **redis**: `redis-server` answering PING, driven by `redis-benchmark -t \
         ping_mbulk` at the same connection counts and depths.\n\n\
         The commands, for each round (PORT a free loopback port):\n\n\
         ```sh\n\
         client --addr 127.0.0.1:PORT bench --mode text   --size 32    --duration S   # one-way 32 B\n\
         client --addr 127.0.0.1:PORT bench --mode binary --size 65536 --duration S   # one-way 64 KiB\n\
         client --addr 127.0.0.1:PORT --v1 bench --size 20 --duration S               # v1 ingest (server printing)\n\
         client --addr 127.0.0.1:PORT bench --mode request --connections 50 --in-flight 16 --duration S\n\
         client --addr 127.0.0.1:PORT bench --mode request --connections 50 --in-flight 1  --duration S\n\
         client --addr 127.0.0.1:PORT bench --mode request --connections 1  --in-flight 1  --duration S\n\
         redis-benchmark -p PORT -t ping_mbulk -c 50 -P 16 -n N --csv   # and -c 50, -c 1\n\
         ```\n"
    );
}

fn side_by_side(md: &mut String, table: &[Comparison]) {
    let _ = writeln!(
        md,
        "## Side by side\n\n\
         | comparison | ours | reference | ratio | target | met |\n|---|---|---|---|---|---|"
    );
    for c in table {
        let _ = writeln!(
            md,
            "| {} | {:.3} {} | {:.3} {} | **{:.3}** | {} | {} |",
            c.what,
            c.ours,
            c.unit,
            c.reference,
            c.unit,
            c.ratio,
            c.target.map_or("".into(), |t| format!("≥ {t}")),
            c.met().map_or("", |m| if m { "yes" } else { "**no**" }),
        );
    }
    let _ = writeln!(
        md,
        "\nA ratio above 1 means ours is better (for latency: the reference's p50 \
         divided by ours).\n\n![ours relative to each reference](bench/side_by_side.svg)\n"
    );
    // What the one-way rows say is read off this run's own figures.
    let one_way_32 = table
        .iter()
        .find(|c| c.case == "oneway32" && c.reference_name == "raw TCP sink");
    let _ = match one_way_32 {
        Some(c) if (0.9..=1.1).contains(&c.ratio) => writeln!(
            md,
            "**Reading the figures.** One-way with 32-byte messages, ours measured \
             {:.2}x the raw byte sink in this run: within 10 % of a server that \
             parses nothing, so there the load generator, not the server, set the \
             pace, and the server CPU time per message below is the fairer figure.",
            c.ratio
        ),
        Some(c) => writeln!(
            md,
            "**Reading the figures.** One-way with 32-byte messages, ours measured \
             {:.2}x the raw byte sink in this run, more than 10 % away from it: \
             the servers differ there, not only the generator.",
            c.ratio
        ),
        None => Ok(()),
    };
    let _ = writeln!(
        md,
        "Requests: the generator (`client bench`, a general async client library) \
         and the server share two cores, while redis is driven by \
         `redis-benchmark`, a purpose-built C loop. The server CPU time per \
         request below compares the servers alone.\n"
    );
}

/// Server CPU time per request: what each server spends, whichever load
/// generator drives it (ours is a general async client library, redis's a
/// purpose-built C loop, and on shared cores the generator's CPU is taken
/// from the server's).
fn server_cpu(md: &mut String, runs: &[Run]) {
    let _ = writeln!(
        md,
        "### Server CPU per message or request\n\n\
         The server process's CPU time (user + system, from `/proc/PID/stat`) \
         during each run, divided by the messages or requests: a figure of the \
         server alone, whatever drives it and however busy the generator is \
         (the raw sink's is the cost of reading the bytes).\n\n\
         | work | ours µs | LengthDelimitedCodec µs | redis µs | raw sink µs |\n|---|---|---|---|---|"
    );
    for (case, what) in [
        ("oneway32", "one-way 32 B"),
        ("oneway64k", "one-way 64 KiB"),
        ("v1print", "v1 ingest, printing"),
        ("req_50x16", "requests 50 conns x 16 in flight"),
        ("req_50x1", "requests 50 conns x 1"),
        ("req_1x1", "requests 1 conn x 1"),
    ] {
        let cpu = |imp| median_of(runs, case, imp, "server_cpu_us_per_op");
        let show = |v: f64| {
            if v.is_nan() {
                "-".to_owned()
            } else {
                format!("{v:.3}")
            }
        };
        let _ = writeln!(
            md,
            "| {what} | {} | {} | {} | {} |",
            show(cpu("ours")),
            show(cpu("ldc")),
            show(cpu("redis")),
            show(cpu("raw"))
        );
    }
    let _ = writeln!(md);
}

fn tls(md: &mut String, runs: &[Run]) {
    let _ = writeln!(
        md,
        "## Over TLS\n\n\
         The same server with `--tls-cert/--tls-key` (rustls, ECDSA P-256 \
         certificate made at run time) against itself in plain TCP, alternated; \
         the client verifies the server (`--ca`).\n\n\
         | work | plain | TLS | TLS / plain |\n|---|---|---|---|"
    );
    for (case, what, metric, unit, scale) in [
        (
            "tls_oneway32",
            "v2 one-way, 32 B",
            "per_sec",
            "M msg/s",
            1e-6,
        ),
        (
            "tls_oneway64k",
            "v2 one-way, 64 KiB",
            "mb_per_sec",
            "MB/s",
            1.0,
        ),
        (
            "tls_req_50x16",
            "requests, 50 x 16",
            "per_sec",
            "M req/s",
            1e-6,
        ),
        (
            "tls_req_1x1",
            "requests, 1 x 1: p50",
            "latency_us.p50",
            "µs",
            1.0,
        ),
    ] {
        let plain = by_round(runs, case, "plain", metric);
        let tls = by_round(runs, case, "tls", metric);
        let ratio = median(
            plain
                .iter()
                .filter_map(|(r, p)| Some(tls.get(r)? / p))
                .collect(),
        );
        let _ = writeln!(
            md,
            "| {what} | {:.3} {unit} | {:.3} {unit} | {ratio:.3} |",
            median(plain.into_values().collect()) * scale,
            median(tls.into_values().collect()) * scale,
        );
    }
    // Against the cipher: `openssl speed -evp aes-256-gcm` on 16 KiB blocks,
    // one core, measured in the same round just before.
    let cipher = by_round(runs, "aes_gcm", "cipher", "bytes_per_sec");
    let tls64k = by_round(runs, "tls_oneway64k", "tls", "mb_per_sec");
    // MB/s against bytes/s.
    let tls64k: BTreeMap<u64, f64> = tls64k.into_iter().map(|(r, t)| (r, t * 1e6)).collect();
    let per_round = per_round(&tls64k, &cipher);
    if !per_round.is_empty() {
        let _ = writeln!(
            md,
            "\nThe machine's AES-256-GCM rate on one core (`openssl speed -evp aes-256-gcm`, \
             16 KiB blocks), measured in each round just before the TLS runs: median {:.0} MB/s. \
             TLS one-way 64 KiB against it, per round: {} (target ≥ 0.6).",
            median(cipher.into_values().collect()) / 1e6,
            per_round
        );
    }
    let _ = writeln!(md);
}

fn idle(md: &mut String, runs: &[Run]) {
    let n = runs
        .iter()
        .find(|r| r.case == "idle")
        .and_then(|r| r.result["connections"].as_u64())
        .unwrap_or(0);
    let _ = writeln!(
        md,
        "## What an idle connection costs\n\n\
         The server's resident memory (`VmRSS`) before and while {n} connections \
         are open and idle (each used once first: v2 one request, v1 one message), divided by the \
         connections. Ours: `client bench --mode idle --connections {n}`; redis: \
         `redis-benchmark -c {n} -I`. The kernel's socket buffers are not in it.\n\n\
         | server | bytes per idle connection | target |\n|---|---|---|"
    );
    for (imp, name, target) in [
        ("ours-v2", "ours, v2", "≤ 1024"),
        ("ours-v1", "ours, v1", "≤ 1024"),
        ("before-v2", "the commit before, v2", ""),
        ("before-v1", "the commit before, v1", ""),
        ("redis", "redis", ""),
    ] {
        let bytes = median_of(runs, "idle", imp, "bytes_per_conn");
        // A row only for what this run measured (the commit before only with --before).
        if !bytes.is_nan() {
            let _ = writeln!(md, "| {name} | {bytes:.0} | {target} |");
        }
    }
    let _ = writeln!(md);
}

/// What one request costs the server: instructions (callgrind, against
/// LDC's and the commit before's) and allocations (a counting allocator).
fn per_request(md: &mut String, runs: &[Run]) {
    let instr = |shape: &str, imp: &str| {
        median_of(
            runs,
            &format!("instr_{shape}"),
            imp,
            "instructions_per_request",
        )
    };
    if instr("50x16", "ours").is_nan() {
        return;
    }
    // The commit before's columns appear only when this run built it (--before).
    let with_before = !instr("50x16", "before").is_nan();
    let _ = writeln!(
        md,
        "## What one request costs\n\n\
         Server instructions per request, counted by `valgrind --tool=callgrind` on the \
         server alone (`--sink`; LDC: `examples/ldc_server.rs`): the difference between a \
         run of N + 2,000 requests and one of 2,000, divided by N. Instruction counts \
         repeat to within about 1% between runs, where times on this machine do not.\n\n\
         | load | ours |{} LDC | ours / LDC | target |\n|---|---|---|---|---|{}",
        if with_before {
            " the commit before |"
        } else {
            ""
        },
        if with_before { "---|" } else { "" },
    );
    for shape in ["50x16", "50x1"] {
        let (ours, before, ldc) = (
            instr(shape, "ours"),
            instr(shape, "before"),
            instr(shape, "ldc"),
        );
        let before = if with_before {
            format!(" {before:.0} |")
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {} | {ours:.0} |{before} {ldc:.0} | {:.2} | ≤ 1.5 |",
            shape.replace('x', " x "),
            ours / ldc
        );
    }
    let _ = writeln!(
        md,
        "\nAllocations on the server's threads per message in the steady state \
         (`examples/alloc_count.rs`, 32-byte payloads, echoed requests or one-way texts; \
         exact, so one run each). Target: none per request.\n\n\
         | messages | ours: allocations | bytes |{}\n|---|---|---|{}",
        if with_before {
            " the commit before: allocations | bytes |"
        } else {
            ""
        },
        if with_before { "---|---|" } else { "" },
    );
    for (case, name) in [
        ("allocs_request_50x1", "requests, 50 x 1"),
        ("allocs_request_50x16", "requests, 50 x 16"),
        ("allocs_text_50x16", "one-way text, 50 x 16"),
    ] {
        let get = |imp: &str, metric: &str| median_of(runs, case, imp, metric);
        let show = |v: f64, digits: usize| {
            if v.is_nan() {
                "-".to_owned()
            } else {
                format!("{v:.digits$}")
            }
        };
        let before = if with_before {
            format!(
                " {} | {} |",
                show(get("before", "allocs_per_message"), 3),
                show(get("before", "bytes_per_message"), 0)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {} |{before}",
            show(get("ours", "allocs_per_message"), 3),
            show(get("ours", "bytes_per_message"), 0),
        );
    }
    let _ = writeln!(md);
}

/// `a / b` in each round both have, as "0.95, 1.02, …".
fn per_round(a: &BTreeMap<u64, f64>, b: &BTreeMap<u64, f64>) -> String {
    let ratios: Vec<String> = a
        .iter()
        .filter_map(|(round, x)| Some(format!("{:.2}", x / b.get(round)?)))
        .collect();
    ratios.join(", ")
}

/// Today's server against the `--before` revision's, paired per round.
fn before_and_after(md: &mut String, runs: &[Run]) {
    if !runs.iter().any(|r| r.imp == "before") {
        return;
    }
    let _ = writeln!(
        md,
        "## Against the commit before\n\n\
         `scripts/bench.sh --before REV` runs that revision's server right after ours in \
         every round of the side-by-side cases (the same client drives both). Ratios are \
         ours / before within a round; above 1 is better for rates, below 1 for latency, \
         CPU and memory.\n\n| case | figure | ours (median) | before (median) | ours / before, per round |\n|---|---|---|---|---|"
    );
    for (case, metric, name) in [
        ("oneway32", "per_sec", "one-way 32 B, messages/s"),
        ("oneway64k", "mb_per_sec", "one-way 64 KiB, MB/s"),
        ("v1print", "per_sec", "v1 ingest, messages/s"),
        ("req_50x16", "per_sec", "requests 50 x 16, /s"),
        (
            "req_50x16",
            "server_cpu_us_per_op",
            "requests 50 x 16, server µs/request",
        ),
        ("req_50x1", "per_sec", "requests 50 x 1, /s"),
        (
            "req_50x1",
            "server_cpu_us_per_op",
            "requests 50 x 1, server µs/request",
        ),
        ("req_1x1", "latency_us.p50", "requests 1 x 1, p50 µs"),
        (
            "req_1x1",
            "server_cpu_us_per_op",
            "requests 1 x 1, server µs/request",
        ),
    ] {
        let ours = by_round(runs, case, "ours", metric);
        let before = by_round(runs, case, "before", metric);
        let _ = writeln!(
            md,
            "| {case} | {name} | {:.2} | {:.2} | {} |",
            median(ours.values().copied().collect()),
            median(before.values().copied().collect()),
            per_round(&ours, &before)
        );
    }
    for (v, name) in [("v2", "idle v2"), ("v1", "idle v1")] {
        let ours = by_round(runs, "idle", &format!("ours-{v}"), "bytes_per_conn");
        let before = by_round(runs, "idle", &format!("before-{v}"), "bytes_per_conn");
        let _ = writeln!(
            md,
            "| idle | {name}, bytes per connection | {:.0} | {:.0} | {} |",
            median(ours.values().copied().collect()),
            median(before.values().copied().collect()),
            per_round(&ours, &before)
        );
    }
    let _ = writeln!(md);
}

fn scaling(md: &mut String, runs: &[Run], plots: &Path) -> anyhow::Result<()> {
    let conns: Vec<(u64, &Value)> = runs
        .iter()
        .filter(|r| r.case == "scale_conns")
        .map(|r| (r.round, &r.result))
        .collect();
    let _ = writeln!(
        md,
        "## Scaling with connections\n\n\
         Requests with one in flight per connection (`client bench --mode request \
         --connections N --in-flight 1`), one server (`--sink`) for the whole \
         series; memory is the server's peak resident size (`VmHWM`) above its \
         size before the series, per connection.\n\n\
         | connections | requests/s | p50 µs | p99 µs | max µs | server peak RSS | peak above start, per connection |\n\
         |---|---|---|---|---|---|---|"
    );
    for (n, v) in &conns {
        let extra =
            field(v, "server_hwm_kib").unwrap_or(0.0) - field(v, "server_base_kib").unwrap_or(0.0);
        let _ = writeln!(
            md,
            "| {n} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} MiB | {:.0} B |",
            field(v, "per_sec").unwrap_or(0.0),
            field(v, "latency_us.p50").unwrap_or(0.0),
            field(v, "latency_us.p99").unwrap_or(0.0),
            field(v, "latency_us.max").unwrap_or(0.0),
            field(v, "server_hwm_kib").unwrap_or(0.0) / 1024.0,
            extra * 1024.0 / *n as f64,
        );
    }
    let sizes: BTreeMap<u64, (f64, f64)> =
        runs.iter()
            .filter(|r| r.case == "scale_size")
            .fold(BTreeMap::new(), |mut m, r| {
                let e = m.entry(r.round).or_insert((f64::NAN, f64::NAN));
                let mb = field(&r.result, "mb_per_sec").unwrap_or(f64::NAN);
                if r.imp == "ours" {
                    e.0 = mb
                } else {
                    e.1 = mb
                }
                m
            });
    let _ = writeln!(
        md,
        "\n## Scaling with payload size\n\n\
         v2 one-way binary messages on one connection (`client bench --mode binary \
         --size B`), ours (`--sink`) against the raw TCP sink.\n\n\
         | payload | ours MB/s | raw sink MB/s | ours / raw |\n|---|---|---|---|"
    );
    for (size, (ours, raw)) in &sizes {
        let _ = writeln!(
            md,
            "| {} | {ours:.0} | {raw:.0} | {:.3} |",
            bytes(*size),
            ours / raw
        );
    }
    let _ = writeln!(md, "\n![scaling](bench/scaling.svg)\n");
    plot_scaling(&plots.join("scaling.svg"), &conns, &sizes)
}

/// Typed requests against tarpc and tonic (benches/rpc_race): medians over
/// the rounds, per contestant and load.
fn rpc_race(md: &mut String, runs: &[Run]) {
    if !runs.iter().any(|r| r.case.starts_with("race_")) {
        return;
    }
    let _ = writeln!(
        md,
        "## Typed requests against tarpc and tonic\n\n\
         `benches/rpc_race` (its own crate, built only by this script): each \
         contestant echoes the same message (an id and a 32-byte text), \
         driven by its own client library from one program: **ours** is \
         `rust_tcp::typed` (MessagePack with names, the message itself the \
         request), **ours-enum** the enum form (`Request::Echo {{ msg }}`, \
         `Response::Echo(msg)`), **ours-macro** the same echo declared with \
         `#[rust_tcp::service]` and called through its generated client (the \
         very bytes ours-enum sends), **ours-raw** our untyped \
         `Client::request` with the same bytes' worth, **tarpc** 0.38 (serde \
         over TCP, bincode), **tonic** 0.14 (gRPC unary over HTTP/2, prost). \
         Alternated within each round, 5 s a run; server CPU is the server \
         process's user + system time per request.\n\n\
         | load | contestant | requests/s | p50 µs | p99 µs | server CPU µs/req |\n|---|---|---|---|---|---|"
    );
    for (case, load) in [
        ("race_1x1", "1 conn x 1"),
        ("race_50x1", "50 conns x 1"),
        ("race_50x16", "50 conns x 16"),
    ] {
        for imp in [
            "ours",
            "ours-enum",
            "ours-macro",
            "ours-raw",
            "tarpc",
            "tonic",
        ] {
            let per_sec = median_of(runs, case, imp, "per_sec");
            if per_sec.is_nan() {
                continue;
            }
            let _ = writeln!(
                md,
                "| {load} | {imp} | {per_sec:.0} | {:.0} | {:.0} | {:.2} |",
                median_of(runs, case, imp, "latency_us.p50"),
                median_of(runs, case, imp, "latency_us.p99"),
                median_of(runs, case, imp, "server_cpu_us_per_op"),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nThe paired ratios and their targets are in the side-by-side table above.\n"
    );
}

/// The service macro's generated client and dispatch against the enum form,
/// tarpc and tonic: requests/s paired within each round, one row a round
/// and load (the targets hold only if they hold in every round).
fn service_macro(md: &mut String, runs: &[Run]) {
    if !runs.iter().any(|r| r.imp == "ours-macro") {
        return;
    }
    let _ = writeln!(
        md,
        "## The service macro\n\n\
         The rpc race's echo declared with `#[rust_tcp::service]` (**ours-macro**), \
         requests/s divided by each other contestant's in the same round. \
         Targets: ≥ 0.95× the enum form, ≥ 1.2× tarpc, ≥ 2× tonic, every round.\n\n\
         | load | round | macro / enum form | macro / tarpc | macro / tonic |\n|---|---|---|---|---|"
    );
    for (case, load) in [
        ("race_1x1", "1 conn x 1"),
        ("race_50x1", "50 conns x 1"),
        ("race_50x16", "50 conns x 16"),
    ] {
        for (round, ours) in by_round(runs, case, "ours-macro", "per_sec") {
            let ratio = |imp: &str| ours / in_round(runs, case, imp, "per_sec", round);
            // The enum form the macro generates; runs from before it was
            // raced have only the struct form.
            let enum_form = match ratio("ours-enum") {
                r if r.is_nan() => ratio("ours"),
                r => r,
            };
            let _ = writeln!(
                md,
                "| {load} | {round} | {:.2} | {:.2} | {:.2} |",
                enum_form,
                ratio("tarpc"),
                ratio("tonic")
            );
        }
    }
    let _ = writeln!(md);
}

/// Streams and cancellation (calls, spec 3.13; benches/rpc_race): one row a
/// round, since the rounds are paired.
fn streams(md: &mut String, runs: &[Run]) {
    if !runs.iter().any(|r| r.case == "stream_items") {
        return;
    }
    let _ = writeln!(
        md,
        "## Streams and cancellation\n\n\
         `benches/rpc_race` again. **Server streaming**: one connection \
         receives 500,000 messages (an id and a 32-byte text) from the server: \
         **ours** as a typed streaming call (a window of 1,024 items, about what tonic's 64 KiB HTTP/2 stream window holds of these messages; MessagePack), \
         **ours-push** as typed events pushed by the server in batches of \
         1,000 (each asked for by a call, so its queue stays bounded), \
         **tonic-stream** as gRPC server streaming (prost). **Cancellation**: \
         200 times, the client drops a call in flight and the server reads the \
         clock when the call's work is dropped (both processes read the same \
         clock): ours a streaming call (its handler's stream dropped), tarpc a \
         unary call (its request task aborted). **Stalled streams**: 1,000 \
         streaming calls (100 per connection) whose reader never reads, each \
         server stream holding its window of 16 items; the server's RSS \
         before and 2 s after they are open.\n\n\
         | round | ours items/s | ours-push items/s | tonic items/s | ours / tonic | ours / push | cancel p50 / p99 µs, ours | tarpc | 1,000 stalled streams: server bytes per stream |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    let rounds: std::collections::BTreeSet<u64> = by_round(runs, "stream_items", "ours", "per_sec")
        .keys()
        .copied()
        .collect();
    for round in rounds {
        let ours = in_round(runs, "stream_items", "ours", "per_sec", round);
        let push = in_round(runs, "stream_items", "ours-push", "per_sec", round);
        let tonic = in_round(runs, "stream_items", "tonic-stream", "per_sec", round);
        let _ = writeln!(
            md,
            "| {round} | {ours:.0} | {push:.0} | {tonic:.0} | {:.2} | {:.2} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} |",
            ours / tonic,
            ours / push,
            in_round(runs, "cancel", "ours", "p50_us", round),
            in_round(runs, "cancel", "ours", "p99_us", round),
            in_round(runs, "cancel", "tarpc", "p50_us", round),
            in_round(runs, "cancel", "tarpc", "p99_us", round),
            in_round(runs, "stalled_streams", "ours", "bytes_per_stream", round),
        );
    }
    let _ = writeln!(md);
}

/// One figure of one round (NaN when it was not measured).
fn in_round(runs: &[Run], case: &str, imp: &str, metric: &str, round: u64) -> f64 {
    by_round(runs, case, imp, metric)
        .get(&round)
        .copied()
        .unwrap_or(f64::NAN)
}

/// The Python client against redis-py (clients/python/bench): one row a
/// round, each with its ratio, since the rounds are paired.
fn python_client(md: &mut String, runs: &[Run], machine: &BTreeMap<String, String>) {
    if !runs.iter().any(|r| r.case.starts_with("py_")) {
        return;
    }
    let _ = writeln!(
        md,
        "## The Python client against redis-py\n\n\
         `clients/python/bench/bench_vs_redis.py`: one asyncio connection from \
         Python {} to `server` (echo, 4-byte payloads) and to redis-server \
         (PING), alternated within each round. **64 in flight**: for redis-py a \
         pipeline of 64 PINGs (its only way to have 64 commands in flight on \
         one connection); for us `request_all` (64 requests in one write), \
         `gather` over 64 `request()` calls (a task each), and 64 tasks each \
         looping on `request()` (redis-py, on one connection, runs one command \
         of its 64 tasks at a time). **1 x 1**: the median of sequential round \
         trips.\n\n\
         | round | `request_all` / pipeline, k req/s | ratio | `gather` / pipeline | ratio | 64 tasks: ours / redis-py | ratio | 1x1 p50 µs, ours / redis-py | ratio |\n\
         |---|---|---|---|---|---|---|---|---|",
        machine.get("python").map_or("?", String::as_str)
    );
    let rounds = by_round(runs, "py_1x1", "ours", "latency_us.p50");
    for round in rounds.keys() {
        let get = |case: &str, imp: &str, metric: &str| in_round(runs, case, imp, metric, *round);
        let pair = |case: &str| {
            let o = get(case, "ours", "per_sec");
            let t = get(case, "redis-py", "per_sec");
            (o / 1e3, t / 1e3, o / t)
        };
        let (a, b, r1) = pair("py_pipelined_1x64");
        let (c, d, r2) = pair("py_gather_1x64");
        let (e, f, r3) = pair("py_tasks_1x64");
        let ours = get("py_1x1", "ours", "latency_us.p50");
        let theirs = get("py_1x1", "redis-py", "latency_us.p50");
        let _ = writeln!(
            md,
            "| {round} | {a:.1} / {b:.1} | {r1:.2} | {c:.1} / {d:.1} | {r2:.2} | {e:.1} / {f:.1} | {r3:.1} | {ours:.0} / {theirs:.0} | {:.2} |",
            theirs / ours
        );
    }
    let _ = writeln!(
        md,
        "\nA ratio above 1 is in our favour (for latency: theirs / ours). \
         The targets are in the side-by-side table above.\n"
    );
}

/// v2 over WebSocket against v2 over TCP, the same server and load
/// generator: one row a round.
fn websocket(md: &mut String, runs: &[Run]) {
    if !runs.iter().any(|r| r.case.starts_with("ws_")) {
        return;
    }
    let _ = writeln!(
        md,
        "## v2 over WebSocket against v2 over TCP\n\n\
         One `server --sink --ws-addr …` listening on both; the same load \
         generator drives both (`client bench`, which speaks v2 over WebSocket \
         to a `ws://` address, one frame per message, masked as a browser's). \
         Idle: `client bench --mode idle` with {} connections, each used once, \
         each way on a fresh server; the server's RSS growth per connection.\n\n\
         | round | one-way 32 B, M msg/s: TCP / WS | ratio | server CPU µs/msg: TCP / WS | requests 50x16, k req/s: TCP / WS | ratio | server CPU µs/req: TCP / WS | idle bytes/conn: TCP / WS |\n\
         |---|---|---|---|---|---|---|---|",
        runs.iter()
            .find(|r| r.case == "ws_idle")
            .and_then(|r| field(&r.result, "connections"))
            .unwrap_or(f64::NAN)
    );
    let rounds = by_round(runs, "ws_oneway32", "tcp", "per_sec");
    for round in rounds.keys() {
        let get = |case: &str, imp: &str, metric: &str| in_round(runs, case, imp, metric, *round);
        let (ot, ow) = (
            get("ws_oneway32", "tcp", "per_sec"),
            get("ws_oneway32", "ws", "per_sec"),
        );
        let (rt, rw) = (
            get("ws_req_50x16", "tcp", "per_sec"),
            get("ws_req_50x16", "ws", "per_sec"),
        );
        let _ = writeln!(
            md,
            "| {round} | {:.2} / {:.2} | {:.2} | {:.3} / {:.3} | {:.0} / {:.0} | {:.2} | {:.2} / {:.2} | {:.0} / {:.0} |",
            ot / 1e6,
            ow / 1e6,
            ow / ot,
            get("ws_oneway32", "tcp", "server_cpu_us_per_op"),
            get("ws_oneway32", "ws", "server_cpu_us_per_op"),
            rt / 1e3,
            rw / 1e3,
            rw / rt,
            get("ws_req_50x16", "tcp", "server_cpu_us_per_op"),
            get("ws_req_50x16", "ws", "server_cpu_us_per_op"),
            get("ws_idle", "tcp", "bytes_per_conn"),
            get("ws_idle", "ws", "bytes_per_conn"),
        );
    }
    let _ = writeln!(
        md,
        "\nA ratio is WebSocket / TCP: below 1, WebSocket is slower.\n"
    );
}

/// Resumable sessions (spec 3.14) against plain ones on the same server,
/// one row a round, and the time a session takes to resume.
fn resumable(md: &mut String, runs: &[Run]) {
    if !runs.iter().any(|r| r.case.starts_with("resume_")) {
        return;
    }
    let _ = writeln!(
        md,
        "## Resumable sessions against plain ones\n\n\
         One `server --sink`; the same `client bench`, with `--resume` (a \
         resumable session: every counted frame kept for replay until \
         acknowledged, ACKs both ways) and without, alternated: twice a round, \
         plain first in the odd runs and resumable first in the even ones. \
         Idle (once a round): `client bench --mode idle --resume` with {} \
         connections, each used once, on a fresh server; the server's RSS growth \
         per connection, beside the plain idle figure of the same round.\n\n\
         | run | one-way 32 B, M msg/s: plain / resumable | ratio | requests 50x16, k req/s: plain / resumable | ratio | requests 50x1, k req/s: plain / resumable | ratio | server CPU µs/req 50x16: plain / resumable | idle bytes/conn: plain / resumable |\n\
         |---|---|---|---|---|---|---|---|---|",
        runs.iter()
            .find(|r| r.case == "resume_idle")
            .and_then(|r| field(&r.result, "connections"))
            .unwrap_or(f64::NAN)
    );
    let rounds = by_round(runs, "resume_oneway32", "plain", "per_sec");
    let mut ratios: [Vec<f64>; 3] = Default::default();
    for round in rounds.keys() {
        let get = |case: &str, imp: &str, metric: &str| in_round(runs, case, imp, metric, *round);
        let pair = |case: &str| {
            (
                get(case, "plain", "per_sec"),
                get(case, "resumable", "per_sec"),
            )
        };
        let (op, or) = pair("resume_oneway32");
        let (r16p, r16r) = pair("resume_req_50x16");
        let (r1p, r1r) = pair("resume_req_50x1");
        for (kept, ratio) in ratios.iter_mut().zip([or / op, r16r / r16p, r1r / r1p]) {
            kept.push(ratio);
        }
        // Idle is measured once a round (in its odd run).
        let idle = |imp: &str| {
            let v = get("resume_idle", imp, "bytes_per_conn");
            if v.is_nan() {
                "-".to_owned()
            } else {
                format!("{v:.0}")
            }
        };
        let _ = writeln!(
            md,
            "| {round} | {:.2} / {:.2} | {:.2} | {:.0} / {:.0} | {:.2} | {:.0} / {:.0} | {:.2} | {:.2} / {:.2} | {} / {} |",
            op / 1e6,
            or / 1e6,
            or / op,
            r16p / 1e3,
            r16r / 1e3,
            r16r / r16p,
            r1p / 1e3,
            r1r / 1e3,
            r1r / r1p,
            get("resume_req_50x16", "plain", "server_cpu_us_per_op"),
            get("resume_req_50x16", "resumable", "server_cpu_us_per_op"),
            idle("plain"),
            idle("resumable"),
        );
    }
    let [oneway, r16, r1] = ratios.map(median);
    let _ = writeln!(
        md,
        "\nMedian ratio over the {} runs (goal ≥ 0.9): one-way 32 B {oneway:.2}, \
         requests 50x16 {r16:.2}, requests 50x1 {r1:.2}.",
        rounds.len()
    );
    if let Some(times) = resume_times(runs, "resume_time") {
        let _ = writeln!(
            md,
            "\nTime to resume on the same server (`examples/resume_time`: the \
             connection cut by a loopback proxy, timed to the client's \
             `Pushed::Resumed`, including its first reconnect delay of 0.5-1 ms), \
             per round: {times}."
        );
    }
    let _ = writeln!(
        md,
        "\nA ratio is resumable / plain: below 1, resumable sessions are slower.\n"
    );
}

/// `examples/resume_time` results of `case`, one phrase per round.
fn resume_times(runs: &[Run], case: &str) -> Option<String> {
    let times: Vec<&Run> = runs.iter().filter(|r| r.case == case).collect();
    (!times.is_empty()).then(|| {
        times
            .iter()
            .map(|r| {
                format!(
                    "p50 {:.2} ms, p99 {:.2} ms over {} resumes",
                    field(&r.result, "p50_us").unwrap_or(f64::NAN) / 1e3,
                    field(&r.result, "p99_us").unwrap_or(f64::NAN) / 1e3,
                    field(&r.result, "rounds").unwrap_or(f64::NAN)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Resumable sessions kept in a JetStream session store against the same
/// sessions kept by their server only, and the time to resume elsewhere.
fn stored(md: &mut String, runs: &[Run]) {
    if !runs.iter().any(|r| r.case.starts_with("store_")) {
        return;
    }
    let _ = writeln!(
        md,
        "## Resumable sessions kept in a session store\n\n\
         `server --sink --session-store nats://…` (nats-server with JetStream \
         on loopback) against `server --sink`, the same `client --resume bench` \
         both times, alternated. With the store, every frame waits for its \
         session's record to be written to JetStream before it is sent or \
         handed to the handler (one JetStream round trip per batch, shared by \
         whatever arrives meanwhile).\n\n\
         | round | one-way 32 B, k msg/s: resumable / stored | ratio | requests 50x16, k req/s: resumable / stored | ratio | requests 50x1, k req/s: resumable / stored | ratio | p50 latency 50x1, ms: resumable / stored |\n\
         |---|---|---|---|---|---|---|---|"
    );
    let rounds = by_round(runs, "store_oneway32", "resumable", "per_sec");
    for round in rounds.keys() {
        let get = |case: &str, imp: &str| in_round(runs, case, imp, "per_sec", *round);
        let (o, os) = (
            get("store_oneway32", "resumable"),
            get("store_oneway32", "stored"),
        );
        let (r16, r16s) = (
            get("store_req_50x16", "resumable"),
            get("store_req_50x16", "stored"),
        );
        let (r1, r1s) = (
            get("store_req_50x1", "resumable"),
            get("store_req_50x1", "stored"),
        );
        let p50 = |imp: &str| {
            runs.iter()
                .find(|r| r.case == "store_req_50x1" && r.imp == imp && r.round == *round)
                .and_then(|r| r.result.get("latency_us")?.get("p50")?.as_f64())
                .unwrap_or(f64::NAN)
                / 1e3
        };
        let _ = writeln!(
            md,
            "| {round} | {:.1} / {:.1} | {:.2} | {:.1} / {:.1} | {:.2} | {:.1} / {:.1} | {:.2} | {:.2} / {:.2} |",
            o / 1e3,
            os / 1e3,
            os / o,
            r16 / 1e3,
            r16s / 1e3,
            r16s / r16,
            r1 / 1e3,
            r1s / 1e3,
            r1s / r1,
            p50("resumable"),
            p50("stored"),
        );
    }
    if let Some(times) = resume_times(runs, "resume_time_across") {
        let _ = writeln!(
            md,
            "\nTime to resume on another server (`examples/resume_time --store`: two \
             servers sharing the store, each new connection sent to the other one, \
             so every resume reads, claims and replays the session's record), per \
             round: {times}."
        );
    }
    let _ = writeln!(
        md,
        "\nA ratio is stored / resumable: below 1, the store makes sessions slower.\n"
    );
}

/// The distributed slot attack (scripts/slot_attack.py), one row a round.
fn slot_attack(md: &mut String, runs: &[Run]) {
    let rows: Vec<&Run> = runs.iter().filter(|r| r.case == "slot_attack").collect();
    let Some(first) = rows.first() else {
        return;
    };
    let f = |r: &Run, name: &str| field(&r.result, name).unwrap_or(f64::NAN);
    let _ = writeln!(
        md,
        "## A distributed slot attack\n\n\
         `scripts/slot_attack.py` against `server` with default settings: {} \
         source addresses (127.0.0.2 and up) x {} silent sockets each, every one \
         reconnecting the moment it is cut or refused, for {} s. Meanwhile an \
         honest client from 127.0.0.1 tries HELLO -> REQUEST -> CLOSE every \
         0.25 s, and three sessions opened before the attack make a request \
         every second. The server's peak RSS is sampled every 0.5 s; its CPU \
         is its user + system time over the attack.\n\n\
         | round | honest served | handshake p50 | p99 | max | established requests ok / failed | server peak RSS | server CPU | attack connections |\n\
         |---|---|---|---|---|---|---|---|---|",
        f(first, "addrs"),
        f(first, "per_addr"),
        f(first, "seconds"),
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} / {} ({:.1} %) | {:.2} ms | {:.2} ms | {:.2} ms | {} / {} | {:.1} MiB | {:.2} cores | {} |",
            r.round,
            f(r, "honest_ok"),
            f(r, "honest_tries"),
            f(r, "honest_share") * 100.0,
            f(r, "handshake_p50_ms"),
            f(r, "handshake_p99_ms"),
            f(r, "handshake_max_ms"),
            f(r, "established_ok"),
            f(r, "established_failed"),
            f(r, "server_peak_rss_mib"),
            f(r, "server_cpu_cores"),
            f(r, "attack_connections"),
        );
    }
    let _ = writeln!(
        md,
        "\nWhy the honest client gets in: connections that have not finished \
         their handshake compete only among themselves for \
         `--max-pending-handshakes` (1,000) places, a newcomer displacing the \
         oldest; established sessions are never displaced. Each attacking \
         address is also held to `--max-connection-rate-per-ip` (100/s after a \
         burst of 1,000).\n"
    );
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// One bar per comparison: ours relative to the reference (1 = equal).
fn plot_side_by_side(path: &Path, table: &[Comparison]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 120 + 36 * table.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = table.iter().map(|c| c.ratio).fold(1.0, f64::max) * 1.15;
    let n = table.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "ours relative to the reference (higher is better)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(420)
        .build_cartesian_2d(0.0..top, 0.0..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("ratio")
        .draw()?;
    for (i, c) in table.iter().enumerate() {
        let y = n - i as f64;
        let color = match c.met() {
            Some(false) => RED.mix(0.7),
            _ => BLUE.mix(0.6),
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y - 0.8), (c.ratio, y - 0.2)],
            color.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{:.2}", c.ratio),
            (c.ratio + top * 0.01, y - 0.35),
            ("sans-serif", 13),
        )))?;
        let label = format!("{} vs {}", short(c.case), c.reference_name);
        root.draw(&Text::new(
            label,
            (8, chart_y(&chart, y - 0.35)),
            ("sans-serif", 13),
        ))?;
    }
    chart.draw_series(LineSeries::new(
        [(1.0, 0.0), (1.0, n)],
        BLACK.stroke_width(1),
    ))?;
    root.present()?;
    Ok(())
}

fn chart_y<DB: DrawingBackend>(
    chart: &ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    y: f64,
) -> i32 {
    chart.backend_coord(&(0.0, y)).1
}

fn short(case: &str) -> &'static str {
    match case {
        "oneway32" => "one-way 32 B",
        "oneway64k" => "one-way 64 KiB",
        "v1print" => "v1 ingest, printing",
        "req_50x16" => "requests 50 x 16",
        "req_50x1" => "requests 50 x 1",
        "req_1x1" => "requests 1 x 1, p50 latency",
        "race_50x16" => "typed 50 x 16",
        "race_50x1" => "typed 50 x 1",
        "race_1x1" => "typed 1 x 1, p50 latency",
        "stream_items" => "server streaming",
        "cancel" => "cancel, p50",
        _ => "?",
    }
}

fn plot_scaling(
    path: &Path,
    conns: &[(u64, &Value)],
    sizes: &BTreeMap<u64, (f64, f64)>,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);

    let max_conn = conns.iter().map(|(n, _)| *n).max().unwrap_or(10).max(10) as f64;
    let max_rate = conns
        .iter()
        .filter_map(|(_, v)| field(v, "per_sec"))
        .fold(1.0, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(&left)
        .caption("requests/s, 1 in flight per connection", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0..max_conn * 1.5).log_scale(), 0.0..max_rate)?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc("requests/s")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1e3))
        .draw()?;
    let points: Vec<(f64, f64)> = conns
        .iter()
        .filter_map(|(n, v)| Some((*n as f64, field(v, "per_sec")?)))
        .collect();
    chart.draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2)))?;
    chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))?;

    let max_mb = sizes
        .values()
        .flat_map(|(a, b)| [*a, *b])
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.2;
    let max_size = sizes.keys().copied().max().unwrap_or(1 << 20) as f64;
    let mut chart = ChartBuilder::on(&right)
        .caption("one-way MB/s by payload size", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((8.0..max_size * 2.0).log_scale(), 0.0..max_mb)?;
    chart
        .configure_mesh()
        .x_desc("payload bytes")
        .y_desc("MB/s")
        .draw()?;
    for (which, color, name) in [(0, BLUE, "ours"), (1, RED, "raw TCP sink")] {
        let points: Vec<(f64, f64)> = sizes
            .iter()
            .map(|(s, (o, r))| (*s as f64, if which == 0 { *o } else { *r }))
            .filter(|(_, v)| v.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
