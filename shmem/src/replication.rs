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

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::boxtable::{BoxInfo, BoxState, MAX_SERVICE_IPS};
use crate::segment::{Region, Segment, SegmentError};
use crate::slot::{Payload, Raw, SLOT_PAYLOAD};

/// Largest datagram sent: fits a 1500-byte Ethernet MTU with IPv6 and UDP
/// headers, so nothing is ever fragmented on the back LAN.
pub const MAX_DATAGRAM: usize = 1400;
const MAGIC: [u8; 4] = *b"BTR1";
const VERSION: u8 = 1;
const HDR: usize = 32;
const TAG: usize = 32;
const MAX_BODY: usize = MAX_DATAGRAM - HDR - TAG;
/// Slot entry in an update or chunk body: slot u32, seq u64, len u16.
const ENTRY_HDR: usize = 14;
/// Snapshot chunks sent per request; the receiver asks for the next window
/// when it has them, which paces a snapshot to what the receiver absorbs.
const SNAPSHOT_WINDOW: u16 = 32;
/// A resync that made no progress for this long is re-requested.
const RESYNC_RETRY_MS: u64 = 50;
/// Sliding anti-replay window, in datagrams (RFC 4303 §3.4.3).
const REPLAY_WINDOW: u64 = 64;

const K_UPDATE: u8 = 1;
const K_HEARTBEAT: u8 = 2;
const K_SNAP_REQ: u8 = 3;
const K_SNAP_CHUNK: u8 = 4;

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

/// Counters of what a replicator sent, applied and dropped. Shared (read
/// them while [`Replicator::run`] runs in its thread).
#[derive(Debug, Default)]
pub struct ReplicationStats {
    /// Datagrams sent.
    pub sent: AtomicU64,
    /// Datagrams the socket refused to send (counted as lost).
    pub send_errors: AtomicU64,
    /// Datagrams received (before any check).
    pub received: AtomicU64,
    /// Datagrams accepted after all checks.
    pub accepted: AtomicU64,
    /// Replica slots written (updates, deletions, snapshot entries).
    pub slots_applied: AtomicU64,
    /// Dropped: shorter than a header and tag, lengths that disagree, bad
    /// magic/version.
    pub truncated: AtomicU64,
    /// Dropped: HMAC did not verify (forged or corrupted).
    pub forged: AtomicU64,
    /// Dropped: counter already seen or older than the replay window.
    pub replayed: AtomicU64,
    /// Dropped: from an older epoch of the sender than the newest seen.
    pub stale_epoch: AtomicU64,
    /// Dropped: sender id is not a configured peer.
    pub unknown_sender: AtomicU64,
    /// Dropped: authenticated but the body does not parse.
    pub malformed: AtomicU64,
    /// Losses of slot updates detected (data_seq gaps).
    pub gaps: AtomicU64,
    /// Snapshot windows requested.
    pub snapshot_requests: AtomicU64,
    /// Full resyncs completed.
    pub resyncs_completed: AtomicU64,
}

impl ReplicationStats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A plain copy of the counters, in declaration order, named.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("sent", g(&self.sent)),
            ("send_errors", g(&self.send_errors)),
            ("received", g(&self.received)),
            ("accepted", g(&self.accepted)),
            ("slots_applied", g(&self.slots_applied)),
            ("truncated", g(&self.truncated)),
            ("forged", g(&self.forged)),
            ("replayed", g(&self.replayed)),
            ("stale_epoch", g(&self.stale_epoch)),
            ("unknown_sender", g(&self.unknown_sender)),
            ("malformed", g(&self.malformed)),
            ("gaps", g(&self.gaps)),
            ("snapshot_requests", g(&self.snapshot_requests)),
            ("resyncs_completed", g(&self.resyncs_completed)),
        ]
    }
}

/// A datagram socket: [`UdpSocket`], or a test double that loses packets.
pub trait DatagramSocket: Send {
    /// Sends one datagram.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    /// Receives one datagram; `WouldBlock`/`TimedOut` when none came.
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// How long `recv_from` may block (`None` = forever).
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

impl DatagramSocket for UdpSocket {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        UdpSocket::send_to(self, buf, to)
    }
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        UdpSocket::recv_from(self, buf)
    }
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        UdpSocket::set_read_timeout(self, t)
    }
}

