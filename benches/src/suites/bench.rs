//! What every suite shares: `baton-bench`'s arguments, the [`Bench`] run
//! (the lab, the results so far, the load client) with the load runs and
//! namespace limits, and the limits of the machine. It must not know any
//! one suite's measurements.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use baton_lab::driver::Lab;
use serde_json::Value;

use crate::harness::stats::LoadSummary;
use crate::suites::pin::{self, Pinning};

/// Command line of `baton-bench`.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "baton-bench", about = "Baton's benchmark suite (issue 7)")]
pub struct BenchArgs {
    /// Smallest sizes and short runs (the CI smoke run, under five minutes),
    /// failing if any load run against a Baton box saw an error.
    #[arg(long)]
    pub quick: bool,
    /// Suites to run: concurrency, throughput, checkpoint, failover,
    /// https, ipv6, ftp, rtsp, criterion, backends, or all (repeatable); and vm
    /// (process and VM boxes' failover; not in all: needs scripts/image) and
    /// stall12 (issue 19's goal case, 12 downloads at 4 MB/s; not in all) and
    /// drain and idlekill (5,000 idle keep-alive connections asking across
    /// a drain, 15,000 across a kill; not in all).
    #[arg(long, default_value = "all")]
    pub suite: Vec<String>,
    /// Suites drain and idlekill: each round's requests go out evenly over this many
    /// milliseconds (0: all at once, a burst the box's receive ring must
    /// hold).
    #[arg(long, default_value_t = 500)]
    pub drain_spread_ms: u64,
    /// Suites drain and idlekill: connections held instead of 5,000 and
    /// 15,000; above 19,000 they come from one client process and address
    /// per 19,000 (100000 and 300000: issue 19's mass takeover), and every
    /// box gets room for them (segment recreated).
    #[arg(long)]
    pub keepalive_connections: Option<usize>,
    /// Results folder (default results/<unix time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Lab prefix; must start with `btb`.
    #[arg(long, default_value = "btb")]
    pub prefix: String,
    /// The `baton` binary running the lab commands.
    #[arg(long, default_value = "target/release/baton")]
    pub baton: PathBuf,
    /// The load client (default: baton-load next to this binary).
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// Concurrency sizes (default 10000,100000,300000; quick: 1000).
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<u64>,
    /// Failover sizes (default 1,100,10000; quick: 1,100).
    #[arg(long, value_delimiter = ',')]
    pub failover: Vec<u64>,
    /// Failover: skip the nginx + IP move reference runs (while iterating
    /// on Baton's own takeover).
    #[arg(long)]
    pub no_reference: bool,
    /// Failover: only the plain HTTP over IPv4 rows (no HTTPS, no IPv6),
    /// while iterating on the takeover's pace.
    #[arg(long)]
    pub plain_only: bool,
    /// Rounds of the alternated throughput and checkpoint runs.
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Suite backends: DPDK too (`net_af_packet` on the lab's veth). The
    /// boxes' binary must be built with `--features dpdk` (`scripts/bench
    /// --dpdk` builds it so); one built without refuses to start.
    #[arg(long)]
    pub dpdk: bool,
    /// Suites that size the boxes (concurrency, failover, idlekill above
    /// 19,000): every box's `checkpoint.slot_bytes` too (320..=768; below
    /// 768 the boxes serve HTTP alone).
    #[arg(long, value_parser = clap::value_parser!(u32).range(320..=768))]
    pub slot_bytes: Option<u32>,
    /// Concurrency: each connection asks once, then rests until the hold
    /// ends (idle keep-alive, which a box parks after
    /// `checkpoint.park_idle_after_ms`); the table adds the memory a
    /// connection once settled.
    #[arg(long)]
    pub idle_connections: bool,
}

/// Front-LAN kernel addresses the harness adds for nginx, inside the lab's
/// 198.18.0.0/24 and away from the boxes (.11-.19) and clients (.100+).
pub(crate) const NGINX_PLAIN: &str = "198.18.0.62";
pub(crate) const NGINX_PROXY: &str = "198.18.0.63";
pub(crate) const VIP: &str = "198.18.0.70";
/// Connections per client source address: well under the 64k ports of
/// ip_local_port_range 1024-65535.
pub(crate) const PER_SOURCE: u64 = 25_000;
/// Connections per load process and per nginx worker: this machine caps
/// open files at 20000 per process.
pub(crate) const PER_PROCESS: u64 = 19_000;

pub(crate) struct Bench {
    pub(crate) args: BenchArgs,
    pub(crate) lab: Lab,
    pub(crate) out: PathBuf,
    pub(crate) load: PathBuf,
    pub(crate) results: serde_json::Map<String, Value>,
    pub(crate) md: String,
    pub(crate) runs: u32,
    /// The mark file of the failover run in progress.
    pub(crate) kill_mark: Option<PathBuf>,
    /// Load runs against a Baton box that saw errors, one line each: the
    /// smoke run (`--quick`) fails on any.
    pub(crate) errors: Vec<String>,
    /// While a request-rate suite runs: where servers and the client are
    /// pinned (`crate::suites::pin`).
    pub(crate) pinning: Option<Pinning>,
}

/// Whether `url` names a Baton box (198.18.0.11-.19), not nginx or the
/// origin, whose errors are measured, not failures.
pub(crate) fn is_box_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or_default();
    // A box's service address: 198.18.0.(11..=19) or 2001:2:0:18::(11..=19)
    // (LAB.md), with or without a port.
    let octet = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']')
            .next()
            .and_then(|a| a.strip_prefix("2001:2:0:18::"))
            .and_then(|o| o.parse::<u8>().ok())
    } else {
        authority
            .split(':')
            .next()
            .and_then(|h| h.strip_prefix("198.18.0."))
            .and_then(|o| o.parse::<u8>().ok())
    };
    octet.is_some_and(|o| (11..=19).contains(&o))
}

