//! `baton-bench`: the benchmark suite of issue 7 in one command. It brings a
//! lab up (prefix `btb…`, always taken down again), runs the suites —
//! concurrency, throughput, checkpoint cost, failover under load, criterion —
//! against Baton and against nginx in a box namespace, prints progress, and
//! writes `results.json`, `results.md`, PNG plots and the raw `baton-load`
//! output into a results folder. Needs root (the lab does).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use baton_benches::harness::report::{line_plot, md_table, Series};
use baton_benches::harness::stats::{parse_proc_net, LoadSummary, Timeline};
use baton_lab::driver::{self as lab, rss_kib, with_children, Lab, LabOptions};
use clap::Parser;
use serde_json::{json, Value};

/// Command line of `baton-bench`.
#[derive(Parser, Debug)]
#[command(name = "baton-bench", about = "Baton's benchmark suite (issue 7)")]
struct Args {
    /// Smallest sizes and short runs (the CI smoke run, under five minutes).
    #[arg(long)]
    quick: bool,
    /// Suites to run: concurrency, throughput, checkpoint, failover,
    /// criterion, or all (repeatable).
    #[arg(long, default_value = "all")]
    suite: Vec<String>,
    /// Results folder (default results/<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Lab prefix; must start with `btb`.
    #[arg(long, default_value = "btb")]
    prefix: String,
    /// The `baton` binary running the lab commands.
    #[arg(long, default_value = "target/release/baton")]
    baton: PathBuf,
    /// The load client (default: baton-load next to this binary).
    #[arg(long)]
    load: Option<PathBuf>,
    /// Concurrency sizes (default 10000,100000,300000; quick: 1000).
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<u64>,
    /// Failover sizes (default 1,100,10000; quick: 1,100).
    #[arg(long, value_delimiter = ',')]
    failover: Vec<u64>,
    /// Failover: skip the nginx + IP move reference runs (while iterating
    /// on Baton's own takeover).
    #[arg(long)]
    no_reference: bool,
    /// Rounds of the alternated throughput and checkpoint runs.
    #[arg(long)]
    rounds: Option<u32>,
}

/// Front-LAN kernel addresses the harness adds for nginx, inside the lab's
/// 198.18.0.0/24 and away from the boxes (.11-.19) and clients (.100+).
const NGINX_PLAIN: &str = "198.18.0.62";
const NGINX_PROXY: &str = "198.18.0.63";
const VIP: &str = "198.18.0.70";
/// Connections per client source address: well under the 64k ports of
/// ip_local_port_range 1024-65535.
const PER_SOURCE: u64 = 25_000;
/// Connections per load process and per nginx worker: this machine caps
/// open files at 20000 per process.
const PER_PROCESS: u64 = 19_000;

struct Bench {
    args: Args,
    lab: Lab,
    out: PathBuf,
    load: PathBuf,
    results: serde_json::Map<String, Value>,
    md: String,
    runs: u32,
    /// The mark file of the failover run in progress.
    kill_mark: Option<PathBuf>,
}

/// Wall-clock time, µs since the epoch (the clock of kernel receive
/// timestamps).
fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("[baton-bench {}] {}", chrono_now(), msg.as_ref());
}

