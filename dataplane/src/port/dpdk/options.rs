//! [`DpdkOptions`]: the settings of the DPDK backend, and the EAL argument
//! list they become.

use crate::wire::ethernet::MacAddr;
use std::time::Duration;

/// Longest [`crate::port::Port::wait`] sleeps by default before it returns to poll the
/// device ([`DpdkOptions::idle_sleep`], [`super::DpdkPort::set_idle_sleep`]).
pub const MAX_IDLE_SLEEP: Duration = Duration::from_millis(1);

/// Settings that become EAL arguments and the device's queues and pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkOptions {
    /// Extra EAL arguments, appended last (e.g. `-d`, `--log-level=pmd.net.af_packet:debug`).
    pub eal_extra: Vec<String>,
    /// Back DPDK memory with hugepages (hugetlbfs must be mounted and
    /// pages reserved); false: `--no-huge`, ordinary anonymous memory.
    pub hugepages: bool,
    /// Memory the EAL reserves, in MiB (`-m`).
    pub memory_mb: u32,
    /// Virtual devices, one `--vdev` each: `net_af_packet0,iface=front0,qpairs=2`.
    pub vdevs: Vec<String>,
    /// Queue pairs, one per worker.
    pub queues: u16,
    /// Mbufs in the pool shared by the queues (2^k - 1 is best for the
    /// pool's ring); raised to what the queues' descriptors and the
    /// per-lcore caches need if lower.
    pub mbufs: u32,
    /// `--file-prefix`: unique per box, so several boxes' EALs coexist on
    /// one host (their runtime directories and hugepage files differ).
    pub file_prefix: String,
    /// The EAL's main lcore (`-l`): `rte_eal_init` pins the calling thread
    /// to it while it runs (we restore the caller's affinity afterwards).
    /// Workers are our own threads, pinned by the dataplane, not EAL lcores.
    /// [`DpdkOptions::af_packet`] takes the lowest CPU the caller may use.
    pub main_lcore: usize,
    /// `--log-level` (e.g. `notice`, `error`, `debug`).
    pub log_level: String,
    /// Longest [`crate::port::Port::wait`] sleeps ([`MAX_IDLE_SLEEP`] by default): the
    /// added latency of a frame that arrives while an idle worker sleeps,
    /// traded against the CPU an idle worker burns waking up.
    pub idle_sleep: Duration,
    /// The MAC the configuration expects, if any. A vdev takes its
    /// device's MAC and cannot be given another: a different one is
    /// warned about when the port opens, and the device's is used.
    pub expected_mac: Option<MacAddr>,
}

impl DpdkOptions {
    /// Options for `queues` workers on the kernel interface `iface`
    /// through `net_af_packet` (no PCI, no hugepages), with a file prefix
    /// unique to this process.
    pub fn af_packet(iface: &str, queues: u16) -> DpdkOptions {
        let queues = queues.max(1);
        DpdkOptions {
            eal_extra: Vec::new(),
            hugepages: false,
            memory_mb: 256,
            vdevs: vec![format!("net_af_packet0,iface={iface},qpairs={queues}")],
            queues,
            mbufs: 8191,
            file_prefix: format!("baton-{}", std::process::id()),
            main_lcore: first_allowed_cpu(),
            log_level: "notice".into(),
            idle_sleep: MAX_IDLE_SLEEP,
            expected_mac: None,
        }
    }

    /// The name of the first vdev (`net_af_packet0` for
    /// `net_af_packet0,iface=front0`): the device the ports use.
    pub fn device_name(&self) -> Option<&str> {
        self.vdevs.first().map(|v| vdev_name(v))
    }

    /// The EAL argument list (without the program name):
    /// `-l`, `--file-prefix`, `--no-huge --no-shconf` (or `--huge-unlink`
    /// with hugepages), `-m`, `--no-pci`, `--no-telemetry`, `--log-level`, the `--vdev`s,
    /// then [`DpdkOptions::eal_extra`].
    ///
    /// `--no-pci`: boxes take their NICs through vdevs; no box may grab
    /// a PCI device another box or the host uses. Without hugepages,
    /// `--no-shconf` (no shared runtime files: `--in-memory` would be the
    /// stronger form, but the EAL refuses it with `--no-huge`, which
    /// implies legacy memory), so boxes on one host never contend for a
    /// runtime directory; with hugepages the unique file prefix keeps their
    /// runtime directories and hugepage files apart.
    pub fn eal_args(&self) -> Vec<String> {
        let mut a = vec![
            "-l".to_string(),
            self.main_lcore.to_string(),
            format!("--file-prefix={}", self.file_prefix),
        ];
        if self.hugepages {
            // No files at all (memfd-backed hugepages, no shared config):
            // a box that is killed (the lab's `kill`, a crash) leaves no
            // hugepage files holding pages, and boxes never share state.
            a.push("--in-memory".into());
            a.push(format!("-m{}", self.memory_mb.max(64)));
        } else {
            a.push("--no-huge".into());
            a.push("--no-shconf".into());
            a.push(format!("-m{}", self.memory_mb.max(64)));
        }
        // A PCI address among the devices (a NIC bound to uio_pci_generic
        // or vfio-pci, as in the appliance VM) is allow-listed with `-a`:
        // the EAL probes that device and no other PCI one.
        let (pci, vdevs): (Vec<&String>, Vec<&String>) = self
            .vdevs
            .iter()
            .partition(|v| is_pci_address(vdev_name(v)));
        if pci.is_empty() {
            a.push("--no-pci".into());
        }
        a.push("--no-telemetry".into());
        a.push(format!("--log-level={}", self.log_level));
        for p in pci {
            a.push("-a".into());
            a.push(p.clone());
        }
        for v in vdevs {
            a.push(format!("--vdev={v}"));
        }
        a.extend(self.eal_extra.iter().cloned());
        a
    }
}

