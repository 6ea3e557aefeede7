//! The `server` binary speaking v1 over real TCP on loopback.

mod common;

use common::*;
use std::io::Write;

#[test]
fn prints_messages_and_closes_on_exit() {
    let server = ServerProcess::start(&[]);
    let mut c = raw_connect(server.addr);
    let mut bytes = v1_frame(b"hello");
    bytes.extend(v1_frame(b""));
    bytes.extend(v1_frame("line\nbreak \"quoted\" \x1b".as_bytes()));
    bytes.extend(v1_frame(b"exit"));
    bytes.extend(v1_frame(b"after exit, never read"));
    send_and_wait_for_close(&mut c, &bytes);
    assert_eq!(
        server.output_lines(3),
        [
            "Message: \"hello\"",
            "Message: \"\"",
            "Message: \"line\\nbreak \\\"quoted\\\" \\u{1b}\""
        ]
    );
    server.wait_for_log("connection closed: client sent exit");
}

#[test]
fn the_largest_message_goes_through() {
    let server = ServerProcess::start(&[]);
    let big = "z".repeat(65535);
    let mut c = raw_connect(server.addr);
    let mut bytes = v1_frame(big.as_bytes());
    bytes.extend(v1_frame(b"exit"));
    send_and_wait_for_close(&mut c, &bytes);
    assert_eq!(server.next_output_line(), printed(&big));
}

#[test]
fn an_interactive_message_is_printed_before_the_next_one_is_sent() {
    let server = ServerProcess::start(&[]);
    let mut c = raw_connect(server.addr);
    c.write_all(&v1_frame(b"first")).unwrap();
    // The connection stays open and idle: the line must still appear.
    assert_eq!(server.next_output_line(), printed("first"));
    c.write_all(&v1_frame(b"second")).unwrap();
    assert_eq!(server.next_output_line(), printed("second"));
}

/// Each kind of bad input closes only its own connection, with a log line
/// naming the peer and the fault, while a well-behaved client on another
/// connection gets every message through.
#[test]
fn bad_input_closes_only_that_connection() {
    let server = ServerProcess::start(&[]);
    let mut good = raw_connect(server.addr);
    let mut sent = Vec::new();
    let mut say = |good: &mut std::net::TcpStream, text: String| {
        good.write_all(&v1_frame(text.as_bytes())).unwrap();
        sent.push(printed(&text));
    };
    say(&mut good, "before any trouble".into());

    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "wrong version",
            vec![7, 0, 2, b'h', b'i'],
            "unsupported protocol version 7",
        ),
        ("invalid utf-8", v1_frame(b"\xc3\x28"), "invalid UTF-8"),
        (
            "truncated frame",
            b"\x01\x00\x10only part".to_vec(),
            "truncated frame",
        ),
        (
            "no exit",
            v1_frame(b"bye without exit"),
            "peer disconnected without exit",
        ),
    ];
    for (i, (what, bytes, log)) in cases.iter().enumerate() {
        let mut bad = raw_connect(server.addr);
        let bad_port = bad.local_addr().unwrap().port().to_string();
        bad.write_all(bytes).unwrap();
        if *what == "truncated frame" || *what == "no exit" {
            bad.shutdown(std::net::Shutdown::Write).unwrap();
        }
        read_until_closed(&mut bad);
        let line = server.wait_for_log(log);
        assert!(
            line.contains(&bad_port),
            "{what}: log names the peer: {line}"
        );
        say(&mut good, format!("still here after case {i}"));
    }
    good.write_all(&v1_frame(b"exit")).unwrap();
    read_until_closed(&mut good);

    // Output from the good client is complete and in order; the only other
    // line is the one valid message of the "no exit" connection.
    let mut expected = sent;
    expected.push(printed("bye without exit"));
    let mut got = server.output_lines(expected.len());
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn out_of_file_descriptors_the_server_backs_off_and_recovers() {
    let server = ServerProcess::start_with_fd_limit(40);
    // Hold more connections open than the server has descriptors for.
    let held: Vec<_> = (0..60).map(|_| raw_connect(server.addr)).collect();
    let line = server.wait_for_log("accept failed");
    assert!(line.contains("retrying in"), "{line}");
    drop(held);
    // Once descriptors free up, a new client is served normally.
    let mut c = raw_connect(server.addr);
    let mut bytes = v1_frame(b"served again");
    bytes.extend(v1_frame(b"exit"));
    send_and_wait_for_close(&mut c, &bytes);
    assert_eq!(server.next_output_line(), printed("served again"));
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let server = ServerProcess::start(&[]);
    let mut open = raw_connect(server.addr);
    open.write_all(&v1_frame(b"in flight")).unwrap();
    assert_eq!(server.next_output_line(), printed("in flight"));
    let status = server.stop_with("TERM");
    assert_eq!(status.code(), Some(0));
    // The open connection was closed by the server, not left hanging.
    read_until_closed(&mut open);
}

#[test]
fn ctrl_c_stops_the_server_cleanly() {
    let server = ServerProcess::start(&[]);
    let status = server.stop_with("INT");
    assert_eq!(status.code(), Some(0));
}
