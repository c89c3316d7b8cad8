//! Core pinning for the request-rate suites (throughput, https, ipv6): the
//! server under test on core 0 (a Baton box's dataplane workers, nginx's
//! worker processes); the load client on core 1, or on core 0 with the
//! server when it holds one connection.
//!
//! Unpinned, the scheduler decides run by run whether client and server
//! share a core (a round trip is then a context switch, about 4 µs) or not
//! (a cross-core wake-up in the VM, 10–60 µs with whatever else runs), and
//! whether a busy server migrates: one-connection figures came out bimodal
//! and ratios of alternated runs (IPv6/IPv4, Baton/nginx) swung from 0.5 to
//! 2.6 on one machine. Pinned, every run of a comparison is in the same
//! regime; the report says so. One connection is a ping-pong: across two
//! of this VM's cores each request waits for two cross-core wake-ups
//! (about 25 µs each on the wire, against 4–9 µs of work), so its rate
//! would be the hypervisor's; on one core it is the server's and the
//! client's work. On a machine with one core nothing is pinned. Knows
//! nothing of what the suites measure.

use std::path::Path;

use anyhow::{Context, Result};

/// Which cores the server and the load client run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pinning {
    pub(crate) server: usize,
    pub(crate) client: usize,
}

impl Pinning {
    /// Server on core 0, client on core 1; `None` with fewer than two cores.
    pub(crate) fn for_machine() -> Option<Pinning> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        (cores >= 2).then_some(Pinning {
            server: 0,
            client: 1,
        })
    }

    /// How the report names it.
    pub(crate) fn describe(&self) -> String {
        format!(
            "servers (the Baton box's dataplane worker, nginx's worker) pinned to core {}, the load client to core {} (with one connection to core {} beside the server: a one-connection rate across two cores of this VM is set by cross-core wake-ups, see BENCHMARKS.md)",
            self.server, self.client, self.server
        )
    }

    /// The core a load client with `connections` connections runs on.
    pub(crate) fn client_core(&self, connections: u64) -> usize {
        if connections == 1 {
            self.server
        } else {
            self.client
        }
    }

    /// The command prefix that runs a load client with `connections`
    /// connections on its core.
    pub(crate) fn client_prefix(&self, connections: u64) -> Vec<String> {
        let core = self.client_core(connections);
        vec!["taskset".into(), "-c".into(), core.to_string()]
    }
}

/// Pins the dataplane worker threads (`baton-w*`) of the box whose process
/// is `pid` to `core` (`None`: every core again). Returns how many.
pub(crate) fn pin_box_workers(pid: u32, core: Option<usize>) -> Result<usize> {
    let mut pinned = 0;
    let tasks = format!("/proc/{pid}/task");
    for entry in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
        let path = entry?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("baton-w") {
            continue;
        }
        let tid = tid_of(&path)?;
        set_affinity(tid, core).with_context(|| format!("pinning worker thread {tid}"))?;
        pinned += 1;
    }
    anyhow::ensure!(pinned > 0, "box process {pid} has no baton-w* thread");
    Ok(pinned)
}

/// Pins the child processes of `parent` (nginx's workers under its master)
/// to `core` (`None`: every core again). Returns how many.
pub(crate) fn pin_children(parent: u32, core: Option<usize>) -> Result<usize> {
    let mut pinned = 0;
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            let pid = tid_of(&path)?;
            set_affinity(pid, core).with_context(|| format!("pinning process {pid}"))?;
            pinned += 1;
        }
    }
    anyhow::ensure!(pinned > 0, "process {parent} has no child to pin");
    Ok(pinned)
}

fn tid_of(path: &Path) -> Result<i32> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("{} is no task", path.display()))
}

fn set_affinity(tid: i32, core: Option<usize>) -> std::io::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // SAFETY: cpu_set_t is plain data; CPU_SET is given cores below its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        match core {
            Some(c) => libc::CPU_SET(c.min(libc::CPU_SETSIZE as usize - 1), &mut set),
            None => {
                for c in 0..cores.min(libc::CPU_SETSIZE as usize) {
                    libc::CPU_SET(c, &mut set);
                }
            }
        }
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_process_is_pinned_and_released() {
        let Some(p) = Pinning::for_machine() else {
            panic!("this test needs two cores");
        };
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let n = pin_children(std::process::id(), Some(p.server)).unwrap();
        assert!(n >= 1);
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let allowed = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list"))
            .unwrap()
            .to_string();
        pin_children(std::process::id(), None).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(allowed.ends_with(&format!("\t{}", p.server)), "{allowed}");
        assert_eq!(p.client_prefix(64), ["taskset", "-c", "1"]);
        assert_eq!(p.client_prefix(1), ["taskset", "-c", "0"]);
    }
}
