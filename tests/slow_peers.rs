//! Timeouts a trickle cannot defeat, against the real server: only
//! complete frames count as progress, so sockets that send nothing, a lone
//! version byte, or a frame a byte at a time are cut on time, and an honest
//! client is served meanwhile.

mod common;

use common::*;
use rust_tcp::protocol::v2::{CloseCode, Frame, V2Codec};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

/// Pace of a trickle: one byte this often.
const DRIP: Duration = Duration::from_millis(100);

/// Sends `bytes` one at a time, a DRIP apart, for at most `budget`;
/// returns early once the server has closed the connection.
fn trickle(stream: &mut TcpStream, bytes: &[u8], budget: Duration) {
    let until = Instant::now() + budget;
    for b in bytes.iter().cycle() {
        if Instant::now() > until || stream.write_all(&[*b]).is_err() {
            return;
        }
        std::thread::sleep(DRIP);
    }
}

/// Reads until the server closes, within PATIENCE; what it sent.
fn until_closed(mut stream: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    got
}

/// Row "200 sockets that send nothing (or only 0x01, or only 0x02) hold
/// every slot and new clients wait forever": with 12 slots all held that
/// way, a newcomer displaces the oldest of them (none has finished its
/// handshake) and is served at once, not left waiting; each silent socket
/// is cut at the handshake deadline, and then an honest client is served.
#[test]
fn sockets_that_never_send_a_first_frame_are_cut_and_free_their_slots() {
    let server =
        ServerProcess::start(&["--max-connections", "12", "--handshake-timeout-secs", "0.5"]);
    let started = Instant::now();
    let mut held = Vec::new();
    for prefix in [&[][..], &[1], &[2], &[1, 0]] {
        for _ in 0..3 {
            let mut s = raw_connect(server.addr);
            s.write_all(prefix).unwrap();
            held.push(s);
        }
    }
    server.wait_for_logs(&["connection opened"; 12]);
    let asked = Instant::now();
    let out = run_client(&["--addr", &server.addr_arg(), "not too early"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_output_line(), printed("not too early"));
    let answered_in = asked.elapsed();
    server.wait_for_log("displaced by a newer connection");
    for s in held {
        until_closed(s);
    }
    let cut_after = started.elapsed();
    let out = run_client(&["--addr", &server.addr_arg(), "served after all"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_output_line(), printed("served after all"));
    server.wait_for_logs(&["no complete first frame within 500ms", "no HELLO in time"]);
    eprintln!("served in {answered_in:?}; 12 silent sockets cut after {cut_after:?}");
}

/// Row "after the handshake, one byte every 20 s inside a frame: never
/// cut": a v2 frame trickled in is closed with 1008 at its deadline.
#[test]
fn a_v2_frame_trickled_in_is_closed_with_1008() {
    let server = ServerProcess::start(&["--frame-timeout-secs", "0.5"]);
    let mut s = raw_connect(server.addr);
    s.write_all(&encode(&[hello("drip")])).unwrap();
    // A TEXT of 64 bytes, its header and then its content one byte at a time.
    let mut frame = vec![2, 3, 0, 0, 0, 64];
    frame.extend_from_slice(&[b'x'; 64]);
    let started = Instant::now();
    let mut writer = s.try_clone().unwrap();
    let dripping = std::thread::spawn(move || trickle(&mut writer, &frame, PATIENCE));
    let got = until_closed(s);
    let cut_after = started.elapsed();
    dripping.join().unwrap();
    let mut buf = bytes::BytesMut::from(&got[..]);
    let mut codec = V2Codec::default();
    let mut frames = Vec::new();
    while let Ok(Some(f)) = codec.decode(&mut buf) {
        frames.push(f);
    }
    assert!(
        matches!(frames.last(), Some(Frame::Close(c)) if c.code == CloseCode::POLICY_VIOLATION),
        "{frames:?}"
    );
    assert!(
        cut_after < Duration::from_secs(5),
        "cut after {cut_after:?}"
    );
    // Its header arrives byte by byte too, so the log names its length or
    // says the header never completed, depending on where the deadline fell.
    server.wait_for_log("too slow: a frame");
    // Others are served all along.
    let out = run_client(&["--addr", &server.addr_arg(), "still fine"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_output_line(), printed("still fine"));
}

/// Rows "one v1 message, then nothing" and "v1 at one byte per 5 s": the
/// idle limit and the frame deadline apply to v1 too.
#[test]
fn v1_connections_are_cut_when_idle_or_trickling() {
    let server =
        ServerProcess::start(&["--idle-timeout-secs", "0.5", "--frame-timeout-secs", "0.5"]);
    let mut idle = raw_connect(server.addr);
    idle.write_all(&v1_frame(b"one and done")).unwrap();
    assert_eq!(server.next_output_line(), printed("one and done"));
    until_closed(idle);
    server.wait_for_log("too slow: idle for 500ms");

    let mut drip = raw_connect(server.addr);
    drip.write_all(&v1_frame(b"first")).unwrap();
    assert_eq!(server.next_output_line(), printed("first"));
    let mut writer = drip.try_clone().unwrap();
    let dripping =
        std::thread::spawn(move || trickle(&mut writer, &v1_frame(&[b'y'; 40]), PATIENCE));
    until_closed(drip);
    dripping.join().unwrap();
    server.wait_for_log("too slow: a frame");
}
