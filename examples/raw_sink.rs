//! The physical limit for `scripts/bench.sh`: a TCP server that reads bytes
//! and throws them away, doing just enough of the protocol for `client
//! bench` to run against it unchanged.
//!
//! It answers a v2 HELLO with a fixed WELCOME (no heartbeats), then discards
//! everything without parsing frames; it notices the end by the bytes the
//! generator always sends last (its v2 CLOSE, or the v1 `exit` message) at
//! the end of a read, and answers as a server would. It is not a server for
//! anything but measuring: it knows nothing of frames in between.
//!
//! `cargo run --release --example raw_sink -- 127.0.0.1:9000`

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `client bench`'s last v2 frame: CLOSE 1000 "client done".
const V2_CLOSE: &[u8] = b"\x02\x0a\x00\x00\x00\x0d\x03\xe8client done";
/// The v1 `exit` message.
const V1_EXIT: &[u8] = b"\x01\x00\x04exit";
/// WELCOME version 2, max_frame 16 MiB, heartbeat 0, name "sink".
const WELCOME: &[u8] = b"\x02\x02\x00\x00\x00\x0f\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x04sink";
/// CLOSE 1000 "closed".
const CLOSE_ACK: &[u8] = b"\x02\x0a\x00\x00\x00\x08\x03\xe8closed";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .map_err(|e| std::io::Error::other(format!("bad address: {e}")))?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("raw sink listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = sink(stream).await {
                eprintln!("connection: {e}");
            }
        });
    }
}

async fn sink(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 256 * 1024];
    // The last bytes seen, so an ending split across reads is still noticed.
    let mut tail: Vec<u8> = Vec::with_capacity(64);
    let mut welcomed = false;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let got = &buf[..n];
        if !welcomed && got[0] == 2 {
            stream.write_all(WELCOME).await?;
        }
        welcomed = true;
        let keep = got.len().min(32);
        tail.extend_from_slice(&got[got.len() - keep..]);
        if tail.len() > 32 {
            tail.drain(..tail.len() - 32);
        }
        if tail.ends_with(V2_CLOSE) {
            stream.write_all(CLOSE_ACK).await?;
            return Ok(());
        }
        if tail.ends_with(V1_EXIT) {
            return Ok(());
        }
    }
}
