//! What goes wrong in the EAL and in DPDK devices ([`DpdkError`]), with
//! the hint that says what to do, and the C error helpers.

use super::ffi;
use crate::port::PortError;
use std::ffi::CStr;
use std::os::raw::c_int;
use thiserror::Error;

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

pub(super) fn strerror(errnum: c_int) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string, valid until the next call on this thread.
    let p = unsafe { ffi::rte_strerror(errnum.abs()) };
    if p.is_null() {
        return format!("error {errnum}");
    }
    // SAFETY: non-null, NUL-terminated (above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

pub(super) fn rte_errno() -> c_int {
    // SAFETY: reads the calling thread's rte_errno.
    unsafe { ffi::baton_rte_errno() }
}
