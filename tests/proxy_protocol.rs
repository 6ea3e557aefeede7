//! `server --proxy-protocol`: the PROXY v2 header names the client's real
//! address for logs and per-address limits; a connection without one is
//! refused and logged. (The same behind a real HAProxy: tests/deploy.rs.)

mod common;

use common::{ServerProcess, encode, hello, next_frame};
use futures::StreamExt;
use rust_tcp::protocol::v2::{CloseCode, Frame, V2Codec};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A PROXY v2 header for a TCP/IPv4 connection from `source`.
fn proxy_header(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend([0x21, 0x11, 0, 12]);
    h.extend(source);
    h.extend([127, 0, 0, 1]);
    h.extend(port.to_be_bytes());
    h.extend(8080u16.to_be_bytes());
    h
}

/// Connects, sends `first` and then a HELLO, and returns the framed
/// conversation.
async fn connect_with(
    server: &ServerProcess,
    first: &[u8],
    name: &str,
) -> Framed<TcpStream, V2Codec> {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut bytes = first.to_vec();
    bytes.extend(encode(&[hello(name)]));
    stream.write_all(&bytes).await.unwrap();
    Framed::new(stream, V2Codec::default())
}

#[tokio::test]
async fn the_header_names_the_client_for_logs() {
    let server = ServerProcess::start(&["--proxy-protocol"]);
    let mut conn = connect_with(&server, &proxy_header([198, 51, 100, 7], 40000), "dana").await;
    assert!(matches!(next_frame(&mut conn).await, Frame::Welcome(_)));
    let line = server.wait_for_log("name=dana");
    assert!(line.contains("peer=198.51.100.7:40000"), "{line}");
}

#[tokio::test]
async fn a_connection_without_a_header_is_refused_and_logged() {
    let server = ServerProcess::start(&["--proxy-protocol"]);
    let mut conn = connect_with(&server, b"", "eve").await;
    let next = tokio::time::timeout(common::PATIENCE, conn.next())
        .await
        .expect("closed in time");
    assert!(
        next.is_none() || next.unwrap().is_err(),
        "nothing but the end"
    );
    let line = server.wait_for_log("connection refused");
    assert!(line.contains("no PROXY protocol v2 header"), "{line}");
}

#[tokio::test]
async fn the_per_address_limit_counts_real_addresses() {
    let server = ServerProcess::start(&["--proxy-protocol", "--max-connections-per-ip", "1"]);
    let header = proxy_header([203, 0, 113, 5], 1111);
    let mut first = connect_with(&server, &header, "one").await;
    assert!(matches!(next_frame(&mut first).await, Frame::Welcome(_)));
    // The same client again: over its limit, though every connection
    // comes from the same balancer.
    let mut second = connect_with(&server, &header, "two").await;
    match next_frame(&mut second).await {
        Frame::Close(c) => assert_eq!(c.code, CloseCode::POLICY_VIOLATION),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Another client through the same balancer is welcome.
    let mut other = connect_with(&server, &proxy_header([203, 0, 113, 6], 2222), "three").await;
    assert!(matches!(next_frame(&mut other).await, Frame::Welcome(_)));
}

/// A balancer's health check (a PROXY `LOCAL` connection that says HELLO
/// and CLOSE) is served but logged at debug level, and counted in
/// `rust_tcp_health_checks_total`; a client's connection is logged as ever.
#[tokio::test]
async fn health_checks_are_counted_not_logged_at_info() {
    use futures::SinkExt;
    use rust_tcp::protocol::v2::CodeReason;
    let port = common::free_port();
    let metrics = format!("127.0.0.1:{port}");
    let server = ServerProcess::start(&["--proxy-protocol", "--metrics-addr", &metrics]);
    let local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    for _ in 0..3 {
        let mut check = connect_with(&server, &local, "haproxy-check").await;
        assert!(matches!(next_frame(&mut check).await, Frame::Welcome(_)));
        check
            .send(Frame::Close(CodeReason::new(CloseCode::NORMAL, "ok")))
            .await
            .unwrap();
        assert!(matches!(next_frame(&mut check).await, Frame::Close(_)));
    }
    let mut client = connect_with(&server, &proxy_header([198, 51, 100, 8], 4000), "real").await;
    assert!(matches!(next_frame(&mut client).await, Frame::Welcome(_)));
    server.wait_for_log("name=real");
    let log = server.log_so_far();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("connection opened"))
            .count(),
        1,
        "only the client's connection is logged: {log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("haproxy-check")), "{log:?}");
    let scraped = common::scrape_metrics(port);
    assert!(
        scraped.contains("rust_tcp_health_checks_total 3"),
        "{scraped}"
    );
}
