//! The poll-mode worker: one thread, one port, its own flow table, timers,
//! neighbour cache and buffers; nothing shared on the data path.
//!
//! One iteration ([`Worker::poll`]):
//! 1. `rx_burst`: each frame is parsed and dispatched — ARP and ICMP are
//!    answered at once; a TCP segment goes to its TCB (`on_segment`) or,
//!    for an unknown 4-tuple, to the [`Listener`]; the TCB is marked
//!    touched.
//! 2. Expired timers: `on_timeout` of each due TCB, marked touched.
//! 3. `App::poll`.
//! 4. For each touched TCB: its events go to the app (accept, readable,
//!    writable, closed), then `poll_transmit` until empty (frames built
//!    into the TX batch, flushed every 64 frames), then its timer is
//!    re-armed from `poll_timeout()`, or the TCB is removed if done.
//! 5. `tx_burst` of what is left.
//!
//! In [`PollMode::Adaptive`] a worker that found no work for `spins`
//! iterations blocks on the port until a frame arrives or its next timer
//! is due, or its [`Waker`] is called (commands from the control core
//! wake it too).

use crate::app::{App, CloseReason, Ctx, PollMode, UnknownAction};
use crate::arp::{self as l2, NeighbourCache};
use crate::flow::{ConnId, FlowTable};
use crate::port::{Port, RxMeta, TxBatch, TxOffload};
use crate::stats::Counters;
use crate::tcp::{
    Event, Flags, FourTuple, Listener, OutSegment, Segment, State, SynOutcome, Tcb, TcbExport,
    TcpConfig, UnknownOutcome,
};
use crate::timer::TimerWheel;
use crate::wire::ethernet::{self, EthernetHeader, MacAddr};
use crate::wire::{arp, icmp, ipv4, tcp};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Frames queued before the worker flushes them to the port mid-iteration.
const TX_FLUSH: usize = 64;
/// Frames kept for neighbours being resolved, at most, and bytes at most.
const L2_PENDING_FRAMES: usize = 16_384;
const L2_PENDING_BYTES: usize = 8 << 20;
/// A frame waits at most this long for its neighbour's answer: the next
/// ARP request for the address may go out then (REQUEST_INTERVAL), and
/// TCP has retransmitted by then anyway.
const L2_PENDING_MAX_AGE: Duration = crate::arp::REQUEST_INTERVAL;
/// Longest a worker blocks. Commands and [`Waker::wake`] interrupt the
/// wait at once; the bound only covers a lost wake-up.
const MAX_BLOCK: Duration = Duration::from_millis(100);

/// Wakes a worker blocked in adaptive mode: an eventfd the worker polls
/// beside its port. Cheap to clone and to call from any thread, e.g. when
/// an origin fetch finished and the app's `poll` has work.
#[derive(Clone, Debug)]
pub struct Waker {
    fd: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl Waker {
    /// A new eventfd; without one (the call failed), wake-ups are lost and
    /// the worker relies on its bounded wait.
    pub fn new() -> Waker {
        // SAFETY: eventfd returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Waker { fd: None };
        }
        use std::os::fd::FromRawFd;
        // SAFETY: `fd` is a fresh descriptor we own.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        Waker {
            fd: Some(std::sync::Arc::new(owned)),
        }
    }

    /// Wakes the worker (or makes its next wait return at once).
    pub fn wake(&self) {
        if let Some(fd) = &self.fd {
            use std::os::fd::AsRawFd;
            let one = 1u64;
            // SAFETY: writing 8 bytes from a u64 to an eventfd.
            unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// The descriptor to poll.
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    /// Resets the eventfd after a wait.
    fn drain(&self) {
        if let Some(fd) = &self.fd {
            use std::os::fd::AsRawFd;
            let mut v = 0u64;
            // SAFETY: reading 8 bytes into a u64 from a non-blocking eventfd.
            unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        }
    }
}

impl Default for Waker {
    fn default() -> Self {
        Self::new()
    }
}

/// The application's view of a worker's connections at `now`, borrowing
/// only the fields it needs so the caller keeps the others.
macro_rules! app_ctx {
    ($core:expr, $now:expr) => {
        Ctx {
            flows: &mut $core.flows,
            touched: &mut $core.touched,
            now: $now,
            worker: $core.cfg.id,
            waker: &$core.waker,
        }
    };
}

/// Commands from the control core to a worker.
pub enum Command {
    /// Send a gratuitous ARP for this address.
    Announce(IpAddr),
    /// Start answering for an address.
    AddServiceIp(IpAddr),
    /// Stop answering for an address.
    RemoveServiceIp(IpAddr),
    /// Adopt a connection restored from a checkpoint (takeover).
    Restore {
        /// The TCP block of the checkpoint.
        export: TcbExport,
        /// Handed to [`App::on_restored`].
        app_data: Box<dyn Any + Send>,
    },
    /// Stop (true) or resume (false) accepting new connections; existing
    /// ones carry on. New SYNs are dropped, not reset, so the client's
    /// retransmitted SYN can reach whichever box owns the address next.
    Drain(bool),
    /// Reply with a stats snapshot.
    Stats(Sender<WorkerStats>),
    /// A planned move of every connection (drain): each connection gets
    /// [`App::on_freeze`] (its exact final checkpoint), then the worker stops
    /// at once, sending nothing more, so that the checkpoints stay exact
    /// while the survivors take the connections over.
    Freeze,
    /// A planned move of some connections (migrate): each named connection
    /// gets [`App::on_handoff`] (its final checkpoint, and a route that
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
    /// Stop the worker.
    Shutdown,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Announce(ip) => write!(f, "Announce({ip})"),
            Command::AddServiceIp(ip) => write!(f, "AddServiceIp({ip})"),
            Command::RemoveServiceIp(ip) => write!(f, "RemoveServiceIp({ip})"),
            Command::Restore { export, .. } => write!(f, "Restore({:?})", export.tuple),
            Command::Drain(on) => write!(f, "Drain({on})"),
            Command::Freeze => write!(f, "Freeze"),
            Command::Handoff { tuples, to, .. } => write!(f, "Handoff({} to {to})", tuples.len()),
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
    /// total, [`Port::rx_ring_drops`]).
    pub ring_drops: u64,
    /// How the connections restored here went.
    pub restores: RestoreStats,
}

/// Width of one bucket of [`RestoreStats::ready_after`].
pub const READY_BUCKET: Duration = Duration::from_millis(10);
/// Buckets of [`RestoreStats::ready_after`]: 10 ms each up to 10 s; the
/// last one holds everything slower.
const READY_BUCKETS: usize = 1000;

/// Takeover progress of a worker (seed Fig. 6, 606-618): connections handed
/// to it unready, how many synchronised with their client and how fast,
/// and how many could not. The control core sums these over workers to log
/// how long a takeover really took, from the box's side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Connections restored here (eagerly or lazily).
    pub restored: u64,
    /// Restored connections that synchronised ("ready").
    pub ready: u64,
    /// Restored connections that ended before they were ready (not ready,
    /// probes unanswered, reset).
    pub not_ready: u64,
    /// Restored connections still waiting for the client's answer.
    pub pending: u64,
    /// Time from restore to ready, in [`READY_BUCKET`] buckets (empty until
    /// the first connection is ready).
    pub ready_after: Vec<u64>,
}

