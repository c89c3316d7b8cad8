//! HTTPS on the worker (issue 14): `baton lab up --tls`, then real clients
//! in the client namespace — curl (TLS 1.3 and 1.2, 1 KiB to 50 MB,
//! keep-alive), wget, `openssl s_client` — get the origin's bytes exactly
//! (sha256) over Baton's handshake and record layer, and the box's
//! /metrics prove TLS served them: handshakes, records both ways,
//! close_notify, and a fatal alert for a client speaking plain HTTP to
//! 443, after which the box still serves others.
mod common;

use std::fs;

use common::*;

const CA: &str = "ca.pem";

fn https_url(n: u8, path: &str) -> String {
    format!("https://198.18.0.{}{path}", 10 + n)
}

/// The same over box `n`'s IPv6 address (the lab's certificates name it).
fn https_url6(n: u8, path: &str) -> String {
    format!("https://[2001:2:0:18::{}]{path}", 10 + n)
}

/// curl over HTTPS from the client namespace; returns (exit code, the
/// TLS version curl reports, body).
fn curl_https(g: &LabGuard, n: u8, name: &str, extra: &[&str]) -> (i32, String, Vec<u8>) {
    let body = g.file("https.body");
    let _ = fs::remove_file(&body);
    let (b, ca) = (body.display().to_string(), g.file(CA).display().to_string());
    let url = https_url(n, &format!("/{name}"));
    let mut args = vec![
        "curl",
        "-sS",
        "-v",
        "--max-time",
        "120",
        "--cacert",
        &ca,
        "-o",
        &b,
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let o = g.exec("client", &args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let version = err
        .lines()
        .find_map(|l| {
            let at = l.find("SSL connection using ")?;
            Some(l[at + 21..].split_whitespace().next()?.to_string())
        })
        .unwrap_or_default();
    (
        o.status.code().unwrap_or(-1),
        version,
        fs::read(&body).unwrap_or_default(),
    )
}

#[track_caller]
fn https_identical(g: &LabGuard, n: u8, name: &str, extra: &[&str], want_version: &str) {
    let (code, version, body) = curl_https(g, n, name, extra);
    assert_eq!(code, 0, "curl {extra:?} https://…/{name} from box{n}");
    assert_eq!(version, want_version, "{name} {extra:?}");
    assert_eq!(
        sha256_hex(&body),
        g.listed_sha(name),
        "{name} over {version}: bytes differ from the origin's ({} bytes)",
        body.len()
    );
}

fn tls_metric(g: &LabGuard, name: &str) -> u64 {
    metric_value(&box_metrics(g, 1), name)
}

#[test]
fn lab_https_serves_byte_exact_to_curl_wget_and_openssl_over_tls13_and_tls12() {
    let g = LabGuard::up("bths", &["--boxes", "1", "--tls"]);
    assert_eq!(tls_metric(&g, "baton_tls_handshakes_total"), 0);

    for name in ["1K.bin", "1M.bin", "50M.bin"] {
        https_identical(&g, 1, name, &["--tlsv1.3"], "TLSv1.3");
        https_identical(&g, 1, name, &["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2");
    }
    // Each suite Baton's record layer seals with.
    for suite in [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    ] {
        https_identical(&g, 1, "1M.bin", &["--tls13-ciphers", suite], "TLSv1.3");
    }
    for cipher in [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ] {
        https_identical(
            &g,
            1,
            "1M.bin",
            &["--tls-max", "1.2", "--ciphers", cipher],
            "TLSv1.2",
        );
    }
    let handshakes = tls_metric(&g, "baton_tls_handshakes_total");
    assert_eq!(handshakes, 12, "one handshake per curl");

    // Keep-alive: three requests, one connection, one handshake.
    let ca = g.file(CA).display().to_string();
    let out = ok(g.exec(
        "client",
        &[
            "curl",
            "-sS",
            "--cacert",
            &ca,
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            &https_url(1, "/1K.bin"),
            &https_url(1, "/1M.bin"),
            &https_url(1, "/1K.bin"),
        ],
    ));
    assert_eq!(out.trim(), "200 1\n200 0\n200 0", "keep-alive over HTTPS");
    assert_eq!(tls_metric(&g, "baton_tls_handshakes_total"), handshakes + 1);

    // wget.
    let file = g.file("wget.body");
    let out = g.exec(
        "client",
        &[
            "wget",
            "-q",
            "--ca-certificate",
            &ca,
            "-O",
            &file.display().to_string(),
            &https_url(1, "/1M.bin"),
        ],
    );
    assert!(out.status.success(), "wget: {}", text(&out));
    assert_eq!(sha256_file(&file), g.listed_sha("1M.bin"), "wget's 1M.bin");

    // openssl s_client: a raw request, the answer's body after its head.
    for version in ["-tls1_3", "-tls1_2"] {
        let out = g.exec(
            "client",
            &[
                "sh",
                "-c",
                &format!(
                    "printf 'GET /1M.bin HTTP/1.1\\r\\nHost: lab.baton.test\\r\\nConnection: close\\r\\n\\r\\n' \
                     | openssl s_client -connect 198.18.0.11:443 -servername lab.baton.test \
                       -CAfile {ca} -verify_return_error -quiet -ign_eof {version} 2>/dev/null"
                ),
            ],
        );
        assert!(
            out.status.success(),
            "openssl s_client {version}: exit {:?}",
            out.status.code()
        );
        let raw = &out.stdout;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        assert!(raw.starts_with(b"HTTP/1.1 200"), "openssl {version}");
        assert_eq!(
            sha256_hex(&raw[split + 4..]),
            g.listed_sha("1M.bin"),
            "openssl s_client {version}: body"
        );
    }

    // Plain HTTP to the HTTPS port: a handshake failure and a fatal alert,
    // and the box goes on serving.
    let alerts = tls_metric(&g, "baton_tls_alerts_total{direction=\"sent\"}");
    let out = g.exec(
        "client",
        &[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "http://198.18.0.11:443/1K.bin",
        ],
    );
    assert!(!out.status.success(), "plain HTTP to 443 got an answer");
    assert!(tls_metric(&g, "baton_tls_handshake_failures_total") >= 1);
    assert_eq!(
        tls_metric(&g, "baton_tls_alerts_total{direction=\"sent\"}"),
        alerts + 1,
        "one fatal alert for the bad ClientHello"
    );
    https_identical(&g, 1, "1M.bin", &[], "TLSv1.3");

    // The records went through Baton's record layer: 50 MB twice is over
    // 6,400 body records of 16 KiB; every curl sent records too.
    let m = box_metrics(&g, 1);
    let out_records = metric_value(&m, "baton_tls_records_total{direction=\"out\"}");
    assert!(out_records > 6_400, "records sent: {out_records}");
    let in_records = metric_value(&m, "baton_tls_records_total{direction=\"in\"}");
    assert!(in_records >= 17, "records received: {in_records}");
    assert!(
        metric_value(&m, "baton_tls_close_notify_total{direction=\"sent\"}") >= 1,
        "close_notify sent (Connection: close)"
    );
    // Plain HTTP still served beside HTTPS.
    download_identical(&g, 1, "1M.bin");
}

/// A curl download of `object` over HTTPS from box `box_n` at `rate`,
/// running in the client namespace (`tls` picks the version).
fn start_https_download(
    g: &LabGuard,
    i: usize,
    box_n: usize,
    object: &str,
    rate: &str,
    tls: &[&str],
) -> Download {
    let url = if tls.contains(&"-6") {
        https_url6(box_n as u8, &format!("/{object}"))
    } else {
        https_url(box_n as u8, &format!("/{object}"))
    };
    let ca = g.file(CA).display().to_string();
    // The box ends the connection (close_notify, FIN) and curl then closes
    // its side with a FIN: the capture's proof that it saw the connection.
    let mut extra = vec!["--fail", "--cacert", &ca, "-H", "Connection: close"];
    extra.extend_from_slice(tls);
    start_download_with(g, i, url, rate, &extra)
}

/// 50 MB over HTTPS at 10 MB/s, box 1 killed mid-transfer: box 2 takes
/// the connection over from its checkpoint's TLS block and the client
/// notices nothing — curl exits 0, the bytes are the origin's, no RST on
/// the wire (the capture saw the client's FIN), and box 2's counters say
/// it resumed an HTTPS connection.
fn https_takeover(prefix: &str, tls: &[&str]) {
    let g = LabGuard::up(prefix, &["--boxes", "2", "--tls"]);
    let rst = RstCapture::start(&g);
    let started = std::time::Instant::now();
    let d = vec![start_https_download(&g, 0, 1, "50M.bin", "10M", tls)];
    let moved = kill_under_way(
        &g,
        &d,
        1,
        50 << 20,
        started,
        std::time::Duration::from_secs(2),
    );
    assert_all_identical(&g, d, "50M.bin");
    rst.assert_none_with_fins(1);
    let m = box_metrics(&g, 2);
    assert!(
        metric_value(&m, "baton_tls_resumed_total") >= moved,
        "box 2 resumed {} HTTPS connections, {moved} were mid-body",
        metric_value(&m, "baton_tls_resumed_total")
    );
    assert_eq!(metric_value(&m, "baton_tls_not_resumed_total"), 0);
    assert!(metric_value(&m, "baton_http_resumed_total") >= moved);
    // The survivor sealed the rest of the body itself.
    assert!(
        metric_value(&m, "baton_tls_records_total{direction=\"out\"}") > 100,
        "box 2 sent {} records",
        metric_value(&m, "baton_tls_records_total{direction=\"out\"}")
    );
}

#[test]
fn lab_https_download_survives_a_kill_tls13() {
    https_takeover("btht3", &["--tlsv1.3"]);
}

#[test]
fn lab_https_download_survives_a_kill_tls12() {
    https_takeover("btht2", &["--tlsv1.2", "--tls-max", "1.2"]);
}

#[test]
fn lab_https_download_over_ipv6_survives_a_kill() {
    // Issue 15 with issue 14: the same takeover over box 1's IPv6 address.
    https_takeover("btht6", &["-6"]);
}

/// One HTTPS keep-alive connection answers a request on box 1, which is
/// killed before the second: box 2 takes the idle connection over from
/// its TLS block and answers the second request on the same connection,
/// byte-exact, with no RST.
fn https_keepalive_takeover(prefix: &str, version: &str) {
    use std::io::{BufRead, Write};
    let g = LabGuard::up(prefix, &["--boxes", "2", "--tls"]);
    let rst = RstCapture::start(&g);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/common/https_keepalive.py"
    );
    let ca = g.file(CA).display().to_string();
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &g.driver.ns("client"), "python3", script])
        .args([&ca, "198.18.0.11", version, "/1M.bin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (install it)");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first answer");
    let want = format!("200 {} {}", g.listed_sha("1M.bin"), 1 << 20);
    let tls_name = if version == "1.2" {
        "TLSv1.2"
    } else {
        "TLSv1.3"
    };
    assert_eq!(first.trim(), format!("{want} {tls_name}"), "first answer");
    let before = metric_value(&box_metrics(&g, 2), "baton_tls_resumed_total");
    ok(g.lab(&["kill", "box1"]));
    // The second request goes once box 2 has the connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while takeover_field(&g, &[2], "ready") < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "box 2 took nothing over"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"\n").expect("go on");
    drop(stdin);
    let mut second = String::new();
    out.read_line(&mut second).expect("second answer");
    let status = child.wait_with_output().expect("python");
    assert!(
        status.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(second.trim(), format!("{want} {tls_name}"), "second answer");
    rst.assert_none_with_fins(1);
    let m = box_metrics(&g, 2);
    assert_eq!(
        metric_value(&m, "baton_tls_resumed_total"),
        before + 1,
        "box 2 resumed the idle HTTPS connection"
    );
    assert_eq!(metric_value(&m, "baton_tls_not_resumed_total"), 0);
    assert_eq!(
        metric_value(&m, "baton_tls_handshakes_total"),
        0,
        "no new handshake"
    );
    assert!(metric_value(&m, "baton_tls_records_total{direction=\"in\"}") >= 2);
}

#[test]
fn lab_https_keepalive_connection_survives_a_kill_between_requests_tls13() {
    https_keepalive_takeover("bthk3", "1.3");
}

#[test]
fn lab_https_keepalive_connection_survives_a_kill_between_requests_tls12() {
    https_keepalive_takeover("bthk2", "1.2");
}

/// `openssl s_client -tls1_3` downloads 50 MB (the client's link held to
/// 80 Mbit/s), sends a KeyUpdate with update_requested (`K`) a few MB in,
/// and box 1 is killed after box 1 has answered it: box 2 continues the
/// body under the updated keys (generation 1 both ways) — s_client exits
/// 0, sees no alert, the body is byte-exact, no RST.
#[test]
fn lab_https_download_survives_a_kill_after_a_client_key_update() {
    use std::io::Write;
    let g = LabGuard::up("bthku", &["--boxes", "2", "--tls"]);
    ok(g.lab(&["impair", "client", "--rate", "80"]));
    let rst = RstCapture::start(&g);
    let ca = g.file(CA).display().to_string();
    let out_path = g.file("ku.out");
    let out_file = fs::File::create(&out_path).expect("ku.out");
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &g.driver.ns("client"),
            "openssl",
            "s_client",
        ])
        .args([
            "-connect",
            "198.18.0.11:443",
            "-servername",
            "lab.baton.test",
        ])
        .args(["-CAfile", &ca, "-verify_return_error", "-tls1_3"])
        .stdin(std::process::Stdio::piped())
        .stdout(out_file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl (install it)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"GET /50M.bin HTTP/1.1\r\nHost: lab.baton.test\r\nConnection: close\r\n\r\n")
        .expect("request");
    stdin.flush().expect("flush");
    let size = || fs::metadata(&out_path).map_or(0, |m| m.len());
    let wait_size = |n: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while size() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "stuck at {} bytes",
                size()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_size(5 << 20);
    stdin.write_all(b"K\n").expect("K");
    stdin.flush().expect("flush");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tls_metric(&g, "baton_tls_key_updates_total") < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "box 1 saw no KeyUpdate"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    wait_size(size() + (3 << 20));
    assert!(
        size() < 40 << 20,
        "the body was nearly over before the kill"
    );
    ok(g.lab(&["kill", "box1"]));
    let out = child.wait_with_output().expect("s_client");
    drop(stdin);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "s_client failed: {:?}\n{err}",
        out.status
    );
    assert!(
        !err.to_lowercase().contains("alert"),
        "s_client saw an alert:\n{err}"
    );
    let raw = fs::read(&out_path).expect("ku.out");
    let at = raw
        .windows(17)
        .position(|w| w == b"HTTP/1.1 200 OK\r\n")
        .expect("a response");
    let head_end = at
        + raw[at..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head")
        + 4;
    let body = raw
        .get(head_end..head_end + (50 << 20))
        .expect("the whole body");
    assert_eq!(
        sha256_hex(body),
        g.listed_sha("50M.bin"),
        "body after a KeyUpdate and a kill"
    );
    rst.assert_none_with_fins(1);
    let m = box_metrics(&g, 2);
    assert_eq!(metric_value(&m, "baton_tls_resumed_total"), 1);
    assert_eq!(metric_value(&m, "baton_tls_not_resumed_total"), 0);
}

