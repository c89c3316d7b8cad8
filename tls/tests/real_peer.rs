//! Real peers over kernel TCP: `openssl s_client` and `curl` fetch a 3 MB
//! body over TLS 1.3 and 1.2 from Baton's sans-IO server run on a std
//! `TcpStream`; halfway through the body the server "dies" mid-record
//! (the tail of what it sealed never reaches the wire), its record layer
//! is rebuilt from the sealed checkpoint bytes alone, and the restored
//! layer resumes from the byte the client has. The client must get the
//! body byte-exact (sha256) and exit 0 without a TLS alert.
//!
//! openssl and curl are required: a missing tool fails the test.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;

use baton_tls::{
    CertifiedKeys, Checkpoint, CheckpointSealer, Event, Handshake, Progress, Session, TlsConfig,
};
use rustls::pki_types::PrivateKeyDer;
use sha2::{Digest, Sha256};

const BODY_LEN: usize = 3 * 1024 * 1024 + 4321;
const CLUSTER_KEY: &[u8] = b"test cluster key";

fn body() -> Vec<u8> {
    (0..BODY_LEN)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect()
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A certificate for localhost and 127.0.0.1; returns the config and the
/// path of the PEM the clients trust.
fn setup(tag: &str) -> (TlsConfig, PathBuf) {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let dir = std::env::temp_dir().join(format!("baton-tls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, c.cert.pem()).unwrap();
    let mut keys = CertifiedKeys::new();
    let k = CertifiedKeys::load(
        vec![c.cert.der().clone()],
        PrivateKeyDer::Pkcs8(c.key_pair.serialize_der().into()),
    )
    .unwrap();
    keys.set_default(k);
    (TlsConfig::new(keys).unwrap(), pem)
}

/// What the server saw.
#[derive(Debug)]
struct Served {
    version: baton_tls::Version,
    suite: u16,
    /// Stream bytes sealed by the dead layer that never reached the wire.
    lost: usize,
    resumed_at: u64,
    /// Key-update generation of the write key at the checkpoint.
    write_generation: u32,
}

/// Serves one connection: handshake, one GET, a body with a takeover at
/// its middle. With `key_update`, the server asks the client (through the
/// channel) for a KeyUpdate at the middle of the body and waits for it
/// before the takeover.
fn serve(
    mut tcp: TcpStream,
    cfg: TlsConfig,
    body: &[u8],
    key_update: Option<mpsc::Sender<()>>,
) -> Served {
    let mut written = 0u64;
    let mut send = |tcp: &mut TcpStream, bytes: &[u8]| {
        tcp.write_all(bytes).unwrap();
        written += bytes.len() as u64;
        written
    };
    let mut buf = vec![0u8; 65536];
    let mut hs = Handshake::new(&cfg).unwrap();
    let mut session = loop {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "client left during the handshake");
        let mut out = Vec::new();
        let p = hs.handle_input(&buf[..n], &mut out).unwrap();
        send(&mut tcp, &out);
        if let Progress::Established(e) = p {
            break e.session;
        }
    };
    let mut request = Vec::new();
    loop {
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
    assert!(
        request.starts_with(b"GET / HTTP/1.1\r\n"),
        "{}",
        String::from_utf8_lossy(&request)
    );

    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    session.send(head.as_bytes()).unwrap();
    let anchor = session.start_body(body.len() as u64).unwrap();
    let half = anchor.record_count() / 2;
    while session.write_seq() - anchor.write_seq < half {
        session.send_body_records(body, 8).unwrap();
        send(&mut tcp, &session.take_output());
    }
    if let Some(ask) = key_update {
        send(&mut tcp, &session.take_output());
        ask.send(()).unwrap();
        let mut seen = false;
        while !seen {
            let n = tcp.read(&mut buf).unwrap();
            assert!(n > 0, "client left before its KeyUpdate");
            session.handle_input(&buf[..n]).unwrap();
            while let Some(ev) = session.poll_event() {
                seen |= ev == (Event::PeerKeyUpdate { requested: true });
            }
        }
        // Our KeyUpdate goes out between two body records.
        send(&mut tcp, &session.take_output());
    }
    // The box dies: its last records were sealed and checkpointed, but
    // 10_000 bytes of them (not a record boundary) never left it.
    session.send_body_records(body, 2).unwrap();
    let out = session.take_output();
    let lost = 10_000;
    let acked = send(&mut tcp, &out[..out.len() - lost]);
    let version = session.version();
    let suite = session.suite();
    let write_generation = session.checkpoint().write.generation;
    let aad = format!("{:?}", tcp.peer_addr().unwrap());
    let sealed = session
        .checkpoint()
        .seal(&CheckpointSealer::new(CLUSTER_KEY).unwrap(), aad.as_bytes())
        .unwrap();
    drop(session);

    // The survivor: the sealed bytes, the cluster key, the object.
    let mut session =
        Session::restore(&Checkpoint::open(&sealed, CLUSTER_KEY, aad.as_bytes()).unwrap()).unwrap();
    session.resume_body(body, acked).unwrap();
    send(&mut tcp, &session.take_output());
    while session.send_body_records(body, 8).unwrap() > 0 {
        send(&mut tcp, &session.take_output());
    }
    session.close().unwrap();
    send(&mut tcp, &session.take_output());
    let _ = tcp.shutdown(Shutdown::Write);
    // The client's close_notify, if it sends one, must open cleanly.
    while let Ok(n) = tcp.read(&mut buf) {
        if n == 0 {
            break;
        }
        session.handle_input(&buf[..n]).unwrap();
    }
    Served {
        version,
        suite,
        lost,
        resumed_at: acked,
        write_generation,
    }
}

/// Runs `client` against one served connection; returns its output and
/// what the server saw.
fn with_server(tag: &str, client: impl FnOnce(u16, &PathBuf) -> Output) -> (Output, Served) {
    with_server_ku(tag, None, |port, pem, _| client(port, pem))
}

fn with_server_ku(
    tag: &str,
    key_update: Option<mpsc::Sender<()>>,
    client: impl FnOnce(u16, &PathBuf, ()) -> Output,
) -> (Output, Served) {
    let (cfg, pem) = setup(tag);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let body = body();
        let (tcp, _) = listener.accept().unwrap();
        serve(tcp, cfg, &body, key_update)
    });
    let out = client(port, &pem, ());
    let served = server.join().expect("server thread");
    let _ = std::fs::remove_dir_all(pem.parent().unwrap());
    (out, served)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (is it installed?): {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {:?}\n{err}",
        out.status
    );
    assert!(
        !err.to_lowercase().contains("alert"),
        "{cmd:?} saw an alert:\n{err}"
    );
    out
}

fn s_client<'a>(
    version_flag: &'a str,
    cipher: (&'a str, &'a str),
) -> impl FnOnce(u16, &PathBuf) -> Output + 'a {
    move |port, pem| {
        let mut cmd = Command::new("openssl");
        cmd.args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args([
            "-CAfile",
            pem.to_str().unwrap(),
            "-verify_return_error",
            "-quiet",
            version_flag,
        ])
        .args([cipher.0, cipher.1])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("openssl is required: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "s_client failed: {:?}\n{err}",
            out.status
        );
        assert!(
            !err.to_lowercase().contains("alert"),
            "s_client saw an alert:\n{err}"
        );
        out
    }
}

