//! VM boxes (issue 16): `baton lab up --vm` boots the appliance image
//! (scripts/image, target/image/) under QEMU, one VM per box, its NICs
//! virtio-net on the lab's LANs and the checkpoint segment one host file
//! that every VM maps as an ivshmem-plain device's BAR. What a user checks
//! is the canonical check: a download from box 1 whose VM is killed
//! mid-transfer is byte-exact with no RST, the survivor resumed it, and it
//! read box 1's checkpoints through its own mapping of the BAR (the
//! segment path it logs is the PCI device's, and the host's file holds the
//! header the VMs wrote). `lab start` boots the killed VM again and it
//! rejoins. Then the box dies but not its machine: `lab exec box1 --
//! systemctl kill -s SIGKILL baton` (run inside the VM over its command
//! serial port) mid-download; box 2's VM takes the download over and
//! systemd restarts baton in box 1's VM, which rejoins (NRestarts=1, the
//! unit active again, its own accept counter). Prints the accelerator,
//! each VM's boot-to-serving time and how long the restart took.
//! Needs root, QEMU and the image (scripts/test builds it first); a
//! missing one fails loudly.
mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The image the lab boots: beside this build's target/PROFILE/baton.
fn assert_image_built() {
    let dir = std::env::var_os("BATON_LAB_IMAGE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(BATON)
                .parent()
                .and_then(Path::parent)
                .map(|t| t.join("image"))
                .expect("target dir")
        });
    assert!(
        dir.join("baton.qcow2").exists(),
        "{} is missing: build the appliance image with scripts/image (scripts/test does)",
        dir.join("baton.qcow2").display()
    );
    assert!(
        std::process::Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_ok(),
        "qemu-system-x86_64 is missing: apt-get install qemu-system-x86 (scripts/test does)"
    );
}

/// Box `n`'s metrics through its admin API on the back LAN, from the
/// origin's namespace (a VM box's namespace holds only its QEMU and
/// bridges, no back-LAN address).
fn vm_metrics(g: &LabGuard, n: usize) -> String {
    let config = g.file(&format!("box{n}.toml")).display().to_string();
    ok(g.exec("origin", &[BATON, "admin", "--config", &config, "metrics"]))
}

/// What `lab up --vm` recorded: the accelerator, and box `n`'s boot to
/// serving in milliseconds.
fn accel(g: &LabGuard) -> String {
    fs::read_to_string(g.file("lab.state"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("vm=").map(str::to_string))
        .expect("lab.state names the VMs' accelerator")
}

/// Box `n`'s serial console (`boxN.log`), without colours.
fn console(g: &LabGuard, n: usize) -> String {
    let raw = fs::read(g.file(&format!("box{n}.log"))).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .lines()
        .map(|l| strip_ansi(l) + "\n")
        .collect()
}

fn boot_ms(g: &LabGuard, n: usize) -> u64 {
    fs::read_to_string(g.file(&format!("box{n}.boot_ms")))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("box{n}.boot_ms is missing: the lab did not see it serve"))
}

