//! Proof that a lab test tested something: the boxes' own counters (admin
//! metrics) say connections were resumed, and kills wait until the
//! downloads are under way instead of firing at a fixed time that a
//! late-starting curl can miss. Knows the lab's addresses and the admin
//! CLI; knows nothing of how a box restores a connection.
use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{ok, Download, LabGuard, BATON};

/// Box `n`'s Prometheus metrics, through its admin API from its own
/// namespace.
pub fn box_metrics(g: &LabGuard, n: usize) -> String {
    let config = g.file(&format!("box{n}.toml")).display().to_string();
    ok(g.exec(
        &format!("box{n}"),
        &[BATON, "admin", "--config", &config, "metrics"],
    ))
}

/// The value of sample `name` (labels included, as exposed), 0 if absent.
pub fn metric_value(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// `name` summed over `boxes`.
pub fn metric_sum(g: &LabGuard, boxes: &[usize], name: &str) -> u64 {
    boxes
        .iter()
        .map(|&n| metric_value(&box_metrics(g, n), name))
        .sum()
}

/// The box a download's URL names (`http://198.18.0.(10+n)/…`, or
/// `http://[2001:2:0:18::(10+n)]/…`, either over `https://`).
pub fn box_of(d: &Download) -> usize {
    let host = d
        .url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default();
    let last = if host.starts_with('[') { ':' } else { '.' };
    host.trim_end_matches(']')
        .rsplit(last)
        .next()
        .and_then(|o| o.parse::<usize>().ok())
        .map(|o| o - 10)
        .unwrap_or_else(|| panic!("no box in {}", d.url))
}

/// More than the client's receive buffer holds while curl reads at its
/// limited rate (tcp_rmem's default 128 KiB): a download with more than
/// this left still needs bytes from the box.
const WINDOW: u64 = 256 << 10;

/// Caps the client namespace's TCP receive buffers at 128 KiB
/// (`net.ipv4.tcp_rmem`, which IPv6 shares), so that `WINDOW` holds: left
/// to autotuning, a rate-limited curl's buffer grows past a megabyte and a
/// 1 MB body sits whole in the client's kernel while curl's file shows a
/// fraction of it; the box has nothing left to send and the download only
/// looks mid-body.
#[allow(dead_code)]
pub fn cap_client_receive_buffer(g: &LabGuard) {
    ok(g.exec(
        "client",
        &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 65536 131072"],
    ));
}

/// Waits until every one of `downloads` has received body bytes (20 s at
/// most).
#[track_caller]
#[allow(dead_code)]
pub fn wait_until_all_receive(downloads: &[Download]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while downloads.iter().any(|d| received(d) == 0) {
        assert!(
            Instant::now() < deadline,
            "not every download started within 20 s"
        );
        sleep(Duration::from_millis(20));
    }
}

/// Bytes curl has written so far.
pub fn received(d: &Download) -> u64 {
    fs::metadata(&d.out).map_or(0, |m| m.len())
}

/// How many of `downloads` (of `len` bytes each) are mid-body: some bytes
/// in, and more than `WINDOW` still to come from the box.
fn midway(downloads: &[&Download], len: u64) -> u64 {
    downloads
        .iter()
        .filter(|d| (1..len.saturating_sub(WINDOW)).contains(&received(d)))
        .count() as u64
}

/// Waits until every download to box `n` has received body bytes (its
/// response is under way) and at least until `since + at`, then runs
/// `act` (a kill, a drain). Returns how many of box `n`'s downloads were
/// mid-body at that moment (some bytes, and more than `WINDOW` left): the
/// box still had bytes to send on those, so their connections must move.
/// Fails if none was: the move would have tested nothing.
#[track_caller]
pub fn when_under_way(
    g: &LabGuard,
    downloads: &[Download],
    n: usize,
    len: u64,
    since: Instant,
    at: Duration,
    act: impl FnOnce(&LabGuard),
) -> u64 {
    let mine: Vec<&Download> = downloads.iter().filter(|d| box_of(d) == n).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let started = mine.iter().filter(|d| received(d) > 0).count();
        let early = Instant::now() < since + at;
        if started == mine.len() && !early {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {started} of box{n}'s {} downloads started within 20 s",
            mine.len()
        );
        sleep(Duration::from_millis(20));
    }
    let midway = midway(&mine, len);
    act(g);
    assert!(
        midway >= 1,
        "none of box{n}'s {} downloads was mid-body when it was moved: nothing was tested",
        mine.len()
    );
    midway
}

/// `when_under_way`, killing box `n` (SIGKILL).
#[track_caller]
pub fn kill_under_way(
    g: &LabGuard,
    downloads: &[Download],
    n: usize,
    len: u64,
    since: Instant,
    at: Duration,
) -> u64 {
    when_under_way(g, downloads, n, len, since, at, |g| {
        ok(g.lab(&["kill", &format!("box{n}")]));
    })
}

