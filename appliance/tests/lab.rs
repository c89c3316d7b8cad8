//! End-to-end tests of `baton lab`: they build real labs of network
//! namespaces, so they need root and fail loudly without it. Each test uses
//! its own prefix (starting with `bt`) and a guard that runs `lab down` even
//! when the test fails. Lab tests never run at the same time: nextest puts
//! them in a one-thread group (.config/nextest.toml) and, under plain
//! `cargo test`, they take an flock on /run/baton-lab/.test.lock.
mod common;

use common::*;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn lab_up_status_down_twice_in_a_row_leaves_no_namespace() {
    let p = "bt_cycle";
    let g = LabGuard::new(p);
    for round in 1..=2 {
        ok(g.lab(&["up", "--boxes", "3"]));
        let status = ok(g.lab(&["status"]));
        for n in 1..=3 {
            let line = status
                .lines()
                .find(|l| l.starts_with(&format!("box{n} ")))
                .unwrap_or_else(|| panic!("round {round}: no box{n} in status:\n{status}"));
            assert!(
                line.contains(" yes "),
                "round {round}: box{n} not alive:\n{status}"
            );
        }
        assert_eq!(namespaces_of(p).len(), 6, "lan, client, origin and 3 boxes");
        ok(g.lab(&["down"]));
        ok(g.lab(&["down"]));
        assert_eq!(namespaces_of(p), Vec::<String>::new(), "round {round}");
        assert!(!g.file("").exists(), "run state removed");
        assert!(!PathBuf::from(format!("/dev/shm/baton-lab-{p}.seg")).exists());
    }
}

/// LAB.md: nothing in the root namespace has an address or a route in
/// 198.18.0.0/15 or 2001:2::/48, so lab traffic cannot leave the lab.
#[test]
fn lab_root_namespace_gets_no_lab_address_or_route() {
    let g = LabGuard::up("bt_root", &["--boxes", "2"]);
    for args in [
        &["-4", "addr"][..],
        &["-4", "route", "show", "table", "all"][..],
        &["-6", "addr"][..],
        &["-6", "route", "show", "table", "all"][..],
    ] {
        let out = Command::new("ip").args(args).output().expect("ip");
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.contains("198.18.") && !out.contains("198.19.") && !out.contains("2001:2:"),
            "root namespace `ip {}` shows a lab address:\n{out}",
            args.join(" ")
        );
    }
    // The client's one IPv6 address is its lab address (no link-local:
    // its kernel sends no solicitations of its own), and no other lab
    // interface carries IPv6: the LANs stay quiet.
    let o = g.exec("client", &["ip", "-6", "-o", "addr"]);
    assert!(o.status.success());
    let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        lines.len() == 1 && lines[0].contains("inet6 2001:2:0:18::100/64"),
        "client IPv6 addresses: {lines:?}"
    );
    for node in ["origin", "box1", "box2", "lan"] {
        let o = g.exec(node, &["ip", "-6", "-o", "addr"]);
        assert!(o.status.success());
        assert!(
            o.stdout.is_empty(),
            "{node} has IPv6 addresses: {}",
            text(&o)
        );
    }
}

#[test]
fn lab_up_refuses_a_second_lab_with_the_same_prefix() {
    let g = LabGuard::up("bt_twice", &["--boxes", "1"]);
    let o = g.lab(&["up", "--boxes", "1"]);
    assert!(!o.status.success(), "second up succeeded: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already exists"),
        "{}",
        text(&o)
    );
    // The first lab is untouched by the refusal.
    assert_eq!(namespaces_of("bt_twice").len(), 4);
    ok(g.lab(&["status"]));
}

#[test]
fn lab_up_that_fails_midway_quotes_the_box_log_and_removes_what_it_made() {
    let g = LabGuard::new("bt_fail");
    // A "box" that dies at once: sh, given `run --config …` as its
    // arguments, complains that it cannot open the script "run".
    let o = Command::new(BATON)
        .args(["lab", "--prefix", "bt_fail", "up", "--boxes", "2"])
        .env("BATON_LAB_BOX_EXE", "/bin/sh")
        .output()
        .expect("run baton");
    assert!(
        !o.status.success(),
        "up succeeded with dead boxes: {}",
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("exited before it was ready"), "{}", text(&o));
    assert!(
        err.contains("cannot open run"),
        "the box log is not quoted: {}",
        text(&o)
    );
    assert_eq!(namespaces_of("bt_fail"), Vec::<String>::new());
    assert!(!g.file("").exists());
}

