//! DPDK port: the same [`Port`] over the system's libdpdk (22.11, cargo
//! feature `dpdk`), so the workers run unchanged on a DPDK poll-mode
//! driver.
//!
//! Three pieces, in the order a box uses them:
//!
//! 1. [`DpdkOptions`] turns the configuration (hugepages or not, memory,
//!    the main lcore, vdevs such as `net_af_packet0,iface=front0,qpairs=2`,
//!    a file prefix unique per box) into EAL arguments
//!    ([`DpdkOptions::eal_args`]).
//! 2. [`DpdkEal::init`] runs `rte_eal_init` once per process. The EAL
//!    cannot be initialised twice (and not again after `rte_eal_cleanup`),
//!    so the result is kept for the life of the process: a second call
//!    with the same arguments returns the same EAL, with other arguments
//!    an error ([`DpdkError::EalArgsDiffer`]). A failed init keeps its
//!    error, with the EAL's own log lines and a hint
//!    ([`DpdkError::EalInit`]); nothing here panics or aborts.
//! 3. [`DpdkPort::open_group`] configures one ethdev with one RX/TX queue
//!    pair per worker (queue id = worker index), an mbuf pool, promiscuous
//!    mode off, starts it, and returns one [`DpdkPort`] per queue. A
//!    `net_af_packet` vdev must have exactly `qpairs` = workers: it opens
//!    one socket per qpair when created, and the kernel spreads frames over
//!    all of them ([`DpdkError::QueuesUnpolled`] otherwise).
//!
//! # Frames
//!
//! RX: `rte_eth_rx_burst` fills an array of mbufs; each frame is lent to
//! the worker straight from the mbuf's data (no copy on our side) and the
//! mbuf goes back to the pool right after the callback. (`net_af_packet`
//! itself copies each frame from its TPACKET_V2 ring into the mbuf; a
//! real NIC's PMD writes into the mbuf by DMA.) A chained (multi-segment)
//! mbuf never comes from the PMDs we configure (the pool's data room holds
//! a full frame); one that does is dropped and counted.
//!
//! TX is one copy today: each frame of the [`TxBatch`] is copied into a
//! fresh mbuf, the mbufs go out with `rte_eth_tx_burst`, and those the
//! device did not take are freed (TCP retransmits). Zero-copy TX would
//! need the worker to build frames directly in mbufs: a `TxBatch` whose
//! buffers are mbufs borrowed from this port's pool (or external buffers
//! attached with `rte_pktmbuf_attach_extbuf` pointing at the send queue's
//! bytes, freed by a callback once the NIC is done), i.e. a port-provided
//! buffer type in the [`Port`] trait instead of the worker's own arrays.
//!
//! # Waiting
//!
//! DPDK has no file descriptor to sleep on (net_af_packet's sockets are
//! private to the PMD), so [`Port::raw_fd`] is `None` and [`Port::wait`]
//! sleeps in ppoll(2) on the wake eventfd alone for at most
//! [`DpdkOptions::idle_sleep`] ([`MAX_IDLE_SLEEP`], 1 ms, by default): an
//! adaptive worker backs off the CPU, and a frame that arrives meanwhile
//! waits at most that long, like AF_PACKET's TPACKET_V3 block timeout. A
//! port that steers frames to a sleeping worker (below) wakes it through
//! that worker's eventfd, so steering adds no sleep. Measured in the lab
//! (two idle workers, adaptive mode): 1 ms costs 5.5 % of a core, 250 µs
//! 14 %, 100 µs 30 %; `ab -k -c 8` of 1 KiB objects on two queues gets
//! 18 k, 66 k and (20 µs) 111 k requests/s. Busy polling has no sleep.
//!
//! For scale (same lab, one worker, adaptive): `net_af_packet` moves a
//! 100 MB download at ~2.9 Gbit/s and `ab -k -c 8` gets ~120 k requests/s;
//! the AF_PACKET backend with GSO does ~14 Gbit/s and ~68 k requests/s.
//! `net_af_packet` copies every frame twice more than AF_PACKET (ring to
//! mbuf on RX; batch to mbuf to ring on TX) and cannot take 64 KiB GSO
//! frames; it is the way to run DPDK without a NIC, not a faster path.
//!
//! # Which worker sees a flow
//!
//! The dataplane's rule ([`super::worker_for`]) must hold: the worker that
//! owns a connection, including one restored from a checkpoint after a
//! takeover, must receive its packets. A NIC spreads flows over queues
//! with RSS, and `net_af_packet` with `qpairs > 1` joins its queue sockets
//! to a `PACKET_FANOUT_HASH` group: both hash with a key we do not
//! control, so the queue a flow lands on is not the worker that owns it.
//! When a device has more than one queue, each [`DpdkPort`] therefore
//! steers in software: it runs the same classic BPF program the AF_PACKET
//! backend gives the kernel ([`super::fanout::FANOUT_PROGRAM`], through
//! [`super::fanout::run_cbpf`]) on every received frame, and a frame that
//! belongs to another worker is handed over, as the mbuf pointer itself
//! (no copy), through that worker's bounded inbox, which it drains first
//! on its next [`Port::rx_burst`]. A taken-over connection thus reaches
//! its owner whatever queue the hash picked, at the cost of one cross-core
//! hop for the frames that land on the wrong queue ((n-1)/n of them with
//! n queues and an evenly spreading hash). On a NIC whose RSS can be
//! programmed (`rte_flow` rules per remote address and port, or a
//! redirection table matching our hash) the hop goes away; that is not
//! done here. With one queue nothing is steered.
//!
//! # Linking and the PMD
//!
//! build.rs links the shared libraries `pkg-config --libs libdpdk` names,
//! plus `librte_bus_vdev` (for `rte_vdev_init`, which hot-plugs a vdev
//! again after its device was closed). Debian's DPDK is a shared build: `rte_eal_init` loads every driver in
//! its plugin directory (`/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`,
//! `net_af_packet` among them) by itself, so neither `-d` nor linking
//! `librte_net_af_packet` is needed on such a system; a `-d PATH` in
//! [`DpdkOptions::eal_extra`] loads a driver from elsewhere.
//!
//! # Checksums
//!
//! [`RxMeta::checksum_trusted`] is set when the PMD marks the L4 checksum
//! good, or "none" (a local sender left it to offload, data intact).
//! `net_af_packet` reports neither, so a Linux sender on a veth must not
//! leave checksums to offload (the lab turns `tx` offload off on the
//! client's interface).

