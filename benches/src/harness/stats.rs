//! Reading what `baton-load` wrote (its JSON summary and its receive
//! timeline) and turning a failover timeline into the numbers issue 6 asks
//! for: per-connection stall across the kill, time from kill to first resumed
//! byte, connections never resumed, with hdrhistogram percentiles.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles of a `baton-load` run, milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

/// The JSON summary `baton-load --json` writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadSummary {
    /// Connections asked for.
    pub connections: u64,
    /// Most connections open at once.
    pub max_open: u64,
    /// Connections that completed the handshake.
    #[serde(default)]
    pub connected: u64,
    /// Seconds until every connection was established or had failed.
    #[serde(default)]
    pub connect_seconds: f64,
    /// Established connections per second during that time.
    #[serde(default)]
    pub connects_per_s: f64,
    /// Responses received complete and correct.
    pub requests_ok: u64,
    /// Failed requests or connections.
    pub errors: u64,
    /// Connections still busy when `--hold-secs` ended the run (not errors).
    #[serde(default)]
    pub cut: u64,
    /// Failures by kind.
    #[serde(default)]
    pub error_kinds: std::collections::BTreeMap<String, u64>,
    /// Length of the run.
    pub seconds: f64,
    /// Complete responses per second.
    pub requests_per_s: f64,
    /// Body bytes received.
    pub bytes: u64,
    /// Request latency.
    pub latency_ms: LatencyMs,
}

/// The receive timeline `baton-load --timeline` writes.
#[derive(Debug, Clone, Deserialize)]
pub struct Timeline {
    /// Wall-clock start of the run, ms since the epoch.
    pub started_unix_ms: u64,
    /// When the mark file appeared (the kill), ms since the start; -1 = never.
    pub mark_ms: f64,
    /// Width of a goodput bucket.
    pub bucket_ms: u64,
    /// Bytes received per bucket.
    pub goodput_bytes: Vec<u64>,
    /// Per connection: bytes, first byte ms, longest gap ms, its end ms,
    /// longest gap ending after the mark ms, its end ms (-1 = none),
    /// longest gap before the mark ms, time since the last byte when the run
    /// ended ms (0 for connections that had closed), failed (0/1), and in
    /// newer files: when the kernel received the first data after the kill
    /// ms (-1 = never), the gap between reads that ended with that data ms.
    pub connections: Vec<Vec<f64>>,
}

/// Failover numbers of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailoverStats {
    /// Connections in the timeline.
    pub connections: u64,
    /// Connections that received bytes before the kill.
    pub active_at_kill: u64,
    /// Active connections whose data did not flow again after the kill:
    /// no byte after it, or silent for the last second of the run (a stall
    /// still open at the end, longer than twice the baseline gap).
    pub not_resumed: u64,
    /// Active connections that failed (reset or closed early).
    pub failed: u64,
    /// Stall across the kill, ms: the gap between the application's reads
    /// that ended with the first data received after the kill (older
    /// timelines: the longest gap ending after the kill).
    pub stall_ms: LatencyMs,
    /// Longest gap before the kill, ms: the noise floor of the stall.
    pub baseline_gap_ms: LatencyMs,
    /// Kill to the first data the client's kernel received after it, ms
    /// (older timelines: to the end of the longest gap after the kill).
    pub resume_ms: LatencyMs,
    /// When the last connection resumed, ms after the kill.
    pub all_resumed_ms: f64,
}

fn percentiles(values: &[f64]) -> LatencyMs {
    // Microsecond resolution, up to 1000 s.
    let Ok(mut h) = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3) else {
        return LatencyMs::default();
    };
    for v in values {
        let _ = h.record(((v * 1000.0).round() as u64).max(1));
    }
    if h.is_empty() {
        return LatencyMs::default();
    }
    let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
    LatencyMs {
        p50: q(0.5),
        p99: q(0.99),
        p999: q(0.999),
        max: h.max() as f64 / 1000.0,
    }
}

