//! Rebalancing (issue 20, `[balance]`): a box that rejoins empty gets its
//! share of the live connections from the loaded boxes, moved by their
//! balancers through the migrate path, while every transfer continues
//! byte-exact and without a reset. Real curl in the client namespace.
mod common;

use common::*;

#[test]
fn lab_a_rejoined_box_gets_its_share_of_live_downloads_moved_to_it_without_a_reset() {
    // Capacity 64: a lab box's busy fraction counts for little next to its
    // connections (the plan weighs the larger of the two).
    let g = LabGuard::up(
        "btbal",
        &[
            "--boxes",
            "3",
            "--balance-threshold",
            "4",
            "--capacity",
            "64",
        ],
    );
    cap_client_receive_buffer(&g);
    ok(g.lab(&["kill", "box3"]));
    let rst = RstCapture::start(&g);
    let downloads: Vec<Download> = (0..24)
        .map(|i| start_download(&g, i, 1 + i % 2, "1M.bin", "100K"))
        .collect();
    wait_until_all_receive(&downloads);
    // Box 3 comes back empty: 12, 12 and 0 are more than 4 apart, so the
    // balancers of boxes 1 and 2 each send it about 4 of theirs.
    ok(g.lab(&["start", "box3"]));
    wait_for_metric(&g, 3, "baton_takeovers_total", 1);
    assert_all_identical(&g, downloads, "1M.bin");
    let moved = metric_sum(&g, &[1, 2], "baton_balance_moved_total{reason=\"rejoin\"}");
    assert!(
        moved >= 2,
        "boxes 1 and 2 moved {moved} connections to the rejoined box"
    );
    let adopted = metric_value(&box_metrics(&g, 3), "baton_takeovers_total");
    assert!(
        adopted >= moved,
        "box3 restored {adopted} of the {moved} moved to it"
    );
    // `GET /balance` tells what moved, where and why.
    let config = g.file("box1.toml").display().to_string();
    let report = ok(g.exec("box1", &[BATON, "admin", "--config", &config, "balance"]));
    assert!(
        report.contains("\"enabled\":true")
            && report.contains("\"reason\":\"rejoin\"")
            && report.contains("\"to\":3"),
        "{report}"
    );
    rst.assert_none_with_fins(24);
}

#[test]
fn lab_connections_handed_to_a_box_that_died_unnoticed_are_taken_back_and_finish() {
    // A migrate (the balancer's path) to a box killed a moment ago, before
    // anyone noticed: the handoff happens, the adopter never answers. Box 1
    // must restore the connections it handed off from its own records, or
    // their frames go on to a dead box and the downloads hang.
    let g = LabGuard::up("btbak", &["--boxes", "3"]);
    cap_client_receive_buffer(&g);
    let rst = RstCapture::start(&g);
    let downloads: Vec<Download> = (0..6)
        .map(|i| start_download(&g, i, 1, "1M.bin", "100K"))
        .collect();
    wait_until_all_receive(&downloads);
    ok(g.lab(&["kill", "box3"]));
    let config = g.file("box1.toml").display().to_string();
    let answer = g.exec(
        "box2",
        &[
            BATON, "migrate", "--config", &config, "--to", "3", "--count", "6",
        ],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&answer.stdout),
        String::from_utf8_lossy(&answer.stderr)
    );
    assert!(
        !answer.status.success() && said.contains("admin API"),
        "the migrate should have failed to reach box3 (was it judged dead first?): {said}"
    );
    assert_all_identical(&g, downloads, "1M.bin");
    let log = std::fs::read_to_string(g.file("box1.log")).unwrap_or_default();
    assert!(
        log.contains("the adopter did not take the connections: restoring them here"),
        "box1 did not take its connections back"
    );
    rst.assert_none_with_fins(6);
}
