//! A download whose URL carries a CDN-signed query string (~2 KB) survives
//! its box's death (issue 13): the checkpoint record holds the long URL
//! (through the segment's overflow area), the survivor resumes the response
//! from the origin, and the client sees neither a stall nor a reset. Real
//! curl in the lab's client namespace, the box killed with SIGKILL
//! mid-transfer; the lab origin serves the object whatever the query.
mod common;

use std::time::{Duration, Instant};

use common::*;

/// A CloudFront-style signed path to `object`, `len` bytes long in all.
fn signed(object: &str, len: usize) -> String {
    let mut s = format!("{object}?Expires=1790000000&Key-Pair-Id=APKAEXAMPLE&Signature=");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while s.len() < len {
        // A fixed pseudo-random signature: the same URL every run.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(alphabet[(x % 64) as usize] as char);
    }
    s
}

/// The value of counter `name` on box `n` (`baton admin metrics`).
fn metric(g: &LabGuard, n: usize, name: &str) -> u64 {
    let config = g.file(&format!("box{n}.toml")).display().to_string();
    let metrics = ok(g.exec(
        &format!("box{n}"),
        &[BATON, "admin", "--config", &config, "metrics"],
    ));
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("box{n}: no {name}:\n{metrics}")) as u64
}

#[test]
fn lab_a_download_with_a_two_kilobyte_signed_url_survives_a_kill_without_stall_or_reset() {
    long_url_download_survives_a_kill(LabGuard::up("btlu", &["--boxes", "3"]));
}

#[test]
fn lab_a_long_url_download_survives_a_kill_with_replicated_segments() {
    // The record's overflow pieces reach the survivors as replication
    // datagrams of their own (each fits one): the replica must hold the
    // whole record, not only the slot's link to it.
    long_url_download_survives_a_kill(LabGuard::up(
        "btlr",
        &["--boxes", "3", "--segment-mode", "replicated"],
    ));
}

fn long_url_download_survives_a_kill(g: LabGuard) {
    let object = signed("50M.bin", 2_000);
    assert!(object.len() >= 2_000 && object.len() < 2_100);
    let rst = RstCapture::start(&g);
    let started = Instant::now();
    // 50 MB at 10 MB/s: box 1 dies 2 s in, with most of the body to go.
    let d = start_download(&g, 0, 1, &object, "10M");
    kill_at(&g, started, Duration::from_secs(2), 1);
    assert_all_identical(&g, vec![d], "50M.bin");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the download stalled: {:?}",
        started.elapsed()
    );
    rst.assert_none();
    // A takeover happened and continued the response: not a lucky finish
    // before the kill, nor a reset-and-retry.
    let resumed: u64 = (2..=3)
        .map(|n| metric(&g, n, "baton_http_resumed_total"))
        .sum();
    let refused: u64 = (2..=3)
        .map(|n| metric(&g, n, "baton_http_not_resumable_total"))
        .sum();
    assert_eq!(resumed, 1, "one survivor resumed the response");
    assert_eq!(refused, 0, "no survivor gave the response up");
}
