//! The receiving side: checks every datagram, applies what peers ship to
//! their replica regions, detects lost slot updates and drives the
//! snapshot sweep (resync) that repairs a replica.
//!
//! It sends nothing itself: [`Receiver::handle`] and
//! [`Receiver::due_request`] return the [`Reply`] the sender must make, so
//! the replica state machine can be read (and tested) without sockets.
//! What it must not know: how datagrams are laid out (`wire`) or
//! authenticated (`auth`).

use std::net::SocketAddr;
use std::sync::Arc;

use super::auth::{Auth, Rejected, ReplayWindow};
use super::sender::Target;
use super::stats::ReplicationStats;
use super::wire::{self, Malformed, RegionLayout, HDR, MAX_HEARTBEAT, SNAPSHOT_WINDOW};
use crate::segment::Region;

/// A resync that made no progress for this long is re-requested.
const RESYNC_RETRY_MS: u64 = 50;

/// What the sender must send after a datagram was handled.
pub(super) enum Reply {
    /// Answer a snapshot request: `window` chunks from slot `from`.
    Snapshot { to: Target, from: u32, window: u16 },
    /// Ask peer `to` for the next snapshot window from slot `from`.
    Request { to: Target, from: u32 },
}

/// The socket a datagram came in on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Channel {
    /// The replication socket: everything, or everything but heartbeats
    /// once heartbeats have a socket of their own.
    Data,
    /// The heartbeat socket: heartbeats only.
    Heartbeat,
}

/// Receive-side state of one peer.
struct Peer {
    id: u16,
    addr: SocketAddr,
    /// The peer's heartbeat address, once heartbeats have their own socket.
    hb_addr: Option<SocketAddr>,
    region: Region,
    /// The epoch whose datagrams are applied (the replica's incarnation);
    /// `None` until the first datagram accepted from this peer.
    epoch: Option<u32>,
    /// Newest epoch heard from this peer in any authentic datagram, applied
    /// or not: what this box's datagrams to it name as their target's
    /// incarnation (0: none heard yet). An attacker can replay older epochs
    /// only, so the maximum is the peer's current one as soon as the peer
    /// itself was heard.
    learned: u32,
    /// Counters of that epoch already accepted on the replication socket.
    replay: ReplayWindow,
    /// The same on the heartbeat socket: the sender numbers both channels
    /// from one counter, and each channel refuses the other's kinds, so a
    /// datagram replayed onto the other socket is still refused, while a
    /// heartbeat read before the updates queued with it is not taken for a
    /// replay.
    replay_hb: ReplayWindow,
    /// The data_seq the previous heartbeat on the heartbeat socket claimed:
    /// checked at the next heartbeat, not at once, because the updates it
    /// follows travel on the other socket and may be read after it.
    claim: Option<u64>,
    /// Units applied whose slot the replica's tuple index has not caught
    /// up with yet ([`Receiver::reindex_pending`]): indexing reads each
    /// bundle back, which must not delay the datagrams behind it.
    reindex: Vec<u32>,
    /// One bit per unit: already in `reindex`.
    reindex_marked: Vec<u64>,
    /// data_seq of the next slot update we expect.
    next_data_seq: u64,
    resync: Option<Resync>,
    /// The peer's region layout, when its heartbeat announced one other
    /// than this box's: its slots are refused until it agrees (a slot
    /// number or a record size of another layout would land in the wrong
    /// place or not fit).
    mismatch: Option<RegionLayout>,
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

/// The inbound half of a replicator: one replica per peer.
pub(super) struct Receiver {
    me: u16,
    /// This box's own region: its epoch is the incarnation every accepted
    /// datagram must be addressed to.
    own: Region,
    auth: Auth,
    peers: Vec<Peer>,
    stats: Arc<ReplicationStats>,
}

impl Peer {
    /// Unit `unit` of the replica was applied: its slot is to be indexed
    /// again (once, however often it is applied before that).
    fn note_applied(&mut self, unit: u32) {
        let (word, bit) = (unit as usize / 64, 1u64 << (unit % 64));
        if self.reindex_marked.len() <= word {
            self.reindex_marked.resize(word + 1, 0);
        }
        if self.reindex_marked[word] & bit == 0 {
            self.reindex_marked[word] |= bit;
            self.reindex.push(unit);
        }
    }
}

impl Receiver {
    /// Brings the replicas' tuple indexes up to date with up to `max`
    /// applied units; returns whether more are pending. The replicator
    /// calls it between reads of its sockets.
    pub(super) fn reindex_pending(&mut self, max: usize) -> bool {
        let mut left = max;
        for p in &mut self.peers {
            while left > 0 {
                let Some(unit) = p.reindex.pop() else { break };
                if let Some(w) = p.reindex_marked.get_mut(unit as usize / 64) {
                    *w &= !(1u64 << (unit % 64));
                }
                p.region.reindex_unit(unit);
                left -= 1;
            }
        }
        self.peers.iter().any(|p| !p.reindex.is_empty())
    }

