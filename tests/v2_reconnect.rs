//! A library `Client` with `ClientConfig::reconnect`: a lost connection is
//! replaced, the request that was in flight fails as interrupted (never
//! resent), and new requests go to the new connection. Against real
//! `server` processes on one fixed port.

mod common;

use common::{PATIENCE, ServerProcess, named};
use rust_tcp::{Client, ClientError, Pushed, Reconnect};
use std::time::Duration;

#[tokio::test]
async fn a_lost_connection_is_replaced_and_in_flight_requests_are_interrupted() {
    let first = ServerProcess::start(&["--name", "first"]);
    let addr = first.addr_arg();
    let config = named("rita")
        .reconnect(Some(
            Reconnect::default().max_delay(Duration::from_millis(200)),
        ))
        .request_timeout(Some(PATIENCE));
    let client = Client::connect_with(&addr, config).await.unwrap();
    let mut incoming = client.incoming().unwrap();
    assert_eq!(client.request("before").await.unwrap(), "before");

    // Frozen, the server cannot answer: the request stays in flight until
    // the connection is lost under it.
    first.signal("STOP");
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.request("in flight").await }
    });
    while client.pending_requests() == 0 {
        tokio::task::yield_now().await;
    }
    first.stop_with("KILL");
    match in_flight.await.unwrap() {
        Err(ClientError::Interrupted(why)) => assert!(!why.is_empty()),
        other => panic!("expected an interrupted request, got {other:?}"),
    }
    match tokio::time::timeout(PATIENCE, incoming.recv())
        .await
        .unwrap()
    {
        Some(Pushed::Disconnected(_)) => {}
        other => panic!("expected a disconnection notice, got {other:?}"),
    }

    // A new server on the same address: the client finds it by itself.
    let _second = ServerProcess::start_on(&addr, &["--name", "second"]);
    match tokio::time::timeout(PATIENCE, incoming.recv())
        .await
        .unwrap()
    {
        Some(Pushed::Reconnected { server_name }) => assert_eq!(server_name, "second"),
        other => panic!("expected a reconnection notice, got {other:?}"),
    }
    assert_eq!(client.server_name(), "second");
    assert_eq!(client.request("after").await.unwrap(), "after");
    client.close().await.unwrap();
}

#[tokio::test]
async fn without_reconnect_the_client_ends_with_its_connection() {
    let server = ServerProcess::start(&[]);
    let client = Client::connect_with(&server.addr_arg(), named("no-retry"))
        .await
        .unwrap();
    server.stop_with("KILL");
    let err = client.request("x").await.unwrap_err();
    assert!(matches!(err, ClientError::Closed(_)), "{err:?}");
}
