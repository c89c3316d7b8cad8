//! What the lab's membership trials share (included with `#[path]` by
//! lab_membership.rs, lab_partition.rs and lab_random_kill.rs): a seeded
//! draw that replays, the boxes' logs read as view changes per
//! incarnation, the capture of RSTs and FINs, and keeping a failed
//! trial's logs. It must not know any one trial's plan.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::time::Duration;

use crate::common::*;

/// A seeded generator, so that a failing trial replays.
pub struct Rng(baton_lab::objects::SplitMix64);

impl Rng {
    /// Seeded from the environment variable `var` when set (a replay),
    /// else from the clock; returns the seed to print.
    pub fn seeded(var: &str) -> (Rng, u64) {
        let seed = std::env::var(var)
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
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.0.next_u64() % (hi - lo + 1)
    }
}

/// The text of a box's log without the terminal colours tracing adds.
pub fn plain_log(g: &LabGuard, n: usize) -> String {
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
pub struct Incarnation {
    pub epoch: u32,
    /// `view A → B: …; members […]`, the change's one line, in log order.
    pub changes: Vec<String>,
    /// Verdict-to-commit times this incarnation logged, µs.
    pub commit_us: Vec<u64>,
    pub fenced: bool,
}

/// Every incarnation of box `n`, in order (its log is appended to at each
/// start; each start logs `box started … epoch=N`).
pub fn incarnations(g: &LabGuard, n: usize) -> Vec<Incarnation> {
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
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))?;
    line[at + key.len() + 2..].split_whitespace().next()
}

/// The view number a change line commits (`view 4 → 5: …` → 5).
pub fn number_of(change: &str) -> u32 {
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
pub fn assert_views_agree(logs: &[(usize, Vec<Incarnation>)]) -> HashMap<u32, String> {
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

/// A capture of client FINs and of RSTs reaching the client; finish says
/// how many FINs it saw (proof it saw the traffic) and which RSTs hit a
/// connection the client had not closed.
pub fn finish_capture(cap: Capture) -> (usize, Vec<String>) {
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

pub fn start_capture(g: &LabGuard) -> Capture {
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
pub fn keep_logs(g: &LabGuard, seed: u64) {
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
pub struct KeepLogs<'a>(pub &'a LabGuard, pub u64);

impl Drop for KeepLogs<'_> {
    fn drop(&mut self) {
        keep_logs(self.0, self.1);
    }
}

pub fn percentile(v: &mut [u64], q: f64) -> u64 {
    v.sort_unstable();
    v.get(((v.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(0)
}

/// Whether process `pid` still runs (gone, or a zombie nobody reaped yet,
/// is not running).
pub fn runs(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            != Some("Z")
    })
}

pub fn box_pid(g: &LabGuard, n: usize) -> i32 {
    fs::read_to_string(g.file(&format!("box{n}.pid")))
        .expect("box pid file")
        .trim()
        .parse()
        .expect("a pid")
}