/// A planned move over HTTPS: box 1 drained while it sends 50 MB; its final
/// checkpoint carries the TLS block and box 2 finishes the body — curl
/// exits 0, sha256 exact, no RST, box 2 resumed the HTTPS connection.
#[test]
fn lab_https_download_survives_a_drain() {
    let g = LabGuard::up("bthdr", &["--boxes", "2", "--tls"]);
    let rst = RstCapture::start(&g);
    let started = std::time::Instant::now();
    let d = vec![start_https_download(&g, 0, 1, "50M.bin", "10M", &[])];
    let moved = when_under_way(
        &g,
        &d,
        1,
        50 << 20,
        started,
        std::time::Duration::from_secs(2),
        |g| {
            ok(g.lab(&["drain", "box1"]));
        },
    );
    assert_all_identical(&g, d, "50M.bin");
    rst.assert_none_with_fins(1);
    let m = box_metrics(&g, 2);
    assert!(metric_value(&m, "baton_tls_resumed_total") >= moved);
    assert_eq!(metric_value(&m, "baton_tls_not_resumed_total"), 0);
}

/// A TLS 1.2 client asking to renegotiate (`openssl s_client`, `R`) on a
/// live connection gets a fatal alert and the connection ends; the box
/// goes on serving HTTPS to others.
#[test]
fn lab_https_renegotiation_gets_an_alert_and_the_box_keeps_serving() {
    use std::io::Write;
    let g = LabGuard::up("bthrn", &["--boxes", "1", "--tls"]);
    let ca = g.file(CA).display().to_string();
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &g.driver.ns("client"),
            "openssl",
            "s_client",
        ])
        .args([
            "-connect",
            "198.18.0.11:443",
            "-servername",
            "lab.baton.test",
        ])
        .args(["-CAfile", &ca, "-verify_return_error", "-tls1_2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl (install it)");
    let mut stdin = child.stdin.take().expect("stdin");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tls_metric(&g, "baton_tls_handshakes_total") < 1 {
        assert!(std::time::Instant::now() < deadline, "no handshake");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stdin.write_all(b"R\n").expect("R");
    stdin.flush().expect("flush");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tls_metric(&g, "baton_tls_alerts_total{direction=\"sent\"}") < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no alert for the renegotiation"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("s_client");
    drop(stdin);
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("no renegotiation") || err.contains("alert"),
        "s_client did not report the alert: {err}"
    );
    https_identical(&g, 1, "1M.bin", &[], "TLSv1.3");
}

