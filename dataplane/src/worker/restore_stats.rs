//! How the connections restored on a worker went (seed Fig. 6, 606-618):
//! counts and a histogram of restore → ready times. Plain numbers; the
//! worker records, the control core sums and logs.

use std::time::Duration;

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
    /// Restored connections whose client had already closed them with the
    /// dead box after its last checkpoint (both FINs past the record):
    /// ended quietly, nothing to resume.
    pub closed: u64,
    /// Restored connections still waiting for the client's answer, and
    /// restores queued behind the restore window.
    pub pending: u64,
    /// Restores parked until their client speaks or their time comes
    /// ([`super::Command::RestoreLater`]), not yet due: some of them their
    /// client restored already (lazily), which the queue only learns when
    /// they fall due.
    pub parked: u64,
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
        self.closed += other.closed;
        self.pending += other.pending;
        self.parked += other.parked;
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
            closed: self.closed.saturating_sub(earlier.closed),
            pending: self.pending,
            parked: self.parked,
            ready_after,
        }
    }

    pub(super) fn record_ready(&mut self, after: Duration) {
        if self.ready_after.is_empty() {
            self.ready_after = vec![0; READY_BUCKETS];
        }
        let i = ((after.as_micros() / READY_BUCKET.as_micros()) as usize).min(READY_BUCKETS - 1);
        self.ready += 1;
        self.ready_after[i] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
