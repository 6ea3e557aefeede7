//! Log lines a peer causes, against the real server: its text is escaped
//! and capped, so it cannot forge a line, and the lines themselves are
//! rate-limited, so it cannot fill the disk.

mod common;

use common::*;
use rust_tcp::protocol::v2::{CloseCode, CodeReason, Frame};
use std::io::Write;

/// Row "newline in a CLOSE/ERROR reason: a forged log line".
#[test]
fn a_reason_with_a_newline_cannot_forge_a_log_line() {
    let server = ServerProcess::start(&[]);
    let mut c = raw_connect(server.addr);
    let forged = "fine\n2026-01-01T00:00:00.000000Z  INFO rust_tcp::server: FORGED admin logged in";
    c.write_all(&encode(&[
        hello("forger"),
        Frame::Error(CodeReason::new(CloseCode::REQUEST_FAILED, forged)),
        Frame::Close(CodeReason::new(CloseCode::NORMAL, forged)),
    ]))
    .unwrap();
    read_until_closed(&mut c);
    server.wait_for_logs(&["client reported", "client closed"]);
    let log = server.log_so_far();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("2026-01-01T00:00:00.000000Z")),
        "{log:#?}"
    );
    let reported = log.iter().find(|l| l.contains("client reported")).unwrap();
    assert!(
        reported.contains(r"fine\n2026-01-01T00:00:00.000000Z  INFO"),
        "{reported}"
    );
}

/// Row "66 MiB of ERROR frames: 66 MiB of log in half a second": 16 MiB
/// of them now give a dozen lines and a count of the rest.
#[test]
fn a_flood_of_error_reports_is_summarised_not_logged() {
    let server = ServerProcess::start(&[]);
    let mut c = raw_connect(server.addr);
    c.write_all(&encode(&[hello("flooder")])).unwrap();
    let report = encode(&[Frame::Error(CodeReason::new(
        CloseCode::REQUEST_FAILED,
        "x".repeat(1000),
    ))]);
    let burst: Vec<u8> = report.repeat(1024);
    for _ in 0..16 {
        c.write_all(&burst).unwrap();
    }
    c.write_all(&encode(&[Frame::Close(CodeReason::new(
        CloseCode::NORMAL,
        "done",
    ))]))
    .unwrap();
    read_until_closed(&mut c);
    let summary = server.wait_for_log("log lines about this connection were suppressed");
    let count: u64 = summary
        .split("suppressed=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a suppressed=N field");
    assert!(count >= 16_384 - 12, "{summary}");
    server.wait_for_log("connection closed: close handshake complete");
    let log = server.log_so_far();
    let reports: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("client reported"))
        .collect();
    assert!(
        (1..=12).contains(&reports.len()),
        "{} report lines for 16,384 reports",
        reports.len()
    );
    let bytes: usize = log.iter().map(String::len).sum();
    assert!(
        bytes < 64 * 1024,
        "{bytes} bytes of log for 16 MiB of reports"
    );
    // Each shown reason is capped too.
    assert!(reports.iter().all(|l| l.len() < 600), "{:?}", reports[0]);
    // And the server still serves.
    let out = run_client(
        &["--addr", &server.addr_arg(), "still logging sanely"],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_output_line(), printed("still logging sanely"));
}
