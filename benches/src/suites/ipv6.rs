//! Suite ipv6 (issue 15): one box's IPv6 service address next to its IPv4
//! one, alternated in rounds: 1K keep-alive requests per second and 100M
//! throughput on one connection. The lab's front LAN is dual-stack (box 1
//! serves 198.18.0.11 and 2001:2:0:18::11); the goal is IPv6 at
//! 0.95× IPv4 or better.
use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;

use crate::harness::report::{md_rows, Row};
use crate::suites::bench::{progress, Bench};

impl Bench {
    pub(crate) fn ipv6(&mut self) -> Result<()> {
        progress("suite ipv6: 1K req/s and 100M throughput, box1 over IPv6 vs IPv4");
        let quick = self.args.quick;
        let targets = [("ipv4", "198.18.0.11"), ("ipv6", "[2001:2:0:18::11]")];
        for (name, host) in targets {
            for obj in ["1K.bin", "100M.bin"] {
                self.load(
                    &format!("warm-{name}-{obj}"),
                    &format!("http://{host}/{obj}"),
                    &["--timeout-secs".into(), "60".into()],
                )?;
            }
        }
        let conns: &[u64] = if quick { &[1, 64] } else { &[1, 64, 256] };
        let rounds = self.args.rounds.unwrap_or(if quick { 1 } else { 2 });
        let secs = if quick { 2 } else { 5 };
        let mut rps: BTreeMap<(&str, u64), Vec<f64>> = BTreeMap::new();
        let mut mbps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
        for round in 1..=rounds {
            for &c in conns {
                for (name, host) in targets {
                    let s = self.load(
                        &format!("{name}-rps-c{c}-r{round}"),
                        &format!("http://{host}/1K.bin"),
                        &[
                            "--connections".into(),
                            c.to_string(),
                            "--requests".into(),
                            "0".into(),
                            "--hold-secs".into(),
                            secs.to_string(),
                        ],
                    )?;
                    *errors.entry(name).or_default() += s.errors;
                    rps.entry((name, c)).or_default().push(s.requests_per_s);
                }
            }
            for (name, host) in targets {
                let reqs = if quick { "1" } else { "3" };
                let s = self.load(
                    &format!("{name}-mbps-r{round}"),
                    &format!("http://{host}/100M.bin"),
                    &[
                        "--requests".into(),
                        reqs.into(),
                        "--timeout-secs".into(),
                        "120".into(),
                    ],
                )?;
                *errors.entry(name).or_default() += s.errors;
                mbps.entry(name)
                    .or_default()
                    .push(s.bytes as f64 / s.seconds / 1e6);
            }
        }
        let mean =
            |v: Option<&Vec<f64>>| v.map_or(0.0, |v| v.iter().sum::<f64>() / v.len().max(1) as f64);
        let mut rows = Vec::new();
        for &c in conns {
            let (r4, r6) = (mean(rps.get(&("ipv4", c))), mean(rps.get(&("ipv6", c))));
            rows.push(
                Row::new()
                    .value("connections", c)
                    .text(c.to_string())
                    .num("ipv4_rps", r4, 0)
                    .num("ipv6_rps", r6, 0)
                    .num("ipv6_over_ipv4", r6 / r4.max(1e-9), 2),
            );
        }
        let (m4, m6) = (mean(mbps.get("ipv4")), mean(mbps.get("ipv6")));
        let (e4, e6) = (
            errors.get("ipv4").copied().unwrap_or(0),
            errors.get("ipv6").copied().unwrap_or(0),
        );
        self.results.insert(
            "ipv6".into(),
            json!({"rounds": rounds, "seconds_per_run": secs,
                "request_rate": rows.iter().map(Row::json).collect::<Vec<_>>(),
                "mb_per_s_100M": {"ipv4": m4, "ipv6": m6, "ipv6_over_ipv4": m6 / m4.max(1e-9)},
                "errors": {"ipv4": e4, "ipv6": e6}}),
        );
        self.md.push_str(&format!("## IPv6\n\nBaton box1 over IPv6 (2001:2:0:18::11) and over IPv4 (198.18.0.11), the same box and worker, {rounds} alternated round(s), {secs} s per request-rate run; errors IPv4 {e4}, IPv6 {e6}.\n\n"));
        self.md.push_str(&md_rows(
            &["connections", "IPv4 req/s", "IPv6 req/s", "IPv6/IPv4"],
            &rows,
        ));
        self.md.push_str(&format!(
            "\n100M.bin, one connection: IPv4 {m4:.1} MB/s, IPv6 {m6:.1} MB/s (IPv6/IPv4 {:.2}).\n\n",
            m6 / m4.max(1e-9)
        ));
        Ok(())
    }
}
