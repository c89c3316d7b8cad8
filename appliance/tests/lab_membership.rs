//! The agreed membership view in the lab (issue #21, `docs/MEMBERSHIP.md`):
//! boxes killed and restarted at random under real curl downloads, and a
//! box in a crash loop. What a user checks (every download byte-identical,
//! no RST on the wire) and what the boxes' logs must show: every box
//! reports each view change once and the same way, and each kill is one
//! committed removal on every survivor.
//!
//! The random trial prints its seed; `BATON_TRIAL_SEED=N` replays it,
//! `BATON_TRIAL_DOWN_MS=LO-HI` changes how long a victim stays down (0-50:
//! restarts faster than detection), `BATON_TRIAL_LOGS=DIR` keeps the logs.
mod common;
#[path = "common/ownership.rs"]
mod ownership;
#[path = "common/trial.rs"]
mod trial;

use std::collections::HashMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use trial::*;

/// The ownership checker ([`ownership::check`]) over boxes 1–3's logs:
/// per connection, at most one owner per view, and only a member of that
/// view. Returns how many restores it read.
fn assert_one_owner_per_view(g: &LabGuard, seed: u64) -> usize {
    let texts: Vec<(u16, String)> = (1..=3).map(|n| (n as u16, plain_log(g, n))).collect();
    let logs: Vec<(u16, &str)> = texts.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let report = ownership::check(&logs);
    assert!(
        report.violations.is_empty(),
        "seed {seed}: the ownership checker found {} violations:\n{}",
        report.violations.len(),
        report.violations.join("\n")
    );
    eprintln!(
        "seed {seed}: ownership checker: {} restores over {} views, one owner each",
        report.restores.len(),
        report.members.len()
    );
    report.restores.len()
}

#[test]
fn lab_random_kills_and_restarts_lose_no_download_and_commit_one_change_per_kill() {
    random_kill_trial("btmb1", &[], 6, false);
}

#[test]
fn lab_replicated_random_kills_and_restarts_lose_no_download_and_commit_one_change_per_kill() {
    // The same trial with a segment per box: the view lives in the boxes'
    // Raft, detection (900 ms in the lab) outlasts its quorum lease (800 ms), and
    // every survivor splits a dead box by the committed change alone.
    // The first victim is the Raft's leader: its survivors elect another
    // within their quorum lease, and nobody fences. Victims after it are
    // drawn freely: a box killed again while its earlier incarnation's
    // connections live on a third box must route them from replicas that
    // caught up first (they once lacked the slots of connections in
    // retransmission backoff, and the restarted box reset those).
    // BATON_TRIAL_ONCE_EACH=1 kills each box once.
    let once_each = std::env::var("BATON_TRIAL_ONCE_EACH").is_ok_and(|v| v == "1");
    let rounds = if once_each { 3 } else { 4 };
    random_kill_trial(
        "btmb3",
        &["--segment-mode", "replicated"],
        rounds,
        once_each,
    );
}