mod ffi;

use super::fanout::{run_cbpf, FANOUT_PROGRAM};
use super::{Port, PortError, RxMeta, TxBatch};
use crate::wire::ethernet::MacAddr;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::ffi::{CStr, CString};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use thiserror::Error;

/// Longest [`Port::wait`] sleeps by default before it returns to poll the
/// device ([`DpdkOptions::idle_sleep`], [`DpdkPort::set_idle_sleep`]).
pub const MAX_IDLE_SLEEP: Duration = Duration::from_millis(1);

/// Mbufs taken from the device per `rte_eth_rx_burst` call.
const RX_BURST: usize = 64;
/// Descriptors per RX and TX queue.
const RING_DESC: u16 = 1024;
/// Per-lcore mbuf cache of the pool (`RTE_MEMPOOL_CACHE_MAX_SIZE` is 512).
const POOL_CACHE: u32 = 256;
/// Frames waiting in one worker's inbox before steering drops them.
const INBOX_DEPTH: usize = 4096;
/// Bytes of the EAL log kept for an init error.
const EAL_LOG_TAIL: usize = 4096;

/// Errors of the EAL and of DPDK devices.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DpdkError {
    /// `rte_eal_init` failed; `reason` says why in words an operator can act
    /// on, `log` holds the EAL's last log lines.
    #[error("EAL init failed: {reason}{}", if log.is_empty() { String::new() } else { format!("\nEAL log:\n{log}") })]
    EalInit {
        /// What went wrong and what to do about it.
        reason: String,
        /// rte_errno after the failure.
        errno: i32,
        /// Tail of what the EAL logged during init.
        log: String,
    },
    /// The EAL is already running in this process with other arguments;
    /// one process has one EAL.
    #[error("EAL already initialised in this process with {running:?}; cannot start it again with {asked:?}")]
    EalArgsDiffer {
        /// Arguments of the running EAL.
        running: Vec<String>,
        /// Arguments of the refused call.
        asked: Vec<String>,
    },
    /// An argument cannot be passed to C (it holds a NUL byte).
    #[error("bad DPDK argument {0:?}: contains a NUL byte")]
    BadArgument(String),
    /// No ethdev of that name exists after EAL init and hot-plug.
    #[error("DPDK device {name:?} not found ({avail} ports available): {hint}")]
    NoDevice {
        /// The device name asked for (e.g. `net_af_packet0`).
        name: String,
        /// Ports the EAL knows.
        avail: u16,
        /// What probably went wrong.
        hint: String,
    },
    /// Hot-plugging a vdev (`rte_vdev_init`) failed.
    #[error("vdev {spec:?} failed to start: {reason}{}", if log.is_empty() { String::new() } else { format!("; driver log:\n{log}") })]
    Vdev {
        /// The vdev as given (`name,key=value,...`).
        spec: String,
        /// What the result means.
        reason: String,
        /// What the driver logged while it tried (e.g. `ioctl failed
        /// (SIOCGIFINDEX):No such device` for a missing interface).
        log: String,
    },
    /// An ethdev call failed.
    #[error("{call} on DPDK port {port} ({name}): {reason}")]
    Device {
        /// The DPDK function.
        call: &'static str,
        /// Port id.
        port: u16,
        /// Device name.
        name: String,
        /// rte_strerror of the result.
        reason: String,
    },
    /// The device cannot give each worker a queue pair.
    #[error("DPDK device {name:?} has {max} queue pairs, {asked} workers need one each (net_af_packet: add qpairs={asked} to the vdev)")]
    Queues {
        /// Device name.
        name: String,
        /// Queue pairs the device offers.
        max: u16,
        /// Queue pairs asked for.
        asked: u16,
    },
    /// A `net_af_packet` vdev has more queue pairs than workers: frames
    /// the kernel spreads to the unpolled ones would be lost.
    #[error("DPDK device {name:?} has qpairs={qpairs} but {asked} workers poll it: frames the kernel hashes to the other queues would never be read (set qpairs={asked} in the vdev)")]
    QueuesUnpolled {
        /// Device name.
        name: String,
        /// Queue pairs of the vdev.
        qpairs: u16,
        /// Workers.
        asked: u16,
    },
    /// The mbuf pool could not be created.
    #[error("mbuf pool of {mbufs} mbufs: {reason} (more memory: raise memory_mb or hugepages)")]
    Mempool {
        /// Mbufs asked for.
        mbufs: u32,
        /// rte_strerror of rte_errno.
        reason: String,
    },
}

impl From<DpdkError> for PortError {
    fn from(e: DpdkError) -> PortError {
        PortError::Os {
            call: "dpdk",
            source: std::io::Error::other(e),
        }
    }
}

fn strerror(errnum: c_int) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string, valid until the next call on this thread.
    let p = unsafe { ffi::rte_strerror(errnum.abs()) };
    if p.is_null() {
        return format!("error {errnum}");
    }
    // SAFETY: non-null, NUL-terminated (above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn rte_errno() -> c_int {
    // SAFETY: reads the calling thread's rte_errno.
    unsafe { ffi::baton_rte_errno() }
}

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
    /// Longest [`Port::wait`] sleeps ([`MAX_IDLE_SLEEP`] by default): the
    /// added latency of a frame that arrives while an idle worker sleeps,
    /// traded against the CPU an idle worker burns waking up.
    pub idle_sleep: Duration,
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
        a.push("--no-pci".into());
        a.push("--no-telemetry".into());
        a.push(format!("--log-level={}", self.log_level));
        for v in &self.vdevs {
            a.push(format!("--vdev={v}"));
        }
        a.extend(self.eal_extra.iter().cloned());
        a
    }
}