    /// `peers`: id, replication address and replica region of each peer
    /// (ids distinct and not `me`, checked by the caller).
    pub(super) fn new(
        me: u16,
        own: Region,
        auth: Auth,
        peers: Vec<(u16, SocketAddr, Region)>,
        stats: Arc<ReplicationStats>,
    ) -> Self {
        let peers = peers
            .into_iter()
            .map(|(id, addr, region)| Peer {
                id,
                addr,
                hb_addr: None,
                region,
                epoch: None,
                learned: 0,
                replay: ReplayWindow::default(),
                replay_hb: ReplayWindow::default(),
                claim: None,
                reindex: Vec::new(),
                reindex_marked: Vec::new(),
                next_data_seq: 0,
                resync: None,
                mismatch: None,
            })
            .collect();
        Receiver {
            me,
            own,
            auth,
            peers,
            stats,
        }
    }

    /// Whether the replica of `peer` is believed complete: it has heard
    /// from the peer and no loss is pending.
    pub(super) fn in_sync(&self, peer: u16) -> bool {
        self.peers.iter().any(|p| {
            p.id == peer && p.epoch.is_some() && p.resync.is_none() && p.mismatch.is_none()
        })
    }

    /// Heartbeats from now on come from each peer's heartbeat address
    /// (`hb_addr(peer's replication address)`) only, and no longer on the
    /// replication socket.
    pub(super) fn split_heartbeats(&mut self, hb_addr: impl Fn(SocketAddr) -> SocketAddr) {
        for p in &mut self.peers {
            p.hb_addr = Some(hb_addr(p.addr));
        }
    }

    /// Every peer as a target of datagrams sent on `channel`'s socket.
    pub(super) fn targets(&self, channel: Channel) -> Vec<Target> {
        self.peers
            .iter()
            .map(|p| Target {
                id: p.id,
                addr: match channel {
                    Channel::Heartbeat => p.hb_addr.unwrap_or(p.addr),
                    Channel::Data => p.addr,
                },
                epoch: p.learned,
            })
            .collect()
    }

    fn split(&self) -> bool {
        self.peers.iter().any(|p| p.hb_addr.is_some())
    }

    /// The cheap checks, before the HMAC: source address, size, kind for
    /// the channel. Counts and returns false for a datagram to drop.
    fn precheck(&self, d: &[u8], from: SocketAddr, channel: Channel) -> bool {
        let known = self.peers.iter().any(|p| match channel {
            Channel::Data => p.addr == from,
            Channel::Heartbeat => p.hb_addr == Some(from),
        });
        if !known {
            ReplicationStats::bump(&self.stats.unknown_source);
            return false;
        }
        let limit = match channel {
            Channel::Heartbeat => MAX_HEARTBEAT,
            Channel::Data => wire::MAX_DATAGRAM,
        };
        if d.len() > limit {
            ReplicationStats::bump(&self.stats.oversized);
            return false;
        }
        let h = match wire::parse_header(d) {
            Ok(h) => h,
            Err(m) => {
                self.count_malformed(m);
                return false;
            }
        };
        let kind_ok = match channel {
            Channel::Heartbeat => h.kind == wire::K_HEARTBEAT,
            Channel::Data => !(self.split() && h.kind == wire::K_HEARTBEAT),
        };
        if !kind_ok {
            ReplicationStats::bump(&self.stats.wrong_channel);
            return false;
        }
        true
    }

