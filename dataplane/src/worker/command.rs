//! What the control core can ask of a worker ([`Command`]), and the
//! snapshot a worker answers a stats request with ([`WorkerStats`]). The
//! worker's loop applies commands (`poll.rs`); the runtime's handle sends
//! them.

use super::restore_stats::RestoreStats;
use crate::stats::Counters;
use crate::tcp::{FourTuple, TcbExport};
use crate::wire::ethernet::MacAddr;
use crossbeam_channel::Sender;
use std::any::Any;
use std::net::IpAddr;

/// Commands from the control core to a worker.
pub enum Command {
    /// Send a gratuitous ARP for this address.
    Announce(IpAddr),
    /// Start answering for an address.
    AddServiceIp(IpAddr),
    /// Stop answering for an address.
    RemoveServiceIp(IpAddr),
    /// These MACs are other boxes that forward clients' frames here
    /// (takeover, migrate): a frame from one of them does not carry the
    /// client's MAC, even to an address we own (an anycast address every
    /// box serves).
    AddForwarders(Vec<MacAddr>),
    /// New connections from `client` to `local` on a port in `ports` go to
    /// the box whose MAC is `to` for `ttl` (migrate of an FTP session: its
    /// next data connection, to a passive port, is the adopter's).
    RouteClient {
        /// Our address the client connects to.
        local: IpAddr,
        /// The client's address.
        client: IpAddr,
        /// The ports routed (FTP's passive range).
        ports: std::ops::RangeInclusive<u16>,
        /// The adopter's MAC.
        to: MacAddr,
        /// How long the route lives.
        ttl: std::time::Duration,
    },
    /// Adopt a connection restored from a checkpoint (takeover).
    Restore {
        /// The TCP block of the checkpoint.
        export: TcbExport,
        /// Handed to [`crate::app::App::on_restored`].
        app_data: Box<dyn Any + Send>,
    },
    /// Adopt a connection whose box had sent its client everything (a mass
    /// takeover's idle keep-alive connections): it
    /// is restored when its client's next segment names it (the app's
    /// [`crate::app::UnknownAction::Restore`]) or, failing that, as a
    /// [`Command::Restore`] once `after` has passed. It sends no probe
    /// until then: a mass takeover's probes and their answers are what
    /// overran the inheritor (BENCHMARKS.md "Issue 19").
    RestoreLater {
        /// The TCP block of the checkpoint.
        export: TcbExport,
        /// Handed to [`crate::app::App::on_restored`].
        app_data: Box<dyn Any + Send>,
        /// How long to wait for the client first.
        after: std::time::Duration,
    },
    /// Stop (true) or resume (false) accepting new connections; existing
    /// ones carry on. New SYNs are dropped, not reset, so the client's
    /// retransmitted SYN can reach whichever box owns the address next.
    Drain(bool),
    /// Reply with a stats snapshot.
    Stats(Sender<WorkerStats>),
    /// A planned move of every connection (drain): each connection gets
    /// [`crate::app::App::on_freeze`] (its exact final checkpoint), then the worker stops
    /// at once, sending nothing more, so that the checkpoints stay exact
    /// while the survivors take the connections over.
    Freeze,
    /// A planned move of some connections (migrate): each named connection
    /// gets [`crate::app::App::on_handoff`] (its final checkpoint, and a route that
    /// forwards its frames to `to`), then its TCB is dropped without a word
    /// to the client. The number handed off is sent back.
    Handoff {
        /// The connections to move.
        tuples: Vec<FourTuple>,
        /// The MAC of the box that adopts them.
        to: MacAddr,
        /// Gets the connections actually handed off (the others had ended).
        done: Sender<Vec<FourTuple>>,
    },
    /// The end of a drain's hand-over: every connection the worker still
    /// holds gets [`crate::app::App::on_release`] (its final checkpoint, for
    /// the survivors' takeover), then its TCB is dropped without a word to
    /// the client; unlike [`Command::Freeze`] the worker goes on, forwarding
    /// the frames of the connections handed off before. The number
    /// released is sent back.
    Release(Sender<usize>),
    /// Stop the worker.
    Shutdown,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Announce(ip) => write!(f, "Announce({ip})"),
            Command::AddServiceIp(ip) => write!(f, "AddServiceIp({ip})"),
            Command::RemoveServiceIp(ip) => write!(f, "RemoveServiceIp({ip})"),
            Command::AddForwarders(macs) => write!(f, "AddForwarders({})", macs.len()),
            Command::RouteClient {
                local, client, to, ..
            } => {
                write!(f, "RouteClient({client} to {local} via {to})")
            }
            Command::Restore { export, .. } => write!(f, "Restore({:?})", export.tuple),
            Command::RestoreLater { export, after, .. } => {
                write!(f, "RestoreLater({:?} after {after:?})", export.tuple)
            }
            Command::Drain(on) => write!(f, "Drain({on})"),
            Command::Freeze => write!(f, "Freeze"),
            Command::Handoff { tuples, to, .. } => write!(f, "Handoff({} to {to})", tuples.len()),
            Command::Release(_) => write!(f, "Release"),
            Command::Stats(_) => write!(f, "Stats"),
            Command::Shutdown => write!(f, "Shutdown"),
        }
    }
}

/// A snapshot of one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's index.
    pub worker: usize,
    /// Its counters.
    pub counters: Counters,
    /// Connections in its flow table.
    pub connections: usize,
    /// Half-open (SYN-RECEIVED) connections.
    pub half_open: usize,
    /// Known neighbours.
    pub neighbours: usize,
    /// Armed timers.
    pub timers: usize,
    /// Frames the port dropped because its receive ring was full (running
    /// total, [`crate::port::Port::rx_ring_drops`]).
    pub ring_drops: u64,
    /// How the connections restored here went.
    pub restores: RestoreStats,
}
