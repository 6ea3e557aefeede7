//! v2 over WebSocket (spec section 4): the upgrade and its checks, frames
//! in messages, what breaks the mapping, and that a WebSocket connection
//! is served like a TCP one (service, limits, memory budget).

mod common;

use bytes::Bytes;
use common::{Admitted, Collect, PATIENCE, ServerProcess};
use rust_tcp::{Client, ClientConfig, ClientError, ServerConfig, Transport, WebSocketConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A library server with a WebSocket listener; its TCP and ws addresses.
async fn server_with<S: rust_tcp::Service>(
    service: S,
    config: ServerConfig,
    ws: WebSocketConfig,
) -> (String, String, tokio_util::sync::CancellationToken) {
    let server = rust_tcp::Server::bind("127.0.0.1:0", config.websocket(ws))
        .await
        .unwrap();
    let tcp = server.local_addr().to_string();
    let ws = server.websocket_addr().unwrap().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(server.run(service, stop.clone().cancelled_owned()));
    (tcp, ws, stop)
}

/// Sends an HTTP request head and returns the whole answer (the server
/// closes after anything but a 101) or the head of a 101.
async fn http(ws: &str, head: impl AsRef<[u8]>) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(ws).await.unwrap();
    stream.write_all(head.as_ref()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if n == 0 || (text.starts_with("HTTP/1.1 101") && text.contains("\r\n\r\n")) {
                break;
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.unwrap();
    (stream, String::from_utf8_lossy(&got).into_owned())
}

fn upgrade(ws: &str, extra: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {ws}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

const PROTOCOL: &str = "Sec-WebSocket-Protocol: rust-tcp.v2\r\n";

/// A v2 TEXT frame's bytes.
fn text_frame(text: &str) -> Vec<u8> {
    common::encode(&[rust_tcp::protocol::v2::Frame::Text(text.into())])
}

/// What the collecting service heard next: (sender's name, text).
async fn next_said(
    got: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) -> (String, String) {
    tokio::time::timeout(PATIENCE, got.recv())
        .await
        .expect("a message in time")
        .expect("the service is still running")
}

/// A client's WebSocket frame (masked, as it must be).
fn ws_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// The server's next WebSocket frame: (opcode, payload).
async fn read_ws(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let read = async {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(head[1] & 0x80, 0, "a server's frames are not masked");
        let len = match head[1] & 0x7f {
            126 => u64::from(stream.read_u16().await.unwrap()),
            127 => stream.read_u64().await.unwrap(),
            n => u64::from(n),
        };
        let mut payload = vec![0; len as usize];
        stream.read_exact(&mut payload).await.unwrap();
        (head[0] & 0x0f, payload)
    };
    tokio::time::timeout(PATIENCE, read).await.unwrap()
}

/// A WebSocket that finished the upgrade and its v2 handshake as `name`.
async fn open_session(ws: &str, name: &str) -> TcpStream {
    let (mut stream, answer) = http(ws, &upgrade(ws, PROTOCOL)).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert!(
        answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{answer}"
    );
    assert!(
        answer.contains("Sec-WebSocket-Protocol: rust-tcp.v2"),
        "{answer}"
    );
    stream
        .write_all(&ws_frame(2, true, &common::encode(&[common::hello(name)])))
        .await
        .unwrap();
    let (opcode, welcome) = read_ws(&mut stream).await;
    assert_eq!(
        (opcode, welcome[1]),
        (2, 0x02),
        "a WELCOME in a binary message"
    );
    stream
}

#[tokio::test]
async fn the_upgrade_checks_what_a_browser_port_must() {
    let (_, ws, stop) = server_with(
        Admitted::new().0,
        ServerConfig::default(),
        WebSocketConfig::new("127.0.0.1:0")
            .allowed_origins(vec!["https://chat.example".into()])
            .pages(vec![rust_tcp::Page::new("/", "text/html", "<p>hi</p>")]),
    )
    .await;
    let cases = [
        (upgrade(&ws, ""), "HTTP/1.1 400", "subprotocol rust-tcp.v2"),
        (
            upgrade(&ws, &format!("{PROTOCOL}Origin: http://evil.example\r\n")),
            "HTTP/1.1 403",
            "origin http://evil.example is not allowed",
        ),
        (
            upgrade(&ws, &format!("{PROTOCOL}Origin: https://chat.example\r\n")),
            "HTTP/1.1 101",
            "",
        ),
        (
            upgrade(&ws, &format!("{PROTOCOL}Origin: http://{ws}\r\n")),
            "HTTP/1.1 101",
            "",
        ),
        (
            upgrade(&ws, PROTOCOL).replace("Version: 13", "Version: 8"),
            "HTTP/1.1 426",
            "Sec-WebSocket-Version: 13",
        ),
        (
            format!("POST / HTTP/1.1\r\nHost: {ws}\r\n\r\n"),
            "HTTP/1.1 405",
            "Allow: GET",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: {ws}\r\n\r\n"),
            "HTTP/1.1 200",
            "<p>hi</p>",
        ),
        (
            format!("GET /elsewhere HTTP/1.1\r\nHost: {ws}\r\n\r\n"),
            "HTTP/1.1 404",
            "not found",
        ),
        (
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(9000)),
            "HTTP/1.1 431",
            "request head over",
        ),
        (
            "this is not HTTP\r\n\r\n".to_string(),
            "HTTP/1.1 400",
            "not an HTTP/1.1 request",
        ),
    ];
    for (request, status, said) in cases {
        let (_, answer) = http(&ws, &request).await;
        assert!(answer.starts_with(status), "{request:?} got {answer:?}");
        assert!(answer.contains(said), "{request:?} got {answer:?}");
    }
    stop.cancel();
}

/// A library server serving a directory of its own and the JavaScript
/// client with its MessagePack module (`WebSocketConfig::directory`,
/// `javascript_client`): each file at its path with its content type, a
/// hidden file not at all, and a directory file winning over the client.
#[tokio::test]
async fn a_directory_and_the_javascript_client_are_served_by_the_library() {
    let root = std::env::temp_dir().join(format!("rust-tcp-ws-pages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("css")).unwrap();
    std::fs::write(root.join("index.html"), "<p>my app</p>").unwrap();
    std::fs::write(root.join("css/app.css"), "p { color: red }").unwrap();
    std::fs::write(root.join(".env"), "SECRET=1").unwrap();
    let ws_config = WebSocketConfig::new("127.0.0.1:0")
        .javascript_client()
        .directory(&root)
        .unwrap();
    let (_, ws, stop) = server_with(Admitted::new().0, ServerConfig::default(), ws_config).await;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {ws}\r\n\r\n");
    let cases = [
        ("/", "text/html", "<p>my app</p>"),
        ("/css/app.css", "text/css", "color: red"),
        (
            "/rust-tcp.js",
            "text/javascript",
            "export class TypedClient",
        ),
        ("/msgpack.js", "text/javascript", "export function decode"),
        ("/.env", "404", "not found"),
    ];
    for (path, kind, body) in cases {
        let (_, answer) = http(&ws, get(path)).await;
        assert!(
            answer.contains(kind) && answer.contains(body),
            "{path}: {answer}"
        );
    }
    let err = WebSocketConfig::new("127.0.0.1:0")
        .directory(root.join("missing"))
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    stop.cancel();
    std::fs::remove_dir_all(root).unwrap();
}

/// Spec 4.1: the handshake deadline covers the HTTP head and the HELLO.
/// A head not whole in time gets 408; a WebSocket that upgraded (so speaks
/// v2) and sends no HELLO gets a v2 CLOSE 1008, then the WebSocket close.
#[tokio::test]
async fn the_handshake_deadline_covers_the_request_and_the_hello() {
    let (_, ws, stop) = server_with(
        Admitted::new().0,
        ServerConfig::default().handshake_timeout(std::time::Duration::from_secs(1)),
        WebSocketConfig::new("127.0.0.1:0"),
    )
    .await;
    let (_, answer) = http(&ws, format!("GET / HTTP/1.1\r\nHost: {ws}\r\n")).await;
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\nno complete request within 1s\n"),
        "{answer}"
    );

    let (mut stream, answer) = http(&ws, &upgrade(&ws, PROTOCOL)).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let (opcode, close) = read_ws(&mut stream).await;
    assert_eq!(opcode, 2, "a binary message");
    assert_eq!(
        close,
        common::encode(&[rust_tcp::protocol::v2::Frame::Close(
            rust_tcp::protocol::v2::CodeReason::new(
                rust_tcp::protocol::v2::CloseCode::POLICY_VIOLATION,
                "no HELLO within 1s"
            )
        )])
    );
    let (opcode, payload) = read_ws(&mut stream).await;
    assert_eq!(
        (opcode, &payload[..]),
        (8, &[0x03, 0xe8][..]),
        "WebSocket close 1000"
    );
    stop.cancel();
}

#[tokio::test]
async fn a_websocket_is_served_like_a_tcp_connection() {
    let (service, admitted) = Admitted::new();
    let (_, ws, stop) = server_with(
        service,
        ServerConfig::default(),
        WebSocketConfig::new("127.0.0.1:0"),
    )
    .await;
    let mut stream = open_session(&ws, "browser").await;
    let peer = admitted.recv_timeout(PATIENCE).unwrap();
    assert_eq!(peer.transport, Transport::WebSocket);
    assert_eq!(peer.name, "browser");
    // The close handshake inside the messages, then a WebSocket close 1000.
    stream
        .write_all(&ws_frame(
            2,
            true,
            &common::encode(&[rust_tcp::protocol::v2::Frame::Close(
                rust_tcp::protocol::v2::CodeReason::new(
                    rust_tcp::protocol::v2::CloseCode::NORMAL,
                    "bye",
                ),
            )]),
        ))
        .await
        .unwrap();
    let (opcode, ack) = read_ws(&mut stream).await;
    assert_eq!((opcode, ack[1], &ack[6..8]), (2, 0x0a, &[0x03, 0xe8][..]));
    let (opcode, close) = read_ws(&mut stream).await;
    assert_eq!((opcode, &close[..2]), (8, &[0x03, 0xe8][..]));
    stop.cancel();
}

#[tokio::test]
async fn what_breaks_the_mapping_gets_a_websocket_close_that_says_why() {
    let (_, ws, stop) = server_with(
        Collect::new().0,
        ServerConfig::default()
            .max_frame_size(4096)
            .max_memory(1 << 20),
        WebSocketConfig::new("127.0.0.1:0"),
    )
    .await;
    let text = text_frame;
    let two = [text("one"), text("two")].concat();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (ws_frame(1, true, b"hello"), 1003, "a text message"),
        (ws_frame(2, true, &two), 1002, "exactly one v2 frame"),
        (ws_frame(2, true, &text("cut")[..5]), 1002, "inside a frame"),
        (
            ws_frame(2, true, &vec![0; 5000]),
            1009,
            "a message of more than 4102 bytes",
        ),
    ];
    for (bad, code, said) in cases {
        let mut stream = open_session(&ws, "mapper").await;
        stream.write_all(&bad).await.unwrap();
        let (opcode, close) = read_ws(&mut stream).await;
        assert_eq!(opcode, 8, "a WebSocket close");
        assert_eq!(u16::from_be_bytes([close[0], close[1]]), code);
        assert!(
            String::from_utf8_lossy(&close[2..]).contains(said),
            "{:?}",
            String::from_utf8_lossy(&close)
        );
    }
    stop.cancel();
}

#[tokio::test]
async fn fragmented_messages_and_pings_are_fine_and_large_frames_stream() {
    let (service, mut got) = Collect::new();
    let (_, ws, stop) = server_with(
        service,
        ServerConfig::default(),
        WebSocketConfig::new("127.0.0.1:0"),
    )
    .await;
    let mut stream = open_session(&ws, "frag").await;
    let frame = text_frame("in three pieces");
    stream
        .write_all(&ws_frame(2, false, &frame[..4]))
        .await
        .unwrap();
    stream
        .write_all(&ws_frame(9, true, b"are you there"))
        .await
        .unwrap();
    stream
        .write_all(&ws_frame(0, false, &frame[4..10]))
        .await
        .unwrap();
    stream
        .write_all(&ws_frame(0, true, &frame[10..]))
        .await
        .unwrap();
    let (opcode, pong) = read_ws(&mut stream).await;
    assert_eq!((opcode, &pong[..]), (10, &b"are you there"[..]));
    let said = next_said(&mut got).await;
    assert_eq!(said, ("frag".to_string(), "in three pieces".to_string()));
    // A frame over 64 KiB, the size past which the memory budget admits a
    // frame by its header before reading it (as over TCP).
    let big = "x".repeat(200_000);
    let frame = text_frame(&big);
    stream.write_all(&ws_frame(2, true, &frame)).await.unwrap();
    let said = next_said(&mut got).await;
    assert_eq!(said.1.len(), 200_000);
    stop.cancel();
}

#[tokio::test]
async fn the_rust_client_speaks_ws_urls_and_refuses_v1_over_websocket() {
    let (service, mut got) = Collect::new();
    let (_, ws, stop) = server_with(
        service,
        ServerConfig::default(),
        WebSocketConfig::new("127.0.0.1:0"),
    )
    .await;
    let client = Client::connect_with(
        &format!("ws://{ws}/"),
        ClientConfig::default().name("rusty"),
    )
    .await
    .unwrap();
    assert_eq!(
        client.request(Bytes::from_static(b"echo")).await.unwrap(),
        "echo"
    );
    client.send_text("over ws").await.unwrap();
    client.close().await.unwrap();
    let said = next_said(&mut got).await;
    assert_eq!(said, ("rusty".to_string(), "over ws".to_string()));
    let v1 = ClientConfig::default().version(rust_tcp::ProtocolVersion::V1);
    let err = Client::connect_with(&format!("ws://{ws}/"), v1)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("v1 does not travel over WebSocket"),
        "{err}"
    );
    let err = Client::connect_with(&format!("wss://{ws}/"), ClientConfig::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("wss:// needs TLS settings"),
        "{err}"
    );
    stop.cancel();
}

/// The binary: `--ws-addr`, its chat page, a refused newcomer told in HTTP
/// (503), v1 bytes over a WebSocket refused.
#[test]
fn the_server_binary_serves_websockets_and_its_chat_page() {
    let server = ServerProcess::start(&[
        "--broadcast",
        "--ws-addr",
        "127.0.0.1:0",
        "--max-connections",
        "1",
    ]);
    let line = server.wait_for_log("listening for WebSockets on ws://");
    let ws: String = line
        .rsplit("ws://")
        .next()
        .unwrap()
        .chars()
        .take_while(|c| *c != '/')
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_, page) = http(&ws, &format!("GET / HTTP/1.1\r\nHost: {ws}\r\n\r\n")).await;
        assert!(
            page.contains("Content-Type: text/html") && page.contains("rust-tcp chat"),
            "{page}"
        );
        let (_, script) = http(
            &ws,
            &format!("GET /rust-tcp.js HTTP/1.1\r\nHost: {ws}\r\n\r\n"),
        )
        .await;
        assert!(script.contains("text/javascript") && script.contains("export class Client"));
        // v1 bytes in a WebSocket message: refused.
        let mut stream = {
            let (s, answer) = http(&ws, &upgrade(&ws, PROTOCOL)).await;
            assert!(answer.starts_with("HTTP/1.1 101"));
            s
        };
        stream
            .write_all(&ws_frame(2, true, &common::v1_frame(b"hi")))
            .await
            .unwrap();
        let (opcode, _) = read_ws(&mut stream).await;
        assert_eq!(opcode, 8);
        drop(stream);
        server.wait_for_log("v1 does not travel over WebSocket");
        // The one slot taken, the next WebSocket newcomer hears 503.
        let _holder = open_session(&ws, "holder").await;
        server.wait_for_log("name=holder");
        let (_, answer) = http(&ws, &upgrade(&ws, PROTOCOL)).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("server full"), "{answer}");
    });
    server.wait_for_log("transport=websocket");
}

