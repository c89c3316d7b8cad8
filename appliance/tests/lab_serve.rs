//! End-to-end: real Linux clients (curl, wget, ab — the kernel's own TCP in
//! the lab's client namespace) against boxes serving the HTTP cache on
//! Baton's userspace TCP stack (issues 3 and 5). Needs root; every test
//! builds its own lab (prefix `bt…`) and removes it, serialized with the
//! other lab tests (nextest group / flock, see tests/common).
mod common;

use std::fs;

use common::*;

/// Runs a raw request through bash's /dev/tcp in the client namespace and
/// returns the status line the box answered.
fn raw_status_line(g: &LabGuard, request: &str) -> String {
    let script = format!("exec 3<>/dev/tcp/198.18.0.11/80; printf '{request}' >&3; head -n 1 <&3");
    let o = g.exec("client", &["timeout", "10", "bash", "-c", &script]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn lab_curl_downloads_every_object_through_a_box_byte_identical() {
    let g = LabGuard::up("btsv1", &["--boxes", "1"]);
    for name in ["1K.bin", "1M.bin", "50M.bin", "100M.bin"] {
        // First a miss streamed from the origin, then a hit from memory.
        download_identical(&g, 1, name);
        download_identical(&g, 1, name);
    }
}

#[test]
fn lab_wget_fetches_every_object_byte_identical() {
    let g = LabGuard::up("btsv2", &["--boxes", "1"]);
    for name in ["1K.bin", "1M.bin", "50M.bin"] {
        let out = g.file("wget.body").display().to_string();
        ok(g.exec(
            "client",
            &[
                "wget",
                "-q",
                "-T",
                "60",
                "-O",
                &out,
                &format!("http://198.18.0.11/{name}"),
            ],
        ));
        assert_eq!(
            sha256_file(&g.file("wget.body")),
            g.listed_sha(name),
            "{name} via wget"
        );
    }
}

#[test]
fn lab_downloads_survive_loss_delay_reordering_and_duplication() {
    let g = LabGuard::up("btsv3", &["--boxes", "1"]);
    // Warm the cache so the impaired leg is the client's alone.
    download_identical(&g, 1, "1M.bin");
    download_identical(&g, 1, "50M.bin");
    ok(g.lab(&["impair", "client", "--loss", "2", "--delay", "20"]));
    for _ in 0..3 {
        download_identical(&g, 1, "1M.bin");
    }
    ok(g.lab(&["impair", "client", "--delay", "2", "--reorder", "25"]));
    download_identical(&g, 1, "1M.bin");
    download_identical(&g, 1, "50M.bin");
    ok(g.lab(&["impair", "client", "--duplicate", "10"]));
    download_identical(&g, 1, "50M.bin");
    ok(g.lab(&["impair", "client", "--clear"]));
    download_identical(&g, 1, "1M.bin");
}

/// ab's summary line `NAME: VALUE` as a number.
fn ab_number(out: &str, name: &str) -> u64 {
    out.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("ab printed no {name:?}:\n{out}"))
}

#[test]
fn lab_a_thousand_parallel_connections_complete() {
    let g = LabGuard::up("btsv4", &["--boxes", "1"]);
    download_identical(&g, 1, "1K.bin");
    let o = g.exec(
        "client",
        &[
            "ab",
            "-q",
            "-s",
            "30",
            "-n",
            "1000",
            "-c",
            "1000",
            "http://198.18.0.11/1K.bin",
        ],
    );
    let out = ok(o);
    assert_eq!(ab_number(&out, "Complete requests:"), 1000, "{out}");
    assert_eq!(ab_number(&out, "Failed requests:"), 0, "{out}");
    assert!(
        !out.contains("Non-2xx responses:"),
        "every answer is a 200:\n{out}"
    );
    assert_eq!(ab_number(&out, "Document Length:"), 1024, "{out}");
}

#[test]
fn lab_ten_thousand_keep_alive_requests_have_zero_errors() {
    let g = LabGuard::up("btsv5", &["--boxes", "1"]);
    let out = ok(g.exec(
        "client",
        &[
            "ab",
            "-q",
            "-k",
            "-s",
            "30",
            "-n",
            "10000",
            "-c",
            "50",
            "http://198.18.0.11/1K.bin",
        ],
    ));
    assert_eq!(ab_number(&out, "Complete requests:"), 10000, "{out}");
    assert_eq!(ab_number(&out, "Failed requests:"), 0, "{out}");
    assert_eq!(ab_number(&out, "Keep-Alive requests:"), 10000, "{out}");
}

#[test]
fn lab_cache_answers_ranges_conditionals_and_head() {
    let g = LabGuard::up("btsv6", &["--boxes", "1"]);
    download_identical(&g, 1, "1M.bin");
    let whole = fs::read(g.file("objects/1M.bin")).expect("the origin's 1M.bin");

    let (code, headers, body) = curl_box(&g, 1, "/1M.bin", &["-r", "1000-1999"]);
    assert_eq!(code, 206);
    assert_eq!(body, whole[1000..2000]);
    assert_eq!(
        header(&headers, "content-range").as_deref(),
        Some("bytes 1000-1999/1048576")
    );

    let (code, _, body) = curl_box(&g, 1, "/1M.bin", &["-r", "-500"]);
    assert_eq!(code, 206, "suffix range");
    assert_eq!(body, whole[whole.len() - 500..]);

    let (code, headers, _) = curl_box(&g, 1, "/1M.bin", &["-r", "2000000-"]);
    assert_eq!(code, 416);
    assert_eq!(
        header(&headers, "content-range").as_deref(),
        Some("bytes */1048576")
    );

    let (_, headers, _) = curl_box(&g, 1, "/1M.bin", &["-I"]);
    let etag = header(&headers, "etag").expect("the box sends the origin's ETag");
    assert_eq!(
        header(&headers, "content-length").as_deref(),
        Some("1048576")
    );
    let (code, _, body) = curl_box(&g, 1, "/1M.bin", &["-H", &format!("If-None-Match: {etag}")]);
    assert_eq!(code, 304);
    assert!(body.is_empty());
    // curl -z: If-Modified-Since with the object's own date.
    let last_modified = header(&headers, "last-modified").expect("the box sends Last-Modified");
    let (code, _, _) = curl_box(
        &g,
        1,
        "/1M.bin",
        &["-H", &format!("If-Modified-Since: {last_modified}")],
    );
    assert_eq!(code, 304);
    // If-Range with a stale validator: the whole object, 200.
    let (code, _, body) = curl_box(
        &g,
        1,
        "/1M.bin",
        &["-r", "0-9", "-H", "If-Range: \"stale\""],
    );
    assert_eq!(code, 200);
    assert_eq!(body.len(), whole.len());
}

#[test]
fn lab_garbage_and_oversized_requests_get_their_status_and_the_box_keeps_serving() {
    let g = LabGuard::up("btsv7", &["--boxes", "1"]);
    assert!(
        raw_status_line(&g, "GARBAGE\\r\\n\\r\\n").starts_with("HTTP/1.1 400"),
        "garbage -> 400"
    );
    let long_url = format!(
        "GET /{} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n",
        "a".repeat(9000)
    );
    assert!(
        raw_status_line(&g, &long_url).starts_with("HTTP/1.1 414"),
        "long request line -> 414"
    );
    let big_header = format!(
        "GET /1K.bin HTTP/1.1\\r\\nHost: x\\r\\nX-Big: {}\\r\\n\\r\\n",
        "b".repeat(20000)
    );
    assert!(
        raw_status_line(&g, &big_header).starts_with("HTTP/1.1 431"),
        "huge headers -> 431"
    );
    assert!(
        raw_status_line(&g, "DELETE /1K.bin HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            .starts_with("HTTP/1.1 405")
    );
    let (code, _, _) = curl_box(&g, 1, "/nope.bin", &[]);
    assert_eq!(code, 404, "the origin's 404 is passed through");
    download_identical(&g, 1, "1M.bin");
}

#[test]
fn lab_origin_down_gives_502_and_the_box_stays_healthy() {
    let g = LabGuard::up("btsv8", &["--boxes", "1"]);
    download_identical(&g, 1, "1M.bin");
    let pid = fs::read_to_string(g.file("origin.pid")).expect("origin.pid");
    let pid: i32 = pid.trim().parse().expect("origin pid");
    // SAFETY: kill(2) on the lab origin's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (code, _, _) = curl_box(&g, 1, "/1K.bin", &[]);
    assert_eq!(code, 502, "origin refused -> 502");
    // A failed fetch never poisons the cache, and cached objects still flow.
    download_identical(&g, 1, "1M.bin");
    let (code, _, _) = curl_box(&g, 1, "/1K.bin", &[]);
    assert_eq!(code, 502);
}

#[test]
fn lab_nginx_as_origin_serves_identical_objects_through_a_box() {
    assert!(
        std::process::Command::new("nginx")
            .arg("-v")
            .output()
            .is_ok(),
        "nginx is not installed: apt-get install nginx (scripts/test does)"
    );
    let g = LabGuard::up("btsv9", &["--boxes", "1", "--origin", "nginx"]);
    for name in ["1K.bin", "1M.bin", "50M.bin"] {
        download_identical(&g, 1, name);
    }
    let whole = fs::read(g.file("objects/1M.bin")).expect("1M.bin");
    let (code, _, body) = curl_box(&g, 1, "/1M.bin", &["-r", "100-199"]);
    assert_eq!(code, 206);
    assert_eq!(body, whole[100..200]);
}

#[test]
fn lab_admin_api_reports_status_and_metrics_purges_and_refuses_without_the_token() {
    let g = LabGuard::up("btsv10", &["--boxes", "2"]);
    download_identical(&g, 1, "1M.bin");
    let config = g.file("box1.toml").display().to_string();
    // The admin API listens on box 1's back-LAN address: ask from box 2.
    let status = ok(g.exec("box2", &[BATON, "admin", "--config", &config, "status"]));
    assert!(
        status.contains("\"box_id\":1") && status.contains("\"state\":\"alive\""),
        "{status}"
    );
    let metrics = ok(g.exec("box2", &[BATON, "admin", "--config", &config, "metrics"]));
    let misses = metrics
        .lines()
        .find_map(|l| l.strip_prefix("baton_cache_misses_total "))
        .unwrap_or_else(|| panic!("no miss counter:\n{metrics}"));
    assert_eq!(misses.trim(), "1", "one miss so far");
    assert!(
        metrics.contains("# TYPE baton_dataplane_tcp_accepted_total counter"),
        "{metrics}"
    );
    let purged = ok(g.exec(
        "box2",
        &[BATON, "admin", "--config", &config, "purge:/1M.bin"],
    ));
    assert!(purged.contains("true"), "the object was cached: {purged}");
    download_identical(&g, 1, "1M.bin");
    let metrics = ok(g.exec("box2", &[BATON, "admin", "--config", &config, "metrics"]));
    assert!(
        metrics.lines().any(|l| l == "baton_cache_misses_total 2"),
        "purged, so a second miss:\n{metrics}"
    );
    // Without the token: 401.
    let o = g.exec(
        "box2",
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://198.19.0.11:9090/status",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "401");
}
