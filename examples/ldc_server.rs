//! What a user would write instead of rust-tcp, for `scripts/bench.sh`: a
//! server on tokio-util's `LengthDelimitedCodec` doing the same work as our
//! `server` (v1 and v2 framing, UTF-8 validation of text, printing or
//! counting, requests answered), and nothing more: no session rules, no
//! limits beyond the frame size, no heartbeats, no slow-consumer handling.
//!
//! `cargo run --release --example ldc_server -- 127.0.0.1:9000 [--sink]`
//!
//! Without `--sink` every text message is printed as `Message: "..."` on
//! stdout, batched per connection read the way a careful user would.

use bytes::{BufMut, BytesMut};
use futures::StreamExt;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

/// WELCOME version 2, max_frame 16 MiB, heartbeat 0, name "ldc".
const WELCOME: &[u8] = b"\x02\x02\x00\x00\x00\x0e\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x03ldc";
/// CLOSE 1000 "closed".
const CLOSE_ACK: &[u8] = b"\x02\x0a\x00\x00\x00\x08\x03\xe8closed";

type Out = Arc<Mutex<std::io::Stdout>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .map_err(|e| std::io::Error::other(format!("bad address: {e}")))?;
    let print = args.next().as_deref() != Some("--sink");
    let listener = TcpListener::bind(addr).await?;
    eprintln!(
        "LengthDelimitedCodec server listening on {}",
        listener.local_addr()?
    );
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    loop {
        let (stream, _) = listener.accept().await?;
        let out = print.then(|| out.clone());
        tokio::spawn(async move {
            if let Err(e) = serve(stream, out).await {
                eprintln!("connection: {e}");
            }
        });
    }
}

async fn serve(stream: TcpStream, out: Option<Out>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Ok(());
    }
    let v1 = first[0] == 1;
    let codec = if v1 {
        LengthDelimitedCodec::builder()
            .length_field_offset(1)
            .length_field_length(2)
            // The length counts the content only; keep the header in the frame.
            .length_adjustment(3)
            .num_skip(0)
            .new_codec()
    } else {
        LengthDelimitedCodec::builder()
            .length_field_offset(2)
            .length_field_length(4)
            .length_adjustment(6)
            .num_skip(0)
            .max_frame_length(16 * 1024 * 1024 + 6)
            .new_codec()
    };
    let header = if v1 { 3 } else { 6 };
    // The codec's encoder would add a length field of its own: replies are
    // whole frames already, written straight to the socket.
    let (read, mut write) = stream.into_split();
    let mut framed = FramedRead::new(read, codec);
    let mut replies = BytesMut::new();
    let mut lines = Vec::new();
    while let Some(frame) = framed.next().await {
        let frame = frame?;
        let (kind, payload) = if v1 {
            (0x03, &frame[header..])
        } else {
            (frame[1], &frame[header..])
        };
        match kind {
            0x01 => replies.put_slice(WELCOME),
            0x03 => {
                let text = std::str::from_utf8(payload).map_err(std::io::Error::other)?;
                if v1 && text == "exit" {
                    break;
                }
                if out.is_some() {
                    writeln!(lines, "Message: {text:?}")?;
                }
            }
            0x04 => {}
            0x05 if payload.len() >= 4 => {
                replies.put_slice(&[2, 6, 0, 0, 0, 5]);
                replies.put_slice(&payload[..4]);
                replies.put_u8(0);
            }
            0x0a => {
                replies.put_slice(CLOSE_ACK);
                break;
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "unexpected frame {other:#x}"
                )));
            }
        }
        // Nothing more buffered: hand over what this read produced.
        if framed.read_buffer().is_empty() {
            write.write_all(&replies).await?;
            replies.clear();
            if let Some(out) = &out
                && !lines.is_empty()
            {
                out.lock().expect("stdout lock").write_all(&lines)?;
                lines.clear();
            }
        }
    }
    write.write_all(&replies).await?;
    if let Some(out) = &out {
        let mut out = out.lock().expect("stdout lock");
        out.write_all(&lines)?;
        out.flush()?;
    }
    Ok(())
}