/// The "Errors" section of results.md, and the run's verdict: a smoke run
/// (`quick`) fails when any load run against a Baton box saw errors.
pub(crate) fn errors_verdict(quick: bool, errors: &[String]) -> (String, Result<()>) {
    if errors.is_empty() {
        return (
            "\n## Errors\n\nNo load run against a Baton box saw an error.\n".into(),
            Ok(()),
        );
    }
    let md = format!(
        "\n## Errors\n\nLoad runs against a Baton box that saw errors:\n\n{}\n",
        errors
            .iter()
            .map(|e| format!("- {e}\n"))
            .collect::<String>()
    );
    let verdict = if quick {
        Err(anyhow::anyhow!(
            "the smoke run saw errors against Baton:\n{}",
            errors.join("\n")
        ))
    } else {
        Ok(())
    };
    (md, verdict)
}

/// Wall-clock time, µs since the epoch (the clock of kernel receive
/// timestamps).
pub(crate) fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub(crate) fn progress(msg: impl AsRef<str>) {
    eprintln!("[baton-bench {}] {}", chrono_now(), msg.as_ref());
}

pub(crate) fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

impl Bench {
    /// Records `errors` of a run `tag` against `url` if it names a box.
    pub(crate) fn note_errors(
        &mut self,
        tag: &str,
        url: &str,
        errors: u64,
        kinds: &std::collections::BTreeMap<String, u64>,
    ) {
        if errors > 0 && is_box_url(url) {
            let kinds: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
            self.errors.push(format!(
                "{tag} ({url}): {errors} errors [{}]",
                kinds.join(", ")
            ));
        }
    }

    pub(crate) fn run_suites(&mut self, wants: &dyn Fn(&str) -> bool) -> Result<()> {
        if wants("throughput") {
            self.throughput()?;
        }
        if wants("checkpoint") {
            self.checkpoint()?;
        }
        if wants("failover") {
            self.failover()?;
        }
        if wants("stall12") {
            self.stall12()?;
        }
        if wants("drain") {
            self.drain_suite()?;
        }
        if wants("idlekill") {
            self.idle_kill_suite()?;
        }
        if wants("https") {
            self.https()?;
        }
        if wants("ipv6") {
            self.ipv6()?;
        }
        if wants("ftp") {
            self.ftp()?;
        }
        if wants("rtsp") {
            self.rtsp()?;
        }
        // Last: the large runs leave the most state behind (TIME_WAIT, flows).
        if wants("concurrency") {
            self.concurrency()?;
        }
        Ok(())
    }

