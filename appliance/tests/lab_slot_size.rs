//! The smallest checkpoint slots (`checkpoint.slot_bytes = 320`, issue 19):
//! a resting keep-alive connection's record (~250 bytes, its finished
//! response kept as a marker) lives in its slot, and every response in
//! flight — its record, with URL and validators, larger than the slot's
//! 304-byte payload — in the segment's overflow area. Box 1 killed with
//! both kinds on it: the downloads resume byte for byte, the idle
//! connections' next requests are answered, and no client sees a reset.
mod common;

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// Idle keep-alive connections on box 1 at the kill.
const IDLE: usize = 100;
/// Downloads in flight on box 1 at the kill.
const DOWNLOADS: usize = 6;
/// What they ask for: a URL of ~120 bytes (a session token in the query,
/// which the lab origin ignores), so that their records (~400 bytes) fit
/// a 768-byte slot but not a 320-byte one.
const OBJECT: &str =
    "50M.bin?session=7f3a9c2e4b1d8f6a0e5c3b7d9a1f4e2c8b6d0a3f5e7c9b1d&expires=1790000000&sig=Zm9vYmFyYmF6cXV4";

#[test]
fn lab_with_the_smallest_slots_downloads_in_flight_and_idle_connections_survive_a_kill() {
    let g = LabGuard::up("btss", &["--boxes", "3", "--slot-bytes", "320"]);
    for n in 1..=3 {
        let log =
            strip_ansi(&fs::read_to_string(g.file(&format!("box{n}.log"))).unwrap_or_default());
        assert!(
            log.lines()
                .any(|l| l.contains("box started") && l.contains("slot_bytes=320")),
            "box{n} runs with 320-byte slots:\n{log}"
        );
    }
    warm_caches(&g, 3, "1K.bin");
    let rst = RstCapture::start(&g);
    let mut idle = KeepaliveClient::connect(&g, "198.18.0.11", IDLE, "/1K.bin", 1);
    // Their answers acknowledged, the connections rest (the settling write).
    sleep(Duration::from_millis(500));
    let started = Instant::now();
    let downloads: Vec<_> = (0..DOWNLOADS)
        .map(|i| start_download(&g, i, 1, OBJECT, "10M"))
        .collect();
    // 50 MB at 10 MB/s: box 1 dies 2 s in, with most of each body to go.
    let moved = kill_under_way(&g, &downloads, 1, 50 << 20, started, Duration::from_secs(2));
    let asked = idle.round();
    assert_all_identical(&g, downloads, "50M.bin");
    assert!(
        idle.finish(),
        "the idle connections' client failed:\n{asked}"
    );
    let sha = g.listed_sha("1K.bin");
    assert!(
        asked.contains(&format!("ok={IDLE} of={IDLE} sha={sha} p50_ms=")),
        "every idle connection's next request was answered: {asked}"
    );
    rst.assert_none();
    // The downloads were continued by a survivor from the records in the
    // overflow area, not retried, and none was given up.
    assert_resumed(&g, &[2, 3], 0, moved);
    assert!(
        moved >= DOWNLOADS as u64,
        "all {DOWNLOADS} were mid-body at the kill: {moved}"
    );
    assert!(
        box_metrics(&g, 2).contains("baton_http_not_resumable_total"),
        "box2 exposes baton_http_not_resumable_total (or the next check proves nothing)"
    );
    assert_eq!(
        metric_sum(&g, &[2, 3], "baton_http_not_resumable_total"),
        0,
        "no survivor gave a response up"
    );
    // Both kinds were box 1's and were taken over.
    let restored = restored_by(&g, &[2, 3], (IDLE + DOWNLOADS) as u64);
    assert_eq!(
        restored,
        (IDLE + DOWNLOADS) as u64,
        "restored from box 1's records"
    );
}
