//! What every connection of one server shares: the settings, the memory
//! budget, the authentication brake and the stop signal.

use tokio_util::sync::CancellationToken;

use super::auth_tokens::AuthBackoff;
use super::config::ServerConfig;
use super::metrics::ServerMetrics;
use crate::transport::MemoryBudget;

/// One server's shared state, built once by `Server::run`.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) budget: MemoryBudget,
    pub(crate) auth_backoff: AuthBackoff,
    /// Cancelled when the server stops: connections say GOAWAY and drain.
    pub(crate) stop: CancellationToken,
    /// The hot paths' metric handles.
    pub(crate) metrics: ServerMetrics,
}
