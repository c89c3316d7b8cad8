//! Suite concurrency: how many open connections a box holds and serves,
//! with resident memory per connection, against nginx.
use std::time::Duration;

use anyhow::{Context, Result};
use baton_lab::driver::{rss_kib, status_kib, with_children};
use serde_json::json;

use crate::harness::report::{md_rows, Row};
use crate::harness::stats::LoadSummary;
use crate::suites::bench::{merge_summaries, progress, Bench, NGINX_PLAIN, PER_PROCESS};
use crate::suites::nginx::Serve;

/// How long idle connections rest before the clients close them
/// (`--idle-connections`).
const IDLE_HOLD_SECS: u64 = 20;

impl Bench {
    pub(crate) fn concurrency(&mut self) -> Result<()> {
        let sizes = if !self.args.concurrency.is_empty() {
            self.args.concurrency.clone()
        } else if self.args.quick {
            vec![1000]
        } else {
            vec![10_000, 100_000, 300_000]
        };
        let idle = self.args.idle_connections;
        progress(format!(
            "suite concurrency: hold {sizes:?} connections, {}",
            if idle {
                "one request each, then idle"
            } else {
                "one request every few seconds each"
            }
        ));
        let largest = sizes.iter().copied().max().unwrap_or(0);
        self.raise_box_limits(largest)?;
        let mut rows = Vec::new();
        // Kernel memory growth per connection in Baton's run at each N:
        // the client's sockets alone.
        let mut client_kernel: std::collections::BTreeMap<u64, f64> = Default::default();
        for &n in &sizes {
            let (interval_ms, hold) = if idle {
                // Rest well past the box's parking (5 s) and its heap trim:
                // the second request never comes within the hold.
                (IDLE_HOLD_SECS * 1000 + 60_000, IDLE_HOLD_SECS as f64)
            } else {
                let interval_ms = (n * 1000 / 20_000).max(3000);
                (interval_ms, (2 * interval_ms / 1000 + 5) as f64)
            };
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
                    let pid =
                        self.start_nginx("box2", &[(NGINX_PLAIN, Serve::Plain)], procs as u32)?;
                    (NGINX_PLAIN.into(), Box::new(move || with_children(pid)))
                };
                let rss =
                    |p: &dyn Fn() -> Vec<u32>| p().into_iter().filter_map(rss_kib).sum::<u64>();
                let sockmem = |p: &dyn Fn() -> Vec<u32>| -> u64 {
                    // /proc/PID/net is the net namespace of that process.
                    let pid = p().first().copied().unwrap_or(0);
                    tcp_mem_pages(&format!("/proc/{pid}/net/sockstat")) * 4096
                };
                // Of the RSS, the shared pages (a box's checkpoint slots in
                // the segment): the rest is the process's own heap.
                let shmem = |p: &dyn Fn() -> Vec<u32>| {
                    p().into_iter()
                        .filter_map(|pid| status_kib(pid, "RssShmem:"))
                        .sum::<u64>()
                };
                let base = rss(&*pids);
                let box_log = self.lab.state_dir().join("box1.log");
                let trims_before = heap_trims(&box_log).len();
                let base_shmem = shmem(&*pids);
                let base_sock = sockmem(&*pids);
                let base_kernel = kernel_bytes();
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
                let (mut peak, mut peak_sock, mut peak_kernel) = (base, base_sock, base_kernel);
                let mut peak_shmem = base_shmem;
                // The lowest RSS since the peak: the box's memory once its
                // connections rest (parked, their heap returned).
                let mut settled = base;
                loop {
                    let mut running = false;
                    for c in children.iter_mut() {
                        running |= c.try_wait()?.is_none();
                    }
                    if !running {
                        break;
                    }
                    let now_kib = rss(&*pids);
                    if now_kib > peak {
                        peak = now_kib;
                        settled = now_kib;
                    }
                    settled = settled.min(now_kib);
                    peak_shmem = peak_shmem.max(shmem(&*pids));
                    peak_sock = peak_sock.max(sockmem(&*pids));
                    peak_kernel = peak_kernel.max(kernel_bytes());
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
                    // A failed run is a line of the table, not of results.json.
                    let mut failed = Row::new().text(format!("{target}, {n}")).text("run failed");
                    for _ in 0..9 {
                        failed = failed.text("-");
                    }
                    rows.push((failed, false));
                    continue;
                };
                let per_conn = (peak.saturating_sub(base) * 1024) as f64 / s.max_open.max(1) as f64;
                let settled_per_conn =
                    (settled.saturating_sub(base) * 1024) as f64 / s.max_open.max(1) as f64;
                let shmem_per_conn = (peak_shmem.saturating_sub(base_shmem) * 1024) as f64
                    / s.max_open.max(1) as f64;
                let kernel_per_conn =
                    peak_sock.saturating_sub(base_sock) as f64 / s.max_open.max(1) as f64;
                // The kernel's memory is global: in Baton's run it grew by
                // the client's sockets alone (the box has none), in nginx's
                // by the client's and nginx's. The difference at the same N
                // is nginx's own socket memory.
                let kernel_growth =
                    peak_kernel.saturating_sub(base_kernel) as f64 / s.max_open.max(1) as f64;
                let server_kernel_per_conn = if target == "baton" {
                    client_kernel.insert(n, kernel_growth);
                    Some(0.0)
                } else {
                    client_kernel
                        .get(&n)
                        .map(|client| (kernel_growth - client).max(0.0))
                };
                // The checkpoint segment's memory: the tmpfs file's allocated
                // pages over the slots of the three boxes' regions (every box
                // touches its whole slot array at start, so this is what a
                // slot costs, whether its connection is open or not).
                let segment = (target == "baton")
                    .then(|| self.segment_allocated_bytes())
                    .flatten();
                let slots = 3 * Self::box_slots(largest);
                // A box that parked a burst trims its heap once, holding
                // its worker meanwhile: how long, from its log.
                let trims = if target == "baton" {
                    // A box restarted meanwhile starts a new log.
                    let all = heap_trims(&box_log);
                    all.get(trims_before..).map_or(all.clone(), <[u64]>::to_vec)
                } else {
                    Vec::new()
                };
                if !trims.is_empty() {
                    progress(format!(
                        "  {target} {n}: heap trimmed {} time(s), the longest {:.1} ms",
                        trims.len(),
                        trims.iter().max().copied().unwrap_or(0) as f64 / 1000.0
                    ));
                }
                let segment_per_slot = segment.map(|b| b as f64 / slots as f64);
                progress(format!(
                    "  {target} {n}: connected {} in {:.1} s, {:.0} req/s, p99 {:.1} ms, errors {}, RSS +{} MiB ({per_conn:.0} B a connection, {shmem_per_conn:.0} B of it shared){}",
                    s.connected, s.connect_seconds, s.requests_per_s, s.latency_ms.p99, s.errors, (peak - base) / 1024,
                    segment_per_slot.map_or(String::new(), |b| format!("; segment {} MiB allocated, {b:.0} B a slot", segment.unwrap_or(0) >> 20))
                ));
                let row = Row::new()
                    .value("target", target)
                    .value("connections", n)
                    .text(format!("{target}, {n}"))
                    .value("load_processes", procs)
                    .value("nginx_workers", if target == "nginx" { procs } else { 0 })
                    .value("interval_ms", interval_ms)
                    .value("hold_s", hold)
                    .text(format!("{} ({:.0}/s)", s.connected, s.connects_per_s))
                    .value("rss_base_kib", base)
                    .value("rss_peak_kib", peak)
                    .value("rss_bytes_per_connection", per_conn)
                    .value("rss_settled_kib", settled)
                    .value("rss_settled_bytes_per_connection", settled_per_conn)
                    .value("idle_connections", idle)
                    .value("heap_trims_us", &trims)
                    .value("rss_shmem_bytes_per_connection", shmem_per_conn)
                    .value("segment_allocated_bytes", segment)
                    .value("segment_bytes_per_slot", segment_per_slot)
                    .text(format!("{:.0} B", per_conn))
                    .text(format!("{:.0} B", settled_per_conn))
                    .text(segment_per_slot.map_or("-".into(), |b| format!("{b:.0} B")))
                    .value("kernel_growth_bytes_per_connection", kernel_growth)
                    .value("server_kernel_bytes_per_connection", server_kernel_per_conn)
                    .text(server_kernel_per_conn.map_or("-".into(), |k| format!("{k:.0} B")))
                    .text(
                        server_kernel_per_conn
                            .map_or("-".into(), |k| format!("{:.0} B", per_conn + k)),
                    )
                    .value(
                        "kernel_tcp_mem_bytes_per_connection_all_namespaces",
                        kernel_per_conn,
                    )
                    .text(format!("{:.0}", s.requests_per_s))
                    .text(format!(
                        "{:.2} / {:.2} / {:.2}",
                        s.latency_ms.p50, s.latency_ms.p99, s.latency_ms.p999
                    ))
                    .text(format!("{}", s.errors))
                    .text(
                        s.error_kinds
                            .iter()
                            .map(|(k, v)| format!("{k}: {v}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                    .value("summary", &s);
                rows.push((row, true));
            }
        }
        let measured: Vec<_> = rows
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(r, _)| r.json())
            .collect();
        self.results.insert("concurrency".into(), json!(measured));
        let rows: Vec<Row> = rows.into_iter().map(|(r, _)| r).collect();
        self.md.push_str(&format!("## Concurrency\n\nbaton-load (kernel sockets, client namespace; this machine caps open files at 20000 per process and the harness may not raise it, so one load process per {PER_PROCESS} connections, each bound to its own client address, ip_local_port_range 1024-65535 in the client namespace) opens N connections to one server and keeps each one requesting 1K.bin every few seconds (interval = max(3 s, N/20000 s)) until the hold ends. Memory per connection = (peak RSS during the run - RSS before) / connections open; settled = the same with the lowest RSS since the peak (with `--idle-connections`, each connection asks once and then rests for the hold: a box parks its idle connections and returns their heap); segment/slot = the checkpoint segment file's allocated bytes (tmpfs pages the boxes touched) / the three boxes' slots, what each slot a box holds costs beside its RSS; Baton keeps its TCP state in its own RSS; nginx's TCP state is kernel memory, not in its RSS, and the kernel's TCP memory counter (`/proc/net/sockstat` mem) is global to all namespaces (client sockets included), so nginx's kernel share is measured by difference: kernel/conn = (growth of the kernel's slab and TCP buffer memory in nginx's run - its growth in Baton's run at the same N) / connections, since Baton's run grew by the client's sockets alone (Baton holds no kernel sockets: 0). Baton box1 runs one dataplane worker (checkpoint slots = N); nginx runs one worker per {PER_PROCESS} connections (the same file cap), `reuseport`, somaxconn and tcp_max_syn_backlog 65535 in its namespace. Latency: p50 is the mean of the load processes' medians, p99/p999 the worst process's.\n\n"));
        self.md.push_str(&md_rows(
            &[
                "server, N",
                "connected (rate)",
                "RSS/conn",
                "settled RSS/conn",
                "segment/slot",
                "kernel/conn",
                "RSS+kernel/conn",
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

/// The kernel's memory that sockets grow, machine-wide: slab (socket,
/// inode, file, epoll structures) and TCP buffer pages, in bytes.
fn kernel_bytes() -> u64 {
    let slab_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("Slab:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let tcp_pages = tcp_mem_pages("/proc/net/sockstat");
    slab_kib * 1024 + tcp_pages * 4096
}

/// The TCP line's `mem` of a sockstat file (pages of TCP buffers).
fn tcp_mem_pages(path: &str) -> u64 {
    std::fs::read_to_string(path)
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
}

/// The `took_us` of each heap trim a box's log reports (after a burst of
/// parked connections), oldest first.
fn heap_trims(log: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("heap's free pages went back"))
        .filter_map(|l| {
            baton_lab::logs::strip_ansi(l)
                .split_whitespace()
                .find_map(|w| w.strip_prefix("took_us="))
                .and_then(|v| v.parse().ok())
        })
        .collect()
}
