//! `[dataplane.dpdk]`: settings only the DPDK backend reads.

use crate::convert::*;
use crate::model::*;
use crate::schema::*;

table! {
    /// `[dataplane.dpdk]`: settings only the DPDK backend reads.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct DpdkConfig: Default {
        /// Extra EAL arguments, passed as given (after the ones the keys below
        /// imply).
        eal_args: Vec<String> = list_or_empty(string),
        /// Use hugepages (false runs EAL with `--no-huge`).
        hugepages: bool = or(false, boolean),
        /// Virtual devices (`--vdev`), e.g. `net_af_packet0,iface=front0`;
        /// empty: `net_af_packet0` on `dataplane.interface` with one queue pair
        /// per worker. The first one carries the workers' queues.
        vdevs: Vec<String> = list_or_empty(non_empty),
        /// MiB of memory the EAL reserves (`-m`), 64..=1048576. The EAL
        /// refuses less than it needs for its own structures; 64 MiB is the
        /// floor the DPDK backend applies anyway.
        memory_mb: u32 = or(DEFAULT_DPDK_MEMORY_MB, int_in(64, 1 << 20)),
        /// Mbufs in the pool the queues share, 1023..=16777215 (raised to what
        /// the queues' descriptors need if lower).
        mbufs: u32 = or(DEFAULT_DPDK_MBUFS, int_in(1023, (1 << 24) - 1)),
        /// The EAL's main lcore (`-l`); `None`: the lowest CPU the box may run on.
        main_lcore: Option<usize> = opt(int_in(0, 1023)),
        /// Longest sleep of an idle adaptive worker, in microseconds,
        /// 0..=1000000 (0: never sleeps).
        idle_sleep_us: u32 = or(DEFAULT_DPDK_IDLE_SLEEP_US, int_in(0, 1_000_000)),
        /// The EAL's `--log-level`, one of [`DPDK_LOG_LEVELS`].
        log_level: String = or(DEFAULT_DPDK_LOG_LEVEL.to_string(), dpdk_log_level),
    }
}
