//! Suite checkpoint: the price of transparency, box1 with checkpoints on
//! and off (its TOML edited and the box restarted between runs).
use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;

use crate::harness::report::{md_rows, Row};
use crate::harness::stats::LoadSummary;
use crate::suites::bench::{progress, Bench};

impl Bench {
    pub(crate) fn checkpoint(&mut self) -> Result<()> {
        progress("suite checkpoint: request rate with checkpoint.enabled true vs false (box1 restarted between)");
        let quick = self.args.quick;
        let rounds = self.args.rounds.unwrap_or(if quick { 1 } else { 2 });
        let secs = if quick { 2 } else { 5 };
        let conns: &[u64] = if quick { &[64] } else { &[1, 64] };
        let mut got: BTreeMap<(bool, u64), Vec<LoadSummary>> = BTreeMap::new();
        let mut mbps: BTreeMap<bool, Vec<f64>> = BTreeMap::new();
        for round in 1..=rounds {
            for enabled in [true, false] {
                self.lab.set_box_option(
                    1,
                    "checkpoint",
                    "enabled",
                    if enabled { "true" } else { "false" },
                )?;
                self.lab.restart(1)?;
                self.load("ckpt-warm", "http://198.18.0.11/1K.bin", &[])?;
                self.load(
                    "ckpt-warm",
                    "http://198.18.0.11/100M.bin",
                    &["--timeout-secs".into(), "60".into()],
                )?;
                for &c in conns {
                    let s = self.load(
                        &format!("ckpt-{enabled}-c{c}-r{round}"),
                        "http://198.18.0.11/1K.bin",
                        &[
                            "--connections".into(),
                            c.to_string(),
                            "--requests".into(),
                            "0".into(),
                            "--hold-secs".into(),
                            secs.to_string(),
                        ],
                    )?;
                    got.entry((enabled, c)).or_default().push(s);
                }
                let s = self.load(
                    &format!("ckpt-{enabled}-100M-r{round}"),
                    "http://198.18.0.11/100M.bin",
                    &["--requests".into(), if quick { "1" } else { "2" }.into()],
                )?;
                mbps.entry(enabled)
                    .or_default()
                    .push(s.bytes as f64 / s.seconds / 1e6);
            }
        }
        self.lab
            .set_box_option(1, "checkpoint", "enabled", "true")?;
        self.lab.restart(1)?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let mut rows = Vec::new();
        for &c in conns {
            let r = |e: bool| {
                mean(
                    &got.get(&(e, c))
                        .map(|v| v.iter().map(|s| s.requests_per_s).collect::<Vec<_>>())
                        .unwrap_or_default(),
                )
            };
            let p = |e: bool| {
                mean(
                    &got.get(&(e, c))
                        .map(|v| v.iter().map(|s| s.latency_ms.p99).collect::<Vec<_>>())
                        .unwrap_or_default(),
                )
            };
            let (on, off) = (r(true), r(false));
            rows.push(
                Row::new()
                    .text(format!("1K req/s, {c} conn"))
                    .value("connections", c)
                    .num("rps_on", on, 0)
                    .num("rps_off", off, 0)
                    .num("on_over_off", on / off.max(1e-9), 3)
                    .value("p99_ms_on", p(true))
                    .value("p99_ms_off", p(false))
                    .text(format!("{:.2} / {:.2}", p(true), p(false))),
            );
        }
        let (on, off) = (
            mean(mbps.get(&true).map(Vec::as_slice).unwrap_or(&[])),
            mean(mbps.get(&false).map(Vec::as_slice).unwrap_or(&[])),
        );
        let request_rate: Vec<_> = rows.iter().map(Row::json).collect();
        let transfer = Row::new()
            .text("100M MB/s, 1 conn")
            .num("on", on, 1)
            .num("off", off, 1)
            .num("on_over_off", on / off.max(1e-9), 3)
            .text("-");
        self.results.insert("checkpoint".into(), json!({"rounds": rounds, "request_rate": request_rate, "mb_per_s_100M": transfer.json()}));
        rows.push(transfer);
        self.md.push_str(&format!("## Checkpoint cost\n\nbox1 with `[checkpoint] enabled = true` vs `false` (its TOML edited, box restarted), {rounds} alternated round(s), {secs} s per request-rate run. The ratio on/off is the price of transparency.\n\n"));
        self.md.push_str(&md_rows(
            &[
                "run",
                "checkpoint on",
                "checkpoint off",
                "on/off",
                "p99 ms on/off",
            ],
            &rows,
        ));
        self.md.push('\n');
        Ok(())
    }
}
