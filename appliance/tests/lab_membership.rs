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

use std::collections::HashMap;
use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// A seeded generator, so that a failing trial replays.
struct Rng(baton_lab::objects::SplitMix64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var("BATON_TRIAL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        (Rng(baton_lab::objects::SplitMix64(seed)), seed)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.0.next_u64() % (hi - lo + 1)
    }
}

/// The text of a box's log without the terminal colours tracing adds.
fn plain_log(g: &LabGuard, n: usize) -> String {
    let raw = fs::read_to_string(g.file(&format!("box{n}.log"))).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One incarnation's view changes, as its log has them.
#[derive(Debug, Default)]
struct Incarnation {
    epoch: u32,
    /// `view A → B: …; members […]`, the change's one line, in log order.
    changes: Vec<String>,
    /// Verdict-to-commit times this incarnation logged, µs.
    commit_us: Vec<u64>,
    fenced: bool,
}

/// Every incarnation of box `n`, in order (its log is appended to at each
/// start; each start logs `box started … epoch=N`).
fn incarnations(g: &LabGuard, n: usize) -> Vec<Incarnation> {
    let mut out: Vec<Incarnation> = Vec::new();
    for line in plain_log(g, n).lines() {
        if line.contains("box started") {
            let epoch = field(line, "epoch")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            out.push(Incarnation {
                epoch,
                ..Incarnation::default()
            });
            continue;
        }
        let Some(inc) = out.last_mut() else { continue };
        if line.contains("fencing this box") {
            inc.fenced = true;
        }
        let Some(at) = line.find("view ") else {
            continue;
        };
        let rest = &line[at..];
        if !rest.contains(" → ") || !rest.contains("; members [") {
            continue;
        }
        let end = rest
            .find("; members [")
            .map(|i| i + rest[i..].find(']').map_or(rest.len() - i, |j| j + 1));
        inc.changes
            .push(rest[..end.unwrap_or(rest.len())].to_string());
        if let Some(us) = field(line, "verdict_to_commit_us").and_then(|v| v.parse().ok()) {
            inc.commit_us.push(us);
        }
    }
    out
}

/// The value of `key=value` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))?;
    line[at + key.len() + 2..].split_whitespace().next()
}

/// The view number a change line commits (`view 4 → 5: …` → 5).
fn number_of(change: &str) -> u32 {
    change
        .split(" → ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Every box reported each view number the same way, and each incarnation
/// reported each number at most once, in increasing order. Returns the
/// changes by number.
fn assert_views_agree(logs: &[(usize, Vec<Incarnation>)]) -> HashMap<u32, String> {
    let mut by_number: HashMap<u32, String> = HashMap::new();
    for (n, incs) in logs {
        for inc in incs {
            let numbers: Vec<u32> = inc.changes.iter().map(|c| number_of(c)).collect();
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "box{n} epoch {}: view changes out of order or twice: {:#?}",
                inc.epoch,
                inc.changes
            );
            for c in &inc.changes {
                let first = by_number.entry(number_of(c)).or_insert_with(|| c.clone());
                assert_eq!(first, c, "box{n} epoch {}: two boxes disagree", inc.epoch);
            }
        }
    }
    by_number
}

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

/// A capture of client FINs and of RSTs reaching the client; finish says
/// how many FINs it saw (proof it saw the traffic) and which RSTs hit a
/// connection the client had not closed.
fn finish_capture(cap: Capture) -> (usize, Vec<String>) {
    let mut closed = std::collections::HashSet::new();
    let mut fins = 0;
    let mut resets = Vec::new();
    for line in cap.finish(Duration::from_millis(300)) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(src), Some(dst)) = (fields.get(2), fields.get(4)) else {
            continue;
        };
        let port = |a: &str| {
            a.trim_end_matches(':')
                .rsplit('.')
                .next()
                .map(str::to_string)
        };
        if src.starts_with("198.18.0.100.") {
            fins += 1;
            closed.extend(port(src));
        } else if !port(dst).is_some_and(|p| closed.contains(&p)) {
            resets.push(line.clone());
        }
    }
    (fins, resets)
}

fn start_capture(g: &LabGuard) -> Capture {
    Capture::start(
        g,
        "membership.pcap",
        "((tcp[tcpflags] & tcp-rst) != 0 and not src host 198.18.0.100) \
         or ((tcp[tcpflags] & tcp-fin) != 0 and src host 198.18.0.100)",
    )
}

/// With `BATON_TRIAL_LOGS=DIR`, keeps the boxes' logs and the client's
/// capture of RSTs and FINs in `DIR/PREFIX-SEED/`
/// (the lab's own folder goes with the lab), to read a failed trial.
fn keep_logs(g: &LabGuard, seed: u64) {
    let Ok(dir) = std::env::var("BATON_TRIAL_LOGS") else {
        return;
    };
    let dir = std::path::Path::new(&dir).join(format!("{}-{seed}", g.prefix));
    let _ = fs::create_dir_all(&dir);
    for n in 1..=4 {
        let name = format!("box{n}.log");
        let _ = fs::copy(g.file(&name), dir.join(&name));
    }
    let _ = fs::copy(g.file("membership.pcap"), dir.join("membership.pcap"));
}

/// Keeps the logs (see [`keep_logs`]) when dropped, pass or fail: before
/// the lab guard, declared earlier, takes the lab down.
struct KeepLogs<'a>(&'a LabGuard, u64);

impl Drop for KeepLogs<'_> {
    fn drop(&mut self) {
        keep_logs(self.0, self.1);
    }
}

fn percentile(v: &mut [u64], q: f64) -> u64 {
    v.sort_unstable();
    v.get(((v.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(0)
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
    let (mut rng, seed) = Rng::seeded();
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
    let (mut rng, seed) = Rng::seeded();
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

/// Whether process `pid` still runs (gone, or a zombie nobody reaped yet,
/// is not running).
fn runs(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            != Some("Z")
    })
}

fn box_pid(g: &LabGuard, n: usize) -> i32 {
    fs::read_to_string(g.file(&format!("box{n}.pid")))
        .expect("box pid file")
        .trim()
        .parse()
        .expect("a pid")
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
