//! Replication of a box's region to peers that share no mapping.
//!
//! In "replicated" mode every box maps its own segment file with the usual
//! layout: it writes its own region, and a [`Replicator`] keeps the other
//! regions as replicas of its peers' regions. Each replicator
//!
//! - ships its own region's dirty slots (the slot's sequence moved since
//!   it was last shipped; an empty slot ships as a deletion) to every peer,
//!   batched into UDP datagrams, and its box table entry (heartbeat) as a
//!   datagram of its own, three times per tick, on a socket of its own
//!   when one is given ([`Replicator::with_heartbeat_socket`]);
//! - applies what peers ship to their replica regions, slot by slot, only
//!   when the shipped slot sequence is newer than the replica's, so loss,
//!   duplication and reordering never move a replica slot backwards;
//! - detects loss of slot updates by a per-sender `data_seq` that every
//!   datagram carries (updates number themselves, heartbeats repeat the
//!   last number) and then catches up from a full snapshot of the sender's
//!   region, requested in windows of chunks from a cursor and re-requested
//!   from the cursor when progress stops.
//!
//! Why UDP and not a TCP stream: a replica must converge to the *current*
//! state, not replay history. Slot updates are idempotent and ordered by
//! the slot sequence, so a lost datagram costs at most a snapshot window,
//! whereas a TCP stream would hold every later heartbeat and checkpoint
//! behind one retransmission (head-of-line blocking exactly when the back
//! LAN is lossy, which is when failures happen) and needs connection
//! management between every pair of boxes. Heartbeats are datagrams of
//! their own on a socket of their own, read first: a peer's liveness is
//! never stuck behind a backlog, nor behind a flood at the replication
//! port.
//!
//! Every datagram is authenticated with HMAC-SHA256 (RFC 2104) under the
//! cluster key: whoever can inject a checkpoint can hijack a connection.
//! Each carries the sender id, its epoch, the receiver it is meant for and
//! that receiver's epoch as the sender last heard it, and a per-process
//! monotonic counter; receivers keep a 64-datagram sliding anti-replay
//! window per sender, as IPsec does (RFC 4303 §3.4.3), and accept only
//! datagrams addressed to their own current epoch. Epochs grow across
//! restarts and reboots (the box keeps the last one in a file), so a
//! datagram captured before either end restarted is refused after it by
//! every box, the restarted one included, although the windows themselves
//! live in memory. Before any tag is computed, a
//! datagram must come from a peer's address, fit the size of its socket,
//! carry our magic and version and a kind that belongs on that socket: a
//! flood of garbage costs comparisons, not HMACs. Every drop is counted
//! by reason in [`ReplicationStats`].
//! A box must start a new epoch ([`crate::Region::begin_epoch`], raised
//! past every epoch it ever ran) every time it starts, since its counter
//! starts again at 1; a datagram from an older epoch than the newest seen
//! is dropped.
//!
//! Wire format: see docs/CHECKPOINT_FORMAT.md, "Replication datagrams".
//!
//! The module's rooms: `wire` (the datagram format), `auth` (HMAC tag and
//! anti-replay window: every check that runs before a datagram is
//! believed), `sender` (what this box ships), `receiver` (replicas, loss
//! detection and resync; it returns replies instead of sending), `socket`
//! and `stats`. This file only wires them together and runs the loop.

mod auth;
mod receiver;
mod sender;
mod socket;
mod stats;
mod wire;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use auth::{ReplayWindow, REPLAY_WINDOW};
pub use socket::{heartbeat_addr, size_receive_buffer, DatagramSocket};
pub use stats::ReplicationStats;
pub use wire::{MAX_DATAGRAM, MAX_HEARTBEAT};

use crate::segment::{Segment, SegmentError};
use auth::Auth;
use receiver::{Channel, Receiver, Reply};
use sender::Sender;

/// What a replicator needs besides its segment and socket.
#[derive(Clone)]
pub struct ReplicationConfig {
    /// This box's id (the region it owns and ships).
    pub me: u16,
    /// The cluster key (from the config); at least 16 bytes.
    pub key: Vec<u8>,
    /// Every peer: its box id and its back-LAN replication address.
    pub peers: Vec<(u16, SocketAddr)>,
}

impl std::fmt::Debug for ReplicationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationConfig")
            .field("me", &self.me)
            .field("key", &"<redacted>")
            .field("peers", &self.peers)
            .finish()
    }
}