impl Timeline {
    /// Parses the file `baton-load --timeline` wrote.
    pub fn parse(text: &str) -> Result<Timeline, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Goodput series: (seconds since the kill, MB/s) per bucket.
    pub fn goodput_mbps(&self) -> Vec<(f64, f64)> {
        let mark = if self.mark_ms >= 0.0 {
            self.mark_ms
        } else {
            0.0
        };
        let secs = self.bucket_ms as f64 / 1000.0;
        self.goodput_bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                (
                    (i as f64 * self.bucket_ms as f64 - mark) / 1000.0,
                    *b as f64 / secs / 1e6,
                )
            })
            .collect()
    }

    /// The failover numbers; None when the run had no mark.
    pub fn failover(&self) -> Option<FailoverStats> {
        if self.mark_ms < 0.0 {
            return None;
        }
        let mark = self.mark_ms;
        let mut stalls = Vec::new();
        let mut resumes = Vec::new();
        let mut baseline = Vec::new();
        let mut active = 0u64;
        let mut not_resumed = 0u64;
        let mut failed = 0u64;
        for row in &self.connections {
            let field = |i: usize| row.get(i).copied().unwrap_or(-1.0);
            let first = field(1);
            if first < 0.0 || first > mark {
                continue;
            }
            active += 1;
            baseline.push(field(6).max(0.0));
            if field(8) > 0.0 {
                failed += 1;
                continue;
            }
            if row.len() >= 11 {
                // Kernel receive timestamps: resumed when the first data
                // received after the kill arrived; the stall is the gap the
                // application saw between its reads across the takeover
                // (buffered data read after the kill shortens it, as it
                // would for any client).
                let resumed = field(9);
                if resumed < 0.0 {
                    not_resumed += 1;
                    continue;
                }
                stalls.push(field(10).max(0.0));
                resumes.push((resumed - mark).max(0.0));
                continue;
            }
            let gap_end = field(5);
            let trailing = field(7).max(0.0);
            if gap_end < 0.0 || (trailing > 1000.0 && trailing > 2.0 * field(6)) {
                not_resumed += 1;
                continue;
            }
            stalls.push(field(4));
            resumes.push((gap_end - mark).max(0.0));
        }
        let all_resumed_ms = resumes.iter().copied().fold(0.0, f64::max);
        Some(FailoverStats {
            connections: self.connections.len() as u64,
            active_at_kill: active,
            not_resumed,
            failed,
            stall_ms: percentiles(&stalls),
            baseline_gap_ms: percentiles(&baseline),
            resume_ms: percentiles(&resumes),
            all_resumed_ms,
        })
    }
}

