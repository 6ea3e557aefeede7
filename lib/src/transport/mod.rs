//! Moving frames between a byte stream and the protocol layer.
//!
//! A [`Connection`] works over any `AsyncRead + AsyncWrite`, so the same code
//! serves plain TCP, TLS ([`Stream`], set up from `tls.rs`) or an in-memory
//! pipe in tests. Once a v2 connection is open, one [`Driver`] task owns
//! it for either end: it reads, hands frames to the session, and writes
//! what any number of tasks queued in the connection's [`WriteQueue`].

mod buffer_pool;
mod connection;
mod deadline;
mod driver;
mod memory_budget;
mod outgoing;
mod receive_batch;
mod stream;
mod tls;
#[cfg(feature = "websocket")]
mod web_pages;
#[cfg(feature = "websocket")]
mod websocket;
#[cfg(feature = "websocket")]
mod websocket_upgrade;
mod write_queue;

pub(crate) use connection::Connection;
pub(crate) use deadline::Deadline;
pub(crate) use driver::{Driver, DriverCounters, Endpoint, Exit, Work};
pub(crate) use memory_budget::{
    LIMIT_METRIC as MEMORY_BUDGET_LIMIT_METRIC, MemoryBudget,
    USED_METRIC as MEMORY_BUDGET_USED_METRIC,
};
pub(crate) use outgoing::Outgoing;
pub(crate) use receive_batch::{BatchError, ReceiveBatch};
pub(crate) use stream::Stream;
pub(crate) use tls::server_name_of;
pub use tls::{ClientTls, ServerTls, TlsError};
#[cfg(feature = "websocket")]
pub use web_pages::{Page, PageError};
#[cfg(feature = "websocket")]
pub use websocket::SUBPROTOCOL as WEBSOCKET_SUBPROTOCOL;
#[cfg(feature = "websocket")]
pub(crate) use websocket::{Role as WsRole, WsStream};
#[cfg(feature = "websocket")]
pub use websocket_upgrade::WebSocketConfig;
#[cfg(feature = "websocket")]
pub(crate) use websocket_upgrade::{
    Upgrade, Verdict, accept as accept_websocket, connect as connect_websocket, judge, turn_away,
};
pub(crate) use write_queue::{QueueError, WriteQueue};