#[test]
fn lab_down_removes_a_half_built_lab() {
    let g = LabGuard::new("bt_half");
    let st = Command::new("ip")
        .args(["netns", "add", "bt_half-lan"])
        .status()
        .unwrap();
    assert!(st.success());
    fs::create_dir_all(g.file("")).unwrap();
    ok(g.lab(&["down"]));
    assert_eq!(namespaces_of("bt_half"), Vec::<String>::new());
    assert!(!g.file("").exists());
}

#[test]
fn lab_origin_is_reachable_from_a_box_but_not_from_the_client() {
    let g = LabGuard::up("bt_reach", &["--boxes", "1"]);
    let o = g.exec(
        "client",
        &[
            "curl",
            "-sS",
            "-m",
            "3",
            "-o",
            "/dev/null",
            "http://198.19.0.2/50M.bin",
        ],
    );
    assert!(
        !o.status.success(),
        "the client reached the origin: {}",
        text(&o)
    );

    let dl = g.file("dl.bin");
    let dl_s = dl.display().to_string();
    ok(g.exec(
        "box1",
        &[
            "curl",
            "-sS",
            "-f",
            "-o",
            &dl_s,
            "http://198.19.0.2/50M.bin",
        ],
    ));
    assert_eq!(fs::metadata(&dl).unwrap().len(), 50 << 20);
    assert_eq!(sha256_file(&dl), g.listed_sha("50M.bin"));

    // Every object LAB.md promises is there, at its size, as listed.
    for (name, size) in [
        ("1K.bin", 1u64 << 10),
        ("1M.bin", 1 << 20),
        ("50M.bin", 50 << 20),
        ("100M.bin", 100 << 20),
    ] {
        let path = g.file(&format!("objects/{name}"));
        assert_eq!(
            fs::metadata(&path).map(|m| m.len()).ok(),
            Some(size),
            "{name}"
        );
        if size <= 1 << 20 {
            assert_eq!(sha256_file(&path), g.listed_sha(name), "{name}");
        }
    }
}