/// The lowest CPU the calling thread may run on: the EAL pins its main
/// lcore's thread there, which fails for a CPU outside our cpuset (a box
/// started under `taskset` or in a cgroup without CPU 0).
pub(super) fn first_allowed_cpu() -> usize {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size is that of `set`.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return 0;
    }
    // SAFETY: reading bits of an initialised set.
    (0..libc::CPU_SETSIZE as usize)
        .find(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .unwrap_or(0)
}

/// Whether `name` is a PCI address, `DDDD:BB:DD.F` (hex).
pub(super) fn is_pci_address(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 12
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b':',
            10 => c == b'.',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `net_af_packet0` of `net_af_packet0,iface=front0`.
pub(super) fn vdev_name(spec: &str) -> &str {
    spec.split(',').next().unwrap_or(spec)
}

/// The vdevs named in EAL arguments (`--vdev=X` and `--vdev X`).
pub(super) fn vdevs_in(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--vdev=") {
            out.push(v.to_string());
        } else if a == "--vdev" {
            if let Some(v) = it.next() {
                out.push(v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn af_packet_options_give_no_huge_no_shconf_args_with_the_vdev() {
        let mut o = DpdkOptions::af_packet("front0", 2);
        o.file_prefix = "box1".into();
        o.main_lcore = 0;
        let a = o.eal_args();
        assert_eq!(
            a,
            vec![
                "-l",
                "0",
                "--file-prefix=box1",
                "--no-huge",
                "--no-shconf",
                "-m256",
                "--no-pci",
                "--no-telemetry",
                "--log-level=notice",
                "--vdev=net_af_packet0,iface=front0,qpairs=2",
            ]
        );
        assert_eq!(o.device_name(), Some("net_af_packet0"));
    }

    #[test]
    fn a_pci_device_is_allow_listed_instead_of_no_pci() {
        let mut o = DpdkOptions::af_packet("front0", 1);
        o.vdevs = vec!["0000:00:03.0".into()];
        let a = o.eal_args();
        assert!(!a.contains(&"--no-pci".to_string()), "{a:?}");
        let i = a.iter().position(|x| x == "-a").expect("-a");
        assert_eq!(a[i + 1], "0000:00:03.0");
        assert!(!a.iter().any(|x| x.starts_with("--vdev")));
        assert_eq!(o.device_name(), Some("0000:00:03.0"));
        assert!(is_pci_address("0000:00:03.0"));
        assert!(!is_pci_address("net_af_packet0"));
        assert!(!is_pci_address("0000:00:03.g"));
    }

    #[test]
    fn main_lcore_defaults_to_a_cpu_we_may_run_on() {
        // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: this thread, the size of `set`.
        let r =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        assert_eq!(r, 0);
        let o = DpdkOptions::af_packet("front0", 1);
        // SAFETY: reading a bit of an initialised set.
        assert!(unsafe { libc::CPU_ISSET(o.main_lcore, &set) });
        assert_eq!(
            &o.eal_args()[..2],
            &["-l".to_string(), o.main_lcore.to_string()]
        );
    }

    #[test]
    fn hugepage_options_drop_no_huge_and_keep_the_prefix() {
        let mut o = DpdkOptions::af_packet("front0", 1);
        o.hugepages = true;
        o.file_prefix = "box2".into();
        o.eal_extra = vec!["-d".into(), "/x.so".into()];
        let a = o.eal_args();
        assert!(!a.iter().any(|x| x == "--no-huge" || x == "--no-shconf"));
        assert!(
            a.contains(&"--in-memory".to_string()),
            "no hugepage files left by a killed box"
        );
        assert!(a.contains(&"--file-prefix=box2".to_string()));
        assert_eq!(&a[a.len() - 2..], &["-d".to_string(), "/x.so".to_string()]);
    }

    #[test]
    fn vdevs_are_found_in_both_argument_spellings() {
        let args: Vec<String> = [
            "--vdev=net_af_packet0,iface=a",
            "-l",
            "0",
            "--vdev",
            "net_null0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(vdevs_in(&args), vec!["net_af_packet0,iface=a", "net_null0"]);
        assert_eq!(vdev_name("net_af_packet0,iface=a"), "net_af_packet0");
        assert_eq!(vdev_name("net_null0"), "net_null0");
    }
}