#[test]
fn lab_vm_canonical_check_survives_killing_box1s_vm() {
    assert_image_built();
    let t0 = Instant::now();
    let g = LabGuard::up("btvm1", &["--vm", "--boxes", "2"]);
    let accel = accel(&g);
    eprintln!(
        "lab up --vm --boxes 2: {:.1} s, accelerator {accel}, boot to serving: box1 {:.1} s, box2 {:.1} s",
        t0.elapsed().as_secs_f64(),
        boot_ms(&g, 1) as f64 / 1000.0,
        boot_ms(&g, 2) as f64 / 1000.0
    );
    // Each box runs in its VM and maps the ivshmem device's BAR.
    for n in 1..=2 {
        let log = console(&g, n);
        assert!(
            log.contains("box started")
                && log.contains("segment=/sys/bus/pci/devices/0000:00:05.0/resource2"),
            "box{n}'s VM did not start baton on the ivshmem BAR; its console:\n{log}"
        );
    }
    // The host's file is the BAR's memory: the header a VM wrote is there.
    let seg = fs::read(format!("/dev/shm/baton-lab-{}.seg", g.prefix)).expect("host segment");
    assert_eq!(
        seg.get(..8),
        Some(&b"BATONCKP"[..]),
        "the host's segment file has no header: the VMs did not write through their BARs"
    );

    let rst = RstCapture::start(&g);
    let started = Instant::now();
    let before = metric_value(&vm_metrics(&g, 2), "baton_http_resumed_total");
    // 50 MB at 2 MB/s takes ~25 s: box 1's VM dies once the body is under
    // way, with most of it still to come.
    let d = vec![start_download(&g, 0, 1, "50M.bin", "2M")];
    let moved = kill_under_way(&g, &d, 1, 50 << 20, started, Duration::from_secs(3));
    let status = ok(g.lab(&["status"]));
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("box1") && l.split_whitespace().nth(2) == Some("no")),
        "lab status does not show box1's VM dead after lab kill:\n{status}"
    );
    assert_all_identical(&g, d, "50M.bin");
    rst.assert_none_with_fins(1);
    let after = metric_value(&vm_metrics(&g, 2), "baton_http_resumed_total");
    assert!(
        after.saturating_sub(before) >= moved,
        "box2 resumed {} responses (baton_http_resumed_total {before} -> {after}), but {moved} were mid-body when box1's VM died",
        after.saturating_sub(before)
    );
    let log2 = console(&g, 2);
    assert!(
        log2.contains("takeover done") && log2.contains("dead=1"),
        "box2's console says nothing of taking box1's connections over:\n{log2}"
    );

    // The killed VM boots again and rejoins.
    let t1 = Instant::now();
    ok(g.lab(&["start", "box1"]));
    eprintln!(
        "lab start box1: serving again after {:.1} s (boot to serving {:.1} s)",
        t1.elapsed().as_secs_f64(),
        boot_ms(&g, 1) as f64 / 1000.0
    );
    download_identical(&g, 1, "1M.bin");
    let status = ok(g.lab(&["status"]));
    let boxes: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("box1 ") || l.starts_with("box2 "))
        .collect();
    assert!(
        boxes.len() == 2
            && boxes
                .iter()
                .all(|l| l.split_whitespace().nth(2) == Some("yes")),
        "lab status does not show both VMs alive:\n{status}"
    );

    systemd_kill_inside_box1(&g);
    eprintln!("lab_vm: {:.1} s in all", t0.elapsed().as_secs_f64());
}

/// `lab exec boxN` runs inside the VM (over its second serial port): what
/// systemd in box `n`'s VM says of baton.service, `KEY=VALUE` per line.
fn unit_show(g: &LabGuard, n: usize) -> String {
    ok(g.exec(
        &format!("box{n}"),
        &[
            "systemctl",
            "show",
            "baton",
            "-p",
            "NRestarts,ActiveState,SubState,MainPID",
        ],
    ))
}

fn unit_field(show: &str, key: &str) -> String {
    show.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("systemctl show says no {key}:\n{show}"))
        .to_string()
}

