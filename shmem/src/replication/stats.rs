//! What a replicator sent, applied and dropped, as shared counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what a replicator sent, applied and dropped. Shared (read
/// them while [`Replicator::run`](super::Replicator::run) runs in its thread).
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
    /// Counts one event.
    pub(super) fn bump(c: &AtomicU64) {
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
