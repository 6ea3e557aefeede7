//! contrib/wireshark/rust_tcp.lua, checked with the real `tshark`: a
//! capture built from the spec's hex examples (the whole v2 session, a v1
//! message, the frozen unsupported-version reply), with a frame split across
//! two segments and several frames in one segment, must decode to exactly
//! the frames the spec lists, with nothing malformed. tshark refuses Lua
//! scripts to root, so as root it runs as `nobody`. `.ci/run` installs it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bytes of the spec's first ```hex TAG block (comments skipped).
fn spec_hex(tag: &str) -> Vec<u8> {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md")).unwrap();
    let start = spec
        .find(&format!("```hex {tag}\n"))
        .unwrap_or_else(|| panic!("the spec has a `hex {tag}` block"));
    let body = &spec[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let body = &body[..body.find("```").unwrap()];
    body.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

/// A pcap file of TCP segments between loopback endpoints.
struct Capture {
    bytes: Vec<u8>,
    time: u32,
}

/// One direction of a TCP connection: where from, where to, next sequence.
struct Flow {
    from: u16,
    to: u16,
    seq: u32,
    ack: u32,
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

impl Capture {
    fn new() -> Self {
        // pcap's global header: magic, version 2.4, zone, accuracy,
        // snapshot length, link type.
        let mut bytes = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
        bytes.extend(2u16.to_le_bytes());
        bytes.extend(4u16.to_le_bytes());
        bytes.extend([0u8; 8]);
        bytes.extend(65535u32.to_le_bytes());
        bytes.extend(1u32.to_le_bytes()); // Ethernet
        Capture { bytes, time: 0 }
    }

    fn segment(&mut self, flow: &mut Flow, flags: u8, payload: &[u8]) {
        let mut tcp = Vec::new();
        tcp.extend(flow.from.to_be_bytes());
        tcp.extend(flow.to.to_be_bytes());
        tcp.extend(flow.seq.to_be_bytes());
        tcp.extend(flow.ack.to_be_bytes());
        tcp.extend([5 << 4, flags]);
        tcp.extend(65535u16.to_be_bytes());
        tcp.extend([0, 0, 0, 0]); // checksum (not verified), urgent
        tcp.extend(payload);
        let mut ip = vec![0x45, 0];
        ip.extend((20 + tcp.len() as u16).to_be_bytes());
        ip.extend([0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0x08, 0x00];
        frame.extend(ip);
        frame.extend(tcp);
        self.time += 1;
        self.bytes.extend(self.time.to_le_bytes());
        self.bytes.extend(0u32.to_le_bytes());
        self.bytes.extend((frame.len() as u32).to_le_bytes());
        self.bytes.extend((frame.len() as u32).to_le_bytes());
        self.bytes.extend(frame);
        flow.seq = flow
            .seq
            .wrapping_add(payload.len() as u32 + u32::from(flags & SYN != 0));
    }

    /// A connection from `client_port` to 8080, handshake done: the two
    /// directions.
    fn connect(&mut self, client_port: u16, server_port: u16) -> (Flow, Flow) {
        let mut c = Flow {
            from: client_port,
            to: server_port,
            seq: 1000,
            ack: 0,
        };
        let mut s = Flow {
            from: server_port,
            to: client_port,
            seq: 5000,
            ack: 1001,
        };
        self.segment(&mut c, SYN, &[]);
        self.segment(&mut s, SYN | ACK, &[]);
        c.ack = s.seq;
        self.segment(&mut c, ACK, &[]);
        (c, s)
    }

    /// `payload` from `a` to `b`, acknowledged.
    fn send(&mut self, a: &mut Flow, b: &mut Flow, payload: &[u8]) {
        a.ack = b.seq;
        self.segment(a, PSH_ACK, payload);
        b.ack = a.seq;
    }
}

/// The spec's session, a v1 message and the frozen reply, as captured
/// with the server on `port`.
fn capture(port: u16) -> Vec<u8> {
    let client = spec_hex("client");
    let server = spec_hex("server");
    let mut cap = Capture::new();

    // v2: HELLO split across two segments, its tail sharing the second with
    // the TEXT; REQUEST and CLOSE in one segment; the server's RESPONSE and
    // CLOSE in one segment.
    let hello_len = 6 + usize::from(client[5]);
    let text_end = hello_len + 8;
    let (mut c, mut s) = cap.connect(40001, port);
    cap.send(&mut c, &mut s, &client[..10]);
    cap.send(&mut c, &mut s, &client[10..text_end]);
    let welcome_len = 6 + usize::from(server[5]);
    cap.send(&mut s, &mut c, &server[..welcome_len]);
    cap.send(&mut c, &mut s, &client[text_end..]);
    cap.send(&mut s, &mut c, &server[welcome_len..]);

    // v1: "hello" split after its first two bytes, then exit.
    let v1 = spec_hex("v1");
    let (mut c, mut s) = cap.connect(40002, port);
    cap.send(&mut c, &mut s, &v1[..2]);
    cap.send(&mut c, &mut s, &v1[2..]);
    cap.send(&mut c, &mut s, b"\x01\x00\x04exit");

    // A client speaking version 7, and the frozen reply.
    let (mut c, mut s) = cap.connect(40003, port);
    cap.send(&mut c, &mut s, &[7, 0, 0, 0, 0, 0]);
    cap.send(&mut s, &mut c, &spec_hex("reply"));
    cap.bytes
}

/// Runs tshark on `dir`'s `capture` with the dissector (as `nobody` when
/// we are root).
fn tshark(dir: &Path, capture: &str, args: &[&str]) -> String {
    let script = dir.join("rust_tcp.lua");
    let lua = format!("lua_script:{}", script.display());
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "tshark"]);
        c
    } else {
        Command::new("tshark")
    };
    let out = cmd
        .env("HOME", dir)
        .args(["-X", &lua, "-r"])
        .arg(dir.join(capture))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run tshark ({e}); .ci/run installs it (apt-get install tshark)")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark failed: {stderr}");
    assert!(
        !stderr.contains("Lua"),
        "tshark complained about the script: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether this process runs as root (from /proc, no `unsafe` needed).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

/// A directory everyone may read, with the capture and the script.
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rust-tcp-wireshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.join("session.pcap"), capture(8080)).unwrap();
    std::fs::write(dir.join("other-port.pcap"), capture(9000)).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contrib/wireshark/rust_tcp.lua"
        ),
        dir.join("rust_tcp.lua"),
    )
    .unwrap();
    for f in ["session.pcap", "other-port.pcap", "rust_tcp.lua"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    dir
}

