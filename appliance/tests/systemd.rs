//! The box under systemd (issue 16, part 1), as far as this machine can
//! show it without systemd as PID 1:
//!
//! - the real `baton` binary, started for a lab box with `NOTIFY_SOCKET`
//!   pointing at a datagram socket this test binds (what systemd does for a
//!   `Type=notify` unit), tells READY=1 only after it has started its
//!   dataplane and joined the view, and then serves (byte-exact download,
//!   its `baton_view_phase{phase="member"}` gauge); sends WATCHDOG=1 pings
//!   when `WATCHDOG_USEC` asks for them; and STOPPING=1 on SIGTERM;
//! - `packaging/baton.service` passes `systemd-analyze verify` with no
//!   complaint at all (an unknown key is only a warning there, so the test
//!   fails on any output, not only on the exit status).
//!
//! `systemctl start baton` in a booted system is the VM part of issue 16.
mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use common::*;

/// The notifications a fake service manager received, in order.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<String>>>);

impl Received {
    /// Listens on `path` until the test ends (the thread dies with it).
    fn listen(path: &Path) -> Received {
        let socket =
            UnixDatagram::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        let got = Received::default();
        let sink = got.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.0.lock().unwrap().push(text);
            }
        });
        got
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Index of the first datagram with line `line`.
    fn position(&self, line: &str) -> Option<usize> {
        self.all().iter().position(|d| d.lines().any(|l| l == line))
    }

    fn count(&self, line: &str) -> usize {
        self.all()
            .iter()
            .filter(|d| d.lines().any(|l| l == line))
            .count()
    }

    /// Waits up to `limit` for `done`; panics with what arrived otherwise.
    #[track_caller]
    fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&Received) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < limit,
                "no {what} within {limit:?}; the box sent: {:#?}",
                self.all()
            );
            sleep(Duration::from_millis(50));
        }
    }
}

