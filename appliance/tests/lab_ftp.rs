//! End-to-end FTP (issue 17): real clients (curl, wget, lftp) in the lab's
//! client namespace against a box serving the cache over FTP on Baton's
//! userspace TCP stack, passive mode (EPSV and PASV), REST, listings, and
//! bad input refused while the box keeps serving. Needs root; serialized
//! with the other lab tests (tests/common).
mod common;

use std::fs;

use common::*;

const BOX1: &str = "198.18.0.11";

/// curl `ftp://box1/name` into a file; `extra` adds options.
fn curl_ftp(g: &LabGuard, name: &str, extra: &[&str]) -> Vec<u8> {
    let out = g.file("ftp.body").display().to_string();
    let url = format!("ftp://{BOX1}/{name}");
    let mut args = vec!["curl", "-sS", "--max-time", "120", "-o", &out];
    args.extend_from_slice(extra);
    args.push(&url);
    ok(run_client(g, &args));
    fs::read(g.file("ftp.body")).unwrap_or_default()
}

fn metric(g: &LabGuard, name: &str) -> u64 {
    metric_value(&box_metrics(g, 1), name)
}

#[test]
fn lab_ftp_clients_download_every_object_byte_identical() {
    let g = LabGuard::up("btftp1", &["--boxes", "1"]);
    // Control and data connections end with FINs, never a reset.
    let rst = RstCapture::start(&g);
    for name in ["1K.bin", "1M.bin", "50M.bin", "100M.bin"] {
        // EPSV (curl's default), then PASV (--disable-epsv).
        let body = curl_ftp(&g, name, &[]);
        assert_eq!(
            sha256_hex(&body),
            g.listed_sha(name),
            "{name} via curl EPSV ({} bytes)",
            body.len()
        );
        let body = curl_ftp(&g, name, &["--disable-epsv"]);
        assert_eq!(
            sha256_hex(&body),
            g.listed_sha(name),
            "{name} via curl PASV ({} bytes)",
            body.len()
        );
    }
    for name in ["1K.bin", "50M.bin"] {
        let out = g.file("wget.body").display().to_string();
        ok(run_client(
            &g,
            &[
                "wget",
                "-q",
                "-T",
                "60",
                "-O",
                &out,
                &format!("ftp://{BOX1}/{name}"),
            ],
        ));
        assert_eq!(
            sha256_file(&g.file("wget.body")),
            g.listed_sha(name),
            "{name} via wget"
        );
    }
    let dir = g.file("lftp");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("lftp folder");
    let script = format!(
        "set net:max-retries 1; set net:timeout 30; open ftp://{BOX1}; lcd {}; get 1M.bin; get 100M.bin; bye",
        dir.display()
    );
    ok(run_client(&g, &["lftp", "-c", &script]));
    for name in ["1M.bin", "100M.bin"] {
        assert_eq!(
            sha256_file(&dir.join(name)),
            g.listed_sha(name),
            "{name} via lftp get"
        );
    }
    // Every object the origin's index lists, in the names-only listing.
    let names = ok(run_client(
        &g,
        &[
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-l",
            &format!("ftp://{BOX1}/"),
        ],
    ));
    for name in ["1K.bin", "1M.bin", "50M.bin", "100M.bin"] {
        assert!(
            names.lines().any(|l| l.trim() == name),
            "NLST lacks {name}: {names:?}"
        );
    }
    let transfers = metric(&g, "baton_ftp_transfers_total");
    assert!(transfers >= 13, "the box counted {transfers} FTP transfers");
    // Each transfer's control and data connection, closed by the client.
    rst.assert_none_with_fins(20);
}

#[test]
fn lab_ftp_curl_resumes_a_partial_file_with_rest() {
    let g = LabGuard::up("btftp2", &["--boxes", "1"]);
    let name = "50M.bin";
    let full = curl_ftp(&g, name, &[]);
    assert_eq!(sha256_hex(&full), g.listed_sha(name));
    // A partial file of an odd length; `curl -C -` sends REST with it.
    let cut = 12_345_677;
    fs::write(g.file("ftp.body"), &full[..cut]).expect("partial file");
    let before = metric(&g, "baton_ftp_commands_total");
    let url = format!("ftp://{BOX1}/{name}");
    let out = g.file("ftp.body").display().to_string();
    ok(run_client(
        &g,
        &[
            "curl",
            "-sS",
            "--max-time",
            "120",
            "-C",
            "-",
            "-o",
            &out,
            &url,
        ],
    ));
    assert_eq!(
        sha256_file(&g.file("ftp.body")),
        g.listed_sha(name),
        "resumed {name}"
    );
    assert!(metric(&g, "baton_ftp_commands_total") > before);
    let sent = metric(&g, "baton_ftp_data_bytes_total");
    // The first download sent it whole, the resumed one only the rest.
    let whole = full.len() as u64;
    assert_eq!(
        sent,
        whole + (whole - cut as u64),
        "bytes sent on data connections"
    );
}

