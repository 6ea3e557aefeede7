//! The sans-IO protocol core: no sockets, no runtime, no printing.
//!
//! Everything here is driven by bytes in and bytes out, which is why it can be
//! tested exhaustively (every split point of a stream) without a network.

mod message;
mod stall;
pub mod v1;
pub mod v2;
mod version;

pub use version::{
    SUPPORTED_VERSIONS, parse_unsupported_version_reply, spoken_versions, unsupported_version_reply,
};

pub use message::{InvalidUtf8, Message};
pub(crate) use stall::StallClock;
pub use stall::{StallLimits, Stalled};
