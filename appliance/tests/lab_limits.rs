//! One hostile client tries to run a box out of memory (issue 13: no TCP
//! buffer budget, an unbounded fetch queue, objects in flight outside the
//! cache budget) while a legitimate client downloads 50 MB. The hostile
//! client, in the lab's client namespace, never reads: 40 connections ask
//! for a cached object (their send queues would hold 256 KiB each) and
//! waves of 30 connections ask for distinct 50 MB cache misses (each fill
//! would hold the whole object). The box is given small budgets; it must
//! serve the legitimate download byte-exact, stay alive, keep its RSS
//! (`/proc/PID/status` VmRSS, sampled throughout) under a bound derived
//! from those budgets, and its `/metrics` must prove every limit engaged
//! (SECURITY.md, "Memory limits").
mod common;

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const MIB: u64 = 1 << 20;
/// `cache.memory_bytes` for the test.
const CACHE_BUDGET: u64 = 64 * MIB;
/// `dataplane.tcp_buffer_budget` (the smallest allowed; the lab has one worker).
const TCP_BUDGET: u64 = MIB;
/// `cache.max_fetches`.
const MAX_FETCHES: u64 = 6;
/// `cache.fetchers` (the default).
const FETCHERS: u64 = 4;
/// Over the budget a fill runs at most this far ahead of its reader
/// (`cache::budget::PACE_LAG`), plus a read buffer.
const PACE_LAG: u64 = 2 * MIB + MIB;
/// The legitimate object: over the budget it is served pass-through, and
/// held whole until its fill ends.
const LEGIT: u64 = 50 * MIB;
/// Allocator slack, the checkpoint slots touched, and the origin read
/// buffers that queued slices pin (a send queue holding a few KiB of a
/// 256 KiB read buffer keeps all of it). Measured peaks: 179-199 MiB over a
/// 61 MiB baseline; without the in-flight accounting 436 MiB.
const SLACK: u64 = 96 * MIB;

/// Sets box 1's budgets for the test and restarts it with them.
fn set_budgets(g: &LabGuard) {
    let d = &g.driver;
    let set = |section: &str, key: &str, value: String| {
        d.set_box_option(1, section, key, &value)
            .unwrap_or_else(|e| panic!("{section}.{key}: {e}"));
    };
    set("cache", "memory_bytes", CACHE_BUDGET.to_string());
    set("cache", "max_fetches", MAX_FETCHES.to_string());
    set("cache", "origin_timeout_ms", "2000".into());
    set("dataplane", "tcp_buffer_budget", TCP_BUDGET.to_string());
    d.restart(1).unwrap_or_else(|e| panic!("restart box1: {e}"));
}

fn box_pid(g: &LabGuard) -> u32 {
    g.driver.box_pid(1).expect("box1 runs")
}

/// VmRSS of `pid` in bytes; `None` once the process is gone.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The value of `name` in box 1's `/metrics`.
fn metric(g: &LabGuard, name: &str) -> u64 {
    let config = g.file("box1.toml").display().to_string();
    let metrics = ok(g.exec("box1", &[BATON, "admin", "--config", &config, "metrics"]));
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{metrics}")) as u64
}

/// The hostile client: connections that send a request and never read.
const HOSTILE: &str = r#"
import socket, sys, time
host = "198.18.0.11"
socks = []
def open_conn(path):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, 80))
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    socks.append(s)
for i in range(40):
    open_conn("/1M.bin")
for wave in range(5):
    for i in range(30):
        open_conn("/50M.bin?hostile=%d-%d" % (wave, i))
    time.sleep(4)
time.sleep(6)
print(len(socks), "connections held", flush=True)
"#;

fn start_hostile(g: &LabGuard) -> Child {
    let script = g.file("hostile.py");
    std::fs::write(&script, HOSTILE).expect("hostile.py");
    let script = script.display().to_string();
    g.driver
        .exec_cmd("client", &["/usr/bin/python3", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 in the client namespace")
}

#[test]
fn lab_a_hostile_client_cannot_run_the_box_out_of_memory() {
    let g = LabGuard::up("btlm", &["--boxes", "1"]);
    set_budgets(&g);
    // Warm: 1M.bin is a hit from now on; the baseline includes it.
    download_identical(&g, 1, "1M.bin");
    let pid = box_pid(&g);
    let baseline = rss(pid).expect("the box runs");
    let bound = baseline + CACHE_BUDGET + TCP_BUDGET + FETCHERS * PACE_LAG + LEGIT + SLACK;

    // Sample the box's RSS until told to stop.
    let peak = Arc::new(AtomicU64::new(baseline));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match rss(pid) {
                    Some(r) => {
                        peak.fetch_max(r, Ordering::Relaxed);
                    }
                    None => return false,
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            true
        })
    };

    let hostile = start_hostile(&g);
    std::thread::sleep(Duration::from_secs(3));
    // The legitimate client: a 503 (fetch queue full) is retried after
    // its Retry-After, as curl does by default.
    let (code, _, body) = curl_box(
        &g,
        1,
        "/50M.bin?legit=1",
        &["--fail", "--retry", "60", "--retry-max-time", "110"],
    );
    assert_eq!(code, 200, "the legitimate download was refused");
    assert_eq!(
        sha256_hex(&body),
        g.listed_sha("50M.bin"),
        "the legitimate download differs ({} bytes)",
        body.len()
    );
    let out = hostile.wait_with_output().expect("hostile client");
    assert!(
        out.status.success(),
        "the hostile client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("190 connections held"),
        "the hostile client did not open its connections: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stop.store(true, Ordering::Relaxed);
    assert!(
        sampler.join().expect("sampler"),
        "box1 died under the attack"
    );
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "VmRSS: baseline {} MiB, peak {} MiB, bound {} MiB",
        baseline / MIB,
        peak / MIB,
        bound / MIB
    );
    assert!(
        peak < bound,
        "peak RSS {} MiB over the bound {} MiB",
        peak / MIB,
        bound / MIB
    );

    // Every limit engaged.
    let refused = metric(&g, "baton_cache_fetches_refused_total");
    let paced = metric(&g, "baton_cache_fills_paced_total");
    let abandoned = metric(&g, "baton_cache_fills_abandoned_total");
    let send_limited = metric(&g, "baton_dataplane_tcp_budget_send_limited_total");
    eprintln!(
        "fetches refused {refused}, fills paced {paced}, abandoned {abandoned}, sends held to the floor {send_limited}"
    );
    assert!(refused > 0, "the fetch queue cap never refused a miss");
    assert!(paced > 0, "no fill was paced by the cache budget");
    assert!(abandoned > 0, "no unread fill was given up");
    assert!(
        send_limited > 0,
        "the TCP buffer budget never held a connection"
    );
}
