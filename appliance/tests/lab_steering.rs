//! Takeover behind an L4 switch (issue 20, `lab up --steering ecmp`): every
//! box serves the anycast address 198.18.0.10 and the lab's LAN hashes each
//! client flow to one box. A box is killed mid-body; the switch's health
//! check drops it from the hash after its delay, and its flows' frames then
//! land on survivors, which took its connections over (each restores its
//! share and forwards the other's frames to it). Real curl in the client
//! namespace; the wire watched for RSTs.
mod common;

use std::time::{Duration, Instant};

use common::*;

/// `baton_dataplane_<name>_total` of box `n`.
fn dataplane(g: &LabGuard, n: usize, name: &str) -> u64 {
    metric_value(&box_metrics(g, n), &format!("baton_dataplane_{name}_total"))
}

#[test]
fn lab_ecmp_steered_downloads_survive_a_kill_and_land_on_survivors_without_a_reset() {
    let g = LabGuard::up(
        "btecmp",
        &[
            "--boxes",
            "3",
            "--steering",
            "ecmp",
            "--steering-delay-ms",
            "1000",
        ],
    );
    // Bodies stay mid-way at the box, not whole in the client's kernel.
    cap_client_receive_buffer(&g);
    let rst = RstCapture::start(&g);
    let started = Instant::now();
    let downloads: Vec<Download> = (0..30)
        .map(|i| start_download_url(&g, i, "http://198.18.0.10/1M.bin".into(), "100K"))
        .collect();
    // Every download under way, and 1.5 s in (curl's rate limit lets the
    // first few hundred kilobytes through faster than its rate).
    let deadline = Instant::now() + Duration::from_secs(20);
    while downloads.iter().any(|d| received(d) == 0)
        || started.elapsed() < Duration::from_millis(1500)
    {
        assert!(
            Instant::now() < deadline,
            "not every download started within 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The switch spread the flows: each box accepted some of them.
    let accepted: Vec<u64> = (1..=3).map(|n| dataplane(&g, n, "tcp_accepted")).collect();
    assert!(
        accepted.iter().all(|&a| a >= 1),
        "the LAN's hash left a box without a flow: accepted {accepted:?}"
    );
    // What box 1 owns as it dies: its downloads not finished yet.
    let owned = metric_value(&box_metrics(&g, 1), "baton_connections");
    assert!(
        owned >= 1,
        "box1 owned no connection at the kill: nothing tested"
    );
    let forwarded_before: u64 = [2, 3]
        .iter()
        .map(|&n| dataplane(&g, n, "tcp_forwarded"))
        .sum();
    ok(g.lab(&["kill", "box1"]));

    assert_all_identical(&g, downloads, "1M.bin");
    // Box 1's connections were taken over and continued, not retried.
    assert_resumed(&g, &[2, 3], 0, owned);
    assert!(
        restored_by(&g, &[2, 3], owned) >= owned,
        "the survivors restored fewer than box1's {owned} connections"
    );
    // The switch dropped box 1, and its flows' frames reached survivors
    // that had not restored them: forwarded to the one that had. (The
    // hash and the takeover's split are independent: with box 1's ~10
    // flows, that none lands on a survivor other than its restorer has a
    // chance of about 2^-10.)
    let dropped = std::fs::read_to_string(g.file("steering.dropped")).unwrap_or_default();
    assert_eq!(dropped.trim(), "1", "the health check dropped box1 only");
    let forwarded: u64 = [2, 3]
        .iter()
        .map(|&n| dataplane(&g, n, "tcp_forwarded"))
        .sum();
    assert!(
        forwarded > forwarded_before,
        "no survivor forwarded a steered frame to the connection's restorer"
    );
    rst.assert_none_with_fins(30);
}