/// Two hundred HTTPS downloads spread over three boxes, box 1 killed
/// while its share is mid-body: every curl exits 0 with the origin's
/// bytes, no RST, and boxes 2 and 3 resumed box 1's TLS connections from
/// their checkpoints' TLS blocks.
#[test]
fn lab_two_hundred_https_downloads_survive_a_kill() {
    let g = LabGuard::up("bthtm", &["--boxes", "3", "--tls"]);
    warm_caches(&g, 3, "1M.bin");
    let rst = RstCapture::start(&g);
    let started = std::time::Instant::now();
    let downloads: Vec<Download> = (0..200)
        .map(|i| start_https_download(&g, i, 1 + i % 3, "1M.bin", "256K", &[]))
        .collect();
    let before = metric_sum(&g, &[2, 3], "baton_tls_resumed_total");
    let moved = kill_under_way(
        &g,
        &downloads,
        1,
        1 << 20,
        started,
        std::time::Duration::from_millis(1500),
    );
    assert_all_identical(&g, downloads, "1M.bin");
    rst.assert_none_with_fins(100);
    let resumed = metric_sum(&g, &[2, 3], "baton_tls_resumed_total") - before;
    assert!(
        resumed >= moved,
        "boxes 2 and 3 resumed {resumed} HTTPS connections; {moved} of box 1's were mid-body"
    );
    assert_eq!(
        metric_sum(&g, &[2, 3], "baton_tls_not_resumed_total"),
        0,
        "every HTTPS connection taken over continued"
    );
}

