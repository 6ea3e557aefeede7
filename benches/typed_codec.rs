//! What the typed layer's encoding costs per message: a typical request
//! (a key-value `Set` with a 32-byte value) encoded and decoded in
//! MessagePack with named fields and in postcard.
//!
//! `cargo bench --bench typed_codec`

use criterion::{Criterion, criterion_group, criterion_main};
use rust_tcp::protocol::v2::Encoding;
use rust_tcp::typed::{decode, encode};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

#[derive(Serialize, Deserialize, PartialEq, Debug)]
enum Request {
    Get {
        key: String,
    },
    Set {
        key: String,
        value: String,
        ttl: Option<u64>,
    },
}

fn typed_codec(c: &mut Criterion) {
    let request = Request::Set {
        key: "sensor-42/temperature".into(),
        value: "x".repeat(32),
        ttl: Some(60),
    };
    let mut group = c.benchmark_group("typed Set request");
    for (name, encoding) in [
        ("msgpack", Encoding::MessagePack),
        ("postcard", Encoding::Postcard),
    ] {
        let bytes = encode(&request, encoding).unwrap();
        println!("{name}: {} bytes", bytes.len());
        group.bench_function(format!("{name} encode"), |b| {
            b.iter(|| encode(black_box(&request), encoding).unwrap())
        });
        group.bench_function(format!("{name} decode"), |b| {
            b.iter(|| decode::<Request>(black_box(&bytes), encoding).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, typed_codec);
criterion_main!(benches);
