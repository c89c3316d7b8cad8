//! Suite vm (issue 16): the failover measurement of [`super::failover`]
//! with VM boxes next to process boxes in one run. Each kind gets a lab of
//! its own with two boxes (`lab up`, `lab up --vm`: QEMU machines from the
//! appliance image, `scripts/image --features dpdk`, and `lab up --vm
//! --backend dpdk`); N downloads of 50M.bin from box
//! 1, then box 1 is SIGKILLed (a process box's process, a VM box's whole
//! QEMU) and the client's timeline gives the stall and kill→resume. The
//! report names the accelerator QEMU used (`lab.state`'s `vm=`), each VM's
//! boot-to-serving time, and the detection each kind runs with (VM boxes
//! miss [`baton_lab::vm::VM_MISSED`] heartbeats, not a process box's
//! [`baton_lab::boxconf::SHARED_MISSED`]). It knows the lab only through
//! `baton_lab::driver` and the constants the lab's boxes run with, and
//! measures nothing else.
use std::path::Path;

use anyhow::Result;
use baton_lab::boxconf::{LAB_HEARTBEAT_MS, SHARED_MISSED};
use baton_lab::driver::{Lab, LabOptions};
use baton_lab::vm::VM_MISSED;
use serde_json::{json, Value};

use crate::harness::report::md_table;
use crate::suites::bench::{progress, Bench, BenchArgs};
use crate::suites::failover::failover_cells;

/// The kinds of box compared: a name, `lab up`'s extra arguments and the
/// heartbeats a box of that kind misses before its peer takes it over
/// (the lab's own constants, so the report cannot drift from them).
const KINDS: &[(&str, &[&str], u32)] = &[
    ("process", &[], SHARED_MISSED),
    ("VM", &["--vm"], VM_MISSED),
    ("VM DPDK", &["--vm", "--backend", "dpdk"], VM_MISSED),
];

/// The detection time of a box that misses `missed` lab heartbeats, as
/// the report states it ("70 x 30 ms").
fn detection(missed: u32) -> String {
    format!("{missed} x {LAB_HEARTBEAT_MS} ms")
}

