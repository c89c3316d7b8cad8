//! The benchmark suites of `baton-bench`, one module each: [`concurrency`],
//! [`throughput`], [`checkpoint`], [`failover`], [`https`], [`ipv6`], [`ftp`], [`rtsp`], [`criterion`], [`keepalive`], [`stall`],
//! [`backends`] (which brings up a lab of its own per backend), [`placement`]
//! (a lab per takeover assignment policy, not in `all`) and [`vm`]
//! (a lab of process boxes, then one of VM boxes; not in `all`: it needs
//! the appliance image); [`bench`]
//! holds what they share, [`nginx`] the reference server. [`run`] brings the
//! lab up (prefix `btb…`, always taken down again), runs the chosen suites
//! and writes `results.json`, `results.md`, PNG plots and the raw
//! `baton-load` output. The suites know the lab only through
//! `baton_lab::driver`.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use baton_lab::driver::{Lab, LabOptions};
use serde_json::{json, Value};

pub mod backends;
pub mod bench;
pub mod checkpoint;
pub mod concurrency;
pub mod criterion;
pub mod failover;
pub mod ftp;
pub mod https;
pub mod ipv6;
pub mod keepalive;
pub mod nginx;
pub mod pin;
pub mod placement;
pub(crate) mod rejoin;
pub mod rtsp;
pub mod stall;
pub mod throughput;
pub mod vm;

pub use bench::BenchArgs;
use bench::{progress, Bench};
use criterion::criterion;

/// The suites `--suite all` runs: every one.
const IN_ALL: [&str; 10] = [
    "concurrency",
    "throughput",
    "checkpoint",
    "failover",
    "https",
    "ipv6",
    "ftp",
    "rtsp",
    "criterion",
    "backends",
];

/// Runs the suites `args` asks for and writes the results folder.
pub fn run(args: BenchArgs) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("baton-bench needs root: the lab creates network namespaces");
    }
    if !args.prefix.starts_with("btb") {
        bail!("--prefix must start with btb (got {})", args.prefix);
    }
    let load = match &args.load {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("baton-load"),
    };
    if !load.exists() {
        bail!(
            "{} not found: build it with cargo build --release -p baton-benches",
            load.display()
        );
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from(format!("results/{secs}"))
    });
    std::fs::create_dir_all(out.join("raw"))
        .with_context(|| format!("creating {}", out.display()))?;
    let all = args.suite.iter().any(|s| s == "all");
    let chosen = args.suite.clone();
    let wants =
        move |name: &str| (all && IN_ALL.contains(&name)) || chosen.iter().any(|s| s == name);
    for s in &args.suite {
        if ![
            "all",
            "concurrency",
            "throughput",
            "checkpoint",
            "failover",
            "https",
            "ipv6",
            "ftp",
            "rtsp",
            "criterion",
            "backends",
            "placement",
            "vm",
            "stall12",
            "drain",
            "idlekill",
        ]
        .contains(&s.as_str())
        {
            bail!("unknown suite {s}");
        }
    }

    let mut md = String::from("# Baton benchmark results\n\n");
    md.push_str(&machine_md(&args));
    let mut results = serde_json::Map::new();
    results.insert("machine".into(), machine_json());
    results.insert(
        "command".into(),
        json!(std::env::args().collect::<Vec<_>>().join(" ")),
    );

    // Criterion first: it needs no lab and cargo must not compete with a run.
    if wants("criterion") {
        let (v, m) = criterion(args.quick, &out)?;
        results.insert("criterion".into(), v);
        md.push_str(&m);
    }
    let lab_suites = [
        "concurrency",
        "throughput",
        "checkpoint",
        "failover",
        "https",
        "ipv6",
        "ftp",
        "rtsp",
        "stall12",
        "drain",
        "idlekill",
    ]
    .iter()
    .any(|s| wants(s));
    let backends_args = args.clone();
    let mut pending: Result<()> = Ok(());
    if lab_suites {
        wait_for_other_labs(&args.prefix);
        let client_addrs = if args.quick { 4 } else { 60 };
        progress(format!(
            "lab up: prefix {}, 3 boxes, {client_addrs} extra client addresses",
            args.prefix
        ));
        // The https suite, and failover's HTTPS rows, need certificates
        // and boxes serving 443.
        let extra = if wants("https") || wants("failover") {
            vec!["--tls".to_string()]
        } else {
            Vec::new()
        };
        let lab = Lab::up(&LabOptions {
            client_addrs,
            extra,
            ..LabOptions::new(&args.baton, &args.prefix, 3)
        })?;
        let mut bench = Bench::new(args, lab, &out, &load);
        bench.results = results;
        bench.md = md;
        bench.namespace_limits()?;
        let outcome = bench.run_suites(&wants);
        bench.stop_nginx_all();
        bench.keep_logs();
        bench.lab.down();
        if let Err(e) = &outcome {
            bench
                .md
                .push_str(&format!("\n**The run stopped early:** {e:#}\n"));
            bench
                .results
                .insert("aborted".into(), json!(format!("{e:#}")));
        }
        let (errors_md, verdict) = bench::errors_verdict(bench.args.quick, &bench.errors);
        bench.md.push_str(&errors_md);
        bench
            .results
            .insert("errors_against_baton".into(), json!(bench.errors));
        results = std::mem::take(&mut bench.results);
        md = std::mem::take(&mut bench.md);
        pending = outcome.and(verdict);
    }
    // After the shared lab is down: this suite brings up one of its own
    // per backend.
    if wants("backends") && pending.is_ok() {
        wait_for_other_labs(&backends_args.prefix);
        match backends::backends(&backends_args, &load, &out) {
            Ok((v, m, errors)) => {
                results.insert("backends".into(), v);
                md.push_str(&m);
                let (errors_md, verdict) = bench::errors_verdict(backends_args.quick, &errors);
                if !errors.is_empty() {
                    md.push_str(&errors_md);
                }
                pending = verdict;
            }
            Err(e) => {
                md.push_str(&format!("\n**The backends suite stopped early:** {e:#}\n"));
                results.insert("backends_aborted".into(), json!(format!("{e:#}")));
                pending = Err(e);
            }
        }
    }
    // Its own labs too, one per assignment policy.
    if wants("placement") && pending.is_ok() {
        wait_for_other_labs(&backends_args.prefix);
        match placement::placement(&backends_args, &load, &out) {
            Ok((v, m, errors)) => {
                results.insert("placement".into(), v);
                md.push_str(&m);
                let (errors_md, verdict) = bench::errors_verdict(backends_args.quick, &errors);
                if !errors.is_empty() {
                    md.push_str(&errors_md);
                }
                pending = verdict;
            }
            Err(e) => {
                md.push_str(&format!("\n**The placement suite stopped early:** {e:#}\n"));
                results.insert("placement_aborted".into(), json!(format!("{e:#}")));
                pending = Err(e);
            }
        }
    }
    // Its own labs too, one of process boxes and one of VM boxes.
    if wants("vm") && pending.is_ok() {
        wait_for_other_labs(&backends_args.prefix);
        match vm::vm(&backends_args, &load, &out) {
            Ok((v, m, errors)) => {
                results.insert("vm".into(), v);
                md.push_str(&m);
                let (errors_md, verdict) = bench::errors_verdict(backends_args.quick, &errors);
                if !errors.is_empty() {
                    md.push_str(&errors_md);
                }
                pending = verdict;
            }
            Err(e) => {
                md.push_str(&format!("\n**The vm suite stopped early:** {e:#}\n"));
                results.insert("vm_aborted".into(), json!(format!("{e:#}")));
                pending = Err(e);
            }
        }
    }
    write_results(&out, &results, &md)?;
    pending?;
    progress(format!("results in {}", out.display()));
    Ok(())
}