#[test]
fn lab_exec_propagates_the_exit_code() {
    let g = LabGuard::up("bt_exec", &["--boxes", "1", "--client-addrs", "3"]);
    let o = g.exec("client", &["sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let o = g.exec("box1", &["ip", "-o", "-4", "addr", "show", "dev", "front0"]);
    assert!(o.status.success());
    assert!(
        o.stdout.is_empty(),
        "front0 must have no kernel IPv4 address: {}",
        text(&o)
    );
    let addrs = ok(g.exec("client", &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]));
    for a in ["198.18.0.100/24", "198.18.0.101/24", "198.18.0.103/24"] {
        assert!(addrs.contains(a), "client lacks {a}:\n{addrs}");
    }
    assert!(!addrs.contains("198.18.0.104"), "{addrs}");
}

#[test]
fn lab_kill_stops_a_box_and_start_brings_it_back() {
    let g = LabGuard::up("bt_kill", &["--boxes", "2"]);
    ok(g.lab(&["kill", "box2"]));
    let status = ok(g.lab(&["status"]));
    let line = status
        .lines()
        .find(|l| l.starts_with("box2 "))
        .unwrap()
        .to_string();
    assert!(
        line.contains(" no "),
        "box2 still alive after kill:\n{status}"
    );
    ok(g.lab(&["start", "box2"]));
    let status = ok(g.lab(&["status"]));
    let line = status
        .lines()
        .find(|l| l.starts_with("box2 "))
        .unwrap()
        .to_string();
    assert!(
        line.contains(" yes "),
        "box2 not back after start:\n{status}"
    );
}

/// Pings the client 198.18.0.100 from an address put on the front bridge
/// of the lan namespace: the requests cross the client's impaired port,
/// the replies do not. Returns (sent, received, min rtt ms, avg rtt ms).
fn ping_client(g: &LabGuard, count: u32, interval: &str) -> (u32, u32, f64, f64) {
    let o = g.exec(
        "lan",
        &[
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "1",
            "198.18.0.100",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let stats = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary: {}", text(&o)));
    let nums: Vec<u32> = stats
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse().ok())
        .collect();
    let (sent, received) = (nums[0], nums[1]);
    let (min, avg) = out
        .lines()
        .find(|l| l.starts_with("rtt"))
        .and_then(|l| {
            let v: Vec<f64> = l
                .split('=')
                .nth(1)?
                .trim()
                .split('/')
                .filter_map(|x| x.trim_end_matches(" ms").parse().ok())
                .collect();
            Some((*v.first()?, *v.get(1)?))
        })
        .unwrap_or((f64::NAN, f64::NAN));
    (sent, received, min, avg)
}

fn add_probe_address(g: &LabGuard) {
    ok(g.exec(
        "lan",
        &["ip", "addr", "add", "198.18.0.200/24", "dev", "front"],
    ));
}

#[test]
fn lab_impair_client_loss_5_loses_about_5_percent_of_what_it_receives() {
    let g = LabGuard::up("bt_loss", &["--boxes", "1"]);
    add_probe_address(&g);
    let (sent, received, _, _) = ping_client(&g, 200, "0.005");
    assert_eq!(sent, received, "loss before any impairment");

    ok(g.lab(&["impair", "client", "--loss", "5"]));
    let (sent, received, _, _) = ping_client(&g, 1000, "0.003");
    let loss = 100.0 * f64::from(sent - received) / f64::from(sent);
    assert!(
        (2.0..=9.0).contains(&loss),
        "measured loss {loss:.1} % for --loss 5"
    );

    ok(g.lab(&["impair", "client", "--clear"]));
    let (sent, received, _, _) = ping_client(&g, 200, "0.005");
    assert_eq!(sent, received, "loss after --clear");
}

#[test]
fn lab_impair_client_delay_20_adds_20_ms_and_clear_removes_it() {
    let g = LabGuard::up("bt_delay", &["--boxes", "1"]);
    add_probe_address(&g);
    let (_, received, min, _) = ping_client(&g, 20, "0.02");
    assert_eq!(received, 20);
    assert!(min < 5.0, "min rtt {min} ms before impairment");

    ok(g.lab(&["impair", "client", "--delay", "20"]));
    let (_, received, min, _) = ping_client(&g, 20, "0.02");
    assert_eq!(received, 20, "delay alone loses nothing");
    assert!(min >= 20.0, "min rtt {min} ms with --delay 20");
    assert!(min < 40.0, "min rtt {min} ms with --delay 20");

    ok(g.lab(&["impair", "client", "--clear"]));
    let (_, received, min, _) = ping_client(&g, 20, "0.02");
    assert_eq!(received, 20);
    assert!(
        min < 5.0,
        "min rtt {min} ms after --clear: the delay line is still there"
    );
}

/// One curl from box1 to the origin: (status code, response head, body).
fn curl(g: &LabGuard, path: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let body = g.file("curl.body");
    let head = g.file("curl.head");
    let _ = fs::remove_file(&body);
    let (b, h) = (body.display().to_string(), head.display().to_string());
    let url = format!("http://198.19.0.2{path}");
    let mut args = vec!["curl", "-sS", "-o", &b, "-D", &h, "-w", "%{http_code}"];
    args.extend_from_slice(extra);
    args.push(&url);
    let o = g.exec("box1", &args);
    let out = ok(o);
    let code = out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl printed {out:?}"));
    let headers = fs::read_to_string(&head).unwrap_or_default();
    (code, headers, fs::read(&body).unwrap_or_default())
}

fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// What a cache needs from an origin to resume an object: checked against
/// whichever origin the lab runs.
fn check_origin_conformance(g: &LabGuard) {
    let object = fs::read(g.file("objects/1M.bin")).expect("1M.bin in the objects folder");
    assert_eq!(object.len(), 1 << 20);

    // HEAD: the validators and the length, no body.
    // (curl -I reads no body: one would break the next response.)
    let (code, h, _) = curl(g, "/1M.bin", &["-I"]);
    assert_eq!(code, 200);
    assert_eq!(header(&h, "content-length").as_deref(), Some("1048576"));
    let etag = header(&h, "etag").expect("an ETag");
    let last_modified = header(&h, "last-modified").expect("a Last-Modified");
    assert!(etag.starts_with('"'), "a strong ETag, got {etag}");

    // Range: 206 with the right bytes and Content-Range.
    let (code, h, body) = curl(g, "/1M.bin", &["-r", "1000-1999"]);
    assert_eq!(code, 206);
    assert_eq!(
        header(&h, "content-range").as_deref(),
        Some("bytes 1000-1999/1048576")
    );
    assert_eq!(body, &object[1000..2000]);

    // Unsatisfiable range: 416 naming the length.
    let (code, h, _) = curl(g, "/1M.bin", &["-r", "2000000-"]);
    assert_eq!(code, 416);
    assert_eq!(
        header(&h, "content-range").as_deref(),
        Some("bytes */1048576")
    );

    // If-Range with the current ETag: the range; with another: all of it.
    let if_range = format!("If-Range: {etag}");
    let (code, _, body) = curl(g, "/1M.bin", &["-r", "10-19", "-H", &if_range]);
    assert_eq!(code, 206);
    assert_eq!(body, &object[10..20]);
    let (code, _, body) = curl(
        g,
        "/1M.bin",
        &["-r", "10-19", "-H", "If-Range: \"not-the-etag\""],
    );
    assert_eq!(code, 200);
    assert_eq!(body, object);

    // Conditional GETs: 304 without a body.
    let inm = format!("If-None-Match: {etag}");
    let (code, _, body) = curl(g, "/1M.bin", &["-H", &inm]);
    assert_eq!(code, 304);
    assert!(body.is_empty());
    let ims = format!("If-Modified-Since: {last_modified}");
    let (code, _, _) = curl(g, "/1M.bin", &["-H", &ims]);
    assert_eq!(code, 304);

    // Missing objects.
    let (code, _, _) = curl(g, "/no-such-object.bin", &[]);
    assert_eq!(code, 404);
}

#[test]
fn lab_builtin_origin_answers_range_if_range_and_validators() {
    let g = LabGuard::up("bt_origin", &["--boxes", "1"]);
    check_origin_conformance(&g);
    // Methods it has no use for are refused; uploads are taken (and
    // digested: the upload takeover tests read the digest).
    let (code, _, _) = curl(&g, "/1M.bin", &["-X", "DELETE"]);
    assert_eq!(code, 405);
    let (code, _, body) = curl(&g, "/up", &["--data-binary", "hello"]);
    assert_eq!(code, 201);
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("sha256={} bytes=5 copies=1\n", sha256_hex(b"hello"))
    );
}

#[test]
fn lab_nginx_origin_answers_range_if_range_and_validators() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .any(|p| PathBuf::from(p).exists());
    assert!(nginx, "nginx is not installed: apt-get install nginx");
    let g = LabGuard::up("bt_nginx", &["--boxes", "1", "--origin", "nginx"]);
    let status = ok(g.lab(&["status"]));
    assert!(status.contains("origin nginx"), "{status}");
    check_origin_conformance(&g);
}

