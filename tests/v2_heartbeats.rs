//! Heartbeats over real sockets, both ways: a silent client is pinged and
//! dropped by the server, a silent server by the client. (The rule itself
//! is tested on a made-up clock in the session's unit tests.)

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use rust_tcp::protocol::v2::{CloseCode, Frame, V2Codec, Welcome};
use rust_tcp::{Client, ClientError, ServerConfig};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

#[tokio::test]
async fn a_silent_client_is_pinged_then_dropped() {
    let (collect, _rx) = Collect::new();
    let config = ServerConfig::default().heartbeat(Duration::from_millis(100));
    let server = InProcessServer::start(collect, config).await;
    let mut raw = raw_v2(&server.addr, "silent").await;
    assert!(matches!(next_frame(&mut raw).await, Frame::Ping(_)));
    // We never answer; after three intervals of silence the server closes.
    loop {
        match next_frame(&mut raw).await {
            Frame::Ping(_) => continue,
            Frame::Close(c) => {
                assert_eq!(c.code, CloseCode::HEARTBEAT_TIMEOUT, "{c}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // A client that answers pings (the library does) stays connected.
    let client = Client::connect(&server.addr).await.unwrap();
    let mut beats = tokio::time::interval(Duration::from_millis(120));
    for _ in 0..5 {
        beats.tick().await;
    }
    assert_eq!(client.request("alive").await.unwrap(), "alive");
    client.close().await.unwrap();
    server.shut_down().await;
}

#[tokio::test]
async fn a_silent_server_is_pinged_then_given_up() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut f = Framed::new(s, V2Codec::default());
        assert!(matches!(f.next().await, Some(Ok(Frame::Hello(_)))));
        f.send(Frame::Welcome(Welcome {
            version: 2,
            max_frame_size: 1 << 20,
            heartbeat_ms: 100,
            server_name: "mute".into(),
            extensions: Vec::new(),
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
