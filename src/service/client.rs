//! Talking to a server as a v1 client.

use std::io;
use tokio::net::TcpStream;

use crate::protocol::v1::{self, CodecError, EncodeError, V1Codec};
use crate::transport::Connection;

/// Queued bytes past which [`Client::send`] writes without being asked,
/// bounding the client's memory while still sending in large writes.
const AUTO_FLUSH_BYTES: usize = 64 * 1024;

/// A v1 connection to a server: send messages, then [`Client::close`].
///
/// Sends are buffered and go out in large writes; call [`Client::flush`]
/// when a message must leave now (an interactive prompt, say).
#[derive(Debug)]
pub struct Client {
    conn: Connection<TcpStream, V1Codec>,
}

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody accepted the connection (no server, wrong port, firewall…).
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address tried.
        addr: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The message cannot be carried by the protocol (too long for v1).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The connection failed while in use.
    #[error("connection failed")]
    Io(#[from] io::Error),
}

impl From<CodecError> for ClientError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Encode(e) => ClientError::Encode(e),
            CodecError::Io(e) => ClientError::Io(e),
            // A v1 server sends nothing that we decode.
            CodecError::Decode(e) => ClientError::Io(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

impl Client {
    /// Connects to `addr` (`HOST:PORT`).
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // We batch writes ourselves; Nagle would only delay the last one.
        stream.set_nodelay(true)?;
        Ok(Client {
            conn: Connection::new(stream, V1Codec),
        })
    }

    /// Queues one message, writing once enough has piled up. Fails, with
    /// nothing queued, if the message is longer than v1 allows.
    pub async fn send(&mut self, text: &str) -> Result<(), ClientError> {
        self.conn.queue(text)?;
        if self.conn.pending_write() >= AUTO_FLUSH_BYTES {
            self.conn.flush().await?;
        }
        Ok(())
    }

    /// Writes everything queued so far.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        Ok(self.conn.flush().await?)
    }

    /// Sends `exit` after everything queued, then waits for the server to
    /// close the connection: when this returns `Ok`, the server has read
    /// every message.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.conn.queue(v1::EXIT)?;
        self.conn.flush().await?;
        // v1 servers send nothing; wait for their end of the stream.
        while self.conn.fill().await? != 0 {}
        Ok(())
    }
}
