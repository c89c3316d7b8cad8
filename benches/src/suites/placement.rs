//! Suite placement (issue 20): the failover suite's kill of box 1 under
//! downloads, once with `takeover.assignment = "round_robin"` and once
//! with `"least_loaded"`, each in a lab of its own, while box 2 holds idle
//! keep-alive connections and box 3 none: the stall and resume times the
//! client saw, and how many of box 1's connections each survivor restored
//! (`baton_takeovers_total`) and what each then held (`baton_connections`,
//! 3 s after the kill); then, in a third lab, the time a rejoined box takes
//! to receive its share from the balancers (`super::rejoin`). It knows the
//! lab only through `baton_lab::driver`.
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};

use anyhow::{bail, Context, Result};
use baton_lab::driver::{Lab, LabOptions};
use serde_json::{json, Value};

use crate::harness::report::md_table;
use crate::suites::bench::{progress, Bench, BenchArgs};

/// Idle keep-alive connections box 2 holds before the kill.
const PRELOAD: usize = 60;
/// `takeover.capacity` of the boxes: small, so that a box's busy fraction
/// counts as at most this many connections and the idle ones decide.
const CAPACITY: &str = "64";
/// Downloads from box 1 when it is killed.
const DOWNLOADS: u64 = 24;

/// Opens N keep-alive connections to HOST:80 (one answered request each),
/// prints `ready N`, holds them until a line on stdin, closes them.
const IDLE_HOLDER: &str = r#"
import socket, sys
host, n = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection((host, 80), timeout=10)
    s.sendall(b"GET /1K.bin HTTP/1.1\r\nHost: lab\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("closed before the head")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("closed before the body ended")
        body += chunk
    socks.append(s)
print("ready", len(socks), flush=True)
sys.stdin.readline()
for s in socks:
    s.close()
"#;

/// Runs the suite; returns its JSON, its results.md section and the load
/// runs against a box that saw errors.
pub(crate) fn placement(
    args: &BenchArgs,
    load: &Path,
    out: &Path,
) -> Result<(Value, String, Vec<String>)> {
    progress("suite placement: box1 killed under downloads, box2 preloaded with idle connections, round_robin vs least_loaded");
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    let mut errors = Vec::new();
    for policy in ["round_robin", "least_loaded"] {
        progress(format!("  {policy}: lab up"));
        let lab = Lab::up(&LabOptions {
            extra: ["--assignment", policy, "--capacity", CAPACITY]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..LabOptions::new(&args.baton, &args.prefix, 3)
        })?;
        let mut b = Bench::new(args.clone(), lab, out, load);
        let r = measure(&mut b, policy);
        b.keep_logs();
        b.lab.down();
        errors.append(&mut b.errors);
        let (row, run) = r?;
        rows.push(row);
        runs.push(run);
    }
    let mut md = String::from("## Placement: round_robin vs least_loaded (issue 20)\n\n");
    md.push_str(&format!(
        "Three boxes, `takeover.capacity = {CAPACITY}`; box2 holds {PRELOAD} idle keep-alive connections, box3 none; {DOWNLOADS} downloads of 50M.bin from box1, which is SIGKILLed once all are receiving (as in the failover suite, 200 KB/s each). Columns as there; \"to box2 / box3\": connections each survivor restored (`baton_takeovers_total`).\n\n"
    ));
    md.push_str(&md_table(
        &[
            "assignment",
            "active at kill",
            "stall ms p50/p99/max",
            "kill→resume ms p50/p99/max",
            "not resumed",
            "failures",
            "to box2 / box3",
            "box2 / box3 hold 3 s after",
        ],
        &rows,
    ));
    let (row, run) = crate::suites::rejoin::rejoin(args, load, out)?;
    md.push_str(&format!(
        "\n### A rejoined box reaching its share\n\nThree boxes, `[balance]` on (threshold {}, rate 100/s, every 200 ms); box3 killed, 1M.bin downloads at 50 KB/s held on boxes 1 and 2, box3 started again: from `lab start box3` returning (box3 ready) to box3 holding a third of the three boxes' connections, and what boxes 1 and 2 moved for the rejoin (`baton_balance_moved_total{{reason=\"rejoin\"}}`); errors: failed or byte-wrong downloads.\n\n",
        crate::suites::rejoin::THRESHOLD
    ));
    md.push_str(&md_table(
        &[
            "downloads",
            "box3's share",
            "ready → share ms",
            "moved by box1 + box2",
            "errors",
        ],
        &[row],
    ));
    runs.push(json!({"rejoin": run}));
    Ok((json!(runs), md, errors))
}

fn measure(b: &mut Bench, policy: &str) -> Result<(Vec<String>, Value)> {
    // Every box has the object cached, as in the failover suite.
    for ip in ["198.18.0.11", "198.18.0.12", "198.18.0.13"] {
        b.load(
            &format!("placement-warm-{policy}"),
            &format!("http://{ip}/50M.bin"),
            &["--timeout-secs".into(), "60".into()],
        )?;
    }
    let holder = hold_idle(&b.lab, "198.18.0.12", PRELOAD)?;
    wait_published(b, 2, PRELOAD as u64)?;
    let before = [2, 3].map(|n| takeovers(b, n));
    let tag = format!("placement-{policy}");
    // What each survivor holds once the takeover is done, read during the
    // run (the downloads end with it).
    let mut held_after = [0u64; 2];
    let result = b.failover_run(
        &tag,
        "http://198.18.0.11/50M.bin",
        DOWNLOADS,
        10,
        &[],
        &mut |b: &Bench| {
            b.kill_box_marked(1)?;
            std::thread::sleep(std::time::Duration::from_secs(3));
            held_after = [2, 3].map(|n| metric(b, n, "baton_connections "));
            Ok(())
        },
    );
    release(holder);
    let (s, tl, _) = result?;
    let after = [2, 3].map(|n| takeovers(b, n));
    let (to2, to3) = (after[0] - before[0], after[1] - before[1]);
    let f = tl.failover().unwrap_or_default();
    b.note_errors(
        &tag,
        "http://198.18.0.11/50M.bin",
        s.errors.max(f.failed),
        &s.error_kinds,
    );
    let row = vec![
        policy.to_string(),
        format!("{}/{}", f.active_at_kill, DOWNLOADS),
        format!(
            "{:.0} / {:.0} / {:.0}",
            f.stall_ms.p50, f.stall_ms.p99, f.stall_ms.max
        ),
        format!(
            "{:.0} / {:.0} / {:.0}",
            f.resume_ms.p50, f.resume_ms.p99, f.resume_ms.max
        ),
        format!("{}", f.not_resumed),
        format!("{}", s.errors.max(f.failed)),
        format!("{to2} / {to3}"),
        format!("{} / {}", held_after[0], held_after[1]),
    ];
    let run = json!({"assignment": policy, "connections": DOWNLOADS, "preload_box2": PRELOAD,
        "summary": s, "failover": f, "restored": {"box2": to2, "box3": to3},
        "held_3s_after": {"box2": held_after[0], "box3": held_after[1]}});
    Ok((row, run))
}

/// Starts the idle holder in the client; returns once its connections are open.
fn hold_idle(lab: &Lab, host: &str, n: usize) -> Result<Child> {
    let mut child = lab
        .exec_cmd(
            "client",
            &["python3", "-c", IDLE_HOLDER, host, &n.to_string()],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("python3 in the client (install it)")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    if line.trim() != format!("ready {n}") {
        let _ = child.kill();
        bail!("the idle holder said {line:?}");
    }
    Ok(child)
}

fn release(mut holder: Child) {
    if let Some(mut stdin) = holder.stdin.take() {
        let _ = writeln!(stdin);
    }
    let _ = holder.wait();
}

/// Box `n`'s `baton_takeovers_total` (0 when unreadable).
fn takeovers(b: &Bench, n: u32) -> u64 {
    metric(b, n, "baton_takeovers_total ")
}

fn metric(b: &Bench, n: u32, prefix: &str) -> u64 {
    crate::suites::rejoin::metric(&b.lab, &b.args, n, prefix)
}

/// Waits (at most 20 s) until box 3 sees box `id` publish `n` connections:
/// the loads committed with the removal are read from the box table.
fn wait_published(b: &Bench, id: u32, n: u64) -> Result<()> {
    let key = format!("baton_box_connections{{box=\"{id}\"}} ");
    for _ in 0..200 {
        if metric(b, 3, &key) >= n {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("box {id} never published {n} connections")
}