/// The lowest CPU the calling thread may run on: the EAL pins its main
/// lcore's thread there, which fails for a CPU outside our cpuset (a box
/// started under `taskset` or in a cgroup without CPU 0).
fn first_allowed_cpu() -> usize {
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

/// `net_af_packet0` of `net_af_packet0,iface=front0`.
fn vdev_name(spec: &str) -> &str {
    spec.split(',').next().unwrap_or(spec)
}

/// The vdevs named in EAL arguments (`--vdev=X` and `--vdev X`).
fn vdevs_in(args: &[String]) -> Vec<String> {
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

#[derive(Debug)]
struct EalInner {
    args: Vec<String>,
    /// Vdevs the EAL was given, for hot-plugging them again after a device
    /// was closed.
    vdevs: Vec<String>,
    /// Vdev names currently probed by us or the EAL; guarded so two opens
    /// of one device do not race.
    plug: Mutex<()>,
    /// Tail of what the EAL logged during init (why a vdev failed then).
    init_log: String,
}

static EAL: OnceLock<Result<Arc<EalInner>, DpdkError>> = OnceLock::new();

/// The process's DPDK Environment Abstraction Layer, initialised once.
///
/// Cheap to clone; never torn down (`rte_eal_cleanup` would forbid a later
/// init in the same process, and DPDK's threads and memory live until
/// exit anyway).
#[derive(Clone, Debug)]
pub struct DpdkEal {
    inner: Arc<EalInner>,
}

/// A hint for an EAL init failure, by rte_errno (rte_eal_init's documented
/// errors).
fn eal_hint(errno: c_int, args: &[String], log: &str) -> String {
    let huge = !args.iter().any(|a| a == "--no-huge");
    if huge && log.contains("Cannot get hugepage information") {
        // No hugetlbfs mount or no pages of any size reserved: the EAL
        // says EACCES, which would send the operator the wrong way.
        return format!(
            "no hugepages: reserve them (echo N > /proc/sys/vm/nr_hugepages) and mount \
             hugetlbfs, or use --no-huge (hugepages = false) ({})",
            strerror(errno)
        );
    }
    let base = match errno {
        libc::EACCES => "permission denied: the EAL needs root (or the capabilities for hugepages and raw sockets)".to_string(),
        libc::EAGAIN => "a bus or device could not be set up; try again".to_string(),
        libc::EALREADY => "rte_eal_init was already called in this process".to_string(),
        libc::EFAULT => "the tailq configuration is broken (a DPDK library mismatch?)".to_string(),
        libc::ENODEV => "memory setup failed: the EAL found no usable memory".to_string(),
        libc::ENOMEM if huge => "no hugepages: reserve them (echo N > /proc/sys/vm/nr_hugepages), mount hugetlbfs, or use --no-huge (hugepages = false)".to_string(),
        libc::ENOMEM => "not enough memory for the EAL (lower memory_mb?)".to_string(),
        libc::ENOTSUP => "the EAL does not support this configuration (a bus probe or driver failed)".to_string(),
        libc::EPROTO => "the EAL could not be configured (a secondary process without a primary?)".to_string(),
        libc::ENOEXEC => "a driver plugin (-d) could not be loaded".to_string(),
        libc::EINVAL => "invalid EAL arguments".to_string(),
        e => strerror(e),
    };
    let extra = if huge
        && (log.contains("hugepage") || log.contains("huge page"))
        && errno != libc::ENOMEM
    {
        "; hugepages are on: reserve some (echo N > /proc/sys/vm/nr_hugepages) and mount hugetlbfs, or use --no-huge"
    } else {
        ""
    };
    format!("{base}{extra} ({})", strerror(errno))
}

fn cstrings(args: &[String]) -> Result<Vec<CString>, DpdkError> {
    args.iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| DpdkError::BadArgument(a.clone())))
        .collect()
}

impl DpdkEal {
    /// Runs `rte_eal_init` with `args` (no program name) unless this process
    /// already did: then returns the running EAL if it was started with
    /// the same arguments, [`DpdkError::EalArgsDiffer`] if not, or the
    /// first init's error again if it failed.
    pub fn init(args: &[String]) -> Result<DpdkEal, DpdkError> {
        let asked = args.to_vec();
        let mut checked_here = false;
        let res = EAL.get_or_init(|| {
            checked_here = true;
            eal_init_once(&asked)
        });
        match res {
            Ok(inner) if checked_here || inner.args == asked => Ok(DpdkEal {
                inner: Arc::clone(inner),
            }),
            Ok(inner) => Err(DpdkError::EalArgsDiffer {
                running: inner.args.clone(),
                asked,
            }),
            Err(e) => Err(e.clone()),
        }
    }

    /// [`DpdkEal::init`] with [`DpdkOptions::eal_args`].
    pub fn from_options(opts: &DpdkOptions) -> Result<DpdkEal, DpdkError> {
        Self::init(&opts.eal_args())
    }

    /// The EAL running in this process, if any.
    pub fn running() -> Option<DpdkEal> {
        match EAL.get() {
            Some(Ok(inner)) => Some(DpdkEal {
                inner: Arc::clone(inner),
            }),
            _ => None,
        }
    }

    /// The arguments the EAL was started with.
    pub fn args(&self) -> &[String] {
        &self.inner.args
    }

    /// Ethdev ports the EAL knows (`rte_eth_dev_count_avail`).
    pub fn ports_available(&self) -> u16 {
        // SAFETY: the EAL is initialised (we hold it).
        unsafe { ffi::rte_eth_dev_count_avail() }
    }

    /// Starts a virtual device after init (`rte_vdev_init`), e.g.
    /// `net_af_packet1,iface=front1`.
    pub fn hotplug_vdev(&self, spec: &str) -> Result<(), DpdkError> {
        let _g = self.inner.plug.lock().unwrap_or_else(|p| p.into_inner());
        hotplug(spec, &self.inner.init_log)
    }

