//! The HTTP side of the WebSocket listener: the upgrade (RFC 6455 4.2),
//! with the checks a browser-facing port needs (the `Origin` allowlist, the
//! `rust-tcp.v2` subprotocol, a bounded request head), a few static pages
//! served on plain GETs (a chat page), and a proper HTTP error for anything
//! else instead of a hang. The client's side of the upgrade too, for the
//! Rust client and its tests.

use bytes::BytesMut;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tungstenite::handshake::derive_accept_key;

use super::web_pages::{Page, PageError, merge};
use super::websocket::{Role, SUBPROTOCOL, WsStream};

/// The largest request (or response) head read, so a peer cannot make us
/// buffer an endless header.
const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;

/// The WebSocket listener's settings (`ServerConfig::websocket`): v2 over
/// WebSocket for browsers, on a port of its own, into the same service.
///
/// ```
/// use rust_tcp::{ServerConfig, WebSocketConfig};
/// let ws = WebSocketConfig::new("127.0.0.1:8081")
///     .allowed_origins(vec!["https://chat.example".into()]);
/// let config = ServerConfig::default().websocket(ws);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebSocketConfig {
    /// Where to listen, `HOST:PORT` (port 0 picks a free one).
    pub addr: String,
    /// Pages whose scripts may connect, as `scheme://host[:port]`, or `*`
    /// for any. Empty (the default): only pages served by this very port
    /// (same origin), so another site cannot drive a visitor's browser into
    /// our server with the visitor's network position. Clients that send
    /// no `Origin` (not browsers) are not affected.
    pub allowed_origins: Vec<String>,
    /// What a plain `GET` gets (404 for any other path).
    pub pages: Vec<Page>,
}

impl WebSocketConfig {
    /// Listens on `addr`, same origin only, no pages.
    pub fn new(addr: impl Into<String>) -> WebSocketConfig {
        WebSocketConfig {
            addr: addr.into(),
            allowed_origins: Vec::new(),
            pages: Vec::new(),
        }
    }

    crate::config_setters::setters! {
        allowed_origins: Vec<String>,
        pages: Vec<Page>,
    }

    /// Also serves every file under `root` ([`Page::directory`]: bounded,
    /// hidden files left out, content types by extension), read now, so a
    /// missing or oversized directory is an error at start, not a 404
    /// later. A file replaces a page already set at the same path, so a
    /// directory can override the JavaScript client or a built-in page.
    pub fn directory(mut self, root: impl AsRef<std::path::Path>) -> Result<Self, PageError> {
        merge(&mut self.pages, Page::directory(root)?);
        Ok(self)
    }

    /// Also serves the JavaScript client at `/rust-tcp.js` and its
    /// MessagePack module at `/msgpack.js` ([`Page::javascript_client`]),
    /// so a page can `import { TypedClient } from "/rust-tcp.js"` from the
    /// server it talks to.
    pub fn javascript_client(mut self) -> Self {
        merge(&mut self.pages, Page::javascript_client());
        self
    }

    /// Whether a page from `origin` may connect; `host` is the `Host` the
    /// browser asked for, `tls` whether this port speaks TLS.
    fn allows(&self, origin: &str, host: &str, tls: bool) -> bool {
        let scheme = if tls { "https" } else { "http" };
        let same = origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"));
        same || self
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}

/// What became of an HTTP request on the WebSocket port.
#[derive(Debug)]
pub(crate) enum Upgrade<S> {
    /// A WebSocket carrying v2.
    WebSocket(WsStream<S>),
    /// A page was served (or a 404); the connection is done.
    Served {
        /// The HTTP status sent.
        status: u16,
    },
}

/// An HTTP request we answered with an error, and why.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {reason}")]
pub(crate) struct UpgradeError {
    pub(crate) status: u16,
    pub(crate) reason: String,
}

impl From<io::Error> for UpgradeError {
    fn from(e: io::Error) -> Self {
        UpgradeError {
            status: 0,
            reason: format!("reading the request: {e}"),
        }
    }
}

/// Reads one HTTP head (up to the blank line), bounded; what came after it
/// is returned too.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<Option<(Vec<u8>, BytesMut)>> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some((buf.to_vec(), rest)));
        }
        if buf.len() >= MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed before its request was whole",
            ));
        }
    }
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

