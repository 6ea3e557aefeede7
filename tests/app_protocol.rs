//! The application protocol negotiated in the handshake (spec 3.3.2), with
//! the library on both ends: the highest common version and the client's
//! first common encoding are chosen and both sides see them; a mismatch is
//! refused before any message with a CLOSE naming both sides; untyped
//! clients are still served.

mod common;

use common::*;
use rust_tcp::protocol::v2::{AppChoice, AppProtocol, CloseCode, Encoding};
use rust_tcp::{Client, ClientError, ServerConfig};

fn kv_server() -> ServerConfig {
    ServerConfig::default().app_protocol(
        AppProtocol::new("kv", 2..=3).encodings(vec![Encoding::MessagePack, Encoding::Postcard]),
    )
}

async fn ask(addr: &str, protocol: AppProtocol) -> Result<Client, ClientError> {
    Client::connect_with(addr, named("typed").app_protocol(Some(protocol))).await
}

#[tokio::test]
async fn both_sides_see_the_highest_common_version_and_the_clients_encoding() {
    let (admitted, seen) = Admitted::new();
    let server = InProcessServer::start(admitted, kv_server()).await;
    let client = ask(
        &server.addr,
        AppProtocol::new("kv", 1..=4).encodings(vec![Encoding::Postcard, Encoding::MessagePack]),
    )
    .await
    .unwrap();
    let choice = client.app_protocol().expect("a choice");
    assert_eq!(
        (choice.name.as_str(), choice.version, choice.encoding),
        ("kv", 3, Encoding::Postcard)
    );
    let peer = seen.recv_timeout(PATIENCE).unwrap();
    assert_eq!(peer.app_protocol, Some(choice));
    client.close().await.unwrap();
    server.shut_down().await;
}

async fn refusal(addr: &str, protocol: AppProtocol) -> String {
    match ask(addr, protocol).await {
        Err(ClientError::HandshakeRefused(c)) => {
            assert_eq!(c.code, CloseCode::HANDSHAKE_REFUSED);
            c.reason
        }
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got a session"),
    }
}

#[tokio::test]
async fn a_mismatch_is_refused_with_both_sides_named() {
    let (admitted, seen) = Admitted::new();
    let server = InProcessServer::start(admitted, kv_server()).await;
    assert_eq!(
        refusal(&server.addr, AppProtocol::new("kv", 1..=1)).await,
        "server speaks kv 2-3, client kv 1"
    );
    assert_eq!(
        refusal(&server.addr, AppProtocol::new("chat", 1..=1)).await,
        "server speaks kv 2-3, client asks for chat 1"
    );
    // Refused before any message: the service never saw them.
    assert!(seen.try_recv().is_err());
    server.shut_down().await;
}

#[tokio::test]
async fn an_untyped_client_is_served_untyped() {
    let (admitted, seen) = Admitted::new();
    let server = InProcessServer::start(admitted, kv_server()).await;
    let client = Client::connect_with(&server.addr, named("plain"))
        .await
        .unwrap();
    assert_eq!(client.app_protocol(), None);
    assert_eq!(seen.recv_timeout(PATIENCE).unwrap().app_protocol, None);
    client.close().await.unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn a_typed_client_refuses_a_server_without_its_protocol() {
    let (admitted, _seen) = Admitted::new();
    let server = InProcessServer::start(admitted, ServerConfig::default()).await;
    match ask(&server.addr, AppProtocol::new("kv", 1..=1)).await {
        Err(ClientError::Protocol { code, reason }) => {
            assert_eq!(code, CloseCode::HANDSHAKE_REFUSED);
            assert!(
                reason.contains("the server speaks no application protocol; we asked for kv"),
                "{reason}"
            );
        }
        other => panic!("expected the client to refuse, got {:?}", other.map(|_| ())),
    }
    server.shut_down().await;
}

#[test]
fn choices_print_for_logs() {
    let choice = AppProtocol::new("kv", 1..=2)
        .negotiate(&AppProtocol::new("kv", 1..=2))
        .unwrap();
    let shown: AppChoice = choice;
    assert_eq!(shown.to_string(), "kv 2 (msgpack)");
}

#[tokio::test]
async fn no_common_encoding_is_refused_naming_both() {
    let (admitted, _seen) = Admitted::new();
    let config = ServerConfig::default().app_protocol(AppProtocol::new("kv", 1..=1));
    let server = InProcessServer::start(admitted, config).await;
    let postcard_only = AppProtocol::new("kv", 1..=1).encodings(vec![Encoding::Postcard]);
    assert_eq!(
        refusal(&server.addr, postcard_only).await,
        "no common encoding: server speaks msgpack, client postcard"
    );
    server.shut_down().await;
}