/// The box dies, the machine does not: `systemctl kill -s SIGKILL baton`
/// inside box 1's VM mid-download. Box 2's VM takes the download over
/// (byte-exact, no RST, its resumed counter), systemd restarts baton in
/// box 1's VM (Restart=on-failure; a SIGKILL is a failure, docs/ADMIN.md's
/// exit statuses) and it rejoins: the unit is active again (Type=notify:
/// READY=1 comes only once the box is a member of the view) and box 1's
/// new incarnation accepts a new connection to its address itself.
fn systemd_kill_inside_box1(g: &LabGuard) {
    let phase = Instant::now();
    let before = unit_show(g, 1);
    assert_eq!(
        (
            unit_field(&before, "ActiveState").as_str(),
            unit_field(&before, "NRestarts").as_str()
        ),
        ("active", "0"),
        "baton.service in box1's VM is not serving as a first start:\n{before}"
    );
    let old_pid = unit_field(&before, "MainPID");
    let marks_before = console(g, 1)
        .matches("telling the service manager READY=1")
        .count();

    let rst = RstCapture::start(g);
    let resumed_before = metric_value(&vm_metrics(g, 2), "baton_http_resumed_total");
    let started = Instant::now();
    let d = vec![start_download(g, 0, 1, "50M.bin", "4M")];
    let t_kill = std::cell::Cell::new(None);
    let moved = when_under_way(g, &d, 1, 50 << 20, started, Duration::from_secs(3), |g| {
        ok(g.exec("box1", &["systemctl", "kill", "-s", "SIGKILL", "baton"]));
        t_kill.set(Some(Instant::now()));
    });
    assert_all_identical(g, d, "50M.bin");
    rst.assert_none_with_fins(1);
    let resumed = metric_value(&vm_metrics(g, 2), "baton_http_resumed_total") - resumed_before;
    assert!(
        resumed >= moved,
        "box2 resumed {resumed} responses after baton was SIGKILLed in box1's VM, but {moved} were mid-body"
    );
    let status = ok(g.lab(&["status"]));
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("box1") && l.split_whitespace().nth(2) == Some("yes")),
        "box1's VM died with its baton: only the process was to die:\n{status}"
    );

    // systemd restarts it (RestartSec=2s) and it rejoins.
    let deadline = Instant::now() + Duration::from_secs(240);
    let after = loop {
        let show = unit_show(g, 1);
        if unit_field(&show, "NRestarts") == "1" && unit_field(&show, "ActiveState") == "active" {
            break show;
        }
        assert!(
            Instant::now() < deadline,
            "systemd did not bring baton back in box1's VM within 240 s:\n{show}\nits console:\n{}",
            console(g, 1)
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let rejoined_after = t_kill.get().map_or(0.0, |t| t.elapsed().as_secs_f64());
    assert_ne!(
        unit_field(&after, "MainPID"),
        old_pid,
        "baton.service is active with the killed process's pid"
    );
    let marks = console(g, 1)
        .matches("telling the service manager READY=1")
        .count();
    assert_eq!(
        marks,
        marks_before + 1,
        "box1's console shows {marks} READY=1 lines, {marks_before} before the kill: no second incarnation joined"
    );
    let accepted =
        |g: &LabGuard| metric_value(&vm_metrics(g, 1), "baton_dataplane_tcp_accepted_total");
    let accepted_before = accepted(g);
    download_identical(g, 1, "1M.bin");
    assert!(
        accepted(g) > accepted_before,
        "box1's new incarnation did not accept the connection to its own address"
    );
    eprintln!(
        "systemctl kill -s SIGKILL baton in box1's VM: {moved} download(s) moved to box2, \
         baton serving again {rejoined_after:.1} s after the kill (NRestarts=1); this part took {:.1} s",
        phase.elapsed().as_secs_f64()
    );
}

/// The canonical check with every VM box on the DPDK backend (`lab up --vm
/// --backend dpdk`): inside each VM the front NIC is a virtio PCI device
/// bound to uio_pci_generic and driven by DPDK's net_virtio, not
/// net_af_packet; box 1's VM killed mid-download, box 2 resumes it
/// byte-exact with no RST. Needs an image built with `scripts/image
/// --features dpdk` (scripts/test builds that one).
#[test]
fn lab_vm_dpdk_canonical_check_on_the_virtio_pci_nic() {
    assert_image_built();
    let t0 = Instant::now();
    let g = LabGuard::up("btvmd", &["--vm", "--boxes", "2", "--backend", "dpdk"]);
    eprintln!(
        "lab up --vm --backend dpdk --boxes 2: {:.1} s, accelerator {}, boot to serving: box1 {:.1} s, box2 {:.1} s",
        t0.elapsed().as_secs_f64(),
        accel(&g),
        boot_ms(&g, 1) as f64 / 1000.0,
        boot_ms(&g, 2) as f64 / 1000.0
    );
    for n in 1..=2 {
        let log = console(&g, n);
        assert!(
            log.contains("bound to uio_pci_generic")
                && log.contains("DPDK port started device=0000:00:03.0")
                && log.contains("driver=net_virtio"),
            "box{n}'s VM does not run DPDK's net_virtio on its PCI NIC; its console:\n{log}"
        );
    }
    let rst = RstCapture::start(&g);
    let started = Instant::now();
    let before = metric_value(&vm_metrics(&g, 2), "baton_http_resumed_total");
    let d = vec![start_download(&g, 0, 1, "50M.bin", "2M")];
    let moved = kill_under_way(&g, &d, 1, 50 << 20, started, Duration::from_secs(3));
    assert_all_identical(&g, d, "50M.bin");
    rst.assert_none_with_fins(1);
    let after = metric_value(&vm_metrics(&g, 2), "baton_http_resumed_total");
    assert!(
        after.saturating_sub(before) >= moved,
        "box2 resumed {} responses on DPDK (baton_http_resumed_total {before} -> {after}), but {moved} were mid-body when box1's VM died",
        after.saturating_sub(before)
    );
    let log2 = console(&g, 2);
    assert!(
        log2.contains("takeover done") && log2.contains("dead=1"),
        "box2's console says nothing of taking box1's connections over:\n{log2}"
    );
    eprintln!("lab_vm_dpdk: {:.1} s in all", t0.elapsed().as_secs_f64());
}
