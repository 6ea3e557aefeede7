//! Which end a session is and where it is in its life: named by the
//! session, its errors and its callers alike.

/// Which end of the connection a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends hello, sends requests, receives go-away.
    Client,
    /// Answers hello, answers requests, may send go-away.
    Server,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Waiting for hello (server) or welcome (client).
    Handshake,
    /// Messages flow both ways.
    Open,
    /// We sent CLOSE; frames the peer sent before seeing it are still
    /// processed, until its CLOSE arrives.
    Closing,
    /// The peer sent CLOSE; we process what came before, then acknowledge.
    PeerClosing,
    /// Done: nothing more may be sent or received.
    Closed,
}