fn pid_alive(pid: i32) -> bool {
    // A zombie (the box is reaped by init, not us) counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn lab_systemd_box_notifies_ready_once_serving_pings_the_watchdog_and_stopping_on_sigterm() {
    let g = LabGuard::new("btsd1");
    let dir = std::env::temp_dir().join(format!("baton-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("notify.sock");
    let got = Received::listen(&socket);

    // 400 ms: the box pings every 200 ms, from its watcher thread.
    let up = g
        .driver
        .command(&["up", "--boxes", "1"])
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .output()
        .expect("run baton lab up");
    assert!(up.status.success(), "lab up: {}", text(&up));

    got.wait_for("READY=1", Duration::from_secs(30), |r| {
        r.position("READY=1").is_some()
    });
    let ready = got.position("READY=1").unwrap();
    let dataplane = got
        .position("STATUS=starting the dataplane")
        .expect("a STATUS line for the dataplane's start");
    assert!(
        dataplane < ready,
        "READY=1 came before the dataplane started: {:#?}",
        got.all()
    );
    assert!(
        got.all()[ready]
            .lines()
            .any(|l| l == "STATUS=serving: member of the agreed view"),
        "READY=1 without the member status: {:#?}",
        got.all()
    );
    assert_eq!(got.count("READY=1"), 1, "READY=1 sent more than once");

    // Ready means serving: the box is a member and answers byte-exact.
    let metrics = box_metrics(&g, 1);
    assert_eq!(
        metric_value(&metrics, "baton_view_phase{phase=\"member\"}"),
        1,
        "READY=1 sent, but the box is not a member:\n{metrics}"
    );
    download_identical(&g, 1, "1K.bin");

    // The watchdog: pings keep coming while the box runs.
    let pings_at_ready = got.count("WATCHDOG=1");
    got.wait_for("3 more WATCHDOG=1", Duration::from_secs(30), |r| {
        r.count("WATCHDOG=1") >= pings_at_ready + 3
    });

    // SIGTERM: STOPPING=1, then the process ends.
    let pid: i32 = std::fs::read_to_string(g.file("box1.pid"))
        .expect("box1.pid")
        .trim()
        .parse()
        .expect("a pid in box1.pid");
    assert!(pid_alive(pid), "box1 (pid {pid}) is not running");
    assert_eq!(
        got.position("STOPPING=1"),
        None,
        "STOPPING=1 before SIGTERM"
    );
    // SAFETY: kill(2) on a pid the lab started for this test.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    got.wait_for("STOPPING=1", Duration::from_secs(30), |r| {
        r.position("STOPPING=1").is_some()
    });
    let start = Instant::now();
    while pid_alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "box1 still runs 30 s after SIGTERM"
        );
        sleep(Duration::from_millis(50));
    }
    eprintln!("the box sent: {:#?}", got.all());
    let log = std::fs::read_to_string(g.file("box1.log")).unwrap_or_default();
    assert!(
        log.contains("stopping"),
        "box1's log does not say it stopped:\n{log}"
    );
    drop(g);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify_without_a_warning() {
    // A root with the unit where the package installs it, the binary it
    // runs (verify checks ExecStart's program exists) and the system's own
    // units (the targets it orders itself against).
    let r = std::env::temp_dir().join(format!("baton-unit-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&r);
    let units = r.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    let system_units = Path::new("/usr/lib/systemd/system");
    assert!(
        system_units.is_dir(),
        "{} is missing: install systemd (scripts/test does)",
        system_units.display()
    );
    for e in std::fs::read_dir(system_units).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), units.join(e.file_name())).unwrap();
        }
    }
    std::fs::copy(BATON, r.join("usr/bin/baton")).unwrap();
    std::fs::copy(
        root().join("packaging/baton.service"),
        units.join("baton.service"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .arg("baton.service")
        .output()
        .expect("systemd-analyze is missing: install systemd (scripts/test does)");
    let _ = std::fs::remove_dir_all(&r);
    assert!(out.status.success(), "verify failed: {}", text(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "verify complained: {}",
        text(&out)
    );
}

#[test]
fn systemd_unit_restarts_what_the_cluster_survives_and_sandboxes_the_box() {
    // What docs/ADMIN.md promises of the unit, line by line: a change here
    // must change the docs too.
    let unit = std::fs::read_to_string(root().join("packaging/baton.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "ExecStartPre=/usr/bin/baton check-config /etc/baton/baton.toml",
        "ExecStart=/usr/bin/baton run --config /etc/baton/baton.toml",
        "Restart=on-failure",
        "WatchdogSec=5s",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN CAP_SYS_NICE CAP_IPC_LOCK",
        "LimitMEMLOCK=infinity",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(has(line), "packaging/baton.service lacks {line:?}");
    }
    // Fencing (3) and the fatal policy (70) must be failures, so that
    // Restart=on-failure brings the box back as a new incarnation.
    assert!(
        !unit
            .lines()
            .any(|l| l.starts_with("SuccessExitStatus=")
                || l.starts_with("RestartPreventExitStatus=")),
        "an exit status the box uses would not be restarted"
    );
    // It must not forbid what the box does: SCHED_FIFO, /dev (hugepages,
    // vfio, a PCI BAR segment), /sys writable.
    for line in [
        "RestrictRealtime=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
    ] {
        assert!(!has(line), "packaging/baton.service sets {line:?}");
    }
}

/// One line of `dpkg-deb ARGS… DEB`.
fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("dpkg-deb is missing (package dpkg)");
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn deb_package_built_by_scripts_image_holds_the_binary_the_unit_and_the_conffile() {
    // scripts/image is what an operator runs: cargo-deb (installed if
    // missing), a release build, the .deb. With the features scripts/test
    // built the image with, so the release build is the one already made;
    // the image itself is lab_vm's to boot, not rebuilt here.
    let mut image = Command::new(root().join("scripts/image"));
    image
        .args(["--deb-only", "--features", "dpdk"])
        .current_dir(root());
    // ring's build script reruns when a CARGO_PKG_* or CARGO_MANIFEST_* it
    // reads differs from the last build's, and cargo compares its own
    // environment: the test runner's (this package's) rebuilt ring and
    // everything on it, baton included, for 1.5 min.
    for (name, _) in std::env::vars_os() {
        let runner_set = name.to_str().is_some_and(|n| {
            [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_BIN_",
                "CARGO_CRATE_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|p| n.starts_with(p))
                || n == "CARGO_TARGET_TMPDIR"
                || n == "OUT_DIR"
        });
        if runner_set {
            image.env_remove(name);
        }
    }
    let out = image.output().expect("run scripts/image");
    assert!(out.status.success(), "scripts/image: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = stdout
        .lines()
        .find_map(|l| l.strip_prefix("scripts/image: built "))
        .map(|p| root().join(p.trim()))
        .unwrap_or_else(|| panic!("scripts/image named no .deb: {}", text(&out)));

    let files = dpkg_deb(&["-c"], &deb);
    let entry = |path: &str| {
        files
            .lines()
            .find(|l| l.ends_with(path))
            .unwrap_or_else(|| panic!("{} lacks {path}:\n{files}", deb.display()))
            .to_string()
    };
    assert!(entry("./usr/bin/baton").starts_with("-rwxr-xr-x"));
    entry("./usr/lib/systemd/system/baton.service");
    // The config holds the cluster key and the admin token.
    assert!(entry("./etc/baton/baton.toml").starts_with("-rw-------"));

    let info = dpkg_deb(&["-I"], &deb);
    assert!(info.contains("Package: baton"), "{info}");
    let ctl = std::env::temp_dir().join(format!("baton-deb-ctl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&ctl);
    let out = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(&ctl)
        .output()
        .expect("dpkg-deb -e");
    assert!(out.status.success(), "dpkg-deb -e: {}", text(&out));
    let conffiles = std::fs::read_to_string(ctl.join("conffiles")).unwrap_or_default();
    let postinst = std::fs::read_to_string(ctl.join("postinst")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&ctl);
    assert_eq!(conffiles.trim(), "/etc/baton/baton.toml");
    // The unit is registered, and a running box restarted after an
    // upgrade; never started at install (the example config is refused).
    assert!(
        postinst.contains("deb-systemd-helper update-state baton.service")
            && postinst.contains("try-restart baton.service"),
        "postinst:\n{postinst}"
    );
    assert!(
        !postinst.contains("deb-systemd-invoke start"),
        "postinst starts the box:\n{postinst}"
    );

    // The packaged binary runs, and its check-config refuses the packaged
    // example (public key and token) until the operator edits it: the
    // unit's ExecStartPre stops an unconfigured box.
    let x = std::env::temp_dir().join(format!("baton-deb-x-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&x);
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&x)
        .output()
        .expect("dpkg-deb -x");
    assert!(out.status.success(), "dpkg-deb -x: {}", text(&out));
    let baton = x.join("usr/bin/baton");
    let version = Command::new(&baton).arg("--version").output().unwrap();
    let check = Command::new(&baton)
        .arg("check-config")
        .arg(x.join("etc/baton/baton.toml"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&x);
    assert!(
        version.status.success(),
        "baton --version: {}",
        text(&version)
    );
    assert_eq!(
        check.status.code(),
        Some(1),
        "check-config of the packaged example: {}",
        text(&check)
    );
}