/// Whether a comma-separated header value lists `token`.
fn lists(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    reason: &str,
    extra: &str,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    stream.shutdown().await
}

/// Answers with an HTTP error and says why.
async fn refuse<S: AsyncWrite + Unpin, T>(
    stream: &mut S,
    status: u16,
    phrase: &str,
    extra: &str,
    why: String,
) -> Result<T, UpgradeError> {
    let body = format!("{why}\n");
    let _ = respond(
        stream,
        status,
        phrase,
        extra,
        "text/plain; charset=utf-8",
        body.as_bytes(),
    )
    .await;
    Err(UpgradeError {
        status,
        reason: why,
    })
}

/// The server's side: reads the request, and either upgrades it to a
/// WebSocket carrying v2, serves a page, or answers with an HTTP error.
/// A request head not whole by `head_by` (the handshake deadline, `limit`
/// after the accept) is answered with 408; the caller bounds the answer's
/// writing.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    config: &WebSocketConfig,
    tls: bool,
    max_message: u64,
    (head_by, limit): (std::time::Instant, std::time::Duration),
) -> Result<Upgrade<S>, UpgradeError> {
    let read = tokio::time::timeout_at(head_by.into(), read_head(&mut stream)).await;
    let Ok(read) = read else {
        // The peer speaks HTTP (it began a request), so it can read why.
        return refuse(
            &mut stream,
            408,
            "Request Timeout",
            "",
            format!("no complete request within {limit:?}"),
        )
        .await;
    };
    let Some((head, rest)) = read? else {
        return refuse(
            &mut stream,
            431,
            "Request Header Fields Too Large",
            "",
            format!("a request head over {MAX_HEAD} bytes"),
        )
        .await;
    };
    match judge(&head, config, tls) {
        Verdict::Refuse {
            status,
            phrase,
            extra,
            why,
        } => refuse(&mut stream, status, phrase, extra, why).await,
        Verdict::Page(page) => {
            let page = &config.pages[page];
            respond(&mut stream, 200, "OK", "", &page.content_type, &page.body).await?;
            Ok(Upgrade::Served { status: 200 })
        }
        Verdict::NotFound => {
            let body = b"not found\n";
            let plain = "text/plain; charset=utf-8";
            respond(&mut stream, 404, "Not Found", "", plain, body).await?;
            Ok(Upgrade::Served { status: 404 })
        }
        Verdict::Upgrade { accept } => {
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
            );
            stream.write_all(response.as_bytes()).await?;
            Ok(Upgrade::WebSocket(WsStream::new(
                stream,
                Role::Server,
                max_message,
                rest,
            )))
        }
    }
}

/// What a request head gets, decided without the socket (so the fuzzer
/// and the tests can ask about any bytes).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// An HTTP error, with the reason for its body.
    Refuse {
        status: u16,
        phrase: &'static str,
        extra: &'static str,
        why: String,
    },
    /// The page at this index of the configuration's pages.
    Page(usize),
    /// A plain GET of no page.
    NotFound,
    /// The upgrade, with the `Sec-WebSocket-Accept` value to answer.
    Upgrade { accept: String },
}

fn refusal(status: u16, phrase: &'static str, extra: &'static str, why: String) -> Verdict {
    Verdict::Refuse {
        status,
        phrase,
        extra,
        why,
    }
}

