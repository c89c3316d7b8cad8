//! A two-namespace lab for tests that need a real Linux peer: a client
//! namespace with `eth0` 198.18.0.100/24 and a box namespace with `front0`
//! and no kernel address, joined by a veth pair. Everything is removed by
//! `Drop`, also when a test fails.
#![allow(dead_code)]

use std::process::Command;

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
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    }

    /// Enters the namespace on the current thread (for a dedicated thread).
    pub fn enter_current_thread(&self) {
        enter(&format!("/var/run/netns/{}", self.name));
    }
}

fn enter(path: &str) {
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