    /// The port id of the ethdev `name`, hot-plugging it from the EAL's
    /// `--vdev` arguments if it is not there (it was closed before).
    fn port_of(&self, name: &str) -> Result<u16, DpdkError> {
        let _g = self.inner.plug.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = port_by_name(name)? {
            return Ok(p);
        }
        let spec = self.inner.vdevs.iter().find(|v| vdev_name(v) == name);
        if let Some(spec) = spec {
            // The EAL was given it but it is gone: either its probe failed
            // at init (a bad iface), or a previous device was closed.
            hotplug(spec, &self.inner.init_log)?;
            if let Some(p) = port_by_name(name)? {
                return Ok(p);
            }
        }
        Err(DpdkError::NoDevice {
            name: name.to_string(),
            avail: self.ports_available(),
            hint: match spec {
                Some(s) => format!("vdev {s:?} did not create a port; see the EAL log"),
                None => "no --vdev of that name was given to the EAL".into(),
            },
        })
    }
}

fn vdev_init(name: &CString, args: &CString) -> (c_int, String) {
    let mut log = vec![0u8; EAL_LOG_TAIL];
    // SAFETY: two valid C strings and a buffer of the length passed; the
    // EAL is initialised (callers hold it).
    let r = unsafe {
        ffi::baton_vdev_init(
            name.as_ptr(),
            args.as_ptr(),
            log.as_mut_ptr().cast(),
            log.len(),
        )
    };
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    (
        r,
        String::from_utf8_lossy(&log[..end]).trim_end().to_string(),
    )
}

fn hotplug(spec: &str, init_log: &str) -> Result<(), DpdkError> {
    let name = vdev_name(spec);
    let args = spec.get(name.len() + 1..).unwrap_or("");
    let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(spec.into()))?;
    let cargs = CString::new(args).map_err(|_| DpdkError::BadArgument(spec.into()))?;
    let (r, log) = vdev_init(&cname, &cargs);
    if r == -libc::EEXIST {
        // On the bus but without a port: its probe failed when the EAL
        // started (the vdev bus cannot take a device whose probe failed
        // off again, so it cannot be retried in this process).
        let log = init_log
            .lines()
            .filter(|l| l.contains(name))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(DpdkError::Vdev {
            spec: spec.to_string(),
            reason: "its driver failed when the EAL started".into(),
            log,
        });
    }
    if r < 0 {
        // Drivers return -1 for "could not create the device" (it is no
        // errno); their log line is the reason.
        let reason = if r == -1 {
            "the driver could not create the device".to_string()
        } else {
            strerror(r)
        };
        return Err(DpdkError::Vdev {
            spec: spec.to_string(),
            reason,
            log,
        });
    }
    Ok(())
}

fn port_by_name(name: &str) -> Result<Option<u16>, DpdkError> {
    let c = CString::new(name).map_err(|_| DpdkError::BadArgument(name.into()))?;
    let mut port = 0u16;
    // SAFETY: a valid C string and a live out-parameter.
    let r = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut port) };
    Ok((r == 0).then_some(port))
}

fn eal_init_once(args: &[String]) -> Result<Arc<EalInner>, DpdkError> {
    let mut all = vec!["baton".to_string()];
    all.extend(args.iter().cloned());
    let owned = cstrings(&all)?;
    // rte_eal_init may permute argv (getopt), so it gets its own array of
    // pointers into strings that outlive the call (DPDK keeps none of them
    // after init, but they live for the process anyway: we leak nothing
    // that matters by keeping `owned` until return).
    let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr() as *mut c_char).collect();
    argv.push(std::ptr::null_mut());
    let mut log = vec![0u8; EAL_LOG_TAIL];
    let mut err: c_int = 0;

    // rte_eal_init pins the calling thread to the main lcore; the caller
    // (the appliance's control thread) and the worker threads it spawns
    // afterwards must keep their own affinity.
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut saved: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size is that of `saved`.
    let have_saved =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut saved) }
            == 0;
    // SAFETY: argv is NULL-terminated with argc live C strings; `log` has
    // the length passed; `err` is a live out-parameter.
    let r = unsafe {
        ffi::baton_eal_init(
            (argv.len() - 1) as c_int,
            argv.as_mut_ptr(),
            log.as_mut_ptr().cast(),
            log.len(),
            &mut err,
        )
    };
    if have_saved {
        // SAFETY: restores the mask read above.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &saved) };
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..end]).trim_end().to_string();
    if r < 0 {
        remove_empty_runtime_dir(args);
        return Err(DpdkError::EalInit {
            reason: eal_hint(err, args, &log),
            errno: err,
            log,
        });
    }
    if args
        .iter()
        .any(|a| a == "--no-shconf" || a == "--in-memory")
    {
        remove_empty_runtime_dir(args);
    }
    Ok(Arc::new(EalInner {
        args: args.to_vec(),
        vdevs: vdevs_in(args),
        plug: Mutex::new(()),
        init_log: log,
    }))
}

/// The EAL creates its runtime directory (`/var/run/dpdk/PREFIX` for
/// root, `$XDG_RUNTIME_DIR/dpdk/PREFIX` otherwise) even with `--no-shconf`,
/// and leaves it empty; remove it so boxes with per-process prefixes leave
/// nothing behind. Only an empty directory is removed.
fn remove_empty_runtime_dir(args: &[String]) {
    let prefix = args
        .iter()
        .find_map(|a| a.strip_prefix("--file-prefix="))
        .unwrap_or("rte");
    if prefix.is_empty() || prefix.contains('/') || prefix.contains("..") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let base = if unsafe { libc::geteuid() } == 0 {
        std::path::PathBuf::from("/var/run/dpdk")
    } else {
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) => std::path::PathBuf::from(d).join("dpdk"),
            None => std::path::PathBuf::from("/tmp/dpdk"),
        }
    };
    let _ = std::fs::remove_dir(base.join(prefix));
}

/// Counters of one [`DpdkPort`] (the worker keeps its own per-frame
/// counters; these are what only the port can see).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DpdkPortStats {
    /// Frames received from this port's queue.
    pub rx_frames: u64,
    /// Frames handed to another worker's inbox (steering).
    pub steered_out: u64,
    /// Frames received through this port's inbox from other queues.
    pub steered_in: u64,
    /// Frames dropped because the owner's inbox was full.
    pub steer_dropped: u64,
    /// Chained mbufs dropped on receive.
    pub rx_multiseg_dropped: u64,
    /// Frames not sent: no mbuf, too long for one, or refused by the device.
    pub tx_dropped: u64,
}

