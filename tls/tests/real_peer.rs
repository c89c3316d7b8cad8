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
use std::thread;

use baton_tls::{CertifiedKeys, Checkpoint, Event, Handshake, Progress, Session, TlsConfig};
use ring::rand::SystemRandom;
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
}

/// Serves one connection: handshake, one GET, a body with a takeover at
/// its middle.
fn serve(mut tcp: TcpStream, cfg: TlsConfig, body: &[u8]) -> Served {
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
    // The box dies: its last records were sealed and checkpointed, but
    // 10_000 bytes of them (not a record boundary) never left it.
    session.send_body_records(body, 2).unwrap();
    let out = session.take_output();
    let lost = 10_000;
    let acked = send(&mut tcp, &out[..out.len() - lost]);
    let version = session.version();
    let suite = session.suite();
    let aad = format!("{:?}", tcp.peer_addr().unwrap());
    let sealed = session
        .checkpoint()
        .seal(CLUSTER_KEY, aad.as_bytes(), &SystemRandom::new())
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
    }
}

/// Runs `client` against one served connection; returns its output and
/// what the server saw.
fn with_server(tag: &str, client: impl FnOnce(u16, &PathBuf) -> Output) -> (Output, Served) {
    let (cfg, pem) = setup(tag);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let body = body();
        let (tcp, _) = listener.accept().unwrap();
        serve(tcp, cfg, &body)
    });
    let out = client(port, &pem);
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
