//! The worker's line about restored connections that could not resume
//! (seed Fig. 6 "not ready": no answer to the probe, or a gap the client
//! never filled): at most one a second, counting the ones since the last
//! line, with the first of them as an example. A takeover at 300,000
//! connections on a saturated lab closed 44,000 so over 15 s, and a line
//! each was 4 MB of each survivor's log written while it was busiest. It
//! knows nothing of why they did not resume.
use std::time::{Duration, Instant};

use baton_dataplane::tcp::FourTuple;
use tracing::info;

/// At most one line this often.
const INTERVAL: Duration = Duration::from_secs(1);

/// What one line tells: how many since the last line, and the first.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Line {
    pub count: u64,
    pub first: Option<FourTuple>,
}

/// Restored connections that could not resume and are not told yet.
#[derive(Debug, Default)]
pub(super) struct Unresumed {
    pending: u64,
    first: Option<FourTuple>,
    last_line: Option<Instant>,
}

impl Unresumed {
    /// One more; logged now unless a line was written within a second.
    pub(super) fn note(&mut self, tuple: Option<FourTuple>, now: Instant) {
        self.pending += 1;
        if self.first.is_none() {
            self.first = tuple;
        }
        self.flush(now);
    }

    /// True when some are not told yet (the poll loop's cheap check).
    pub(super) fn is_pending(&self) -> bool {
        self.pending > 0
    }

    /// Logs the ones not told yet, if a second has passed since the last
    /// line.
    pub(super) fn flush(&mut self, now: Instant) {
        if let Some(line) = self.due(now) {
            info!(
                count = line.count,
                first = ?line.first,
                "restored connections could not resume (seed Fig. 6, not ready); count is since the last such line"
            );
        }
    }

    /// The line to write now, if any (taken: the count starts again).
    fn due(&mut self, now: Instant) -> Option<Line> {
        if self.pending == 0
            || self
                .last_line
                .is_some_and(|at| now.saturating_duration_since(at) < INTERVAL)
        {
            return None;
        }
        self.last_line = Some(now);
        Some(Line {
            count: std::mem::take(&mut self.pending),
            first: self.first.take(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn tuple(port: u16) -> FourTuple {
        FourTuple {
            local: SocketAddr::from(([198, 18, 0, 11], 80)),
            remote: SocketAddr::from(([198, 18, 0, 130], port)),
        }
    }

    #[test]
    fn thousands_at_once_make_one_line_a_second_that_counts_them_all() {
        let t0 = Instant::now();
        let mut u = Unresumed::default();
        u.note(Some(tuple(1)), t0);
        assert!(!u.is_pending(), "the first is told at once");
        for port in 2..=5000 {
            u.note(Some(tuple(port)), t0 + Duration::from_millis(900));
        }
        assert!(u.is_pending(), "the rest wait for the second to pass");
        assert_eq!(
            u.due(t0 + Duration::from_secs(1)),
            Some(Line {
                count: 4999,
                first: Some(tuple(2))
            }),
            "the rest in one line, by the poll loop's flush a second later"
        );
        assert!(!u.is_pending());
        assert_eq!(
            u.due(t0 + Duration::from_secs(5)),
            None,
            "nothing left to tell"
        );
    }
}