/// How a steering port wakes the worker of another queue that sleeps in
/// [`Port::wait`] (DPDK gives it no fd to sleep on, so without this a
/// steered frame would wait out the sleep).
#[derive(Debug, Default)]
struct WakeSlot {
    /// Set while the queue's worker sleeps (or is about to).
    sleeping: AtomicBool,
    /// Our duplicate of the worker's wake eventfd, -1 if none yet.
    fd: AtomicI32,
    /// Owns every duplicate ever stored in `fd`: none is closed before the
    /// device goes, so a peer never writes to a reused descriptor number.
    owned: Mutex<Vec<OwnedFd>>,
}

impl WakeSlot {
    fn new() -> WakeSlot {
        WakeSlot {
            sleeping: AtomicBool::new(false),
            fd: AtomicI32::new(-1),
            owned: Mutex::new(Vec::new()),
        }
    }

    /// Wakes the worker if it sleeps. The caller has already put the
    /// frames in its inbox: with both sides SeqCst, either the sleeper
    /// sees them when it re-checks its inbox after raising `sleeping`, or
    /// we see `sleeping` here.
    fn wake(&self) {
        if self.sleeping.load(Ordering::SeqCst) {
            let fd = self.fd.load(Ordering::SeqCst);
            if fd >= 0 {
                let one: u64 = 1;
                // SAFETY: `fd` is an eventfd we own (in `owned`) for the
                // device's life; writing 8 bytes is its protocol.
                unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
            }
        }
    }
}

/// A received mbuf in transit between workers.
struct Mbuf(*mut ffi::rte_mbuf);

// SAFETY: an mbuf belongs to whoever holds the pointer; DPDK's mempools
// are multi-producer/multi-consumer, so any thread may free it.
unsafe impl Send for Mbuf {}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it is freed once.
        unsafe { ffi::baton_pktmbuf_free(self.0) };
    }
}

/// One started ethdev and its pool, shared by the ports of its queues;
/// stopped, closed and unplugged when the last port is dropped.
struct Device {
    port: u16,
    name: String,
    pool: *mut ffi::rte_mempool,
    mac: MacAddr,
    eal: DpdkEal,
}

// SAFETY: the port id and pool pointer are plain handles; DPDK allows
// per-queue RX/TX from different threads and MP/MC mempool use.
unsafe impl Send for Device {}
// SAFETY: as above; nothing is mutated through `&Device`.
unsafe impl Sync for Device {}

impl Drop for Device {
    fn drop(&mut self) {
        let _g = self
            .eal
            .inner
            .plug
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // SAFETY: our port, started in open_group; no queue is polled any
        // more (every DpdkPort holding this Device is gone).
        unsafe {
            ffi::rte_eth_dev_stop(self.port);
            ffi::rte_eth_dev_close(self.port);
        }
        // A vdev's driver is removed too, so opening it again creates
        // fresh sockets (net_af_packet closes them on stop).
        if let Ok(c) = CString::new(self.name.as_str()) {
            // SAFETY: a valid C string; harmless for a non-vdev name.
            unsafe { ffi::rte_vdev_uninit(c.as_ptr()) };
        }
        // SAFETY: the device no longer uses the pool; mbufs still held
        // elsewhere are gone with every port (their inboxes drained).
        unsafe { ffi::rte_mempool_free(self.pool) };
    }
}

static POOL_SEQ: AtomicU32 = AtomicU32::new(0);

/// This thread's lcore id from `rte_thread_register`, given back when the
/// thread exits so short-lived threads do not use up the ids.
struct LcoreRegistration {
    registered: bool,
}

impl Drop for LcoreRegistration {
    fn drop(&mut self) {
        if self.registered {
            // SAFETY: this thread registered itself; the EAL is never torn
            // down in this process.
            unsafe { ffi::rte_thread_unregister() };
        }
    }
}

thread_local! {
    static LCORE: std::cell::OnceCell<LcoreRegistration> = const { std::cell::OnceCell::new() };
}

/// Gives the calling (non-EAL) thread an lcore id once, so the mempool's
/// per-lcore cache serves its allocations and frees instead of the shared
/// ring. Without a free id (more threads than `RTE_MAX_LCORE`) the thread
/// simply goes on without a cache. EAL threads keep the id they have.
fn register_thread() {
    LCORE.with(|l| {
        l.get_or_init(|| {
            // SAFETY: reads this thread's lcore id.
            let has_id = unsafe { ffi::baton_lcore_id() } != u32::MAX;
            LcoreRegistration {
                // SAFETY: the EAL is initialised (a port exists).
                registered: !has_id && unsafe { ffi::rte_thread_register() } == 0,
            }
        });
    });
}

/// One RX/TX queue pair of a DPDK ethdev, used by one worker.
pub struct DpdkPort {
    queue: u16,
    queues: u16,
    inbox: Option<Receiver<Mbuf>>,
    peers: Vec<Sender<Mbuf>>,
    rx: Vec<*mut ffi::rte_mbuf>,
    tx: Vec<*mut ffi::rte_mbuf>,
    stats: DpdkPortStats,
    /// Shared so a control thread can read them while the worker runs.
    shared_stats: Arc<[AtomicU64; 6]>,
    /// Longest sleep in `wait`.
    idle_sleep: Duration,
    /// The wake fd last passed to `wait`, whose duplicate is in our slot.
    last_wake: Option<RawFd>,
    /// Per queue: whether its worker sleeps in `wait`, and how to wake it.
    slots: Arc<[WakeSlot]>,
    /// Last field, so it is dropped last: the inbox channels (which may
    /// still hold mbufs until their last handle goes) must be gone before
    /// the last port frees the pool with the device.
    dev: Arc<Device>,
}

// SAFETY: the raw mbuf arrays are scratch space owned by this value (empty
// between calls); the device is Send + Sync.
unsafe impl Send for DpdkPort {}

impl std::fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkPort")
            .field("device", &self.dev.name)
            .field("port", &self.dev.port)
            .field("queue", &self.queue)
            .field("queues", &self.queues)
            .field("mac", &self.dev.mac)
            .finish()
    }
}

