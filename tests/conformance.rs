//! The conformance cases (`docs/conformance/v2.json`) two ways: the
//! `client conformance` runner against our real server (every case must
//! pass; a wrong server must fail), and the same cases through the sans-IO
//! `Session` directly, driven as our server's driver drives it, with the
//! reference application (echo) on top.

mod common;

#[path = "../src/bin/client/conformance/cases.rs"]
#[allow(dead_code)]
mod cases;

use bytes::Bytes;
use bytes::BytesMut;
use cases::{Case, Settings, Step};
use common::*;
use rust_tcp::protocol::v2::{
    CallLimits, CallStatus, Frame, ItemFrame, MIN_MAX_FRAME_SIZE, ResponseFrame, Session,
    SessionConfig, SessionEvent, SessionState, StatusFrame, V2Codec, V2CodecError,
};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

fn conformance(server: &ServerProcess, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--addr".to_string(),
        server.addr_arg(),
        "conformance".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run_client(&args.iter().map(String::as_str).collect::<Vec<_>>(), None)
}

#[test]
fn every_case_passes_against_our_server() {
    let server = ServerProcess::start(&["--handshake-timeout-secs", "1"]);
    let out = conformance(&server, &["--reference", "--handshake-timeout-secs", "1"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", stderr_of(&out));
    let cases = cases::parse(cases::SPEC_CASES).unwrap();
    let auth = cases
        .iter()
        .filter(|c| c.needs.iter().any(|n| n == "auth-token"));
    let skipped = auth.count();
    assert!(
        report.contains(&format!(
            "conformance: {} passed, 0 failed, {skipped} skipped",
            cases.len() - skipped
        )),
        "{report}"
    );
    // One line per case, naming its section.
    assert!(
        report.contains("PASS 3.3    handshake/name-not-utf8"),
        "{report}"
    );
}

#[test]
fn the_authentication_cases_pass_against_a_server_that_requires_tokens() {
    let tokens = token_file("conformance-token\n");
    let server = ServerProcess::start(&["--auth-token-file", tokens.to_str().unwrap()]);
    let out = conformance(&server, &["--auth-token", "conformance-token", "--json"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    let lines: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for name in ["auth/missing-token", "auth/wrong-token", "auth/right-token"] {
        let line = lines.iter().find(|l| l["case"] == name).unwrap();
        assert_eq!(line["result"], "PASS", "{line}");
    }
    assert_eq!(lines.last().unwrap()["summary"]["failed"], 0);
}

/// A server that differs from the spec's defaults fails the cases that
/// check them, with what differed, and the runner exits 1.
#[test]
fn a_divergent_server_fails_with_what_differed() {
    let server = ServerProcess::start(&["--heartbeat-secs", "10"]);
    let out = conformance(&server, &["--reference", "--only", "heartbeat-no-wish"]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(
            "FAIL 3.3    handshake/heartbeat-no-wish: step 2: expected heartbeat_ms 30000, got WELCOME version 2"
        ),
        "{report}"
    );
    assert!(report.contains("heartbeat_ms 10000"), "{report}");
    assert!(report.contains("0 passed, 1 failed, 0 skipped"), "{report}");
}

/// Our server's driver around a session, in memory: frames decoded with
/// the HELLO's small limit until the session is open, requests echoed
/// (the reference application), the close acknowledged unless a frame
/// followed it. What it writes, and whether it ended.
struct SansIo {
    session: Session,
    codec: V2Codec,
    input: BytesMut,
    out: BytesMut,
    now: Instant,
    max_frame: u32,
    /// The first byte named another version: answered with the frozen
    /// reply, and the connection is over.
    other_version: bool,
    /// The reference application's calls in flight (echo, spec 3.13).
    calls: HashMap<u32, EchoCall>,
}

/// A call of the reference application: its request (the answer), the
/// items waiting for credit, and whether the client's stream has ended.
struct EchoCall {
    request: Bytes,
    server_streams: bool,
    unsent: VecDeque<Bytes>,
    ended: bool,
    /// A `wait` call: answered only by a cancel or its deadline (ms).
    waits: Option<u32>,
}

impl SansIo {
    fn new() -> Self {
        let config = SessionConfig::default()
            .heartbeat(Duration::from_secs(30))
            .handshake_timeout(Some(Duration::from_secs(10)))
            .calls(Some(CallLimits::default()));
        let now = Instant::now();
        SansIo {
            session: Session::server(config, now),
            codec: V2Codec::new(MIN_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE),
            input: BytesMut::new(),
            out: BytesMut::new(),
            now,
            max_frame: SessionConfig::default().max_frame_size,
            other_version: false,
            calls: HashMap::new(),
        }
    }

    fn ended(&self) -> bool {
        self.other_version || self.session.state() == SessionState::Closed
    }

    /// Hands everything decodable to the session, as the driver does.
    fn feed(&mut self, bytes: &[u8]) {
        if let Some(&first) = bytes.first()
            && first != 2
            && self.input.is_empty()
            && !self.opened()
        {
            // Not v2 at all (the dispatcher's call, before any session):
            // the frozen reply, and the end.
            self.out
                .extend_from_slice(&rust_tcp::protocol::unsupported_version_reply(first));
            self.other_version = true;
            return;
        }
        self.input.extend_from_slice(bytes);
        while !self.ended() {
            let frame = match self.codec.decode(&mut self.input) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(V2CodecError::Frame(e)) => {
                    self.session.receive_invalid(&e, &mut self.out);
                    return;
                }
                Err(e) => panic!("{e}"),
            };
            match self.session.receive(frame, self.now, &mut self.out) {
                Ok(Some(SessionEvent::Opened { .. })) => self.codec.set_max_recv(self.max_frame),
                Ok(Some(SessionEvent::Request(r))) => {
                    let answer = Frame::Response(ResponseFrame::new(r.id, Ok(r.payload)));
                    if let Err(e) = self.session.send(&answer, &mut self.out) {
                        let failure = Frame::Response(ResponseFrame::new(
                            r.id,
                            Err(format!("response too large for the client: {e}")),
                        ));
                        self.session.send(&failure, &mut self.out).unwrap();
                    }
                }
                Ok(Some(SessionEvent::Call(c))) => {
                    let waits = (&c.payload[..] == b"wait")
                        .then(|| CallLimits::default().deadline_ms(c.deadline_ms));
                    let unsent = if c.server_streams() && !c.client_streams() {
                        VecDeque::from([c.payload.clone()])
                    } else {
                        VecDeque::new()
                    };
                    let (server_streams, id) = (c.server_streams(), c.id);
                    let ended = !c.client_streams();
                    let call = EchoCall {
                        request: c.payload,
                        server_streams,
                        unsent,
                        ended,
                        waits,
                    };
                    self.calls.insert(id, call);
                    self.pump(id);
                }
                Ok(Some(SessionEvent::Item(i))) => {
                    if let Some(call) = self.calls.get_mut(&i.id)
                        && call.server_streams
                    {
                        call.unsent.push_back(i.payload);
                    }
                    self.pump(i.id);
                }
                Ok(Some(SessionEvent::End(id))) => {
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.ended = true;
                    }
                    self.pump(id);
                }
                Ok(Some(SessionEvent::Credit { id, .. })) => self.pump(id),
                Ok(Some(SessionEvent::Cancel(id))) => {
                    self.calls.remove(&id);
                    self.status(id, CallStatus::Cancelled, "cancelled by the client");
                }
                Ok(Some(SessionEvent::CloseRequested(_))) => {
                    // What follows a CLOSE in what was read breaks spec 3.9.
                    if let Ok(Some(late)) = self.codec.decode(&mut self.input) {
                        let _ = self.session.receive(late, self.now, &mut self.out);
                    } else {
                        self.session.ack_close(&mut self.out).unwrap();
                    }
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    fn opened(&self) -> bool {
        self.session.state() != SessionState::Handshake
    }

    /// Sends what call `id` has credit for, and its STATUS once all is out.
    fn pump(&mut self, id: u32) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.waits.is_some() {
            return;
        }
        while !call.unsent.is_empty() && self.session.send_credit(id) > 0 {
            let item = call.unsent.pop_front().unwrap();
            self.session
                .send(&Frame::Item(ItemFrame::new(id, item)), &mut self.out)
                .unwrap();
        }
        if call.unsent.is_empty() && call.ended {
            let answer = self.calls.remove(&id).unwrap().request;
            let status = Frame::Status(StatusFrame::new(id, CallStatus::Ok, answer));
            self.session.send(&status, &mut self.out).unwrap();
        }
    }

    fn status(&mut self, id: u32, status: CallStatus, reason: &str) {
        let frame = Frame::Status(StatusFrame::new(id, status, reason.to_owned()));
        self.session.send(&frame, &mut self.out).unwrap();
    }

    /// Nothing came when something was expected: the application's clock
    /// moves on to the first deadline of a waiting call (the session's own
    /// timers are covered by the TCP runs).
    fn pass_time(&mut self) {
        let due = self
            .calls
            .iter()
            .filter_map(|(id, c)| c.waits.filter(|ms| *ms > 0).map(|ms| (ms, *id)))
            .min();
        if let Some((ms, id)) = due {
            self.calls.remove(&id);
            let reason = format!("deadline exceeded ({ms} ms)");
            self.status(id, CallStatus::DeadlineExceeded, &reason);
        }
    }
}

/// Runs a case through the session; `Err` says what differed, `Ok(false)`
/// that it cannot run without a socket.
fn run_sans_io(case: &Case, settings: &Settings) -> Result<bool, String> {
    if case.needs.iter().any(|n| n == "handshake-timeout") {
        // The deadlines are the driver's and the clock's: over TCP only.
        return Ok(false);
    }
    let mut s = SansIo::new();
    let mut codec = V2Codec::new(u32::MAX, u32::MAX);
    for (i, step) in case.steps.iter().enumerate() {
        let at = |e: String| format!("step {}: {e}", i + 1);
        if let Some(bytes) = cases::bytes_to_send(step, settings, Some(s.max_frame)).map_err(at)? {
            s.feed(&bytes);
            continue;
        }
        match step {
            Step::Send(_) | Step::Hello { .. } | Step::SendOverMaxFrame => {}
            Step::Expect(expect) => {
                if s.out.is_empty() {
                    s.pass_time();
                }
                match codec.decode(&mut s.out) {
                    Ok(Some(frame)) => cases::check(expect, &frame).map_err(at)?,
                    other => return Err(at(format!("expected a frame, got {other:?}"))),
                }
            }
            Step::ExpectBytes(want) => {
                if s.out.len() < want.len() || &s.out[..want.len()] != want.as_slice() {
                    return Err(at(format!(
                        "expected {}, got {}",
                        cases::to_hex(want),
                        cases::to_hex(&s.out)
                    )));
                }
                let _ = s.out.split_to(want.len());
            }
            Step::ExpectEof => {
                if !s.ended() || !s.out.is_empty() {
                    return Err(at(format!(
                        "expected the end, state {:?}, pending {}",
                        s.session.state(),
                        cases::to_hex(&s.out)
                    )));
                }
            }
        }
    }
    Ok(true)
}

#[test]
fn every_case_holds_for_the_sans_io_session() {
    let settings = Settings {
        reference: true,
        auth_token: None,
        handshake_timeout_secs: None,
    };
    let cases = cases::parse(cases::SPEC_CASES).unwrap();
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in &cases {
        if settings.missing(case).is_some() {
            continue;
        }
        match run_sans_io(case, &settings) {
            Ok(true) => ran += 1,
            Ok(false) => {}
            Err(e) => failures.push(format!("{} ({}): {e}", case.name, case.section)),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(ran >= 25, "only {ran} cases ran through the session");
}
