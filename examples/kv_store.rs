//! Your protocol in 40 lines: a shared key-value store on `rust_tcp::typed`.
//!
//! The protocol is a few Rust types: requests `Get`, `Set`, `Watch`;
//! responses `Value`, `Done`; an event `Changed` pushed to every watcher;
//! its own error `NoSuchKey`. Everything else is the library's job: the
//! handshake that negotiates "kv" and its version, framing, request ids,
//! encoding (MessagePack), the close handshake, slow clients.
//!
//! Watchers are kept per connection, not per client name: two clients with
//! the same name both hear every change, and one leaving removes only its
//! own watch (a push to a closed connection fails, and it is dropped).
//!
//! Run it with `cargo run --example kv_store`: it starts the server on a
//! free port, runs two clients against it, and prints what they see. With
//! `-- --serve HOST:PORT [--ws-addr HOST:PORT]` it only serves (port 0
//! picks a free one; the addresses are printed as `listening on ADDR`)
//! until Ctrl-C or SIGTERM, for clients in other languages (the Python and
//! JavaScript clients' tests use it; the second address is for WebSockets).

use rust_tcp::typed::{
    CallError, Context, Protocol, Typed, TypedClient, TypedHandler, TypedPushed, TypedPusher,
    TypedService,
};
use rust_tcp::{ClientConfig, Server, ServerConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

// ---- the protocol ----

/// The key-value protocol, version 1.
pub struct Kv;

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Get { key: String },
    Set { key: String, value: String },
    Watch,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Response {
    Value(String),
    Done,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Event {
    Changed { key: String, value: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum KvError {
    NoSuchKey(String),
}

impl Protocol for Kv {
    const NAME: &'static str = "kv";
    const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
    type Request = Request;
    type Response = Response;
    type Error = KvError;
    type Message = ();
    type Event = Event;
    type Item = ();
}

// ---- the server ----

/// What every connection shares: the data, and one pusher per watching
/// connection.
#[derive(Default, Clone)]
struct Store {
    data: Arc<Mutex<HashMap<String, String>>>,
    watchers: Arc<Mutex<Vec<TypedPusher<Kv>>>>,
}

impl TypedService<Kv> for Store {
    type Handler = Store;
    fn connect(&self, _: &Context<Kv>) -> Store {
        self.clone()
    }
}

impl TypedHandler<Kv> for Store {
    async fn call(&self, request: Request, context: &Context<Kv>) -> Result<Response, KvError> {
        match request {
            Request::Get { key } => match self.data.lock().unwrap().get(&key) {
                Some(value) => Ok(Response::Value(value.clone())),
                None => Err(KvError::NoSuchKey(key)),
            },
            Request::Set { key, value } => {
                self.data.lock().unwrap().insert(key.clone(), value.clone());
                let event = Event::Changed { key, value };
                // A watcher that is gone (or not reading) drops out.
                self.watchers
                    .lock()
                    .unwrap()
                    .retain(|w| w.send(&event).is_ok());
                Ok(Response::Done)
            }
            Request::Watch => {
                self.watchers.lock().unwrap().push(context.pusher.clone());
                Ok(Response::Done)
            }
        }
    }
}

// ---- a demonstration ----

/// Starts the store, has a watcher and a writer talk to it, and returns
/// what they saw, one line each.
pub async fn demo() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let config = ServerConfig::default().app_protocol(Kv::app_protocol());
    let server = Server::bind("127.0.0.1:0", config).await?;
    let addr = server.local_addr().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(Typed::new(Store::default()), async {
        let _ = stopped.await;
    }));

    let mut seen = Vec::new();
    let watcher =
        TypedClient::<Kv>::connect(&addr, ClientConfig::default().name("watcher")).await?;
    let mut events = watcher.events().expect("first use");
    watcher.call(&Request::Watch).await?;
    let writer = TypedClient::<Kv>::connect(&addr, ClientConfig::default().name("writer")).await?;
    let set = Request::Set {
        key: "colour".into(),
        value: "blue".into(),
    };
    seen.push(format!("writer: {set:?} -> {:?}", writer.call(&set).await?));
    if let Some(TypedPushed::Event(event)) = events.recv().await {
        seen.push(format!("watcher: pushed {event:?}"));
    }
    for key in ["colour", "size"] {
        let answer = match watcher.call(&Request::Get { key: key.into() }).await {
            Ok(response) => format!("{response:?}"),
            Err(CallError::Remote(error)) => format!("error {error:?}"),
            Err(other) => return Err(other.into()),
        };
        seen.push(format!("watcher: Get {key} -> {answer}"));
    }
    writer.close().await?;
    watcher.close().await?;
    let _ = stop.send(());
    running.await?;
    Ok(seen)
}

/// Serves the store on `addr` (and WebSockets on `ws_addr`, for browsers)
/// until Ctrl-C (SIGTERM ends the process).
#[allow(dead_code)] // run by `main`, not by the test that includes this file
async fn serve(addr: &str, ws_addr: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ServerConfig::default().app_protocol(Kv::app_protocol());
    if let Some(ws_addr) = ws_addr {
        config = config.websocket(rust_tcp::WebSocketConfig::new(ws_addr).javascript_client());
    }
    let server = Server::bind(addr, config).await?;
    println!("listening on {}", server.local_addr());
    if let Some(ws) = server.websocket_addr() {
        println!("listening for WebSockets on ws://{ws}/");
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    server
        // Reflection on: `client describe` and `client call` read the
        // schema from the running server.
        .run(Typed::new(Store::default()).reflection()?, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}

#[allow(dead_code)] // run by `cargo run --example`, not by the test that includes this file
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {}
        [flag] if flag == "--schema" => {
            println!("{}", rust_tcp::typed::Schema::of::<Kv>()?.to_json());
            return Ok(());
        }
        [flag, addr] if flag == "--serve" => return serve(addr, None).await,
        [flag, addr, ws, ws_addr] if flag == "--serve" && ws == "--ws-addr" => {
            return serve(addr, Some(ws_addr)).await;
        }
        _ => {
            return Err(
                "usage: kv_store [--schema | --serve HOST:PORT [--ws-addr HOST:PORT]]".into(),
            );
        }
    }
    for line in demo().await? {
        println!("{line}");
    }
    Ok(())
}
