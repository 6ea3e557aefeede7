//! How a connection ended, as the reader saw it, and what that means for
//! a caller still waiting.

use super::error::{Cause, ClientError};
use crate::protocol::v2::{CloseCode, CodeReason};

/// How the connection ended, as the reader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// Our close (or v1 `exit`) was answered: everything was processed.
    Completed,
    /// The server closed the session, with its reason.
    ByServer(CodeReason),
    /// The server broke the protocol; we closed with this code.
    Violation(CodeReason),
    /// The connection broke.
    Lost(String),
    /// We ended it, for this reason (the application did not read its
    /// pushes).
    Abandoned(String),
}

impl End {
    pub(crate) fn to_error(&self) -> ClientError {
        match self {
            End::Completed => ClientError::closed(Cause::Us, "closed by us"),
            End::ByServer(c) => ClientError::closed(Cause::Server, c.to_string()),
            End::Violation(c) => ClientError::Protocol {
                code: c.code,
                reason: c.reason.clone(),
            },
            End::Lost(why) => ClientError::closed(Cause::Network, why.clone()),
            End::Abandoned(why) => ClientError::closed(Cause::Us, why.clone()),
        }
    }

    /// The server broke the protocol: we said why (`code`) and left.
    pub(crate) fn violation(code: CloseCode, reason: impl Into<String>) -> End {
        End::Violation(CodeReason::new(code, reason))
    }
}
