//! One stream type for every connection, plain TCP or TLS on either side,
//! so sessions, codecs and handlers never know which they run over.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{client, server};

/// A connection's byte stream.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS accepted by our server.
    Server(Box<server::TlsStream<TcpStream>>),
    /// TLS opened by our client.
    Client(Box<client::TlsStream<TcpStream>>),
    /// v2 over a WebSocket (itself over plain TCP or TLS), either end.
    #[cfg(feature = "websocket")]
    WebSocket(Box<super::WsStream<Stream>>),
}

impl Stream {
    /// The TCP socket underneath.
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Server(s) => s.get_ref().0,
            Stream::Client(s) => s.get_ref().0,
            #[cfg(feature = "websocket")]
            Stream::WebSocket(s) => s.get_ref().tcp(),
        }
    }

    /// Makes closing this connection a reset (RST) instead of an orderly
    /// end (FIN): how a server tells a v1 peer, which reads nothing, that
    /// what it sent was not read (a refusal), so that it does not take
    /// the close for "everything arrived".
    pub(crate) fn reset_on_close(&self) {
        let _ = self.tcp().set_zero_linger();
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => $e,
            Stream::Server($s) => $e,
            Stream::Client($s) => $e,
            #[cfg(feature = "websocket")]
            Stream::WebSocket($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Server(s) => s.is_write_vectored(),
            Stream::Client(s) => s.is_write_vectored(),
            #[cfg(feature = "websocket")]
            Stream::WebSocket(s) => s.is_write_vectored(),
        }
    }
}
