//! Ending v2 sessions against a real server: the close handshake loses
//! nothing, nothing new goes out once it has begun (spec 3.10), and a
//! go-away lets clients finish.

mod common;

use bytes::Bytes;
use common::*;
use rust_tcp::protocol::Message;
use rust_tcp::protocol::v2::{CloseCode, SendError};
use rust_tcp::{
    Client, ClientError, Handler, PeerInfo, PushError, Pushed, Pusher, Responder, ServerConfig,
    Service,
};
use std::time::Duration;
use tokio::sync::mpsc;

#[tokio::test]
async fn the_close_handshake_loses_no_message() {
    let (collect, mut rx) = Collect::new();
    let server = InProcessServer::start(collect, ServerConfig::default()).await;
    let client = Client::connect_with(&server.addr, named("bulk"))
        .await
        .unwrap();
    for i in 0..10_000 {
        client.send_text(format!("m{i}")).await.unwrap();
    }
    client.close().await.unwrap();
    // The acknowledgement came after the server processed everything before
    // the CLOSE, so all 10,000 are already there.
    for i in 0..10_000 {
        let (from, text) = rx
            .try_recv()
            .expect("processed before the close was acknowledged");
        assert_eq!((from.as_str(), text), ("bulk", format!("m{i}")));
    }
    assert!(rx.try_recv().is_err());
    server.shut_down().await;
}

#[tokio::test]
async fn go_away_lets_clients_finish_and_close() {
    let (collect, _rx) = Collect::new();
    let config = ServerConfig::default().shutdown_grace(Duration::from_secs(20));
    let server = InProcessServer::start(collect, config).await;
    let client = Client::connect(&server.addr).await.unwrap();
    let mut incoming = client.incoming().unwrap();
    assert_eq!(client.request("before").await.unwrap(), "before");
    server.stop.cancel();
    let pushed = tokio::time::timeout(PATIENCE, incoming.recv())
        .await
        .unwrap();
    assert!(
        matches!(pushed, Some(Pushed::GoAway(ref g)) if g.code == CloseCode::GOING_AWAY),
        "{pushed:?}"
    );
    assert!(matches!(
        client.request("after").await,
        Err(ClientError::Refused(SendError::GoingAway))
    ));
    client.send_text("last words").await.unwrap();
    client.close().await.unwrap();
    tokio::time::timeout(PATIENCE, server.running)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn chat_clients_leave_politely_when_the_server_goes_away() {
    let server = ServerProcess::start(&["--broadcast"]);
    let mut carol = ChatProcess::start_with(&server, "carol", &["--no-reconnect"]);
    let status = server.stop_with("TERM");
    assert_eq!(status.code(), Some(0));
    let line = carol.next_line();
    assert!(line.starts_with("* server is going away"), "{line}");
    // Its stdin is still open: it left because the server asked it to.
    let exit = carol.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    drop(carol.stdin.take());
}

/// Hands the test each connection's pusher and holds each request's
/// responder, so the test decides when the close handshake may finish.
struct Held(
    mpsc::UnboundedSender<Pusher>,
    mpsc::UnboundedSender<Responder>,
);
struct HeldHandler(mpsc::UnboundedSender<Responder>);
impl Service for Held {
    type Handler = HeldHandler;
    fn connect(&self, peer: &PeerInfo) -> HeldHandler {
        let _ = self.0.send(peer.pusher.clone());
        HeldHandler(self.1.clone())
    }
}
impl Handler for HeldHandler {
    async fn on_text(&mut self, _: Message) {}
    async fn on_request(&mut self, _: Bytes, responder: Responder) {
        let _ = self.0.send(responder);
    }
}

/// A broadcast (any push from another task) to a client whose CLOSE the
/// server has received, while the server is still draining its requests,
/// is refused by that connection's session, and the client sees nothing
/// after its CLOSE but the answer it was owed.
#[tokio::test]
async fn a_broadcast_to_a_closing_client_is_refused() {
    let (pushers, mut pusher_rx) = mpsc::unbounded_channel();
    let (responders, mut responder_rx) = mpsc::unbounded_channel();
    let server = InProcessServer::start(Held(pushers, responders), ServerConfig::default()).await;
    let client = Client::connect(&server.addr).await.unwrap();
    let mut incoming = client.incoming().unwrap();
    let pusher = pusher_rx.recv().await.unwrap();
    // One request in flight keeps the server draining after the CLOSE.
    let request = tokio::spawn({
        let client = client.clone();
        async move { client.request("owed").await }
    });
    let responder = responder_rx.recv().await.unwrap();
    let closing = tokio::spawn({
        let client = client.clone();
        async move { client.close().await }
    });
    // Pushes go through until the CLOSE has arrived; then they are refused
    // as "closing" (not merely failed because the connection is gone: the
    // responder is still held, so the server is draining).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut delivered = 0;
    let refusal = loop {
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        match pusher.send_text(format!("broadcast {delivered}")) {
            Ok(()) => delivered += 1,
            Err(e) => break e,
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(refusal, PushError::Refused(SendError::Closing));
    assert!(
        !closing.is_finished(),
        "the close waits for the answer it is owed"
    );
    // The answer to the request sent before the CLOSE still goes out.
    responder.respond("paid").unwrap();
    assert_eq!(request.await.unwrap().unwrap(), "paid");
    closing.await.unwrap().unwrap();
    for i in 0..delivered {
        let pushed = incoming.recv().await;
        assert_eq!(
            pushed,
            Some(Pushed::Text(Message::new(format!("broadcast {i}"))))
        );
    }
    assert_eq!(incoming.recv().await, None, "nothing after the refusal");
    // After the end, the session refuses everything.
    assert_eq!(
        pusher.send_text("too late"),
        Err(PushError::Refused(SendError::Closed))
    );
    server.shut_down().await;
}

/// The client's own way out goes through its session too: once it has
/// sent CLOSE nothing more is sent, and it says so with a typed error.
#[tokio::test]
async fn nothing_is_sent_after_the_clients_close() {
    let (collect, _rx) = Collect::new();
    let server = InProcessServer::start(collect, ServerConfig::default()).await;
    let client = Client::connect(&server.addr).await.unwrap();
    client.close().await.unwrap();
    for result in [
        client.send_text("late").await,
        client.send_binary(vec![1, 2]).await,
        client.request("late").await.map(|_| ()),
    ] {
        assert!(
            matches!(
                result,
                Err(ClientError::Refused(SendError::Closed | SendError::Closing))
                    | Err(ClientError::Closed { .. })
            ),
            "{result:?}"
        );
    }
    let _ = Duration::ZERO;
    server.shut_down().await;
}