impl RestoreStats {
    /// Adds another worker's numbers to these.
    pub fn add(&mut self, other: &RestoreStats) {
        self.restored += other.restored;
        self.ready += other.ready;
        self.not_ready += other.not_ready;
        self.pending += other.pending;
        if self.ready_after.len() < other.ready_after.len() {
            self.ready_after.resize(other.ready_after.len(), 0);
        }
        for (a, b) in self.ready_after.iter_mut().zip(&other.ready_after) {
            *a += b;
        }
    }

    /// The restore → ready time below which a fraction `q` of the ready
    /// connections fall (the upper edge of its bucket); `None` before the
    /// first ready.
    pub fn ready_quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.ready_after.iter().sum();
        if total == 0 {
            return None;
        }
        let want = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.ready_after.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(READY_BUCKET * (i as u32 + 1));
            }
        }
        None
    }

    /// What happened since `earlier` (a snapshot of the same worker or
    /// sum): counts and buckets subtracted, `pending` as now.
    pub fn since(&self, earlier: &RestoreStats) -> RestoreStats {
        let ready_after = self
            .ready_after
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(earlier.ready_after.get(i).copied().unwrap_or(0)))
            .collect();
        RestoreStats {
            restored: self.restored.saturating_sub(earlier.restored),
            ready: self.ready.saturating_sub(earlier.ready),
            not_ready: self.not_ready.saturating_sub(earlier.not_ready),
            pending: self.pending,
            ready_after,
        }
    }

    fn record_ready(&mut self, after: Duration) {
        if self.ready_after.is_empty() {
            self.ready_after = vec![0; READY_BUCKETS];
        }
        let i = ((after.as_micros() / READY_BUCKET.as_micros()) as usize).min(READY_BUCKETS - 1);
        self.ready += 1;
        self.ready_after[i] += 1;
    }
}

/// What a worker needs besides its port and app.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This worker's index.
    pub id: usize,
    /// Workers sharing the interface.
    pub n_workers: usize,
    /// Addresses we own.
    pub service_ips: Vec<IpAddr>,
    /// TCP ports we accept on.
    pub listen_ports: Vec<u16>,
    /// Largest IP packet we send.
    pub mtu: usize,
    /// Connection limit.
    pub max_connections: usize,
    /// Half-open limit before SYN cookies.
    pub syn_backlog: usize,
    /// TCP tunables.
    pub tcp: TcpConfig,
    /// ISN and cookie key.
    pub cookie_secret: [u8; 16],
    /// How to wait.
    pub poll_mode: PollMode,
    /// Frames per RX burst.
    pub rx_burst: usize,
}

impl WorkerConfig {
    /// A single-worker configuration for tests: `ips` on port 80.
    pub fn for_test(ips: Vec<IpAddr>) -> Self {
        WorkerConfig {
            id: 0,
            n_workers: 1,
            service_ips: ips,
            listen_ports: vec![80],
            mtu: 1500,
            max_connections: 1000,
            syn_backlog: 128,
            tcp: TcpConfig::default(),
            cookie_secret: [7; 16],
            poll_mode: PollMode::Busy,
            rx_burst: 64,
        }
    }
}

/// Everything of a worker but the port and the app, so the port can lend
/// frames while the core handles them.
struct Core {
    cfg: WorkerConfig,
    mac: MacAddr,
    neighbours: NeighbourCache,
    flows: FlowTable,
    timers: TimerWheel,
    listener: Listener,
    counters: Counters,
    tx: TxBatch,
    touched: Vec<ConnId>,
    fired: Vec<usize>,
    events: Vec<Event>,
    ip_id: u16,
    half_open: usize,
    waker: Waker,
    draining: bool,
    /// The port completes TCP checksums and cuts GSO frames.
    offload: bool,
    /// Restored connections not ready yet, with the moment they were
    /// restored; and the tally of those that finished.
    unready_since: HashMap<ConnId, Instant>,
    restores: RestoreStats,
    /// Frames built for a neighbour whose MAC we are asking for.
    l2_pending: L2Pending,
}

/// A frame without its destination MAC yet, and its offload requests.
type PendingFrame = (Vec<u8>, Option<TxOffload>);

/// Frames waiting for ARP (RFC 1122 §2.3.2.2: the link layer SHOULD save,
/// rather than discard, packets for an address being resolved). Without
/// this, the probe of every connection restored for a client this box has
/// never talked to (the usual case after a takeover) would be lost and
/// resent only after the first probe interval.
#[derive(Default)]
struct L2Pending {
    /// Per address: when its first frame was kept, and the frames.
    by_ip: HashMap<Ipv4Addr, (Instant, Vec<PendingFrame>)>,
    frames: usize,
    bytes: usize,
}

impl L2Pending {
    /// Keeps `frame` (its destination MAC still to be written) for `ip`;
    /// false when full (the frame is dropped; TCP retransmits it).
    fn push(
        &mut self,
        ip: Ipv4Addr,
        frame: &[u8],
        offload: Option<TxOffload>,
        now: Instant,
    ) -> bool {
        self.expire(now);
        if self.frames >= L2_PENDING_FRAMES || self.bytes + frame.len() > L2_PENDING_BYTES {
            return false;
        }
        let entry = self.by_ip.entry(ip).or_insert_with(|| (now, Vec::new()));
        entry.1.push((frame.to_vec(), offload));
        self.frames += 1;
        self.bytes += frame.len();
        true
    }

    /// Forgets frames that waited longer than [`L2_PENDING_MAX_AGE`].
    fn expire(&mut self, now: Instant) {
        if self.by_ip.is_empty() {
            return;
        }
        let (mut frames, mut bytes) = (0, 0);
        self.by_ip.retain(|_, (since, q)| {
            let keep = now.saturating_duration_since(*since) < L2_PENDING_MAX_AGE;
            if keep {
                frames += q.len();
                bytes += q.iter().map(|(f, _)| f.len()).sum::<usize>();
            }
            keep
        });
        self.frames = frames;
        self.bytes = bytes;
    }

    /// The frames waiting for `ip`, now that its MAC is known.
    fn take(&mut self, ip: Ipv4Addr) -> Vec<PendingFrame> {
        match self.by_ip.remove(&ip) {
            Some((_, q)) => {
                self.frames -= q.len();
                self.bytes -= q.iter().map(|(f, _)| f.len()).sum::<usize>();
                q
            }
            None => Vec::new(),
        }
    }
}

