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
    /// Dropped before any check of content: the source address is not a
    /// configured peer's address for the socket it came in on.
    pub unknown_source: AtomicU64,
    /// Dropped: longer than any datagram a box sends (on the heartbeat
    /// socket: longer than a heartbeat), before the HMAC.
    pub oversized: AtomicU64,
    /// Dropped: not our magic or version, before the HMAC.
    pub bad_magic: AtomicU64,
    /// Dropped: a kind that does not belong on the socket it came in on
    /// (anything but a heartbeat on the heartbeat socket, a heartbeat on
    /// the replication socket when heartbeats have their own), before the
    /// HMAC.
    pub wrong_channel: AtomicU64,
    /// Dropped: shorter than a header and tag, or lengths that disagree.
    pub truncated: AtomicU64,
    /// Dropped: HMAC did not verify (forged or corrupted).
    pub forged: AtomicU64,
    /// Dropped: counter already seen or older than the replay window.
    pub replayed: AtomicU64,
    /// Dropped: from an older epoch of the sender than the newest seen.
    pub stale_epoch: AtomicU64,
    /// Dropped: addressed to an older incarnation of this box (captured
    /// before this box restarted and replayed, or sent by a peer that has
    /// not heard of the restart yet).
    pub old_incarnation: AtomicU64,
    /// Dropped: from a peer that has not heard of any incarnation of this
    /// box yet (its first datagrams after either box started); its epoch
    /// is learned from it, and the peer hears ours from our own datagrams.
    pub unintroduced: AtomicU64,
    /// Dropped: sender id is not a configured peer.
    pub unknown_sender: AtomicU64,
    /// Dropped: authenticated but the body does not parse.
    pub malformed: AtomicU64,
    /// Slot updates and snapshot chunks refused, authentic, because their
    /// sender's region layout differs from this box's (its heartbeats
    /// still count: see the log).
    pub layout_mismatch: AtomicU64,
    /// Losses of slot updates detected (data_seq gaps).
    pub gaps: AtomicU64,
    /// Snapshot windows requested.
    pub snapshot_requests: AtomicU64,
    /// Full resyncs completed.
    pub resyncs_completed: AtomicU64,
    /// Heartbeats received and applied.
    pub heartbeats: AtomicU64,
    /// Receive errors other than timeouts (the loop goes on; only an
    /// unbroken run of them stops replication, see `Replicator::run`).
    pub recv_errors: AtomicU64,
    /// Datagrams the kernel dropped at the replicator's sockets (receive
    /// buffer full), as `SO_MEMINFO` reports them; refreshed every tick.
    pub kernel_drops: AtomicU64,
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
            ("unknown_source", g(&self.unknown_source)),
            ("oversized", g(&self.oversized)),
            ("bad_magic", g(&self.bad_magic)),
            ("wrong_channel", g(&self.wrong_channel)),
            ("truncated", g(&self.truncated)),
            ("forged", g(&self.forged)),
            ("replayed", g(&self.replayed)),
            ("stale_epoch", g(&self.stale_epoch)),
            ("old_incarnation", g(&self.old_incarnation)),
            ("unintroduced", g(&self.unintroduced)),
            ("unknown_sender", g(&self.unknown_sender)),
            ("malformed", g(&self.malformed)),
            ("layout_mismatch", g(&self.layout_mismatch)),
            ("gaps", g(&self.gaps)),
            ("snapshot_requests", g(&self.snapshot_requests)),
            ("resyncs_completed", g(&self.resyncs_completed)),
            ("heartbeats", g(&self.heartbeats)),
            ("recv_errors", g(&self.recv_errors)),
            ("kernel_drops", g(&self.kernel_drops)),
        ]
    }

    /// Datagrams dropped by the receiver, by reason (the names
    /// [`Self::snapshot`] uses), in the order the checks run.
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        const REASONS: [&str; 12] = [
            "unknown_source",
            "oversized",
            "bad_magic",
            "wrong_channel",
            "truncated",
            "forged",
            "unknown_sender",
            "replayed",
            "old_incarnation",
            "unintroduced",
            "stale_epoch",
            "malformed",
        ];
        self.snapshot()
            .into_iter()
            .filter(|(n, _)| REASONS.contains(n))
            .collect()
    }
}