fn write_results(out: &Path, results: &serde_json::Map<String, Value>, md: &str) -> Result<()> {
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(results)? + "\n",
    )?;
    std::fs::write(out.join("results.md"), md)?;
    Ok(())
}

/// Another engineer's lab test is running when bt* namespaces other than
/// ours exist; a heavy measurement then would measure both. Wait (at most
/// ten minutes, or `BATON_BENCH_MAX_WAIT_SECS`) for them to go.
fn wait_for_other_labs(prefix: &str) {
    let max_wait = std::env::var("BATON_BENCH_MAX_WAIT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(600), Duration::from_secs);
    let others = || -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with("bt") && !n.starts_with(&format!("{prefix}-")))
            .map(String::from)
            .collect()
    };
    let start = Instant::now();
    loop {
        let o = others();
        if o.is_empty() {
            return;
        }
        if start.elapsed() >= max_wait {
            progress(format!(
                "other labs still present after {} s ({}); measuring anyway",
                max_wait.as_secs(),
                o.join(" ")
            ));
            return;
        }
        progress(format!("waiting for other labs to finish: {}", o.join(" ")));
        std::thread::sleep(Duration::from_secs(10));
    }
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine_json() -> Value {
    json!({
        "nproc": sh("nproc", &[]),
        "mem": sh("sh", &["-c", "free -g | awk '/Mem:/ {print $2 \" GiB\"}'"]),
        "kernel": sh("uname", &["-r"]),
        "cpu": sh("sh", &["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]),
        "git": sh("git", &["rev-parse", "--short", "HEAD"]),
        "box_exe": std::env::var("BATON_LAB_BOX_EXE").unwrap_or_else(|_| "target/debug/baton (lab default)".into()),
    })
}

fn machine_md(args: &BenchArgs) -> String {
    let m = machine_json();
    format!(
        "Machine: {} cores ({}), {} RAM, kernel {}; commit {}; boxes from {}; heartbeat 30 ms x 3 missed (lab default); one dataplane worker per box; command: `{}`{}\n\n",
        m["nproc"].as_str().unwrap_or("?"),
        m["cpu"].as_str().unwrap_or("?").trim(),
        m["mem"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?"),
        m["git"].as_str().unwrap_or("?"),
        m["box_exe"].as_str().unwrap_or("?"),
        std::env::args().collect::<Vec<_>>().join(" "),
        if args.quick { " (quick: smallest sizes)" } else { "" }
    )
}
