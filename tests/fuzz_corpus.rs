//! Replays the fuzzers' committed inputs through the very entry points the
//! `cargo fuzz` targets use (`fuzz/entry_points.rs`): the seeds made from
//! the spec's hex examples (`fuzz/corpus/TARGET/seed-*`) and every input
//! that once made a fuzzer fail (`fuzz/regressions/TARGET/*`). So CI
//! exercises them on every run, without the fuzzer.

#[path = "../fuzz/entry_points.rs"]
mod entry_points;

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    // Only what is committed: the seeds, not a local fuzzing run's finds;
    // and every regression.
    let sources = [
        (root.join("corpus").join(target), "seed-"),
        (root.join("regressions").join(target), ""),
    ];
    for (dir, prefix) in sources {
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for file in files {
            let path = file.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(prefix)
            {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| entry(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "{target}: no committed inputs to replay");
}

#[test]
fn v1_decode_corpus() {
    replay("v1_decode", entry_points::v1_decode);
}

#[test]
fn v2_codec_corpus() {
    replay("v2_codec", entry_points::v2_codec);
}

#[test]
fn v2_session_server_corpus() {
    replay("v2_session_server", entry_points::v2_session_server);
}

#[test]
fn v2_session_client_corpus() {
    replay("v2_session_client", entry_points::v2_session_client);
}

#[test]
fn v2_hello_auth_corpus() {
    replay("v2_hello_auth", entry_points::v2_hello_auth);
}

#[test]
fn proxy_header_corpus() {
    replay("proxy_header", entry_points::proxy_header);
}
