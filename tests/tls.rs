//! TLS against the real server, with certificates made at test time:
//! trusted, untrusted, wrong name, expired, plain text on a TLS port (and
//! the reverse), mutual TLS with and without a client certificate, and an
//! independent TLS peer (Python's `ssl`).

mod common;

use common::certs::TestCa;
use common::*;
use rust_tcp::{Client, ClientConfig, ClientTls, ServerConfig, ServerTls};
use std::time::{Duration, Instant};

/// A TLS server whose certificate is for 127.0.0.1 and localhost.
fn tls_server(ca: &TestCa, extra: &[&str]) -> ServerProcess {
    let leaf = ca.leaf("server", &["127.0.0.1", "localhost"], false);
    let mut args = vec![
        "--tls-cert".to_string(),
        leaf.cert.display().to_string(),
        "--tls-key".into(),
        leaf.key.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    ServerProcess::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn a_trusted_server_serves_v1_and_v2_inside_tls() {
    let ca = TestCa::new("trusted");
    let server = tls_server(&ca, &[]);
    let ca_arg = ca.cert.display().to_string();
    let addr = server.addr_arg();
    let out = run_client(&["--addr", &addr, "--ca", &ca_arg, "over tls"], None);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(server.next_output_line(), printed("over tls"));
    let out = run_client(
        &["--addr", &addr, "--ca", &ca_arg, "--v1", "v1 over tls"],
        None,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(server.next_output_line(), printed("v1 over tls"));
    // By DNS name too, and with requests.
    let out = run_client(
        &[
            "--addr",
            &addr,
            "--ca",
            &ca_arg,
            "--server-name",
            "localhost",
            "request",
            "echo me",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo me\n");
}

/// Each failure is one line on the client and a log line naming the peer
/// on the server, and never a hang.
#[test]
fn untrusted_wrong_name_expired_and_plain_text_each_fail_clearly() {
    let ca = TestCa::new("real");
    let other = TestCa::new("other");
    let server = tls_server(&ca, &[]);
    let addr = server.addr_arg();
    let ca_arg = ca.cert.display().to_string();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--ca", &other.cert.display().to_string()],
            "UnknownIssuer",
        ),
        (
            &["--ca", &ca_arg, "--server-name", "elsewhere.example"],
            "not valid for name",
        ),
        // An IP address is checked as an IP address.
        (
            &["--ca", &ca_arg, "--server-name", "127.0.0.2"],
            "not valid for name",
        ),
    ];
    for (flags, why) in cases {
        let started = Instant::now();
        let mut args = vec!["--addr", addr.as_str()];
        args.extend_from_slice(flags);
        args.push("never sent");
        let out = run_client(&args, None);
        assert!(!out.status.success());
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: TLS: handshake with"), "{err}");
        assert!(err.contains(why), "{err}");
        assert!(started.elapsed() < PATIENCE);
        server.wait_for_log("connection closed: TLS handshake failed");
    }
    // A plain-text client on the TLS port.
    let out = run_client(&["--addr", &addr, "plain"], None);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("the server speaks TLS"),
        "{}",
        stderr_of(&out)
    );
    server.wait_for_log("TLS handshake failed");
    // An expired server certificate.
    let expired = ca.leaf("expired", &["127.0.0.1"], true);
    let old = ServerProcess::start(&[
        "--tls-cert",
        &expired.cert.display().to_string(),
        "--tls-key",
        &expired.key.display().to_string(),
    ]);
    let out = run_client(&["--addr", &old.addr_arg(), "--ca", &ca_arg, "late"], None);
    assert!(
        stderr_of(&out).contains("certificate expired"),
        "{}",
        stderr_of(&out)
    );
    // A TLS client on a plain port.
    let plain = ServerProcess::start(&[]);
    let out = run_client(
        &["--addr", &plain.addr_arg(), "--ca", &ca_arg, "hello?"],
        None,
    );
    assert!(!out.status.success());
    assert_eq!(stderr_of(&out).lines().count(), 1, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("TLS"), "{}", stderr_of(&out));
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_and_hands_it_to_the_service() {
    let ca = TestCa::new("mutual");
    let server_leaf = ca.leaf("server", &["127.0.0.1"], false);
    let client_leaf = ca.leaf("alice", &["alice.example"], false);
    let tls =
        ServerTls::from_pem_files(&server_leaf.cert, &server_leaf.key, Some(&ca.cert)).unwrap();
    let (admitted, rx) = Admitted::new();
    let server = InProcessServer::start(admitted, ServerConfig::default().tls(tls)).await;

    let without = ClientTls::with_ca_file(&ca.cert).unwrap();
    let refused = Client::connect_with(&server.addr, ClientConfig::default().tls(without)).await;
    assert!(refused.is_err(), "served without a client certificate");

    let with = ClientTls::with_ca_file(&ca.cert)
        .unwrap()
        .with_client_certificate(&client_leaf.cert, &client_leaf.key)
        .unwrap();
    let client = Client::connect_with(&server.addr, ClientConfig::default().tls(with))
        .await
        .unwrap();
    client.send_text("it's me").await.unwrap();
    client.close().await.unwrap();
    let seen = rx
        .recv_timeout(PATIENCE)
        .unwrap()
        .tls_client_certificate
        .expect("the service sees a certificate")
        .to_vec();
    let pem = std::fs::read_to_string(&client_leaf.cert).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer| c.to_vec())
        .unwrap();
    assert_eq!(seen, der, "exactly the certificate alice presented");
    server.shut_down().await;
}

/// An independent TLS implementation (Python's `ssl`) completes the
/// handshake with our server and gets a WELCOME for its HELLO.
#[test]
fn python_ssl_talks_to_our_server() {
    let ca = TestCa::new("python");
    let server = tls_server(&ca, &[]);
    let script = format!(
        r#"
import socket, ssl, struct
ctx = ssl.create_default_context(cafile={ca:?})
with socket.create_connection(("127.0.0.1", {port}), timeout=20) as raw:
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        name = b"py"
        hello = bytes([1, 2]) + struct.pack(">IIH", 1 << 20, 0, len(name)) + name
        s.sendall(bytes([2, 1]) + struct.pack(">I", len(hello)) + hello)
        head = s.recv(6)
        print(s.version(), head[0], head[1])
"#,
        ca = ca.cert.display().to_string(),
        port = server.addr.port()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said} {}", stderr_of(&out));
    // TLS 1.2 or 1.3, then a v2 frame of type 2 (WELCOME).
    assert!(said.starts_with("TLSv1."), "{said}");
    assert!(said.trim_end().ends_with("2 2"), "{said}");
    let _ = Duration::ZERO;
}

/// The TLS handshake counts against the first frame's deadline: a peer
/// that connects to a TLS port and says nothing is cut on time.
#[test]
fn a_silent_peer_on_a_tls_port_is_cut_at_the_handshake_deadline() {
    let ca = TestCa::new("silent");
    let server = tls_server(&ca, &["--handshake-timeout-secs", "0.3"]);
    let started = Instant::now();
    let mut silent = raw_connect(server.addr);
    read_until_closed(&mut silent);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    server.wait_for_log("TLS handshake failed: not complete in time");
}

/// A TLS handshake in progress holds memory from the server's budget: with
/// room for just one, a second client waits until the first, silent one is
/// cut at its handshake deadline, and is then served.
#[tokio::test]
async fn tls_handshakes_count_against_the_memory_budget() {
    let ca = TestCa::new("budget");
    let leaf = ca.leaf("server", &["127.0.0.1"], false);
    let config = ServerConfig::default()
        .tls(ServerTls::from_pem_files(&leaf.cert, &leaf.key, None).unwrap())
        .max_frame_size(64 * 1024)
        .max_memory(64 * 1024)
        .handshake_timeout(Duration::from_millis(800));
    let (collect, _rx) = Collect::new();
    let server = InProcessServer::start(collect, config).await;
    // The silent one comes first and takes the memory; the real client
    // comes 200 ms later (part of the scenario: its own handshake deadline
    // then falls after the silent one's).
    let _silent = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let tls = ClientTls::with_ca_file(&ca.cert).unwrap();
    let client = Client::connect_with(&server.addr, ClientConfig::default().tls(tls))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "served after {waited:?}: no wait for memory"
    );
    client.close().await.unwrap();
    server.shut_down().await;
}

/// SIGHUP reloads the certificate and key: a renewed certificate (here from
/// another CA) is served to new connections without a restart; a broken
/// file leaves the one in use and says why.
#[test]
fn sighup_reloads_the_certificate() {
    let old_ca = TestCa::new("old");
    let new_ca = TestCa::new("new");
    let old = old_ca.leaf("server", &["127.0.0.1"], false);
    // The files the server was started with, replaced in place later.
    let cert = old_ca.dir.join("live.pem");
    let key = old_ca.dir.join("live.key");
    std::fs::copy(&old.cert, &cert).unwrap();
    std::fs::copy(&old.key, &key).unwrap();
    let server = ServerProcess::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let addr = server.addr_arg();
    let send = |ca: &TestCa, text: &str| {
        run_client(
            &["--addr", &addr, "--ca", ca.cert.to_str().unwrap(), text],
            None,
        )
    };
    assert!(send(&old_ca, "old cert").status.success());
    assert_eq!(server.next_output_line(), printed("old cert"));

    // A broken key: nothing changes, and the log says why.
    std::fs::write(&key, "not a key").unwrap();
    server.signal("HUP");
    let line = server.wait_for_log("TLS certificate not reloaded");
    assert!(line.contains("the old one stays"), "{line}");
    assert!(send(&old_ca, "still old").status.success());
    assert_eq!(server.next_output_line(), printed("still old"));

    let renewed = new_ca.leaf("server", &["127.0.0.1"], false);
    std::fs::copy(&renewed.cert, &cert).unwrap();
    std::fs::copy(&renewed.key, &key).unwrap();
    server.signal("HUP");
    server.wait_for_log("TLS certificate and key reloaded");
    let out = send(&new_ca, "new cert");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(server.next_output_line(), printed("new cert"));
    assert!(!send(&old_ca, "old CA now untrusted").status.success());
}

/// A server without tokens or TLS survives SIGHUP (its default action
/// would end the process) and says there is nothing to reload.
#[test]
fn sighup_without_anything_to_reload_is_harmless() {
    let server = ServerProcess::start(&[]);
    server.signal("HUP");
    server.wait_for_log("SIGHUP: nothing to reload");
    let out = run_client(&["--addr", &server.addr_arg(), "still here"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_output_line(), printed("still here"));
}
