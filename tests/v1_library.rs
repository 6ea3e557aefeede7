//! The library's `Server` and `Client`, in process, over real TCP.

mod common;

use common::{Collect, InProcessServer};
use rust_tcp::{Client, ClientConfig, ClientError, ProtocolVersion, ServerConfig};

/// Forwards every text message to the test, tagged with its peer.
async fn v1_client(addr: &str) -> Client {
    let config = ClientConfig::default().version(ProtocolVersion::V1);
    Client::connect_with(addr, config).await.unwrap()
}

#[tokio::test]
async fn a_client_delivers_every_message_before_close_returns() {
    let (collect, mut rx) = Collect::new();
    let server = InProcessServer::start(collect, ServerConfig::default()).await;
    let addr = server.addr.clone();

    let client = v1_client(&addr).await;
    for i in 0..10_000 {
        client.send_text(format!("message {i}")).await.unwrap();
    }
    client.close().await.unwrap();

    // `close` returned, so the server has read them all: they are queued.
    for i in 0..10_000 {
        let (_, text) = rx.try_recv().expect("message delivered before close");
        assert_eq!(text, format!("message {i}"));
    }
    server.shut_down().await;
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_nothing_is_queued() {
    let (collect, mut rx) = Collect::new();
    let server = InProcessServer::start(collect, ServerConfig::default()).await;
    let addr = server.addr.clone();

    let client = v1_client(&addr).await;
    let err = client.send_text("x".repeat(65536)).await.unwrap_err();
    assert!(matches!(err, ClientError::Encode(_)), "{err}");
    client.send_text("small").await.unwrap();
    client.close().await.unwrap();
    assert_eq!(rx.try_recv().unwrap().1, "small");
    assert!(rx.try_recv().is_err());
    server.shut_down().await;
}

#[tokio::test]
async fn connecting_to_nothing_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Client::connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

/// Counts its connection's messages and reports the count from its
/// `on_close`, after every message was handed over.
struct Counting(tokio::sync::mpsc::UnboundedSender<usize>);
struct CountingHandler(tokio::sync::mpsc::UnboundedSender<usize>, usize);

impl rust_tcp::Service for Counting {
    type Handler = CountingHandler;
    fn connect(&self, _: &rust_tcp::PeerInfo) -> CountingHandler {
        CountingHandler(self.0.clone(), 0)
    }
}

impl rust_tcp::Handler for CountingHandler {
    async fn on_text(&mut self, _: rust_tcp::Message) {
        self.1 += 1;
    }

    async fn on_close(&mut self) {
        tokio::task::yield_now().await;
        let _ = self.0.send(self.1);
    }
}

#[tokio::test]
async fn the_close_hook_runs_after_every_message_on_v1_and_v2() {
    let (tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    let server = InProcessServer::start(Counting(tx), ServerConfig::default()).await;
    for version in [ProtocolVersion::V1, ProtocolVersion::V2] {
        let config = ClientConfig::default().version(version);
        let client = Client::connect_with(&server.addr, config).await.unwrap();
        for i in 0..100 {
            client.send_text(format!("message {i}")).await.unwrap();
        }
        client.close().await.unwrap();
        let count = tokio::time::timeout(common::PATIENCE, closed.recv())
            .await
            .expect("on_close ran")
            .unwrap();
        assert_eq!(count, 100, "{version:?}");
    }
    server.shut_down().await;
}