/// Receive-side state of one peer.
struct Peer {
    id: u16,
    addr: SocketAddr,
    region: Region,
    /// Newest epoch seen from this peer; `None` until its first datagram.
    epoch: Option<u32>,
    max_counter: u64,
    /// Bit i set: counter `max_counter - i` was seen.
    window: u64,
    /// data_seq of the next slot update we expect.
    next_data_seq: u64,
    resync: Option<Resync>,
}

/// A sweep over the sender's region that refreshes the replica. The cursor
/// goes round the region; the resync is complete once it has covered every
/// slot since the last detected loss. A loss during a sweep does not send
/// the cursor back to slot 0: the sweep goes on and must cover one more
/// full round, so under continuous loss every slot is still refreshed once
/// per round instead of the sweep restarting at the bottom for ever.
struct Resync {
    /// Next slot to refresh.
    cursor: u32,
    /// Slots still to cover before the replica is complete again.
    remaining: u64,
    /// Only chunks generated after the sender had sent update `min_data_seq`
    /// (the newest known when the loss was detected) move the cursor: an
    /// older chunk, delayed or reordered, may predate the lost update.
    min_data_seq: u64,
    /// When the last window was requested; `None` = not yet.
    requested_ms: Option<u64>,
}

/// One box's replication endpoint: ships its own region, keeps replicas of
/// its peers' regions. Drive it with [`Replicator::run`] on a thread, or
/// with [`Replicator::tick`] and [`Replicator::handle`] by hand.
pub struct Replicator<S: DatagramSocket = UdpSocket> {
    cfg: ReplicationConfig,
    own: Region,
    socket: S,
    mac: Hmac<Sha256>,
    peers: Vec<Peer>,
    counter: u64,
    data_seq: u64,
    stats: Arc<ReplicationStats>,
    out: Vec<u8>,
    scratch: Box<Payload>,
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
            if peers.iter().any(|p: &Peer| p.id == id) {
                return Err(ReplicationError::DuplicatePeer(id));
            }
            peers.push(Peer {
                id,
                addr,
                region: segment.region(id)?,
                epoch: None,
                max_counter: 0,
                window: 0,
                next_data_seq: 0,
                resync: None,
            });
        }
        // new_from_slice accepts any key length (RFC 2104 §3); the length
        // was checked above.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&cfg.key)
            .map_err(|_| ReplicationError::WeakKey(cfg.key.len()))?;
        Ok(Replicator {
            cfg,
            own,
            socket,
            mac,
            peers,
            counter: 0,
            data_seq: 0,
            stats: Arc::new(ReplicationStats::default()),
            out: Vec::with_capacity(MAX_DATAGRAM),
            scratch: Box::new(Payload::zeroed()),
        })
    }

    /// The counters, shareable with the control core.
    pub fn stats(&self) -> Arc<ReplicationStats> {
        self.stats.clone()
    }

    /// Whether the replica of `peer` is believed complete: it has heard
    /// from the peer and no loss is pending.
    pub fn in_sync(&self, peer: u16) -> bool {
        self.peers
            .iter()
            .any(|p| p.id == peer && p.epoch.is_some() && p.resync.is_none())
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
        self.ship_dirty()?;
        self.send_heartbeat()?;
        for i in 0..self.peers.len() {
            let due = match &self.peers[i].resync {
                Some(r) => match r.requested_ms {
                    None => true,
                    Some(t) => now_ms.saturating_sub(t) >= RESYNC_RETRY_MS,
                },
                None => false,
            };
            if due {
                self.request_snapshot(i, now_ms)?;
            }
        }
        Ok(())
    }

    fn begin(&mut self, kind: u8, target: u16) {
        self.counter += 1;
        self.out.clear();
        self.out.extend_from_slice(&MAGIC);
        self.out.push(VERSION);
        self.out.push(kind);
        self.out.extend_from_slice(&self.cfg.me.to_le_bytes());
        self.out.extend_from_slice(&self.own.epoch().to_le_bytes());
        self.out.extend_from_slice(&target.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes()); // body length, set in seal
        self.out.extend_from_slice(&self.counter.to_le_bytes());
        self.out.extend_from_slice(&self.data_seq.to_le_bytes());
        debug_assert_eq!(self.out.len(), HDR);
    }

    fn set_data_seq(&mut self, ds: u64) {
        self.out[24..32].copy_from_slice(&ds.to_le_bytes());
    }

    fn seal(&mut self) {
        let body = (self.out.len() - HDR) as u16;
        self.out[14..16].copy_from_slice(&body.to_le_bytes());
        let mut m = self.mac.clone();
        m.update(&self.out);
        let tag = m.finalize().into_bytes();
        self.out.extend_from_slice(&tag);
    }

    fn send(&self, to: SocketAddr) -> io::Result<()> {
        match self.socket.send_to(&self.out, to) {
            Ok(_) => ReplicationStats::bump(&self.stats.sent),
            // A full socket buffer, an unreachable peer, a local firewall
            // (EPERM) or a down back LAN lose this datagram as the network
            // would; the gap logic recovers, and replication must outlive
            // a flapping link.
            Err(_) => ReplicationStats::bump(&self.stats.send_errors),
        }
        Ok(())
    }

    fn broadcast(&self) -> io::Result<()> {
        for p in &self.peers {
            self.send(p.addr)?;
        }
        Ok(())
    }

    /// Copies a stable snapshot of own slot `s` into the scratch buffer:
    /// its sequence and length, or None if it is mid-write or unreadable.
    fn read_entry(&mut self, s: u32) -> Option<(u64, usize)> {
        match self.own.read_raw(s, &mut self.scratch) {
            Ok(Raw::Empty { seq }) => Some((seq, 0)),
            Ok(Raw::Data { seq, len }) => Some((seq, len)),
            Err(_) => None,
        }
    }

    /// Appends the scratch copy of slot `s` to `self.out` as an entry.
    fn append_entry(&mut self, s: u32, seq: u64, len: usize) {
        self.out.extend_from_slice(&s.to_le_bytes());
        self.out.extend_from_slice(&seq.to_le_bytes());
        self.out.extend_from_slice(&(len as u16).to_le_bytes());
        self.out.extend_from_slice(&self.scratch.0[..len]);
    }

    fn ship_dirty(&mut self) -> io::Result<()> {
        let mut open = false;
        for wi in 0..self.own.dirty_len() {
            let mut bits = self.own.take_dirty(wi);
            while bits != 0 {
                let s = (wi * 64) as u32 + bits.trailing_zeros();
                bits &= bits - 1;
                // Mid-write or unreadable: the writer's publish sets the
                // bit again; a slot that stays unreadable is lost with its
                // writer.
                let Some((seq, len)) = self.read_entry(s) else {
                    continue;
                };
                if open && self.out.len() + ENTRY_HDR + len > HDR + MAX_BODY {
                    self.seal();
                    self.broadcast()?;
                    open = false;
                }
                if !open {
                    self.data_seq += 1;
                    self.begin(K_UPDATE, u16::MAX);
                    open = true;
                }
                self.append_entry(s, seq, len);
            }
        }
        if open {
            self.seal();
            self.broadcast()?;
        }
        Ok(())
    }

    fn send_heartbeat(&mut self) -> io::Result<()> {
        let info = self.own.box_info().ok();
        self.begin(K_HEARTBEAT, u16::MAX);
        encode_info(&mut self.out, info.as_ref());
        self.seal();
        self.broadcast()
    }

    fn request_snapshot(&mut self, i: usize, now_ms: u64) -> io::Result<()> {
        let Some(r) = self.peers[i].resync.as_mut() else {
            return Ok(());
        };
        r.requested_ms = Some(now_ms);
        let from = r.cursor;
        let (id, addr) = (self.peers[i].id, self.peers[i].addr);
        self.begin(K_SNAP_REQ, id);
        self.out.extend_from_slice(&from.to_le_bytes());
        self.out.extend_from_slice(&SNAPSHOT_WINDOW.to_le_bytes());
        self.seal();
        ReplicationStats::bump(&self.stats.snapshot_requests);
        self.send(addr)
    }

    /// Sends up to `window` chunks of the own region from slot `from` to
    /// peer `to`. A chunk covers a slot range: slots in it that were ever
    /// written are listed (empty ones as deletions), the others are empty.
    fn send_snapshot(
        &mut self,
        to: SocketAddr,
        target: u16,
        from: u32,
        window: u16,
    ) -> io::Result<()> {
        let slots = self.own.slot_count();
        let mut start = from.min(slots);
        let window = window.max(1);
        for n in 0..window {
            if start >= slots {
                break;
            }
            self.begin(K_SNAP_CHUNK, target);
            self.set_data_seq(self.data_seq);
            self.out.extend_from_slice(&start.to_le_bytes());
            let end_at = self.out.len();
            self.out.extend_from_slice(&0u32.to_le_bytes());
            self.out.push(0); // last chunk of this window, set below
            let mut s = start;
            while s < slots {
                if self.own.seq_of(s) != 0 {
                    // A slot that cannot be copied now ends the chunk before
                    // it: slots a chunk does not list are read as empty.
                    let Some((seq, len)) = self.read_entry(s) else {
                        break;
                    };
                    if self.out.len() + ENTRY_HDR + len > HDR + MAX_BODY {
                        break;
                    }
                    self.append_entry(s, seq, len);
                }
                s += 1;
            }
            self.out[end_at..end_at + 4].copy_from_slice(&s.to_le_bytes());
            self.out[end_at + 4] = u8::from(n + 1 == window || s >= slots || s == start);
            self.seal();
            self.send(to)?;
            if s == start {
                // No progress (a slot mid-write): the receiver asks again.
                break;
            }
            start = s;
        }
        Ok(())
    }

    /// Checks and applies one received datagram from `from`.
    pub fn handle(&mut self, d: &[u8], _from: SocketAddr, now_ms: u64) -> io::Result<()> {
        ReplicationStats::bump(&self.stats.received);
        let Some(h) = parse_header(d) else {
            ReplicationStats::bump(&self.stats.truncated);
            return Ok(());
        };
        let signed = &d[..HDR + h.body_len];
        let tag = &d[HDR + h.body_len..];
        let mut m = self.mac.clone();
        m.update(signed);
        if m.verify_slice(tag).is_err() {
            ReplicationStats::bump(&self.stats.forged);
            return Ok(());
        }
        let Some(pi) = self.peers.iter().position(|p| p.id == h.sender) else {
            ReplicationStats::bump(&self.stats.unknown_sender);
            return Ok(());
        };
        if h.target != u16::MAX && h.target != self.cfg.me {
            // Authentic but meant for another box: replayed to us.
            ReplicationStats::bump(&self.stats.replayed);
            return Ok(());
        }
        let body = &d[HDR..HDR + h.body_len];
        match self.peers[pi].epoch {
            Some(e) if h.epoch < e => {
                ReplicationStats::bump(&self.stats.stale_epoch);
                return Ok(());
            }
            Some(e) if h.epoch == e => {
                if !self.peers[pi].accept_counter(h.counter) {
                    ReplicationStats::bump(&self.stats.replayed);
                    return Ok(());
                }
            }
            _ => {
                // First word from this peer, or it restarted: whatever the
                // replica holds belongs to another incarnation.
                let p = &mut self.peers[pi];
                p.epoch = Some(h.epoch);
                p.max_counter = 0;
                p.window = 0;
                p.accept_counter(h.counter);
                p.region.reset_all();
                p.region.set_epoch(h.epoch);
                p.next_data_seq = if h.kind == K_UPDATE {
                    h.data_seq
                } else {
                    h.data_seq + 1
                };
                p.resync = Some(Resync {
                    cursor: 0,
                    remaining: p.region.slot_count() as u64,
                    min_data_seq: h.data_seq,
                    requested_ms: None,
                });
            }
        }
        ReplicationStats::bump(&self.stats.accepted);
        let ok = match h.kind {
            K_UPDATE => self.on_update(pi, h.data_seq, body),
            K_HEARTBEAT => self.on_heartbeat(pi, h.data_seq, body),
            K_SNAP_REQ => {
                let parsed = (|| {
                    let from = u32::from_le_bytes(body.get(0..4)?.try_into().ok()?);
                    let window = u16::from_le_bytes(body.get(4..6)?.try_into().ok()?);
                    Some((from, window))
                })();
                match parsed {
                    Some((from, window)) => {
                        let (addr, id) = (self.peers[pi].addr, self.peers[pi].id);
                        self.send_snapshot(addr, id, from, window.min(SNAPSHOT_WINDOW))?;
                        true
                    }
                    None => false,
                }
            }
            K_SNAP_CHUNK => self.on_chunk(pi, h.data_seq, body, now_ms)?,
            _ => false,
        };
        if !ok {
            ReplicationStats::bump(&self.stats.malformed);
        }
        Ok(())
    }

    fn note_data_seq(&mut self, pi: usize, ds: u64, is_update: bool) {
        let p = &mut self.peers[pi];
        // Updates carry their own number; other datagrams repeat the last
        // update's number, so anything from `next` on is missing.
        let missing = if is_update {
            ds > p.next_data_seq
        } else {
            ds >= p.next_data_seq
        };
        if missing {
            ReplicationStats::bump(&self.stats.gaps);
            let full = p.region.slot_count() as u64;
            match p.resync.as_mut() {
                Some(r) => {
                    r.remaining = full;
                    r.min_data_seq = ds;
                }
                None => {
                    p.resync = Some(Resync {
                        cursor: 0,
                        remaining: full,
                        min_data_seq: ds,
                        requested_ms: None,
                    })
                }
            }
        }
        if ds + 1 > p.next_data_seq {
            p.next_data_seq = ds + 1;
        }
    }

    fn on_update(&mut self, pi: usize, ds: u64, body: &[u8]) -> bool {
        let ok = self.apply_entries(pi, body);
        self.note_data_seq(pi, ds, true);
        ok
    }

    fn on_heartbeat(&mut self, pi: usize, ds: u64, body: &[u8]) -> bool {
        self.note_data_seq(pi, ds, false);
        let Some(info) = decode_info(body) else {
            return false;
        };
        let r = &self.peers[pi].region;
        r.set_heartbeat(info.heartbeat, info.heartbeat_ms);
        r.set_state(info.state);
        r.set_connections(info.connections);
        r.set_checkpoints(info.checkpoints);
        r.set_identity(info.mac, &info.service_ips).is_ok()
    }

    fn on_chunk(&mut self, pi: usize, ds: u64, body: &[u8], now_ms: u64) -> io::Result<bool> {
        let (Some(start), Some(end), Some(last)) = (le32(body, 0), le32(body, 4), body.get(8))
        else {
            return Ok(false);
        };
        let last = *last == 1;
        let slots = self.peers[pi].region.slot_count();
        if start > end || end > slots {
            return Ok(false);
        }
        // Slots of the range that are not listed have never been written in
        // this epoch of the sender (sequence 0), and neither has the replica
        // slot unless a newer update reached it: nothing to do for them.
        let mut listed = start;
        let mut off = 9;
        let region = self.peers[pi].region.clone();
        while off < body.len() {
            let Some((slot, seq, bytes, next)) = parse_entry(body, off) else {
                return Ok(false);
            };
            if slot < listed || slot >= end {
                return Ok(false);
            }
            if region.apply_replica(slot, seq, bytes) {
                ReplicationStats::bump(&self.stats.slots_applied);
            }
            listed = slot + 1;
            off = next;
        }
        let p = &mut self.peers[pi];
        if let Some(r) = p.resync.as_mut() {
            if start <= r.cursor && r.cursor < end && ds >= r.min_data_seq {
                r.remaining = r.remaining.saturating_sub((end - r.cursor) as u64);
                r.cursor = if end >= slots { 0 } else { end };
            }
            let pending_request = r.requested_ms.is_some();
            if r.remaining == 0 {
                p.resync = None;
                ReplicationStats::bump(&self.stats.resyncs_completed);
            } else if last && pending_request {
                // The window is done but the cursor is short of the end
                // (more to come, or a chunk was lost): ask for the next
                // window from the cursor right away.
                self.request_snapshot(pi, now_ms)?;
            }
        }
        Ok(true)
    }

    fn apply_entries(&mut self, pi: usize, body: &[u8]) -> bool {
        let region = self.peers[pi].region.clone();
        let mut off = 0;
        while off < body.len() {
            let Some((slot, seq, bytes, next)) = parse_entry(body, off) else {
                return false;
            };
            if slot >= region.slot_count() {
                return false;
            }
            if region.apply_replica(slot, seq, bytes) {
                ReplicationStats::bump(&self.stats.slots_applied);
            }
            off = next;
        }
        true
    }
}

