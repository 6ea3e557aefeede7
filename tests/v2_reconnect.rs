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
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
}

/// `client chat --max-reconnect-attempts 2`: each failed attempt is shown,
/// and after the last it gives up with exit status 1 (not a silent 0).
#[test]
fn chat_shows_failed_attempts_and_gives_up_when_told() {
    let server = ServerProcess::start(&["--broadcast"]);
    let chat =
        common::ChatProcess::start_with(&server, "quitter", &["--max-reconnect-attempts", "2"]);
    let addr = server.addr;
    server.stop_with("KILL");
    // Held (bound, not listening: connecting is refused), so that no other
    // test's server is given this port while the chat retries it.
    let hold = tokio::net::TcpSocket::new_v4().unwrap();
    hold.set_reuseaddr(true).unwrap();
    hold.bind(addr).unwrap();
    chat.wait_for_notice("reconnecting");
    chat.wait_for_notice("reconnect attempt 1 failed: cannot connect");
    let status = chat.wait_for_exit();
    assert_eq!(status.code(), Some(1));
}

/// On GOAWAY a reconnecting chat moves to the new server and closes the old
/// connection with a proper close handshake, instead of leaving the old
/// server to hold it until its grace period runs out.
#[test]
fn chat_closes_the_old_connection_after_moving_on() {
    let old = ServerProcess::start(&[
        "--broadcast",
        "--shutdown-grace-secs",
        "60",
        "--name",
        "old",
    ]);
    let addr = old.addr_arg();
    let chat = common::ChatProcess::start(&old, "mover");
    old.signal("TERM");
    old.wait_for_log("stopped accepting");
    let new = ServerProcess::start_on(&addr, &["--broadcast", "--name", "new"]);
    chat.wait_for_notice("reconnected to new");
    new.wait_for_log("name=mover");
    // The old server hears a CLOSE and completes the handshake; it need not
    // wait out its 60-second grace period.
    old.wait_for_log("connection closed: close handshake complete");
    let status = old.stop_with("TERM");
    assert!(status.success(), "{status:?}");
    assert!(chat.finish().success());
}
