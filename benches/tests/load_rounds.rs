//! `baton-load --rounds` against a real server (nginx on loopback): the
//! protocol the drain and idlekill suites drive — `READY` once every
//! connection is open and answered, then a `ROUND` line per line on stdin
//! with every answer counted and the body's sha256 — and a server that
//! goes away between rounds counted as unanswered with a failing exit code.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{free_port, sha256_hex, start_nginx};

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn rounds_count_every_answer_and_a_server_gone_between_rounds_fails_the_run() {
    let dir = std::env::temp_dir().join(format!("baton-load-rounds-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let body: Vec<u8> = (0..1024u32).map(|i| (i * 7 + 3) as u8).collect();
    fs::write(dir.join("1K.bin"), &body).unwrap();
    let sha = sha256_hex(&body);
    let port = free_port();
    let nginx = start_nginx(&dir, port, false);
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton-load"))
        .args([
            "--url",
            &format!("http://127.0.0.1:{port}/1K.bin"),
            "--connections",
            "40",
            "--rounds",
            "2",
            "--spread-ms",
            "200",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");

    writeln!(stdin, "go").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("ROUND 1 "), "{line}");
    assert_eq!(field(&line, "ok"), "40", "{line}");
    assert_eq!(field(&line, "of"), "40", "{line}");
    assert_eq!(field(&line, "sha"), sha, "{line}");
    let p50: f64 = field(&line, "p50_ms").parse().unwrap();
    let max: f64 = field(&line, "max_ms").parse().unwrap();
    assert!((0.0..=max).contains(&p50), "{line}");

    // nginx stops: its keep-alive connections close before round 2.
    drop(nginx);
    writeln!(stdin, "go").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("ROUND 2 "), "{line}");
    assert_eq!(field(&line, "ok"), "0", "{line}");
    assert_eq!(
        field(&line, "sha"),
        "mixed",
        "no body, no single sha: {line}"
    );
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(!status.success(), "a round with no answers fails the run");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_server_that_refuses_the_connections_is_not_ready() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_baton-load"))
        .args([
            "--url",
            &format!("http://127.0.0.1:{port}/1K.bin"),
            "--connections",
            "3",
            "--rounds",
            "1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("NOT READY connected=0 answered=0 of=3"),
        "{stdout}"
    );
    assert!(!out.status.success());
}
