//! The `server` and `client` binaries together over v2: the close
//! handshake through both, the request subcommand, and chat.

mod common;

use common::*;

#[test]
fn the_close_handshake_loses_no_message_through_the_binaries() {
    let server = ServerProcess::start(&[]);
    let input: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
    let out = run_client(&["--addr", &server.addr_arg()], Some(input.as_bytes()));
    assert!(out.status.success(), "{out:?}");
    let want: Vec<_> = (0..10_000).map(|i| printed(&format!("line {i}"))).collect();
    assert_eq!(server.output_lines(10_000), want);
}

#[test]
fn the_request_subcommand_prints_each_response() {
    let server = ServerProcess::start(&[]);
    let out = run_client(
        &[
            "--addr",
            &server.addr_arg(),
            "request",
            "first",
            "second one",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "first\nsecond one\n"
    );
}

#[test]
fn two_chat_clients_see_each_others_messages() {
    let server = ServerProcess::start(&["--broadcast"]);
    let alice = ChatProcess::start(&server, "alice");
    let bob = ChatProcess::start(&server, "bob");
    alice.say("hello bob");
    assert_eq!(bob.next_line(), "alice: hello bob");
    bob.say("hi alice");
    assert_eq!(alice.next_line(), "bob: hi alice");
    // Both print what they send on the server as well.
    let mut got = server.output_lines(2);
    got.sort();
    assert_eq!(got, [printed("hello bob"), printed("hi alice")]);
    assert!(alice.finish().success());
    assert!(bob.finish().success());
}

/// A message too large for the server is refused before sending, in one
/// line that says why once (not the reason twice over).
#[test]
fn a_message_over_the_servers_limit_is_one_clear_line() {
    let server = ServerProcess::start(&["--max-frame-bytes", "1024"]);
    let big = "x".repeat(2000);
    let out = run_client(&["--addr", &server.addr_arg(), &big], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        err.matches("exceeds").count(),
        1,
        "the reason is said once: {err}"
    );
    assert!(
        err.contains("not sent: frame of 2000 bytes exceeds the peer's limit of 1024"),
        "{err}"
    );
}
