//! The application interface, and starting the dataplane.
//!
//! An [`App`] lives on one worker and is called by that worker only, so it
//! needs no locks: one instance per worker, made by the factory given to
//! [`start`]. The worker calls it when a connection is accepted, has data,
//! has send space, or ends; the app acts on connections through [`Ctx`]
//! (receive, send, close). [`Ctx::send`] returns the sequence number of the
//! first byte queued, which is what a checkpoint records as the start of an
//! object (ARCHITECTURE.md, "Checkpoints").
//!
//! The dataplane does not know the configuration file: the appliance fills
//! [`DataplaneOptions`] from it.

use crate::flow::{ConnId, FlowTable};
use crate::port::afpacket::{AfPacketConfig, AfPacketPort, RxRing};
use crate::port::{worker_for, Port, PortError};
use crate::tcp::{FourTuple, SendError, SeqNum, State, TcbExport, TcbStats, TcpConfig};
use crate::wire::ethernet::MacAddr;
use crate::worker::{Command, Waker, Worker, WorkerConfig, WorkerStats};
use bytes::Bytes;
use crossbeam_channel::Sender;
use std::any::Any;
use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why a connection ended, as told to [`App::on_closed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides closed (FIN exchange completed).
    Normal,
    /// A RST arrived, or the connection was aborted.
    Reset,
    /// Retransmissions, probes or the idle timer ran out.
    TimedOut,
    /// A restored connection could not resume (takeover failed).
    NotReady,
}

/// The application a worker serves. Every method runs on the worker's
/// thread; keep them short (no blocking I/O): a worker spends its time
/// moving packets.
pub trait App: 'static {
    /// A client completed the handshake on `conn`.
    fn on_accept(&mut self, conn: ConnId, ctx: &mut Ctx<'_>);
    /// In-order data can be read from `conn` with [`Ctx::recv`].
    fn on_readable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>);
    /// Send space grew on `conn` ([`Ctx::send_capacity`]).
    fn on_writable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>);
    /// The client sent its FIN: it will send no more. The default closes
    /// our side after the data already given to [`Ctx::send`]. An app that
    /// still holds response bytes of its own (waiting for send space) must
    /// override this and close only after its last `send`, or the client
    /// gets a truncated response (see [`crate::responder`]).
    fn on_peer_closed(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        ctx.close(conn);
    }
    /// `conn` is gone; its id is dead from now on.
    fn on_closed(&mut self, conn: ConnId, reason: CloseReason, ctx: &mut Ctx<'_>);
    /// A connection restored from a checkpoint was handed to this worker
    /// (still unready); `data` is what the restorer attached.
    fn on_restored(&mut self, conn: ConnId, data: Box<dyn Any + Send>, ctx: &mut Ctx<'_>) {
        let _ = (conn, data, ctx);
    }
    /// A segment other than a SYN arrived, on a listening port, for a
    /// connection this worker does not know (`rst`: it carries RST). During
    /// a takeover it may belong to a dead box's orphan: see
    /// [`UnknownAction`]. The default lets the listener answer it (SYN
    /// cookie or RST). Called on the data path: keep the lookup cheap.
    fn on_unknown_segment(&mut self, tuple: FourTuple, rst: bool) -> UnknownAction {
        let _ = (tuple, rst);
        UnknownAction::Listener
    }
    /// A restored connection resynchronised with the client: resume sending
    /// at `snd_una` (seed Fig. 6, "ready").
    fn on_ready(&mut self, conn: ConnId, snd_una: SeqNum, rcv_nxt: SeqNum, ctx: &mut Ctx<'_>) {
        let _ = (conn, snd_una, rcv_nxt, ctx);
    }
    /// The worker is about to stop for a planned move (drain): write
    /// `conn`'s exact final checkpoint now; nothing more will be sent on it
    /// from this box.
    fn on_freeze(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let _ = (conn, ctx);
    }
    /// `conn` moves to the box whose MAC is `to` (a planned move of some
    /// connections): write its final checkpoint and forward its future
    /// frames there. The worker drops the TCB right after, silently.
    fn on_handoff(&mut self, conn: ConnId, to: MacAddr, ctx: &mut Ctx<'_>) {
        let _ = to;
        self.on_freeze(conn, ctx);
    }
    /// Called once per worker iteration, for work not driven by a packet
    /// (e.g. data that arrived from an origin fetch on another thread).
    fn poll(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }
}

/// What to do with a segment for an unknown connection
/// ([`App::on_unknown_segment`]).
pub enum UnknownAction {
    /// Not an orphan: SYN-cookie check or RST, as for any stray segment.
    Listener,
    /// Ours to take over (lazy takeover): restore from this checkpoint
    /// block, feed it the segment, and call [`App::on_restored`] with the
    /// data. Ignored for a RST.
    Restore(TcbExport, Box<dyn Any + Send>),
    /// Another survivor took this connection over: send it the frame with
    /// its MAC as destination (ARCHITECTURE.md "Takeover" step 3).
    Forward(MacAddr),
    /// Drop silently (e.g. the orphan is being restored elsewhere right now).
    Drop,
}

impl std::fmt::Debug for UnknownAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnknownAction::Listener => write!(f, "Listener"),
            UnknownAction::Restore(e, _) => write!(f, "Restore({:?})", e.tuple),
            UnknownAction::Forward(m) => write!(f, "Forward({m})"),
            UnknownAction::Drop => write!(f, "Drop"),
        }
    }
}

/// What an app can do to a connection that is gone or refuses.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// The id names no live connection of this worker.
    #[error("no such connection")]
    Unknown,
    /// The TCP layer refused the data.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// The app's view of its worker's connections during a callback.
pub struct Ctx<'a> {
    pub(crate) flows: &'a mut FlowTable,
    pub(crate) touched: &'a mut Vec<ConnId>,
    pub(crate) now: Instant,
    pub(crate) worker: usize,
    pub(crate) waker: &'a Waker,
}

impl Ctx<'_> {
    fn touch(&mut self, conn: ConnId) -> Option<&mut crate::tcp::Tcb> {
        let c = self.flows.get_mut(conn)?;
        if !c.touched {
            c.touched = true;
            self.touched.push(conn);
        }
        Some(&mut c.tcb)
    }

    /// The time of this worker iteration.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// This worker's index.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// A waker for this worker: give it to threads whose results
    /// [`App::poll`] picks up, so a worker blocked in adaptive mode
    /// notices them at once.
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Queues `data` for sending; returns the sequence number of its first
    /// byte. The bytes go to the wire without a copy until the frame.
    pub fn send(&mut self, conn: ConnId, data: Bytes) -> Result<SeqNum, ConnError> {
        let tcb = self.touch(conn).ok_or(ConnError::Unknown)?;
        Ok(tcb.send(data)?)
    }

    /// Copies received bytes into `buf`; returns how many.
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, ConnError> {
        // Reading opens the receive window: the TCB may want to send an update.
        let tcb = self.touch(conn).ok_or(ConnError::Unknown)?;
        Ok(tcb.recv(buf))
    }

    /// Bytes waiting to be read.
    pub fn recv_available(&self, conn: ConnId) -> usize {
        self.flows.get(conn).map_or(0, |c| c.tcb.recv_available())
    }

    /// Bytes [`Ctx::send`] accepts now.
    pub fn send_capacity(&self, conn: ConnId) -> usize {
        self.flows.get(conn).map_or(0, |c| c.tcb.send_capacity())
    }

    /// The sequence number the next byte sent will get.
    pub fn next_seq(&self, conn: ConnId) -> Option<SeqNum> {
        self.flows.get(conn).map(|c| c.tcb.next_seq())
    }

    /// Sends a FIN after the queued data.
    pub fn close(&mut self, conn: ConnId) {
        if let Some(t) = self.touch(conn) {
            t.close();
        }
    }

    /// Resets the connection now.
    pub fn abort(&mut self, conn: ConnId) {
        if let Some(t) = self.touch(conn) {
            t.abort();
        }
    }

    /// The connection's addresses.
    pub fn tuple(&self, conn: ConnId) -> Option<FourTuple> {
        self.flows.get(conn).map(|c| c.tcb.tuple())
    }

    /// The connection's TCP state.
    pub fn state(&self, conn: ConnId) -> Option<State> {
        self.flows.get(conn).map(|c| c.tcb.state())
    }

    /// The connection's counters and estimates.
    pub fn tcp_stats(&self, conn: ConnId) -> Option<TcbStats> {
        self.flows.get(conn).map(|c| c.tcb.stats())
    }

    /// The TCP block of a checkpoint of `conn`.
    pub fn export(&self, conn: ConnId) -> Option<TcbExport> {
        self.flows.get(conn).map(|c| c.tcb.export(self.now))
    }

    /// A checkpoint covering the client's bytes up to `upto` is committed:
    /// with `ack_after_commit`, they may be acknowledged now (seed: "no ACK
    /// is sent back by the server to the client until the subject server
    /// application permits it").
    pub fn commit_ack(&mut self, conn: ConnId, upto: SeqNum) {
        if let Some(tcb) = self.touch(conn) {
            tcb.commit_ack(upto);
        }
    }
}

/// How a worker waits for packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    /// Spin on the ring forever: lowest latency, one full core per worker.
    Busy,
    /// Spin while there is work; after `spins` empty polls, block in
    /// poll(2) until a packet or the next timer (so several boxes share
    /// a small machine).
    Adaptive {
        /// Empty polls before blocking.
        spins: u32,
    },
}

/// Everything the dataplane needs to run; the appliance builds it from
/// its configuration file.
#[derive(Clone, Debug)]
pub struct DataplaneOptions {
    /// Interface the service addresses live on (e.g. `front0`); it should
    /// carry no kernel address for them.
    pub interface: String,
    /// Number of workers (threads).
    pub workers: usize,
    /// Cores to pin worker `i` to (`cores[i]`); empty: no pinning.
    pub cores: Vec<usize>,
    /// How workers wait.
    pub poll_mode: PollMode,
    /// Addresses we answer ARP, ICMP and TCP for.
    pub service_ips: Vec<IpAddr>,
    /// TCP ports we accept connections on; others get a RST.
    pub listen_ports: Vec<u16>,
    /// Source MAC instead of the interface's.
    pub mac_override: Option<MacAddr>,
    /// Link MTU: IP packets we send are at most this long.
    pub mtu: usize,
    /// Connections per worker at most; SYNs beyond are dropped and counted.
    pub max_connections: usize,
    /// Half-open connections per worker before SYN cookies take over.
    pub syn_backlog: usize,
    /// TCP tunables.
    pub tcp: TcpConfig,
    /// Key of ISNs and SYN cookies; random when `None`.
    pub cookie_secret: Option<[u8; 16]>,
    /// Frames taken from the port per burst.
    pub rx_burst: usize,
    /// RX ring block timeout in milliseconds (TPACKET_V3 latency at low rates).
    pub block_timeout_ms: u32,
    /// RX ring layout: V2 (default, lowest latency) or V3 (batched); see
    /// [`crate::port::afpacket`] for the measurements behind the default.
    pub rx_ring: RxRing,
    /// Checksum and segmentation offload on TX (`PACKET_VNET_HDR`).
    pub tx_offload: bool,
    /// V2 ring: bytes per slot. The default (64 KiB + header) holds the
    /// merged frames GRO and TSO produce; smaller slots save memory on
    /// interfaces with GRO off (larger frames are dropped and counted).
    pub rx_slot_size: u32,
    /// V2 ring: slots (frames the kernel can hold for a worker that is
    /// not running). Each costs `rx_slot_size` bytes of kernel memory.
    pub rx_slots: u32,
}

impl DataplaneOptions {
    /// Defaults for `interface` serving `service_ips` on port 80: one
    /// worker, adaptive polling, no pinning.
    pub fn new(interface: &str, service_ips: Vec<IpAddr>) -> Self {
        DataplaneOptions {
            interface: interface.to_string(),
            workers: 1,
            cores: Vec::new(),
            poll_mode: PollMode::Adaptive { spins: 200 },
            service_ips,
            listen_ports: vec![80],
            mac_override: None,
            mtu: 1500,
            max_connections: 300_000,
            syn_backlog: 1024,
            tcp: TcpConfig::default(),
            cookie_secret: None,
            rx_burst: 64,
            block_timeout_ms: 1,
            rx_ring: RxRing::V2,
            tx_offload: true,
            rx_slot_size: AfPacketConfig::new("").slot_size,
            rx_slots: AfPacketConfig::new("").slots,
        }
    }
}

/// Errors of starting or running the dataplane.
#[derive(Debug, Error)]
pub enum DataplaneError {
    /// Opening or using a port failed.
    #[error("port: {0}")]
    Port(#[from] PortError),
    /// The options are inconsistent.
    #[error("bad dataplane options: {0}")]
    Options(String),
    /// Pinning a worker to its core failed.
    #[error("worker {worker}: cannot pin to core {core}: {source}")]
    Pin {
        /// The worker.
        worker: usize,
        /// The core.
        core: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread panicked.
    #[error("worker {0} panicked")]
    WorkerPanicked(usize),
    /// A worker is no longer running.
    #[error("worker {0} is not running")]
    WorkerGone(usize),
}

struct WorkerHandle {
    ctl: Sender<Command>,
    waker: Waker,
    thread: Option<JoinHandle<Result<(), DataplaneError>>>,
}

/// The running dataplane: its workers and their control channels.
pub struct DataplaneHandle {
    workers: Vec<WorkerHandle>,
    mac: MacAddr,
}

impl DataplaneHandle {
    /// Number of workers.
    pub fn n_workers(&self) -> usize {
        self.workers.len()
    }

    /// The MAC address the dataplane sends from.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Asks every worker to stop (connections are dropped silently, as in a
    /// crash: survivors or clients deal with them).
    pub fn shutdown(&self) {
        for w in &self.workers {
            let _ = w.ctl.send(Command::Shutdown);
            w.waker.wake();
        }
    }

    /// Waits for every worker to stop; the first error wins.
    pub fn join(mut self) -> Result<(), DataplaneError> {
        let mut result = Ok(());
        for (i, w) in self.workers.iter_mut().enumerate() {
            if let Some(t) = w.thread.take() {
                let r = t.join().unwrap_or(Err(DataplaneError::WorkerPanicked(i)));
                if result.is_ok() {
                    result = r;
                }
            }
        }
        result
    }

    /// A snapshot of every worker's counters (workers that do not answer
    /// within a second are left out).
    pub fn stats(&self) -> Vec<WorkerStats> {
        let mut rxs = Vec::new();
        for w in &self.workers {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if w.ctl.send(Command::Stats(tx)).is_ok() {
                w.waker.wake();
                rxs.push(rx);
            }
        }
        rxs.into_iter()
            .filter_map(|rx| rx.recv_timeout(Duration::from_secs(1)).ok())
            .collect()
    }

    /// Sends a gratuitous ARP for `ip` (from worker 0, which owns ARP).
    pub fn announce(&self, ip: IpAddr) -> Result<(), DataplaneError> {
        self.send(0, Command::Announce(ip))
    }

    /// Starts answering for `ip` on every worker (IP takeover), then
    /// announces it.
    pub fn add_service_ip(&self, ip: IpAddr) -> Result<(), DataplaneError> {
        for i in 0..self.workers.len() {
            self.send(i, Command::AddServiceIp(ip))?;
        }
        self.announce(ip)
    }

    /// Stops answering for `ip` on every worker.
    pub fn remove_service_ip(&self, ip: IpAddr) -> Result<(), DataplaneError> {
        for i in 0..self.workers.len() {
            self.send(i, Command::RemoveServiceIp(ip))?;
        }
        Ok(())
    }

    /// Stops (`true`) or resumes (`false`) accepting new connections on
    /// every worker, for a planned move of a box's connections.
    pub fn drain(&self, on: bool) -> Result<(), DataplaneError> {
        for i in 0..self.workers.len() {
            self.send(i, Command::Drain(on))?;
        }
        Ok(())
    }

    /// True once every worker thread has ended (after `freeze` or
    /// `shutdown`).
    pub fn stopped(&self) -> bool {
        self.workers
            .iter()
            .all(|w| w.thread.as_ref().is_none_or(|t| t.is_finished()))
    }

    /// Hands `tuples` over to the box whose MAC is `to` ([`Command::Handoff`]
    /// on the worker of each); returns those handed off (a connection that
    /// ended meanwhile is not).
    pub fn handoff(
        &self,
        tuples: Vec<FourTuple>,
        to: MacAddr,
    ) -> Result<Vec<FourTuple>, DataplaneError> {
        let n = self.workers.len();
        let mut per_worker: Vec<Vec<FourTuple>> = vec![Vec::new(); n];
        for t in tuples {
            per_worker[worker_for(&t, n)].push(t);
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut asked = 0;
        for (i, tuples) in per_worker.into_iter().enumerate() {
            if !tuples.is_empty() {
                self.send(
                    i,
                    Command::Handoff {
                        tuples,
                        to,
                        done: tx.clone(),
                    },
                )?;
                asked += 1;
            }
        }
        let mut moved = Vec::new();
        for _ in 0..asked {
            moved.extend(rx.recv_timeout(Duration::from_secs(5)).map_err(|_| {
                DataplaneError::Options("a worker did not answer the handoff".into())
            })?);
        }
        Ok(moved)
    }

    /// Freezes every worker for a planned move: each connection's final
    /// checkpoint is written ([`App::on_freeze`]), then the workers stop
    /// without sending anything more. Their threads end; `join` reaps them.
    pub fn freeze(&self) -> Result<(), DataplaneError> {
        for i in 0..self.workers.len() {
            self.send(i, Command::Freeze)?;
        }
        Ok(())
    }

    /// Hands a connection restored from a checkpoint to the worker that
    /// receives its packets ([`worker_for`]); the app there gets
    /// [`App::on_restored`] with `app_data`.
    pub fn restore(
        &self,
        export: TcbExport,
        app_data: Box<dyn Any + Send>,
    ) -> Result<(), DataplaneError> {
        let w = worker_for(&export.tuple, self.workers.len());
        self.send(w, Command::Restore { export, app_data })
    }

    /// Sends a raw command to worker `i`.
    pub fn send(&self, i: usize, cmd: Command) -> Result<(), DataplaneError> {
        let w = self.workers.get(i).ok_or(DataplaneError::WorkerGone(i))?;
        w.ctl.send(cmd).map_err(|_| DataplaneError::WorkerGone(i))?;
        w.waker.wake();
        Ok(())
    }

    /// A waker for worker `i` (see [`Ctx::waker`]).
    pub fn waker(&self, i: usize) -> Option<Waker> {
        self.workers.get(i).map(|w| w.waker.clone())
    }
}

impl Drop for DataplaneHandle {
    fn drop(&mut self) {
        if self.workers.iter().any(|w| w.thread.is_some()) {
            self.shutdown();
            for w in &mut self.workers {
                if let Some(t) = w.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

fn random_secret() -> [u8; 16] {
    let mut s = [0u8; 16];
    // SAFETY: getrandom writes at most `s.len()` bytes into `s`.
    let n = unsafe { libc::getrandom(s.as_mut_ptr().cast(), s.len(), 0) };
    if n != s.len() as isize {
        // Not expected on Linux ≥ 3.17; fall back to time-derived bits,
        // which still differ between boxes and boots.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        s = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    s
}

/// Pins the calling thread to `core`.
pub fn pin_current_thread(core: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if core >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Refuses options no backend can run, before any port is opened.
fn check_options(opts: &DataplaneOptions) -> Result<(), DataplaneError> {
    if opts.workers == 0 {
        return Err(DataplaneError::Options("workers must be at least 1".into()));
    }
    if !opts.cores.is_empty() && opts.cores.len() < opts.workers {
        return Err(DataplaneError::Options(format!(
            "{} workers but only {} cores listed",
            opts.workers,
            opts.cores.len()
        )));
    }
    if opts.mtu < 576 || opts.mtu > crate::port::MAX_FRAME - 14 {
        return Err(DataplaneError::Options(format!(
            "MTU {} out of range",
            opts.mtu
        )));
    }
    Ok(())
}

/// Opens the interface with AF_PACKET and starts `opts.workers` workers,
/// each with the app `app_factory(worker_index)` built on its own thread
/// (see [`start_with_ports`]). Returns once every worker is running (or the
/// first one failed to start).
///
/// Threads inherit the caller's network namespace, so a caller that entered
/// a namespace (`setns`) runs the dataplane there.
pub fn start<A, F>(
    opts: DataplaneOptions,
    app_factory: F,
) -> Result<DataplaneHandle, DataplaneError>
where
    A: App,
    F: Fn(usize) -> A + Send + Sync + 'static,
{
    check_options(&opts)?;
    let mut pcfg = AfPacketConfig::new(&opts.interface);
    pcfg.mac_override = opts.mac_override;
    pcfg.block_timeout_ms = opts.block_timeout_ms;
    pcfg.ring = opts.rx_ring;
    pcfg.tx_offload = opts.tx_offload;
    pcfg.slot_size = opts.rx_slot_size;
    pcfg.slots = opts.rx_slots;
    let ports = AfPacketPort::open_group(&pcfg, opts.workers)?;
    start_with_ports(opts, ports, app_factory)
}

/// Starts one worker per port of `ports` (already opened by any backend:
/// AF_PACKET, DPDK, memory), worker `i` on `ports[i]` with the app
/// `app_factory(i)` built on its own thread. `ports.len()` must equal
/// `opts.workers`: the flow-to-worker rule ([`worker_for`]) assumes the
/// ports deliver each flow to the worker of that index. The dataplane's
/// MAC is the first port's; the port-opening options of `opts`
/// (`interface`, `mac_override`, ring settings) were the caller's to apply.
/// Returns once every worker is running (or the first one failed to start).
pub fn start_with_ports<P, A, F>(
    opts: DataplaneOptions,
    ports: Vec<P>,
    app_factory: F,
) -> Result<DataplaneHandle, DataplaneError>
where
    P: Port + 'static,
    A: App,
    F: Fn(usize) -> A + Send + Sync + 'static,
{
    check_options(&opts)?;
    if ports.len() != opts.workers {
        return Err(DataplaneError::Options(format!(
            "{} workers but {} ports: one port per worker",
            opts.workers,
            ports.len()
        )));
    }
    let Some(first) = ports.first() else {
        return Err(DataplaneError::Options("no ports".into()));
    };
    let mac = first.mac();
    let secret = opts.cookie_secret.unwrap_or_else(random_secret);
    let factory = Arc::new(app_factory);
    let (ready_tx, ready_rx) =
        crossbeam_channel::unbounded::<(usize, Result<Waker, DataplaneError>)>();
    let mut workers = Vec::new();
    for (i, port) in ports.into_iter().enumerate() {
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let cfg = WorkerConfig {
            id: i,
            n_workers: opts.workers,
            service_ips: opts.service_ips.clone(),
            listen_ports: opts.listen_ports.clone(),
            mtu: opts.mtu,
            max_connections: opts.max_connections,
            syn_backlog: opts.syn_backlog,
            tcp: opts.tcp.clone(),
            cookie_secret: secret,
            poll_mode: opts.poll_mode,
            rx_burst: opts.rx_burst.max(1),
        };
        let core = opts.cores.get(i).copied();
        let factory = Arc::clone(&factory);
        let ready = ready_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("baton-w{i}"))
            .spawn(move || {
                if let Some(core) = core {
                    if let Err(source) = pin_current_thread(core) {
                        let _ = ready.send((
                            i,
                            Err(DataplaneError::Pin {
                                worker: i,
                                core,
                                source,
                            }),
                        ));
                        return Ok(());
                    }
                }
                let app = factory(i);
                let worker = Worker::new(port, app, cfg, Instant::now());
                let _ = ready.send((i, Ok(worker.waker())));
                drop(ready);
                worker.run(ctl_rx)
            })
            .map_err(|e| DataplaneError::Options(format!("spawn worker: {e}")))?;
        workers.push(WorkerHandle {
            ctl: ctl_tx,
            waker: Waker::new(),
            thread: Some(thread),
        });
    }
    drop(ready_tx);
    let mut handle = DataplaneHandle { workers, mac };
    for _ in 0..handle.workers.len() {
        match ready_rx.recv() {
            Ok((i, Ok(waker))) => {
                if let Some(w) = handle.workers.get_mut(i) {
                    w.waker = waker;
                }
            }
            Ok((_, Err(e))) => return Err(e), // dropping the handle stops the others
            Err(_) => return Err(DataplaneError::WorkerPanicked(0)),
        }
    }
    for ip in &opts.service_ips {
        handle.announce(*ip)?;
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_thread_runs_only_on_its_core() {
        let cpus = std::thread::spawn(|| {
            pin_current_thread(0).unwrap();
            // SAFETY: reading our own affinity mask into a zeroed set.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                assert_eq!(
                    libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                    0
                );
                (0..libc::CPU_SETSIZE as usize)
                    .filter(|&c| libc::CPU_ISSET(c, &set))
                    .collect::<Vec<_>>()
            }
        })
        .join()
        .unwrap();
        assert_eq!(cpus, vec![0]);
        assert!(
            pin_current_thread(1 << 20).is_err(),
            "a core beyond CPU_SETSIZE is refused"
        );
    }

    #[test]
    fn options_with_too_few_cores_are_refused_before_opening_anything() {
        let mut o = DataplaneOptions::new("bt-no-such-if", vec![]);
        o.workers = 2;
        o.cores = vec![0];
        assert!(matches!(
            start(o, |_| crate::responder::Responder::new(Default::default())),
            Err(DataplaneError::Options(_))
        ));
        let mut o = DataplaneOptions::new("bt-no-such-if", vec![]);
        o.workers = 0;
        assert!(matches!(
            start(o, |_| crate::responder::Responder::new(Default::default())),
            Err(DataplaneError::Options(_))
        ));
        let o = DataplaneOptions::new("bt-no-such-if", vec![]);
        assert!(matches!(
            start(o, |_| crate::responder::Responder::new(Default::default())),
            Err(DataplaneError::Port(PortError::NoInterface(_)))
        ));
    }

    #[test]
    fn ports_given_by_the_caller_carry_the_dataplane() {
        use crate::port::memory::MemoryPort;
        let box_mac = MacAddr([2, 0xba, 0x70, 0, 0, 9]);
        let (mut wire, port) = MemoryPort::pair(MacAddr([2, 0, 0, 0, 0, 1]), box_mac);
        let ip: IpAddr = "198.18.0.11".parse().unwrap();
        let opts = DataplaneOptions::new("not-opened", vec![ip]);
        let handle = start_with_ports(opts, vec![port], |_| {
            crate::responder::Responder::new(Default::default())
        })
        .expect("a memory port needs no interface");
        assert_eq!(handle.n_workers(), 1);
        assert_eq!(
            handle.mac(),
            box_mac,
            "the dataplane sends from its port's MAC"
        );
        // Starting announces the service address: a gratuitous ARP
        // (EtherType 0x0806) from the box's MAC comes out of the given port.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut frames = Vec::new();
        while frames.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            frames = wire.drain();
        }
        let arp = frames
            .first()
            .expect("the announcement left through the port");
        assert_eq!(&arp[6..12], &box_mac.0);
        assert_eq!(&arp[12..14], &[0x08, 0x06]);
        handle.shutdown();
        handle.join().expect("workers stop cleanly");
    }

    #[test]
    fn a_port_count_other_than_the_workers_is_refused() {
        use crate::port::memory::MemoryPort;
        let (_wire, port) =
            MemoryPort::pair(MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        let mut opts = DataplaneOptions::new("not-opened", vec![]);
        opts.workers = 2;
        let r = start_with_ports(opts, vec![port], |_| {
            crate::responder::Responder::new(Default::default())
        });
        match r {
            Err(DataplaneError::Options(msg)) => {
                assert!(msg.contains("2 workers but 1 ports"), "{msg}")
            }
            Err(e) => panic!("expected an options error, got {e}"),
            Ok(_) => panic!("two workers cannot share one port"),
        }
    }
}
