//! The `client` binary in v1 mode against the `server` binary, end to end.

mod common;

use common::*;

/// The client binary in v1 mode.
fn client(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut all = vec!["--v1"];
    all.extend_from_slice(args);
    run_client(&all, stdin)
}

#[test]
fn sends_its_arguments_then_exit() {
    let server = ServerProcess::start(&[]);
    let out = client(
        &["--addr", &server.addr_arg(), "one", "two words", ""],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        server.output_lines(3),
        [printed("one"), printed("two words"), printed("")]
    );
    server.wait_for_log("client sent exit");
}

#[test]
fn stdin_mode_sends_one_message_per_line() {
    let server = ServerProcess::start(&[]);
    let mut input = String::new();
    for i in 0..5000 {
        input.push_str(&format!("log line {i}\r\n"));
    }
    let out = client(&["--addr", &server.addr_arg()], Some(input.as_bytes()));
    assert!(out.status.success(), "{out:?}");
    let expected: Vec<_> = (0..5000)
        .map(|i| printed(&format!("log line {i}")))
        .collect();
    assert_eq!(server.output_lines(5000), expected);
    assert!(
        out.stdout.is_empty(),
        "no prompt when stdin is not a terminal"
    );
}

#[test]
fn no_server_is_a_one_line_error() {
    // Bind and drop a listener to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = client(&["--addr", &format!("127.0.0.1:{port}"), "hi"], None);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn an_oversized_message_is_a_one_line_error() {
    let server = ServerProcess::start(&[]);
    let big = "x".repeat(65536);
    let out = client(&["--addr", &server.addr_arg(), &big], None);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("65536 bytes") && err.contains("v1"), "{err}");

    // In stdin mode the lines before it are delivered, then it fails.
    let input = format!("fine\n{big}\nnever sent\n");
    let out = client(&["--addr", &server.addr_arg()], Some(input.as_bytes()));
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(server.next_output_line(), printed("fine"));
}

/// The one line a refused v1 client prints, and its failure.
fn assert_refused(out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr_of(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("the messages may not have been received"),
        "{err}"
    );
}

/// A full server refuses a v1 client without reading it: the client says
/// its messages may be lost and fails, with arguments and with stdin.
#[test]
fn a_v1_client_refused_by_a_full_server_fails() {
    let server = ServerProcess::start(&["--max-connections", "1", "--broadcast"]);
    let holder = ChatProcess::start(&server, "holder");
    let out = client(&["--addr", &server.addr_arg(), "lost v1 message"], None);
    assert_refused(&out);
    let out = client(&["--addr", &server.addr_arg()], Some(b"lost from stdin\n"));
    assert_refused(&out);
    server.wait_for_log("connection refused: server full");
    assert!(holder.finish().success());
    // Once the slot is free, the same command succeeds.
    let out = client(&["--addr", &server.addr_arg(), "delivered"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_output_line(), printed("delivered"));
}

/// A server that requires tokens refuses v1 (which cannot carry one): the
/// client fails instead of reporting success.
#[test]
fn a_v1_client_refused_by_a_token_server_fails() {
    let tokens = token_file("s3cret\n");
    let server = ServerProcess::start(&["--auth-token-file", tokens.to_str().unwrap()]);
    let out = client(&["--addr", &server.addr_arg(), "lost v1 message"], None);
    assert_refused(&out);
    let out = client(&["--addr", &server.addr_arg()], Some(b"one\ntwo\n"));
    assert_refused(&out);
    server.wait_for_log("v1 refused");
}
