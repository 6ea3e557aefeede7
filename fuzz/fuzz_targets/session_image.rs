//! `cargo fuzz run session_image`: see `fuzz/entry_points.rs`.
#![no_main]

#[path = "../entry_points.rs"]
#[allow(dead_code)]
mod entry_points;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry_points::session_image(data));