/// `baton migrate` moves 8 of 20 HTTPS downloads from box 1 to box 3 while
/// both live: the TLS state goes with the final checkpoint, every
/// download ends byte-exact, no RST, and box 3 resumed what it adopted.
#[test]
fn lab_migrate_moves_https_connections_between_live_boxes() {
    let g = LabGuard::up("bthtg", &["--boxes", "3", "--tls"]);
    warm_caches(&g, 3, "1M.bin");
    let rst = RstCapture::start(&g);
    let downloads: Vec<Download> = (0..20)
        .map(|i| start_https_download(&g, i, 1, "1M.bin", "100K", &[]))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metric_value(&box_metrics(&g, 1), "baton_connections") < 20
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let before = metric_value(&box_metrics(&g, 3), "baton_tls_resumed_total");
    let (moved, _) = migrate_eight_to_box3_under_way(
        &g,
        &downloads,
        std::time::Instant::now(),
        std::time::Duration::ZERO,
    );
    assert_all_identical(&g, downloads, "1M.bin");
    rst.assert_none_with_fins(10);
    let m = box_metrics(&g, 3);
    assert!(
        metric_value(&m, "baton_tls_resumed_total") - before >= moved,
        "box 3 resumed {} HTTPS connections of the {moved} moved",
        metric_value(&m, "baton_tls_resumed_total") - before
    );
    assert_eq!(metric_value(&m, "baton_tls_not_resumed_total"), 0);
}

