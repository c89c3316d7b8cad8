//! The harness every lab end-to-end test shares: root check, `baton lab`
//! runner, a guard that serializes lab tests (flock) and removes the lab
//! whatever happened, sha256 helpers.
#![allow(dead_code)]
use std::fs;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

pub const BATON: &str = env!("CARGO_BIN_EXE_baton");

pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the lab tests need root (network namespaces, raw sockets): run them as root, e.g. `sudo -E cargo test -p baton --test lab`"
    );
}

/// Runs `baton lab --prefix P ARGS…`.
pub fn lab(prefix: &str, args: &[&str]) -> Output {
    Command::new(BATON)
        .arg("lab")
        .args(["--prefix", prefix])
        .args(args)
        .output()
        .expect("cannot run the baton binary")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "command failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Our namespaces, from `ip netns list`.
pub fn namespaces_of(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| ns.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect()
}

/// Holds the test lock; on drop, removes the lab whatever happened.
pub struct LabGuard {
    pub prefix: String,
    _lock: fs::File,
}

impl LabGuard {
    /// Takes the lock and clears any lab of this prefix that a killed
    /// earlier run left, without building anything.
    pub fn new(prefix: &str) -> LabGuard {
        require_root();
        fs::create_dir_all("/run/baton-lab").expect("create /run/baton-lab");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/run/baton-lab/.test.lock")
            .expect("open the test lock");
        // SAFETY: flock on a descriptor we own; blocks until the lab tests
        // before us are done.
        let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
        ok(lab(prefix, &["down"]));
        LabGuard {
            prefix: prefix.to_string(),
            _lock: lock,
        }
    }

    /// As `new`, then `lab up ARGS…`.
    pub fn up(prefix: &str, args: &[&str]) -> LabGuard {
        let g = LabGuard::new(prefix);
        let mut all = vec!["up"];
        all.extend_from_slice(args);
        ok(lab(prefix, &all));
        g
    }

    pub fn lab(&self, args: &[&str]) -> Output {
        lab(&self.prefix, args)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/run/baton-lab/{}/{name}", self.prefix))
    }

    /// `lab exec NODE -- CMD…`.
    pub fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        let mut all = vec!["exec", node, "--"];
        all.extend_from_slice(cmd);
        self.lab(&all)
    }

    /// The sha256 that objects.sha256 lists for `name`.
    pub fn listed_sha(&self, name: &str) -> String {
        let list = fs::read_to_string(self.file("objects.sha256")).expect("objects.sha256");
        list.lines()
            .find_map(|l| {
                let (h, n) = l.split_once("  ")?;
                (n == name).then(|| h.to_string())
            })
            .unwrap_or_else(|| panic!("{name} is not in objects.sha256:\n{list}"))
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let o = lab(&self.prefix, &["down"]);
        if !o.status.success() {
            eprintln!("lab down --prefix {} failed: {}", self.prefix, text(&o));
        }
    }
}

pub fn sha256_file(path: &PathBuf) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
