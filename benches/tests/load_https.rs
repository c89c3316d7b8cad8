//! `baton-load` over HTTPS against a real server: nginx with TLS on
//! loopback, a certificate from a throwaway CA. Byte-exact bodies on
//! keep-alive for TLS 1.2 and 1.3, and a server the CA did not sign is
//! refused with a TLS error and a failing exit code.

mod common;

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{free_port, sha256_hex, start_nginx};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};

/// A CA, and a server certificate for 127.0.0.1 signed by it, in `dir`;
/// returns the CA's PEM path.
fn make_certs(dir: &Path) -> PathBuf {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::DnsName("lab.baton.test".try_into().unwrap()),
    ];
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    dir.join("ca.pem")
}

fn load(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_baton-load"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn https_downloads_are_byte_exact_on_tls12_and_tls13_and_an_unknown_ca_is_refused() {
    let dir = std::env::temp_dir().join(format!("baton-load-https-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let ca = make_certs(&dir);
    // 3 MB of a pattern that no record boundary repeats.
    let body: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(dir.join("obj.bin"), &body).unwrap();
    let sha = sha256_hex(&body);
    let port = free_port();
    let nginx = start_nginx(&dir, port, true);
    let url = format!("https://127.0.0.1:{port}/obj.bin");
    let ca = ca.to_str().unwrap();
    for version in ["1.2", "1.3"] {
        let (ok, out) = load(&[
            "--url",
            &url,
            "--cacert",
            ca,
            "--tls-version",
            version,
            "--connections",
            "3",
            "--requests",
            "2",
            "--sha256",
            &sha,
        ]);
        assert!(ok, "TLS {version}: {out}");
        assert!(
            out.contains("requests ok 6, errors 0"),
            "TLS {version}: {out}"
        );
    }
    // By name, as the benchmarks compare servers on other addresses.
    let (ok, out) = load(&[
        "--url",
        &url,
        "--cacert",
        ca,
        "--server-name",
        "lab.baton.test",
        "--sha256",
        &sha,
    ]);
    assert!(ok, "{out}");
    let (ok, out) = load(&[
        "--url",
        &url,
        "--cacert",
        ca,
        "--server-name",
        "other.baton.test",
    ]);
    assert!(
        !ok && out.contains("TLS failed"),
        "a name the certificate lacks: {out}"
    );
    // A wrong digest is caught through TLS too: the check can fail.
    let (ok, out) = load(&["--url", &url, "--cacert", ca, "--sha256", &"0".repeat(64)]);
    assert!(!ok && out.contains("sha256 mismatch"), "{out}");
    // A CA that did not sign the server's certificate.
    let other = dir.join("other");
    fs::create_dir_all(&other).unwrap();
    let other_ca = make_certs(&other);
    let (ok, out) = load(&["--url", &url, "--cacert", other_ca.to_str().unwrap()]);
    assert!(!ok && out.contains("TLS failed"), "{out}");
    // And plain HTTP options stay plain.
    let (ok, out) = load(&["--url", &url]);
    assert!(!ok && out.contains("needs --cacert"), "{out}");
    drop(nginx);
    let _ = fs::remove_dir_all(&dir);
}