/// Behind a balancer (`--proxy-protocol`), the WebSocket listener takes the
/// client's real address from the PROXY header, as the TCP one does.
#[tokio::test]
async fn behind_a_balancer_the_real_address_counts() {
    let (service, admitted) = Admitted::new();
    let (_, ws, stop) = server_with(
        service,
        ServerConfig::default().proxy_protocol(true),
        WebSocketConfig::new("127.0.0.1:0"),
    )
    .await;
    // PROXY v2, TCP over IPv4, from 203.0.113.7:4242.
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend([0x21, 0x11, 0, 12, 203, 0, 113, 7, 127, 0, 0, 1]);
    header.extend(4242u16.to_be_bytes());
    header.extend(8081u16.to_be_bytes());
    let mut request = header;
    request.extend_from_slice(upgrade(&ws, PROTOCOL).as_bytes());
    let (mut stream, answer) = http(&ws, &request).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    stream
        .write_all(&ws_frame(
            2,
            true,
            &common::encode(&[common::hello("proxied")]),
        ))
        .await
        .unwrap();
    let (_, welcome) = read_ws(&mut stream).await;
    assert_eq!(welcome[1], 0x02);
    let peer = admitted.recv_timeout(PATIENCE).unwrap();
    assert_eq!(peer.addr.to_string(), "203.0.113.7:4242");
    assert_eq!(peer.transport, Transport::WebSocket);
    stop.cancel();
}