/// Why a replicator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The own id or a peer id is not a region of the segment, or a peer
    /// is this box.
    #[error("replication: {0}")]
    Segment(#[from] SegmentError),
    /// A peer id equal to this box's id.
    #[error("replication: peer id {0} is this box")]
    PeerIsMe(u16),
    /// The same peer id listed twice.
    #[error("replication: peer id {0} is listed twice")]
    DuplicatePeer(u16),
    /// The key is too short to be a secret.
    #[error("replication: cluster key must be at least 16 bytes, got {0}")]
    WeakKey(usize),
    /// A peer's replication port is 65535: its heartbeat port (the next
    /// one) does not exist.
    #[error("replication: {0} has no next port for heartbeats")]
    NoHeartbeatPort(SocketAddr),
}

/// Heartbeats sent per replication tick. The detector declares a peer
/// dead after `missed` intervals without a new heartbeat; sending each
/// interval's heartbeat state three times means a lost datagram delays
/// what a peer sees by a third of an interval, not a whole one, and it takes
/// nine losses in a row, not three, to fake a death (at 10 % loss on the
/// back LAN: 1e-9 instead of 1e-3 per window).
pub const HEARTBEATS_PER_TICK: u32 = 3;

/// An unbroken run of receive errors this long ends [`Replicator::run`]
/// with the error: replication cannot go on, and the box must stop
/// serving rather than serve unreplicated. Shorter runs (a transient
/// ENOBUFS, an interface going down and up) are counted and outlived.
pub const FATAL_ERROR_RUN: Duration = Duration::from_secs(1);

/// Datagrams read from the replication socket before the heartbeat socket
/// is looked at again: a burst of replication traffic (or of garbage) never
/// keeps a heartbeat waiting for more than this many receives.
const DATA_BURST: usize = 16;
/// Applied units whose slots the replicas' tuple indexes take in between
/// two looks at the sockets.
const REINDEX_BURST: usize = 32;

/// One box's replication endpoint: ships its own region, keeps replicas of
/// its peers' regions. Drive it with [`Replicator::run`] on a thread, or
/// with [`Replicator::tick`] and [`Replicator::handle`] by hand.
pub struct Replicator<S: DatagramSocket = UdpSocket> {
    socket: S,
    /// The heartbeat socket, if heartbeats have their own
    /// ([`Replicator::with_heartbeat_socket`]).
    hb: Option<S>,
    tx: Sender,
    rx: Receiver,
    stats: Arc<ReplicationStats>,
}

impl<S: DatagramSocket> Replicator<S> {
    /// Builds a replicator for box `cfg.me` of `segment`, talking over
    /// `socket` (already bound to this box's back-LAN address).
    ///
    /// `segment` must be the [`Segment`] (or a clone of it) the box's
    /// workers write through: the replicator learns which slots changed
    /// from that mapping's in-process dirty bitmap, not by scanning slot
    /// headers. Writes made through another `open_or_create` of the same
    /// file reach peers only through snapshots.
    pub fn new(
        segment: &Segment,
        cfg: ReplicationConfig,
        socket: S,
    ) -> Result<Self, ReplicationError> {
        if cfg.key.len() < 16 {
            return Err(ReplicationError::WeakKey(cfg.key.len()));
        }
        let own = segment.region(cfg.me)?;
        let mut peers = Vec::with_capacity(cfg.peers.len());
        for &(id, addr) in &cfg.peers {
            if id == cfg.me {
                return Err(ReplicationError::PeerIsMe(id));
            }
            if peers.iter().any(|&(p, _, _)| p == id) {
                return Err(ReplicationError::DuplicatePeer(id));
            }
            peers.push((id, addr, segment.region(id)?));
        }
        // HMAC-SHA256 accepts any key length (RFC 2104 §3); the length was
        // checked above.
        let auth = Auth::new(&cfg.key).ok_or(ReplicationError::WeakKey(cfg.key.len()))?;
        let stats = Arc::new(ReplicationStats::default());
        Ok(Replicator {
            socket,
            hb: None,
            tx: Sender::new(cfg.me, own.clone(), auth.clone(), stats.clone()),
            rx: Receiver::new(cfg.me, own, auth, peers, stats.clone()),
            stats,
        })
    }

