//! `baton lab up --tls` (issue 14, config and lab): a lab CA that openssl
//! accepts for every box's certificate, every service IP and
//! `lab.baton.test` in each certificate, keys private to root, configs
//! `check-config` passes with `[tls]` enabled, boxes that start on them
//! and still serve HTTP beside HTTPS (`lab_https.rs` tests HTTPS), and
//! nothing left after `lab down`.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

const BOXES: u8 = 3;

/// Runs `cmd` (which must exist: a missing tool fails the test) and
/// returns (exit code, stdout + stderr).
fn run(cmd: &str, args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (install it): {e}"));
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn lab_up_tls_makes_a_ca_openssl_trusts_for_every_box_and_down_removes_it() {
    let prefix = "bttl";
    let run_dir = Path::new("/run/baton-lab").join(prefix);
    {
        let g = LabGuard::up(prefix, &["--boxes", &BOXES.to_string(), "--tls"]);
        let ca = g.file("ca.pem");
        assert_eq!(ca, run_dir.join("ca.pem"));
        assert_eq!(mode(&ca), 0o644, "the CA certificate is public");
        let ca_s = ca.display().to_string();
        for n in 1..=BOXES {
            let cert = g.file(&format!("box{n}-cert.pem"));
            let key = g.file(&format!("box{n}-key.pem"));
            assert_eq!(mode(&key), 0o600, "box{n}'s key is root's only");
            assert_eq!(mode(&cert), 0o600);
            let cert_s = cert.display().to_string();

            let (code, out) = run("openssl", &["verify", "-CAfile", &ca_s, &cert_s]);
            assert_eq!(code, Some(0), "openssl verify box{n}: {out}");
            assert_eq!(out.trim(), format!("{cert_s}: OK"));
            // The check can fail: the box's certificate is no CA of its own.
            let (code, out) = run("openssl", &["verify", "-CAfile", &cert_s, &cert_s]);
            assert_ne!(code, Some(0), "a box certificate verified itself: {out}");

            let (code, sans) = run(
                "openssl",
                &["x509", "-noout", "-ext", "subjectAltName", "-in", &cert_s],
            );
            assert_eq!(code, Some(0), "{sans}");
            assert!(sans.contains("DNS:lab.baton.test"), "box{n}: {sans}");
            for m in 1..=BOXES {
                let ip = format!("IP Address:198.18.0.{}", 10 + m);
                assert!(sans.contains(&ip), "box{n} lacks {ip}: {sans}");
            }
            // The key is the certificate's: their public keys are equal.
            let (_, from_cert) = run("openssl", &["x509", "-noout", "-pubkey", "-in", &cert_s]);
            let (_, from_key) = run(
                "openssl",
                &["pkey", "-pubout", "-in", &key.display().to_string()],
            );
            assert!(from_cert.contains("BEGIN PUBLIC KEY"), "{from_cert}");
            assert_eq!(from_cert, from_key, "box{n}'s key is not its certificate's");

            let config = g.file(&format!("box{n}.toml"));
            let text = std::fs::read_to_string(&config).unwrap();
            assert!(text.contains("[tls]\nenabled = true\n"), "{text}");
            let (code, out) = run(BATON, &["check-config", &config.display().to_string()]);
            assert_eq!(code, Some(0), "check-config box{n}.toml: {out}");
            assert_eq!(out.trim(), "OK");

            let log = g.driver.box_log(u32::from(n));
            assert!(
                log.contains("HTTPS on port 443"),
                "box{n} did not say it serves HTTPS: {log}"
            );
            // The box started on its TLS config and serves HTTP.
            download_identical(&g, n, "1M.bin");
        }
    }
    assert!(
        !run_dir.exists(),
        "lab down left {} (CA, certificates)",
        run_dir.display()
    );
    assert!(
        namespaces_of(prefix).is_empty(),
        "{:?}",
        namespaces_of(prefix)
    );
}
