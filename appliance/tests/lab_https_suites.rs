//! HTTPS takeover for every suite Baton's record layer seals with (issue
//! 14: "50 MB over HTTPS, box killed mid-transfer … for TLS 1.3 and TLS
//! 1.2, each suite"), in one lab to keep CI time low: six rate-limited
//! curl downloads of 50 MB at once, one per (version, suite), box 1 killed
//! while all are mid-body. Each curl must exit 0 (a TLS alert or a bad
//! record would fail it), with the origin's bytes (sha256), having
//! negotiated the suite it asked for (curl -v's "SSL connection using"
//! line); the capture sees no RST and every client FIN; box 2's counters
//! say it resumed the HTTPS connections, sent and received no alert.
mod common;

use std::time::{Duration, Instant};

use common::*;

/// The TLS 1.3 suites, as curl's `--tls13-ciphers` and its -v line name them.
const TLS13: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The TLS 1.2 AEADs, as OpenSSL names the ECDHE suites after the key type
/// (`ECDHE-ECDSA-` or `ECDHE-RSA-` before each).
const TLS12: [&str; 3] = [
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "CHACHA20-POLY1305",
];

/// `ECDSA` or `RSA`: which TLS 1.2 ECDHE suites box 1's certificate can
/// sign for (the lab makes P-256 keys today; the test follows the file).
fn certificate_key_type(g: &LabGuard) -> &'static str {
    let cert = g.file("box1-cert.pem").display().to_string();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", &cert])
        .output()
        .expect("openssl (install it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "openssl x509 {cert}: {text}");
    if text.contains("id-ecPublicKey") {
        "ECDSA"
    } else if text.contains("rsaEncryption") {
        "RSA"
    } else {
        panic!("box1-cert.pem has neither an EC nor an RSA key:\n{text}")
    }
}

/// What curl -v reported for the connection: "TLSv1.3 / TLS_AES_…".
fn negotiated(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| {
        let at = l.find("SSL connection using ")?;
        Some(l[at + 21..].trim().to_string())
    })
}

#[test]
fn lab_https_downloads_over_every_version_and_suite_survive_a_kill() {
    let g = LabGuard::up("bthsk", &["--boxes", "2", "--tls"]);
    let kind = certificate_key_type(&g);
    let ca = g.file("ca.pem").display().to_string();
    let url = "https://198.18.0.11/50M.bin".to_string();

    // (curl's TLS options, the "SSL connection using" line they must give).
    let mut wanted: Vec<(Vec<String>, String)> = TLS13
        .iter()
        .map(|s| {
            (
                vec!["--tlsv1.3".into(), "--tls13-ciphers".into(), s.to_string()],
                format!("TLSv1.3 / {s}"),
            )
        })
        .collect();
    for aead in TLS12 {
        let suite = format!("ECDHE-{kind}-{aead}");
        wanted.push((
            vec![
                "--tlsv1.2".into(),
                "--tls-max".into(),
                "1.2".into(),
                "--ciphers".into(),
                suite.clone(),
            ],
            format!("TLSv1.2 / {suite}"),
        ));
    }

    let rst = RstCapture::start(&g);
    let started = Instant::now();
    let downloads: Vec<Download> = wanted
        .iter()
        .enumerate()
        .map(|(i, (tls, _))| {
            // -v for the negotiated suite (stderr); Connection: close so the
            // box ends each connection and curl's FIN proves the capture
            // saw it.
            let mut extra = vec!["-v", "--fail", "--cacert", &ca, "-H", "Connection: close"];
            extra.extend(tls.iter().map(String::as_str));
            start_download_with(&g, i, url.clone(), "5M", &extra)
        })
        .collect();
    let moved = kill_under_way(&g, &downloads, 1, 50 << 20, started, Duration::from_secs(2));
    assert_eq!(
        moved,
        wanted.len() as u64,
        "every download was mid-body at the kill"
    );

    let expected = g.listed_sha("50M.bin");
    let mut failures = Vec::new();
    for (d, (tls, want)) in downloads.into_iter().zip(&wanted) {
        let out = d.child.wait_with_output().expect("curl wait");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let got = negotiated(&err);
        if !out.status.success() {
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            failures.push(format!("{tls:?}: curl {} {tail:?}", out.status));
        } else if got.as_deref() != Some(want.as_str()) {
            failures.push(format!("{tls:?}: negotiated {got:?}, asked {want}"));
        } else if sha256_file(&d.out) != expected {
            failures.push(format!("{tls:?}: the body differs from the origin's"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    rst.assert_none_with_fins(wanted.len());

    let m = box_metrics(&g, 2);
    let resumed = metric_value(&m, "baton_tls_resumed_total");
    assert!(
        resumed >= moved,
        "box 2 resumed {resumed} HTTPS connections, {moved} were mid-body"
    );
    assert_eq!(metric_value(&m, "baton_tls_not_resumed_total"), 0);
    assert!(metric_value(&m, "baton_http_resumed_total") >= moved);
    for dir in ["sent", "received"] {
        assert_eq!(
            metric_value(
                &m,
                &format!("baton_tls_alerts_total{{direction=\"{dir}\"}}")
            ),
            0,
            "box 2: fatal alerts {dir}"
        );
    }
    assert_eq!(
        metric_value(&m, "baton_tls_handshakes_total"),
        0,
        "box 2 continued the connections, no client handshook again"
    );
}
