//! The lab on the AF_XDP backend (issue 19): `baton lab up --backend
//! afxdp` runs every box's worker on an AF_XDP socket (the XDP program in
//! the box `front0` veth's driver hook, copy mode), and what a user checks
//! is the same as on AF_PACKET and DPDK: downloads through a box are
//! byte-identical to the origin's, and a box killed mid-download is taken
//! over transparently (curl exits 0, sha256 matches, no RST reaches the
//! client, a survivor's resumed counter grew), and the dead box leaves no
//! XDP program on its interface. Needs root; serialized with the other lab
//! tests (nextest group `lab`, flock in tests/common).
mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;

/// Asserts that box `n` logged an open AF_XDP port: the lab really runs
/// the AF_XDP backend, not AF_PACKET.
#[track_caller]
fn assert_box_on_afxdp(g: &LabGuard, n: u8) {
    let log = fs::read_to_string(g.file(&format!("box{n}.log"))).unwrap_or_default();
    let log = strip_ansi(&log);
    assert!(
        log.contains("AF_XDP port open") && log.contains("copy") && log.contains("driver"),
        "box{n} did not open an AF_XDP port in copy mode on the driver's hook; its log:\n{log}"
    );
}

/// What `ip link show front0` says in box `n`'s namespace.
fn front0(g: &LabGuard, n: u8) -> String {
    ok(g.exec(&format!("box{n}"), &["ip", "link", "show", "dev", "front0"]))
}

#[test]
fn lab_afxdp_boxes_serve_1m_and_50m_byte_identical() {
    let g = LabGuard::up("btxd1", &["--backend", "afxdp", "--boxes", "2"]);
    for n in 1..=2 {
        assert_box_on_afxdp(&g, n);
        assert!(
            front0(&g, n).contains("prog/xdp"),
            "box{n}: {}",
            front0(&g, n)
        );
    }
    for name in ["1M.bin", "50M.bin"] {
        // First a miss streamed from the origin, then a hit from memory.
        download_identical(&g, 1, name);
        download_identical(&g, 1, name);
    }
}

#[test]
fn lab_afxdp_canonical_check_survives_killing_box1() {
    let g = LabGuard::up("btxd2", &["--backend", "afxdp", "--boxes", "3"]);
    assert_box_on_afxdp(&g, 1);
    let rst = RstCapture::start(&g);
    let started = Instant::now();
    // 50 MB at 10 MB/s takes ~5 s: box 1 dies once the body is under way.
    let d = vec![start_download(&g, 0, 1, "50M.bin", "10M")];
    let moved = kill_under_way(&g, &d, 1, 50 << 20, started, Duration::from_secs(2));
    assert_all_identical(&g, d, "50M.bin");
    rst.assert_none_with_fins(1);
    // A survivor continued the response, not a retry or a lucky finish.
    assert_resumed(&g, &[2, 3], 0, moved);
    // SIGKILL ran no destructor: the kernel took the program away when it
    // closed the dead box's link, so a box restarted on this front0 finds
    // it free.
    let link = front0(&g, 1);
    assert!(
        !link.contains("prog/xdp"),
        "stale XDP program on box1's front0: {link}"
    );
    assert!(
        front0(&g, 2).contains("prog/xdp"),
        "the survivor still runs its program"
    );
}
