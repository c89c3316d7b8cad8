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
use super::stats::ReplicationStats;
use super::wire::{self, EVERY_PEER, HDR, SNAPSHOT_WINDOW};
use crate::segment::Region;

/// A resync that made no progress for this long is re-requested.
const RESYNC_RETRY_MS: u64 = 50;

/// What the sender must send after a datagram was handled.
pub(super) enum Reply {
    /// Answer a snapshot request: `window` chunks from slot `from`.
    Snapshot {
        to: SocketAddr,
        target: u16,
        from: u32,
        window: u16,
    },
    /// Ask peer `target` for the next snapshot window from slot `from`.
    Request {
        target: u16,
        to: SocketAddr,
        from: u32,
    },
}

/// Receive-side state of one peer.
struct Peer {
    id: u16,
    addr: SocketAddr,
    region: Region,
    /// Newest epoch seen from this peer; `None` until its first datagram.
    epoch: Option<u32>,
    /// Counters of that epoch already accepted.
    replay: ReplayWindow,
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

/// The inbound half of a replicator: one replica per peer.
pub(super) struct Receiver {
    me: u16,
    auth: Auth,
    peers: Vec<Peer>,
    stats: Arc<ReplicationStats>,
}

impl Receiver {
    /// `peers`: id, replication address and replica region of each peer
    /// (ids distinct and not `me`, checked by the caller).
    pub(super) fn new(
        me: u16,
        auth: Auth,
        peers: Vec<(u16, SocketAddr, Region)>,
        stats: Arc<ReplicationStats>,
    ) -> Self {
        let peers = peers
            .into_iter()
            .map(|(id, addr, region)| Peer {
                id,
                addr,
                region,
                epoch: None,
                replay: ReplayWindow::default(),
                next_data_seq: 0,
                resync: None,
            })
            .collect();
        Receiver {
            me,
            auth,
            peers,
            stats,
        }
    }

    /// Whether the replica of `peer` is believed complete: it has heard
    /// from the peer and no loss is pending.
    pub(super) fn in_sync(&self, peer: u16) -> bool {
        self.peers
            .iter()
            .any(|p| p.id == peer && p.epoch.is_some() && p.resync.is_none())
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
        let r = p.resync.as_mut()?;
        r.requested_ms = Some(now_ms);
        Some(Reply::Request {
            target: p.id,
            to: p.addr,
            from: r.cursor,
        })
    }

    /// Checks and applies one received datagram. Checks, in order, each
    /// failure counted and the datagram dropped: format and tag (`auth`),
    /// known sender, target, epoch, counter.
    pub(super) fn handle(&mut self, d: &[u8], now_ms: u64) -> Option<Reply> {
        ReplicationStats::bump(&self.stats.received);
        let h = match self.auth.open(d) {
            Ok(h) => h,
            Err(Rejected::Truncated) => {
                ReplicationStats::bump(&self.stats.truncated);
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
        if h.target != EVERY_PEER && h.target != self.me {
            // Authentic but meant for another box: replayed to us.
            ReplicationStats::bump(&self.stats.replayed);
            return None;
        }
        let body = &d[HDR..HDR + h.body_len];
        match self.peers[pi].epoch {
            Some(e) if h.epoch < e => {
                ReplicationStats::bump(&self.stats.stale_epoch);
                return None;
            }
            Some(e) if h.epoch == e => {
                if !self.peers[pi].replay.accept(h.counter) {
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
                p.replay.accept(h.counter);
                p.region.reset_all();
                p.region.set_epoch(h.epoch);
                p.next_data_seq = if h.kind == wire::K_UPDATE {
                    h.data_seq
                } else {
                    h.data_seq.saturating_add(1)
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
        let (ok, reply) = match h.kind {
            wire::K_UPDATE => (self.on_update(pi, h.data_seq, body), None),
            wire::K_HEARTBEAT => (self.on_heartbeat(pi, h.data_seq, body), None),
            wire::K_SNAP_REQ => match wire::parse_snapshot_request(body) {
                Some((from, window)) => {
                    let p = &self.peers[pi];
                    let reply = Reply::Snapshot {
                        to: p.addr,
                        target: p.id,
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
        // Saturating: an authentic peer's data_seq of u64::MAX must not
        // wrap the expectation back to 0 (found by fuzzing).
        p.next_data_seq = p.next_data_seq.max(ds.saturating_add(1));
    }

    fn on_update(&mut self, pi: usize, ds: u64, body: &[u8]) -> bool {
        let ok = self.apply_entries(pi, body);
        self.note_data_seq(pi, ds, true);
        ok
    }

    fn on_heartbeat(&mut self, pi: usize, ds: u64, body: &[u8]) -> bool {
        self.note_data_seq(pi, ds, false);
        let Some(info) = wire::decode_info(body) else {
            return false;
        };
        let r = &self.peers[pi].region;
        r.set_heartbeat(info.heartbeat, info.heartbeat_ms);
        r.set_state(info.state);
        r.set_connections(info.connections);
        r.set_checkpoints(info.checkpoints);
        r.set_identity(info.mac, &info.service_ips).is_ok()
    }

    /// Applies a snapshot chunk and moves the resync on: whether it parsed,
    /// and the next window to ask for when this one ended short.
    fn on_chunk(&mut self, pi: usize, ds: u64, body: &[u8], now_ms: u64) -> (bool, Option<Reply>) {
        let (Some(start), Some(end), Some(last)) =
            (wire::le32(body, 0), wire::le32(body, 4), body.get(8))
        else {
            return (false, None);
        };
        let last = *last == 1;
        let slots = self.peers[pi].region.slot_count();
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
