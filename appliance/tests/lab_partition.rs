//! Partitions of the replicated cluster in the lab (issue 21,
//! `docs/MEMBERSHIP.md` "Partitions"): a box cut off the back LAN, a box
//! frozen past detection, a 2–2 split, and a box rebooted with its segment
//! wiped. What a user checks: downloads byte-identical with no RST where
//! a majority serves, no takeover where none does, and the boxes' logs
//! agreeing on every view change; a box without a quorum fences itself.
mod common;
#[path = "common/trial.rs"]
mod trial;

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use trial::*;

/// The nftables table that cuts box `n` off the back LAN, both ways, at
/// its bridge port in the lab's LAN namespace.
fn partition_rules(n: u8) -> String {
    let port = baton_lab::names::box_back_port(n);
    format!(
        "table netdev partition_box{n} {{\n\
         \x20   chain in {{ type filter hook ingress device \"{port}\" priority 0; policy drop; }}\n\
         \x20   chain out {{ type filter hook egress device \"{port}\" priority 0; policy drop; }}\n\
         }}\n"
    )
}

#[test]
fn lab_replicated_a_box_cut_off_the_back_lan_fences_itself_and_the_majority_takes_over() {
    // A 1-2 partition of the back LAN (nftables drops everything to and
    // from box1's back0): box1 hears no quorum of the Raft and stops
    // serving once its lease runs out; boxes 2 and 3 (the majority) remove
    // it from the view after detection, which outlasts the lease, and
    // take its downloads over. Healed and started again, box1 rejoins.
    let g = LabGuard::up("btmb4", &["--boxes", "3", "--segment-mode", "replicated"]);
    let _logs = KeepLogs(&g, 0);
    let cap = start_capture(&g);
    let started = Instant::now();
    let downloads: Vec<Download> = (0..12)
        .map(|i| start_download(&g, i, [1, 1, 2, 3][i % 4], "1M.bin", "150K"))
        .collect();
    let pid = box_pid(&g, 1);
    sleep(Duration::from_millis(2000));
    let rules = g.file("partition.nft");
    fs::write(&rules, partition_rules(1)).expect("rules");
    ok(g.exec("lan", &["nft", "-f", &rules.display().to_string()]));
    let cut = Instant::now();
    assert_all_identical(&g, downloads, "1M.bin");
    eprintln!(
        "downloads done {:?} after the start, {:?} after the cut",
        started.elapsed(),
        cut.elapsed()
    );
    let (fins, resets) = finish_capture(cap);
    assert!(
        fins >= 12,
        "the capture saw {fins} client FINs: it missed the traffic"
    );
    assert!(
        resets.is_empty(),
        "RSTs reached the client:\n{}",
        resets.join("\n")
    );
    let box1 = plain_log(&g, 1);
    assert!(
        box1.contains("no quorum of the view's Raft heard") && box1.contains("fencing this box"),
        "box1 did not fence itself for want of a quorum:\n{box1}"
    );
    assert!(!runs(pid), "box1 still runs");
    let logs: Vec<(usize, Vec<Incarnation>)> = (1..=3).map(|n| (n, incarnations(&g, n))).collect();
    assert_views_agree(&logs);
    for (n, incs) in &logs[1..] {
        assert_eq!(incs.len(), 1, "box{n} restarted");
        assert!(!incs[0].fenced, "box{n} fenced itself");
        let removals = incs[0]
            .changes
            .iter()
            .filter(|c| c.contains("; left [1/1]"))
            .count();
        assert_eq!(
            removals, 1,
            "box{n}: one committed removal of box1: {:#?}",
            incs[0].changes
        );
    }

    // Healed, box1 starts again and rejoins as a new member.
    ok(g.exec(
        "lan",
        &["nft", "delete", "table", "netdev", "partition_box1"],
    ));
    ok(g.lab(&["start", "box1"]));
    let rejoined = baton_lab::driver::wait_for(Duration::from_secs(10), || {
        incarnations(&g, 1)
            .last()
            .is_some_and(|i| i.epoch == 2 && i.changes.iter().any(|c| c.contains("joined [1/2]")))
    });
    assert!(rejoined, "box1 did not rejoin:\n{}", plain_log(&g, 1));
    assert_all_identical(
        &g,
        vec![start_download(&g, 20, 1, "1M.bin", "200M")],
        "1M.bin",
    );
}

