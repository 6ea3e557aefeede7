//! How fast the sans-IO codecs turn bytes into messages and back, without
//! any network: the ceiling for the server's per-message work.
//!
//! `cargo bench --bench codecs`

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rust_tcp::protocol::Message;
use rust_tcp::protocol::v1::{MessageReader, encode_message};
use rust_tcp::protocol::v2::{Frame, V2Codec};
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
    group.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
