//! Showing what the network sent on a terminal, safely.

use bytes::Bytes;

/// Text from the network, made safe for a terminal: control characters are
/// shown escaped instead of being interpreted.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub(crate) fn show_payload(payload: &Bytes) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => printable(text),
        Err(_) => format!("<{} bytes of binary>", payload.len()),
    }
}