/// Asserts the survivors' `baton_http_resumed_total` grows by at least
/// `at_least` over `before` (their sum before the move) within 5 s: a
/// takeover happened and continued the responses, not a retry or a lucky
/// finish. Waited for, not read once: a client whose buffer already held
/// the rest of its body finishes before the survivor hears its answer to
/// the takeover probe, and the response counts as resumed only then.
#[track_caller]
pub fn assert_resumed(g: &LabGuard, survivors: &[usize], before: u64, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = metric_sum(g, survivors, "baton_http_resumed_total");
        let resumed = now.saturating_sub(before);
        if resumed >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "boxes {survivors:?} resumed {resumed} responses (baton_http_resumed_total \
             {before} -> {now}) within 5 s, but {at_least} were mid-body when their box went"
        );
        sleep(Duration::from_millis(50));
    }
}

/// Connections boxes `boxes` restored from a dead box's checkpoints, from
/// their logs' "takeover done … restored=N" lines, once that sum reaches
/// `at_least` or after 16 s. A survivor writes its line when none of its
/// restores waits for the client any more (or 15 s after the takeover), so
/// a line can come after the transfers it restored have finished.
pub fn restored_by(g: &LabGuard, boxes: &[usize], at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(16);
    loop {
        let restored = takeover_field(g, boxes, "restored");
        if restored >= at_least || Instant::now() >= deadline {
            return restored;
        }
        sleep(Duration::from_millis(100));
    }
}

/// `key=N` summed over the "takeover done" lines of boxes `boxes`' logs
/// (`restored`, `ready`, `not_ready`, …).
pub fn takeover_field(g: &LabGuard, boxes: &[usize], key: &str) -> u64 {
    boxes
        .iter()
        .map(|n| fs::read_to_string(g.file(&format!("box{n}.log"))).unwrap_or_default())
        .flat_map(|log| {
            log.lines()
                .filter(|l| l.contains("takeover done"))
                .map(|l| log_field(l, key))
                .collect::<Vec<_>>()
        })
        .sum()
}

pub use baton_lab::logs::strip_ansi;

/// The number after `key=` in a log line, its colour codes dropped.
pub fn log_field(line: &str, key: &str) -> u64 {
    strip_ansi(line)
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or(0)
}

/// Polls box `n`'s metric `name` until it reaches `at_least` (within 20 s).
#[track_caller]
pub fn wait_for_metric(g: &LabGuard, n: usize, name: &str, at_least: u64) {
    wait_for_metric_within(g, n, name, at_least, Duration::from_secs(20));
}

/// As [`wait_for_metric`], for counters that move on the box's own timers
/// (idle and request timeouts): `limit` only stops a hung test.
#[track_caller]
pub fn wait_for_metric_within(g: &LabGuard, n: usize, name: &str, at_least: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let v = metric_value(&box_metrics(g, n), name);
        if v >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "box{n}: {name} stayed at {v} (< {at_least}) for {limit:?}"
        );
        sleep(Duration::from_millis(50));
    }
}

/// For a box that dies of its own accord (a test hook makes it panic):
/// waits until box `n` is gone, and returns how many of its downloads were
/// mid-body (some bytes, more than `WINDOW` left) at the last look while
/// it was still alive, 20 ms at most before it died. Fails if it never
/// died within 30 s, or if none of its downloads was mid-body: the death
/// would have tested nothing.
#[track_caller]
pub fn midway_when_box_dies(g: &LabGuard, downloads: &[Download], n: usize, len: u64) -> u64 {
    let mine: Vec<&Download> = downloads.iter().filter(|d| box_of(d) == n).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0;
    // The sample is taken before the liveness check, so the last one
    // taken while the box lived saw nothing a survivor sent.
    loop {
        let sample = midway(&mine, len);
        if g.driver.box_pid(n as u32).is_none() {
            break;
        }
        last = sample;
        assert!(Instant::now() < deadline, "box{n} did not die within 30 s");
        sleep(Duration::from_millis(20));
    }
    assert!(
        last >= 1,
        "none of box{n}'s {} downloads was mid-body when it died: nothing was tested",
        mine.len()
    );
    last
}

/// How many connections `baton migrate --to 3` says it moved, checked
/// against the 8 asked: on a loaded machine a few candidates may have no
/// checkpoint yet, so half is the floor that still proves the move.
#[track_caller]
pub fn moved_to_box3_of_eight(out: &str) -> u64 {
    let moved: u64 = out
        .split(" connections moved to box 3")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of moved connections: {out}"));
    assert!((4..=8).contains(&moved), "8 asked, {moved} moved: {out}");
    moved
}

/// Once box 1's `downloads` (of a 1 MiB object) are all under way, and
/// at least `at` after `since`, `baton migrate` (asked from box 2, whose
/// back LAN reaches box 1's admin API) moves 8 of box 1's connections to
/// box 3. Returns (how many moved, how many of box 1's downloads were
/// mid-body then).
#[track_caller]
pub fn migrate_eight_to_box3_under_way(
    g: &LabGuard,
    downloads: &[Download],
    since: Instant,
    at: Duration,
) -> (u64, u64) {
    let config = g.file("box1.toml").display().to_string();
    let mut out = String::new();
    let midway = when_under_way(g, downloads, 1, 1 << 20, since, at, |g| {
        out = ok(g.exec(
            "box2",
            &[
                BATON, "migrate", "--config", &config, "--to", "3", "--count", "8",
            ],
        ));
    });
    (moved_to_box3_of_eight(&out), midway)
}
