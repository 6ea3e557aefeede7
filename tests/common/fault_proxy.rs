//! A TCP proxy on loopback that breaks what it carries on purpose: each
//! connection it forwards is cut after a random number of bytes in one
//! direction (so inside a frame, between frames, in the handshake or in a
//! replay: wherever that byte falls), and a random share of chunks is held
//! back a little first (delays and stalls). Cuts are a reset or an orderly
//! close, at random. Seeded, so a failing run can be repeated.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a proxy breaks connections.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Each connection is cut after 0 to this many bytes (either way).
    pub max_bytes_before_cut: u64,
    /// One chunk in this many waits `stall` before it is forwarded.
    pub stall_one_in: u64,
    pub stall: Duration,
    pub seed: u64,
}

/// The proxy: listening on `addr`, forwarding to a target, counting cuts.
pub struct FaultProxy {
    pub addr: String,
    /// Set: new connections are no longer cut (a calm end to a run).
    calm: Arc<std::sync::atomic::AtomicBool>,
    cuts: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// A small, seeded generator (xorshift): the faults need no more.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 { 0 } else { self.0 % n }
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `target`.
    pub async fn start(target: &str, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let target = target.to_owned();
        let cuts = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let calm = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let (cuts, connections, calm) = (cuts.clone(), connections.clone(), calm.clone());
            async move {
                let mut random = Random(faults.seed | 1);
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    let Ok(server) = TcpStream::connect(&target).await else {
                        continue;
                    };
                    connections.fetch_add(1, Ordering::Relaxed);
                    let budget = match calm.load(Ordering::Relaxed) {
                        true => u64::MAX,
                        false => random.below(faults.max_bytes_before_cut + 1),
                    };
                    let seed = random.below(u64::MAX);
                    let reset = random.below(2) == 0;
                    let (cuts, calm) = (cuts.clone(), calm.clone());
                    tokio::spawn(async move {
                        if forward(client, server, budget, faults, seed, reset, &calm).await {
                            cuts.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
        });
        FaultProxy {
            addr,
            calm,
            cuts,
            connections,
            task,
        }
    }

    /// No more cuts, on the connections open now and on new ones.
    pub fn calm_down(&self) {
        self.calm.store(true, Ordering::Relaxed);
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }

    /// Connections forwarded so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards both ways until `budget` bytes have passed in all (then cuts:
/// `true`, unless the proxy has calmed down) or either side ends (`false`).
async fn forward(
    client: TcpStream,
    server: TcpStream,
    budget: u64,
    faults: Faults,
    seed: u64,
    reset: bool,
    calm: &std::sync::atomic::AtomicBool,
) -> bool {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut random = Random(seed | 1);
    let mut left = budget;
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let cut = loop {
        let (n, to_server) = tokio::select! {
            n = client_read.read(&mut up) => (n, true),
            n = server_read.read(&mut down) => (n, false),
        };
        let n = match n {
            Ok(0) | Err(_) => break false,
            Ok(n) => n,
        };
        if random.below(faults.stall_one_in.max(1)) == 0 {
            tokio::time::sleep(faults.stall).await;
        }
        // Calmed down: nothing more is cut, on this connection either.
        if calm.load(Ordering::Relaxed) {
            left = u64::MAX;
        }
        let pass = (n as u64).min(left) as usize;
        let written = match to_server {
            true => server_write.write_all(&up[..pass]).await,
            false => client_write.write_all(&down[..pass]).await,
        };
        if written.is_err() {
            break false;
        }
        left -= pass as u64;
        if left == 0 {
            break true;
        }
    };
    if cut && reset {
        // A reset rather than a close: SO_LINGER 0 on both sockets. (The
        // deprecation is about a non-zero linger blocking on drop; a zero
        // one resets at once.)
        let client = client_read.reunite(client_write).unwrap();
        let server = server_read.reunite(server_write).unwrap();
        #[allow(deprecated)]
        let _ = (
            client.set_linger(Some(Duration::ZERO)),
            server.set_linger(Some(Duration::ZERO)),
        );
    }
    cut
}
