//! FTP takeover (issue 17), end to end: box1 serves an FTP session to a
//! real client (curl, lftp) in the lab's client namespace and is killed
//! with SIGKILL; box2 restores the session's bundle (control connection
//! and data connection, written in one slot) and the client notices
//! nothing: exit 0, the origin's sha256, no RST from a service address on
//! any connection the client still used (a tcpdump in the client
//! namespace that saw the client's FINs), and box2's counters show the
//! restore rather than a reconnect. Needs root; serialized with the other
//! lab tests (tests/common).
mod common;

use std::fs;
use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

const BOX1: &str = "198.18.0.11";

fn metric(g: &LabGuard, n: usize, name: &str) -> u64 {
    metric_value(&box_metrics(g, n), name)
}

/// Waits until `path` holds at least `bytes` (the transfer is under way).
fn wait_for_size(path: &std::path::Path, bytes: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if got >= bytes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: only {got} bytes after 30 s"
        );
        sleep(Duration::from_millis(20));
    }
}

#[track_caller]
fn wait_ok(child: Child, what: &str) {
    let out = child.wait_with_output().expect("client wait");
    assert!(
        out.status.success(),
        "{what}: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Starts curl downloading 50M.bin over FTP at `rate`, then 1M.bin on
/// the same control connection (`--fail-early`: the first transfer's
/// failure is curl's exit status too); `extra`: more curl options. Returns
/// curl and the two files.
fn start_two_retrs(
    g: &LabGuard,
    rate: &str,
    extra: &[&str],
) -> (Child, std::path::PathBuf, std::path::PathBuf) {
    let dir = g.file("ftpdl");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("download folder");
    let big = dir.join("50M.bin");
    let small = dir.join("1M.bin");
    let (big_out, small_out) = (big.display().to_string(), small.display().to_string());
    let (big_url, small_url) = (
        format!("ftp://{BOX1}/50M.bin"),
        format!("ftp://{BOX1}/1M.bin"),
    );
    let mut cmd = vec![
        "curl",
        "-sS",
        "--fail-early",
        "--max-time",
        "180",
        "--limit-rate",
        rate,
    ];
    cmd.extend_from_slice(extra);
    cmd.extend_from_slice(&["-o", &big_out, &big_url, "-o", &small_out, &small_url]);
    let curl = spawn_client(g, &cmd);
    (curl, big, small)
}

/// Waits for curl; asserts both files are the origin's.
#[track_caller]
fn assert_two_retrs(g: &LabGuard, curl: Child, big: &std::path::Path, small: &std::path::Path) {
    wait_ok(curl, "curl 50M.bin then 1M.bin on one session");
    assert_eq!(
        sha256_file(&big.to_path_buf()),
        g.listed_sha("50M.bin"),
        "50M.bin"
    );
    assert_eq!(
        sha256_file(&small.to_path_buf()),
        g.listed_sha("1M.bin"),
        "1M.bin"
    );
}

/// Asserts box `n` continued one session from a bundle: one control and
/// one data connection restored, no new session, `transfers` 226s.
#[track_caller]
fn assert_restored_session(g: &LabGuard, n: usize, transfers: u64) {
    let m = box_metrics(g, n);
    let control = metric_value(&m, "baton_ftp_restored_total{role=\"control\"}");
    let data = metric_value(&m, "baton_ftp_restored_total{role=\"data\"}");
    assert_eq!(
        (control, data),
        (1, 1),
        "box{n} restored {control} control and {data} data connections"
    );
    assert_eq!(
        metric_value(&m, "baton_ftp_sessions_total"),
        0,
        "the client opened a new session on box{n}"
    );
    assert_eq!(
        metric_value(&m, "baton_ftp_transfers_total"),
        transfers,
        "box{n}'s 226s"
    );
}

/// curl downloads 50M.bin over FTP at 5 MB/s (about 10 s) and then, on
/// the same control connection, 1M.bin; box1 is killed when 8 MB of the
/// first have arrived. The data connection resumes on box2 at the byte
/// the client expects, box2 sends the 226, and the session's second RETR
/// is answered by box2.
#[test]
fn lab_ftp_a_box_killed_mid_retr_the_transfer_finishes_from_the_survivor() {
    let g = LabGuard::up("btftk1", &["--boxes", "2"]);
    let rst = RstCapture::start(&g);
    let (curl, big, small) = start_two_retrs(&g, "5M", &[]);
    wait_for_size(&big, 8 << 20, "50M.bin via curl");
    let writes = metric(&g, 1, "baton_ftp_bundle_checkpoints_total");
    assert!(writes >= 2, "box1 wrote {writes} FTP bundle checkpoints");
    ok(g.lab(&["kill", "box1"]));
    let killed_at = fs::metadata(&big).map(|m| m.len()).unwrap_or(0);
    assert!(
        killed_at < 50 << 20,
        "the transfer had ended before the kill: nothing was tested"
    );
    assert_two_retrs(&g, curl, &big, &small);
    // The resumed transfer's 226 and the second RETR's.
    assert_restored_session(&g, 2, 2);
    rst.assert_none_with_fins(2);
}

/// The same in active mode (curl `-P -`: EPRT, the box connects to the
/// client): the data connection box1 opened resumes on box2, and box2
/// opens the second RETR's data connection itself.
#[test]
fn lab_ftp_active_mode_a_box_killed_mid_retr_the_transfer_finishes_from_the_survivor() {
    let g = LabGuard::up("btftk9", &["--boxes", "2"]);
    let rst = RstCapture::start(&g);
    let (curl, big, small) = start_two_retrs(&g, "5M", &["-P", "-"]);
    wait_for_size(&big, 8 << 20, "50M.bin via curl, active mode");
    ok(g.lab(&["kill", "box1"]));
    let killed_at = fs::metadata(&big).map(|m| m.len()).unwrap_or(0);
    assert!(
        killed_at < 50 << 20,
        "the transfer had ended before the kill: nothing was tested"
    );
    assert_two_retrs(&g, curl, &big, &small);
    assert_restored_session(&g, 2, 2);
    rst.assert_none_with_fins(2);
}

/// The same with 2 % loss on the client's link (both directions): the
/// restored connections' probes, the resumed transfer and the 226 go
/// through retransmissions.
#[test]
fn lab_ftp_a_box_killed_mid_retr_under_loss() {
    let g = LabGuard::up("btftk5", &["--boxes", "2"]);
    ok(g.lab(&["impair", "client", "--loss", "2"]));
    let rst = RstCapture::start(&g);
    let (curl, big, small) = start_two_retrs(&g, "3M", &[]);
    wait_for_size(&big, 6 << 20, "50M.bin via curl");
    ok(g.lab(&["kill", "box1"]));
    assert_two_retrs(&g, curl, &big, &small);
    assert_restored_session(&g, 2, 2);
    rst.assert_none_with_fins(2);
}

/// Cascaded kills over three boxes: box1 dies mid-RETR, then the survivor
/// that continued the session dies too (its own bundle of the restored
/// connections is what the last box restores), and the last box
/// finishes the transfer and the second RETR.
#[test]
fn lab_ftp_cascaded_kills_mid_retr() {
    let g = LabGuard::up("btftk6", &["--boxes", "3"]);
    let rst = RstCapture::start(&g);
    let (curl, big, small) = start_two_retrs(&g, "3M", &[]);
    wait_for_size(&big, 6 << 20, "50M.bin via curl");
    ok(g.lab(&["kill", "box1"]));
    // Whichever survivor the slot went to.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let by = (2..=3).find(|&n| metric(&g, n, "baton_ftp_restored_total{role=\"data\"}") >= 1);
        if let Some(n) = by {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no survivor restored the transfer"
        );
        sleep(Duration::from_millis(50));
    };
    let at = fs::metadata(&big).map(|m| m.len()).unwrap_or(0);
    wait_for_size(&big, at + (6 << 20), "50M.bin from the first survivor");
    ok(g.lab(&["kill", &format!("box{first}")]));
    let last = 5 - first;
    assert_two_retrs(&g, curl, &big, &small);
    assert_restored_session(&g, last, 2);
    rst.assert_none_with_fins(2);
}

/// lftp downloads 1M.bin, sleeps with its control connection idle, and
/// downloads 50M.bin; box1 is killed during the sleep. box2 restores the
/// idle session (logged in, binary type) and answers the next commands.
#[test]
fn lab_ftp_a_box_killed_between_commands_the_session_goes_on() {
    let g = LabGuard::up("btftk2", &["--boxes", "2"]);
    let rst = RstCapture::start(&g);
    let dir = g.file("lftp");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("lftp folder");
    let marker = dir.join("first-done");
    // One command a line: lftp hands the rest of a `!` line to the shell.
    let script = format!(
        "set net:max-retries 1\nset net:timeout 30\nopen ftp://{BOX1}\nlcd {d}\nget 1M.bin\n!touch {m}\n!sleep 4\nget 50M.bin\nbye\n",
        d = dir.display(),
        m = marker.display()
    );
    let script_file = g.file("lftp.script");
    fs::write(&script_file, script).expect("lftp script");
    let lftp = spawn_client(&g, &["lftp", "-f", &script_file.display().to_string()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "lftp's first get did not end");
        sleep(Duration::from_millis(20));
    }
    // The 226 and the client's bytes since are checkpointed by now.
    sleep(Duration::from_millis(500));
    ok(g.lab(&["kill", "box1"]));
    wait_ok(lftp, "lftp get, idle, get");
    for name in ["1M.bin", "50M.bin"] {
        assert_eq!(
            sha256_file(&dir.join(name)),
            g.listed_sha(name),
            "{name} via lftp"
        );
    }
    let control = metric(&g, 2, "baton_ftp_restored_total{role=\"control\"}");
    let sessions = metric(&g, 2, "baton_ftp_sessions_total");
    let transfers = metric(&g, 2, "baton_ftp_transfers_total");
    assert_eq!(control, 1, "box2 restored {control} control connections");
    assert_eq!(sessions, 0, "lftp opened a new session on box2");
    assert_eq!(transfers, 1, "box2 answered the second get");
    rst.assert_none_with_fins(2);
}

/// Restarts boxes 1..=`boxes` with two dataplane workers: FTP's passive
/// ports are then steered to their control connection's worker by the
/// fanout program (docs/FTP.md).
fn two_workers(g: &LabGuard, boxes: usize) {
    for n in 1..=boxes {
        let path = g.file(&format!("box{n}.toml"));
        let text = fs::read_to_string(&path).expect("box config");
        assert!(text.contains("workers = 1\n"), "box{n}.toml: {text}");
        fs::write(&path, text.replacen("workers = 1\n", "workers = 2\n", 1)).expect("write");
        ok(g.lab(&["kill", &format!("box{n}")]));
        ok(g.lab(&["start", &format!("box{n}")]));
    }
    sleep(Duration::from_millis(300));
}

/// Boxes with two workers; four curl sessions each download 50M.bin at
/// 5 MB/s, then 1M.bin on the same session. Every data connection must
/// reach its control connection's worker (else its bundle would lack it
/// and the kill would reset it); box1 is killed when each has 8 MB. On
/// box2 a restored control connection lands by its client's hash and its
/// data connection by its port, so some pairs are joined across workers.
#[test]
fn lab_ftp_two_workers_a_kill_mid_retr_moves_every_session() {
    let g = LabGuard::up("btftk3", &["--boxes", "2"]);
    two_workers(&g, 2);
    // Box2 never talks to the client before the kill: the ARP reply to a
    // probe's request reaches box2's worker 0 only, which must tell
    // worker 1 (docs/TAKEOVER.md "Restore, sync, ready").
    let rst = RstCapture::start(&g);
    let dir = g.file("ftpdl");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("download folder");
    let sessions: Vec<(Child, std::path::PathBuf, std::path::PathBuf)> = (0..4)
        .map(|i| {
            let big = dir.join(format!("50M.{i}"));
            let small = dir.join(format!("1M.{i}"));
            let child = spawn_client(
                &g,
                &[
                    "curl",
                    "-sS",
                    "--fail-early",
                    "--max-time",
                    "120",
                    "--limit-rate",
                    "5M",
                    "-o",
                    &big.display().to_string(),
                    &format!("ftp://{BOX1}/50M.bin"),
                    "-o",
                    &small.display().to_string(),
                    &format!("ftp://{BOX1}/1M.bin"),
                ],
            );
            (child, big, small)
        })
        .collect();
    for (_, big, _) in &sessions {
        wait_for_size(big, 8 << 20, "50M.bin via curl");
    }
    ok(g.lab(&["kill", "box1"]));
    for (i, (child, big, small)) in sessions.into_iter().enumerate() {
        wait_ok(child, &format!("session {i}"));
        if sha256_file(&big) != g.listed_sha("50M.bin") {
            let log = fs::read_to_string(g.file("box2.log")).unwrap_or_default();
            for l in log
                .lines()
                .filter(|l| l.contains("FTP") || l.contains("resum"))
            {
                eprintln!("{}", strip_ansi(l));
            }
            eprintln!(
                "#{i}: {} bytes",
                fs::metadata(&big).map(|m| m.len()).unwrap_or(0)
            );
        }
        assert_eq!(sha256_file(&big), g.listed_sha("50M.bin"), "50M.bin #{i}");
        assert_eq!(sha256_file(&small), g.listed_sha("1M.bin"), "1M.bin #{i}");
    }
    let m = box_metrics(&g, 2);
    let control = metric_value(&m, "baton_ftp_restored_total{role=\"control\"}");
    let data = metric_value(&m, "baton_ftp_restored_total{role=\"data\"}");
    assert_eq!(
        (control, data),
        (4, 4),
        "box2 restored {control} control and {data} data connections"
    );
    assert_eq!(metric_value(&m, "baton_ftp_sessions_total"), 0);
    assert_eq!(metric_value(&m, "baton_ftp_transfers_total"), 8);
    assert!(
        metric_value(&m, "baton_dataplane_neighbour_news_learned_total") >= 1,
        "box2's worker 1 learned the client's MAC from worker 0"
    );
    rst.assert_none_with_fins(8);
}

/// A minimal scripted FTP client (Python's sockets, no FTP library): the
/// moment between EPSV and the data connection cannot be hit with curl.
/// Logs in, EPSV, touches `GO.ready`, waits for `GO`, then connects the
/// data connection, RETRs, reads to EOF, expects 226, QUITs.
const EPSV_THEN_WAIT: &str = r#"
import os, re, socket, sys, time
host, name, out, go = sys.argv[1:5]
c = socket.create_connection((host, 21), timeout=60)
f = c.makefile("rb")
def reply():
    line = f.readline().decode()
    if line[3:4] == "-":
        while not f.readline().decode().startswith(line[:3] + " "):
            pass
    return line
def cmd(s):
    c.sendall((s + "\r\n").encode())
    return reply()
assert reply().startswith("220")
assert cmd("USER anonymous").startswith("331")
assert cmd("PASS lab@").startswith("230")
assert cmd("TYPE I").startswith("200")
r = cmd("EPSV")
assert r.startswith("229"), r
port = int(re.search(r"\(\|\|\|(\d+)\|\)", r).group(1))
open(go + ".ready", "w").close()
while not os.path.exists(go):
    time.sleep(0.02)
d = socket.create_connection((host, port), timeout=60)
r = cmd("RETR " + name)
assert r.startswith("150"), r
with open(out, "wb") as o:
    while True:
        b = d.recv(65536)
        if not b:
            break
        o.write(b)
d.close()
r = reply()
assert r.startswith("226"), r
assert cmd("QUIT").startswith("221")
"#;

/// A session between EPSV and its data connection when box1 dies: box2
/// re-opens the passive port from the control record, the client's data
/// connection (sent as soon as box1 is killed, its SYN retried until box2
/// holds the address) is accepted there and the RETR is served.
#[test]
fn lab_ftp_a_box_killed_between_epsv_and_the_data_connection() {
    let g = LabGuard::up("btftk4", &["--boxes", "2"]);
    let rst = RstCapture::start(&g);
    let script = g.file("epsv.py");
    fs::write(&script, EPSV_THEN_WAIT).expect("script");
    let out = g.file("epsv.body");
    let go = g.file("epsv.go");
    let ready = g.file("epsv.go.ready");
    let _ = fs::remove_file(&go);
    let _ = fs::remove_file(&ready);
    let client = spawn_client(
        &g,
        &[
            "/usr/bin/python3",
            &script.display().to_string(),
            BOX1,
            "1M.bin",
            &out.display().to_string(),
            &go.display().to_string(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "the client never got its EPSV reply"
        );
        sleep(Duration::from_millis(20));
    }
    ok(g.lab(&["kill", "box1"]));
    fs::write(&go, b"").expect("go");
    wait_ok(client, "EPSV, kill, data connection, RETR");
    assert_eq!(sha256_file(&out), g.listed_sha("1M.bin"), "1M.bin");
    let m = box_metrics(&g, 2);
    assert_eq!(
        metric_value(&m, "baton_ftp_restored_total{role=\"control\"}"),
        1
    );
    assert_eq!(metric_value(&m, "baton_ftp_sessions_total"), 0);
    assert_eq!(metric_value(&m, "baton_ftp_transfers_total"), 1);
    assert_eq!(
        metric_value(&m, "baton_ftp_data_refused_total{cause=\"unclaimed\"}"),
        0
    );
    rst.assert_none_with_fins(1);
}

/// A planned move: box1 is drained mid-RETR (its workers freeze, box2
/// adopts its region), and the session goes on from box2 as after a kill.
#[test]
fn lab_ftp_a_drain_mid_retr_moves_the_session() {
    let g = LabGuard::up("btftk7", &["--boxes", "2"]);
    let rst = RstCapture::start(&g);
    let (curl, big, small) = start_two_retrs(&g, "5M", &[]);
    wait_for_size(&big, 8 << 20, "50M.bin via curl");
    ok(g.lab(&["drain", "box1"]));
    assert_two_retrs(&g, curl, &big, &small);
    assert_restored_session(&g, 2, 2);
    rst.assert_none_with_fins(2);
}

/// `baton migrate` moves an FTP session whose transfer runs (issue 17):
/// curl downloads 50M.bin at 5 MB/s from box1, then 1M.bin on the same
/// control connection; when 8 MB arrived, box1 hands the control and the
/// data connection to box2 in one bundle and forwards their frames there.
/// The second RETR's data connection, a new 4-tuple to box1's address, is
/// forwarded to box2 by the client route. Both files are the origin's, no
/// RST, box2 restored both members and sent both 226s (box1 sent none).
#[test]
fn lab_ftp_migrate_mid_retr_moves_the_session_whole() {
    let g = LabGuard::up("btftk8", &["--boxes", "2"]);
    let rst = RstCapture::start(&g);
    let (curl, big, small) = start_two_retrs(&g, "5M", &[]);
    wait_for_size(&big, 8 << 20, "50M.bin via curl");
    let config = g.file("box1.toml").display().to_string();
    let said = ok(g.exec(
        "box2",
        &[
            BATON, "migrate", "--config", &config, "--to", "2", "--count", "1",
        ],
    ));
    assert!(
        said.contains("2 connections moved to box 2"),
        "migrate did not move the FTP session's two connections: {said}"
    );
    assert_two_retrs(&g, curl, &big, &small);
    assert_restored_session(&g, 2, 2);
    assert_eq!(metric(&g, 1, "baton_ftp_transfers_total"), 0, "box1's 226s");
    rst.assert_none_with_fins(3);
}

/// Three boxes, four sessions mid-RETR when box1 dies: every session goes
/// to box2, the survivor that inherits box1's address (the split by slot
/// would give some to box3, and their next data connection, a new
/// 4-tuple to box1's address, would reach box2 and be refused). Each
/// session's second RETR proves it.
#[test]
fn lab_ftp_three_boxes_every_session_goes_to_the_address_heir() {
    let g = LabGuard::up("btftk9", &["--boxes", "3"]);
    let rst = RstCapture::start(&g);
    let sessions: Vec<(Child, std::path::PathBuf, std::path::PathBuf)> = (0..4)
        .map(|i| {
            let dir = g.file(&format!("heir{i}"));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("download folder");
            let (big, small) = (dir.join("50M.bin"), dir.join("1M.bin"));
            let child = spawn_client(
                &g,
                &[
                    "curl",
                    "-sS",
                    "--fail-early",
                    "--max-time",
                    "180",
                    "--limit-rate",
                    "3M",
                    "-o",
                    &big.display().to_string(),
                    &format!("ftp://{BOX1}/50M.bin"),
                    "-o",
                    &small.display().to_string(),
                    &format!("ftp://{BOX1}/1M.bin"),
                ],
            );
            (child, big, small)
        })
        .collect();
    for (_, big, _) in &sessions {
        wait_for_size(big, 4 << 20, "50M.bin via curl");
    }
    ok(g.lab(&["kill", "box1"]));
    for (child, big, small) in sessions {
        assert_two_retrs(&g, child, &big, &small);
    }
    let m = box_metrics(&g, 2);
    assert_eq!(
        metric_value(&m, "baton_ftp_restored_total{role=\"control\"}"),
        4
    );
    assert_eq!(
        metric_value(&m, "baton_ftp_restored_total{role=\"data\"}"),
        4
    );
    assert_eq!(metric_value(&m, "baton_ftp_transfers_total"), 8);
    assert_eq!(
        metric(&g, 3, "baton_ftp_restored_total{role=\"control\"}"),
        0
    );
    rst.assert_none_with_fins(8);
}