/// One worker: a port, an app, and the state between them.
pub struct Worker<P: Port, A: App> {
    port: P,
    app: A,
    core: Core,
    idle: u32,
}

impl<P: Port, A: App> Worker<P, A> {
    /// A worker over `port` serving `app`; `now` starts its timer wheel.
    pub fn new(port: P, app: A, cfg: WorkerConfig, now: Instant) -> Self {
        let listener = Listener::new(cfg.tcp.clone(), cfg.cookie_secret);
        let mac = port.mac();
        let offload = port.tx_offload();
        Worker {
            port,
            app,
            core: Core {
                cfg,
                mac,
                neighbours: NeighbourCache::default(),
                flows: FlowTable::new(),
                timers: TimerWheel::new(now, Duration::from_millis(1)),
                listener,
                counters: Counters::default(),
                tx: TxBatch::new(),
                touched: Vec::new(),
                fired: Vec::new(),
                events: Vec::new(),
                ip_id: 0,
                half_open: 0,
                waker: Waker::new(),
                draining: false,
                offload,
                unready_since: HashMap::new(),
                restores: RestoreStats::default(),
                l2_pending: L2Pending::default(),
            },
            idle: 0,
        }
    }

    /// A handle that wakes this worker from its adaptive wait.
    pub fn waker(&self) -> Waker {
        self.core.waker.clone()
    }