fn dev_err(call: &'static str, port: u16, name: &str, r: c_int) -> DpdkError {
    DpdkError::Device {
        call,
        port,
        name: name.to_string(),
        reason: strerror(r),
    }
}

impl DpdkPort {
    /// Initialises the EAL from `opts` (or joins the running one) and opens
    /// its first vdev with `opts.queues` queue pairs.
    pub fn open_with(opts: &DpdkOptions) -> Result<Vec<DpdkPort>, DpdkError> {
        let eal = DpdkEal::from_options(opts)?;
        let name = opts.device_name().ok_or_else(|| DpdkError::NoDevice {
            name: String::new(),
            avail: eal.ports_available(),
            hint: "no vdev configured".into(),
        })?;
        let mut ports = Self::open_group(&eal, name, opts.queues, opts.mbufs)?;
        for p in &mut ports {
            p.set_idle_sleep(opts.idle_sleep);
        }
        Ok(ports)
    }

    /// Configures the ethdev `device` (e.g. `net_af_packet0`) with `queues`
    /// RX/TX queue pairs and a pool of `mbufs` mbufs, starts it with
    /// promiscuous mode off, and returns port `i` for worker `i`.
    pub fn open_group(
        eal: &DpdkEal,
        device: &str,
        queues: u16,
        mbufs: u32,
    ) -> Result<Vec<DpdkPort>, DpdkError> {
        let queues = queues.max(1);
        let port = eal.port_of(device)?;
        let name = device.to_string();

        // SAFETY: zeroed rte_eth_dev_info is valid; the call fills it.
        let mut info: ffi::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: a valid port id and a live out-parameter.
        let r = unsafe { ffi::rte_eth_dev_info_get(port, &mut info) };
        if r != 0 {
            return Err(dev_err("rte_eth_dev_info_get", port, &name, r));
        }
        let max = info.max_rx_queues.min(info.max_tx_queues);
        if max < queues {
            return Err(DpdkError::Queues {
                name,
                max,
                asked: queues,
            });
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: the driver's static, NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        // net_af_packet opens one socket per qpair when the vdev is
        // created, all in one fanout group: the kernel hashes frames to
        // every one of them whether we configure its queue or not.
        if driver == "net_af_packet" && max != queues {
            return Err(DpdkError::QueuesUnpolled {
                name,
                qpairs: max,
                asked: queues,
            });
        }

        // All defaults: no RSS, no offloads (frames carry full checksums).
        let conf = ffi::rte_eth_conf::default();
        // SAFETY: valid port and configuration.
        let r = unsafe { ffi::rte_eth_dev_configure(port, queues, queues, &conf) };
        if r != 0 {
            return Err(dev_err("rte_eth_dev_configure", port, &name, r));
        }
        // SAFETY: valid port id.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(port) };
        // A NIC fills every RX descriptor with an mbuf up front and holds
        // the TX ones until sent, and each lcore's cache keeps some: a pool
        // smaller than that starves RX under load.
        let need = u32::from(queues) * (2 * u32::from(RING_DESC) + POOL_CACHE) + POOL_CACHE;
        let mbufs = mbufs.max(need);
        let seq = POOL_SEQ.fetch_add(1, Ordering::Relaxed);
        // Pool names are global to the EAL and at most 25 characters.
        let pool_name = CString::new(format!("baton{port}_{seq}"))
            .map_err(|_| DpdkError::BadArgument(name.clone()))?;
        // SAFETY: a valid name; sizes within their types.
        let pool = unsafe {
            ffi::rte_pktmbuf_pool_create(
                pool_name.as_ptr(),
                mbufs.max(1023),
                POOL_CACHE,
                0,
                ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                socket,
            )
        };
        if pool.is_null() {
            return Err(DpdkError::Mempool {
                mbufs,
                reason: strerror(rte_errno()),
            });
        }
        let mut dev = Device {
            port,
            name: name.clone(),
            pool,
            mac: MacAddr([0; 6]),
            eal: eal.clone(),
        };
        // From here on, dropping `dev` stops, closes and unplugs the device.
        let sock = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..queues {
            // SAFETY: valid port and queue; default (NULL) queue configs.
            let r = unsafe {
                ffi::rte_eth_rx_queue_setup(port, q, RING_DESC, sock, std::ptr::null(), pool)
            };
            if r != 0 {
                return Err(dev_err("rte_eth_rx_queue_setup", port, &name, r));
            }
            // SAFETY: as above.
            let r =
                unsafe { ffi::rte_eth_tx_queue_setup(port, q, RING_DESC, sock, std::ptr::null()) };
            if r != 0 {
                return Err(dev_err("rte_eth_tx_queue_setup", port, &name, r));
            }
        }
        // SAFETY: configured above.
        let r = unsafe { ffi::rte_eth_dev_start(port) };
        if r != 0 {
            return Err(dev_err("rte_eth_dev_start", port, &name, r));
        }
        // Frames for our MAC, broadcast ARP: nothing else is ours to see.
        // SAFETY: started port.
        let r = unsafe { ffi::rte_eth_promiscuous_disable(port) };
        if r != 0 && r != -libc::ENOTSUP {
            return Err(dev_err("rte_eth_promiscuous_disable", port, &name, r));
        }
        let mut mac = ffi::rte_ether_addr::default();
        // SAFETY: valid port, live out-parameter.
        let r = unsafe { ffi::rte_eth_macaddr_get(port, &mut mac) };
        if r != 0 {
            return Err(dev_err("rte_eth_macaddr_get", port, &name, r));
        }
        dev.mac = MacAddr(mac.addr_bytes);
        tracing::info!(
            device = %name,
            port,
            driver = %driver,
            queues,
            mbufs,
            mac = %dev.mac,
            "DPDK port started"
        );
        let dev = Arc::new(dev);

        let (senders, receivers): (Vec<_>, Vec<_>) = (0..queues)
            .map(|_| crossbeam_channel::bounded::<Mbuf>(INBOX_DEPTH))
            .unzip();
        let steer = queues > 1;
        let slots: Arc<[WakeSlot]> = (0..queues).map(|_| WakeSlot::new()).collect();
        Ok(receivers
            .into_iter()
            .enumerate()
            .map(|(q, rx)| DpdkPort {
                dev: Arc::clone(&dev),
                queue: q as u16,
                queues,
                inbox: steer.then_some(rx),
                peers: if steer { senders.clone() } else { Vec::new() },
                rx: vec![std::ptr::null_mut(); RX_BURST],
                tx: Vec::new(),
                stats: DpdkPortStats::default(),
                shared_stats: Arc::new(Default::default()),
                idle_sleep: MAX_IDLE_SLEEP,
                last_wake: None,
                slots: Arc::clone(&slots),
            })
            .collect())
    }

    /// Sets the longest sleep of [`Port::wait`] (see
    /// [`DpdkOptions::idle_sleep`]).
    pub fn set_idle_sleep(&mut self, d: Duration) {
        self.idle_sleep = d;
    }

    /// The queue (= worker index) this port serves.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The DPDK port id of the device.
    pub fn port_id(&self) -> u16 {
        self.dev.port
    }

    /// The device name (e.g. `net_af_packet0`).
    pub fn device_name(&self) -> &str {
        &self.dev.name
    }

    /// This port's counters.
    pub fn stats(&self) -> DpdkPortStats {
        self.stats
    }

    /// A handle reading this port's counters from another thread
    /// (published after every burst).
    pub fn stats_handle(&self) -> DpdkStatsHandle {
        DpdkStatsHandle(Arc::clone(&self.shared_stats))
    }

    fn publish(&self) {
        let s = &self.stats;
        for (slot, v) in self.shared_stats.iter().zip([
            s.rx_frames,
            s.steered_out,
            s.steered_in,
            s.steer_dropped,
            s.rx_multiseg_dropped,
            s.tx_dropped,
        ]) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    /// The queue whose worker owns `frame` by the dataplane's rule.
    fn owner(&self, frame: &[u8]) -> u16 {
        if frame.len() < 14 {
            return 0;
        }
        let proto = u16::from_be_bytes([frame[12], frame[13]]);
        let w = run_cbpf(&FANOUT_PROGRAM, proto, &frame[14..]);
        // The kernel takes the program's result modulo the group size.
        (w % u32::from(self.queues)) as u16
    }

    /// Lends the frame of `m` to `f`; false if it was not a single-segment
    /// frame (dropped). Does not free `m`.
    fn deliver<F: FnMut(&[u8], RxMeta)>(m: *mut ffi::rte_mbuf, f: &mut F) -> bool {
        let (mut data_len, mut pkt_len, mut trusted) = (0u16, 0u32, 0 as c_int);
        // SAFETY: `m` is a live mbuf we own.
        let p = unsafe { ffi::baton_pktmbuf_view(m, &mut data_len, &mut pkt_len, &mut trusted) };
        if p.is_null() || u32::from(data_len) != pkt_len {
            return false;
        }
        // SAFETY: the first segment holds `data_len` bytes at `p`, alive
        // until we free the mbuf after `f` returns.
        let frame = unsafe { std::slice::from_raw_parts(p, usize::from(data_len)) };
        f(
            frame,
            RxMeta {
                checksum_trusted: trusted != 0,
            },
        );
        true
    }

    /// The first segment's bytes, borrowed as long as `m` is held.
    fn view(m: &Mbuf) -> &[u8] {
        let (mut data_len, mut pkt_len, mut trusted) = (0u16, 0u32, 0 as c_int);
        // SAFETY: `m` is a live mbuf we own.
        let p = unsafe { ffi::baton_pktmbuf_view(m.0, &mut data_len, &mut pkt_len, &mut trusted) };
        if p.is_null() {
            return &[];
        }
        // SAFETY: as in `deliver`; the slice borrows `m`, which frees the
        // mbuf only when dropped.
        unsafe { std::slice::from_raw_parts(p, usize::from(data_len)) }
    }
}

/// Reads a [`DpdkPort`]'s counters from another thread.
#[derive(Clone, Debug)]
pub struct DpdkStatsHandle(Arc<[AtomicU64; 6]>);

impl DpdkStatsHandle {
    /// The counters as last published by the port.
    pub fn get(&self) -> DpdkPortStats {
        let v = |i: usize| self.0[i].load(Ordering::Relaxed);
        DpdkPortStats {
            rx_frames: v(0),
            steered_out: v(1),
            steered_in: v(2),
            steer_dropped: v(3),
            rx_multiseg_dropped: v(4),
            tx_dropped: v(5),
        }
    }
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        // Frames other workers handed us go back to the pool before the
        // device (and the pool) may go.
        if let Some(inbox) = &self.inbox {
            while inbox.try_recv().is_ok() {}
        }
    }
}

impl Port for DpdkPort {
    fn mac(&self) -> MacAddr {
        self.dev.mac
    }