#[test]
fn lab_replicated_a_box_frozen_past_detection_fences_itself_when_it_wakes() {
    // box1 is stopped (SIGSTOP) for longer than detection: boxes 2 and 3
    // remove it and take its downloads over. When it runs again its
    // Raft may read the leader's queued heartbeats as a fresh quorum:
    // it must stop all the same, before it answers anything.
    let g = LabGuard::up("btmb5", &["--boxes", "3", "--segment-mode", "replicated"]);
    let _logs = KeepLogs(&g, 0);
    let cap = start_capture(&g);
    let downloads: Vec<Download> = (0..12)
        .map(|i| start_download(&g, i, [1, 1, 2, 3][i % 4], "1M.bin", "150K"))
        .collect();
    sleep(Duration::from_millis(2000));
    let pid = box_pid(&g, 1);
    // SAFETY: signals to the lab's own box process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    sleep(Duration::from_millis(1500));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_all_identical(&g, downloads, "1M.bin");
    let (fins, resets) = finish_capture(cap);
    assert!(fins >= 12, "the capture saw {fins} client FINs");
    assert!(
        resets.is_empty(),
        "RSTs reached the client:\n{}",
        resets.join("\n")
    );
    let box1 = plain_log(&g, 1);
    assert!(
        box1.contains("fencing this box"),
        "box1 did not fence itself:\n{box1}"
    );
    assert!(!runs(pid), "box1 still runs");
    let logs: Vec<(usize, Vec<Incarnation>)> = (1..=3).map(|n| (n, incarnations(&g, n))).collect();
    assert_views_agree(&logs);
    for (n, incs) in &logs[1..] {
        assert!(!incs[0].fenced, "box{n} fenced itself");
        let removals = incs[0]
            .changes
            .iter()
            .filter(|c| c.contains("; left [1/1]"))
            .count();
        assert_eq!(removals, 1, "box{n}: {:#?}", incs[0].changes);
    }
}