#[test]
fn lab_ftp_bad_input_is_refused_and_the_box_keeps_serving() {
    let g = LabGuard::up("btftp3", &["--boxes", "1"]);
    // One control connection: an overlong line, an unknown verb, PORT to a
    // third party, then a proper QUIT. bash's /dev/tcp is the raw client.
    let long = "A".repeat(600);
    let script = format!(
        "exec 3<>/dev/tcp/{BOX1}/21; \
         printf 'USER anonymous\\r\\nPASS x\\r\\nNOOP {long}\\r\\nFROB\\r\\nPORT 198,18,0,99,200,10\\r\\nQUIT\\r\\n' >&3; \
         timeout 10 cat <&3"
    );
    let replies = ok(run_client(&g, &["timeout", "20", "bash", "-c", &script]));
    let codes: Vec<&str> = replies.lines().filter_map(|l| l.get(..4)).collect();
    assert!(codes.contains(&"500 "), "no 500 in {replies:?}");
    assert!(
        codes.contains(&"504 ") || codes.contains(&"501 "),
        "PORT not refused: {replies:?}"
    );
    assert!(codes.contains(&"221 "), "no 221 after QUIT: {replies:?}");
    assert!(metric(&g, "baton_ftp_refused_total{cause=\"overlong\"}") >= 1);
    assert!(metric(&g, "baton_ftp_refused_total{cause=\"bounce\"}") >= 1);
    assert!(metric(&g, "baton_ftp_refused_total{cause=\"command\"}") >= 1);
    // A connection to a passive port nobody reserved is reset.
    let probe = format!("exec 3<>/dev/tcp/{BOX1}/40007 && cat <&3");
    let _ = run_client(&g, &["timeout", "5", "bash", "-c", &probe]);
    assert!(metric(&g, "baton_ftp_data_refused_total{cause=\"unclaimed\"}") >= 1);
    // Still serving.
    let body = curl_ftp(&g, "1M.bin", &[]);
    assert_eq!(sha256_hex(&body), g.listed_sha("1M.bin"));
}

/// Active mode (RFC 959 PORT, RFC 2428 EPRT): the box connects to the
/// client's own data address from a port of its passive range. curl with
/// EPRT and with PORT (`--disable-eprt`), lftp with passive mode off, and
/// a listing: byte-exact, every connection ended with FINs.
#[test]
fn lab_ftp_active_mode_downloads_byte_identical() {
    let g = LabGuard::up("btftp4", &["--boxes", "1"]);
    let rst = RstCapture::start(&g);
    for name in ["1K.bin", "50M.bin"] {
        let body = curl_ftp(&g, name, &["-P", "-"]);
        assert_eq!(
            sha256_hex(&body),
            g.listed_sha(name),
            "{name} via curl EPRT ({} bytes)",
            body.len()
        );
        let body = curl_ftp(&g, name, &["-P", "-", "--disable-eprt"]);
        assert_eq!(
            sha256_hex(&body),
            g.listed_sha(name),
            "{name} via curl PORT ({} bytes)",
            body.len()
        );
    }
    let names = ok(run_client(
        &g,
        &[
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-P",
            "-",
            "-l",
            &format!("ftp://{BOX1}/"),
        ],
    ));
    assert!(
        names.lines().any(|l| l.trim() == "1M.bin"),
        "active NLST lacks 1M.bin: {names:?}"
    );
    let dir = g.file("lftp-active");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("lftp folder");
    let script = format!(
        "set net:max-retries 1; set net:timeout 30; set ftp:passive-mode off; open ftp://{BOX1}; lcd {}; get 1M.bin; bye",
        dir.display()
    );
    ok(run_client(&g, &["lftp", "-c", &script]));
    assert_eq!(
        sha256_file(&dir.join("1M.bin")),
        g.listed_sha("1M.bin"),
        "1M.bin via lftp active"
    );
    let transfers = metric(&g, "baton_ftp_transfers_total");
    assert!(transfers >= 6, "the box counted {transfers} FTP transfers");
    // Six sessions' control and data connections, closed with FINs.
    rst.assert_none_with_fins(12);
}
