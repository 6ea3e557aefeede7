//! The library `Client` against scripted servers: what it does when the
//! server speaks another version, or the caller misconfigures it.

mod common;

use rust_tcp::protocol::unsupported_version_reply;
use rust_tcp::{Client, ClientConfig, ClientError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

#[tokio::test]
async fn a_server_of_other_versions_is_reported_from_the_frozen_reply() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut reply = unsupported_version_reply(2).to_vec();
        reply[1] = 1; // pretend to speak only v1
        reply.remove(3);
        s.write_all(&reply).await.unwrap();
    });
    match Client::connect(&addr).await.unwrap_err() {
        ClientError::UnsupportedVersion { versions, reason } => {
            assert_eq!(versions, [1]);
            assert!(reason.contains("unsupported version 2"), "{reason}");
        }
        other => panic!("expected UnsupportedVersion, got {other}"),
    }
}

#[tokio::test]
async fn an_invalid_name_is_refused_before_connecting() {
    // Nothing listens here; the name is checked first.
    // The protocol's own name rule, the one the server applies.
    for name in [String::new(), "n".repeat(65), "bad\nname".into()] {
        let config = ClientConfig::default().name(name.clone());
        assert!(config.validate().is_err(), "{name:?}");
        let err = Client::connect_with("127.0.0.1:1", config)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::InvalidConfig(_)), "{err}");
    }
    assert!(
        ClientConfig::default()
            .name("n".repeat(64))
            .validate()
            .is_ok()
    );
}
