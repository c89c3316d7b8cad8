//! Replication of a box's region to peers that share no mapping.
//!
//! In "replicated" mode every box maps its own segment file with the usual
//! layout: it writes its own region, and a [`Replicator`] keeps the other
//! regions as replicas of its peers' regions. Each replicator
//!
//! - ships its own region's dirty slots (the slot's sequence moved since
//!   it was last shipped; an empty slot ships as a deletion) and its box
//!   table entry (heartbeat) to every peer, batched into UDP datagrams;
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
//! management between every pair of boxes. Heartbeats ride the same
//! datagrams, so a peer's liveness is never stuck behind a backlog.
//!
//! Every datagram is authenticated with HMAC-SHA256 (RFC 2104) under the
//! cluster key: whoever can inject a checkpoint can hijack a connection.
//! Each carries the sender id, its epoch and a per-process monotonic
//! counter; receivers keep a 64-datagram sliding anti-replay window per
//! sender, as IPsec does (RFC 4303 §3.4.3). Forged, replayed, truncated and
//! stale-epoch datagrams are counted in [`ReplicationStats`] and dropped.
//! A box must start a new epoch ([`crate::Region::begin_epoch`]) every time
//! it starts, since its counter starts again at 1; a datagram from an older
//! epoch than the newest seen is dropped.
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
pub use socket::DatagramSocket;
pub use stats::ReplicationStats;
pub use wire::MAX_DATAGRAM;

use crate::segment::{Segment, SegmentError};
use auth::Auth;
use receiver::{Receiver, Reply};
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
}

/// One box's replication endpoint: ships its own region, keeps replicas of
/// its peers' regions. Drive it with [`Replicator::run`] on a thread, or
/// with [`Replicator::tick`] and [`Replicator::handle`] by hand.
pub struct Replicator<S: DatagramSocket = UdpSocket> {
    socket: S,
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
        let addrs = peers.iter().map(|&(_, addr, _)| addr).collect();
        Ok(Replicator {
            socket,
            tx: Sender::new(cfg.me, own, auth.clone(), addrs, stats.clone()),
            rx: Receiver::new(cfg.me, auth, peers, stats.clone()),
            stats,
        })
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

    /// Runs until `stop` is set: receives and applies datagrams, and every
    /// `tick` ships dirty slots and a heartbeat and retries stalled
    /// resyncs. Returns the first socket error other than a timeout.
    pub fn run(&mut self, stop: &AtomicBool, tick: Duration) -> io::Result<()> {
        let mut buf = vec![0u8; 65_536];
        let start = Instant::now();
        let epoch_ms = unix_ms();
        let now = || epoch_ms + start.elapsed().as_millis() as u64;
        let mut next_tick = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let wait = next_tick.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                self.tick(now())?;
                next_tick += tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + tick;
                }
                continue;
            }
            self.socket.set_read_timeout(Some(wait))?;
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let n = n.min(buf.len());
                    self.handle(&buf[..n], from, now())?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                // A peer that is down makes the kernel report ICMP port
                // unreachable on the next receive; that is not our failure.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Ships the own region's dirty slots, then a heartbeat, to every peer,
    /// and re-requests stalled snapshots.
    pub fn tick(&mut self, now_ms: u64) -> io::Result<()> {
        self.tx.ship_dirty(&self.socket)?;
        self.tx.send_heartbeat(&self.socket)?;
        for i in 0..self.rx.peer_count() {
            if let Some(reply) = self.rx.due_request(i, now_ms) {
                self.send(reply)?;
            }
        }
        Ok(())
    }

    /// Checks and applies one received datagram from `from`.
    pub fn handle(&mut self, d: &[u8], _from: SocketAddr, now_ms: u64) -> io::Result<()> {
        match self.rx.handle(d, now_ms) {
            Some(reply) => self.send(reply),
            None => Ok(()),
        }
    }

    fn send(&mut self, reply: Reply) -> io::Result<()> {
        match reply {
            Reply::Snapshot {
                to,
                target,
                from,
                window,
            } => self
                .tx
                .send_snapshot(&self.socket, to, target, from, window),
            Reply::Request { target, to, from } => {
                self.tx.request_snapshot(&self.socket, target, to, from)
            }
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
