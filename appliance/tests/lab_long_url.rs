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
    // 50 MB at 10 MB/s: box 1 dies once the body is under way (2 s in at
    // the earliest), with most of it to go.
    let d = vec![start_download(&g, 0, 1, &object, "10M")];
    let moved = kill_under_way(&g, &d, 1, 50 << 20, started, Duration::from_secs(2));
    // A stall ends at curl's own --max-time (120 s), which fails this:
    // the counters below, not a stopwatch, prove the response went on.
    assert_all_identical(&g, d, "50M.bin");
    rst.assert_none();
    // A takeover happened and continued the response: not a lucky finish
    // before the kill, nor a reset-and-retry.
    assert_resumed(&g, &[2, 3], 0, moved);
    assert_eq!(
        metric_sum(&g, &[2, 3], "baton_http_resumed_total"),
        1,
        "one survivor resumed the response"
    );
    assert!(
        box_metrics(&g, 2).contains("baton_http_not_resumable_total"),
        "box2 exposes baton_http_not_resumable_total (or the next check proves nothing)"
    );
    assert_eq!(
        metric_sum(&g, &[2, 3], "baton_http_not_resumable_total"),
        0,
        "no survivor gave the response up"
    );
}
