//! Session tickets across boxes (issue 14): `openssl s_client` does a full
//! handshake with box 1 and saves the session (`-sess_out`), then resumes
//! it (`-sess_in`) on box 2, a box that never saw it: box 2 opens the
//! ticket with the key every box derives from `cluster.key`. TLS 1.3 and
//! 1.2; s_client says `Reused`, box 2 counts the resumption, box 1 none,
//! and the response's body is the origin's.
mod common;

use common::*;

/// s_client from the client namespace to box `n`, fetching 1K.bin with
/// `sess` (`-sess_out FILE` or `-sess_in FILE`); returns its output.
fn s_client(g: &LabGuard, n: u8, version: &str, sess: &str) -> Vec<u8> {
    let ca = g.file("ca.pem").display().to_string();
    let out = g.exec(
        "client",
        &[
            "sh",
            "-c",
            &format!(
                "printf 'GET /1K.bin HTTP/1.1\\r\\nHost: lab.baton.test\\r\\nConnection: close\\r\\n\\r\\n' \
                 | openssl s_client -connect 198.18.0.{}:443 -servername lab.baton.test \
                   -CAfile {ca} -verify_return_error -ign_eof {version} {sess} 2>/dev/null",
                10 + n
            ),
        ],
    );
    assert!(
        out.status.success(),
        "openssl s_client {version} {sess} to box{n}: exit {:?}",
        out.status.code()
    );
    out.stdout
}

/// The body after the response head in s_client's output.
fn body_of(out: &[u8]) -> &[u8] {
    let head = out
        .windows(16)
        .position(|w| w == b"HTTP/1.1 200 OK\r")
        .expect("a 200 response in s_client's output");
    let split = out[head..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the end of the response head");
    let body = &out[head + split + 4..];
    // s_client prints its closing lines after the body (without -quiet).
    &body[..1024.min(body.len())]
}

#[test]
fn lab_a_session_from_box1_resumes_on_box2() {
    let g = LabGuard::up("bttk", &["--boxes", "2", "--tls"]);
    let sess = g.file("session.pem").display().to_string();
    for (i, version) in ["-tls1_3", "-tls1_2"].into_iter().enumerate() {
        let first = s_client(&g, 1, version, &format!("-sess_out {sess}"));
        let text = String::from_utf8_lossy(&first);
        assert!(
            text.contains("New, TLSv1."),
            "{version}: full handshake\n{text}"
        );
        assert_eq!(sha256_hex(body_of(&first)), g.listed_sha("1K.bin"));

        let second = s_client(&g, 2, version, &format!("-sess_in {sess}"));
        let text = String::from_utf8_lossy(&second);
        assert!(
            text.contains("Reused, TLSv1."),
            "{version}: box 2 resumed box 1's session\n{text}"
        );
        assert_eq!(sha256_hex(body_of(&second)), g.listed_sha("1K.bin"));

        let resumed = |n| metric_value(&box_metrics(&g, n), "baton_tls_sessions_resumed_total");
        assert_eq!(resumed(2), i as u64 + 1, "box 2 counts the resumption");
        assert_eq!(resumed(1), 0, "box 1 only did full handshakes");
    }
}
