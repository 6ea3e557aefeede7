//! Server settings that could never work are refused before listening.

use rust_tcp::{Server, ServerConfig, ServerError};

#[tokio::test]
async fn settings_peers_would_reject_are_refused_at_bind() {
    for config in [
        ServerConfig::default().max_frame_size(100),
        ServerConfig::default().server_name("n".repeat(65)),
        ServerConfig::default().server_name("two\nlines"),
        ServerConfig::default().server_name(""),
        ServerConfig::default().max_connections(0),
        ServerConfig::default().max_queued_bytes(0),
        ServerConfig::default().min_frame_rate(0),
        ServerConfig::default().handshake_timeout(std::time::Duration::ZERO),
        ServerConfig::default().max_pending_handshakes(0),
        ServerConfig::default().ipv6_prefix(129),
        ServerConfig::default()
            .heartbeat_min(std::time::Duration::from_secs(10))
            .heartbeat_max(std::time::Duration::from_secs(5)),
        ServerConfig::default()
            .app_protocol(rust_tcp::protocol::v2::AppProtocol::new("k v", 1..=1)),
    ] {
        assert!(config.validate().is_err(), "{config:?}");
        let err = Server::bind("127.0.0.1:0", config).await.unwrap_err();
        assert!(matches!(err, ServerError::InvalidConfig(_)), "{err}");
    }
}

#[test]
fn the_defaults_and_the_protocol_limits_themselves_are_valid() {
    use rust_tcp::protocol::v2::{MAX_NAME_LEN, MIN_MAX_FRAME_SIZE};
    assert!(ServerConfig::default().validate().is_ok());
    let edge = ServerConfig::default()
        .max_frame_size(MIN_MAX_FRAME_SIZE)
        .server_name("n".repeat(MAX_NAME_LEN));
    assert!(edge.validate().is_ok());
}

/// Bad command lines are usage errors (exit 2, one line saying what is
/// wrong), found when the arguments are read, before anything runs.
#[test]
fn bad_arguments_are_usage_errors() {
    let cases: [(&str, &[&str], &str); 4] = [
        (
            env!("CARGO_BIN_EXE_server"),
            &["--addr", "nonsense"],
            "is not HOST:PORT",
        ),
        (
            env!("CARGO_BIN_EXE_server"),
            &["--ipv6-prefix", "200"],
            "--ipv6-prefix",
        ),
        (
            env!("CARGO_BIN_EXE_client"),
            &["--v1", "request", "x"],
            "requests need protocol v2",
        ),
        (
            env!("CARGO_BIN_EXE_client"),
            &["--v1", "chat"],
            "chat needs protocol v2",
        ),
    ];
    for (program, args, says) in cases {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.lines().next().unwrap_or("").contains(says),
            "{args:?}: {err}"
        );
    }
}
