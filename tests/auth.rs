//! Token authentication against the real server: right, wrong and missing
//! tokens, rotation by SIGHUP without dropping anyone, v1 refused and
//! allowed, repeated failures slowed down, and the handshake extensions
//! rules.

mod common;

use common::*;
use futures::SinkExt;
use rust_tcp::protocol::v2::{CloseCode, Extension, Frame, Hello, V2Codec};
use rust_tcp::{AuthTokens, Client, ClientConfig, ClientError, ServerConfig};
use std::io::Write;
use std::time::{Duration, Instant};

/// An in-process server accepting the tokens in a fresh file, and what its
/// service admits.
async fn token_server(
    tokens: &str,
) -> (
    InProcessServer,
    std::sync::mpsc::Receiver<rust_tcp::PeerInfo>,
    std::path::PathBuf,
) {
    let path = token_file(tokens);
    let tokens = AuthTokens::from_file(&path).unwrap();
    let (admitted, rx) = Admitted::new();
    let server =
        InProcessServer::start(admitted, ServerConfig::default().auth_tokens(tokens)).await;
    (server, rx, path)
}

#[tokio::test]
async fn only_a_right_token_reaches_the_service_which_learns_which_one() {
    let (server, rx, path) = token_server("alpha\nbeta\n").await;
    for config in [
        ClientConfig::default().auth_token("gamma"),
        ClientConfig::default(),
    ] {
        match Client::connect_with(&server.addr, config)
            .await
            .unwrap_err()
        {
            ClientError::HandshakeRefused(c) => {
                assert_eq!(c.code, CloseCode::POLICY_VIOLATION);
                assert_eq!(c.reason, "authentication failed");
            }
            other => panic!("expected a refusal, got {other}"),
        }
    }
    assert!(
        rx.try_recv().is_err(),
        "a refused client never reaches the service"
    );
    let client = Client::connect_with(&server.addr, ClientConfig::default().auth_token("beta"))
        .await
        .unwrap();
    client.close().await.unwrap();
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap().auth_token.as_deref(),
        Some(&b"beta"[..])
    );
    server.shut_down().await;
    let _ = std::fs::remove_file(path);
}

#[test]
fn tokens_rotate_on_sighup_without_dropping_anyone() {
    let path = token_file("old-token\n");
    let server = ServerProcess::start(&["--auth-token-file", &path.display().to_string()]);
    let addr = server.addr_arg();
    let old_file = token_file("old-token\n");
    let new_file = token_file("new-token\n");
    let with = |file: &std::path::Path, text: &str| {
        run_client(
            &[
                "--addr",
                &addr,
                "--auth-token-file",
                &file.display().to_string(),
                text,
            ],
            None,
        )
    };
    assert!(with(&old_file, "before").status.success());
    assert_eq!(server.next_output_line(), printed("before"));
    // A connection open across the rotation.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt
        .block_on(Client::connect_with(
            &addr,
            ClientConfig::default().auth_token("old-token"),
        ))
        .unwrap();
    std::fs::write(&path, "new-token\n").unwrap();
    let pid = server.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    server.wait_for_log("auth tokens reloaded (1 accepted)");
    let out = with(&old_file, "old again");
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("1008 (policy violation): authentication failed"),
        "{}",
        stderr_of(&out)
    );
    server.wait_for_log("connection closed: authentication failed");
    // The token from the environment works as well.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_client"))
        .args(["--addr", &addr, "after"])
        .env("RUST_TCP_TOKEN", "new-token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(server.next_output_line(), printed("after"));
    rt.block_on(held.send_text("still here")).unwrap();
    rt.block_on(held.close()).unwrap();
    assert_eq!(server.next_output_line(), printed("still here"));
    let _ = (std::fs::remove_file(path), &new_file);
}

#[test]
fn v1_is_refused_when_tokens_are_required_unless_allowed() {
    let path = token_file("t\n");
    let file = path.display().to_string();
    let server = ServerProcess::start(&["--auth-token-file", &file]);
    let mut v1 = raw_connect(server.addr);
    v1.write_all(&v1_frame(b"sneaking in")).unwrap();
    read_until_closed(&mut v1);
    server.wait_for_log("v1 refused: this server requires a token");
    let allowing = ServerProcess::start(&["--auth-token-file", &file, "--allow-v1"]);
    let out = run_client(
        &["--addr", &allowing.addr_arg(), "--v1", "welcome v1"],
        None,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(allowing.next_output_line(), printed("welcome v1"));
    let _ = std::fs::remove_file(path);
}

/// After three failures from one address, its next attempt waits at least
/// 400 ms before it is judged; another address is not slowed.
#[tokio::test]
async fn repeated_failures_from_one_address_are_slowed_down() {
    let (server, _rx, path) = token_server("right\n").await;
    let addr: std::net::SocketAddr = server.addr.parse().unwrap();
    let attempt = |from: &'static str| async move {
        let hello = Frame::Hello(
            Hello::new(vec![2], 1 << 20, 0, "guesser")
                .with_extensions(vec![Extension::new(Extension::AUTH_TOKEN, "wrong")]),
        );
        let started = Instant::now();
        let mut framed = raw_v2_from(addr, from, hello).await;
        let answer = next_frame(&mut framed).await;
        assert!(
            matches!(answer, Frame::Close(ref c) if c.code == CloseCode::POLICY_VIOLATION),
            "{answer:?}"
        );
        started.elapsed()
    };
    for _ in 0..3 {
        attempt("127.0.0.4").await;
    }
    let slowed = attempt("127.0.0.4").await;
    assert!(
        slowed >= Duration::from_millis(400),
        "answered after {slowed:?}"
    );
    let other = attempt("127.0.0.5").await;
    // Another address is not braked: it is answered sooner than the one
    // that waited its 400 ms.
    assert!(
        other < slowed,
        "an innocent address waited {other:?}, the guesser {slowed:?}"
    );
    server.shut_down().await;
    let _ = std::fs::remove_file(path);
}

/// Unknown extensions are ignored unless critical, which is refused.
#[tokio::test]
async fn unknown_extensions_are_ignored_unless_critical() {
    let (collect, _rx) = Collect::new();
    let server = InProcessServer::start(collect, ServerConfig::default()).await;
    for (kind, welcomed) in [(0x0042u16, true), (0x8042, false)] {
        let stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        let mut framed = tokio_util::codec::Framed::new(stream, V2Codec::default());
        framed
            .send(Frame::Hello(
                Hello::new(vec![2], 1 << 20, 0, "future")
                    .with_extensions(vec![Extension::new(kind, "something new")]),
            ))
            .await
            .unwrap();
        match next_frame(&mut framed).await {
            Frame::Welcome(_) => assert!(welcomed, "0x{kind:04x} was accepted"),
            Frame::Close(c) => {
                assert!(!welcomed, "0x{kind:04x} was refused: {c}");
                assert_eq!(c.code, CloseCode::HANDSHAKE_REFUSED);
                assert!(c.reason.contains("critical extension 0x8042"), "{c}");
            }
            other => panic!("{other:?}"),
        }
    }
    server.shut_down().await;
}