#[test]
fn lab_impair_client_duplicate_50_delivers_about_half_the_frames_twice() {
    let g = LabGuard::up("bt_dup", &["--boxes", "1"]);
    add_probe_address(&g);
    ok(g.lab(&["impair", "client", "--duplicate", "50"]));
    let o = g.exec(
        "lan",
        &[
            "ping",
            "-n",
            "-q",
            "-c",
            "200",
            "-i",
            "0.005",
            "198.18.0.100",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // "200 packets transmitted, 200 received, +97 duplicates, 0% packet loss"
    let dups: u32 = out
        .split(',')
        .find_map(|p| {
            p.trim()
                .strip_suffix(" duplicates")?
                .trim_start_matches('+')
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no duplicates reported: {}", text(&o)));
    assert!(
        (60..=140).contains(&dups),
        "{dups} duplicates of 200 for --duplicate 50"
    );
}

/// Starts a second built-in origin on box1's back address, port 8080, so
/// that bulk data flows toward the origin namespace, whose port we impair.
/// It lives in box1's namespace, so `lab down` ends it.
fn start_box1_server(g: &LabGuard) -> std::process::Child {
    let ready = g.file("box1-server.ready");
    let child = Command::new(BATON)
        .args([
            "lab",
            "--prefix",
            &g.prefix,
            "exec",
            "box1",
            "--",
            BATON,
            "lab",
            "serve-origin",
        ])
        .args(["--root", &g.file("objects").display().to_string()])
        .args([
            "--listen",
            "198.19.0.11:8080",
            "--ready-file",
            &ready.display().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start a server in box1");
    for _ in 0..250 {
        if ready.exists() {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server in box1 did not start");
}

/// Downloads `name` from box1's server into the origin namespace; returns
/// (bytes/s, sha256).
fn fetch_from_box1(g: &LabGuard, name: &str) -> (f64, String) {
    let dl = g.file("dl-origin.bin");
    let url = format!("http://198.19.0.11:8080/{name}");
    let out = ok(g.exec(
        "origin",
        &[
            "curl",
            "-sS",
            "-f",
            "-m",
            "60",
            "-o",
            &dl.display().to_string(),
            "-w",
            "%{speed_download}",
            &url,
        ],
    ));
    let speed: f64 = out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl printed {out:?}"));
    (speed, sha256_file(&dl))
}

#[test]
fn lab_impair_origin_delay_line_keeps_bulk_bytes_intact_and_rate_caps_throughput() {
    let g = LabGuard::up("bt_bulk", &["--boxes", "1"]);
    let mut server = start_box1_server(&g);

    // Through the delay line: kernel TCP with TSO and checksum offload on
    // the sender, so the relay must carry GSO frames and partial checksums.
    ok(g.lab(&["impair", "origin", "--delay", "5", "--jitter", "1"]));
    let (_, sha) = fetch_from_box1(&g, "50M.bin");
    assert_eq!(
        sha,
        g.listed_sha("50M.bin"),
        "bytes changed in the delay line"
    );

    ok(g.lab(&["impair", "origin", "--rate", "20"]));
    let (speed, sha) = fetch_from_box1(&g, "1M.bin");
    assert_eq!(sha, g.listed_sha("1M.bin"));
    let mbit = speed * 8.0 / 1e6;
    assert!(
        (10.0..=22.0).contains(&mbit),
        "{mbit:.1} Mbit/s through --rate 20"
    );

    ok(g.lab(&["impair", "origin", "--clear"]));
    let (speed, _) = fetch_from_box1(&g, "1M.bin");
    assert!(
        speed * 8.0 / 1e6 > 50.0,
        "still shaped after --clear: {speed} B/s"
    );
    drop(g);
    let _ = server.wait();
}

#[test]
fn lab_impair_client_reorder_50_lets_about_half_skip_the_delay() {
    let g = LabGuard::up("bt_reorder", &["--boxes", "1"]);
    add_probe_address(&g);
    ok(g.lab(&["impair", "client", "--delay", "30", "--reorder", "50"]));
    // Each echo request either skips the line (RTT well under 30 ms) or
    // waits 30 ms; ping prints one "time=X ms" line per reply.
    let o = g.exec(
        "lan",
        &["ping", "-n", "-c", "100", "-i", "0.005", "198.18.0.100"],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let rtts: Vec<f64> = out
        .lines()
        .filter_map(|l| {
            l.split("time=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(rtts.len(), 100, "{}", text(&o));
    // A held request cannot come back in under 30 ms: every faster reply
    // skipped the line.
    let fast = rtts.iter().filter(|r| **r < 30.0).count();
    assert!(
        (25..=75).contains(&fast),
        "{fast} of 100 skipped the delay for --reorder 50"
    );
}
