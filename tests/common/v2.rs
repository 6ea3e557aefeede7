//! Frame-level v2 helpers: a raw conversation that sends exactly the bytes
//! a test wants, for peers the library client would never imitate.

use futures::{SinkExt, StreamExt};
use rust_tcp::ClientConfig;
use rust_tcp::protocol::v2::{Frame, Hello, V2Codec};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::PATIENCE;

/// A HELLO offering v2 with a 1 MiB limit and the name `name`.
pub fn hello(name: &str) -> Frame {
    Frame::Hello(Hello::new(vec![2], 1 << 20, 0, name))
}

/// The bytes of `frames`, back to back.
pub fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut b = bytes::BytesMut::new();
    for f in frames {
        f.encode(&mut b);
    }
    b.to_vec()
}

/// A raw frame-level v2 conversation, after a successful handshake.
pub async fn raw_v2(addr: &str, name: &str) -> Framed<TcpStream, V2Codec> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(stream, V2Codec::default());
    framed.send(hello(name)).await.unwrap();
    let welcome = next_frame(&mut framed).await;
    assert!(matches!(welcome, Frame::Welcome(_)), "{welcome:?}");
    framed
}

/// The next frame, within PATIENCE.
pub async fn next_frame(framed: &mut Framed<TcpStream, V2Codec>) -> Frame {
    tokio::time::timeout(PATIENCE, framed.next())
        .await
        .expect("a frame in time")
        .expect("connection open")
        .expect("a valid frame")
}

/// The library client's settings with the name `name`.
pub fn named(name: &str) -> ClientConfig {
    ClientConfig::default().name(name)
}

/// A raw v2 conversation from the loopback address `from` (127.0.0.2 and
/// up, for per-address rules), after sending `first`.
pub async fn raw_v2_from(
    server: std::net::SocketAddr,
    from: &str,
    first: Frame,
) -> Framed<TcpStream, V2Codec> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(server).await.unwrap();
    let mut framed = Framed::new(stream, V2Codec::default());
    framed.send(first).await.unwrap();
    framed
}