fn check_http(stdout: &[u8]) {
    let split = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let (head, got) = stdout.split_at(split);
    assert!(head.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(got.len(), BODY_LEN);
    assert_eq!(
        hex(&Sha256::digest(got)),
        hex(&Sha256::digest(body())),
        "sha256 of the body"
    );
}

#[test]
fn openssl_s_client_gets_the_body_across_a_takeover_each_suite() {
    let cases = [
        (
            "-tls1_3",
            ("-ciphersuites", "TLS_AES_128_GCM_SHA256"),
            0x1301,
        ),
        (
            "-tls1_3",
            ("-ciphersuites", "TLS_AES_256_GCM_SHA384"),
            0x1302,
        ),
        (
            "-tls1_3",
            ("-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"),
            0x1303,
        ),
        (
            "-tls1_2",
            ("-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"),
            0xc02b,
        ),
        (
            "-tls1_2",
            ("-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"),
            0xc02c,
        ),
        (
            "-tls1_2",
            ("-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"),
            0xcca9,
        ),
    ];
    for (v, cipher, suite) in cases {
        let (out, served) = with_server(&format!("s{suite:x}"), s_client(v, cipher));
        assert_eq!(served.suite, suite, "{served:?}");
        assert!(
            served.lost > 0 && served.resumed_at > BODY_LEN as u64 / 2,
            "{served:?}"
        );
        check_http(&out.stdout);
        eprintln!(
            "s_client {v} {}: sha256 ok across a takeover at stream byte {}",
            cipher.1, served.resumed_at
        );
    }
}

#[test]
fn curl_gets_the_body_across_a_takeover_tls13_and_tls12() {
    for (min, max, version) in [
        ("--tlsv1.3", "1.3", baton_tls::Version::Tls13),
        ("--tlsv1.2", "1.2", baton_tls::Version::Tls12),
    ] {
        let (out, served) = with_server(&format!("curl{max}"), |port, pem| {
            run(Command::new("curl")
                .args([
                    "-sS",
                    "--http1.1",
                    min,
                    "--tls-max",
                    max,
                    "--cacert",
                    pem.to_str().unwrap(),
                ])
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .arg(format!("https://localhost:{port}/")))
        });
        assert_eq!(served.version, version);
        assert_eq!(out.stdout.len(), BODY_LEN);
        assert_eq!(
            hex(&Sha256::digest(&out.stdout)),
            hex(&Sha256::digest(body()))
        );
    }
}

/// issue 14: "a kill right after a client-initiated KeyUpdate (openssl
/// s_client, k)". s_client sends a KeyUpdate with update_requested (`K`)
/// in the middle of the body; the server answers between two body records,
/// then dies mid-record; the restored layer (write key generation 1) ends
/// the body and s_client gets it byte-exact.
#[test]
fn openssl_key_update_mid_body_then_takeover() {
    let (tx, rx) = mpsc::channel();
    let (out, served) = with_server_ku("ku", Some(tx), |port, pem, ()| {
        let mut cmd = Command::new("openssl");
        // Interactive mode (no -quiet): command letters are read from stdin.
        cmd.args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args([
            "-CAfile",
            pem.to_str().unwrap(),
            "-verify_return_error",
            "-tls1_3",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("openssl is required: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        stdin.flush().unwrap();
        // The server asks once it is halfway through the body.
        rx.recv().expect("server reached the middle of the body");
        stdin.write_all(b"K\n").unwrap();
        stdin.flush().unwrap();
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        out
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "s_client failed: {:?}\n{err}",
        out.status
    );
    assert!(
        !err.to_lowercase().contains("alert"),
        "s_client saw an alert:\n{err}"
    );
    // The server saw the client's KeyUpdate (update_requested) and moved
    // its write key before the checkpoint.
    assert_eq!(served.write_generation, 1, "{served:?}");
    assert!(served.lost > 0);
    // Interactive s_client prints its session report before the data.
    let at = out
        .stdout
        .windows(17)
        .position(|w| w == b"HTTP/1.1 200 OK\r\n")
        .expect("a response");
    let head_end = at
        + out.stdout[at..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap()
        + 4;
    let got = out
        .stdout
        .get(head_end..head_end + BODY_LEN)
        .expect("the whole body");
    assert_eq!(
        hex(&Sha256::digest(got)),
        hex(&Sha256::digest(body())),
        "sha256 of the body"
    );
}
