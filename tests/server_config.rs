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
