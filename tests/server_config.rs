//! Server settings that could never work are refused before listening.

use rust_tcp::service::{Server, ServerConfig, ServerError};

#[tokio::test]
async fn settings_peers_would_reject_are_refused_at_bind() {
    for config in [
        ServerConfig {
            max_frame_size: 100,
            ..ServerConfig::default()
        },
        ServerConfig {
            server_name: "n".repeat(65),
            ..ServerConfig::default()
        },
        ServerConfig {
            max_connections: 0,
            ..ServerConfig::default()
        },
    ] {
        let err = Server::bind("127.0.0.1:0", config).await.unwrap_err();
        assert!(matches!(err, ServerError::InvalidConfig(_)), "{err}");
    }
}
