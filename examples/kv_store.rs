//! A small custom service on rust-tcp: a shared key-value store.
//!
//! Requests are `SET key value` (answered `OK`) and `GET key` (answered with
//! the value, or an error response). Every `SET` is also pushed to every
//! other connected client as `changed KEY`, so clients can watch the store.
//! Text messages are logged; everything else is the library's job: framing,
//! handshake, request ids, close handshake, slow clients.
//!
//! Run it with `cargo run --example kv_store`: it starts the server on a
//! free port, runs two clients against it, and prints what they see.

use bytes::Bytes;
use rust_tcp::protocol::Message;
use rust_tcp::{
    Client, ClientConfig, Handler, PeerInfo, Pushed, Pusher, Responder, Server, ServerConfig,
    Service,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// State shared by all connections: the data, and who to notify.
#[derive(Default)]
struct Shared {
    data: Mutex<HashMap<String, Bytes>>,
    watchers: Mutex<Vec<(String, Pusher)>>,
}

/// The service: what every connection's handler shares.
#[derive(Default, Clone)]
struct Store(Arc<Shared>);

impl Service for Store {
    type Handler = StoreHandler;

    fn connect(&self, peer: &PeerInfo) -> StoreHandler {
        self.0
            .watchers
            .lock()
            .unwrap()
            .push((peer.name.clone(), peer.pusher.clone()));
        StoreHandler {
            store: self.0.clone(),
            name: peer.name.clone(),
        }
    }
}

/// One connection.
struct StoreHandler {
    store: Arc<Shared>,
    name: String,
}

impl Handler for StoreHandler {
    async fn on_text(&mut self, message: Message) {
        println!("[{}] says {:?}", self.name, message.as_str());
    }

    async fn on_request(&mut self, payload: Bytes, responder: Responder) {
        let request = String::from_utf8_lossy(&payload).into_owned();
        let mut words = request.splitn(3, ' ');
        let answer = match (words.next(), words.next(), words.next()) {
            (Some("SET"), Some(key), Some(value)) => {
                let value = Bytes::copy_from_slice(value.as_bytes());
                self.store.data.lock().unwrap().insert(key.into(), value);
                for (name, pusher) in self.store.watchers.lock().unwrap().iter() {
                    if *name != self.name {
                        // A watcher that does not keep up is disconnected by
                        // the server; the store does not wait for it.
                        let _ = pusher.send_text(format!("changed {key}"));
                    }
                }
                Ok(Bytes::from_static(b"OK"))
            }
            (Some("GET"), Some(key), None) => {
                let data = self.store.data.lock().unwrap();
                data.get(key).cloned().ok_or(format!("no such key {key:?}"))
            }
            _ => Err(format!("unknown request {request:?}")),
        };
        let _ = match answer {
            Ok(value) => responder.respond(value),
            Err(reason) => responder.fail(reason),
        };
    }
}

impl Drop for StoreHandler {
    fn drop(&mut self) {
        self.store
            .watchers
            .lock()
            .unwrap()
            .retain(|(name, _)| *name != self.name);
    }
}

/// Starts the store on a free port, lets a writer and a watcher use it, and
/// returns what they saw, line by line.
pub async fn demo() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let server = Server::bind("127.0.0.1:0", ServerConfig::default()).await?;
    let addr = server.local_addr().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(server.run(Store::default(), stop.clone().cancelled_owned()));

    let connect = |name: &str| {
        let config = ClientConfig::default().name(name);
        Client::connect_with(&addr, config)
    };
    let watcher = connect("watcher").await?;
    let mut changes = watcher.incoming().expect("first call");
    let writer = connect("writer").await?;

    let mut seen = Vec::new();
    let ok = writer.request("SET colour blue").await?;
    seen.push(format!(
        "writer: SET colour blue -> {}",
        String::from_utf8_lossy(&ok)
    ));
    if let Some(Pushed::Text(change)) = changes.recv().await {
        seen.push(format!("watcher: pushed {change}"));
    }
    let value = watcher.request("GET colour").await?;
    seen.push(format!(
        "watcher: GET colour -> {}",
        String::from_utf8_lossy(&value)
    ));
    match watcher.request("GET size").await {
        Ok(v) => seen.push(format!("watcher: GET size -> {v:?}")),
        Err(e) => seen.push(format!("watcher: GET size -> {e}")),
    }
    writer.close().await?;
    watcher.close().await?;
    stop.cancel();
    running.await?;
    Ok(seen)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for line in demo().await? {
        println!("{line}");
    }
    Ok(())
}