    /// Gives heartbeats a socket of their own, `hb` (bound to
    /// [`heartbeat_addr`] of this box's replication address): they are
    /// sent from it to every peer's heartbeat address and accepted only
    /// there, so a flood of replication-sized datagrams (forged or real)
    /// at the replication port cannot fill the queue heartbeats wait in.
    /// Every peer must do the same.
    pub fn with_heartbeat_socket(mut self, hb: S) -> Result<Self, ReplicationError> {
        let mut peers = Vec::new();
        for i in 0..self.rx.peer_count() {
            let addr = self.rx.peer_addr(i);
            peers.push((
                addr,
                heartbeat_addr(addr).ok_or(ReplicationError::NoHeartbeatPort(addr))?,
            ));
        }
        let of = |a: SocketAddr| peers.iter().find(|(p, _)| *p == a).map_or(a, |&(_, h)| h);
        self.rx.split_heartbeats(of);
        self.hb = Some(hb);
        Ok(self)
    }

    /// The counters, shareable with the control core.
    pub fn stats(&self) -> Arc<ReplicationStats> {
        self.stats.clone()
    }

    /// Whether the replica of `peer` is believed complete: it has heard
    /// from the peer and no loss is pending.
    pub fn in_sync(&self, peer: u16) -> bool {
        self.rx.in_sync(peer)
    }

