//! A call's W3C `traceparent` is carried into the server's span: every log
//! line of the call's handler names the trace the client's call belongs
//! to, so one trace covers client and server. (Its own test binary: it
//! installs a global subscriber that captures what is logged.)

mod common;

use common::InProcessServer;
use rust_tcp::{Call, CallOptions, Client, Handler, Message, PeerInfo, ServerConfig, Service};
use std::sync::{Arc, Mutex};

/// Where the subscriber writes: kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Traced;
struct TracedHandler;
impl Service for Traced {
    type Handler = TracedHandler;
    fn connect(&self, _: &PeerInfo) -> TracedHandler {
        TracedHandler
    }
}
impl Handler for TracedHandler {
    async fn on_text(&mut self, _: Message) {}
    // Not an `async fn`: that would borrow `self`, and a call's future must
    // own what it uses ('static) to run in a task of its own.
    #[allow(clippy::manual_async_fn)]
    fn on_call(&mut self, call: Call) -> impl Future<Output = ()> + Send + 'static {
        async move {
            tracing::info!("handling the call");
            let _ = call.respond("done");
        }
    }
}

#[tokio::test]
async fn the_trace_id_of_a_traceparent_is_in_the_calls_span() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let server = InProcessServer::start(Traced, ServerConfig::default()).await;
    let client = Client::connect(&server.addr).await.unwrap();
    let options = CallOptions::new()
        .metadata(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .unwrap();
    assert_eq!(client.call("x", options).await.unwrap(), "done");
    client.close().await.unwrap();
    server.shut_down().await;
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("handling the call"))
        .unwrap_or_else(|| panic!("the handler's line was logged:\n{log}"));
    assert!(
        line.contains("call{id=0 trace_id=0af7651916cd43dd8448eb211c80319c}"),
        "{line}"
    );
}