/// The nftables table that splits the back LAN between `a` and `b`: at
/// each box's bridge port, what comes from it to the other side is
/// dropped.
fn split_rules(a: &[u8], b: &[u8]) -> String {
    let addrs = |side: &[u8]| {
        side.iter()
            .map(|&n| format!("198.19.0.{}", 10 + n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut chains = String::new();
    for (side, other) in [(a, b), (b, a)] {
        for &n in side {
            let port = baton_lab::names::box_back_port(n);
            chains.push_str(&format!(
                "    chain from_box{n} {{ type filter hook ingress device \"{port}\" priority 0; policy accept; ip daddr {{ {} }} drop; }}\n",
                addrs(other)
            ));
        }
    }
    format!("table netdev split {{\n{chains}}}\n")
}

#[test]
fn lab_replicated_a_two_two_split_stops_both_halves_and_nobody_takes_anything_over() {
    // Four boxes, the back LAN split 1+2 | 3+4: neither half holds a
    // quorum of the Raft (3 of 4), so no view change commits and every
    // box stops serving once its lease runs out: an outage, never a split
    // brain. Healed and started again, all four rejoin as new members.
    let g = LabGuard::up("btmb6", &["--boxes", "4", "--segment-mode", "replicated"]);
    let _logs = KeepLogs(&g, 0);
    let pids: Vec<i32> = (1..=4).map(|n| box_pid(&g, n)).collect();
    // Split only once the cluster formed: every box holds the lease and
    // reads the view of all four (a box that never heard a quorum serves
    // for its start-up grace).
    let all = "members [1/1, 2/1, 3/1, 4/1]";
    let formed = baton_lab::driver::wait_for(Duration::from_secs(15), || {
        (1..=4).all(|n| {
            let log = plain_log(&g, n);
            log.contains("the view's Raft has a quorum") && log.contains(all)
        })
    });
    assert!(formed, "the four boxes did not form one view");
    let rules = g.file("split.nft");
    fs::write(&rules, split_rules(&[1, 2], &[3, 4])).expect("rules");
    ok(g.exec("lan", &["nft", "-f", &rules.display().to_string()]));
    let all_stopped =
        baton_lab::driver::wait_for(Duration::from_secs(5), || pids.iter().all(|&p| !runs(p)));
    assert!(all_stopped, "some box still serves without a quorum");
    for n in 1..=4 {
        let log = plain_log(&g, n);
        assert!(
            log.contains("no quorum of the view's Raft heard") && log.contains("fencing this box"),
            "box{n} did not fence itself for want of a quorum:\n{log}"
        );
        assert!(
            !log.contains("taking over a dead box's connections"),
            "box{n} took a box over without a quorum:\n{log}"
        );
        let incs = incarnations(&g, n);
        assert!(
            incs[0]
                .changes
                .iter()
                .all(|c| !c.contains("; left [") || c.contains("; left []")),
            "box{n} saw a removal committed: {:#?}",
            incs[0].changes
        );
    }

    ok(g.exec("lan", &["nft", "delete", "table", "netdev", "split"]));
    // All four at once, as systemd restarts a healed cluster: one by one,
    // each waiting to be ready, the first would wait alone for a quorum
    // of four, and on a loaded machine its lease can run out before the
    // others start.
    let starts: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=4)
            .map(|n| {
                let g = &g;
                s.spawn(move || g.lab(&["start", &format!("box{n}")]))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("lab start"))
            .collect()
    });
    for out in starts {
        ok(out);
    }
    let rejoined = baton_lab::driver::wait_for(Duration::from_secs(20), || {
        (1..=4).all(|n| {
            incarnations(&g, n).last().is_some_and(|i| {
                i.epoch == 2
                    && i.changes
                        .iter()
                        .any(|c| c.contains(&format!("joined [{n}/2]")))
            })
        })
    });
    assert!(
        rejoined,
        "not every box rejoined:\n{}",
        (1..=4)
            .map(|n| plain_log(&g, n))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for n in 1..=4 {
        assert_all_identical(
            &g,
            vec![start_download(&g, 30 + n, n, "1M.bin", "200M")],
            "1M.bin",
        );
    }
}

/// A reboot of a replicated box: its segment (tmpfs) is gone, its Raft
/// state and epoch file (beside the Raft state, on a disk that survives)
/// are not. The box must come back with a newer epoch, not epoch 1: the
/// durable view and its peers remember epoch 1, and a "new" epoch 1 would
/// be taken for the incarnation they removed.
#[test]
fn lab_replicated_a_rebooted_box_whose_segment_was_wiped_rejoins_with_a_newer_epoch() {
    let g = LabGuard::up("btmb7", &["--boxes", "3", "--segment-mode", "replicated"]);
    let segment = format!("/dev/shm/baton-lab-{}-box2.seg", g.prefix);
    let epoch_file = format!("{segment}.raft.2.epoch");
    assert!(
        fs::metadata(&epoch_file).is_ok(),
        "box2 keeps its epoch in {epoch_file}"
    );
    ok(g.lab(&["kill", "box2"]));
    // A reboot takes a while: the killed process's sockets are gone by then.
    sleep(Duration::from_millis(500));
    fs::remove_file(&segment).unwrap_or_else(|e| panic!("{segment}: {e}"));
    let started = g.lab(&["start", "box2"]);
    assert!(
        started.status.success(),
        "box2 did not start again: {}\n{}",
        text(&started),
        plain_log(&g, 2)
    );
    let rejoined = baton_lab::driver::wait_for(Duration::from_secs(15), || {
        incarnations(&g, 2)
            .last()
            .is_some_and(|i| i.epoch == 2 && i.changes.iter().any(|c| c.contains("joined [2/2]")))
    });
    let incs = incarnations(&g, 2);
    assert!(
        rejoined,
        "box2 did not rejoin as epoch 2: {incs:#?}\n{}",
        plain_log(&g, 2)
    );
    assert_eq!(
        incs.iter().map(|i| i.epoch).collect::<Vec<_>>(),
        [1, 2],
        "box2's incarnations"
    );
    assert!(
        !incs[1].fenced,
        "the rebooted box was fenced:\n{}",
        plain_log(&g, 2)
    );
    // Its peers committed the removal of epoch 1 and the join of epoch 2
    // (each logs a change at its next tick after the commit).
    for n in [1, 3] {
        let changes = || -> Vec<String> {
            incarnations(&g, n)
                .into_iter()
                .flat_map(|i| i.changes)
                .collect()
        };
        let seen = baton_lab::driver::wait_for(Duration::from_secs(5), || {
            let c = changes();
            c.iter().any(|c| c.contains("left [2/1]"))
                && c.iter().any(|c| c.contains("joined [2/2]"))
        });
        assert!(
            seen,
            "box{n} saw box2/1 leave and box2/2 join: {:#?}",
            changes()
        );
    }
    assert_all_identical(
        &g,
        vec![start_download(&g, 0, 2, "1M.bin", "200M")],
        "1M.bin",
    );
}