    /// Runs until `stop` is set: receives and applies datagrams (heartbeats
    /// first), every `tick` ships dirty slots and a heartbeat and retries
    /// stalled resyncs, and sends the heartbeat [`HEARTBEATS_PER_TICK`]
    /// times per tick in all.
    ///
    /// Receive errors are counted (`recv_errors`) and outlived; only an
    /// unbroken run of them for [`FATAL_ERROR_RUN`] returns the last one.
    pub fn run(&mut self, stop: &AtomicBool, tick: Duration) -> io::Result<()> {
        // One byte more than any valid datagram: a longer one arrives cut
        // to this length and is dropped as oversized without copying 60 KB.
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        let start = Instant::now();
        let epoch_ms = unix_ms();
        let now = || epoch_ms + start.elapsed().as_millis() as u64;
        let beat = (tick / HEARTBEATS_PER_TICK).max(Duration::from_millis(1));
        let polled =
            self.socket.raw_fd().is_some() && self.hb.as_ref().is_none_or(|h| h.raw_fd().is_some());
        if polled {
            self.socket.set_nonblocking(true)?;
            if let Some(hb) = &self.hb {
                hb.set_nonblocking(true)?;
            }
        }
        let mut next_tick = Instant::now();
        let mut next_beat = next_tick + beat;
        let mut failing_since: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let at = Instant::now();
            if at >= next_tick {
                self.tick(now())?;
                next_tick = (next_tick + tick).max(at);
                next_beat = at + beat;
                continue;
            }
            if at >= next_beat {
                self.beat()?;
                next_beat = (next_beat + beat).max(at);
                continue;
            }
            let mut wait = next_tick.min(next_beat) - at;
            // The replicas' tuple indexes catch up between reads, a few
            // slots at a time; with more to do, the sockets are only
            // looked at, not waited on.
            if self.rx.reindex_pending(REINDEX_BURST) {
                wait = Duration::ZERO;
            }
            let received = if polled {
                self.poll_and_drain(&mut buf, wait, &now)
            } else {
                self.take_turns(&mut buf, wait, &now)
            };
            match received {
                Ok(()) => failing_since = None,
                Err(e) => {
                    ReplicationStats::bump(&self.stats.recv_errors);
                    if failing_since.get_or_insert(at).elapsed() >= FATAL_ERROR_RUN {
                        return Err(e);
                    }
                    // Do not spin on an error that repeats at once.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        // Leave the replicas' indexes complete.
        while self.rx.reindex_pending(usize::MAX) {}
        Ok(())
    }

    /// Waits up to `wait` for either socket to be readable, then reads the
    /// heartbeat socket dry and the replication socket in bursts of
    /// [`DATA_BURST`], the heartbeat socket again after each burst.
    fn poll_and_drain(
        &mut self,
        buf: &mut [u8],
        wait: Duration,
        now: &impl Fn() -> u64,
    ) -> io::Result<()> {
        let fd = |s: Option<&S>| s.and_then(|s| s.raw_fd()).unwrap_or(-1);
        let mut fds = [
            libc::pollfd {
                fd: fd(Some(&self.socket)),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fd(self.hb.as_ref()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = wait.as_micros().div_ceil(1000).clamp(1, 1000) as libc::c_int;
        // SAFETY: `fds` is a valid array of 2 pollfd for the call's
        // duration; a negative fd is ignored by poll(2).
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        if rc == 0 {
            return Ok(());
        }
        self.drain(Channel::Heartbeat, buf, usize::MAX, now)?;
        // Bounded, so the loop comes back to its timers under a flood.
        for _ in 0..64 {
            let n = self.drain(Channel::Data, buf, DATA_BURST, now)?;
            self.drain(Channel::Heartbeat, buf, usize::MAX, now)?;
            if n < DATA_BURST {
                break;
            }
        }
        Ok(())
    }

    /// For sockets without a file descriptor (test doubles): blocks on the
    /// replication socket, or alternates with short timeouts when there
    /// are two.
    fn take_turns(
        &mut self,
        buf: &mut [u8],
        wait: Duration,
        now: &impl Fn() -> u64,
    ) -> io::Result<()> {
        let wait = if self.hb.is_some() {
            wait.min(Duration::from_millis(1))
        } else {
            wait
        };
        if let Some(hb) = &self.hb {
            hb.set_read_timeout(Some(wait))?;
            self.drain(Channel::Heartbeat, buf, 1, now)?;
        }
        self.socket.set_read_timeout(Some(wait))?;
        self.drain(Channel::Data, buf, 1, now).map(|_| ())
    }

    /// Reads and handles up to `max` datagrams from the socket of
    /// `channel`; returns how many were read. Nothing there (or the ICMP
    /// port unreachable a down peer causes) is not an error.
    fn drain(
        &mut self,
        channel: Channel,
        buf: &mut [u8],
        max: usize,
        now: &impl Fn() -> u64,
    ) -> io::Result<usize> {
        let mut n = 0;
        while n < max {
            let socket = match channel {
                Channel::Data => &self.socket,
                Channel::Heartbeat => match &self.hb {
                    Some(hb) => hb,
                    None => return Ok(n),
                },
            };
            match socket.recv_from(buf) {
                Ok((len, from)) => {
                    n += 1;
                    let len = len.min(buf.len());
                    if let Some(reply) = self.rx.handle(&buf[..len], from, channel, now()) {
                        self.send(reply)?;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(n)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A peer that is down makes the kernel report ICMP port
                // unreachable on the next receive; that is not our failure.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Ships the own region's dirty slots, then a heartbeat, to every peer,
    /// re-requests stalled snapshots and refreshes the kernel drop count.
    pub fn tick(&mut self, now_ms: u64) -> io::Result<()> {
        self.tx
            .ship_dirty(&self.socket, &self.rx.targets(Channel::Data))?;
        self.beat()?;
        for i in 0..self.rx.peer_count() {
            if let Some(reply) = self.rx.due_request(i, now_ms) {
                self.send(reply)?;
            }
        }
        let drops = self.socket.kernel_drops().unwrap_or(0)
            + self.hb.as_ref().and_then(|h| h.kernel_drops()).unwrap_or(0);
        self.stats.kernel_drops.store(drops, Ordering::Relaxed);
        Ok(())
    }

    /// Sends the heartbeat (the own box-table entry) to every peer.
    fn beat(&mut self) -> io::Result<()> {
        match &self.hb {
            Some(hb) => self
                .tx
                .send_heartbeat(hb, &self.rx.targets(Channel::Heartbeat)),
            None => self
                .tx
                .send_heartbeat(&self.socket, &self.rx.targets(Channel::Data)),
        }
    }

    /// Checks and applies one datagram received from `from` on the
    /// replication socket.
    pub fn handle(&mut self, d: &[u8], from: SocketAddr, now_ms: u64) -> io::Result<()> {
        match self.rx.handle(d, from, Channel::Data, now_ms) {
            Some(reply) => self.send(reply),
            None => Ok(()),
        }
    }

    /// Checks and applies one datagram received from `from` on the
    /// heartbeat socket.
    pub fn handle_heartbeat(&mut self, d: &[u8], from: SocketAddr, now_ms: u64) -> io::Result<()> {
        match self.rx.handle(d, from, Channel::Heartbeat, now_ms) {
            Some(reply) => self.send(reply),
            None => Ok(()),
        }
    }

    fn send(&mut self, reply: Reply) -> io::Result<()> {
        match reply {
            Reply::Snapshot { to, from, window } => {
                self.tx.send_snapshot(&self.socket, to, from, window)
            }
            Reply::Request { to, from } => self.tx.request_snapshot(&self.socket, to, from),
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