/// Runs the suite; returns its JSON, its results.md section and the load
/// runs against a box that saw errors.
pub(crate) fn vm(
    args: &BenchArgs,
    load: &Path,
    out: &Path,
) -> Result<(Value, String, Vec<String>)> {
    progress("suite vm: failover of process boxes and of VM boxes (2 boxes each, box1 SIGKILLed)");
    let sizes: Vec<u64> = if !args.failover.is_empty() {
        args.failover.clone()
    } else if args.quick {
        vec![1]
    } else {
        vec![1, 10]
    };
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    let mut errors = Vec::new();
    let mut accel = String::from("-");
    let mut boots: Vec<(String, Vec<Option<u64>>)> = Vec::new();
    for &(kind, extra, missed) in KINDS {
        progress(format!("  {kind} boxes: lab up"));
        let started = std::time::Instant::now();
        let lab = Lab::up(&LabOptions {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ..LabOptions::new(&args.baton, &args.prefix, 2)
        })?;
        let up_s = started.elapsed().as_secs_f64();
        let mut b = Bench::new(args.clone(), lab, out, load);
        if !extra.is_empty() {
            accel = accelerator(&b.lab);
            boots.push((
                kind.to_string(),
                (1..=2).map(|n| boot_ms(&b.lab, n)).collect(),
            ));
        }
        let r = measure(
            &mut b,
            kind,
            &detection(missed),
            &sizes,
            &mut rows,
            &mut runs,
        );
        b.keep_logs();
        b.lab.down();
        errors.append(&mut b.errors);
        progress(format!("  {kind} boxes: lab up took {up_s:.1} s"));
        r?;
    }
    let boot_text = boots
        .iter()
        .map(|(kind, ms)| {
            let each = ms
                .iter()
                .enumerate()
                .map(|(i, ms)| match ms {
                    Some(ms) => format!("box{} {:.1} s", i + 1, *ms as f64 / 1000.0),
                    None => format!("box{} ?", i + 1),
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("{kind}: {each}")
        })
        .collect::<Vec<_>>()
        .join("; ");
    let boot_json: serde_json::Map<String, Value> = boots
        .iter()
        .map(|(kind, ms)| (kind.clone(), json!(ms)))
        .collect();
    let json = json!({"accelerator": accel, "vm_boot_to_serving_ms": boot_json, "runs": runs});
    let (process_detection, vm_detection) = (detection(SHARED_MISSED), detection(VM_MISSED));
    let process_ms = SHARED_MISSED * LAB_HEARTBEAT_MS;
    let mut md = format!(
        "## Failover: VM boxes next to process boxes\n\nTwo boxes per lab, one lab per kind, in one run: process boxes (`lab up`), VM boxes (`lab up --vm`: QEMU, accelerator **{accel}**, 1 vCPU and 512 MiB each, the segment an ivshmem BAR) on AF_PACKET, and VM boxes on DPDK (`--backend dpdk`: net_virtio on the VM's virtio NIC bound to uio_pci_generic); boot to serving {boot_text}. N downloads of 50M.bin from box1 at the failover suite's rates; once all receive, box1 is SIGKILLed (a VM box: its QEMU, the whole machine) and the moment marked. Detection: process boxes {process_detection}, VM boxes {vm_detection} (a TCG guest is descheduled for longer than {process_ms} ms). Columns as in the failover suite.\n\n"
    );
    md.push_str(&md_table(
        &[
            "boxes, N",
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
    md.push('\n');
    Ok((json, md, errors))
}

fn measure(
    b: &mut Bench,
    kind: &str,
    detection: &str,
    sizes: &[u64],
    rows: &mut Vec<Vec<String>>,
    runs: &mut Vec<Value>,
) -> Result<()> {
    let url = "http://198.18.0.11/50M.bin";
    for &n in sizes {
        for box_n in 1..=2 {
            b.lab.ensure_running(box_n)?;
        }
        // Both boxes hold the object, as the failover suite has it.
        for ip in ["198.18.0.11", "198.18.0.12"] {
            b.load(
                &format!("vm-warm-{}", kind.replace(' ', "-")),
                &format!("http://{ip}/50M.bin"),
                &["--timeout-secs".into(), "120".into()],
            )?;
        }
        let tag = format!("vm-failover-{}-{n}", kind.to_lowercase().replace(' ', "-"));
        let hold = if b.args.quick { 8 } else { 12 };
        let (s, tl, d) = b.failover_run(&tag, url, n, hold, &[], &mut |b: &Bench| {
            b.kill_box_marked(1)
        })?;
        let f = tl.failover().unwrap_or_default();
        b.note_errors(&tag, url, s.errors.max(f.failed), &s.error_kinds);
        let dups = d.get("TcpExt:TCPDSACKOldSent").copied().unwrap_or(0)
            + d.get("TcpExt:TCPDSACKOfoSent").copied().unwrap_or(0);
        rows.push(failover_cells(
            format!("{kind}, {n}"),
            n,
            &f,
            format!("{}", s.errors.max(f.failed)),
            dups,
            &d,
        ));
        runs.push(json!({"boxes": kind, "detection": detection, "connections": n, "summary": s, "failover": f}));
    }
    Ok(())
}

/// QEMU's accelerator, as `lab up --vm` recorded it in `lab.state`.
fn accelerator(lab: &Lab) -> String {
    std::fs::read_to_string(lab.file("lab.state"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("vm="))
        .unwrap_or("?")
        .to_string()
}

/// VM box `n`'s boot to serving, ms (`boxN.boot_ms`).
fn boot_ms(lab: &Lab, n: u32) -> Option<u64> {
    std::fs::read_to_string(lab.file(&format!("box{n}.boot_ms")))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}