    fn rx_burst<F: FnMut(&[u8], RxMeta)>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, PortError> {
        register_thread();
        let mut n = 0;
        // Frames other queues received for our flows come first: they are
        // older than anything in our own queue.
        if let Some(inbox) = &self.inbox {
            while n < max {
                let Ok(m) = inbox.try_recv() else { break };
                self.stats.steered_in += 1;
                if Self::deliver(m.0, &mut f) {
                    n += 1;
                } else {
                    self.stats.rx_multiseg_dropped += 1;
                }
                // `m` is freed here, after the callback.
            }
        }
        while n < max {
            let want = (max - n).min(self.rx.len()) as u16;
            // SAFETY: `rx` has room for `want` pointers; port and queue
            // were set up in open_group.
            let got = unsafe {
                ffi::baton_rx_burst(self.dev.port, self.queue, self.rx.as_mut_ptr(), want)
            };
            if got == 0 {
                break;
            }
            self.stats.rx_frames += u64::from(got);
            // Queues we handed frames to in this burst (bit per queue;
            // beyond 64 queues every queue is woken).
            let mut woken: u64 = 0;
            for i in 0..usize::from(got) {
                let m = Mbuf(self.rx[i]);
                if !self.peers.is_empty() {
                    let owner = self.owner(Self::view(&m));
                    if owner != self.queue {
                        match self.peers.get(usize::from(owner)).map(|p| p.try_send(m)) {
                            Some(Ok(())) => {
                                self.stats.steered_out += 1;
                                woken |= 1u64.checked_shl(u32::from(owner)).unwrap_or(u64::MAX);
                            }
                            // Full or gone: the frame is dropped (and
                            // freed by the returned value's drop); TCP
                            // retransmits.
                            Some(Err(TrySendError::Full(_)))
                            | Some(Err(TrySendError::Disconnected(_)))
                            | None => self.stats.steer_dropped += 1,
                        }
                        continue;
                    }
                }
                if Self::deliver(m.0, &mut f) {
                    n += 1;
                } else {
                    self.stats.rx_multiseg_dropped += 1;
                }
            }
            if woken != 0 {
                for (q, slot) in self.slots.iter().enumerate() {
                    if q >= 64 || woken & (1 << q) != 0 {
                        slot.wake();
                    }
                }
            }
            if usize::from(got) < usize::from(want) {
                break;
            }
        }
        self.publish();
        Ok(n)
    }

