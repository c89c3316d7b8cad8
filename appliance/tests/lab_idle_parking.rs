//! A mass takeover's idle keep-alive connections (issue 19): a survivor
//! parks its share of a dead box's idle connections instead of probing
//! them all at once; each is restored by its client's next request, and
//! the silent ones once `takeover.idle_restore_after_ms` has passed. Set
//! here to park every idle connection (`park_idle_above = 0`), as a box
//! does above 4,096.
mod common;

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// Connections that ask right after the kill.
const SPEAKING: usize = 300;
/// Connections that stay silent until after their restore fell due.
const SILENT: usize = 20;
/// `takeover.idle_restore_after_ms` in this lab.
const IDLE_RESTORE_AFTER_MS: u64 = 4_000;

/// Every box of `boxes` parks every idle connection of a takeover, and
/// restores the silent ones after `restore_after_ms`; the boxes are
/// restarted with that.
fn park_every_idle_connection(g: &LabGuard, boxes: u32, restore_after_ms: u64) {
    let d = &g.driver;
    for n in 1..=boxes {
        d.kill(n).unwrap_or_else(|e| panic!("kill box{n}: {e}"));
        for (key, value) in [
            ("park_idle_above", "0".to_string()),
            ("idle_restore_after_ms", restore_after_ms.to_string()),
        ] {
            d.set_box_option(n, "takeover", key, &value)
                .unwrap_or_else(|e| panic!("takeover.{key}: {e}"));
        }
    }
    for n in 1..=boxes {
        d.start(n).unwrap_or_else(|e| panic!("start box{n}: {e}"));
    }
}

/// The log lines of `boxes` that say so, joined.
fn lines_with(g: &LabGuard, boxes: &[usize], what: &str) -> String {
    boxes
        .iter()
        .flat_map(|n| {
            fs::read_to_string(g.file(&format!("box{n}.log")))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(what))
                .map(strip_ansi)
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn lab_a_dead_boxs_idle_connections_are_restored_by_their_clients_next_requests() {
    let g = LabGuard::up("btpk1", &["--boxes", "3"]);
    park_every_idle_connection(&g, 3, IDLE_RESTORE_AFTER_MS);
    warm_caches(&g, 3, "1K.bin");
    let rst = RstCapture::start(&g);
    let mut speaking = KeepaliveClient::connect(&g, "198.18.0.11", SPEAKING, "/1K.bin", 1);
    let mut silent = KeepaliveClient::connect(&g, "198.18.0.11", SILENT, "/1K.bin", 1);
    // Their answers acknowledged, the connections rest: box 1 records that
    // the clients have everything (the settling write).
    sleep(Duration::from_millis(500));
    ok(g.lab(&["kill", "box1"]));
    let killed = Instant::now();
    let asked = speaking.round();
    // The silent ones ask once their restores fell due and were answered.
    let due = Duration::from_millis(IDLE_RESTORE_AFTER_MS + 1_500);
    sleep(due.saturating_sub(killed.elapsed()));
    let late = silent.round();
    let complete = speaking.finish() & silent.finish();
    let parked = lines_with(&g, &[2, 3], "the idle ones when their clients speak");
    let done = lines_with(&g, &[2, 3], "takeover done");
    let context = format!("rounds:\n{asked}\n{late}\nparked:\n{parked}\ndone:\n{done}");
    assert!(complete, "an answer was missing or wrong\n{context}");
    let sha = g.listed_sha("1K.bin");
    for (round, n) in [(&asked, SPEAKING), (&late, SILENT)] {
        assert!(
            round.contains(&format!("ok={n} of={n} sha={sha} p50_ms=")),
            "a round was not answered whole\n{context}"
        );
    }
    // Every one of box 1's connections was idle and parked, split over
    // both survivors.
    let idle: u64 = parked.lines().map(|l| log_field(l, "idle")).sum();
    assert_eq!(idle, (SPEAKING + SILENT) as u64, "{context}");
    assert_eq!(
        parked.lines().count(),
        2,
        "both survivors parked\n{context}"
    );
    // The speaking ones were restored by their requests (lazily, no
    // probe), the silent ones by their restores falling due.
    let restored = takeover_field(&g, &[2, 3], "restored");
    let lazy = takeover_field(&g, &[2, 3], "lazy");
    assert_eq!(restored, (SPEAKING + SILENT) as u64, "{context}");
    assert_eq!(lazy, SPEAKING as u64, "{context}");
    assert_eq!(takeover_field(&g, &[2, 3], "not_ready"), 0, "{context}");
    rst.assert_none();
}

/// A survivor that dies while connections it took over are still parked
/// (within `idle_restore_after_ms` of the first death) hands them on: they
/// live only in the first dead box's slots, under its claims, and its own
/// survivors take those claims over with its region.
#[test]
fn lab_connections_parked_on_a_survivor_that_dies_too_are_taken_over_again() {
    const CLIENTS: usize = 240;
    let g = LabGuard::up("btpk2", &["--boxes", "4"]);
    // Long enough that box 2 still holds its share parked when it dies.
    park_every_idle_connection(&g, 4, 30_000);
    warm_caches(&g, 4, "1K.bin");
    let rst = RstCapture::start(&g);
    let mut clients = KeepaliveClient::connect(&g, "198.18.0.11", CLIENTS, "/1K.bin", 1);
    sleep(Duration::from_millis(500));
    ok(g.lab(&["kill", "box1"]));
    // Box 1's takeover is done (every connection parked) well before this.
    sleep(Duration::from_millis(2_000));
    let parked = lines_with(&g, &[2], "the idle ones when their clients speak");
    ok(g.lab(&["kill", "box2"]));
    sleep(Duration::from_millis(2_000));
    let asked = clients.round();
    let complete = clients.finish();
    let inherited = lines_with(&g, &[3, 4], "claims on earlier dead boxes' slots");
    let done = lines_with(&g, &[3, 4], "takeover done");
    let context =
        format!("round:\n{asked}\nbox 2 parked:\n{parked}\ninherited:\n{inherited}\ndone:\n{done}");
    assert!(complete, "an answer was missing or wrong\n{context}");
    let sha = g.listed_sha("1K.bin");
    assert!(
        asked.contains(&format!("ok={CLIENTS} of={CLIENTS} sha={sha} p50_ms=")),
        "the round was not answered whole\n{context}"
    );
    // Box 2 had parked its share of box 1's connections, and box 2's
    // survivors restore exactly those from box 1's slots.
    let parked_on_2 = parked.lines().map(|l| log_field(l, "idle")).sum::<u64>();
    assert!(parked_on_2 > 0, "box 2 parked nothing\n{context}");
    let taken = inherited
        .lines()
        .map(|l| log_field(l, "restoring_here"))
        .sum::<u64>();
    assert_eq!(taken, parked_on_2, "{context}");
    rst.assert_none();
}
