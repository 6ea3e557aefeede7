//! The library `Client` against scripted servers: what it does when the
//! server is silent, speaks another version, or the caller misconfigures it.

mod common;

use common::PATIENCE;
use futures::{SinkExt, StreamExt};
use rust_tcp::protocol::unsupported_version_reply;
use rust_tcp::protocol::v2::{CloseCode, Frame, V2Codec, Welcome};
use rust_tcp::service::{Client, ClientConfig, ClientError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

#[tokio::test]
async fn a_silent_server_is_pinged_then_given_up() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut f = Framed::new(s, V2Codec::default());
        assert!(matches!(f.next().await, Some(Ok(Frame::Hello(_)))));
        f.send(Frame::Welcome(Welcome {
            version: 2,
            max_frame_size: 1 << 20,
            heartbeat_ms: 100,
            server_name: "mute".into(),
        }))
        .await
        .unwrap();
        // Never answer; record what the client sends.
        let mut pings = 0;
        loop {
            match f.next().await {
                Some(Ok(Frame::Ping(_))) => pings += 1,
                Some(Ok(Frame::Close(c))) => return (pings, c.code),
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let client = Client::connect(&addr).await.unwrap();
    let (pings, code) = tokio::time::timeout(PATIENCE, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pings, 2, "pinged after one and two silent intervals");
    assert_eq!(code, CloseCode::HEARTBEAT_TIMEOUT);
    let err = client.request("anyone?").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Closed(ref why) if why.contains("heartbeat")),
        "{err}"
    );
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
    let config = ClientConfig {
        name: String::new(),
        ..ClientConfig::default()
    };
    let err = Client::connect_with("127.0.0.1:1", config)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidName(_)), "{err}");
}
