//! The conformance cases as data: `docs/conformance/v2.json`, read into
//! [`Case`]s, and how a frame is checked against what a case expects.
//! Shared by `client conformance` (over TCP, against any server) and by
//! `tests/conformance.rs` (through the sans-IO `Session` directly), so the
//! two can never read a case differently.

use bytes::{Bytes, BytesMut};
use rust_tcp::protocol::v2::{Extension, Frame, Hello};
use serde_json::{Map, Value};

/// The cases shipped with the spec.
pub const SPEC_CASES: &str = include_str!("../../../../docs/conformance/v2.json");

/// One testable rule of the spec.
#[derive(Debug, Clone)]
pub struct Case {
    /// A short unique name, `area/what`.
    pub name: String,
    /// The section of docs/PROTOCOL.md it checks.
    pub section: String,
    /// The rule, in a sentence.
    pub about: String,
    /// Settings of the server under test the case depends on; it is
    /// skipped unless the runner is told them (see [`Settings`]).
    pub needs: Vec<String>,
    /// What to send and what must come back, in order.
    pub steps: Vec<Step>,
}

/// One step of a case.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send these bytes as they are.
    Send(Vec<u8>),
    /// Send a HELLO (version 2) built from these fields.
    Hello {
        name: String,
        max_frame: u32,
        heartbeat_ms: u32,
        /// `None`: send the runner's token (`--auth-token`), if it has one;
        /// `Some(false)`: send none; `Some(true)`: the case needs one.
        token: Option<bool>,
        /// Ask for calls (extension 0x0003, spec 3.13).
        calls: bool,
    },
    /// Send the header of a TEXT frame one byte longer than the `max_frame`
    /// the server announced in its WELCOME.
    SendOverMaxFrame,
    /// The next frame from the server must be this.
    Expect(Map<String, Value>),
    /// The next bytes from the server must be exactly these.
    ExpectBytes(Vec<u8>),
    /// The server must end the connection (EOF or reset) with nothing more.
    ExpectEof,
}

/// What the runner knows about the server under test.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The server is the reference server with its default settings (an
    /// echo application, default limits): cases that check default values
    /// or the echo need it (`needs: ["reference"]`).
    pub reference: bool,
    /// The server requires this token (`needs: ["auth-token"]`); cases
    /// that need a server without tokens (`needs: ["no-auth"]`) are
    /// skipped when it is set.
    pub auth_token: Option<String>,
    /// The server's handshake deadline, in seconds (`needs:
    /// ["handshake-timeout"]`).
    pub handshake_timeout_secs: Option<f64>,
}

impl Settings {
    /// Why `case` cannot run against this server, if it cannot.
    pub fn missing(&self, case: &Case) -> Option<&'static str> {
        case.needs.iter().find_map(|need| match need.as_str() {
            "reference" if !self.reference => {
                Some("needs --reference (the reference server, defaults)")
            }
            "auth-token" if self.auth_token.is_none() => Some("needs --auth-token TOKEN"),
            "no-auth" if self.auth_token.is_some() => Some("needs a server without tokens"),
            "handshake-timeout" if self.handshake_timeout_secs.is_none() => {
                Some("needs --handshake-timeout-secs S")
            }
            _ => None,
        })
    }
}

/// Reads cases from JSON text: `{"cases": [...]}`.
pub fn parse(text: &str) -> Result<Vec<Case>, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let cases = root["cases"]
        .as_array()
        .ok_or("no \"cases\" array at the top")?;
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| case(c).map_err(|e| format!("case {}: {e}", i + 1)))
        .collect()
}

fn case(v: &Value) -> Result<Case, String> {
    let text = |key: &str| {
        v[key]
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("no \"{key}\""))
    };
    let name = text("name")?;
    let steps = v["steps"]
        .as_array()
        .ok_or(format!("{name}: no \"steps\""))?
        .iter()
        .map(|s| step(s).map_err(|e| format!("{name}: {e}")))
        .collect::<Result<_, _>>()?;
    Ok(Case {
        section: text("section")?,
        about: text("about")?,
        needs: v["needs"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        name,
        steps,
    })
}