impl Peer {
    /// Sliding-window replay check (RFC 4303 §3.4.3): accepts each counter
    /// once, and nothing older than the window.
    fn accept_counter(&mut self, c: u64) -> bool {
        if c > self.max_counter {
            let shift = c - self.max_counter;
            self.window = if shift >= REPLAY_WINDOW {
                1
            } else {
                (self.window << shift) | 1
            };
            self.max_counter = c;
            return true;
        }
        let back = self.max_counter - c;
        if back >= REPLAY_WINDOW || self.window & (1 << back) != 0 {
            return false;
        }
        self.window |= 1 << back;
        true
    }
}

struct Header {
    kind: u8,
    sender: u16,
    epoch: u32,
    target: u16,
    body_len: usize,
    counter: u64,
    data_seq: u64,
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Parses the fixed header; `None` if the datagram is not exactly header +
/// body + tag of a version we speak (truncated or padded).
fn parse_header(d: &[u8]) -> Option<Header> {
    if d.len() < HDR + TAG || d.get(0..4)? != MAGIC || *d.get(4)? != VERSION {
        return None;
    }
    let body_len = le16(d, 14)? as usize;
    if d.len() != HDR + body_len + TAG {
        return None;
    }
    Some(Header {
        kind: *d.get(5)?,
        sender: le16(d, 6)?,
        epoch: le32(d, 8)?,
        target: le16(d, 12)?,
        body_len,
        counter: le64(d, 16)?,
        data_seq: le64(d, 24)?,
    })
}

/// One slot entry at `off`: (slot, seq, payload, offset after it).
fn parse_entry(b: &[u8], off: usize) -> Option<(u32, u64, &[u8], usize)> {
    let slot = le32(b, off)?;
    let seq = le64(b, off + 4)?;
    let len = le16(b, off + 12)? as usize;
    if len > SLOT_PAYLOAD || seq & 1 == 1 {
        return None;
    }
    let start = off + ENTRY_HDR;
    let bytes = b.get(start..start + len)?;
    Some((slot, seq, bytes, start + len))
}

fn encode_info(out: &mut Vec<u8>, info: Option<&BoxInfo>) {
    let Some(i) = info else {
        out.push(0);
        return;
    };
    out.push(1);
    out.extend_from_slice(&i.heartbeat.to_le_bytes());
    out.extend_from_slice(&i.heartbeat_ms.to_le_bytes());
    out.push(match i.state {
        BoxState::Unused => 0,
        BoxState::Alive => 1,
        BoxState::Dead => 2,
        BoxState::Draining => 3,
        BoxState::Rejoined => 4,
    });
    out.extend_from_slice(&i.mac);
    out.extend_from_slice(&i.connections.to_le_bytes());
    out.extend_from_slice(&i.checkpoints.to_le_bytes());
    out.push(i.service_ips.len().min(MAX_SERVICE_IPS) as u8);
    for ip in i.service_ips.iter().take(MAX_SERVICE_IPS) {
        match ip {
            IpAddr::V4(a) => {
                out.push(4);
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                out.extend_from_slice(&b);
            }
            IpAddr::V6(a) => {
                out.push(6);
                out.extend_from_slice(&a.octets());
            }
        }
    }
}

fn decode_info(b: &[u8]) -> Option<BoxInfo> {
    if *b.first()? == 0 {
        return None;
    }
    let heartbeat = le64(b, 1)?;
    let heartbeat_ms = le64(b, 9)?;
    let state = match *b.get(17)? {
        0 => BoxState::Unused,
        1 => BoxState::Alive,
        2 => BoxState::Dead,
        3 => BoxState::Draining,
        4 => BoxState::Rejoined,
        _ => return None,
    };
    let mac: [u8; 6] = b.get(18..24)?.try_into().ok()?;
    let connections = le64(b, 24)? as i64;
    let checkpoints = le64(b, 32)?;
    let n = *b.get(40)? as usize;
    if n > MAX_SERVICE_IPS {
        return None;
    }
    let mut service_ips = Vec::with_capacity(n);
    for i in 0..n {
        let off = 41 + i * 17;
        let fam = *b.get(off)?;
        let a: [u8; 16] = b.get(off + 1..off + 17)?.try_into().ok()?;
        service_ips.push(match fam {
            4 => IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            6 => IpAddr::V6(Ipv6Addr::from(a)),
            _ => return None,
        });
    }
    Some(BoxInfo {
        heartbeat,
        heartbeat_ms,
        state,
        epoch: 0,
        mac,
        service_ips,
        connections,
        checkpoints,
    })
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
