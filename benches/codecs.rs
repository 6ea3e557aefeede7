//! How fast the sans-IO codecs turn bytes into messages and back, without
//! any network: the ceiling for the server's per-message work.
//!
//! `cargo bench --bench codecs`

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rust_tcp::protocol::Message;
use rust_tcp::protocol::v1::{MessageReader, encode_message};
use rust_tcp::protocol::v2::{Frame, Session, SessionConfig, V2Codec};
use std::hint::black_box;
use tokio_util::codec::{Decoder, Encoder};

const MESSAGES: usize = 10_000;
const CONTENT: &str = "twenty bytes of text";

fn v1_stream() -> Vec<u8> {
    let mut b = BytesMut::new();
    for _ in 0..MESSAGES {
        encode_message(CONTENT, &mut b).unwrap();
    }
    b.to_vec()
}

fn v2_stream() -> Vec<u8> {
    let mut b = BytesMut::new();
    for _ in 0..MESSAGES {
        V2Codec::default()
            .encode(Frame::Text(Message::from_static(CONTENT)), &mut b)
            .unwrap();
    }
    b.to_vec()
}

fn codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("20-byte messages");
    group.throughput(Throughput::Elements(MESSAGES as u64));

    let v1 = v1_stream();
    group.bench_function("v1 decode (MessageReader, 64 KiB reads)", |b| {
        b.iter(|| {
            let mut r = MessageReader::new();
            let mut n = 0;
            for chunk in v1.chunks(64 * 1024) {
                r.feed(chunk);
                while let Some(m) = r.next_message().unwrap() {
                    n += black_box(m).len();
                }
            }
            n
        })
    });
    group.bench_function("v1 encode", |b| {
        let mut buf = BytesMut::with_capacity(v1.len());
        b.iter(|| {
            buf.clear();
            for _ in 0..MESSAGES {
                encode_message(black_box(CONTENT), &mut buf).unwrap();
            }
        })
    });

    let v2 = v2_stream();
    group.bench_function("v2 decode (V2Codec)", |b| {
        b.iter(|| {
            let mut codec = V2Codec::default();
            let mut buf = BytesMut::from(&v2[..]);
            let mut n = 0;
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                n += black_box(f).payload_len();
            }
            n
        })
    });
    group.bench_function("v2 encode", |b| {
        let mut buf = BytesMut::with_capacity(v2.len());
        let frame = Frame::Text(Message::from_static(CONTENT));
        b.iter(|| {
            buf.clear();
            for _ in 0..MESSAGES {
                black_box(&frame).encode(&mut buf);
            }
        })
    });
    group.bench_function("v2 session receive (server, open)", |b| {
        let now = std::time::Instant::now();
        let frames: Vec<Frame> = (0..MESSAGES)
            .map(|_| Frame::Text(Message::from_static(CONTENT)))
            .collect();
        b.iter_batched(
            || (open_server_session(now), frames.clone()),
            |(mut session, frames)| {
                let mut out = BytesMut::new();
                for f in frames {
                    black_box(session.receive(f, now, &mut out).unwrap());
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();

    // One large frame per call.
    let mut group = c.benchmark_group("64 KiB payloads");
    group.throughput(Throughput::Bytes(64 * 1024));
    let big = "y".repeat(60 * 1024);
    let mut v1_big = BytesMut::new();
    encode_message(&big, &mut v1_big).unwrap();
    group.bench_function("v1 decode (60 KiB, one frame)", |b| {
        b.iter(|| {
            let mut r = MessageReader::new();
            r.feed(&v1_big);
            black_box(r.next_message().unwrap().unwrap().len())
        })
    });
    let big_frame = Frame::Binary(bytes::Bytes::from(vec![7u8; 64 * 1024]));
    let mut v2_big = BytesMut::new();
    big_frame.encode(&mut v2_big);
    group.bench_function("v2 decode (one frame)", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&v2_big[..]);
            black_box(
                V2Codec::default()
                    .decode(&mut buf)
                    .unwrap()
                    .unwrap()
                    .payload_len(),
            )
        })
    });
    group.bench_function("v2 encode (one frame)", |b| {
        let mut buf = BytesMut::with_capacity(v2_big.len());
        b.iter(|| {
            buf.clear();
            black_box(&big_frame).encode(&mut buf);
        })
    });
    group.finish();
}

/// A server session past its handshake, ready for data frames.
fn open_server_session(now: std::time::Instant) -> Session {
    let mut hello = BytesMut::new();
    Session::client(SessionConfig::default().name("bench"), now, &mut hello);
    let hello = V2Codec::default().decode(&mut hello).unwrap().unwrap();
    let mut session = Session::server(SessionConfig::default(), now);
    session.receive(hello, now, &mut BytesMut::new()).unwrap();
    session
}

criterion_group!(benches, codecs);
criterion_main!(benches);