    /// The worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.core.counters
    }

    /// The app.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The app, mutably.
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// The port (tests reach the other end of a memory port this way).
    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    /// Connections in the flow table.
    pub fn connections(&self) -> usize {
        self.core.flows.len()
    }

    /// A stats snapshot.
    pub fn stats(&self) -> WorkerStats {
        let mut counters = self.core.counters;
        counters.tcp_open = self.core.flows.len() as u64;
        counters.drop_rx_truncated = self.port.rx_truncated();
        WorkerStats {
            worker: self.core.cfg.id,
            counters,
            connections: self.core.flows.len(),
            half_open: self.core.half_open,
            neighbours: self.core.neighbours.len(),
            timers: self.core.timers.len(),
            ring_drops: self.port.rx_ring_drops(),
            restores: RestoreStats {
                pending: self.core.unready_since.len() as u64,
                ..self.core.restores.clone()
            },
        }
    }

    /// Runs one frame through the receive path (parse and dispatch) without
    /// polling the port; [`Worker::poll`] then does the rest. For tests and
    /// the fuzz target.
    pub fn handle_frame(&mut self, frame: &[u8], meta: RxMeta, now: Instant) {
        self.core.on_frame(&mut self.app, frame, meta, now);
    }

    /// One iteration; returns whether there was any work.
    pub fn poll(&mut self, now: Instant) -> Result<bool, crate::port::PortError> {
        let core = &mut self.core;
        let app = &mut self.app;
        let n = self.port.rx_burst(core.cfg.rx_burst, |frame, meta| {
            core.on_frame(app, frame, meta, now)
        })?;
        core.fired.clear();
        core.timers.expire(now, &mut core.fired);
        let fired = !core.fired.is_empty();
        core.counters.timers_fired += core.fired.len() as u64;
        for i in 0..core.fired.len() {
            let index = core.fired[i];
            if let Some(id) = core.flows.id_at(index) {
                if let Some(c) = core.flows.get_mut(id) {
                    c.tcb.on_timeout(now);
                }
                core.touch(id);
            }
        }
        {
            let mut ctx = app_ctx!(core, now);
            self.app.poll(&mut ctx);
        }
        let touched = !core.touched.is_empty();
        core.process_touched(&mut self.port, &mut self.app, now)?;
        let sent = !core.tx.is_empty();
        core.flush(&mut self.port)?;
        Ok(n > 0 || fired || touched || sent)
    }

    /// Applies a control command; returns false for `Shutdown`.
    pub fn command(&mut self, cmd: Command, now: Instant) -> bool {
        let core = &mut self.core;
        match cmd {
            Command::Announce(IpAddr::V4(ip)) => {
                let mac = core.mac;
                let buf = core.tx.next_buf();
                if let Ok(n) = l2::emit_announcement(buf, mac, ip) {
                    core.tx.commit(n);
                    core.counters.arp_announcements_sent += 1;
                }
            }
            Command::Announce(IpAddr::V6(_)) => {}
            Command::AddServiceIp(ip) => {
                if !core.cfg.service_ips.contains(&ip) {
                    core.cfg.service_ips.push(ip);
                }
            }
            Command::RemoveServiceIp(ip) => core.cfg.service_ips.retain(|i| *i != ip),
            Command::Restore { export, app_data } => {
                if core.flows.lookup(&export.tuple).is_some() {
                    // Already ours (restored lazily, or a duplicate order).
                    core.counters.restore_duplicate += 1;
                } else {
                    let tcb = Tcb::restore(now, core.restored_tcp(), &export);
                    let id = core.flows.insert(tcb);
                    if let Some(c) = core.flows.get_mut(id) {
                        c.announced = true;
                    }
                    core.note_restored(id, now);
                    core.touch(id);
                    let mut ctx = app_ctx!(core, now);
                    self.app.on_restored(id, app_data, &mut ctx);
                }
            }
            Command::Drain(on) => core.draining = on,
            Command::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
            Command::Freeze => {
                let mut ctx = app_ctx!(core, now);
                for id in ctx.flows.ids() {
                    self.app.on_freeze(id, &mut ctx);
                }
                // Frames built but not sent are dropped with the worker:
                // the client never saw them, and the survivor syncs to the
                // client's acknowledgement anyway.
                core.tx.clear();
                return false;
            }
            Command::Handoff { tuples, to, done } => {
                let mut moved = Vec::with_capacity(tuples.len());
                for tuple in tuples {
                    let Some(id) = core.flows.lookup(&tuple) else {
                        continue;
                    };
                    let mut ctx = app_ctx!(core, now);
                    self.app.on_handoff(id, to, &mut ctx);
                    // Silently: the adopting box continues the connection.
                    if let Some(c) = core.flows.remove(id) {
                        if c.half_open {
                            core.half_open = core.half_open.saturating_sub(1);
                        }
                    }
                    core.timers.cancel(id.index());
                    moved.push(tuple);
                }
                let _ = done.send(moved);
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Runs until `Shutdown` or until the control channel closes.
    pub fn run(mut self, ctl: Receiver<Command>) -> Result<(), crate::app::DataplaneError> {
        loop {
            loop {
                match ctl.try_recv() {
                    Ok(cmd) => {
                        if !self.command(cmd, Instant::now()) {
                            return Ok(());
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            }
            let now = Instant::now();
            let worked = self.poll(now)?;
            if let PollMode::Adaptive { spins } = self.core.cfg.poll_mode {
                if worked {
                    self.idle = 0;
                } else {
                    self.idle += 1;
                    if self.idle >= spins {
                        let timeout = match self.core.timers.next_wakeup() {
                            Some(t) => t.saturating_duration_since(now).min(MAX_BLOCK),
                            None => MAX_BLOCK,
                        };
                        self.core.counters.idle_waits += 1;
                        self.port.wait(Some(timeout), self.core.waker.raw_fd())?;
                        self.core.waker.drain();
                        self.idle = 0;
                    }
                }
            }
        }
    }
}

impl Core {
    fn owns_v4(&self, ip: Ipv4Addr) -> bool {
        self.cfg.service_ips.contains(&IpAddr::V4(ip))
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
    fn restored_tcp(&self) -> TcpConfig {
        let mut tcp = self.cfg.tcp.clone();
        tcp.initial_rto = tcp.initial_rto.min(tcp.min_rto);
        tcp
    }

    /// A restored connection starts waiting for its client's answer.
    fn note_restored(&mut self, id: ConnId, now: Instant) {
        self.restores.restored += 1;
        self.unready_since.insert(id, now);
    }

    fn touch(&mut self, id: ConnId) {
        if let Some(c) = self.flows.get_mut(id) {
            if !c.touched {
                c.touched = true;
                self.touched.push(id);
            }
        }
    }

    fn flush<P: Port>(&mut self, port: &mut P) -> Result<(), crate::port::PortError> {
        if self.tx.is_empty() {
            return Ok(());
        }
        let n = self.tx.len();
        let bytes: usize = self.tx.frames().map(|f| f.len()).sum();
        let sent = port.tx_burst(&mut self.tx)?;
        self.counters.tx_frames += sent as u64;
        self.counters.tx_bytes += bytes as u64;
        self.counters.tx_dropped += (n - sent.min(n)) as u64;
        Ok(())
    }

    fn on_frame<A: App>(&mut self, app: &mut A, frame: &[u8], meta: RxMeta, now: Instant) {
        self.counters.rx_frames += 1;
        self.counters.rx_bytes += frame.len() as u64;
        let (eh, payload) = match ethernet::parse(frame) {
            Ok(x) => x,
            Err(e) => return self.counters.record(e),
        };
        if eh.dst != self.mac && !eh.dst.is_broadcast() {
            self.counters.drop_eth_not_for_us += 1;
            return;
        }
        match eh.ethertype {
            ethernet::ETHERTYPE_ARP => self.on_arp(&eh, payload),
            ethernet::ETHERTYPE_IPV4 => self.on_ipv4(app, frame, &eh, payload, meta, now),
            _ => self.counters.drop_eth_unknown_type += 1,
        }
    }

    fn on_arp(&mut self, eh: &EthernetHeader, payload: &[u8]) {
        let p = match arp::parse(payload) {
            Ok(p) => p,
            Err(e) => return self.counters.record(e),
        };
        // RFC 826: merge the sender into the table before looking at the op.
        if eh.src == p.sender_mac {
            self.neighbours.learn(p.sender_ip, p.sender_mac);
            self.send_pending(p.sender_ip);
        }
        if p.op == arp::OP_REQUEST && self.owns_v4(p.target_ip) {
            let mac = self.mac;
            let buf = self.tx.next_buf();
            match l2::emit_arp_reply(buf, mac, p.target_ip, &p) {
                Ok(n) => {
                    self.tx.commit(n);
                    self.counters.arp_replies_sent += 1;
                }
                Err(e) => self.counters.record(e),
            }
        } else {
            self.counters.arp_not_for_us += 1;
        }
    }

    fn on_ipv4<A: App>(
        &mut self,
        app: &mut A,
        frame: &[u8],
        eh: &EthernetHeader,
        payload: &[u8],
        meta: RxMeta,
        now: Instant,
    ) {
        let (ih, l4) = match ipv4::parse(payload) {
            Ok(x) => x,
            Err(e) => return self.counters.record(e),
        };
        let owned = self.owns_v4(ih.dst);
        if !owned && !self.holds_forwarded(eh, &ih, l4) {
            self.counters.drop_ipv4_not_ours += 1;
            return;
        }
        // A client's MAC is learned from its own frames (its SYN), so
        // workers other than 0 never need to ARP for their clients. A
        // forwarded frame carries the forwarding survivor's MAC as its
        // source, not the client's: learning from it would send our
        // replies to that survivor.
        if owned && self.neighbours.lookup(ih.src) != Some(eh.src) {
            self.neighbours.learn(ih.src, eh.src);
            self.send_pending(ih.src);
        }
        match ih.protocol {
            ipv4::PROTO_TCP => self.on_tcp(app, frame, &ih, l4, meta, now),
            ipv4::PROTO_ICMP => self.on_icmp(eh, &ih, l4),
            _ => self.counters.drop_ipv4_unknown_protocol += 1,
        }
    }

    /// A frame for an address we do not own, sent to our MAC by the survivor
    /// that inherited a dead box's address, for a connection restored here
    /// (ARCHITECTURE.md "Takeover" step 3): ours to process. We never answer
    /// ARP for such an address, so only forwarded frames reach us.
    fn holds_forwarded(&self, eh: &EthernetHeader, ih: &ipv4::Ipv4Header, l4: &[u8]) -> bool {
        if ih.protocol != ipv4::PROTO_TCP || eh.dst != self.mac {
            return false;
        }
        let (Some(sp), Some(dp)) = (l4.get(0..2), l4.get(2..4)) else {
            return false;
        };
        let tuple = FourTuple {
            local: SocketAddr::new(IpAddr::V4(ih.dst), u16::from_be_bytes([dp[0], dp[1]])),
            remote: SocketAddr::new(IpAddr::V4(ih.src), u16::from_be_bytes([sp[0], sp[1]])),
        };
        self.flows.lookup(&tuple).is_some()
    }

    fn on_icmp(&mut self, eh: &EthernetHeader, ih: &ipv4::Ipv4Header, l4: &[u8]) {
        let m = match icmp::parse(l4) {
            Ok(m) => m,
            Err(e) => return self.counters.record(e),
        };
        if m.ty != icmp::TYPE_ECHO_REQUEST || m.code != 0 {
            self.counters.drop_icmp_unhandled += 1;
            return;
        }
        let id = self.next_ip_id();
        let mac = self.mac;
        let buf = self.tx.next_buf();
        match l2::emit_echo_reply_frame(buf, mac, eh.src, ih.dst, ih.src, id, &m) {
            Ok(n) => {
                self.tx.commit(n);
                self.counters.icmp_echo_replies_sent += 1;
            }
            Err(e) => self.counters.record(e),
        }
    }

    fn next_ip_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    fn on_tcp<A: App>(
        &mut self,
        app: &mut A,
        frame: &[u8],
        ih: &ipv4::Ipv4Header,
        l4: &[u8],
        meta: RxMeta,
        now: Instant,
    ) {
        let (src, dst) = (IpAddr::V4(ih.src), IpAddr::V4(ih.dst));
        let seg = match tcp::parse(src, dst, l4, meta.checksum_trusted) {
            Ok(s) => s,
            Err(e) => return self.counters.record(e),
        };
        let tuple = FourTuple {
            local: SocketAddr::new(dst, seg.dst_port),
            remote: SocketAddr::new(src, seg.src_port),
        };
        if let Some(id) = self.flows.lookup(&tuple) {
            if !self
                .flows
                .get(id)
                .is_some_and(|c| c.tcb.accepts_new_syn(&seg))
            {
                if let Some(c) = self.flows.get_mut(id) {
                    c.tcb.on_segment(now, &seg);
                }
                self.touch(id);
                return;
            }
            // RFC 6191 §2 (as Linux's tcp_timewait_state_process): a SYN
            // newer than anything of the old connection ends its TIME-WAIT
            // and opens a new incarnation through the listener below.
            if self.flows.get(id).is_some_and(|c| c.announced) {
                let mut ctx = app_ctx!(self, now);
                app.on_closed(id, CloseReason::Normal, &mut ctx);
            }
            if let Some(c) = self.flows.remove(id) {
                if c.half_open {
                    self.half_open = self.half_open.saturating_sub(1);
                }
                self.counters.tcp_closed += 1;
                self.counters.tcp_time_wait_reopened += 1;
            }
            self.timers.cancel(id.index());
        }
        if !self.cfg.listen_ports.contains(&seg.dst_port) {
            self.counters.tcp_no_listener += 1;
            if let Some(rst) = reset_for(&seg) {
                self.emit_tcp(&tuple, &rst, now, 0);
            }
            return;
        }
        if seg.flags.syn && !seg.flags.ack {
            if self.draining {
                self.counters.drop_tcp_draining += 1;
                return;
            }
            if self.flows.len() >= self.cfg.max_connections {
                // Dropped, not reset: the client retries its SYN later.
                self.counters.drop_tcp_max_connections += 1;
                return;
            }
            match self
                .listener
                .on_syn(now, tuple, &seg, self.half_open, self.cfg.syn_backlog)
            {
                SynOutcome::Tcb(tcb) => {
                    let id = self.flows.insert(tcb);
                    if let Some(c) = self.flows.get_mut(id) {
                        c.half_open = true;
                    }
                    self.half_open += 1;
                    self.touch(id);
                }
                SynOutcome::Cookie(out) => {
                    self.counters.tcp_syn_backlog_full += 1;
                    self.emit_tcp(&tuple, &out, now, 0);
                }
                SynOutcome::Drop => self.counters.drop_tcp_listener += 1,
            }
        } else {
            // Takeover (ARCHITECTURE.md "Takeover" step 3): a segment of a
            // connection we do not know may belong to a dead box's orphan:
            // ours to restore lazily, or another survivor's to forward.
            match app.on_unknown_segment(tuple, seg.flags.rst) {
                UnknownAction::Listener => {}
                UnknownAction::Drop => {
                    self.counters.drop_tcp_unknown_by_app += 1;
                    return;
                }
                UnknownAction::Forward(mac) => {
                    // The connection was assigned to another survivor: hand
                    // it the client's frame unchanged but for the MACs.
                    let ours = self.mac;
                    let buf = self.tx.next_buf();
                    match buf.get_mut(..frame.len()) {
                        Some(out) if frame.len() >= ethernet::HEADER_LEN => {
                            out.copy_from_slice(frame);
                            out[0..6].copy_from_slice(&mac.0);
                            out[6..12].copy_from_slice(&ours.0);
                            self.tx.commit(frame.len());
                            self.counters.tcp_forwarded += 1;
                        }
                        _ => self.counters.drop_emit_error += 1,
                    }
                    return;
                }
                // A RST ends the orphan: nothing to restore.
                UnknownAction::Restore(..) if seg.flags.rst => {
                    self.counters.drop_tcp_unknown_by_app += 1;
                    return;
                }
                UnknownAction::Restore(export, data) if export.tuple == tuple => {
                    let tcb = Tcb::restore(now, self.restored_tcp(), &export);
                    let id = self.flows.insert(tcb);
                    if let Some(c) = self.flows.get_mut(id) {
                        c.announced = true;
                        // The client's segment may already be the answer
                        // the restored TCB's probe waits for.
                        c.tcb.on_segment(now, &seg);
                    }
                    self.note_restored(id, now);
                    self.touch(id);
                    self.counters.tcp_lazy_restored += 1;
                    let mut ctx = app_ctx!(self, now);
                    app.on_restored(id, data, &mut ctx);
                    return;
                }
                UnknownAction::Restore(..) => {
                    // A checkpoint of another connection: the app's bug,
                    // not the client's; answer as if unknown.
                    self.counters.drop_emit_error += 1;
                }
            }
            match self.listener.on_unknown(now, tuple, &seg) {
                UnknownOutcome::Tcb(tcb) => {
                    if self.flows.len() >= self.cfg.max_connections {
                        self.counters.drop_tcp_max_connections += 1;
                        return;
                    }
                    let id = self.flows.insert(tcb);
                    self.touch(id);
                }
                UnknownOutcome::Reply(out) => self.emit_tcp(&tuple, &out, now, 0),
                UnknownOutcome::Drop => self.counters.drop_tcp_listener += 1,
            }
        }
    }

    /// Builds the frame of `seg` for `tuple` into the TX batch. With
    /// `gso` > 0, `seg` is several MSS-sized segments merged, which the
    /// port's GSO cuts back into `gso`-byte segments.
    fn emit_tcp(&mut self, tuple: &FourTuple, seg: &OutSegment, now: Instant, gso: u16) {
        let (IpAddr::V4(local), IpAddr::V4(remote)) = (tuple.local.ip(), tuple.remote.ip()) else {
            self.counters.drop_emit_error += 1;
            return;
        };
        let dst_mac = self.neighbours.lookup(remote);
        if dst_mac.is_none() && self.neighbours.should_request(remote, now) {
            {
                let mac = self.mac;
                // An ARP request updates the target's entry for its sender
                // (RFC 826): for a connection restored here on another box's
                // address, ask with an address we own, never the one the
                // inheriting survivor announces.
                let sender = if self.owns_v4(local) {
                    local
                } else {
                    self.cfg
                        .service_ips
                        .iter()
                        .find_map(|ip| match ip {
                            IpAddr::V4(v4) => Some(*v4),
                            IpAddr::V6(_) => None,
                        })
                        .unwrap_or(local)
                };
                let buf = self.tx.next_buf();
                if let Ok(n) = l2::emit_request(buf, mac, sender, remote) {
                    self.tx.commit(n);
                    self.counters.arp_requests_sent += 1;
                }
            }
        }
        let id = self.next_ip_id();
        let mac = self.mac;
        let mtu = self.cfg.mtu;
        let partial = self.offload;
        let payload = seg.payload_len();
        let l4_at = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
        let buf = self
            .tx
            .next_buf_sized(l4_at + tcp::MIN_HEADER_LEN + tcp::MAX_OPTIONS_LEN + payload);
        let result = (|| {
            let e = ethernet::emit(
                buf,
                &EthernetHeader {
                    // Written when the neighbour answers (see L2Pending).
                    dst: dst_mac.unwrap_or(MacAddr([0; 6])),
                    src: mac,
                    ethertype: ethernet::ETHERTYPE_IPV4,
                },
            )?;
            // A frame the device will not cut must fit the MTU.
            let limit = if gso > 0 {
                buf.len()
            } else {
                (e + mtu).min(buf.len())
            };
            let t = tcp::emit_with(
                buf.get_mut(l4_at..limit)
                    .ok_or(crate::wire::WireError::BufferTooSmall)?,
                tuple.local.ip(),
                tuple.remote.ip(),
                seg,
                partial,
            )?;
            ipv4::emit(&mut buf[e..], local, remote, ipv4::PROTO_TCP, id, t)?;
            Ok::<usize, crate::wire::WireError>(t)
        })();
        let (len, offload) = match result {
            Ok(t) if partial => (
                l4_at + t,
                Some(TxOffload {
                    gso_size: gso,
                    csum_start: l4_at as u16,
                    // The checksum field's offset in the TCP header.
                    csum_offset: 16,
                    hdr_len: (l4_at + t - payload) as u16,
                }),
            ),
            Ok(t) => (l4_at + t, None),
            Err(e) => return self.counters.record(e),
        };
        if dst_mac.is_none() {
            // Built in the TX buffer but not committed: keep a copy until
            // the neighbour answers.
            let frame = self.tx.next_buf_sized(len).get(..len).unwrap_or(&[]);
            if frame.is_empty() || !self.l2_pending.push(remote, frame, offload, now) {
                self.counters.drop_no_neighbour += 1;
            }
            return;
        }
        if offload.is_some_and(|o| o.gso_size > 0) {
            self.counters.tx_gso_frames += 1;
        }
        match offload {
            Some(o) => self.tx.commit_offload(len, o),
            None => self.tx.commit(len),
        }
    }

    /// Sends the frames that waited for `ip`'s MAC, now known.
    fn send_pending(&mut self, ip: Ipv4Addr) {
        if self.l2_pending.frames == 0 {
            return;
        }
        let Some(mac) = self.neighbours.lookup(ip) else {
            return;
        };
        for (frame, offload) in self.l2_pending.take(ip) {
            let buf = self.tx.next_buf_sized(frame.len());
            let Some(out) = buf.get_mut(..frame.len()) else {
                self.counters.drop_no_neighbour += 1;
                continue;
            };
            out.copy_from_slice(&frame);
            out[0..6].copy_from_slice(&mac.0);
            match offload {
                Some(o) => {
                    if o.gso_size > 0 {
                        self.counters.tx_gso_frames += 1;
                    }
                    self.tx.commit_offload(frame.len(), o)
                }
                None => self.tx.commit(frame.len()),
            }
        }
    }

    fn process_touched<P: Port, A: App>(
        &mut self,
        port: &mut P,
        app: &mut A,
        now: Instant,
    ) -> Result<(), crate::port::PortError> {
        while let Some(id) = self.touched.pop() {
            let Some(c) = self.flows.get_mut(id) else {
                continue;
            };
            c.touched = false;
            self.events.clear();
            while let Some(ev) = c.tcb.poll_event() {
                self.events.push(ev);
            }
            let state = c.tcb.state();
            if c.half_open && state != State::SynReceived {
                c.half_open = false;
                self.half_open = self.half_open.saturating_sub(1);
            }
            let accept = !c.announced
                && !matches!(
                    state,
                    State::SynReceived | State::SynSent | State::Unready | State::Closed
                );
            if accept {
                c.announced = true;
            }
            let announced = c.announced;
            let mut done: Option<CloseReason> = None;
            {
                let mut ctx = app_ctx!(self, now);
                if accept {
                    self.counters.tcp_accepted += 1;
                    app.on_accept(id, &mut ctx);
                }
                for ev in self.events.drain(..) {
                    match ev {
                        Event::Established => {}
                        Event::Readable if announced => app.on_readable(id, &mut ctx),
                        Event::Writable if announced => app.on_writable(id, &mut ctx),
                        Event::PeerClosed if announced => app.on_peer_closed(id, &mut ctx),
                        Event::Ready { snd_una, rcv_nxt } => {
                            if let Some(at) = self.unready_since.remove(&id) {
                                self.restores
                                    .record_ready(now.saturating_duration_since(at));
                            }
                            app.on_ready(id, snd_una, rcv_nxt, &mut ctx)
                        }
                        Event::Readable | Event::Writable | Event::PeerClosed => {}
                        Event::Closed => done = done.or(Some(CloseReason::Normal)),
                        Event::Reset => done = done.or(Some(CloseReason::Reset)),
                        Event::TimedOut => done = done.or(Some(CloseReason::TimedOut)),
                        Event::NotReady => done = done.or(Some(CloseReason::NotReady)),
                    }
                }
            }
            // Transmit what the segment, the timer or the app produced.
            // With offload, back-to-back full segments become one GSO frame.
            let mut pending: Option<(OutSegment, FourTuple, u16, usize)> = None;
            while let Some((seg, tuple)) = self
                .flows
                .get_mut(id)
                .and_then(|c| c.tcb.poll_transmit(now).map(|s| (s, c.tcb.tuple())))
            {
                if !self.offload {
                    self.emit_tcp(&tuple, &seg, now, 0);
                } else {
                    if let Some((p, _, gso, count)) = pending.as_mut() {
                        if can_merge(p, *gso, *count, &seg) {
                            p.flags.psh |= seg.flags.psh;
                            p.flags.fin = seg.flags.fin;
                            p.payload.extend(seg.payload);
                            *count += 1;
                            continue;
                        }
                    }
                    if let Some((p, t, gso, count)) = pending.take() {
                        self.emit_tcp(&t, &p, now, if count > 1 { gso } else { 0 });
                    }
                    let gso = u16::try_from(seg.payload_len()).unwrap_or(0);
                    pending = Some((seg, tuple, gso, 1));
                }
                if self.tx.len() >= TX_FLUSH {
                    self.flush(port)?;
                }
            }
            if let Some((p, t, gso, count)) = pending.take() {
                self.emit_tcp(&t, &p, now, if count > 1 { gso } else { 0 });
            }
            let Some(c) = self.flows.get_mut(id) else {
                continue;
            };
            if done.is_none() && c.tcb.state() == State::Closed && !c.touched {
                done = Some(CloseReason::Normal);
            }
            match done {
                Some(reason) => {
                    if c.announced {
                        let mut ctx = app_ctx!(self, now);
                        app.on_closed(id, reason, &mut ctx);
                    }
                    if let Some(c) = self.flows.remove(id) {
                        if c.half_open {
                            self.half_open = self.half_open.saturating_sub(1);
                        }
                        self.counters.tcp_closed += 1;
                    }
                    if self.unready_since.remove(&id).is_some() {
                        self.restores.not_ready += 1;
                    }
                    self.timers.cancel(id.index());
                }
                None => match c.tcb.poll_timeout() {
                    Some(t) => self.timers.arm(id.index(), t),
                    None => self.timers.cancel(id.index()),
                },
            }
        }
        Ok(())
    }
}

/// Largest payload merged into one GSO frame: the IPv4 total length is a
/// 16-bit field, and headers take up to 80 bytes of it.
const GSO_MAX_PAYLOAD: usize = 65_535 - 100;

/// Whether `seg` may be appended to `p` (already `count` segments of `gso`
/// bytes) as one GSO frame: the same header but for sequence number and
/// PSH/FIN (which GSO keeps on the last segment only), contiguous, every
/// earlier segment full-sized (GSO cuts at `gso` bytes), no SYN, RST or
/// ECN signalling.
fn can_merge(p: &OutSegment, gso: u16, count: usize, seg: &OutSegment) -> bool {
    let plen = p.payload_len();
    let slen = seg.payload_len();
    gso > 0
        && plen == usize::from(gso) * count
        && slen > 0
        && slen <= usize::from(gso)
        && plen + slen <= GSO_MAX_PAYLOAD
        && !(p.flags.fin || p.flags.syn || p.flags.rst || p.flags.cwr || p.flags.ece || p.flags.urg)
        && !(seg.flags.syn || seg.flags.rst || seg.flags.cwr || seg.flags.ece || seg.flags.urg)
        && seg.flags.ack == p.flags.ack
        && seg.seq == p.seq + plen as u32
        && seg.ack == p.ack
        && seg.window == p.window
        && seg.options == p.options
        && seg.src_port == p.src_port
        && seg.dst_port == p.dst_port
}

/// The RST for a segment to a port nobody listens on (RFC 9293 §3.10.7.1:
/// if the ACK bit is off, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>,
/// otherwise <SEQ=SEG.ACK><CTL=RST>). A RST is never answered.
fn reset_for(seg: &Segment<'_>) -> Option<OutSegment> {
    if seg.flags.rst {
        return None;
    }
    let mut out = OutSegment {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        ..OutSegment::default()
    };
    if seg.flags.ack {
        out.seq = seg.ack;
        out.flags = Flags {
            rst: true,
            ..Flags::default()
        };
    } else {
        out.ack = seg.seq + seg.seq_len();
        out.flags = Flags {
            rst: true,
            ack: true,
            ..Flags::default()
        };
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::SeqNum;
    use bytes::Bytes;

    fn data(seq: u32, len: usize) -> OutSegment {
        OutSegment {
            src_port: 80,
            dst_port: 40000,
            seq: SeqNum(seq),
            ack: SeqNum(7),
            flags: Flags {
                ack: true,
                ..Flags::default()
            },
            window: 100,
            payload: vec![Bytes::from(vec![0u8; len])],
            ..OutSegment::default()
        }
    }

    const BOX_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
    const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);
    const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);

    struct Quiet;
    impl App for Quiet {
        fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
        fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
        fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
        fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
    }

    fn export(port: u16) -> TcbExport {
        TcbExport {
            tuple: FourTuple {
                local: SocketAddr::new(IpAddr::V4(SERVICE), 80),
                remote: SocketAddr::new(IpAddr::V4(CLIENT), port),
            },
            state: State::Established,
            iss: 1000,
            irs: 5000,
            snd_una: 90_000,
            snd_nxt: 90_000,
            rcv_nxt: 5100,
            snd_wnd: 65_535,
            rcv_wnd: 65_535,
            mss: 1460,
            snd_wscale: 0,
            rcv_wscale: 0,
            sack_permitted: false,
            timestamps: false,
            ts_recent: 0,
            ts_last_sent: 0,
            acks_covered: false,
        }
    }

    fn arp_reply_from_client() -> Vec<u8> {
        let mut r = vec![0u8; 60];
        l2::emit_arp_frame(
            &mut r,
            BOX_MAC,
            CLIENT_MAC,
            &arp::ArpPacket {
                op: arp::OP_REPLY,
                sender_mac: CLIENT_MAC,
                sender_ip: CLIENT,
                target_mac: BOX_MAC,
                target_ip: SERVICE,
            },
        )
        .unwrap();
        r
    }

    /// The TCP segments (destination MAC, sequence number, payload length)
    /// among `frames`.
    fn tcp_frames(frames: &[Vec<u8>]) -> Vec<(MacAddr, u32, usize)> {
        frames
            .iter()
            .filter_map(|f| {
                let (eh, p) = ethernet::parse(f).ok()?;
                let (ih, l4) = ipv4::parse(p).ok()?;
                let s = tcp::parse(IpAddr::V4(ih.src), IpAddr::V4(ih.dst), l4, true).ok()?;
                Some((eh.dst, s.seq.0, s.payload.len()))
            })
            .collect()
    }

    #[test]
    fn probes_for_an_unresolved_client_wait_for_its_arp_reply_instead_of_being_lost() {
        // A survivor that never talked to this client address restores two
        // of its connections: RFC 1122 §2.3.2.2, the link layer saves the
        // packets for an address being resolved. The probes go out the
        // moment the client answers the ARP request, not one probe
        // interval later.
        let now = Instant::now();
        let (mut wire, port) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
        let mut w = Worker::new(
            port,
            Quiet,
            WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]),
            now,
        );
        for p in [40_001, 40_002] {
            w.command(
                Command::Restore {
                    export: export(p),
                    app_data: Box::new(()),
                },
                now,
            );
        }
        w.poll(now).unwrap();
        let first = wire.drain();
        assert_eq!(w.counters().arp_requests_sent, 1, "one request per address");
        assert!(tcp_frames(&first).is_empty(), "no frame to an unknown MAC");
        assert_eq!(w.counters().drop_no_neighbour, 0, "the probes are kept");

        wire.send(arp_reply_from_client()).unwrap();
        w.poll(now + Duration::from_millis(1)).unwrap();
        let probes = tcp_frames(&wire.drain());
        assert_eq!(
            probes,
            vec![(CLIENT_MAC, 89_999, 1), (CLIENT_MAC, 89_999, 1)],
            "both probes (one old byte each) reach the client once it answered"
        );
        let stats = w.stats();
        assert_eq!(stats.restores.restored, 2);
        assert_eq!(stats.restores.pending, 2, "no answer from the client yet");
    }

    /// Sends 3000 bytes once the connection is ready.
    struct Resumer;
    impl App for Resumer {
        fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
        fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
        fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
        fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
        fn on_ready(&mut self, conn: ConnId, _: SeqNum, _: SeqNum, ctx: &mut Ctx<'_>) {
            ctx.send(conn, Bytes::from(vec![b'r'; 3000])).unwrap();
        }
    }

    fn client_ack(seq: u32, ack: u32) -> Vec<u8> {
        let seg = OutSegment {
            src_port: 40_003,
            dst_port: 80,
            seq: SeqNum(seq),
            ack: SeqNum(ack),
            flags: Flags {
                ack: true,
                ..Flags::default()
            },
            window: 65_535,
            ..OutSegment::default()
        };
        let mut f = vec![0u8; 200];
        let e = ethernet::emit(
            &mut f,
            &EthernetHeader {
                dst: BOX_MAC,
                src: CLIENT_MAC,
                ethertype: ethernet::ETHERTYPE_IPV4,
            },
        )
        .unwrap();
        let t = tcp::emit(
            &mut f[e + 20..],
            IpAddr::V4(CLIENT),
            IpAddr::V4(SERVICE),
            &seg,
        )
        .unwrap();
        ipv4::emit(&mut f[e..], CLIENT, SERVICE, ipv4::PROTO_TCP, 1, t).unwrap();
        f.truncate(e + 20 + t);
        f
    }

    #[test]
    fn restored_connection_retransmits_a_lost_first_segment_after_min_rto_not_a_second() {
        // RFC 6298 §2.2: a round trip of ~1 ms (the probe's) gives an RTO
        // of min_rto (200 ms). The resumed download's first segment is
        // lost: the client must see it again well before the 1 s initial
        // RTO of a connection with no RTT measurement.
        let t0 = Instant::now();
        let (mut wire, port) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
        let mut w = Worker::new(
            port,
            Resumer,
            WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]),
            t0,
        );
        wire.send(arp_reply_from_client()).unwrap();
        w.poll(t0).unwrap();
        w.command(
            Command::Restore {
                export: export(40_003),
                app_data: Box::new(()),
            },
            t0,
        );
        w.poll(t0).unwrap();
        assert_eq!(tcp_frames(&wire.drain()).len(), 1, "the probe");
        // The client's answer: its RCV.NXT is the checkpoint's SND.UNA.
        wire.send(client_ack(5100, 90_000)).unwrap();
        let t1 = t0 + Duration::from_millis(1);
        w.poll(t1).unwrap();
        let first = tcp_frames(&wire.drain());
        assert!(
            first.iter().any(|&(_, seq, len)| seq == 90_000 && len > 0),
            "ready: the download resumes at the client's byte: {first:?}"
        );
        // Lost. Nothing comes back from the client.
        let mut retransmitted_at = None;
        for ms in 2..1000u64 {
            let now = t0 + Duration::from_millis(ms);
            w.poll(now).unwrap();
            if tcp_frames(&wire.drain())
                .iter()
                .any(|&(_, seq, len)| seq == 90_000 && len > 0)
            {
                retransmitted_at = Some(ms);
                break;
            }
        }
        let at = retransmitted_at.expect("the lost segment was sent again within a second");
        assert!(
            (200..=300).contains(&at),
            "retransmitted {at} ms after the restore: min_rto, not the 1 s initial RTO"
        );
    }

    #[test]
    fn frames_for_a_neighbour_that_never_answers_are_dropped_after_a_second() {
        let now = Instant::now();
        let mut q = L2Pending::default();
        assert!(q.push(CLIENT, &[1; 60], None, now));
        q.expire(now + Duration::from_millis(999));
        assert_eq!(q.frames, 1);
        q.expire(now + L2_PENDING_MAX_AGE);
        assert_eq!((q.frames, q.bytes), (0, 0));
        assert!(q.take(CLIENT).is_empty());
    }

    #[test]
    fn restore_to_ready_times_sum_over_workers_and_give_quantiles() {
        let mut a = RestoreStats::default();
        assert_eq!(a.ready_quantile(0.5), None, "nothing ready yet");
        a.restored = 3;
        a.record_ready(Duration::from_millis(3));
        a.record_ready(Duration::from_millis(45));
        let mut b = RestoreStats {
            restored: 2,
            not_ready: 1,
            ..RestoreStats::default()
        };
        b.record_ready(Duration::from_secs(30));
        let before = a.clone();
        a.add(&b);
        assert_eq!((a.restored, a.ready, a.not_ready), (5, 3, 1));
        assert_eq!(a.ready_quantile(0.33), Some(Duration::from_millis(10)));
        assert_eq!(a.ready_quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(
            a.ready_quantile(1.0),
            Some(Duration::from_secs(10)),
            "the last bucket holds everything slower than 10 s"
        );
        let d = a.since(&before);
        assert_eq!((d.restored, d.ready, d.not_ready), (2, 1, 1));
        assert_eq!(d.ready_quantile(0.5), Some(Duration::from_secs(10)));
    }

    #[test]
    fn back_to_back_full_segments_merge_and_a_short_one_ends_the_run() {
        let first = data(u32::MAX - 100, 1448);
        // Contiguous across the 2^32 wrap, full-sized: mergeable.
        assert!(can_merge(
            &first,
            1448,
            1,
            &data((u32::MAX - 100).wrapping_add(1448), 1448)
        ));
        // A shorter last segment may join...
        assert!(can_merge(
            &first,
            1448,
            1,
            &data((u32::MAX - 100).wrapping_add(1448), 10)
        ));
        // ...but nothing may follow a short one (GSO cuts at gso_size).
        let mut short = data(0, 1448);
        short.payload.push(Bytes::from_static(b"x"));
        assert!(!can_merge(&short, 1448, 1, &data(1449, 1448)));
        // A gap, another ACK, a window change, a SYN/FIN/RST: no merge.
        assert!(!can_merge(
            &first,
            1448,
            1,
            &data((u32::MAX - 100).wrapping_add(1449), 1448)
        ));
        let mut other_ack = data((u32::MAX - 100).wrapping_add(1448), 1448);
        other_ack.ack = SeqNum(8);
        assert!(!can_merge(&first, 1448, 1, &other_ack));
        let mut fin = first.clone();
        fin.flags.fin = true;
        assert!(!can_merge(
            &fin,
            1448,
            1,
            &data((u32::MAX - 100).wrapping_add(1448), 1448)
        ));
        assert!(
            !can_merge(
                &first,
                1448,
                1,
                &data((u32::MAX - 100).wrapping_add(1448), 0)
            ),
            "pure ACKs stay apart"
        );
        // The IPv4 total length caps a merged frame below 64 KiB.
        let big = data(0, 1448 * 45);
        assert!(!can_merge(&big, 1448, 45, &data(1448 * 45, 1448)));
    }
}
