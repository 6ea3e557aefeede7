//! Entry points for the fuzzers (`fuzz/`) into parsers that are otherwise
//! internal. Not part of the API (hidden from the docs): no stability
//! promise.

/// The largest PROXY header a server reads.
pub const MAX_PROXY_HEADER: usize = super::proxy_header::MAX_PROXY_HEADER;

/// The length a PROXY v2 header's fixed part (16 bytes) claims, if it
/// is one we would read.
pub fn proxy_header_len(fixed: &[u8]) -> Result<usize, String> {
    super::proxy_header::header_len(fixed).map_err(|e| e.to_string())
}

/// The client a whole PROXY v2 header names (`None`: the balancer
/// itself), or why it is refused.
pub fn proxy_header_peer(header: &[u8]) -> Result<Option<std::net::SocketAddr>, String> {
    match super::proxy_header::parse(header) {
        Ok(super::proxy_header::ProxiedPeer::Client(addr)) => Ok(Some(addr)),
        Ok(super::proxy_header::ProxiedPeer::Balancer) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The verdict on one HTTP request head on the WebSocket port (the upgrade
/// parser), in a line: `101`, `200`, `404`, or the refusal's status and
/// reason. The port serves one page (`/`) and allows one other origin.
#[cfg(feature = "websocket")]
pub fn websocket_upgrade(head: &[u8]) -> String {
    use crate::transport::{Page, Verdict, WebSocketConfig, judge};
    let config = WebSocketConfig::new("127.0.0.1:0")
        .allowed_origins(vec!["https://chat.example".into()])
        .pages(vec![Page::new("/", "text/html", "<p>hi</p>")]);
    match judge(head, &config, false) {
        Verdict::Upgrade { accept } => format!("101 {accept}"),
        Verdict::Page(_) => "200".into(),
        Verdict::NotFound => "404".into(),
        Verdict::Refuse { status, why, .. } => format!("{status} {why}"),
    }
}

/// What a server's WebSocket reader makes of `data` arriving after the
/// upgrade: the v2 bytes the messages carry, in order, and then why it
/// stopped (`None` at the end of the input). Messages are capped at 4 KiB.
#[cfg(feature = "websocket")]
pub fn websocket_frames(data: &[u8]) -> (Vec<u8>, Option<String>) {
    use crate::transport::{WsRole, WsStream};
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, ReadBuf};

    /// The peer's bytes, all here at once; what we write is kept.
    struct Memory<'a> {
        input: &'a [u8],
        written: Vec<u8>,
    }
    impl AsyncRead for Memory<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self.input.len().min(buf.remaining());
            buf.put_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Poll::Ready(Ok(()))
        }
    }
    impl tokio::io::AsyncWrite for Memory<'_> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    let memory = Memory {
        input: data,
        written: Vec::new(),
    };
    let mut ws = WsStream::new(memory, WsRole::Server, 4096, bytes::BytesMut::new());
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut carried = Vec::new();
    let mut chunk = [0u8; 1024];
    // Each read makes progress on input that is all here: bounded by it.
    for _ in 0..=data.len() + 1 {
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut ws).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return (carried, None),
            Poll::Ready(Ok(())) => carried.extend_from_slice(buf.filled()),
            Poll::Ready(Err(e)) => return (carried, Some(e.to_string())),
            Poll::Pending => return (carried, Some("waiting".into())),
        }
    }
    (carried, Some("no progress".into()))
}

/// A session image, as a session store keeps it (spec 3.14.1), read from
/// `data`, and the session a server resumes from it for a client that
/// presents its id, the token 22…22 and its replay's start. Panics if an
/// image that parses does not survive a round trip, or if a resume from
/// it gives back something other than a refusal or a WELCOME (with its
/// replay and answers behind it) that the client's codec reads.
#[cfg(feature = "nats")]
pub fn session_image(data: &[u8]) {
    use crate::protocol::v2::session_image::SessionImage;
    use crate::protocol::v2::{
        Frame, ResumeSettings, ResumeTicket, ResumeToken, Session, SessionConfig, V2Codec,
    };
    use std::time::{Duration, Instant};
    use tokio_util::codec::Decoder;

    let Ok(image) = SessionImage::decode(data) else {
        return;
    };
    assert_eq!(
        SessionImage::decode(&image.encode()).as_ref(),
        Ok(&image),
        "an image survives a round trip"
    );
    let config = SessionConfig::default().resume(Some(
        ResumeSettings::default().expiry(Duration::from_secs(30)),
    ));
    let now = Instant::now();
    let token = ResumeToken([0x22; 16]);
    let ticket = ResumeTicket::new(image.id, token.clone(), image.replay_first);
    let mut hello = bytes::BytesMut::new();
    let _client = Session::client_resuming(config.clone(), ticket, now, &mut hello);
    let mut server = Session::server(config, now);
    let mut codec = V2Codec::new(u32::MAX, u32::MAX);
    let mut out = bytes::BytesMut::new();
    let frame = codec.decode(&mut hello).unwrap().unwrap();
    server.receive(frame, now, &mut out).unwrap();
    let offer = server
        .take_resume_offer()
        .expect("a HELLO that asks to resume");
    if server
        .resume_image(offer, image, token, now, &mut out)
        .is_ok()
    {
        assert!(matches!(
            codec.decode(&mut out),
            Ok(Some(Frame::Welcome(_)))
        ));
        // The replay is whatever the image held; what the server adds (its
        // answers) must be frames.
        while !out.is_empty() {
            match codec.decode(&mut out) {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }
}
