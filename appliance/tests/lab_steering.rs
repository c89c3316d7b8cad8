//! Takeover behind an L4 switch (issue 20, `lab up --steering ecmp`): every
//! box serves the anycast address 198.18.0.10 and the lab's LAN hashes each
//! client flow to one box. A box is killed mid-body; the switch's health
//! check drops it from the hash after its delay, and its flows' frames then
//! land on survivors, which took its connections over (each restores its
//! share and forwards the other's frames to it). The switch also moves
//! flows while their boxes live — an operator takes a box out of the hash,
//! a restarted box gets its buckets back — and a box that receives a frame
//! of a connection another box holds finds it in the segment's tuple index
//! and forwards it there, never resets it. Real curl in the client
//! namespace; the wire watched for RSTs.
mod common;

use std::time::{Duration, Instant};

use common::*;

/// `baton_dataplane_<name>_total` of box `n`.
fn dataplane(g: &LabGuard, n: usize, name: &str) -> u64 {
    metric_value(&box_metrics(g, n), &format!("baton_dataplane_{name}_total"))
}

/// Three boxes behind the lab's switch (health-check delay 1 s), the
/// client's receive buffers capped (bodies stay mid-way at the box, not
/// whole in the client's kernel), the wire watched for RSTs.
fn steered_lab(prefix: &str) -> (LabGuard, RstCapture) {
    let g = LabGuard::up(
        prefix,
        &[
            "--boxes",
            "3",
            "--steering",
            "ecmp",
            "--steering-delay-ms",
            "1000",
        ],
    );
    cap_client_receive_buffer(&g);
    let rst = RstCapture::start(&g);
    (g, rst)
}

/// Segments of connections box `n` does not hold that it forwarded to the
/// box holding them (found through the segment's tuple index).
fn strays_forwarded(g: &LabGuard, n: usize) -> u64 {
    metric_value(
        &box_metrics(g, n),
        "baton_stray_segments_total{action=\"forwarded\"}",
    )
}

/// How many of box 1's connections the survivors restored, once they
/// restored at least `owned − 1` of the `owned` box 1's box table counted
/// at the kill (waiting up to 16 s): that count can include one connection
/// that had just ended, with no record left to take over (seen once on a
/// starved machine; every download was byte-exact).
fn taken_over(g: &LabGuard, owned: u64) -> u64 {
    let restored = restored_by(g, &[2, 3], owned);
    assert!(
        restored >= 1 && restored + 1 >= owned,
        "the survivors restored {restored} of box1's {owned} connections"
    );
    restored
}

/// Waits until the switch's list of boxes out of the hash is `expected`
/// (ids, one a line).
fn wait_out_of_hash(g: &LabGuard, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = std::fs::read_to_string(g.file("steering.dropped")).unwrap_or_default();
        if out.trim() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the switch's boxes out of the hash stayed {:?}, expected {expected:?}",
            out.trim()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` downloads of 1M.bin through the anycast address at `rate`, numbered
/// from `first`, once every one of them receives.
fn steered_downloads(g: &LabGuard, first: usize, n: usize, rate: &str) -> Vec<Download> {
    let downloads: Vec<Download> = (first..first + n)
        .map(|i| start_download_url(g, i, "http://198.18.0.10/1M.bin".into(), rate))
        .collect();
    wait_until_all_receive(&downloads);
    downloads
}

#[test]
fn lab_ecmp_a_live_box_out_of_the_hash_and_back_keeps_every_flow_through_the_others() {
    let (g, rst) = steered_lab("btecmpmv");
    // Batch A spreads over the three boxes.
    let mut downloads = steered_downloads(&g, 0, 30, "100K");
    let on_box1 = metric_value(&box_metrics(&g, 1), "baton_connections");
    assert!(on_box1 >= 1, "the hash gave box1 no flow: nothing tested");

    // The operator takes box 1 out: its flows' frames now reach boxes 2
    // and 3, which do not hold them and forward them to box 1.
    ok(g.lab(&["switch", "out", "box1"]));
    wait_out_of_hash(&g, "1");
    // Batch B, while box 1 is out: every new flow lands on box 2 or 3,
    // those in box 1's buckets too.
    let accepted1 = dataplane(&g, 1, "tcp_accepted");
    downloads.extend(steered_downloads(&g, 30, 15, "100K"));
    assert_eq!(
        dataplane(&g, 1, "tcp_accepted"),
        accepted1,
        "box1 accepted a flow while out of the hash"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while strays_forwarded(&g, 2) + strays_forwarded(&g, 3) == 0 {
        assert!(
            Instant::now() < deadline,
            "boxes 2 and 3 never forwarded a frame of box1's connections to it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Back in: box 1's home buckets return, with the batch-B flows in them
    // that boxes 2 and 3 hold; box 1 forwards their frames to them.
    ok(g.lab(&["switch", "in", "box1"]));
    wait_out_of_hash(&g, "");
    assert_all_identical(&g, downloads, "1M.bin");
    assert!(
        strays_forwarded(&g, 1) >= 1,
        "box1 never forwarded a frame of the others' connections: no batch-B flow \
         came back to its buckets (chance about (2/3)^15)"
    );
    // Nothing was taken over: every connection stayed where it began.
    for n in 1..=3 {
        assert_eq!(
            metric_value(&box_metrics(&g, n), "baton_takeovers_total"),
            0,
            "box{n} took a connection over"
        );
    }
    rst.assert_none_with_fins(45);
}

#[test]
fn lab_ecmp_a_restarted_box_gets_its_buckets_back_and_forwards_what_the_survivors_hold() {
    let (g, rst) = steered_lab("btecmprs");
    // Slow enough to last through a kill, a takeover, a restart and the
    // switch's second thoughts (~20 s a download).
    let started = Instant::now();
    let downloads = steered_downloads(&g, 0, 30, "50K");
    while started.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let owned = metric_value(&box_metrics(&g, 1), "baton_connections");
    assert!(
        owned >= 1,
        "box1 owned no connection at the kill: nothing tested"
    );
    ok(g.lab(&["kill", "box1"]));
    wait_out_of_hash(&g, "1");
    taken_over(&g, owned);
    // Box 1 again: once it is ready for the switch's delay it gets its home
    // buckets back — the flows of its old connections, which boxes 2 and 3
    // hold now — and must hand their frames on, not reset them.
    ok(g.lab(&["start", "box1"]));
    wait_out_of_hash(&g, "");
    let forwarded_at_return = dataplane(&g, 1, "tcp_forwarded");
    assert_all_identical(&g, downloads, "1M.bin");
    assert!(
        dataplane(&g, 1, "tcp_forwarded") > forwarded_at_return,
        "the restarted box received none of the survivors' flows in its buckets"
    );
    rst.assert_none_with_fins(30);
}

#[test]
fn lab_ecmp_steered_downloads_of_both_families_survive_a_kill_and_land_on_survivors_without_a_reset(
) {
    let (g, rst) = steered_lab("btecmp");
    let started = Instant::now();
    // 30 flows to the IPv4 anycast address, 12 to the IPv6 one.
    let downloads: Vec<Download> = (0..42)
        .map(|i| {
            let url = if i < 30 {
                "http://198.18.0.10/1M.bin"
            } else {
                "http://[2001:2:0:18::10]/1M.bin"
            };
            start_download_url(&g, i, url.into(), "100K")
        })
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
    let restored = taken_over(&g, owned);
    assert_resumed(&g, &[2, 3], 0, restored);
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
    rst.assert_none_with_fins(42);
}