fn step(v: &Value) -> Result<Step, String> {
    if let Some(hex) = v["send"].as_str() {
        return Ok(Step::Send(from_hex(hex)?));
    }
    if let Some(h) = v.get("hello") {
        let number = |key: &str, default: u32| {
            h[key].as_u64().map_or(Ok(default), |n| {
                u32::try_from(n).map_err(|_| format!("{key} too big"))
            })
        };
        return Ok(Step::Hello {
            name: h["name"].as_str().unwrap_or("conformance").to_owned(),
            max_frame: number("max_frame", 1 << 20)?,
            heartbeat_ms: number("heartbeat_ms", 0)?,
            token: h["token"].as_bool(),
            calls: h["calls"].as_bool() == Some(true),
        });
    }
    if v["send_over_max_frame"].as_bool() == Some(true) {
        return Ok(Step::SendOverMaxFrame);
    }
    if let Some(e) = v["expect"].as_object() {
        if e.get("type").and_then(Value::as_str).is_none() {
            return Err("an \"expect\" needs a \"type\"".into());
        }
        return Ok(Step::Expect(e.clone()));
    }
    if let Some(hex) = v["expect_bytes"].as_str() {
        return Ok(Step::ExpectBytes(from_hex(hex)?));
    }
    if v["expect_eof"].as_bool() == Some(true) {
        return Ok(Step::ExpectEof);
    }
    Err(format!("unknown step {v}"))
}

/// Bytes from hex digits, spaces allowed.
pub fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {text:?}"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| format!("bad hex {text:?}")))
        .collect()
}

/// Bytes as spaced hex, for reports.
pub fn to_hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(64).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 64 { " …" } else { "" };
    format!("{}{more}", shown.join(" "))
}

/// The bytes a sending step puts on the wire, given what the runner knows
/// and the `max_frame` the server announced (if its WELCOME came);
/// `Ok(None)` for a step that expects instead.
pub fn bytes_to_send(
    step: &Step,
    settings: &Settings,
    server_max_frame: Option<u32>,
) -> Result<Option<Vec<u8>>, String> {
    Ok(Some(match step {
        Step::Send(bytes) => bytes.clone(),
        Step::Hello {
            name,
            max_frame,
            heartbeat_ms,
            token,
            calls,
        } => {
            // A server that requires tokens requires them of every case.
            let token = match token {
                Some(false) => None,
                _ => settings.auth_token.as_deref(),
            };
            hello_bytes(name, *max_frame, *heartbeat_ms, token, *calls)
        }
        Step::SendOverMaxFrame => {
            let max = server_max_frame.ok_or("no WELCOME seen yet")?;
            let mut header = vec![2, 3];
            header.extend((max + 1).to_be_bytes());
            header
        }
        Step::Expect(_) | Step::ExpectBytes(_) | Step::ExpectEof => return Ok(None),
    }))
}

/// The bytes of a HELLO step.
pub fn hello_bytes(
    name: &str,
    max_frame: u32,
    heartbeat_ms: u32,
    token: Option<&str>,
    calls: bool,
) -> Vec<u8> {
    let extensions = token
        .map(|t| Extension::new(Extension::AUTH_TOKEN, Bytes::from(t.to_owned())))
        .into_iter()
        .chain(calls.then(|| Extension::new(Extension::CALLS, Bytes::from_static(&[1]))))
        .collect();
    let frame = Frame::Hello(
        Hello::new(vec![2], max_frame, heartbeat_ms, name).with_extensions(extensions),
    );
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    out.to_vec()
}

/// A frame's type as the spec names it (`WELCOME`, `CLOSE`…).
pub fn type_name(frame: &Frame) -> String {
    format!("{:?}", frame.frame_type()).to_uppercase()
}

