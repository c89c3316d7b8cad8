//! The placement suite's rejoin run (issue 20): how long a box that comes
//! back takes to receive its share of the cluster's connections from the
//! balancers (`[balance]`). Three boxes with the balancer on; box 3 killed;
//! downloads held on boxes 1 and 2; box 3 started again; the time from its
//! being ready to its holding the mean of the three boxes' connections,
//! and what the balancers say they moved. It knows the lab only through
//! `baton_lab::driver`.
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use baton_lab::driver::{Lab, LabOptions};
use serde_json::{json, Value};

use crate::suites::bench::{progress, BenchArgs};

/// Downloads held on each of boxes 1 and 2.
const PER_BOX: u64 = 15;
/// The balancer's threshold (`lab up --balance-threshold`).
pub(crate) const THRESHOLD: &str = "4";
/// Each download's rate: 1M.bin lasts 20 s, past the rejoin.
const RATE: &str = "50000";

/// One rejoin run: returns its results.md row and JSON.
pub(crate) fn rejoin(args: &BenchArgs, load: &Path, out: &Path) -> Result<(Vec<String>, Value)> {
    progress("  rejoin: lab up with the balancer on");
    let mut lab = Lab::up(&LabOptions {
        extra: ["--balance-threshold", THRESHOLD, "--capacity", "64"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..LabOptions::new(&args.baton, &args.prefix, 3)
    })?;
    let r = measure(&lab, args, load, out);
    lab.down();
    r
}

fn measure(lab: &Lab, args: &BenchArgs, load: &Path, out: &Path) -> Result<(Vec<String>, Value)> {
    lab.kill(3)?;
    let sha = lab.listed_sha256("1M.bin")?;
    let mut clients = Vec::new();
    for ip in ["198.18.0.11", "198.18.0.12"] {
        let json_path = out.join("raw").join(format!("rejoin-{ip}.json"));
        let argv = [
            load.display().to_string(),
            "--url".into(),
            format!("http://{ip}/1M.bin"),
            "--connections".into(),
            PER_BOX.to_string(),
            "--rate".into(),
            RATE.into(),
            "--rcvbuf".into(),
            "65536".into(),
            "--timeout-secs".into(),
            "120".into(),
            "--sha256".into(),
            sha.clone(),
            "--json".into(),
            json_path.display().to_string(),
        ];
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        clients.push((lab.spawn("client", &argv)?, json_path));
    }
    let connections = |n: u32| box_connections(lab, args, n);
    let held = wait(Duration::from_secs(20), || {
        connections(1) >= PER_BOX && connections(2) >= PER_BOX
    });
    if !held {
        bail!(
            "boxes 1 and 2 never held {PER_BOX} downloads each ({} and {})",
            connections(1),
            connections(2)
        );
    }
    lab.start(3)?;
    let ready = Instant::now();
    let mut reached = None;
    let mut share = 0;
    while ready.elapsed() < Duration::from_secs(10) {
        let now: Vec<u64> = (1..=3).map(connections).collect();
        share = now.iter().sum::<u64>() / 3;
        if now[2] >= share && share > 0 {
            reached = Some(ready.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let moved: Vec<u64> = (1..=2)
        .map(|n| {
            metric(
                lab,
                args,
                n,
                "baton_balance_moved_total{reason=\"rejoin\"} ",
            )
        })
        .collect();
    let mut errors = 0;
    for (mut child, json_path) in clients {
        let _ = child.wait();
        let summary: Value = std::fs::read_to_string(&json_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .with_context(|| format!("baton-load wrote no summary at {}", json_path.display()))?;
        errors += summary["errors"].as_u64().unwrap_or(0);
    }
    let reached_ms = reached.map(|d| d.as_millis() as u64);
    progress(format!(
        "  rejoin: box3 held its share ({share}) {} after it was ready; moved {moved:?}, errors {errors}",
        reached_ms.map_or("never".into(), |ms| format!("{ms} ms"))
    ));
    let row = vec![
        format!("{}", 2 * PER_BOX),
        format!("{share}"),
        reached_ms.map_or("not within 10 s".into(), |ms| ms.to_string()),
        format!("{} + {}", moved[0], moved[1]),
        format!("{errors}"),
    ];
    let run = json!({"downloads": 2 * PER_BOX, "share": share, "ready_to_share_ms": reached_ms,
        "moved_rejoin": moved, "errors": errors});
    Ok((row, run))
}

/// Box `n`'s `baton_connections` (0 when unreadable).
fn box_connections(lab: &Lab, args: &BenchArgs, n: u32) -> u64 {
    metric(lab, args, n, "baton_connections ")
}

/// The value of the sample starting with `prefix` in box `n`'s metrics.
pub(crate) fn metric(lab: &Lab, args: &BenchArgs, n: u32, prefix: &str) -> u64 {
    let config = lab.file(&format!("box{n}.toml")).display().to_string();
    let baton = args.baton.display().to_string();
    lab.exec(
        &format!("box{n}"),
        &[&baton, "admin", "--config", &config, "metrics"],
    )
    .unwrap_or_default()
    .lines()
    .find_map(|l| l.strip_prefix(prefix))
    .and_then(|v| v.trim().parse::<f64>().ok())
    .map_or(0, |v| v as u64)
}

fn wait(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    baton_lab::driver::wait_for(limit, &mut cond)
}
