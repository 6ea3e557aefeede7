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
        f.send(Frame::Welcome(Welcome::new(2, 1 << 20, 100, "mute")))
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
        matches!(err, ClientError::Closed { ref reason, .. } if reason.contains("heartbeat")),
        "{err}"
    );
}

/// The WELCOME's interval for a HELLO that wishes for `wish_ms`, from a
/// `server` started with `extra`.
async fn granted(server: &ServerProcess, wish_ms: u32) -> u32 {
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut framed = Framed::new(stream, V2Codec::default());
    let hello = match hello("wisher") {
        Frame::Hello(mut h) => {
            h.heartbeat_ms = wish_ms;
            Frame::Hello(h)
        }
        _ => unreachable!(),
    };
    framed.send(hello).await.unwrap();
    match next_frame(&mut framed).await {
        Frame::Welcome(Welcome { heartbeat_ms, .. }) => heartbeat_ms,
        other => panic!("expected WELCOME, got {other:?}"),
    }
}

/// Spec 3.3: the client's wish is granted within the server's bounds
/// (`--heartbeat-min-secs` 1, `--heartbeat-max-secs` 600 by default); no
/// wish (0) gets the server's interval; a server with heartbeats off
/// grants none.
#[tokio::test]
async fn the_heartbeat_wish_is_granted_within_the_servers_bounds() {
    let server = ServerProcess::start(&[]);
    assert_eq!(granted(&server, 0).await, 30_000, "no wish: the default");
    assert_eq!(granted(&server, 5_000).await, 5_000, "a short wish");
    assert_eq!(granted(&server, 300_000).await, 300_000, "a long wish");
    assert_eq!(granted(&server, 100).await, 1_000, "below the minimum");
    assert_eq!(
        granted(&server, u32::MAX).await,
        600_000,
        "above the maximum"
    );
    let bounded =
        ServerProcess::start(&["--heartbeat-min-secs", "10", "--heartbeat-max-secs", "60"]);
    assert_eq!(granted(&bounded, 1_000).await, 10_000);
    assert_eq!(granted(&bounded, 3_600_000).await, 60_000);
    let off = ServerProcess::start(&["--heartbeat-secs", "0"]);
    assert_eq!(granted(&off, 5_000).await, 0, "heartbeats off for everyone");
    // The library client states its wish with `ClientConfig::heartbeat`.
    let client = Client::connect_with(
        &server.addr_arg(),
        named("phone").heartbeat(Some(Duration::from_secs(120))),
    )
    .await
    .unwrap();
    assert_eq!(client.request("ok").await.unwrap(), "ok");
    client.close().await.unwrap();
}
