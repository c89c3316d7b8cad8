//! What the dataplane's tests share. Here: a two-namespace lab for tests
//! that need a real Linux peer (a client namespace with `eth0`
//! 198.18.0.100/24 and a box namespace with `front0` and no kernel
//! address, joined by a veth pair) and a hugepage reservation; everything
//! is given back by `Drop`, also when a test fails. In [`wire`] the test
//! network's addresses and frames, in [`memnet`] a worker on an in-memory
//! link, in [`objects`] the lab's objects.
#![allow(dead_code)]

pub mod memnet;
pub mod objects;
pub mod wire;

use sha2::{Digest, Sha256};
use std::process::{Child, Command, Stdio};

/// Fails the test loudly when not root (namespaces need CAP_SYS_ADMIN).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root to create network namespaces; run it as root"
    );
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn ip");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace deleted on drop.
pub struct Netns {
    /// Its name (starts with `bt`).
    pub name: String,
}

impl Netns {
    /// Creates `name`.
    pub fn new(name: &str) -> Netns {
        assert!(name.starts_with("bt"));
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run(&["ip", "netns", "add", name]);
        let ns = Netns {
            name: name.to_string(),
        };
        run(&["ip", "-n", name, "link", "set", "lo", "up"]);
        ns
    }

    /// Where the namespace is bound (for threads that enter it).
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// Runs `cmd` inside the namespace.
    pub fn exec(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .expect("spawn ip netns exec")
    }

    /// Runs `f` on a new thread that has entered this namespace; sockets it
    /// opens live in the namespace, and threads it spawns inherit it.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        run_in(self.path(), f)
    }

    /// Enters the namespace on the current thread (for a dedicated thread).
    pub fn enter_current_thread(&self) {
        enter(&self.path());
    }

    /// Downloads `http://SERVICE/NAME` with curl in the namespace into
    /// `out` (at most `max_secs`); fails the test when curl fails, else
    /// returns the bytes.
    pub fn curl(&self, name: &str, out: &std::path::Path, max_secs: u32) -> Vec<u8> {
        let o = self.exec(&[
            "curl",
            "-sS",
            "--max-time",
            &max_secs.to_string(),
            "-o",
            out.to_str().expect("a UTF-8 temporary path"),
            &format!("http://{}/{name}", wire::SERVICE),
        ]);
        assert!(
            o.status.success(),
            "curl {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::read(out).expect("curl wrote its output")
    }

    /// What `ip neigh` says about `ip` in the namespace, lowercased.
    pub fn neigh(&self, ip: &str) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name, "neigh", "show", ip])
            .output()
            .expect("spawn ip neigh");
        String::from_utf8_lossy(&out.stdout).to_lowercase()
    }

    /// The MAC of `dev` in the namespace, lowercased ("" when unknown).
    pub fn mac_of(&self, dev: &str) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-br", "link", "show", dev])
            .output()
            .expect("spawn ip");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or("")
            .to_lowercase()
    }
}

/// Runs `f` on a new thread that has entered the namespace bound at
/// `path` (see [`Netns::path`]); for code already on a namespace's thread.
pub fn run_in<T: Send + 'static>(path: String, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        enter(&path);
        f()
    })
    .join()
    .expect("thread in namespace panicked")
}

/// Starts `cmd` inside the namespace `ns`, its output discarded.
pub fn spawn_quiet_in(ns: &str, cmd: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ip netns exec")
}

/// Moves the calling thread into the namespace bound at `path`.
pub fn enter(path: &str) {
    let f = std::fs::File::open(path).expect("open netns file");
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a valid namespace fd affects only this thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Client and box namespaces joined by veth `eth0` <-> `front0`.
pub struct Lab {
    /// Where clients run: `eth0` 198.18.0.100/24.
    pub client: Netns,
    /// Where the dataplane runs: `front0`, no kernel address.
    pub boxns: Netns,
}

impl Lab {
    /// Builds the lab; `tag` keeps parallel tests apart.
    pub fn new(tag: &str) -> Lab {
        require_root();
        let pid = std::process::id();
        let client = Netns::new(&format!("btc{pid}{tag}"));
        let boxns = Netns::new(&format!("btb{pid}{tag}"));
        run(&[
            "ip",
            "-n",
            &client.name,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "front0",
            "netns",
            &boxns.name,
        ]);
        run(&[
            "ip",
            "-n",
            &client.name,
            "addr",
            "add",
            "198.18.0.100/24",
            "dev",
            "eth0",
        ]);
        run(&["ip", "-n", &client.name, "link", "set", "eth0", "up"]);
        run(&["ip", "-n", &boxns.name, "link", "set", "front0", "up"]);
        // Keep IPv6 router solicitations and DAD out of the captures.
        for ns in [&client, &boxns] {
            let _ = ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        }
        Lab { client, boxns }
    }
}

/// The 2 MiB hugepage reservation set for a test and restored on drop.
pub struct NrHugepages {
    before: String,
}

impl NrHugepages {
    const PATH: &'static str = "/proc/sys/vm/nr_hugepages";

    /// Reserves `pages` 2 MiB pages (0 takes the reservation away).
    pub fn set(pages: u32) -> NrHugepages {
        let before = std::fs::read_to_string(Self::PATH).expect("read nr_hugepages");
        let g = NrHugepages {
            before: before.trim().to_string(),
        };
        std::fs::write(Self::PATH, pages.to_string()).expect("write nr_hugepages");
        g
    }
}

impl Drop for NrHugepages {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.before);
    }
}

/// SHA-256 of `data` in hex, for comparing downloads in messages.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