/// The lab CA's path, for clients that check the boxes' certificates.
fn ca(g: &LabGuard) -> String {
    g.file(CA).display().to_string()
}

fn tls_name(version: &str) -> &'static str {
    if version == "1.2" {
        "TLSv1.2"
    } else {
        "TLSv1.3"
    }
}

/// Three GETs pipelined in one TLS write (one record) on a keep-alive
/// connection, read at 8 MB/s; box 1 is killed while the first answer (50
/// MB) is going out, with the two others queued behind it: box 2 continues
/// the first and answers the two others on the same connection, every body
/// complete, byte-exact and in order, no RST, no new handshake.
fn https_pipelined_takeover(prefix: &str, version: &str) {
    let g = LabGuard::up(prefix, &["--boxes", "2", "--tls"]);
    let rst = RstCapture::start(&g);
    let (answers, status) = pipelined_across_a_kill(
        &g,
        Some((&ca(&g), version)),
        &["/50M.bin", "/1M.bin", "/1K.bin"],
    );
    let want: Vec<String> = [("50M.bin", 50 << 20), ("1M.bin", 1 << 20), ("1K.bin", 1024)]
        .iter()
        .map(|(name, len)| format!("200 {} {len} {}", g.listed_sha(name), tls_name(version)))
        .collect();
    assert_eq!(
        answers,
        want,
        "pipelined answers across the kill (client: {})",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(status.status.success(), "the client failed");
    rst.assert_none_with_fins(1);
    let m = box_metrics(&g, 2);
    assert_eq!(metric_value(&m, "baton_tls_resumed_total"), 1);
    assert_eq!(metric_value(&m, "baton_tls_not_resumed_total"), 0);
    assert_eq!(
        metric_value(&m, "baton_tls_handshakes_total"),
        0,
        "no new handshake"
    );
}

#[test]
fn lab_https_pipelined_requests_survive_a_kill_tls13() {
    https_pipelined_takeover("bthp3", "1.3");
}

#[test]
fn lab_https_pipelined_requests_survive_a_kill_tls12() {
    https_pipelined_takeover("bthp2", "1.2");
}

/// A request the TLS block cannot carry (a refused one, no Host) pipelined
/// behind a 50 MB answer, box 1 killed mid-answer: box 2 finishes the
/// answer, then ends the connection cleanly (close_notify, FIN) rather
/// than wait for a request that is gone — the client gets its body whole
/// and a close it can retry after, no RST.
#[test]
fn lab_https_pipelined_input_the_block_cannot_carry_ends_the_connection_after_the_answer() {
    let g = LabGuard::up("bthpl", &["--boxes", "2", "--tls"]);
    let rst = RstCapture::start(&g);
    let (answers, status) =
        pipelined_across_a_kill(&g, Some((&ca(&g), "1.3")), &["/50M.bin", "!/1K.bin"]);
    let first = format!("200 {} {} TLSv1.3", g.listed_sha("50M.bin"), 50 << 20);
    assert_eq!(
        answers,
        [first, "closed".to_string()],
        "client: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    rst.assert_none_with_fins(1);
    let m = box_metrics(&g, 2);
    assert_eq!(metric_value(&m, "baton_tls_resumed_total"), 1);
    assert_eq!(
        metric_value(&m, "baton_tls_close_notify_total{direction=\"sent\"}"),
        1,
        "box 2 closed the connection after the answer"
    );
    assert_eq!(
        metric_value(&m, "baton_http_idle_timeouts_total"),
        0,
        "closed right after the answer, not by the idle timeout"
    );
}