#[test]
fn the_dissector_decodes_the_specs_session_frame_by_frame() {
    let dir = workdir();
    let summaries = |capture: &str, extra: &[&str]| -> Vec<String> {
        let mut args = extra.to_vec();
        args.extend(["-T", "fields", "-e", "rust_tcp.summary"]);
        args.extend(["-E", "aggregator=|"]);
        tshark(&dir, capture, &args)
            .lines()
            .filter(|l| !l.is_empty())
            .flat_map(|l| l.split('|'))
            .map(str::to_owned)
            .collect()
    };
    let frames = summaries("session.pcap", &[]);
    assert_eq!(
        frames,
        [
            "v2 HELLO versions=02 max_frame=16777216 heartbeat_ms=0 name=alice",
            "v2 TEXT \"hi\"",
            "v2 WELCOME version=2 max_frame=16777216 heartbeat_ms=30000 name=rust-tcp",
            "v2 REQUEST id=1 4 bytes",
            "v2 CLOSE 1000 \"bye\"",
            "v2 RESPONSE id=1 ok 4 bytes",
            "v2 CLOSE 1000 \"closed\"",
            "v1 \"hello\"",
            "v1 \"exit\"",
            "unknown version 7, 6 bytes not decoded",
            "UNSUPPORTED VERSION reply: speaks 0102, \"unsupported version 7, this server speaks 1 and 2\"",
        ]
    );
    // Any other port: nothing until the user says "Decode As", then the same.
    assert!(summaries("other-port.pcap", &[]).is_empty());
    assert_eq!(
        summaries("other-port.pcap", &["-d", "tcp.port==9000,rust_tcp"]),
        frames
    );
    // Nothing malformed, by Wireshark's own verdict or ours.
    let malformed = tshark(
        &dir,
        "session.pcap",
        &["-Y", "_ws.malformed || rust_tcp.malformed"],
    );
    assert_eq!(malformed.trim(), "", "malformed packets: {malformed}");
    // Fields are there for filters: the request id, the close code, the
    // HELLO's name.
    let ids = tshark(
        &dir,
        "session.pcap",
        &[
            "-Y",
            "rust_tcp.request_id == 1",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    );
    assert_eq!(
        ids.lines().count(),
        2,
        "the request and its response: {ids}"
    );
    let closes = tshark(
        &dir,
        "session.pcap",
        &[
            "-Y",
            "rust_tcp.code == 1000",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    );
    assert_eq!(closes.lines().count(), 2, "{closes}");
    let _ = std::fs::remove_dir_all(dir);
}
