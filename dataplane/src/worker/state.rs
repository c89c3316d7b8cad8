//! The state of a worker between its port and its app ([`Core`]), shared
//! by the ingress, TCP demux, egress and delivery steps, each of which adds
//! its methods in its own file. Holds no port and no app, so the port can
//! lend a received frame while the core handles it.

use super::config::WorkerConfig;
use super::restore_stats::RestoreStats;
use super::waker::Waker;
use crate::flow::{ConnId, FlowTable};
use crate::neighbour::{NeighbourCache, PendingFrames};
use crate::port::TxBatch;
use crate::stats::Counters;
use crate::tcp::{Event, FourTuple, Listener, TcbExport, TcpConfig};
use crate::timer::TimerWheel;
use crate::udpflow::UdpFlowTable;
use crate::wire::ethernet::MacAddr;
use std::any::Any;
use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// The application's view of a worker's connections at `now`, borrowing
/// only the fields it needs so the caller keeps the others.
macro_rules! app_ctx {
    ($core:expr, $now:expr) => {
        $crate::app::Ctx {
            flows: &mut $core.flows,
            touched: &mut $core.touched,
            now: $now,
            worker: $core.cfg.id,
            waker: &$core.waker,
            datagrams: &mut $core.udp_out,
            listener: &mut $core.listener,
            parking: &mut $core.parking,
            resuming: &mut $core.resuming,
        }
    };
}
pub(super) use app_ctx;

/// Everything of a worker but the port and the app, so the port can lend
/// frames while the core handles them.
pub(super) struct Core {
    pub(super) cfg: WorkerConfig,
    pub(super) mac: MacAddr,
    /// Other boxes' MACs that forward clients' frames to us
    /// ([`super::Command::AddForwarders`]); a handful at most.
    pub(super) forwarders: Vec<MacAddr>,
    /// New connections of a migrated FTP session's client, forwarded to
    /// the adopter ([`super::Command::RouteClient`]).
    pub(super) client_routes: super::client_routes::ClientRoutes,
    pub(super) neighbours: NeighbourCache,
    /// The IPv6 neighbour cache (NDP), of the same design as ARP's.
    pub(super) neighbours6: NeighbourCache<Ipv6Addr>,
    pub(super) flows: FlowTable,
    pub(super) timers: TimerWheel,
    pub(super) listener: Listener,
    pub(super) counters: Counters,
    pub(super) tx: TxBatch,
    pub(super) touched: Vec<ConnId>,
    pub(super) fired: Vec<usize>,
    pub(super) events: Vec<Event>,
    pub(super) ip_id: u16,
    pub(super) half_open: usize,
    pub(super) waker: Waker,
    /// Neighbour news to and from the other workers of the box (none for
    /// a lone worker).
    pub(super) siblings: Option<super::siblings::Siblings>,
    pub(super) draining: bool,
    /// The port completes TCP checksums and cuts GSO frames.
    pub(super) offload: bool,
    /// Restored connections not ready yet, with the moment they were
    /// restored; and the tally of those that finished.
    pub(super) unready: super::unready::Unready,
    pub(super) restores: RestoreStats,
    /// The control core's restores beyond the restore window, in order
    /// (see [`WorkerConfig::restore_window`]).
    pub(super) deferred_restores: VecDeque<(TcbExport, Box<dyn Any + Send>)>,
    /// Restores of connections whose box had sent their client everything, each
    /// with the moment it is due unless its client speaks first
    /// ([`super::Command::RestoreLater`]); in order of arrival, so of due
    /// time for one delay.
    pub(super) parked_restores: VecDeque<(Instant, TcbExport, Box<dyn Any + Send>)>,
    /// The connections of `parked_restores` not restored yet: one its
    /// client restores (lazily) leaves this set, so the queue entry is
    /// skipped when it falls due and the count is exact meanwhile.
    pub(super) parked_tuples: HashSet<FourTuple>,
    /// Connections the app parked in its last callback ([`crate::app::Ctx::park`]):
    /// dropped silently once it returns.
    pub(super) parking: Vec<ConnId>,
    /// Parked connections the app resumes ([`crate::app::Ctx::resume`]):
    /// rebuilt, with a probe, once its callback returns.
    pub(super) resuming: Vec<(TcbExport, Box<dyn Any + Send>)>,
    /// Frames built for a neighbour whose MAC we are asking for.
    pub(super) l2_pending: PendingFrames,
    /// Frames built for an IPv6 neighbour we are soliciting.
    pub(super) l2_pending6: PendingFrames<Ipv6Addr>,
    /// UDP flows by 5-tuple (`udp.rs`).
    pub(super) udp_flows: UdpFlowTable,
    /// Datagrams the app queued this iteration (`Ctx::send_datagram`).
    pub(super) udp_out: Vec<(crate::tcp::FourTuple, bytes::Bytes)>,
}

impl Core {
    pub(super) fn owns_v4(&self, ip: Ipv4Addr) -> bool {
        self.cfg.service_ips.contains(&IpAddr::V4(ip))
    }

    pub(super) fn owns(&self, ip: IpAddr) -> bool {
        self.cfg.service_ips.contains(&ip)
    }

    /// Our IPv6 service addresses.
    pub(super) fn service_v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.cfg.service_ips.iter().filter_map(|ip| match ip {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
    }

    /// The TCP settings of a connection restored from a checkpoint: those of
    /// the worker, but its retransmission timer starts at `min_rto`, not at
    /// `initial_rto` (RFC 6298 §2.1's 1 s for a path with no RTT
    /// measurement). The path is not unknown: the client has just answered
    /// our probe, and RFC 6298 §2.2 would make that round trip (a LAN's:
    /// well under `min_rto` / 3) an RTO of `min_rto`. The checkpoint carries
    /// no RTT and the TCB does not take the probe's round trip as a sample
    /// (yet), so without this every restored connection whose first
    /// segment or its ACK is lost waits a whole second: measured, 11 % of a
    /// 10,000-connection takeover resumed 1.0-1.3 s after the kill, in a
    /// cluster of its own, the rest by 0.9 s.
    pub(super) fn restored_tcp(&self) -> TcpConfig {
        let mut tcp = self.cfg.tcp.clone();
        tcp.initial_rto = tcp.initial_rto.min(tcp.min_rto);
        tcp
    }

    /// A restored connection starts waiting for its client's answer.
    pub(super) fn note_restored(&mut self, id: ConnId, now: Instant) {
        self.restores.restored += 1;
        self.unready.started(id, now);
    }

    /// Drops connection `id` without a word to its client (handed off or
    /// released: another box continues it).
    pub(super) fn drop_silently(&mut self, id: ConnId) {
        if let Some(c) = self.flows.remove(id) {
            if c.half_open {
                self.half_open = self.half_open.saturating_sub(1);
            }
        }
        self.timers.cancel(id.index());
        self.unready.ended(id);
    }

    pub(super) fn touch(&mut self, id: ConnId) {
        if let Some(c) = self.flows.get_mut(id) {
            if !c.touched {
                c.touched = true;
                self.touched.push(id);
            }
        }
    }

    pub(super) fn next_ip_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }
}
