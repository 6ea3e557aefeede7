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

#[test]
fn websocket_upgrade_corpus() {
    replay("websocket_upgrade", entry_points::websocket_upgrade);
}

#[test]
fn websocket_frames_corpus() {
    replay("websocket_frames", entry_points::websocket_frames);
}

/// The WebSocket reader's entry point does the real work: the spec's
/// masked client frame (section 4.2) comes out as the v2 TEXT "hi".
#[test]
fn the_websocket_reader_entry_point_unmasks_the_specs_example() {
    let masked = [
        0x82, 0x88, 0x37, 0xfa, 0x21, 0x3d, 0x35, 0xf9, 0x21, 0x3d, 0x37, 0xf8, 0x49, 0x54,
    ];
    let (carried, stopped) = rust_tcp::fuzzing::websocket_frames(&masked);
    assert_eq!(carried, [2, 3, 0, 0, 0, 2, b'h', b'i']);
    assert_eq!(stopped, None);
    assert!(rust_tcp::fuzzing::websocket_upgrade(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == "200");
}

#[test]
fn v2_resume_corpus() {
    replay("v2_resume", entry_points::v2_resume);
}

#[test]
fn session_image_corpus() {
    replay("session_image", entry_points::session_image);
}