    /// Copies the boxes' and nginx's logs into raw/ before `lab down`
    /// deletes the run state: resets and stalls are explained there.
    pub(crate) fn keep_logs(&self) {
        let Ok(dir) = std::fs::read_dir(self.lab.state_dir()) else {
            return;
        };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".log") || name.ends_with(".err") {
                let _ = std::fs::copy(e.path(), self.out.join("raw").join(&name));
            }
        }
    }

    /// Limits for many connections, set inside the lab's namespaces only
    /// (net.* sysctls are per network namespace).
    pub(crate) fn namespace_limits(&self) -> Result<()> {
        self.lab
            .sysctl("client", "net.ipv4.ip_local_port_range=1024 65535")?;
        // Not tcp_tw_reuse=1: the client would reuse a port in TIME_WAIT
        // for a new SYN while the box may still hold the old connection,
        // and that SYN goes unanswered (measured: 1 s to 63 s connects).
        for n in ["box2", "box3"] {
            self.lab.sysctl(n, "net.core.somaxconn=65535")?;
            self.lab.sysctl(n, "net.ipv4.tcp_max_syn_backlog=65535")?;
        }
        Ok(())
    }

    pub(crate) fn sources(&self, n: u64) -> String {
        let want = n.div_ceil(PER_SOURCE).max(1) as usize;
        let all = self.lab.client_sources();
        if want > all.len() {
            progress(format!(
                "only {} client addresses for {n} connections",
                all.len()
            ));
        }
        all.into_iter().take(want).collect::<Vec<_>>().join(",")
    }

    /// Runs baton-load in the client namespace; returns its summary.
    pub(crate) fn load(&mut self, tag: &str, url: &str, extra: &[String]) -> Result<LoadSummary> {
        self.runs += 1;
        let json_path = self
            .out
            .join("raw")
            .join(format!("{:03}-{tag}.json", self.runs));
        let connections = extra
            .iter()
            .position(|a| a == "--connections")
            .and_then(|i| extra.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let mut args: Vec<String> = self
            .pinning
            .map(|p| p.client_prefix(connections))
            .unwrap_or_default();
        args.extend([
            self.load.display().to_string(),
            "--url".into(),
            url.into(),
            "--json".into(),
            json_path.display().to_string(),
        ]);
        args.extend(extra.iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self
            .lab
            .exec_cmd("client", &argv)
            .output()
            .context("running baton-load")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary: LoadSummary = std::fs::read_to_string(&json_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .with_context(|| {
                format!(
                    "baton-load wrote no summary ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                )
            })?;
        progress(format!(
            "  {tag}: {}",
            stdout
                .lines()
                .find(|l| l.starts_with("connections"))
                .unwrap_or("")
                .trim()
        ));
        self.note_errors(tag, url, summary.errors, &summary.error_kinds);
        Ok(summary)
    }
}

/// Sums the summaries of parallel load processes: counts add up, the connect
/// phase lasts as long as the slowest, p50 is the mean and the tails the worst.
pub(crate) fn merge_summaries(parts: &[LoadSummary]) -> Option<LoadSummary> {
    let first = parts.first()?;
    let mut m = first.clone();
    for p in &parts[1..] {
        m.connections += p.connections;
        m.max_open += p.max_open;
        m.connected += p.connected;
        m.connect_seconds = m.connect_seconds.max(p.connect_seconds);
        m.requests_ok += p.requests_ok;
        m.errors += p.errors;
        m.cut += p.cut;
        for (k, v) in &p.error_kinds {
            *m.error_kinds.entry(k.clone()).or_default() += v;
        }
        m.seconds = m.seconds.max(p.seconds);
        m.requests_per_s += p.requests_per_s;
        m.bytes += p.bytes;
        m.latency_ms.p50 += p.latency_ms.p50;
        m.latency_ms.p99 = m.latency_ms.p99.max(p.latency_ms.p99);
        m.latency_ms.p999 = m.latency_ms.p999.max(p.latency_ms.p999);
        m.latency_ms.max = m.latency_ms.max.max(p.latency_ms.max);
    }
    m.latency_ms.p50 /= parts.len() as f64;
    m.connects_per_s = m.connected as f64 / m.connect_seconds.max(1e-6);
    Some(m)
}

impl Bench {
    /// A bench over `lab` with nothing measured yet: results and report
    /// empty, no run, no error.
    pub(crate) fn new(args: BenchArgs, lab: Lab, out: &Path, load: &Path) -> Bench {
        Bench {
            args,
            lab,
            out: out.to_path_buf(),
            load: load.to_path_buf(),
            results: serde_json::Map::new(),
            md: String::new(),
            runs: 0,
            kill_mark: None,
            errors: Vec::new(),
            pinning: None,
        }
    }

    /// Pins box1's dataplane workers and the worker processes of the nginx
    /// whose master is `nginx` to the server core, and the load client to
    /// its own, for a request-rate suite; returns the sentence the report
    /// gives (also when nothing could be pinned, and why).
    pub(crate) fn pin_for_rates(&mut self, nginx: Option<u32>) -> String {
        let Some(p) = Pinning::for_machine() else {
            return "Nothing pinned (one core).".into();
        };
        let pinned = self
            .lab
            .box_pid(1)
            .context("box1 has no pid")
            .and_then(|pid| pin::pin_box_workers(pid, Some(p.server)))
            .and_then(|_| match nginx {
                Some(n) => pin::pin_children(n, Some(p.server)).map(|_| ()),
                None => Ok(()),
            });
        match pinned {
            Ok(()) => {
                self.pinning = Some(p);
                format!("Pinned: {}.", p.describe())
            }
            Err(e) => {
                self.unpin(nginx);
                format!("Nothing pinned ({e:#}).")
            }
        }
    }

    /// Undoes [`Self::pin_for_rates`].
    pub(crate) fn unpin(&mut self, nginx: Option<u32>) {
        self.pinning = None;
        if let Some(pid) = self.lab.box_pid(1) {
            let _ = pin::pin_box_workers(pid, None);
        }
        if let Some(n) = nginx {
            let _ = pin::pin_children(n, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smoke_run_fails_on_errors_against_baton_and_a_full_run_reports_them() {
        let (md, verdict) = errors_verdict(true, &[]);
        assert!(verdict.is_ok() && md.contains("No load run"));
        let errs = vec!["failover-baton-1 (http://198.18.0.11/50M.bin): 1 errors [reset 1]".into()];
        let (md, verdict) = errors_verdict(true, &errs);
        assert!(md.contains("failover-baton-1"));
        let e = verdict.expect_err("a quick run with errors must fail");
        assert!(format!("{e}").contains("failover-baton-1"));
        assert!(errors_verdict(false, &errs).1.is_ok());
    }

    #[test]
    fn only_baton_boxes_count_as_failing_targets() {
        assert!(is_box_url("http://198.18.0.11/50M.bin"));
        assert!(is_box_url("http://198.18.0.19:80/x"));
        assert!(!is_box_url("http://198.18.0.62/50M.bin"));
        assert!(!is_box_url("http://198.18.0.70/x"));
        assert!(!is_box_url("http://198.18.0.1/x"));
        assert!(is_box_url("https://198.18.0.11/1K.bin"));
        assert!(is_box_url("http://[2001:2:0:18::11]/50M.bin"));
        assert!(is_box_url("https://[2001:2:0:18::13]:443/x"));
        assert!(!is_box_url("http://[2001:2:0:18::100]/x"));
        assert!(!is_box_url("https://198.18.0.62/1K.bin"));
    }

    #[test]
    fn parallel_load_summaries_add_up_and_keep_the_worst_tail() {
        let mut a = LoadSummary {
            connections: 10,
            max_open: 10,
            connected: 10,
            connect_seconds: 1.0,
            requests_ok: 100,
            requests_per_s: 50.0,
            ..Default::default()
        };
        a.latency_ms = crate::harness::stats::LatencyMs {
            p50: 1.0,
            p99: 5.0,
            p999: 9.0,
            max: 10.0,
        };
        let mut b = a.clone();
        b.connect_seconds = 2.0;
        b.errors = 3;
        b.error_kinds.insert("connect failed".into(), 3);
        b.latency_ms = crate::harness::stats::LatencyMs {
            p50: 3.0,
            p99: 7.0,
            p999: 8.0,
            max: 12.0,
        };
        let m = merge_summaries(&[a, b]).unwrap();
        assert_eq!(m.connected, 20);
        assert_eq!(m.errors, 3);
        assert_eq!(m.error_kinds.get("connect failed"), Some(&3));
        assert!((m.requests_per_s - 100.0).abs() < 1e-9);
        assert!(
            (m.connects_per_s - 10.0).abs() < 1e-9,
            "20 connections over the slowest 2 s"
        );
        assert!((m.latency_ms.p50 - 2.0).abs() < 1e-9);
        assert!((m.latency_ms.p99 - 7.0).abs() < 1e-9);
        assert!(merge_summaries(&[]).is_none());
    }
}