    fn count_malformed(&self, m: Malformed) {
        ReplicationStats::bump(match m {
            Malformed::Oversized => &self.stats.oversized,
            Malformed::Truncated => &self.stats.truncated,
            Malformed::BadMagic => &self.stats.bad_magic,
        });
    }

    /// The replication address of peer `i` (of [`Receiver::peer_count`]).
    pub(super) fn peer_addr(&self, i: usize) -> SocketAddr {
        self.peers[i].addr
    }

    /// How many peers there are (for [`Receiver::due_request`]).
    pub(super) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The snapshot request peer `i` needs now: a resync never requested,
    /// or one that made no progress for [`RESYNC_RETRY_MS`].
    pub(super) fn due_request(&mut self, i: usize, now_ms: u64) -> Option<Reply> {
        let due = match &self.peers.get(i)?.resync {
            Some(r) => match r.requested_ms {
                None => true,
                Some(t) => now_ms.saturating_sub(t) >= RESYNC_RETRY_MS,
            },
            None => false,
        };
        if due {
            self.request(i, now_ms)
        } else {
            None
        }
    }

    /// Notes that the next window of peer `i`'s resync is asked for now.
    fn request(&mut self, i: usize, now_ms: u64) -> Option<Reply> {
        let p = &mut self.peers[i];
        if p.mismatch.is_some() {
            // Its chunks would be refused: no snapshot traffic for nothing.
            return None;
        }
        let r = p.resync.as_mut()?;
        r.requested_ms = Some(now_ms);
        Some(Reply::Request {
            to: Target {
                id: p.id,
                addr: p.addr,
                epoch: p.learned,
            },
            from: r.cursor,
        })
    }