    fn tx_burst(&mut self, batch: &mut TxBatch) -> Result<usize, PortError> {
        register_thread();
        let total = batch.len();
        if total == 0 {
            return Ok(0);
        }
        self.tx.clear();
        self.tx.resize(total, std::ptr::null_mut());
        // SAFETY: `tx` has room for `total` pointers.
        let mut have = if unsafe {
            ffi::baton_pktmbuf_alloc_bulk(self.dev.pool, self.tx.as_mut_ptr(), total as u32)
        } == 0
        {
            total
        } else {
            // The pool cannot cover the whole burst: take what it has.
            let mut k = 0;
            // SAFETY: one pointer slot at index k < total.
            while k < total
                && unsafe {
                    ffi::baton_pktmbuf_alloc_bulk(self.dev.pool, self.tx.as_mut_ptr().add(k), 1)
                } == 0
            {
                k += 1;
            }
            k
        };
        // Copy each frame into its mbuf; a frame that does not fit is
        // dropped and its mbuf reused for the next one.
        let mut filled = 0;
        for fr in batch.frames() {
            if filled == have {
                break;
            }
            let m = self.tx[filled];
            let len = match u16::try_from(fr.len()) {
                Ok(l) if l > 0 => l,
                _ => continue,
            };
            // SAFETY: `m` is a fresh mbuf of our pool.
            let dst = unsafe { ffi::baton_pktmbuf_append(m, len) };
            if dst.is_null() {
                continue;
            }
            // SAFETY: append reserved `len` bytes at `dst`.
            unsafe { std::ptr::copy_nonoverlapping(fr.as_ptr(), dst, fr.len()) };
            filled += 1;
        }
        // Mbufs left without a frame go back.
        for m in self.tx.drain(filled..have) {
            // SAFETY: allocated above, never handed on.
            unsafe { ffi::baton_pktmbuf_free(m) };
        }
        have = filled;
        let mut sent = 0usize;
        let mut idle = 0;
        while sent < have && idle < 3 {
            let n = (have - sent).min(usize::from(u16::MAX)) as u16;
            // SAFETY: `tx[sent..have]` are filled mbufs; the device takes
            // ownership of the ones it accepts.
            let k = unsafe {
                ffi::baton_tx_burst(self.dev.port, self.queue, self.tx.as_mut_ptr().add(sent), n)
            };
            if k == 0 {
                idle += 1;
            }
            sent += usize::from(k);
        }
        for &m in &self.tx[sent..have] {
            // SAFETY: not accepted by the device, still ours.
            unsafe { ffi::baton_pktmbuf_free(m) };
        }
        self.tx.clear();
        self.stats.tx_dropped += (total - sent) as u64;
        batch.clear();
        self.publish();
        Ok(sent)
    }

    fn wait(&mut self, timeout: Option<Duration>, wake: Option<RawFd>) -> Result<(), PortError> {
        let t = timeout.map_or(self.idle_sleep, |t| t.min(self.idle_sleep));
        if t.is_zero() {
            return Ok(());
        }
        let slot = self.slots.get(usize::from(self.queue));
        if let (Some(slot), Some(w)) = (slot, wake) {
            if self.last_wake != Some(w) {
                // Keep our own duplicate: the caller's descriptor may be
                // closed while a peer still wants to wake us.
                // SAFETY: F_DUPFD_CLOEXEC on a descriptor the caller passed.
                let d = unsafe { libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 0) };
                if d >= 0 {
                    // SAFETY: a fresh descriptor we own.
                    let owned = unsafe { OwnedFd::from_raw_fd(d) };
                    slot.owned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(owned);
                    slot.fd.store(d, Ordering::SeqCst);
                    self.last_wake = Some(w);
                }
            }
        }
        if let Some(slot) = slot {
            slot.sleeping.store(true, Ordering::SeqCst);
        }
        // Frames steered to us before we raised the flag: no sleep.
        if self.inbox.as_ref().is_some_and(|i| !i.is_empty()) {
            if let Some(slot) = slot {
                slot.sleeping.store(false, Ordering::SeqCst);
            }
            return Ok(());
        }
        let ts = libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        };
        let mut pfd = libc::pollfd {
            fd: wake.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        };
        // ppoll, not poll: the sleep may be shorter than a millisecond.
        // SAFETY: one valid pollfd (a negative fd is ignored, and ppoll
        // then just sleeps) and a valid timespec.
        let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        let err = std::io::Error::last_os_error();
        if let Some(slot) = slot {
            slot.sleeping.store(false, Ordering::SeqCst);
        }
        if r < 0 && err.raw_os_error() != Some(libc::EINTR) {
            return Err(PortError::Os {
                call: "ppoll",
                source: err,
            });
        }
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
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

    #[test]
    fn missing_hugepages_error_says_what_to_do() {
        let args = vec!["-l".to_string(), "0".to_string()];
        let h = eal_hint(libc::ENOMEM, &args, "");
        assert!(h.contains("no hugepages"), "{h}");
        assert!(h.contains("--no-huge"), "{h}");
    }
}
