//! Session resumption across boxes with a real client: `openssl s_client`
//! does a full handshake with "box A" and saves its session (`-sess_out`),
//! then resumes it (`-sess_in`) against "box B", another server config
//! built from the same certificate and cluster key, and reads a response
//! over Baton's record layer. TLS 1.3 (NewSessionTicket) and TLS 1.2
//! (RFC 5077 tickets). A box of another cluster refuses the ticket and
//! does a full handshake. openssl is required: a missing tool fails.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;

use baton_tls::{CertifiedKeys, ClusterTicketer, Event, Handshake, Progress, TlsConfig};
use rustls::pki_types::PrivateKeyDer;

const CLUSTER_KEY: &[u8] = b"the lab's cluster key, 32 bytes!";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";

/// A certificate for localhost in a fresh directory; returns the
/// certified key's parts and the directory (with `ca.pem`).
fn certificate(tag: &str) -> (rcgen::CertifiedKey, PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("baton-resume-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), c.cert.pem()).unwrap();
    (c, dir)
}

/// One box's TLS config: the shared certificate, tickets under `key`.
fn box_config(c: &rcgen::CertifiedKey, key: &[u8]) -> TlsConfig {
    let mut keys = CertifiedKeys::new();
    keys.set_default(
        CertifiedKeys::load(
            vec![c.cert.der().clone()],
            PrivateKeyDer::Pkcs8(c.key_pair.serialize_der().into()),
        )
        .unwrap(),
    );
    TlsConfig::new(keys)
        .unwrap()
        .with_tickets(Arc::new(ClusterTicketer::new(key, 3_600)))
}

/// Serves one connection: handshake, one request, the response, close.
/// Returns whether the client resumed.
fn serve_one(listener: &TcpListener, cfg: &TlsConfig) -> bool {
    let (mut tcp, _) = listener.accept().unwrap();
    let mut buf = vec![0u8; 65536];
    let mut hs = Handshake::new(cfg).unwrap();
    let established = loop {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "client left during the handshake");
        let mut out = Vec::new();
        let p = hs.handle_input(&buf[..n], &mut out).unwrap();
        tcp.write_all(&out).unwrap();
        if let Progress::Established(e) = p {
            break e;
        }
    };
    let resumed = established.resumed;
    let mut session = established.session;
    let mut request = Vec::new();
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        while let Some(ev) = session.poll_event() {
            if let Event::Data(d) = ev {
                request.extend(d);
            }
        }
        if request.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "client left before its request");
        session.handle_input(&buf[..n]).unwrap();
    }
    session.send(RESPONSE).unwrap();
    session.close().unwrap();
    tcp.write_all(&session.take_output()).unwrap();
    resumed
}

/// `openssl s_client` against `port`, saving or reusing `sess`; returns
/// its standard output (`Reused` or `New` is in it).
fn s_client(port: u16, dir: &Path, version: &str, sess: (&str, &Path)) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-ign_eof", version])
        .args(["-CAfile", dir.join("ca.pem").to_str().unwrap()])
        .args(["-verify_return_error", sess.0, sess.1.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("openssl is required: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "s_client failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.ends_with("hello") || stdout.contains("\r\n\r\nhello"),
        "{stdout}"
    );
    stdout
}

/// Full handshake with box A, then a resumption attempt on `b`; returns
/// (A's connection resumed, B's connection resumed, s_client's second
/// output).
fn across(tag: &str, version: &str, b_key: &[u8]) -> (bool, bool, String) {
    let (cert, dir) = certificate(tag);
    let a = box_config(&cert, CLUSTER_KEY);
    let b = box_config(&cert, b_key);
    let (la, lb) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let (pa, pb) = (
        la.local_addr().unwrap().port(),
        lb.local_addr().unwrap().port(),
    );
    let servers = thread::spawn(move || (serve_one(&la, &a), serve_one(&lb, &b)));
    let sess = dir.join("session.pem");
    let first = s_client(pa, &dir, version, ("-sess_out", &sess));
    assert!(
        first.contains("New,"),
        "first connection is a full handshake:\n{first}"
    );
    let second = s_client(pb, &dir, version, ("-sess_in", &sess));
    let (ra, rb) = servers.join().expect("servers");
    let _ = std::fs::remove_dir_all(&dir);
    (ra, rb, second)
}

#[test]
fn a_session_from_one_box_resumes_on_another_tls13() {
    let (ra, rb, second) = across("13", "-tls1_3", CLUSTER_KEY);
    assert!(!ra, "box A did a full handshake");
    assert!(rb, "box B resumed the session box A issued:\n{second}");
    assert!(second.contains("Reused,"), "{second}");
}

#[test]
fn a_session_from_one_box_resumes_on_another_tls12() {
    let (ra, rb, second) = across("12", "-tls1_2", CLUSTER_KEY);
    assert!(!ra);
    assert!(rb, "box B resumed the session box A issued:\n{second}");
    assert!(second.contains("Reused,"), "{second}");
}

#[test]
fn a_box_of_another_cluster_does_a_full_handshake() {
    let (_, rb, second) = across("other", "-tls1_3", b"another cluster's key, 32 bytes.");
    assert!(!rb, "a ticket of another cluster must not open:\n{second}");
    assert!(second.contains("New,"), "{second}");
}
