//! `[dataplane]`: the packet port and its workers.

use super::dpdk::DpdkConfig;
use crate::convert::*;
use crate::model::*;
use crate::read::{first_duplicate, Checker, Tbl};
use crate::schema::*;

table! {
    /// `[dataplane]`: the packet port and the worker threads.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct DataplaneConfig {
        /// Packet I/O backend.
        backend: Backend = req(choice(&[Backend::AfPacket, Backend::Dpdk, Backend::AfXdp])),
        /// Front interface name (<= 15 bytes).
        interface: String = req(interface_name),
        /// Number of poll-mode workers, >= 1.
        workers: usize = req(positive),
        /// CPU core of each worker; empty means no pinning.
        cores: Vec<usize> = list_or_empty(non_negative),
        /// How workers wait for packets.
        poll_mode: PollMode = req(choice(&[PollMode::Busy, PollMode::Adaptive])),
        /// Most established connections the box holds.
        max_connections: usize = or(DEFAULT_MAX_CONNECTIONS, positive),
        /// Most connections one client address may hold (SYNs beyond are
        /// dropped; restored connections are never refused).
        max_connections_per_client: usize = or(DEFAULT_MAX_CONNECTIONS_PER_CLIENT, positive),
        /// Most half-open (SYN received) connections.
        syn_backlog: usize = or(DEFAULT_SYN_BACKLOG, positive),
        /// A connection that has received no acceptable segment for this long
        /// and has nothing in flight is closed with a FIN (never a RST);
        /// milliseconds, > 0. In FIN-WAIT-2 it is dropped silently instead.
        tcp_idle_timeout_ms: u64 = or(DEFAULT_TCP_IDLE_TIMEOUT_MS, positive),
        /// Bytes each worker may hold in the send and receive queues of all
        /// its connections; past it every connection is held to a small floor.
        tcp_buffer_budget: u64 = or(DEFAULT_TCP_BUFFER_BUDGET, tcp_buffer_budget),
        /// Source MAC override; `None` uses the interface's own MAC.
        mac: Option<MacAddr> = opt(unicast_mac),
        /// AF_PACKET: leave TCP checksums to the device and large segments
        /// to GSO (`PACKET_VNET_HDR`); false sends every frame complete.
        tx_offload: bool = or(true, boolean),
        /// DPDK settings, `[dataplane.dpdk]`.
        dpdk: Option<DpdkConfig> = Optional,
    }
    check = dataplane_rules;
}

/// A byte size of at least [`MIN_TCP_BUFFER_BUDGET`].
fn tcp_buffer_budget(v: &toml_edit::Value) -> Result<u64, String> {
    let n = byte_size(v)?;
    if n < MIN_TCP_BUFFER_BUDGET {
        return Err(format!(
            "expected at least {MIN_TCP_BUFFER_BUDGET} bytes (1MiB) per worker, found {n}"
        ));
    }
    Ok(n)
}

/// The rules between `[dataplane]` keys.
fn dataplane_rules(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    one_core_per_worker(c, t, p) && afxdp_one_worker(c, t, p)
}

/// The AF_XDP port reads one queue with one worker: with more, the NIC's
/// RSS and not the dataplane's flow rule would pick each frame's worker,
/// and a taken-over connection could land on a worker that does not hold
/// it.
fn afxdp_one_worker(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    let (Some(Backend::AfXdp), Some(workers)) = (p.backend, p.workers) else {
        return true;
    };
    if workers == 1 {
        return true;
    }
    let line = c.key_line(t, "workers");
    c.problem(
        line,
        t.key_path("workers"),
        format!(
            "expected 1 with dataplane.backend = \"afxdp\" (one queue, one worker today), found {workers}"
        ),
    );
    false
}

/// One pinned core per worker, or none: a poll-mode worker spins, so two
/// on one core would starve each other.
fn one_core_per_worker(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    let (Some(workers), Some(cores)) = (p.workers, &p.cores) else {
        return true;
    };
    let line = c.key_line(t, "cores");
    if !cores.is_empty() && cores.len() != workers {
        c.problem(
            line,
            t.key_path("cores"),
            format!(
                "expected {workers} cores (one per worker, dataplane.workers = {workers}) or none, found {}",
                cores.len()
            ),
        );
        return false;
    }
    if let Some(dup) = first_duplicate(cores) {
        c.problem(
            line,
            t.key_path("cores"),
            format!("core {dup} is listed twice (one worker per core)"),
        );
        return false;
    }
    true
}