/// `wss://`: the WebSocket listener speaks TLS with the server's own
/// certificate, and the client checks it as over TCP.
#[tokio::test]
async fn websockets_over_tls_use_the_servers_certificate() {
    let ca = common::certs::TestCa::new("ws-tls");
    let leaf = ca.leaf("server", &["127.0.0.1"], false);
    let config = ServerConfig::default()
        .tls(rust_tcp::ServerTls::from_pem_files(&leaf.cert, &leaf.key, None).unwrap());
    let (service, mut got) = Collect::new();
    let (_, ws, stop) = server_with(service, config, WebSocketConfig::new("127.0.0.1:0")).await;
    let tls = rust_tcp::ClientTls::with_ca_file(&ca.cert).unwrap();
    let client = Client::connect_with(
        &format!("wss://{ws}/"),
        ClientConfig::default().name("secure").tls(tls),
    )
    .await
    .unwrap();
    client.send_text("over wss").await.unwrap();
    assert_eq!(client.request(Bytes::from_static(b"x")).await.unwrap(), "x");
    client.close().await.unwrap();
    let said = next_said(&mut got).await;
    assert_eq!(said, ("secure".to_string(), "over wss".to_string()));
    // A plain ws:// client on the TLS port gets no WebSocket.
    let err = Client::connect_with(&format!("ws://{ws}/"), ClientConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    stop.cancel();
}
