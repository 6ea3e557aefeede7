//! Allocations per request on the server, counted: a counting allocator
//! wraps the system's, and counts only on the server runtime's threads, so
//! the client driving the load in the same process is not in the figures.
//!
//!   cargo run --release --example alloc_count -- [request|text] [CONNECTIONS] [IN_FLIGHT] [N]
//!
//! Each connection sends N messages (REQUESTs of 32 bytes echoed by the
//! server, or one-way TEXTs of 32 bytes it drops), IN_FLIGHT at a time,
//! after a warm-up; then 3×N more. The steady state is the difference:
//! (allocations of the 3N window − those of the N window) / 2N per message,
//! so what every window pays once (the barrier that says the server has
//! handled everything) cancels out. Prints one JSON line.
//! `scripts/bench.sh` records it; issue 27 asks for none per request.
//! With `ALLOC_SIZES=1` the sizes allocated are printed too (stderr); with
//! `ALLOC_RESUME=1` the sessions are resumable (spec 3.14: each one keeps
//! what it sends for replay until acknowledged).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// The system allocator, counting what the server's threads ask of it.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the server runtime's threads when they start.
    static SERVER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Allocations by size (the last slot: 4 KiB and over), while `SIZES_ON`:
/// with `ALLOC_SIZES=1` the last window's are printed, which says what
/// allocates (a 512-byte buffer, a 24-byte node) without a profiler.
static SIZES: [AtomicU64; 4097] = [const { AtomicU64::new(0) }; 4097];
static SIZES_ON: AtomicBool = AtomicBool::new(false);

fn count(size: usize) {
    // `try_with`: a thread being torn down has no thread-locals left, and
    // its last frees must not panic inside the allocator.
    if SERVER_THREAD.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
        if SIZES_ON.load(Relaxed) {
            SIZES[size.min(4096)].fetch_add(1, Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's own pointer
// and layout, so `System`'s guarantees are the caller's. Counting touches
// only atomics and a const-initialised thread-local `Cell<bool>` (no
// allocation, no destructor), so it cannot re-enter the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's layout, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growth is an allocation as far as the request path goes.
        count(new_size);
        // SAFETY: `ptr` came from this allocator (hence `System`) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (hence `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Answers each request with its payload; drops text.
struct Echo;
struct EchoHandler;

impl rust_tcp::Service for Echo {
    type Handler = EchoHandler;
    fn connect(&self, _: &rust_tcp::PeerInfo) -> EchoHandler {
        EchoHandler
    }
}

impl rust_tcp::Handler for EchoHandler {
    async fn on_text(&mut self, _: rust_tcp::Message) {}
    async fn on_request(&mut self, payload: bytes::Bytes, responder: rust_tcp::Responder) {
        let _ = responder.respond(payload);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Request,
    Text,
}

/// Every connection sends `n` messages, `in_flight` at a time, then one
/// request that returns once the server has handled them all (a
/// connection's frames are handled in order).
async fn window(clients: &[Arc<rust_tcp::Client>], mode: Mode, in_flight: usize, n: usize) {
    let payload = bytes::Bytes::from_static(&[b'x'; 32]);
    let mut tasks = Vec::new();
    for client in clients {
        for lane in 0..in_flight {
            let (client, payload) = (client.clone(), payload.clone());
            let share = n / in_flight + usize::from(lane < n % in_flight);
            tasks.push(tokio::spawn(async move {
                for _ in 0..share {
                    match mode {
                        Mode::Request => {
                            client.request(payload.clone()).await.expect("echoed");
                        }
                        Mode::Text => {
                            let text = std::str::from_utf8(&payload).expect("ASCII");
                            client.send_text(text).await.expect("sent");
                        }
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("a sender");
    }
    for client in clients {
        client.request("sync").await.expect("the barrier");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        None | Some("request") => Mode::Request,
        Some("text") => Mode::Text,
        Some(other) => return Err(format!("unknown mode {other:?}: request or text").into()),
    };
    let number = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(match args.get(i) {
            Some(v) => v.parse().map_err(|_| format!("{v:?} is not a number"))?,
            None => default,
        })
    };
    let (connections, in_flight, n) = (number(1, 50)?, number(2, 16)?.max(1), number(3, 2_000)?);

    let sizes = std::env::var_os("ALLOC_SIZES").is_some();
    let resume = std::env::var_os("ALLOC_RESUME").is_some();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| SERVER_THREAD.with(|s| s.set(true)))
        .enable_all()
        .build()?;
    let config = rust_tcp::ServerConfig::default()
        .max_connection_rate_per_ip(0)
        .max_connections_per_ip(connections + 10);
    let server = server_rt.block_on(rust_tcp::Server::bind("127.0.0.1:0", config))?;
    let addr = server.local_addr().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = server_rt.spawn(server.run(Echo, stop.clone().cancelled_owned()));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let figures = client_rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..connections {
            let mut config = rust_tcp::ClientConfig::default();
            if resume {
                config = config.resume(Some(rust_tcp::protocol::v2::ResumeSettings::default()));
            }
            clients.push(Arc::new(
                rust_tcp::Client::connect_with(&addr, config).await?,
            ));
        }
        // Warm-up: buffers grown, queues at their working size.
        window(&clients, mode, in_flight, n).await;
        let before = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
        window(&clients, mode, in_flight, n).await;
        let middle = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
        SIZES_ON.store(sizes, Relaxed);
        window(&clients, mode, in_flight, 3 * n).await;
        SIZES_ON.store(false, Relaxed);
        let after = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
        for client in &clients {
            client.close().await?;
        }
        let extra = (2 * n * connections) as f64;
        let per = |i: usize| {
            let pick = |t: (u64, u64)| if i == 0 { t.0 } else { t.1 };
            (pick(after) - pick(middle)).saturating_sub(pick(middle) - pick(before)) as f64 / extra
        };
        Ok::<_, Box<dyn std::error::Error>>((per(0), per(1)))
    })?;
    stop.cancel();
    let _ = server_rt.block_on(running);
    println!(
        "{{\"mode\":\"{}\",\"connections\":{connections},\"in_flight\":{in_flight},\"per_connection\":{n},\"allocs_per_message\":{:.3},\"bytes_per_message\":{:.1}}}",
        if mode == Mode::Request {
            "request"
        } else {
            "text"
        },
        figures.0,
        figures.1
    );
    if sizes {
        // Per message of the 3N window (its fixed costs included).
        let messages = (3 * n * connections) as f64;
        for (size, count) in SIZES.iter().enumerate() {
            let count = count.load(Relaxed);
            if count as f64 >= messages / 100.0 {
                eprintln!(
                    "{size:>5} bytes: {:.3} per message",
                    count as f64 / messages
                );
            }
        }
    }
    Ok(())
}
