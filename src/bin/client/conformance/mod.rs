//! `client conformance`: runs the spec's testable rules
//! (`docs/conformance/v2.json`) against any v2 server, ours or another
//! implementation, one fresh connection per case, as the Autobahn suite
//! does for WebSocket: a line per case (PASS, FAIL with what differed and
//! the bytes, or SKIP with the setting it needs), then a summary.

pub mod cases;

use anyhow::{Context, bail};
use bytes::BytesMut;
use cases::{Case, Settings, Step};
use clap::Args as ClapArgs;
use rust_tcp::protocol::v2::{Frame, V2Codec};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// Options of `client conformance`.
#[derive(Debug, ClapArgs)]
pub(crate) struct ConformanceArgs {
    /// Print one JSON object per case, then one for the summary, instead of
    /// lines for people.
    #[arg(long)]
    json: bool,

    /// Cases from this file instead of the ones shipped with the spec.
    #[arg(long, value_name = "FILE")]
    cases: Option<std::path::PathBuf>,

    /// Run only the cases whose name contains this.
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,

    /// The server is the reference `server` with its default settings:
    /// also run the cases that check default values and its echo.
    #[arg(long)]
    reference: bool,

    /// The server requires this token: run the authentication cases.
    #[arg(long, value_name = "TOKEN")]
    auth_token: Option<String>,

    /// The server's handshake deadline: run the cases that wait for it.
    #[arg(long, value_name = "SECS")]
    handshake_timeout_secs: Option<f64>,

    /// How long to wait for each expected frame, in seconds.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    timeout_secs: f64,
}

/// How one case went.
enum Outcome {
    Pass,
    Fail(String),
    Skip(&'static str),
}

/// Runs the cases against `addr`; an error (exit 1) if any failed.
pub(crate) async fn run_conformance(addr: &str, args: &ConformanceArgs) -> anyhow::Result<()> {
    let text = match &args.cases {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => cases::SPEC_CASES.to_owned(),
    };
    let all = cases::parse(&text).map_err(|e| anyhow::anyhow!("the cases: {e}"))?;
    let settings = Settings {
        reference: args.reference,
        auth_token: args.auth_token.clone(),
        handshake_timeout_secs: args.handshake_timeout_secs,
    };
    let wait = Duration::try_from_secs_f64(args.timeout_secs).context("--timeout-secs")?;
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for case in all.iter().filter(|c| {
        args.only
            .as_ref()
            .is_none_or(|o| c.name.contains(o.as_str()))
    }) {
        let outcome = match settings.missing(case) {
            Some(why) => Outcome::Skip(why),
            None => match run_case(addr, case, &settings, wait).await {
                Ok(()) => Outcome::Pass,
                Err(e) => Outcome::Fail(e),
            },
        };
        match &outcome {
            Outcome::Pass => passed += 1,
            Outcome::Fail(_) => failed += 1,
            Outcome::Skip(_) => skipped += 1,
        }
        report(case, &outcome, args.json);
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"summary": {"passed": passed, "failed": failed, "skipped": skipped}})
        );
    } else {
        println!("conformance: {passed} passed, {failed} failed, {skipped} skipped");
    }
    if failed > 0 {
        bail!("{failed} conformance case(s) failed");
    }
    Ok(())
}

fn report(case: &Case, outcome: &Outcome, json: bool) {
    let (verdict, detail) = match outcome {
        Outcome::Pass => ("PASS", String::new()),
        Outcome::Fail(why) => ("FAIL", why.clone()),
        Outcome::Skip(why) => ("SKIP", (*why).to_owned()),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "case": case.name, "section": case.section, "result": verdict,
                "about": case.about, "detail": detail,
            })
        );
    } else if detail.is_empty() {
        println!("{verdict} {:<6} {}", case.section, case.name);
    } else {
        println!("{verdict} {:<6} {}: {detail}", case.section, case.name);
    }
}

/// One case on a fresh connection.
async fn run_case(
    addr: &str,
    case: &Case,
    settings: &Settings,
    wait: Duration,
) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    // Waiting for a deadline takes the deadline, and then some.
    let wait = match settings.handshake_timeout_secs {
        Some(secs) if case.needs.iter().any(|n| n == "handshake-timeout") => {
            wait + Duration::from_secs_f64(secs)
        }
        _ => wait,
    };
    let mut received = BytesMut::new();
    let mut codec = V2Codec::new(u32::MAX, u32::MAX);
    let mut server_max_frame: Option<u32> = None;
    for (i, step) in case.steps.iter().enumerate() {
        let at = |e: String| format!("step {}: {e}", i + 1);
        if let Some(bytes) = cases::bytes_to_send(step, settings, server_max_frame).map_err(at)? {
            send(&mut stream, &bytes).await.map_err(at)?;
            continue;
        }
        match step {
            Step::Send(_) | Step::Hello { .. } | Step::SendOverMaxFrame => {}
            Step::Expect(expect) => {
                let frame = next_frame(&mut stream, &mut received, &mut codec, wait)
                    .await
                    .map_err(at)?;
                if let Frame::Welcome(w) = &frame {
                    server_max_frame = Some(w.max_frame_size);
                }
                cases::check(expect, &frame).map_err(at)?;
            }
            Step::ExpectBytes(want) => {
                let got = next_bytes(&mut stream, &mut received, want.len(), wait)
                    .await
                    .map_err(at)?;
                if &got != want {
                    return Err(at(format!(
                        "expected bytes {}, got {}",
                        cases::to_hex(want),
                        cases::to_hex(&got)
                    )));
                }
            }
            Step::ExpectEof => expect_eof(&mut stream, &mut received, wait)
                .await
                .map_err(at)?,
        }
    }
    Ok(())
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| format!("sending {}: {e}", cases::to_hex(bytes)))
}

/// The next whole frame from the server, within `wait`.
async fn next_frame(
    stream: &mut TcpStream,
    received: &mut BytesMut,
    codec: &mut V2Codec,
    wait: Duration,
) -> Result<Frame, String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let before = received.clone();
        match codec.decode(received) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(format!("the server sent {}: {e}", cases::to_hex(&before))),
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(received)).await {
            Err(_) => {
                return Err(format!(
                    "no frame within {wait:?} (received {})",
                    cases::to_hex(received)
                ));
            }
            Ok(Ok(0)) => {
                return Err(format!(
                    "the server closed the connection (received {})",
                    cases::to_hex(received)
                ));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("the connection failed: {e}")),
        }
    }
}

/// The next `n` bytes from the server, within `wait`.
async fn next_bytes(
    stream: &mut TcpStream,
    received: &mut BytesMut,
    n: usize,
    wait: Duration,
) -> Result<Vec<u8>, String> {
    let deadline = tokio::time::Instant::now() + wait;
    while received.len() < n {
        match tokio::time::timeout_at(deadline, stream.read_buf(received)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
        }
    }
    let take = n.min(received.len());
    Ok(received.split_to(take).to_vec())
}

/// The server ends the connection, sending nothing more first.
async fn expect_eof(
    stream: &mut TcpStream,
    received: &mut BytesMut,
    wait: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if !received.is_empty() {
            return Err(format!(
                "expected the end of the connection, got {}",
                cases::to_hex(received)
            ));
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(received)).await {
            Err(_) => return Err(format!("the connection was still open after {wait:?}")),
            // A reset is an end too.
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {}
        }
    }
}