/// The Raft leader box 1 knows, from its metrics (replicated mode).
fn raft_leader(g: &LabGuard) -> Option<usize> {
    let out = g.exec(
        "box1",
        &[
            BATON,
            "admin",
            "--config",
            &g.file("box1.toml").display().to_string(),
            "metrics",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("baton_raft_leader "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as usize)
        .filter(|&n| (1..=3).contains(&n))
}

/// `rounds` random kills and restarts of a 3-box lab brought up with
/// `extra` `lab up` arguments, under 12 downloads over the three
/// addresses: every download byte-identical, no RST, every view change
/// reported alike by every box, each kill one committed removal on every
/// survivor, nobody fenced. `once_each`: each box is killed at most once
/// (the Raft's leader first, when there is one).
fn random_kill_trial(prefix: &str, extra: &[&str], rounds: usize, once_each: bool) {
    let (mut rng, seed) = Rng::seeded("BATON_TRIAL_SEED");
    eprintln!("random kill/restart trial: seed {seed} (replay with BATON_TRIAL_SEED={seed})");
    let mut args = vec!["--boxes", "3"];
    args.extend_from_slice(extra);
    let g = LabGuard::up(prefix, &args);
    let _logs = KeepLogs(&g, seed);
    warm_caches(&g, 3, "50M.bin");
    let cap = start_capture(&g);
    // 12 downloads over the three addresses, ~25 s each: they outlast
    // every round.
    let downloads: Vec<Download> = (0..12)
        .map(|i| start_download(&g, i, 1 + i % 3, "50M.bin", "2M"))
        .collect();
    sleep(Duration::from_millis(1500));
    // How long a victim stays down: 100 ms–2 s, or BATON_TRIAL_DOWN_MS=LO-HI
    // (0-50 restarts faster than detection).
    let down = std::env::var("BATON_TRIAL_DOWN_MS")
        .ok()
        .and_then(|v| {
            let (lo, hi) = v.split_once('-')?;
            Some((lo.parse().ok()?, hi.parse().ok()?))
        })
        .unwrap_or((100, 2000));
    let mut epochs = [0u32, 1, 1, 1];
    let mut kills: Vec<(usize, u32)> = Vec::new();
    let leader = raft_leader(&g);
    if extra.contains(&"replicated") {
        assert!(leader.is_some(), "box1 knows no Raft leader");
    }
    let mut order: Vec<usize> = leader.into_iter().collect();
    while once_each && order.len() < 3 {
        let drawn = rng.between(1, 3) as usize;
        if !order.contains(&drawn) {
            order.push(drawn);
        }
    }
    for round in 0..rounds {
        let drawn = rng.between(1, 3) as usize;
        let victim = match order.get(round) {
            Some(&v) if once_each || round == 0 => v,
            _ => drawn,
        };
        let down_ms = rng.between(down.0, down.1);
        let next_ms = rng.between(400, 1200);
        eprintln!("round {round}: kill box{victim} (epoch {}), restart after {down_ms} ms, next kill {next_ms} ms later", epochs[victim]);
        ok(g.lab(&["kill", &format!("box{victim}")]));
        kills.push((victim, epochs[victim]));
        sleep(Duration::from_millis(down_ms));
        ok(g.lab(&["start", &format!("box{victim}")]));
        epochs[victim] += 1;
        sleep(Duration::from_millis(next_ms));
    }
    assert_all_identical(&g, downloads, "50M.bin");
    let (fins, resets) = finish_capture(cap);
    assert!(
        fins >= 12,
        "the capture saw {fins} client FINs: it missed the traffic"
    );
    assert!(
        resets.is_empty(),
        "seed {seed}: RSTs reached the client:\n{}",
        resets.join("\n")
    );

    let logs: Vec<(usize, Vec<Incarnation>)> = (1..=3).map(|n| (n, incarnations(&g, n))).collect();
    assert_views_agree(&logs);
    // Every kill took a box serving downloads: the checker must have read
    // restores, or it proved nothing.
    let restores = assert_one_owner_per_view(&g, seed);
    assert!(restores > 0, "seed {seed}: no box logged a restore");
    // Each kill is one committed removal on every box that lived through
    // it: the incarnation of each other box that was running at the kill.
    let mut commit_us = Vec::new();
    for (k, &(victim, epoch)) in kills.iter().enumerate() {
        let gone = format!("{victim}/{epoch}");
        for (n, incs) in &logs {
            if *n == victim {
                continue;
            }
            // Box n's epoch at kill k: 1 plus its kills before k.
            let e = 1 + kills[..k].iter().filter(|(v, _)| v == n).count() as u32;
            let inc = incs
                .iter()
                .find(|i| i.epoch == e)
                .unwrap_or_else(|| panic!("seed {seed}: no log of box{n} epoch {e}"));
            let removals = inc
                .changes
                .iter()
                .filter(|c| {
                    c.split("; left [")
                        .nth(1)
                        .and_then(|r| r.split(']').next())
                        .is_some_and(|l| l.split(", ").any(|m| m == gone))
                })
                .count();
            assert_eq!(
                removals, 1,
                "seed {seed}: box{n} (epoch {e}) saw {removals} view changes removing {gone}: {:#?}",
                inc.changes
            );
        }
    }
    for (n, incs) in &logs {
        for inc in incs {
            assert!(
                !inc.fenced,
                "seed {seed}: box{n} epoch {} fenced itself",
                inc.epoch
            );
            commit_us.extend(&inc.commit_us);
        }
    }
    eprintln!(
        "seed {seed}: {} kills; verdict → commit: {} samples, p50 {} µs, max {} µs",
        kills.len(),
        commit_us.len(),
        percentile(&mut commit_us.clone(), 0.5),
        percentile(&mut commit_us, 1.0)
    );
}

#[test]
fn lab_a_box_in_a_crash_loop_costs_the_others_nothing_and_never_splits_a_connection() {
    const CYCLES: usize = 10;
    let (mut rng, seed) = Rng::seeded("BATON_TRIAL_SEED");
    eprintln!("crash loop: seed {seed} (replay with BATON_TRIAL_SEED={seed})");
    let g = LabGuard::up("btmb2", &["--boxes", "3"]);
    let _logs = KeepLogs(&g, seed);
    warm_caches(&g, 2, "50M.bin");
    let cap = start_capture(&g);
    let downloads: Vec<Download> = (0..8)
        .map(|i| start_download(&g, i, 1 + i % 2, "50M.bin", "2M"))
        .collect();
    sleep(Duration::from_millis(1000));
    let started = Instant::now();
    for cycle in 0..CYCLES {
        let up_ms = rng.between(100, 300);
        let down_ms = rng.between(100, 300);
        ok(g.lab(&["kill", "box3"]));
        sleep(Duration::from_millis(down_ms));
        ok(g.lab(&["start", "box3"]));
        eprintln!("cycle {cycle}: box3 down {down_ms} ms, then up for {up_ms} ms");
        sleep(Duration::from_millis(up_ms));
    }
    eprintln!("{CYCLES} cycles in {:?}", started.elapsed());
    assert_all_identical(&g, downloads, "50M.bin");
    let (fins, resets) = finish_capture(cap);
    assert!(
        fins >= 8,
        "the capture saw {fins} client FINs: it missed the traffic"
    );
    assert!(
        resets.is_empty(),
        "seed {seed}: RSTs reached the client:\n{}",
        resets.join("\n")
    );

    let logs: Vec<(usize, Vec<Incarnation>)> = (1..=3).map(|n| (n, incarnations(&g, n))).collect();
    let changes = assert_views_agree(&logs);
    assert_one_owner_per_view(&g, seed);
    for n in 1..=2 {
        let incs = &logs[n - 1].1;
        assert_eq!(incs.len(), 1, "seed {seed}: box{n} restarted");
        assert!(!incs[0].fenced, "seed {seed}: box{n} fenced itself");
    }
    // Boxes 1 and 2 stayed members throughout; every other change concerns
    // box 3, and no incarnation is removed twice or joins twice.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for c in changes.values() {
        let members_part = |tag: &str| {
            c.split(tag)
                .nth(1)
                .and_then(|r| r.split(']').next())
                .map(str::to_string)
                .unwrap_or_default()
        };
        for tag in ["; left [", "; joined ["] {
            for m in members_part(tag).split(", ").filter(|m| !m.is_empty()) {
                // Boxes 1 and 2 only joined, at `lab up`.
                let first_join = tag == "; joined [" && (m == "1/1" || m == "2/1");
                assert!(m.starts_with("3/") || first_join, "seed {seed}: {c}");
                *seen.entry(format!("{tag}{m}")).or_default() += 1;
            }
        }
    }
    assert!(
        seen.values().all(|&k| k == 1),
        "seed {seed}: an incarnation joined or left twice: {seen:?}"
    );
    // Each box restored a slot only with its claim: no claim was refused
    // as already taken by the other survivor (the agreed plans never
    // overlapped), and nobody fenced.
    for n in 1..=2 {
        let log = plain_log(&g, n);
        assert!(
            !log.contains("orphan's slot cannot be claimed"),
            "seed {seed}: box{n} met an unreadable claim"
        );
    }
}

/// The checker's own tests, here only: `common/ownership.rs` is included
/// by more than one test binary.
mod ownership_checker {
    use super::ownership::*;

    const CHANGE: &str = "2026-12-04T11:00:00.100Z  INFO baton::control::agreed: view 4 → 5: box 1 (epoch 1) silent for 310 ms; left [1/1]; joined []; members [2/1, 3/2] view=5";

    fn restore(owner: u16, view: u64, remote: &str) -> String {
        format!("2026-12-04T11:00:00.200Z  INFO baton::control::ownership: restored connections owner={owner} view={view} dead=1 count=1 conns=1.7 10.0.0.1:80 {remote} 4242")
    }

    #[test]
    fn a_line_lists_many_restores_and_one_that_does_not_add_up_is_unreadable() {
        let line = "x INFO restored connections owner=2 view=5 dead=1 count=2 conns=1.7 10.0.0.1:80 10.0.1.2:40000 4242, 1.9 10.0.0.1:80 [2001:2::5]:40001 17";
        let rs = restores_of(line, Some(1)).expect("readable");
        assert_eq!(rs.len(), 2);
        assert_eq!(
            (
                rs[1].slot,
                rs[1].conn.remote.as_str(),
                rs[1].conn.client_isn
            ),
            (9, "[2001:2::5]:40001", 17)
        );
        let short = line.replace("count=2", "count=3");
        assert!(restores_of(&short, Some(1)).is_none());
        let box2 = [started(1), CHANGE.into(), short].join("\n");
        assert_eq!(check(&[(2, &box2)]).violations.len(), 1);
    }

    fn started(epoch: u32) -> String {
        format!("2026-12-04T10:59:00Z  INFO baton::run: box started id=0 epoch={epoch}")
    }

    #[test]
    fn a_clean_split_passes() {
        let box2 = [started(1), CHANGE.into(), restore(2, 5, "10.0.1.2:40000")].join("\n");
        let box3 = [started(2), CHANGE.into(), restore(3, 5, "10.0.1.2:40001")].join("\n");
        let r = check(&[(2, &box2), (3, &box3)]);
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        assert_eq!(r.restores.len(), 2);
        assert_eq!(r.members[&5], vec![(2, 1), (3, 2)]);
    }

    #[test]
    fn two_owners_of_one_connection_in_one_view_fail() {
        let box2 = [started(1), CHANGE.into(), restore(2, 5, "10.0.1.2:40000")].join("\n");
        let box3 = [started(2), CHANGE.into(), restore(3, 5, "10.0.1.2:40000")].join("\n");
        let r = check(&[(2, &box2), (3, &box3)]);
        assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
        assert!(
            r.violations[0].contains("2 owners in view 5"),
            "{}",
            r.violations[0]
        );
    }

    #[test]
    fn the_same_connection_owned_again_in_a_later_view_passes() {
        let later =
            "x INFO view 5 → 6: box 2 (epoch 1) silent; left [2/1]; joined []; members [3/2]";
        let box2 = [started(1), CHANGE.into(), restore(2, 5, "10.0.1.2:40000")].join("\n");
        let box3 = [
            started(2),
            CHANGE.into(),
            later.into(),
            restore(3, 6, "10.0.1.2:40000"),
        ]
        .join("\n");
        let r = check(&[(2, &box2), (3, &box3)]);
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
    }

    #[test]
    fn a_restore_by_a_box_outside_the_view_fails() {
        // Box 1's new incarnation (epoch 2) is not a member of view 5.
        let box1 = [started(2), CHANGE.into(), restore(1, 5, "10.0.1.2:40000")].join("\n");
        let r = check(&[(1, &box1)]);
        assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
        assert!(
            r.violations[0].contains("whose members are"),
            "{}",
            r.violations[0]
        );
    }

    #[test]
    fn a_restore_in_a_view_nobody_committed_fails() {
        let box2 = [started(1), restore(2, 9, "10.0.1.2:40000")].join("\n");
        let r = check(&[(2, &box2)]);
        assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
        assert!(r.violations[0].contains("no box logged committing"));
    }

    #[test]
    fn boxes_disagreeing_on_a_views_members_fail() {
        let other = CHANGE.replace("members [2/1, 3/2]", "members [3/2]");
        let box2 = [started(1), CHANGE.into()].join("\n");
        let box3 = [started(2), other].join("\n");
        let r = check(&[(2, &box2), (3, &box3)]);
        assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    }
}
