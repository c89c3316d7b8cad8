//! The lab on the DPDK backend (issue 8): `baton lab up --backend dpdk`
//! runs every box's workers on DPDK (`net_af_packet` on the box's
//! `front0`, built with `--features dpdk`), and what a user checks is the
//! same as on AF_PACKET: curl downloads through a box are byte-identical to
//! the origin's, and a box killed mid-download is taken over transparently
//! (curl exits 0, sha256 matches). A box whose EAL cannot start its device
//! exits non-zero with a clear message. Needs root; serialized with the
//! other lab tests (nextest group `lab`, flock in tests/common).
#![cfg(feature = "dpdk")]
mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Asserts that box `n` logged a started DPDK port: the lab really runs
/// the DPDK backend, not AF_PACKET.
#[track_caller]
fn assert_box_on_dpdk(g: &LabGuard, n: u8) {
    let log = fs::read_to_string(g.file(&format!("box{n}.log"))).unwrap_or_default();
    assert!(
        log.contains("DPDK port started") && log.contains("net_af_packet0"),
        "box{n} did not start a DPDK port; its log:\n{log}"
    );
}

#[test]
fn lab_dpdk_boxes_serve_1m_and_50m_byte_identical() {
    let g = LabGuard::up("btdk1", &["--backend", "dpdk", "--boxes", "3"]);
    for n in 1..=3 {
        assert_box_on_dpdk(&g, n);
    }
    for name in ["1M.bin", "50M.bin"] {
        // First a miss streamed from the origin, then a hit from memory.
        download_identical(&g, 1, name);
        download_identical(&g, 1, name);
    }
}

#[test]
fn lab_dpdk_canonical_check_survives_killing_box1() {
    let g = LabGuard::up("btdk2", &["--backend", "dpdk", "--boxes", "3"]);
    assert_box_on_dpdk(&g, 1);
    let started = Instant::now();
    // 50 MB at 10 MB/s takes ~5 s: box 1 dies once the body is under way.
    let d = vec![start_download(&g, 0, 1, "50M.bin", "10M")];
    let moved = kill_under_way(&g, &d, 1, 50 << 20, started, Duration::from_secs(2));
    assert_all_identical(&g, d, "50M.bin");
    // A survivor continued the response, not a retry or a lucky finish.
    assert_resumed(&g, &[2, 3], 0, moved);
}

/// A network namespace of this test, deleted on drop whatever happened.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let o = Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .expect("ip netns add");
        assert!(o.status.success(), "ip netns add {name}: {}", text(&o));
        Netns(name.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A box config with the DPDK backend on `vdev`, its segment at `segment`.
fn dpdk_box_config(vdev: &str, segment: &str) -> String {
    format!(
        r#"[box]
id = 1
name = "box1"

[cluster]
key = "5f3a9c0e7b214d86a1c4e0f29b7d3e615f3a9c0e7b214d86a1c4e0f29b7d3e61"

[[cluster.members]]
id = 1
back_addr = "198.19.0.11:7400"

[service]
ips = ["198.18.0.11"]

[dataplane]
backend = "dpdk"
interface = "front0"
workers = 1
poll_mode = "adaptive"

[dataplane.dpdk]
vdevs = ["{vdev}"]
memory_mb = 128

[checkpoint]
segment_path = "{segment}"
slots = 100
mode = "shared"

[cache]
origin = "http://198.19.0.2:80"
memory_bytes = 1048576

[admin]
listen = "198.19.0.11:9090"
token = "secret"
"#
    )
}

#[test]
fn lab_dpdk_box_with_a_bad_vdev_exits_non_zero_with_a_clear_message() {
    // The lab lock keeps this EAL from competing with a lab's boxes.
    let g = LabGuard::new("btdk3");
    let dir = g.file("");
    fs::create_dir_all(&dir).expect("test directory");
    let ns = Netns::new("btdk3-box");
    let config = dir.join("bad-vdev.toml");
    let segment = dir.join("bad-vdev.seg");
    fs::write(
        &config,
        dpdk_box_config(
            "net_af_packet0,iface=bt-nosuch0,qpairs=1",
            &segment.display().to_string(),
        ),
    )
    .expect("write the config");
    let o = Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "timeout", "60", BATON, "run", "--config",
        ])
        .arg(&config)
        .output()
        .expect("run baton");
    let _ = fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a box without its device must not run: {}",
        text(&o)
    );
    assert_ne!(
        o.status.code(),
        Some(124),
        "the box hung instead of exiting: {}",
        text(&o)
    );
    assert!(err.contains("baton: error:"), "{}", text(&o));
    assert!(err.contains("DPDK"), "the message names DPDK: {}", text(&o));
    assert!(
        err.contains("bt-nosuch0"),
        "the message names the bad vdev: {}",
        text(&o)
    );
    assert!(
        err.contains("No such device"),
        "the message says what the driver found: {}",
        text(&o)
    );
    assert!(!err.contains("panicked"), "{}", text(&o));
}