fn chrono_now() -> String {
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

fn main() -> Result<()> {
    let args = Args::parse();
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
    let wants = move |name: &str| all || chosen.iter().any(|s| s == name);
    for s in &args.suite {
        if ![
            "all",
            "concurrency",
            "throughput",
            "checkpoint",
            "failover",
            "criterion",
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
    let lab_suites = ["concurrency", "throughput", "checkpoint", "failover"]
        .iter()
        .any(|s| wants(s));
    if lab_suites {
        wait_for_other_labs(&args.prefix);
        let client_addrs = if args.quick { 4 } else { 40 };
        progress(format!(
            "lab up: prefix {}, 3 boxes, {client_addrs} extra client addresses",
            args.prefix
        ));
        let lab = Lab::up(&LabOptions {
            client_addrs,
            ..LabOptions::new(&args.baton, &args.prefix, 3)
        })?;
        let mut bench = Bench {
            args,
            lab,
            out: out.clone(),
            load,
            results,
            md,
            runs: 0,
            kill_mark: None,
        };
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
        results = std::mem::take(&mut bench.results);
        md = std::mem::take(&mut bench.md);
        write_results(&out, &results, &md)?;
        outcome?;
    } else {
        write_results(&out, &results, &md)?;
    }
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

fn machine_md(args: &Args) -> String {
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

impl Bench {
    fn run_suites(&mut self, wants: &dyn Fn(&str) -> bool) -> Result<()> {
        if wants("throughput") {
            self.throughput()?;
        }
        if wants("checkpoint") {
            self.checkpoint()?;
        }
        if wants("failover") {
            self.failover()?;
        }
        // Last: the large runs leave the most state behind (TIME_WAIT, flows).
        if wants("concurrency") {
            self.concurrency()?;
        }
        Ok(())
    }

    /// Copies the boxes' and nginx's logs into raw/ before `lab down`
    /// deletes the run state: resets and stalls are explained there.
    fn keep_logs(&self) {
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
    fn namespace_limits(&self) -> Result<()> {
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

    fn sources(&self, n: u64) -> String {
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
    fn load(&mut self, tag: &str, url: &str, extra: &[String]) -> Result<LoadSummary> {
        self.runs += 1;
        let json_path = self
            .out
            .join("raw")
            .join(format!("{:03}-{tag}.json", self.runs));
        let mut args: Vec<String> = vec![
            self.load.display().to_string(),
            "--url".into(),
            url.into(),
            "--json".into(),
            json_path.display().to_string(),
        ];
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
        Ok(summary)
    }

    // ---------------------------------------------------------------- nginx

    fn nginx_conf_path(&self, node: &str) -> PathBuf {
        self.lab.state_dir().join(format!("nginx-{node}.conf"))
    }

    /// Starts nginx in NODE's namespace: plain on `plain`, caching proxy of
    /// the origin on `proxy` (both kernel addresses it adds to front0).
    fn start_nginx(&self, node: &str, listens: &[(&str, bool)], workers: u32) -> Result<u32> {
        let dir = self.lab.state_dir();
        for (addr, _) in listens {
            if *addr != "*" {
                self.lab.ip(
                    node,
                    &["addr", "add", &format!("{addr}/24"), "dev", "front0"],
                )?;
            }
        }
        let conf = nginx_conf(&dir, node, listens, workers);
        let path = self.nginx_conf_path(node);
        std::fs::write(&path, conf)?;
        std::fs::create_dir_all(dir.join(format!("nginx-{node}-cache")))?;
        self.lab
            .exec(node, &["nginx", "-c", &path.display().to_string()])?;
        let pid_path = dir.join(format!("nginx-{node}.pid"));
        let mut pid = None;
        lab::wait_for(Duration::from_secs(5), || {
            pid = std::fs::read_to_string(&pid_path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            pid.is_some()
        });
        pid.with_context(|| format!("nginx in {node} wrote no pid file"))
    }

    fn stop_nginx(&self, node: &str, listens: &[&str]) {
        let path = self.nginx_conf_path(node);
        if path.exists() {
            let _ = self.lab.exec(
                node,
                &["nginx", "-c", &path.display().to_string(), "-s", "stop"],
            );
            let pid_path = self.lab.state_dir().join(format!("nginx-{node}.pid"));
            lab::wait_for(Duration::from_secs(5), || !pid_path.exists());
            let _ = std::fs::remove_file(&path);
        }
        for addr in listens {
            let _ = self.lab.ip(
                node,
                &["addr", "del", &format!("{addr}/24"), "dev", "front0"],
            );
        }
    }

    fn stop_nginx_all(&self) {
        for node in ["box2", "box3"] {
            self.stop_nginx(node, &[NGINX_PLAIN, NGINX_PROXY, VIP]);
        }
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.lab.ns("box2"),
                "nft",
                "delete",
                "table",
                "inet",
                "btbfail",
            ])
            .output();
    }

    // ----------------------------------------------------------- throughput

    fn throughput(&mut self) -> Result<()> {
        progress(
            "suite throughput: 1K req/s and 100M throughput, Baton vs nginx (plain, caching proxy)",
        );
        let quick = self.args.quick;
        let nginx = self.start_nginx("box2", &[(NGINX_PLAIN, false), (NGINX_PROXY, true)], 1)?;
        let _ = nginx;
        let targets = [
            ("baton", "198.18.0.11"),
            ("nginx", NGINX_PLAIN),
            ("nginx-proxy", NGINX_PROXY),
        ];
        // Warm every cache (Baton's and nginx's proxy_cache) before measuring.
        for (name, ip) in targets {
            for obj in ["1K.bin", "100M.bin"] {
                self.load(
                    &format!("warm-{name}-{obj}"),
                    &format!("http://{ip}/{obj}"),
                    &["--timeout-secs".into(), "60".into()],
                )?;
            }
        }
        let conns: &[u64] = if quick { &[1, 64] } else { &[1, 64, 1024] };
        let rounds = self.args.rounds.unwrap_or(if quick { 1 } else { 2 });
        let secs = if quick { 2 } else { 5 };
        let mut rps: BTreeMap<(String, u64), Vec<LoadSummary>> = BTreeMap::new();
        let mut mbps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for round in 1..=rounds {
            for &c in conns {
                for (name, ip) in targets {
                    let s = self.load(
                        &format!("rps-{name}-c{c}-r{round}"),
                        &format!("http://{ip}/1K.bin"),
                        &[
                            "--connections".into(),
                            c.to_string(),
                            "--requests".into(),
                            "0".into(),
                            "--hold-secs".into(),
                            secs.to_string(),
                            "--connect-burst".into(),
                            "1024".into(),
                        ],
                    )?;
                    rps.entry((name.to_string(), c)).or_default().push(s);
                }
            }
            for (name, ip) in targets {
                let reqs = if quick { 1 } else { 3 };
                let s = self.load(
                    &format!("mbps-{name}-r{round}"),
                    &format!("http://{ip}/100M.bin"),
                    &[
                        "--requests".into(),
                        reqs.to_string(),
                        "--timeout-secs".into(),
                        "120".into(),
                    ],
                )?;
                mbps.entry(name.to_string())
                    .or_default()
                    .push(s.bytes as f64 / s.seconds / 1e6);
            }
        }
        self.stop_nginx("box2", &[NGINX_PLAIN, NGINX_PROXY]);

        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let mut rows = Vec::new();
        let mut jrows = Vec::new();
        let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for &c in conns {
            let get = |name: &str| rps.get(&(name.to_string(), c)).cloned().unwrap_or_default();
            let (b, n, p) = (get("baton"), get("nginx"), get("nginx-proxy"));
            let r =
                |v: &[LoadSummary]| mean(&v.iter().map(|s| s.requests_per_s).collect::<Vec<_>>());
            let p99 =
                |v: &[LoadSummary]| mean(&v.iter().map(|s| s.latency_ms.p99).collect::<Vec<_>>());
            let errs = |v: &[LoadSummary]| v.iter().map(|s| s.errors).sum::<u64>();
            let (rb, rn, rp) = (r(&b), r(&n), r(&p));
            series.entry("baton").or_default().push((c as f64, rb));
            series.entry("nginx").or_default().push((c as f64, rn));
            series
                .entry("nginx-proxy")
                .or_default()
                .push((c as f64, rp));
            rows.push(vec![
                c.to_string(),
                format!("{rb:.0}"),
                format!("{rn:.0}"),
                format!("{rp:.0}"),
                format!("{:.2}", rb / rn.max(1e-9)),
                format!("{:.2}", rb / rp.max(1e-9)),
                format!("{:.2} / {:.2} / {:.2}", p99(&b), p99(&n), p99(&p)),
                format!("{} / {} / {}", errs(&b), errs(&n), errs(&p)),
            ]);
            jrows.push(
                json!({"connections": c, "baton_rps": rb, "nginx_rps": rn, "nginx_proxy_rps": rp,
                "baton_over_nginx": rb / rn.max(1e-9), "baton_over_nginx_proxy": rb / rp.max(1e-9),
                "p99_ms": {"baton": p99(&b), "nginx": p99(&n), "nginx_proxy": p99(&p)},
                "errors": {"baton": errs(&b), "nginx": errs(&n), "nginx_proxy": errs(&p)}}),
            );
        }
        let (mb, mn, mp) = (
            mean(mbps.get("baton").map(Vec::as_slice).unwrap_or(&[])),
            mean(mbps.get("nginx").map(Vec::as_slice).unwrap_or(&[])),
            mean(mbps.get("nginx-proxy").map(Vec::as_slice).unwrap_or(&[])),
        );
        self.results.insert("throughput".into(), json!({"rounds": rounds, "seconds_per_run": secs, "request_rate": jrows,
            "mb_per_s_100M": {"baton": mb, "nginx": mn, "nginx_proxy": mp, "baton_over_nginx": mb / mn.max(1e-9), "baton_over_nginx_proxy": mb / mp.max(1e-9)}}));
        self.md.push_str(&format!("## Throughput and request rate\n\n1K.bin keep-alive requests back to back, {secs} s per run, {rounds} alternated round(s); Baton box1 (198.18.0.11, userspace stack) vs nginx 1 worker in box2's namespace (kernel TCP), plain ({NGINX_PLAIN}) and as proxy_cache of the origin ({NGINX_PROXY}); caches warmed first.\n\n"));
        self.md.push_str(&md_table(
            &[
                "connections",
                "Baton req/s",
                "nginx req/s",
                "nginx proxy req/s",
                "Baton/nginx",
                "Baton/proxy",
                "p99 ms B/n/p",
                "errors B/n/p",
            ],
            &rows,
        ));
        self.md.push_str(&format!("\n100M.bin, one connection: Baton {mb:.1} MB/s, nginx {mn:.1} MB/s, nginx proxy {mp:.1} MB/s (Baton/nginx {:.2}, Baton/proxy {:.2}).\n\n![request rate](rps.png)\n\n", mb / mn.max(1e-9), mb / mp.max(1e-9)));
        let s: Vec<Series> = series
            .into_iter()
            .map(|(k, v)| Series {
                name: k.into(),
                points: v,
            })
            .collect();
        if let Err(e) = line_plot(
            &self.out.join("rps.png"),
            "1K requests/s by connections",
            "connections",
            "requests/s",
            &s,
            None,
        ) {
            progress(format!("plot: {e}"));
        }
        Ok(())
    }

    // ----------------------------------------------------------- checkpoint

    fn checkpoint(&mut self) -> Result<()> {
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
        let mut jrows = Vec::new();
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
            rows.push(vec![
                format!("1K req/s, {c} conn"),
                format!("{on:.0}"),
                format!("{off:.0}"),
                format!("{:.3}", on / off.max(1e-9)),
                format!("{:.2} / {:.2}", p(true), p(false)),
            ]);
            jrows.push(json!({"connections": c, "rps_on": on, "rps_off": off, "on_over_off": on / off.max(1e-9), "p99_ms_on": p(true), "p99_ms_off": p(false)}));
        }
        let (on, off) = (
            mean(mbps.get(&true).map(Vec::as_slice).unwrap_or(&[])),
            mean(mbps.get(&false).map(Vec::as_slice).unwrap_or(&[])),
        );
        rows.push(vec![
            "100M MB/s, 1 conn".into(),
            format!("{on:.1}"),
            format!("{off:.1}"),
            format!("{:.3}", on / off.max(1e-9)),
            "-".into(),
        ]);
        self.results.insert("checkpoint".into(), json!({"rounds": rounds, "request_rate": jrows, "mb_per_s_100M": {"on": on, "off": off, "on_over_off": on / off.max(1e-9)}}));
        self.md.push_str(&format!("## Checkpoint cost\n\nbox1 with `[checkpoint] enabled = true` vs `false` (its TOML edited, box restarted), {rounds} alternated round(s), {secs} s per request-rate run. The ratio on/off is the price of transparency.\n\n"));
        self.md.push_str(&md_table(
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

    // ------------------------------------------------------------- failover

    fn client_netstat(&self) -> BTreeMap<String, i64> {
        let a = self
            .lab
            .exec("client", &["cat", "/proc/net/netstat", "/proc/net/snmp"])
            .unwrap_or_default();
        parse_proc_net(&a)
    }

    /// One failover run: N downloads, `kill` called at the mark; returns the
    /// summary, the timeline and the client's TCP counter deltas.
    fn failover_run(
        &mut self,
        tag: &str,
        url: &str,
        n: u64,
        hold: u64,
        kill: &mut dyn FnMut(&Bench) -> Result<()>,
    ) -> Result<(LoadSummary, Timeline, BTreeMap<String, i64>)> {
        let mark = PathBuf::from(format!("/tmp/{}-mark-{tag}", self.args.prefix));
        let _ = std::fs::remove_file(&mark);
        self.runs += 1;
        let json_path = self
            .out
            .join("raw")
            .join(format!("{:03}-{tag}.json", self.runs));
        let tl_path = self
            .out
            .join("raw")
            .join(format!("{:03}-{tag}-timeline.json", self.runs));
        // Per-connection rate and a small receive buffer so that a stall is
        // not hidden behind buffered data: hidden at most rcvbuf/rate.
        // Larger N share ~50 MB/s: read as fast as the box sends and the
        // box's own scheduling makes gaps of seconds before any kill.
        let (rate, rcvbuf) = match n {
            0..=1 => (5_000_000u64, 65_536u64),
            2..=100 => (200_000, 4096),
            _ => ((50_000_000 / n).max(2000), 2048),
        };
        let mut args: Vec<String> = vec![
            self.load.display().to_string(),
            "--url".into(),
            url.into(),
            "--connections".into(),
            n.to_string(),
            "--hold-secs".into(),
            hold.to_string(),
            "--timeline".into(),
            tl_path.display().to_string(),
            "--mark-file".into(),
            mark.display().to_string(),
            "--json".into(),
            json_path.display().to_string(),
            "--timeout-secs".into(),
            "300".into(),
        ];
        if rate > 0 {
            args.extend([
                "--rate".into(),
                rate.to_string(),
                "--rcvbuf".into(),
                rcvbuf.to_string(),
            ]);
        }
        if n > 1000 {
            args.extend(["--source".into(), self.sources(n)]);
        }
        let before = self.client_netstat();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = self.lab.spawn("client", &argv)?;
        let stdout = child.stdout.take().context("baton-load stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ALL CONNECTED") {
                    let _ = tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        let connected = rx.recv_timeout(Duration::from_secs(120)).is_ok();
        if connected {
            // Let every connection get into its download before the kill.
            std::thread::sleep(Duration::from_secs(if n > 1000 { 3 } else { 2 }));
            self.kill_mark = Some(mark.clone());
            let killed = kill(self);
            self.kill_mark = None;
            killed?;
            if !mark.exists() {
                std::fs::write(&mark, format!("{}\n", unix_us()))?;
            }
        } else {
            progress(format!(
                "  {tag}: connections not established in 120 s; no kill"
            ));
        }
        let status = child.wait()?;
        let lines = reader.join().unwrap_or_default();
        let _ = std::fs::remove_file(&mark);
        let after = self.client_netstat();
        let delta: BTreeMap<String, i64> = after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
            .collect();
        progress(format!(
            "  {tag}: {} ({status})",
            lines
                .iter()
                .find(|l| l.starts_with("connections"))
                .map(String::as_str)
                .unwrap_or("")
        ));
        let summary: LoadSummary = serde_json::from_str(
            &std::fs::read_to_string(&json_path).context("baton-load summary")?,
        )?;
        let tl =
            Timeline::parse(&std::fs::read_to_string(&tl_path).context("baton-load timeline")?)?;
        Ok((summary, tl, delta))
    }

    /// Writes the failover mark: the wall-clock time (Unix µs) at which the
    /// target is certainly dead, i.e. once the kill has returned. The load
    /// client counts data its kernel received after this time as resumed,
    /// so the mark must not come before the death (data the dying box sent
    /// would count); it comes late by at most the kill command's duration.
    fn mark_killed(&self) -> Result<()> {
        if let Some(mark) = &self.kill_mark {
            std::fs::write(mark, format!("{}\n", unix_us()))?;
        }
        Ok(())
    }

    /// SIGKILLs box `n` and marks the moment: the signal is sent here, the
    /// mark is the wall-clock time just before it. `lab kill` returns only
    /// once the process is gone (teardown of its mappings: tens of ms),
    /// so a mark written after it came up to ~70 ms late and the takeover
    /// looked that much faster (a 100-connection run showed "resumed
    /// 24 ms after the kill", less than the 90 ms detection time).
    /// `lab kill` still runs after, for the lab's bookkeeping.
    fn kill_box_marked(&self, n: u32) -> Result<()> {
        let Some(pid) = self.lab.box_pid(n) else {
            self.lab.kill(n)?;
            return self.mark_killed();
        };
        let at = unix_us();
        // SAFETY: kill(2) on the pid of a box this lab started.
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        if rc != 0 {
            anyhow::bail!(
                "kill box{n} (pid {pid}): {}",
                std::io::Error::last_os_error()
            );
        }
        if let Some(mark) = &self.kill_mark {
            std::fs::write(mark, format!("{at}\n"))?;
        }
        // The box is dead already: "not running" is the expected answer
        // once the process is gone.
        let _ = self.lab.kill(n);
        Ok(())
    }

    fn failover(&mut self) -> Result<()> {
        progress("suite failover: N downloads of 50M.bin from box1, box1 SIGKILLed mid-transfer");
        let sizes = if !self.args.failover.is_empty() {
            self.args.failover.clone()
        } else if self.args.quick {
            vec![1, 100]
        } else {
            vec![1, 100, 10_000]
        };
        let mut rows = Vec::new();
        let mut jruns = Vec::new();
        let mut plots = Vec::new();
        for &n in &sizes {
            for b in 1..=3 {
                self.lab.ensure_running(b)?;
            }
            // Heartbeats settle after a restart before the next kill, and a
            // first request proves box1 serves again.
            std::thread::sleep(Duration::from_secs(1));
            // Every box has the object cached, as a popular object would be:
            // otherwise the survivors' 4 origin fetchers are the bottleneck
            // of the takeover (measured: seconds of stall for 100 downloads).
            for ip in ["198.18.0.11", "198.18.0.12", "198.18.0.13"] {
                self.load(
                    "failover-warm",
                    &format!("http://{ip}/50M.bin"),
                    &["--timeout-secs".into(), "60".into()],
                )?;
            }
            let tag = format!("failover-baton-{n}");
            let hold = if self.args.quick { 6 } else { 10 };
            let (s, tl, d) = self.failover_run(
                &tag,
                "http://198.18.0.11/50M.bin",
                n,
                hold,
                &mut |b: &Bench| b.kill_box_marked(1),
            )?;
            let f = tl.failover().unwrap_or_default();
            let dups = d.get("TcpExt:TCPDSACKOldSent").copied().unwrap_or(0)
                + d.get("TcpExt:TCPDSACKOfoSent").copied().unwrap_or(0);
            rows.push(vec![
                format!("Baton, {n}"),
                format!("{}/{}", f.active_at_kill, n),
                format!(
                    "{:.0} / {:.0} / {:.0}",
                    f.stall_ms.p50, f.stall_ms.p99, f.stall_ms.max
                ),
                format!(
                    "{:.0} / {:.0}",
                    f.baseline_gap_ms.p99, f.baseline_gap_ms.max
                ),
                format!(
                    "{:.0} / {:.0} / {:.0}",
                    f.resume_ms.p50, f.resume_ms.p99, f.resume_ms.max
                ),
                format!("{}", f.not_resumed),
                format!("{}", s.errors.max(f.failed)),
                format!("{dups}"),
                format!("{}", d.get("Tcp:RetransSegs").copied().unwrap_or(0)),
            ]);
            jruns.push(json!({"target": "baton", "connections": n, "summary": s, "failover": f, "client_tcp_delta": {
                "dsack_sent_duplicate_segments": dups, "retrans_segs": d.get("Tcp:RetransSegs"), "in_segs": d.get("Tcp:InSegs")}}));
            plots.push((format!("Baton {n}"), tl.goodput_mbps()));
            if let Err(e) = line_plot(
                &self.out.join(format!("failover-baton-{n}.png")),
                &format!("goodput across the kill of box1, {n} connection(s)"),
                "seconds since kill",
                "MB/s",
                &[Series {
                    name: format!("Baton, {n}"),
                    points: tl.goodput_mbps(),
                }],
                Some(0.0),
            ) {
                progress(format!("plot: {e}"));
            }
        }
        for b in 1..=3 {
            self.lab.ensure_running(b)?;
        }

        // Reference: keepalived-style IP failover between two plain nginx.
        let ref_sizes: Vec<u64> = if self.args.no_reference {
            Vec::new()
        } else {
            sizes.iter().copied().filter(|&n| n <= 10_000).collect()
        };
        for &n in &ref_sizes {
            self.start_nginx("box2", &[("*", false)], 1)?;
            self.start_nginx("box3", &[("*", false)], 1)?;
            self.lab.ip(
                "box2",
                &["addr", "add", &format!("{VIP}/24"), "dev", "front0"],
            )?;
            // The previous reference run left the client's ARP entry on box3.
            let _ = self
                .lab
                .exec("box2", &["arping", "-U", "-c", "1", "-I", "front0", VIP]);
            let tag = format!("failover-ipmove-{n}");
            let moved = std::sync::Arc::new(std::sync::Mutex::new(0.0f64));
            let moved_at = moved.clone();
            // Long enough for the client's retransmissions (RTO backoff) to
            // reach the new holder of the address after the 3 s detection.
            let hold = if self.args.quick { 12 } else { 20 };
            let (s, tl, d) = self.failover_run(&tag, &format!("http://{VIP}/50M.bin"), n, hold, &mut |b: &Bench| {
                let t0 = Instant::now();
                // box2 "dies": its front port stops talking (no FIN or RST
                // from its kernel), then its nginx goes.
                let ns = b.lab.ns("box2");
                lab::run(Command::new("ip").args(["netns", "exec", &ns, "nft", "add table inet btbfail { chain o { type filter hook output priority 0; policy accept; oifname \"front0\" drop; }; chain i { type filter hook input priority 0; policy accept; iifname \"front0\" drop; }; }"]))?;
                b.mark_killed()?;
                b.stop_nginx("box2", &[]);
                let _ = b.lab.ip("box2", &["addr", "del", &format!("{VIP}/24"), "dev", "front0"]);
                // keepalived: 3 s until the backup notices, then the address
                // moves and a gratuitous ARP tells the LAN.
                std::thread::sleep(Duration::from_secs(3));
                b.lab.ip("box3", &["addr", "add", &format!("{VIP}/24"), "dev", "front0"])?;
                let _ = b.lab.exec("box3", &["arping", "-U", "-c", "2", "-I", "front0", VIP]);
                if let Ok(mut m) = moved_at.lock() {
                    *m = t0.elapsed().as_secs_f64();
                }
                Ok(())
            })?;
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.lab.ns("box2"),
                    "nft",
                    "delete",
                    "table",
                    "inet",
                    "btbfail",
                ])
                .output();
            self.stop_nginx("box3", &[VIP]);
            self.stop_nginx("box2", &[VIP]);
            let f = tl.failover().unwrap_or_default();
            let dups = d.get("TcpExt:TCPDSACKOldSent").copied().unwrap_or(0)
                + d.get("TcpExt:TCPDSACKOfoSent").copied().unwrap_or(0);
            rows.push(vec![
                format!("nginx + IP move, {n}"),
                format!("{}/{}", f.active_at_kill, n),
                format!(
                    "{:.0} / {:.0} / {:.0}",
                    f.stall_ms.p50, f.stall_ms.p99, f.stall_ms.max
                ),
                format!(
                    "{:.0} / {:.0}",
                    f.baseline_gap_ms.p99, f.baseline_gap_ms.max
                ),
                format!(
                    "{:.0} / {:.0} / {:.0}",
                    f.resume_ms.p50, f.resume_ms.p99, f.resume_ms.max
                ),
                format!("{}", f.not_resumed),
                format!(
                    "{} ({})",
                    s.errors,
                    s.error_kinds
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!("{dups}"),
                format!("{}", d.get("Tcp:RetransSegs").copied().unwrap_or(0)),
            ]);
            jruns.push(json!({"target": "nginx-ip-move", "connections": n, "summary": s, "failover": f, "address_moved_after_s": *moved.lock().map_err(|_| anyhow::anyhow!("lock"))?}));
            plots.push((format!("nginx + IP move {n}"), tl.goodput_mbps()));
        }
        let series: Vec<Series> = plots
            .into_iter()
            .map(|(name, points)| Series { name, points })
            .collect();
        if let Err(e) = line_plot(
            &self.out.join("failover-goodput.png"),
            "client goodput across the kill",
            "seconds since kill",
            "MB/s",
            &series,
            Some(0.0),
        ) {
            progress(format!("plot: {e}"));
        }
        self.results.insert("failover".into(), json!(jruns));
        self.md.push_str("## Failover under load\n\nN connections download 50M.bin from box1 (198.18.0.11); once all are receiving, the harness SIGKILLs box1 and marks that moment; heartbeat 30 ms x 3. The client reads at 5 MB/s (1 connection, SO_RCVBUF 64 KiB), 200 KB/s each (100 connections, SO_RCVBUF 4 KiB) or a shared 50 MB/s (larger N, SO_RCVBUF 2 KiB) so downloads last. Resume = kill to the first data the client's kernel received after it (SO_TIMESTAMPNS); stall = the gap between the application's reads that ended with that data; baseline = longest gap between reads before the kill (the noise floor); not resumed = no data received after the kill. Runs end after the hold time (cut downloads are not failures). Duplicate segments = the client's D-SACKs sent (TCPDSACKOldSent + TCPDSACKOfoSent, each a segment received twice; bytes are not counted by Linux). Reference: two plain nginx, the address moved from box2 to box3 after 3 s of detection (keepalived-style), box2's front port silenced first.\n\n");
        self.md.push_str(&md_table(
            &[
                "target, N",
                "active at kill",
                "stall ms p50/p99/max",
                "baseline gap ms p99/max",
                "kill→resume ms p50/p99/max",
                "not resumed",
                "failures",
                "dup segments",
                "client retrans",
            ],
            &rows,
        ));
        self.md
            .push_str("\n![goodput across the kill](failover-goodput.png)\n\n");
        Ok(())
    }

    // ---------------------------------------------------------- concurrency

    fn concurrency(&mut self) -> Result<()> {
        let sizes = if !self.args.concurrency.is_empty() {
            self.args.concurrency.clone()
        } else if self.args.quick {
            vec![1000]
        } else {
            vec![10_000, 100_000, 300_000]
        };
        progress(format!(
            "suite concurrency: hold {sizes:?} connections, one request every few seconds each"
        ));
        let largest = sizes.iter().copied().max().unwrap_or(0);
        // Every connection gets a checkpoint slot (the lab writes 20000), and
        // the box's connection limits (default 300000) and SYN backlog leave
        // room above N; every box maps the same segment, so all change
        // together.
        let slots = largest.max(20_000);
        progress(format!("  box limits: slots {slots}, max_connections {}, syn_backlog 16384 on every box (segment recreated)", largest + 20_000));
        for b in 1..=3 {
            if self.lab.box_pid(b).is_some() {
                self.lab.kill(b)?;
            }
            self.lab
                .set_box_option(b, "checkpoint", "slots", &slots.to_string())?;
            self.lab.set_box_option(
                b,
                "dataplane",
                "max_connections",
                &(largest + 20_000).max(300_000).to_string(),
            )?;
            self.lab
                .set_box_option(b, "dataplane", "syn_backlog", "16384")?;
            self.lab.set_box_option(
                b,
                "limits",
                "max_connections",
                &(largest + 20_000).max(300_000).to_string(),
            )?;
        }
        let seg = format!("/dev/shm/baton-lab-{}.seg", self.args.prefix);
        let _ = std::fs::remove_file(&seg);
        for b in 1..=3 {
            self.lab.start(b)?;
        }
        let mut rows = Vec::new();
        let mut jrows = Vec::new();
        for &n in &sizes {
            let interval_ms = (n * 1000 / 20_000).max(3000);
            let hold = (2 * interval_ms / 1000 + 5) as f64;
            // This machine caps open files at 20000 per process (no
            // CAP_SYS_RESOURCE to raise it): one load process, one nginx
            // worker per PER_PROCESS connections.
            let procs = n.div_ceil(PER_PROCESS).max(1);
            for target in ["baton", "nginx"] {
                self.lab.ensure_running(1)?;
                let (ip, pids): (String, Box<dyn Fn() -> Vec<u32>>) = if target == "baton" {
                    let pid = self.lab.box_pid(1).context("box1 not running")?;
                    ("198.18.0.11".into(), Box::new(move || vec![pid]))
                } else {
                    let pid = self.start_nginx("box2", &[(NGINX_PLAIN, false)], procs as u32)?;
                    (NGINX_PLAIN.into(), Box::new(move || with_children(pid)))
                };
                let rss =
                    |p: &dyn Fn() -> Vec<u32>| p().into_iter().filter_map(rss_kib).sum::<u64>();
                let sockmem = |p: &dyn Fn() -> Vec<u32>| -> u64 {
                    // /proc/PID/net is the net namespace of that process.
                    let pid = p().first().copied().unwrap_or(0);
                    std::fs::read_to_string(format!("/proc/{pid}/net/sockstat"))
                        .ok()
                        .and_then(|s| {
                            s.lines().find(|l| l.starts_with("TCP:")).and_then(|l| {
                                l.split_whitespace()
                                    .skip_while(|w| *w != "mem")
                                    .nth(1)
                                    .and_then(|v| v.parse::<u64>().ok())
                            })
                        })
                        .unwrap_or(0)
                        * 4096
                };
                let base = rss(&*pids);
                let base_sock = sockmem(&*pids);
                // Baton and nginx get disjoint halves of the client addresses,
                // so that the previous run's TIME_WAIT ports never slow the
                // next run's bind(2).
                let all_sources = self.lab.client_sources();
                let half = all_sources.len() / 2;
                let sources: Vec<String> = if target == "baton" {
                    all_sources[..half].to_vec()
                } else {
                    all_sources[half..].to_vec()
                };
                // One request first: ARP is resolved and the server is ready
                // before thousands of SYNs arrive.
                self.load(
                    &format!("conc-warm-{target}"),
                    &format!("http://{ip}/1K.bin"),
                    &["--timeout-secs".into(), "30".into()],
                )?;
                if (sources.len() as u64) < procs {
                    progress(format!(
                        "  only {} client addresses for {procs} load processes",
                        sources.len()
                    ));
                }
                progress(format!(
                    "  {target} {n}: {procs} load process(es), request every {interval_ms} ms, hold {hold} s after the last connect"
                ));
                let mut children = Vec::new();
                let mut paths = Vec::new();
                for p in 0..procs {
                    self.runs += 1;
                    let json_path = self
                        .out
                        .join("raw")
                        .join(format!("{:03}-conc-{target}-{n}-p{p}.json", self.runs));
                    let count = (n - p * PER_PROCESS).min(PER_PROCESS);
                    let src = sources
                        .get(p as usize % sources.len().max(1))
                        .cloned()
                        .unwrap_or_else(|| "198.18.0.100".into());
                    let args: Vec<String> = vec![
                        self.load.display().to_string(),
                        "--url".into(),
                        format!("http://{ip}/1K.bin"),
                        "--connections".into(),
                        count.to_string(),
                        "--requests".into(),
                        "0".into(),
                        "--interval-ms".into(),
                        interval_ms.to_string(),
                        "--hold-secs".into(),
                        hold.to_string(),
                        "--connect-burst".into(),
                        (4096 / procs).max(64).to_string(),
                        "--source".into(),
                        src,
                        "--timeout-secs".into(),
                        "600".into(),
                        "--json".into(),
                        json_path.display().to_string(),
                    ];
                    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                    let mut c = self.lab.exec_cmd("client", &argv);
                    c.stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null());
                    children.push(c.spawn().context("starting baton-load")?);
                    paths.push(json_path);
                }
                let (mut peak, mut peak_sock) = (base, base_sock);
                loop {
                    let mut running = false;
                    for c in children.iter_mut() {
                        running |= c.try_wait()?.is_none();
                    }
                    if !running {
                        break;
                    }
                    peak = peak.max(rss(&*pids));
                    peak_sock = peak_sock.max(sockmem(&*pids));
                    std::thread::sleep(Duration::from_millis(250));
                }
                if target == "nginx" {
                    self.stop_nginx("box2", &[NGINX_PLAIN]);
                }
                let parts: Vec<LoadSummary> = paths
                    .iter()
                    .filter_map(|p| {
                        std::fs::read_to_string(p)
                            .ok()
                            .and_then(|t| serde_json::from_str(&t).ok())
                    })
                    .collect();
                if parts.len() as u64 != procs {
                    progress(format!(
                        "  {target} {n}: {} of {procs} load processes wrote no summary",
                        procs - parts.len() as u64
                    ));
                }
                let Some(s) = merge_summaries(&parts) else {
                    rows.push(vec![
                        format!("{target}, {n}"),
                        "run failed".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ]);
                    continue;
                };
                let per_conn = (peak.saturating_sub(base) * 1024) as f64 / s.max_open.max(1) as f64;
                let kernel_per_conn =
                    peak_sock.saturating_sub(base_sock) as f64 / s.max_open.max(1) as f64;
                progress(format!(
                    "  {target} {n}: connected {} in {:.1} s, {:.0} req/s, p99 {:.1} ms, errors {}, RSS +{} MiB",
                    s.connected, s.connect_seconds, s.requests_per_s, s.latency_ms.p99, s.errors, (peak - base) / 1024
                ));
                rows.push(vec![
                    format!("{target}, {n}"),
                    format!("{} ({:.0}/s)", s.connected, s.connects_per_s),
                    format!("{:.0} B", per_conn),
                    format!("{:.0}", s.requests_per_s),
                    format!(
                        "{:.2} / {:.2} / {:.2}",
                        s.latency_ms.p50, s.latency_ms.p99, s.latency_ms.p999
                    ),
                    format!("{}", s.errors),
                    s.error_kinds
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ]);
                jrows.push(json!({"target": target, "connections": n, "load_processes": procs, "nginx_workers": if target == "nginx" { procs } else { 0 },
                    "interval_ms": interval_ms, "hold_s": hold, "summary": s, "rss_base_kib": base, "rss_peak_kib": peak,
                    "rss_bytes_per_connection": per_conn, "kernel_tcp_mem_bytes_per_connection_all_namespaces": kernel_per_conn}));
            }
        }
        self.results.insert("concurrency".into(), json!(jrows));
        self.md.push_str(&format!("## Concurrency\n\nbaton-load (kernel sockets, client namespace; this machine caps open files at 20000 per process and the harness may not raise it, so one load process per {PER_PROCESS} connections, each bound to its own client address, ip_local_port_range 1024-65535 in the client namespace) opens N connections to one server and keeps each one requesting 1K.bin every few seconds (interval = max(3 s, N/20000 s)) until the hold ends. Memory per connection = (peak RSS during the run - RSS before) / connections open; Baton keeps its TCP state in its own RSS; nginx's TCP state is kernel memory, not in its RSS, and the kernel's TCP memory counter (`/proc/net/sockstat` mem) is global to all namespaces (client sockets included), so it is only recorded in results.json, not compared. Baton box1 runs one dataplane worker (checkpoint slots = N); nginx runs one worker per {PER_PROCESS} connections (the same file cap), `reuseport`, somaxconn and tcp_max_syn_backlog 65535 in its namespace. Latency: p50 is the mean of the load processes' medians, p99/p999 the worst process's.\n\n"));
        self.md.push_str(&md_table(
            &[
                "server, N",
                "connected (rate)",
                "RSS/conn",
                "req/s",
                "latency ms p50/p99/p999",
                "errors",
                "error kinds",
            ],
            &rows,
        ));
        self.md.push('\n');
        Ok(())
    }
}

/// Sums the summaries of parallel load processes: counts add up, the connect
/// phase lasts as long as the slowest, p50 is the mean and the tails the worst.
fn merge_summaries(parts: &[LoadSummary]) -> Option<LoadSummary> {
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

/// nginx configuration: `workers` worker processes (one, like Baton's one
/// dataplane worker, unless the 20000-file cap per process needs more; then
/// `reuseport` spreads the connections); `listens` = (address or `*`,
/// caching proxy of the origin?).
fn nginx_conf(dir: &Path, node: &str, listens: &[(&str, bool)], workers: u32) -> String {
    let reuse = if workers > 1 { " reuseport" } else { "" };
    let d = dir.display();
    let mut servers = String::new();
    for (addr, proxy) in listens {
        let listen = if *addr == "*" {
            "80".to_string()
        } else {
            format!("{addr}:80")
        };
        if *proxy {
            servers.push_str(&format!(
                "  server {{\n    listen {listen} backlog=65535{reuse};\n    location / {{\n      proxy_pass http://198.19.0.2;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_cache bt;\n      proxy_cache_valid 200 1h;\n      proxy_max_temp_file_size 0;\n    }}\n  }}\n"
            ));
        } else {
            servers.push_str(&format!(
                "  server {{\n    listen {listen} backlog=65535{reuse};\n    root {d}/objects;\n  }}\n"
            ));
        }
    }
    format!(
        "# Written by baton-bench.\nuser root;\nworker_processes {workers};\nworker_rlimit_nofile 20000;\npid {d}/nginx-{node}.pid;\nerror_log {d}/nginx-{node}.err warn;\nevents {{\n  worker_connections 19500;\n  multi_accept on;\n}}\nhttp {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_timeout 300s;\n  keepalive_requests 100000000;\n  proxy_cache_path {d}/nginx-{node}-cache levels=1:2 keys_zone=bt:10m max_size=2g inactive=1h use_temp_path=off;\n{servers}}}\n"
    )
}

/// Runs the criterion benches (`cargo bench -p baton-benches`) and reads
/// their `time: [low mid high]` lines.
fn criterion(quick: bool, out: &Path) -> Result<(Value, String)> {
    progress("suite criterion: cargo bench -p baton-benches");
    let mut cmd = Command::new("cargo");
    cmd.args(["bench", "-p", "baton-benches", "--benches", "--"]);
    if quick {
        cmd.args([
            "--quick",
            "--warm-up-time",
            "0.2",
            "--measurement-time",
            "0.5",
        ]);
    }
    let output = cmd.output().context("running cargo bench")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::write(out.join("raw").join("criterion.txt"), &text)?;
    if !output.status.success() {
        progress(format!(
            "cargo bench failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    let parsed = parse_criterion(&text);
    let rows: Vec<Vec<String>> = parsed
        .iter()
        .map(|(n, t)| vec![n.clone(), t.clone()])
        .collect();
    progress(format!("  {} criterion benchmarks", rows.len()));
    let md = format!(
        "## Micro-benchmarks (criterion)\n\n`cargo bench -p baton-benches{}`\n\n{}\n",
        if quick { " -- --quick" } else { "" },
        md_table(&["benchmark", "time [low mid high]"], &rows)
    );
    Ok((json!(parsed.into_iter().collect::<BTreeMap<_, _>>()), md))
}

/// `name   time:   [1.0 µs 1.1 µs 1.2 µs]`, the name possibly on the line
/// before when it is long.
fn parse_criterion(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut last_name = String::new();
    for line in text.lines() {
        // Only `time:` lines with a duration ([1.0 ns ...]); criterion's
        // `change:` lines carry percentages.
        if let Some(pos) = line.find("time:").filter(|_| !line.contains('%')) {
            let name = line[..pos].trim();
            let name = if name.is_empty() {
                last_name.clone()
            } else {
                name.to_string()
            };
            let value = line[pos + 5..]
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            if !name.is_empty() {
                out.push((name, value));
            }
        } else if !line.starts_with(' ') && !line.trim().is_empty() {
            // Benchmark ids have no spaces; "Found 3 outliers ..." is no name.
            last_name = if line.trim().contains(' ') {
                String::new()
            } else {
                line.trim().to_string()
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criterion_names_on_their_own_line_are_kept() {
        let text = "Benchmarking x\nshmem/commit   time:   [1.0 µs 1.1 µs 1.2 µs]\ntcp/a_very_long_benchmark_name_here\n                        time:   [5.0 ns 5.1 ns 5.2 ns]\n                 change:\n                        time:   [+10.2% +11.8% +13.6%] (p = 0.00 < 0.05)\nFound 11 outliers among 100 measurements (11.00%)\n                        time:   [1 ns 2 ns 3 ns]\n";
        let p = parse_criterion(text);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0],
            (
                "shmem/commit".to_string(),
                "1.0 µs 1.1 µs 1.2 µs".to_string()
            )
        );
        assert_eq!(p[1].0, "tcp/a_very_long_benchmark_name_here");
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
        a.latency_ms = baton_benches::harness::stats::LatencyMs {
            p50: 1.0,
            p99: 5.0,
            p999: 9.0,
            max: 10.0,
        };
        let mut b = a.clone();
        b.connect_seconds = 2.0;
        b.errors = 3;
        b.error_kinds.insert("connect failed".into(), 3);
        b.latency_ms = baton_benches::harness::stats::LatencyMs {
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

    #[test]
    fn nginx_conf_serves_objects_and_proxies_the_origin() {
        let c = nginx_conf(
            Path::new("/run/baton-lab/btb"),
            "box2",
            &[("198.18.0.62", false), ("198.18.0.63", true)],
            1,
        );
        assert!(c.contains(
            "listen 198.18.0.62:80 backlog=65535;\n    root /run/baton-lab/btb/objects;"
        ));
        assert!(c.contains("listen 198.18.0.63:80"));
        assert!(c.contains("proxy_pass http://198.19.0.2;"));
        assert!(c.contains("pid /run/baton-lab/btb/nginx-box2.pid;"));
        assert!(c.contains("worker_processes 1;"));
        assert!(!c.contains("reuseport"));
        let many = nginx_conf(Path::new("/x"), "box2", &[("198.18.0.62", false)], 16);
        assert!(many.contains("worker_processes 16;"));
        assert!(many.contains("listen 198.18.0.62:80 backlog=65535 reuseport;"));
    }
}
