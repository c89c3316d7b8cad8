//! Suite backends: one box on each dataplane backend in turn (AF_PACKET
//! with TX offload, the default; AF_PACKET without it; AF_XDP; with
//! `--dpdk`, DPDK), each in a lab of its own, alternated in rounds: 1 KiB
//! keep-alive request rate and 100 MB throughput side by side, with
//! ratios to AF_PACKET. It knows the lab only through `baton_lab::driver`
//! and measures nothing else.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use baton_lab::driver::{Lab, LabOptions};
use serde_json::{json, Value};

use crate::harness::report::{md_rows, Row};
use crate::suites::bench::{progress, Bench, BenchArgs};

/// The backends compared: a name and its `lab up` arguments. AF_PACKET
/// without offload is the like-for-like baseline of AF_XDP, which sends
/// complete MTU-sized frames only.
pub(crate) const VARIANTS: &[(&str, &[&str])] = &[
    ("afpacket", &["--backend", "afpacket"]),
    (
        "afpacket-no-offload",
        &["--backend", "afpacket", "--no-offload"],
    ),
    ("afxdp", &["--backend", "afxdp"]),
];

/// With `--dpdk`: DPDK's `net_af_packet` on the same veth (the way to run
/// DPDK without a NIC, not a faster path: it copies each frame twice more).
const DPDK: (&str, &[&str]) = ("dpdk", &["--backend", "dpdk"]);

/// The backends this run compares.
fn variants(args: &BenchArgs) -> Vec<(&'static str, &'static [&'static str])> {
    let mut v = VARIANTS.to_vec();
    if args.dpdk {
        v.push(DPDK);
    }
    v
}

/// Connection counts of the request-rate runs.
const CONNS: [u64; 2] = [1, 64];

/// What the suite measured, per backend.
#[derive(Default)]
struct Measured {
    rps: BTreeMap<(String, u64), Vec<f64>>,
    mbps: BTreeMap<String, Vec<f64>>,
    errors: BTreeMap<String, u64>,
}

/// Runs the suite; returns its JSON, its results.md section and the load
/// runs against a box that saw errors.
pub(crate) fn backends(
    args: &BenchArgs,
    load: &Path,
    out: &Path,
) -> Result<(Value, String, Vec<String>)> {
    let variants = variants(args);
    progress(format!(
        "suite backends: one box on {}",
        variants
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let quick = args.quick;
    let rounds = args.rounds.unwrap_or(if quick { 1 } else { 2 });
    let secs: u64 = if quick { 2 } else { 5 };
    let mut m = Measured::default();
    let mut errors = Vec::new();
    for round in 1..=rounds {
        for (name, extra) in &variants {
            progress(format!("  backend {name}, round {round}: lab up"));
            let lab = Lab::up(&LabOptions {
                extra: extra.iter().map(|s| s.to_string()).collect(),
                ..LabOptions::new(&args.baton, &args.prefix, 1)
            })?;
            let mut b = Bench::new(args.clone(), lab, out, load);
            let r = measure(&mut b, name, round, secs, quick, &mut m);
            b.lab.down();
            errors.append(&mut b.errors);
            r?;
        }
    }
    Ok(report(&m, &variants, rounds, secs, errors))
}

fn measure(
    b: &mut Bench,
    name: &str,
    round: u32,
    secs: u64,
    quick: bool,
    m: &mut Measured,
) -> Result<()> {
    let url = |obj: &str| format!("http://198.18.0.11/{obj}");
    for obj in ["1K.bin", "100M.bin"] {
        b.load(
            &format!("be-warm-{name}-{obj}-r{round}"),
            &url(obj),
            &["--timeout-secs".into(), "60".into()],
        )?;
    }
    for c in CONNS {
        let s = b.load(
            &format!("be-rps-{name}-c{c}-r{round}"),
            &url("1K.bin"),
            &[
                "--connections".into(),
                c.to_string(),
                "--requests".into(),
                "0".into(),
                "--hold-secs".into(),
                secs.to_string(),
            ],
        )?;
        m.rps
            .entry((name.to_string(), c))
            .or_default()
            .push(s.requests_per_s);
        *m.errors.entry(name.to_string()).or_default() += s.errors;
    }
    let reqs = if quick { 1 } else { 3 };
    let s = b.load(
        &format!("be-mbps-{name}-r{round}"),
        &url("100M.bin"),
        &[
            "--requests".into(),
            reqs.to_string(),
            "--timeout-secs".into(),
            "120".into(),
        ],
    )?;
    m.mbps
        .entry(name.to_string())
        .or_default()
        .push(s.bytes as f64 / s.seconds.max(1e-9) / 1e6);
    *m.errors.entry(name.to_string()).or_default() += s.errors;
    Ok(())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    if v.len() < 2 {
        format!("{lo:.0}")
    } else {
        format!("{lo:.0}–{hi:.0}")
    }
}

fn report(
    m: &Measured,
    variants: &[(&str, &[&str])],
    rounds: u32,
    secs: u64,
    errors: Vec<String>,
) -> (Value, String, Vec<String>) {
    let base_rps = |c: u64| {
        mean(
            m.rps
                .get(&("afpacket".to_string(), c))
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        )
    };
    let base_mbps = mean(m.mbps.get("afpacket").map(Vec::as_slice).unwrap_or(&[]));
    let mut rows = Vec::new();
    for (name, _) in variants {
        let rps = |c: u64| {
            m.rps
                .get(&(name.to_string(), c))
                .cloned()
                .unwrap_or_default()
        };
        let mbps = m.mbps.get(*name).cloned().unwrap_or_default();
        let (r1, r64, mb) = (mean(&rps(1)), mean(&rps(64)), mean(&mbps));
        rows.push(
            Row::new()
                .value("backend", *name)
                .text(name.to_string())
                .num("rps_c1", r1, 0)
                .value("rps_c1_runs", json!(rps(1)))
                .text(spread(&rps(1)))
                .num("rps_c64", r64, 0)
                .value("rps_c64_runs", json!(rps(64)))
                .text(spread(&rps(64)))
                .num("mb_per_s_100M", mb, 1)
                .num("rps_c1_over_afpacket", r1 / base_rps(1).max(1e-9), 2)
                .num("rps_c64_over_afpacket", r64 / base_rps(64).max(1e-9), 2)
                .num("mb_per_s_over_afpacket", mb / base_mbps.max(1e-9), 2)
                .value("errors", m.errors.get(*name).copied().unwrap_or(0))
                .text(m.errors.get(*name).copied().unwrap_or(0).to_string()),
        );
    }
    let json = json!({
        "rounds": rounds,
        "seconds_per_run": secs,
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    let mut md = format!(
        "## Dataplane backends side by side\n\nOne box (one worker, adaptive) in a lab of its own per backend, {rounds} alternated round(s); 1K.bin keep-alive requests back to back for {secs} s (1 and 64 connections; mean, then the range over rounds), 100M.bin downloads on one connection (MB/s); ratios are to AF_PACKET with offload (the default).{}\n\n",
        if variants.iter().any(|(name, _)| *name == DPDK.0) {
            ""
        } else {
            " DPDK is not in this run (`--dpdk`, with boxes built with `--features dpdk`)."
        }
    );
    md.push_str(&md_rows(
        &[
            "backend",
            "1 KiB req/s, 1 conn",
            "(range)",
            "1 KiB req/s, 64 conns",
            "(range)",
            "100 MB MB/s",
            "÷ afpacket, 1 conn",
            "÷ afpacket, 64 conns",
            "÷ afpacket, 100 MB",
            "errors",
        ],
        &rows,
    ));
    md.push('\n');
    (json, md, errors)
}