/// Counters of /proc/net/netstat or /proc/net/snmp (pairs of header and
/// value lines), as `Prefix:Name` → value.
pub fn parse_proc_net(text: &str) -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let mut n = names.split_whitespace();
        let mut v = values.split_whitespace();
        let (Some(prefix), Some(_)) = (n.next(), v.next()) else {
            continue;
        };
        for (name, value) in n.zip(v) {
            if let Ok(value) = value.parse() {
                out.insert(format!("{prefix}{name}"), value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(rows: &str, mark: f64) -> Timeline {
        Timeline::parse(&format!(
            "{{\"started_unix_ms\": 1, \"mark_ms\": {mark}, \"bucket_ms\": 100, \"goodput_bytes\": [1000000, 0, 500000],\n\"connections\": [{rows}]}}"
        ))
        .unwrap()
    }

    #[test]
    fn stall_and_resume_are_measured_from_the_kill() {
        // Connection 1: 150 ms gap ending 120 ms after the kill at 1000 ms.
        // Connection 2: 90 ms gap ending 60 ms after it.
        let tl = timeline(
            "[100, 5, 150, 1120, 150, 1120, 20], [100, 5, 90, 1060, 90, 1060, 30]",
            1000.0,
        );
        let f = tl.failover().unwrap();
        assert_eq!(f.active_at_kill, 2);
        assert_eq!(f.not_resumed, 0);
        assert!((f.stall_ms.max - 150.0).abs() < 0.5, "{f:?}");
        assert!((f.resume_ms.max - 120.0).abs() < 0.5, "{f:?}");
        assert!((f.all_resumed_ms - 120.0).abs() < 1e-9);
        assert!((f.baseline_gap_ms.max - 30.0).abs() < 0.1);
    }

    #[test]
    fn resume_is_the_first_data_the_kernel_received_after_the_kill() {
        // Connection 1 read buffered data 5 ms after the kill at 1000 ms,
        // then nothing for 400 ms (the longest gap after the kill, ending at
        // 1405), but its kernel had the survivor's data at 1180: resumed
        // 180 ms after the kill, and the application's gap across the
        // takeover ended at the read of that data (225 ms after the read of
        // buffered data). Connection 2 never got data after the kill.
        let tl = timeline(
            "[100, 5, 400, 1405, 400, 1405, 300, 0, 0, 1180, 225], [100, 5, 900, 1900, 900, 1900, 300, 0, 0, -1, -1]",
            1000.0,
        );
        let f = tl.failover().unwrap();
        assert_eq!(f.active_at_kill, 2);
        assert_eq!(f.not_resumed, 1, "no data after the kill: not resumed");
        assert!((f.resume_ms.max - 180.0).abs() < 0.5, "{f:?}");
        assert!((f.stall_ms.max - 225.0).abs() < 0.5, "{f:?}");
    }

    #[test]
    fn connection_silent_after_the_kill_is_not_resumed() {
        let tl = timeline(
            "[100, 5, 9000, 10, 0, -1, 3], [0, -1, 0, 0, 0, -1, 0]",
            1000.0,
        );
        let f = tl.failover().unwrap();
        assert_eq!(f.connections, 2);
        assert_eq!(
            f.active_at_kill, 1,
            "a connection that never received is not counted active"
        );
        assert_eq!(f.not_resumed, 1);
    }

    #[test]
    fn run_without_mark_has_no_failover_numbers() {
        assert!(timeline("[1, 1, 1, 1, 0, -1, 0]", -1.0)
            .failover()
            .is_none());
    }

    #[test]
    fn goodput_is_in_megabytes_per_second_around_the_kill() {
        let g = timeline("", 100.0).goodput_mbps();
        assert_eq!(g.len(), 3);
        assert!((g[0].0 + 0.1).abs() < 1e-9);
        assert!((g[0].1 - 10.0).abs() < 1e-9);
        assert!((g[2].1 - 5.0).abs() < 1e-9);
    }

    #[test]
    fn proc_net_counters_are_paired_by_name() {
        let text =
            "TcpExt: SyncookiesSent TCPDSACKOldSent\nTcpExt: 0 17\nIpExt: InOctets\nIpExt: 99\n";
        let c = parse_proc_net(text);
        assert_eq!(c.get("TcpExt:TCPDSACKOldSent"), Some(&17));
        assert_eq!(c.get("IpExt:InOctets"), Some(&99));
    }

    #[test]
    fn load_summary_reads_baton_load_json() {
        let s: LoadSummary = serde_json::from_str(
            "{\"connections\": 2, \"max_open\": 2, \"connected\": 2, \"connect_seconds\": 0.010, \"connects_per_s\": 200.0, \"requests_ok\": 4, \"errors\": 1, \"cut\": 0, \"error_kinds\": {\"connection reset\": 1}, \"seconds\": 1.000, \"requests_per_s\": 4.0, \"bytes\": 4096, \"latency_ms\": {\"p50\": 0.5, \"p99\": 1.0, \"p999\": 1.0, \"max\": 1.0}}",
        )
        .unwrap();
        assert_eq!(s.error_kinds.get("connection reset"), Some(&1));
        assert_eq!(s.requests_ok, 4);
    }
}