    /// Checks and applies one datagram received from `from` on `channel`.
    /// Checks, in order, each failure counted and the datagram dropped:
    /// source address, size and kind for the channel (before any tag is
    /// computed), framing and tag (`auth`), known sender, target box,
    /// target incarnation (this box's current one: anything captured before
    /// this box restarted names an older one), sender's epoch (not older
    /// than any heard from it), counter (the window of that epoch).
    pub(super) fn handle(
        &mut self,
        d: &[u8],
        from: SocketAddr,
        channel: Channel,
        now_ms: u64,
    ) -> Option<Reply> {
        ReplicationStats::bump(&self.stats.received);
        if !self.precheck(d, from, channel) {
            return None;
        }
        let h = match self.auth.open(d) {
            Ok(h) => h,
            Err(Rejected::Malformed(m)) => {
                self.count_malformed(m);
                return None;
            }
            Err(Rejected::Forged) => {
                ReplicationStats::bump(&self.stats.forged);
                return None;
            }
        };
        let Some(pi) = self.peers.iter().position(|p| p.id == h.sender) else {
            ReplicationStats::bump(&self.stats.unknown_sender);
            return None;
        };
        if h.target != self.me {
            // Authentic but meant for another box: replayed to us.
            ReplicationStats::bump(&self.stats.replayed);
            return None;
        }
        // Authentic, so the sender really ran this epoch: learn it even if
        // the datagram is not for this incarnation (a peer that restarted,
        // or did not hear of our restart yet, introduces itself this way).
        let p = &mut self.peers[pi];
        p.learned = p.learned.max(h.epoch);
        if h.target_epoch != self.own.epoch() {
            ReplicationStats::bump(if h.target_epoch == 0 {
                &self.stats.unintroduced
            } else {
                &self.stats.old_incarnation
            });
            return None;
        }
        if h.epoch < p.learned {
            // A newer incarnation of the sender was heard: this one is over.
            ReplicationStats::bump(&self.stats.stale_epoch);
            return None;
        }
        let body = &d[HDR..HDR + h.body_len];
        match self.peers[pi].epoch {
            Some(e) if h.epoch < e => {
                ReplicationStats::bump(&self.stats.stale_epoch);
                return None;
            }
            Some(e) if h.epoch == e => {
                let p = &mut self.peers[pi];
                let window = match channel {
                    Channel::Data => &mut p.replay,
                    Channel::Heartbeat => &mut p.replay_hb,
                };
                if !window.accept(h.counter) {
                    ReplicationStats::bump(&self.stats.replayed);
                    return None;
                }
            }
            _ => {
                // First word from this peer, or it restarted: whatever the
                // replica holds belongs to another incarnation.
                let p = &mut self.peers[pi];
                p.epoch = Some(h.epoch);
                p.replay = ReplayWindow::default();
                p.replay_hb = ReplayWindow::default();
                p.claim = None;
                match channel {
                    Channel::Data => p.replay.accept(h.counter),
                    Channel::Heartbeat => p.replay_hb.accept(h.counter),
                };
                p.region.reset_all();
                p.region.clear_index();
                p.reindex.clear();
                p.reindex_marked.clear();
                p.region.set_epoch(h.epoch);
                p.next_data_seq = if h.kind == wire::K_UPDATE {
                    h.data_seq
                } else {
                    h.data_seq.saturating_add(1)
                };
                p.resync = Some(Resync {
                    cursor: 0,
                    remaining: p.region.unit_count() as u64,
                    min_data_seq: h.data_seq,
                    requested_ms: None,
                });
            }
        }
        ReplicationStats::bump(&self.stats.accepted);
        let (ok, reply) = match h.kind {
            wire::K_UPDATE => (self.on_update(pi, h.data_seq, body), None),
            wire::K_HEARTBEAT => (
                self.on_heartbeat(pi, h.data_seq, body, channel == Channel::Heartbeat),
                None,
            ),
            wire::K_SNAP_REQ => match wire::parse_snapshot_request(body) {
                Some((from, window)) => {
                    let p = &self.peers[pi];
                    let reply = Reply::Snapshot {
                        to: Target {
                            id: p.id,
                            addr: p.addr,
                            epoch: p.learned,
                        },
                        from,
                        window: window.min(SNAPSHOT_WINDOW),
                    };
                    (true, Some(reply))
                }
                None => (false, None),
            },
            wire::K_SNAP_CHUNK => self.on_chunk(pi, h.data_seq, body, now_ms),
            _ => (false, None),
        };
        if !ok {
            ReplicationStats::bump(&self.stats.malformed);
        }
        reply
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
            let full = p.region.unit_count() as u64;
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
        // Saturating: an authentic peer's data_seq of u64::MAX must not
        // wrap the expectation back to 0 (found by fuzzing).
        p.next_data_seq = p.next_data_seq.max(ds.saturating_add(1));
    }

    fn on_update(&mut self, pi: usize, ds: u64, body: &[u8]) -> bool {
        if self.refuse_mismatched(pi) {
            return true;
        }
        let ok = self.apply_entries(pi, body);
        self.note_data_seq(pi, ds, true);
        ok
    }

    /// Applies a heartbeat; `deferred`: it came on its own socket, so the
    /// data_seq it claims is checked at the next heartbeat (see
    /// [`Peer::claim`]).
    fn on_heartbeat(&mut self, pi: usize, ds: u64, body: &[u8], deferred: bool) -> bool {
        if deferred {
            let p = &mut self.peers[pi];
            let earlier = p.claim.replace(ds);
            if let Some(c) = earlier.filter(|&c| c >= p.next_data_seq) {
                self.note_data_seq(pi, c, false);
            }
        } else {
            self.note_data_seq(pi, ds, false);
        }
        ReplicationStats::bump(&self.stats.heartbeats);
        let Some(info) = wire::decode_info(body) else {
            return false;
        };
        self.check_layout(pi, wire::decode_layout(body));
        let r = &self.peers[pi].region;
        r.set_heartbeat(info.heartbeat, info.heartbeat_ms);
        r.set_state(info.state);
        r.set_connections(info.connections);
        r.set_checkpoints(info.checkpoints);
        match info.load {
            Some(load) => r.set_load(load),
            None => r.clear_load(),
        }
        r.set_identity(info.mac, &info.service_ips).is_ok()
    }

