//! Bad TLS records from a live client (issue 14): a rustls client in the
//! lab's client namespace completes a real handshake with box 1, then
//! sends what a broken or hostile peer sends: a record whose tag does not
//! verify (bad MAC), a record header longer than TLS allows (overflow), a
//! record cut short and the connection closed. Each gets the alert RFC 8446
//! names (or a clean close for the cut record), only that connection ends,
//! the box counts the alerts, and curl is served byte-exact afterwards.
//!
//! The client thread enters the namespace with setns(2), which moves only
//! the calling thread.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use baton_tls::rustls::{self, pki_types::pem::PemObject, ClientConfig, ClientConnection};
use common::*;

/// What the box did with the connection after the bad record.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A fatal alert the client's rustls reported (its description).
    Alert(String),
    /// The box closed the connection without an alert.
    Closed,
}

/// How the client spoils its request after a good handshake.
#[derive(Clone, Copy, Debug)]
enum Spoil {
    /// One bit of the last byte (the AEAD tag) flipped.
    BadMac,
    /// A header announcing 18,433 bytes (2^14 + 2048 + 1) of ciphertext.
    Oversized,
    /// Half the record, then the client's FIN.
    Truncated,
}

fn client_config(ca_pem: &std::path::Path) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_pem).expect("lab CA") {
        roots.add(cert.expect("lab CA certificate")).expect("CA");
    }
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Handshake with box 1 from the client namespace, then the spoiled
/// request; returns what came back.
fn spoiled_request(prefix: &str, ca_pem: &std::path::Path, spoil: Spoil) -> Outcome {
    let config = client_config(ca_pem);
    let ns = format!("/run/netns/{prefix}-client");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).expect("client namespace");
        // SAFETY: setns(2) on a descriptor we own; CLONE_NEWNET moves only
        // this thread, which ends with the exchange.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let name = "lab.baton.test".try_into().expect("server name");
        let mut tls = ClientConnection::new(config, name).expect("client");
        let mut tcp = TcpStream::connect("198.18.0.11:443").expect("connect to box 1");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).expect("handshake with box 1");
        }
        tls.writer()
            .write_all(b"GET /1K.bin HTTP/1.1\r\nHost: lab.baton.test\r\n\r\n")
            .expect("request");
        let mut record = Vec::new();
        tls.write_tls(&mut record).expect("the request's record");
        match spoil {
            Spoil::BadMac => {
                let last = record.len() - 1;
                record[last] ^= 0x01;
                tcp.write_all(&record).expect("send");
            }
            Spoil::Oversized => {
                tcp.write_all(&[23, 3, 3, 0x48, 0x01])
                    .and_then(|()| tcp.write_all(&[0u8; 64]))
                    .expect("send");
            }
            Spoil::Truncated => {
                tcp.write_all(&record[..record.len() / 2]).expect("send");
                tcp.shutdown(std::net::Shutdown::Write).expect("FIN");
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            let n = match tcp.read(&mut buf) {
                Ok(n) => n,
                Err(e) => panic!("no answer from box 1 ({spoil:?}): {e}"),
            };
            if n == 0 {
                return Outcome::Closed;
            }
            tls.read_tls(&mut &buf[..n]).expect("read_tls");
            if let Err(e) = tls.process_new_packets() {
                return match e {
                    rustls::Error::AlertReceived(a) => Outcome::Alert(format!("{a:?}")),
                    other => panic!("client error {other} ({spoil:?})"),
                };
            }
            let mut plain = Vec::new();
            let _ = tls.reader().read_to_end(&mut plain);
            assert!(
                plain.is_empty(),
                "box 1 answered a spoiled request ({spoil:?})"
            );
        }
    })
    .join()
    .expect("client thread")
}

#[test]
fn lab_bad_tls_records_get_their_alert_and_the_box_keeps_serving() {
    let g = LabGuard::up("btbr", &["--boxes", "1", "--tls"]);
    let ca = g.file("ca.pem");
    let alerts = || {
        metric_value(
            &box_metrics(&g, 1),
            "baton_tls_alerts_total{direction=\"sent\"}",
        )
    };
    let before = alerts();
    assert_eq!(
        spoiled_request("btbr", &ca, Spoil::BadMac),
        Outcome::Alert("BadRecordMac".into())
    );
    assert_eq!(
        spoiled_request("btbr", &ca, Spoil::Oversized),
        Outcome::Alert("RecordOverflow".into())
    );
    assert_eq!(alerts(), before + 2, "one fatal alert per spoiled record");
    // A cut record is not an error until the connection ends under it:
    // the box closes it (no answer, nothing decrypted).
    assert_eq!(
        spoiled_request("btbr", &ca, Spoil::Truncated),
        Outcome::Closed
    );
    // The box is unharmed: a real client is served byte-exact.
    let out = g.file("after.bin").display().to_string();
    let ca_arg = ca.display().to_string();
    ok(g.exec(
        "client",
        &[
            "curl",
            "-sS",
            "--fail",
            "--cacert",
            &ca_arg,
            "-o",
            &out,
            "https://198.18.0.11/1M.bin",
        ],
    ));
    assert_eq!(sha256_file(&g.file("after.bin")), g.listed_sha("1M.bin"));
}
