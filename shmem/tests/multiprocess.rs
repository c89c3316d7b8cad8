//! Two processes map one segment file and see each other's records and
//! heartbeats. The child is this test binary itself, started with an
//! environment variable naming its role.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use baton_shmem::{Layout, Segment};
use common::{http_record, TempSeg};

const CHILD_ENV: &str = "BATON_SHMEM_TEST_CHILD_SEGMENT";
const L: Layout = Layout {
    regions: 2,
    slots_per_region: 32,
    slot_size: baton_shmem::SLOT_SIZE as u32,
};

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn has_url(seg: &Segment, region: u16, url: &str) -> bool {
    seg.region(region)
        .unwrap()
        .records()
        .filter_map(Result::ok)
        .any(|v| v.bundle().records[0].view().app.map(|a| a.name) == Some(url))
}

/// Box `me` writes its record and heartbeats, then waits for the other's.
fn play(path: &Path, me: u16) {
    let seg = Segment::open_or_create(path, L).unwrap();
    let other = 1 - me;
    let region = seg.region(me).unwrap();
    region.begin_epoch();
    let url = format!("/from-box-{me}");
    let mut slots = region.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    let slot = slots.alloc().unwrap();
    w.write(slot, &[http_record(me, 40_000 + me, &url, None)])
        .unwrap();
    region.heartbeat(1000 + me as u64);
    wait_for("the other box's record", || {
        has_url(&seg, other, &format!("/from-box-{other}"))
    });
    wait_for("the other box's heartbeat", || {
        seg.box_info(other).unwrap().heartbeat_ms >= 1000 + other as u64
    });
    // A second heartbeat: the parent checks the child's counter reached 2.
    region.heartbeat(5000 + me as u64);
}

#[test]
fn two_processes_see_each_others_records_and_heartbeats() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        play(Path::new(&path), 1);
        return;
    }
    let t = TempSeg::new("twoproc");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "two_processes_see_each_others_records_and_heartbeats",
            "--nocapture",
        ])
        .env(CHILD_ENV, t.path())
        .spawn()
        .unwrap();
    play(t.path(), 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "child process failed: {status}");
    let seg = Segment::open_existing(t.path()).unwrap();
    let child = seg.box_info(1).unwrap();
    assert_eq!(
        (child.epoch, child.heartbeat, child.heartbeat_ms),
        (1, 2, 5001)
    );
    assert!(has_url(&seg, 1, "/from-box-1"));
}