/// Whether `frame` is what `expect` describes; if not, what differs.
pub fn check(expect: &Map<String, Value>, frame: &Frame) -> Result<(), String> {
    let want = expect["type"].as_str().unwrap_or_default();
    let got = type_name(frame);
    if want != got {
        return Err(format!("expected {want}, got {}", describe(frame)));
    }
    for (key, value) in expect {
        let ok = match (key.as_str(), frame) {
            ("type", _) => true,
            ("code", Frame::Close(c) | Frame::Error(c) | Frame::GoAway(c)) => {
                value.as_u64() == Some(u64::from(c.code.0))
            }
            ("reason_contains", Frame::Close(c) | Frame::Error(c) | Frame::GoAway(c)) => {
                value.as_str().is_some_and(|s| c.reason.contains(s))
            }
            ("reason", Frame::Close(c) | Frame::Error(c) | Frame::GoAway(c)) => {
                value.as_str() == Some(c.reason.as_str())
            }
            // The extension types the WELCOME carries, in order.
            ("extensions", Frame::Welcome(w)) => {
                let kinds: Vec<u64> = w.extensions.iter().map(|e| u64::from(e.kind)).collect();
                value.as_array().is_some_and(|want| {
                    want.iter()
                        .map(Value::as_u64)
                        .eq(kinds.iter().copied().map(Some))
                })
            }
            ("version", Frame::Welcome(w)) => value.as_u64() == Some(u64::from(w.version)),
            ("heartbeat_ms", Frame::Welcome(w)) => {
                value.as_u64() == Some(u64::from(w.heartbeat_ms))
            }
            ("id", Frame::Response(r)) => value.as_u64() == Some(u64::from(r.id)),
            ("status", Frame::Response(r)) => value.as_u64() == Some(u64::from(r.result.is_err())),
            ("payload_hex", Frame::Response(r)) => r
                .result
                .as_ref()
                .is_ok_and(|p| Some(p.to_vec()) == value.as_str().and_then(|h| from_hex(h).ok())),
            ("reason_contains", Frame::Response(r)) => r
                .result
                .as_ref()
                .is_err_and(|reason| value.as_str().is_some_and(|s| reason.contains(s))),
            ("nonce", Frame::Pong(n) | Frame::Ping(n)) => value.as_u64() == Some(*n),
            ("id", Frame::Item(i)) => value.as_u64() == Some(u64::from(i.id)),
            ("text", Frame::Item(i)) => value.as_str().map(str::as_bytes) == Some(&i.payload[..]),
            ("id", Frame::Status(s)) => value.as_u64() == Some(u64::from(s.id)),
            ("status", Frame::Status(s)) => value.as_u64() == Some(s.status as u64),
            ("text", Frame::Status(s)) => value.as_str().map(str::as_bytes) == Some(&s.payload[..]),
            ("reason", Frame::Status(s)) => value.as_str() == Some(s.reason().as_str()),
            ("text", Frame::Text(m)) => value.as_str() == Some(m.as_str()),
            _ => {
                return Err(format!(
                    "the case asks for \"{key}\", which a {got} does not have"
                ));
            }
        };
        if !ok {
            return Err(format!("expected {key} {value}, got {}", describe(frame)));
        }
    }
    Ok(())
}

/// A frame in a line: its type and the fields a case can check.
pub fn describe(frame: &Frame) -> String {
    match frame {
        Frame::Close(c) | Frame::Error(c) | Frame::GoAway(c) => {
            format!("{} {} {:?}", type_name(frame), c.code.0, c.reason)
        }
        Frame::Welcome(w) => format!(
            "WELCOME version {} max_frame {} heartbeat_ms {}",
            w.version, w.max_frame_size, w.heartbeat_ms
        ),
        Frame::Response(r) => match &r.result {
            Ok(p) => format!("RESPONSE id {} status 0 ({} bytes)", r.id, p.len()),
            Err(reason) => format!("RESPONSE id {} status 1 {reason:?}", r.id),
        },
        Frame::Ping(n) | Frame::Pong(n) => format!("{} {n}", type_name(frame)),
        Frame::Text(m) => format!("TEXT {:?}", m.as_str()),
        Frame::Item(i) => format!("ITEM id {} {:?}", i.id, String::from_utf8_lossy(&i.payload)),
        Frame::Status(s) => format!(
            "STATUS id {} status {} {:?}",
            s.id,
            s.status as u8,
            String::from_utf8_lossy(&s.payload)
        ),
        other => type_name(other),
    }
}
