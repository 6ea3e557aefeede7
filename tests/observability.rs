//! Seeing inside a server: Prometheus metrics scraped over HTTP before and
//! after traffic, and one span per connection in the logs (text and JSON).

mod common;

use common::{ServerProcess, encode, free_port, hello, named, scrape_metrics};
use rust_tcp::Client;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;

/// GET /metrics, parsed: `name{labels}` → value.
fn scrape(port: u16) -> HashMap<String, f64> {
    scrape_metrics(port)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let port = free_port();
    let server = ServerProcess::start(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    let before = scrape(port);

    // Traffic: three texts and two requests from one client, a clean close.
    let client = Client::connect_with(&server.addr_arg(), named("metered"))
        .await
        .unwrap();
    for text in ["one", "two", "three"] {
        client.send_text(text).await.unwrap();
    }
    for payload in ["a", "b"] {
        assert_eq!(client.request(payload).await.unwrap(), payload);
    }
    client.close().await.unwrap();
    server.wait_for_log("close handshake complete");
    // A peer that breaks the protocol: a frame of an unknown type.
    let mut bad = TcpStream::connect(server.addr).unwrap();
    let mut bytes = encode(&[hello("bad")]);
    bytes.extend([2, 0x7f, 0, 0, 0, 0]);
    bad.write_all(&bytes).unwrap();
    let _ = bad.read_to_end(&mut Vec::new());
    server.wait_for_log("connection closed: ");

    let after = scrape(port);
    assert_eq!(
        get(&after, "rust_tcp_memory_budget_limit_bytes"),
        1024.0 * 1024.0 * 1024.0,
        "the budget's size is exported"
    );
    let moved = |key: &str| get(&after, key) - get(&before, key);
    assert_eq!(
        moved("rust_tcp_connections_accepted_total{version=\"2\"}"),
        2.0
    );
    assert_eq!(
        moved("rust_tcp_connections_closed_total{reason=\"close_handshake\"}"),
        1.0
    );
    assert_eq!(
        moved("rust_tcp_connections_closed_total{reason=\"protocol_error\"}"),
        1.0
    );
    assert_eq!(moved("rust_tcp_protocol_errors_total{code=\"1002\"}"), 1.0);
    assert_eq!(get(&after, "rust_tcp_connections_open{version=\"2\"}"), 0.0);
    // HELLO, 3 texts, 2 requests and CLOSE from the good client; the HELLO
    // of the other (its bad frame is refused, not counted).
    assert_eq!(
        moved("rust_tcp_messages_received_total{version=\"2\"}"),
        8.0
    );
    // Frames of 6 header bytes: "one", "two", "three"; two 5-byte requests;
    // CLOSE 1000 "client done".
    // The client's HELLO also asks for calls: an extensions area of 7
    // bytes (count, type 0x0003, length, version 1).
    let sent_by_clients =
        encode(&[hello("metered")]).len() + 7 + (9 + 9 + 11) + 2 * 11 + 19 + bytes.len();
    assert_eq!(
        moved("rust_tcp_received_bytes_total{version=\"2\"}"),
        sent_by_clients as f64
    );
    assert_eq!(moved("rust_tcp_messages_sent_total"), 2.0, "two responses");
    assert!(moved("rust_tcp_sent_bytes_total") > 0.0);
    assert_eq!(moved("rust_tcp_request_duration_seconds_count"), 2.0);
    assert!(after.contains_key("rust_tcp_request_duration_seconds_bucket{le=\"0.001\"}"));
    // The reference application's own series, beside the library's.
    assert_eq!(moved("rust_tcp_printed_messages_total"), 3.0);
}

#[tokio::test]
async fn each_connection_logs_under_one_span_with_its_peer_version_and_name() {
    let server = ServerProcess::start(&[]);
    let client = Client::connect_with(&server.addr_arg(), named("traced"))
        .await
        .unwrap();
    client.close().await.unwrap();
    let line = server.wait_for_log("connection closed");
    assert!(line.contains("conn{peer=127.0.0.1:"), "{line}");
    assert!(line.contains("version=2"), "{line}");
    assert!(line.contains("client_name=traced"), "{line}");
}

#[tokio::test]
async fn json_logs_carry_the_connection_span() {
    let server = ServerProcess::start(&["--log-format", "json"]);
    let client = Client::connect_with(&server.addr_arg(), named("jason"))
        .await
        .unwrap();
    client.close().await.unwrap();
    let line = server.wait_for_log("connection closed");
    let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(v["level"], "INFO");
    assert!(
        v["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("connection closed")
    );
    let span = &v["span"];
    assert_eq!(span["name"], "conn", "{line}");
    assert_eq!(span["client_name"], "jason", "{line}");
    assert_eq!(span["version"], 2, "{line}");
    assert!(
        span["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
}

#[tokio::test]
async fn authentication_failures_are_counted() {
    let dir = std::env::temp_dir().join(format!("rust-tcp-metrics-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "the-right-token\n").unwrap();
    let port = free_port();
    let server = ServerProcess::start(&[
        "--metrics-addr",
        &format!("127.0.0.1:{port}"),
        "--auth-token-file",
        tokens.to_str().unwrap(),
    ]);
    let before = scrape(port);
    let refused =
        Client::connect_with(&server.addr_arg(), named("guess").auth_token("wrong")).await;
    assert!(refused.is_err());
    server.wait_for_log("connection closed");
    let after = scrape(port);
    assert_eq!(
        get(&after, "rust_tcp_auth_failures_total") - get(&before, "rust_tcp_auth_failures_total"),
        1.0
    );
    let _ = std::fs::remove_dir_all(dir);
}