    /// Compares the layout peer `pi`'s heartbeat announced with its
    /// replica's, and says so when that changes: liveness is never refused
    /// for it, only the peer's slots. A heartbeat without one (a sender
    /// from before the announcement, or a body too full for it) changes
    /// nothing.
    fn check_layout(&mut self, pi: usize, theirs: Option<RegionLayout>) {
        let Some(theirs) = theirs else {
            return;
        };
        let p = &mut self.peers[pi];
        let ours = RegionLayout::of(&p.region);
        let mismatch = (theirs != ours).then_some(theirs);
        if mismatch == p.mismatch {
            return;
        }
        match mismatch {
            Some(theirs) => tracing::error!(
                peer = p.id,
                %theirs,
                %ours,
                "the peer's checkpoint segment has another layout: its slots are refused, so \
                 this box cannot take over its connections; give every box the same \
                 checkpoint.slots and checkpoint.slot_bytes"
            ),
            None => tracing::info!(peer = p.id, %ours, "the peer's segment layout agrees again"),
        }
        p.mismatch = mismatch;
    }

    /// True (and counted) when peer `pi`'s slots are refused for their
    /// layout.
    fn refuse_mismatched(&self, pi: usize) -> bool {
        let refused = self.peers[pi].mismatch.is_some();
        if refused {
            ReplicationStats::bump(&self.stats.layout_mismatch);
        }
        refused
    }

    /// Applies a snapshot chunk and moves the resync on: whether it parsed,
    /// and the next window to ask for when this one ended short.
    fn on_chunk(&mut self, pi: usize, ds: u64, body: &[u8], now_ms: u64) -> (bool, Option<Reply>) {
        if self.refuse_mismatched(pi) {
            return (true, None);
        }
        let (Some(start), Some(end), Some(last)) =
            (wire::le32(body, 0), wire::le32(body, 4), body.get(8))
        else {
            return (false, None);
        };
        let last = *last == 1;
        let slots = self.peers[pi].region.unit_count();
        if start > end || end > slots {
            return (false, None);
        }
        // Slots of the range that are not listed have never been written in
        // this epoch of the sender (sequence 0), and neither has the replica
        // slot unless a newer update reached it: nothing to do for them.
        let mut listed = start;
        let mut off = 9;
        let region = self.peers[pi].region.clone();
        while off < body.len() {
            let Some((slot, seq, bytes, next)) = wire::parse_entry(body, off) else {
                return (false, None);
            };
            if slot < listed || slot >= end {
                return (false, None);
            }
            if region.apply_replica(slot, seq, bytes) {
                ReplicationStats::bump(&self.stats.slots_applied);
                self.peers[pi].note_applied(slot);
            }
            listed = slot + 1;
            off = next;
        }
        let p = &mut self.peers[pi];
        let mut reply = None;
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
                reply = self.request(pi, now_ms);
            }
        }
        (true, reply)
    }

    fn apply_entries(&mut self, pi: usize, body: &[u8]) -> bool {
        let region = self.peers[pi].region.clone();
        let mut off = 0;
        while off < body.len() {
            let Some((slot, seq, bytes, next)) = wire::parse_entry(body, off) else {
                return false;
            };
            if slot >= region.unit_count() {
                return false;
            }
            if region.apply_replica(slot, seq, bytes) {
                ReplicationStats::bump(&self.stats.slots_applied);
                self.peers[pi].note_applied(slot);
            }
            off = next;
        }
        true
    }
}