/// Judges one request head (up to and with its blank line): a page, an
/// upgrade, or which HTTP error and why.
pub(crate) fn judge(head: &[u8], config: &WebSocketConfig, tls: bool) -> Verdict {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => {
            return refusal(400, "Bad Request", "", "not an HTTP/1.1 request".into());
        }
    }
    let path = request.path.unwrap_or("/").split('?').next().unwrap_or("/");
    if request.method != Some("GET") {
        let method = request.method.unwrap_or("?");
        return refusal(
            405,
            "Method Not Allowed",
            "Allow: GET\r\n",
            format!("{method} is not served here; GET a page or upgrade to a WebSocket"),
        );
    }
    let headers = request.headers;
    if !lists(header(headers, "Upgrade"), "websocket") {
        // A plain GET: a page, or nothing.
        return match config.pages.iter().position(|p| p.path == path) {
            Some(page) => Verdict::Page(page),
            None => Verdict::NotFound,
        };
    }
    if header(headers, "Sec-WebSocket-Version") != Some("13") {
        return refusal(
            426,
            "Upgrade Required",
            "Sec-WebSocket-Version: 13\r\n",
            "only WebSocket version 13 is spoken".into(),
        );
    }
    let Some(key) = header(headers, "Sec-WebSocket-Key") else {
        return refusal(400, "Bad Request", "", "no Sec-WebSocket-Key".into());
    };
    if !lists(header(headers, "Connection"), "upgrade") {
        let why = "an upgrade needs `Connection: Upgrade`".into();
        return refusal(400, "Bad Request", "", why);
    }
    if let Some(origin) = header(headers, "Origin") {
        let host = header(headers, "Host").unwrap_or("");
        if !config.allows(origin, host, tls) {
            let why = format!("origin {} is not allowed here", origin.escape_debug());
            return refusal(403, "Forbidden", "", why);
        }
    }
    if !lists(header(headers, "Sec-WebSocket-Protocol"), SUBPROTOCOL) {
        let why = format!("the WebSocket must ask for the subprotocol {SUBPROTOCOL}");
        return refusal(400, "Bad Request", "", why);
    }
    Verdict::Upgrade {
        accept: derive_accept_key(key.as_bytes()),
    }
}

/// The client's side: asks `host` for a WebSocket at `path` carrying v2,
/// and checks the answer.
pub(crate) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    path: &str,
    max_message: u64,
) -> io::Result<WsStream<S>> {
    let key = tungstenite::handshake::client::generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let refused = |why: String| io::Error::new(io::ErrorKind::ConnectionRefused, why);
    let Some((head, rest)) = read_head(&mut stream).await? else {
        return Err(refused(
            "the server's answer to the upgrade is too long".into(),
        ));
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    if !matches!(response.parse(&head), Ok(httparse::Status::Complete(_))) {
        return Err(refused(
            "the server did not answer the upgrade in HTTP".into(),
        ));
    }
    let status = response.code.unwrap_or(0);
    if status != 101 {
        // Its body says why, in one line.
        let mut why = String::from_utf8_lossy(&rest)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        if why.is_empty() {
            why = response.reason.unwrap_or("").to_owned();
        }
        return Err(refused(format!(
            "the server refused the WebSocket: HTTP {status}: {why}"
        )));
    }
    let headers = response.headers;
    if header(headers, "Sec-WebSocket-Accept") != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(refused("the server's Sec-WebSocket-Accept is wrong".into()));
    }
    if header(headers, "Sec-WebSocket-Protocol") != Some(SUBPROTOCOL) {
        return Err(refused(format!(
            "the server did not agree to the subprotocol {SUBPROTOCOL}"
        )));
    }
    Ok(WsStream::new(stream, Role::Client, max_message, rest))
}

/// A WebSocket newcomer the server will not serve (full, too many from its
/// address, too fast): it hears `503 Service Unavailable` with the reason,
/// once its request came (within `wait`), rather than a reset it could not
/// tell from a network failure.
pub(crate) async fn turn_away<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    reason: &str,
    wait: std::time::Duration,
) {
    if let Ok(Ok(Some(_))) = tokio::time::timeout(wait, read_head(&mut stream)).await {
        let body = format!("{reason}\n");
        let _ = tokio::time::timeout(
            wait,
            respond(
                &mut stream,
                503,
                "Service Unavailable",
                "Retry-After: 1\r\n",
                "text/plain; charset=utf-8",
                body.as_bytes(),
            ),
        )
        .await;
    }
}
