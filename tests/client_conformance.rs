//! The client's side of the protocol as data (`docs/conformance/client.json`):
//! for each case, a scripted server on loopback follows the case's steps
//! while the library's `Client` does what the case says, and the client
//! must answer and end as the case says. The Python and JavaScript
//! clients' suites run the very same cases, so the three cannot drift.

use bytes::BytesMut;
use rust_tcp::protocol::v2::{CallStatus, Frame, V2Codec};
use rust_tcp::{CallOptions, Cause, Client, ClientConfig, ClientError};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

const CASES: &str = include_str!("../docs/conformance/client.json");
const PATIENCE: Duration = Duration::from_secs(10);

fn from_hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).expect("hex in the cases"))
        .collect()
}

/// The scripted server's side of one connection.
struct Script {
    stream: TcpStream,
    codec: V2Codec,
    buf: BytesMut,
    /// The id of the last REQUEST or CALL the client sent.
    id: [u8; 4],
}

impl Script {
    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self
                .codec
                .decode(&mut self.buf)
                .expect("the client sends frames")
            {
                return Some(frame);
            }
            let n = tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.buf))
                .await
                .expect("the client said something in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// Runs the case's server steps; what went wrong, if anything.
    async fn run(&mut self, steps: &[Value]) -> Result<(), String> {
        let Some(Frame::Hello(hello)) = self.next_frame().await else {
            return Err("no HELLO first".into());
        };
        for (i, step) in steps.iter().enumerate() {
            let at = |e: String| format!("step {}: {e}", i + 1);
            if let Some(want) = step.get("expect_hello") {
                let asks_calls = hello
                    .extensions
                    .iter()
                    .any(|e| e.kind == 3 && e.data[..] == [1]);
                if want["calls"].as_bool() != Some(asks_calls) {
                    return Err(at(format!("HELLO asks for calls: {asks_calls}")));
                }
            } else if let Some(hex) = step["send"].as_str() {
                let id: Vec<String> = self.id.iter().map(|b| format!("{b:02x}")).collect();
                let bytes = from_hex(&hex.replace("{id}", &id.join(" ")));
                self.stream
                    .write_all(&bytes)
                    .await
                    .map_err(|e| at(e.to_string()))?;
            } else if let Some(want) = step.get("expect") {
                let frame = self
                    .next_frame()
                    .await
                    .ok_or_else(|| at("the client closed".into()))?;
                check(want, &frame, &mut self.id).map_err(at)?;
            } else if step["expect_end"].as_bool() == Some(true)
                && let Some(frame) = self.next_frame().await
            {
                return Err(at(format!("expected the end, got {frame:?}")));
            }
        }
        Ok(())
    }
}

fn check(want: &Value, frame: &Frame, id: &mut [u8; 4]) -> Result<(), String> {
    let name = format!("{:?}", frame.frame_type()).to_uppercase();
    if want["type"].as_str() != Some(name.as_str()) {
        return Err(format!("expected {}, got {frame:?}", want["type"]));
    }
    match frame {
        Frame::Request(r) => *id = r.id.to_be_bytes(),
        Frame::Call(c) => *id = c.id.to_be_bytes(),
        Frame::Close(c)
            if want["code"]
                .as_u64()
                .is_some_and(|w| w != u64::from(c.code.0)) =>
        {
            return Err(format!("expected CLOSE {}, got {frame:?}", want["code"]));
        }
        Frame::Pong(n) if want["nonce"].as_u64() != Some(*n) => {
            return Err(format!("expected nonce {}, got {n}", want["nonce"]));
        }
        _ => {}
    }
    Ok(())
}

/// What the client does, and how it ended, in the cases' words.
async fn act(client: &str, addr: &str) -> Value {
    let connected = Client::connect_with(addr, ClientConfig::default().name("conformance")).await;
    let client_side = match connected {
        Err(e) => return report(&e),
        Ok(c) => c,
    };
    let outcome = match client {
        "request" => client_side.request("x").await.map(|_| ()),
        "call" => client_side.call("x", CallOptions::new()).await.map(|_| ()),
        "stream" => match client_side
            .open_call("x", CallOptions::new().server_stream(1))
            .await
        {
            Ok(call) => call.finish().await.map(|_| ()),
            Err(e) => Err(e),
        },
        _ => Ok(()),
    };
    match outcome {
        Ok(()) if client == "connect" => {
            // The script ends the connection; its end is what is reported.
            // The pushes' stream ends with the connection, and a request
            // after that fails with how it ended.
            let mut pushes = client_side.incoming().expect("first use");
            while pushes.recv().await.is_some() {}
            match client_side.request("after").await {
                Ok(_) => serde_json::json!({"ok": "still open"}),
                Err(e) => report(&e),
            }
        }
        Ok(()) => serde_json::json!({"ok": "ok"}),
        Err(e) => report(&e),
    }
}

fn report(e: &ClientError) -> Value {
    match e {
        ClientError::HandshakeRefused(c) => {
            serde_json::json!({"error": "refused", "code": c.code.0})
        }
        ClientError::Protocol { code, .. } => {
            serde_json::json!({"error": "protocol", "code": code.0})
        }
        ClientError::Closed {
            by: Cause::Server, ..
        } => serde_json::json!({"error": "closed", "by": "server"}),
        ClientError::Call { status, .. } => {
            let status = *status as u8;
            serde_json::json!({"error": "call", "status": status})
        }
        other => serde_json::json!({"error": other.to_string()}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_case_holds_for_the_rust_client() {
    let doc: Value = serde_json::from_str(CASES).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let steps = case["server"].as_array().unwrap().clone();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut script = Script {
                stream,
                codec: V2Codec::new(u32::MAX, u32::MAX),
                buf: BytesMut::new(),
                id: [0; 4],
            };
            script.run(&steps).await
        });
        let got = tokio::time::timeout(PATIENCE, act(case["client"].as_str().unwrap(), &addr))
            .await
            .unwrap_or_else(|_| serde_json::json!({"error": "no end in time"}));
        match server.await.unwrap() {
            Err(e) => failures.push(format!("{name}: server script: {e}")),
            Ok(()) if got != case["report"] => {
                failures.push(format!(
                    "{name}: reported {got}, expected {}",
                    case["report"]
                ));
            }
            Ok(()) => {}
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(cases.len() >= 14, "only {} cases", cases.len());
}

// The statuses the cases name are the protocol's numbers.
const _: () = assert!(CallStatus::Failed as u8 == 1);
