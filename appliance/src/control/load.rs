//! The load a box publishes with its heartbeat (issue 20): bytes per
//! second sent and the fraction of time its workers were busy, derived
//! from the workers' running counters between two readings. Pure: totals
//! and a monotonic time in, a `BoxLoad` out, so it runs on virtual time in
//! tests. It must not know who reads the load (placement, rebalancing,
//! the admin status) nor how the counters are gathered.
use baton_shmem::BoxLoad;

/// Running totals over all workers at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadTotals {
    /// Bytes the workers sent (`tx_bytes`).
    pub tx_bytes: u64,
    /// Microseconds the workers spent blocked idle (`idle_wait_us`).
    pub idle_us: u64,
    /// Number of workers (each contributes one worker-second per second).
    pub workers: u64,
}

/// Turns successive totals into rates.
#[derive(Debug, Default)]
pub struct LoadMeter {
    last: Option<(u64, LoadTotals)>,
}

impl LoadMeter {
    /// Feeds the totals read at `now_us` (monotonic); returns the load over
    /// the interval since the previous reading, `None` on the first one or
    /// when time did not advance. Counters that went backwards (a worker
    /// restarted) count as zero for that interval, never as a huge rate.
    pub fn observe(&mut self, now_us: u64, totals: LoadTotals) -> Option<BoxLoad> {
        let prev = self.last.replace((now_us, totals));
        let (then_us, before) = prev?;
        let elapsed = now_us.checked_sub(then_us).filter(|&e| e > 0)?;
        let bytes = totals.tx_bytes.saturating_sub(before.tx_bytes);
        let idle = totals.idle_us.saturating_sub(before.idle_us);
        let capacity = elapsed.saturating_mul(totals.workers.max(1));
        let busy = capacity.saturating_sub(idle.min(capacity));
        Some(BoxLoad {
            bytes_per_sec: (u128::from(bytes) * 1_000_000 / u128::from(elapsed)) as u64,
            busy_ppm: (u128::from(busy) * 1_000_000 / u128::from(capacity)) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(tx_bytes: u64, idle_us: u64) -> LoadTotals {
        LoadTotals {
            tx_bytes,
            idle_us,
            workers: 2,
        }
    }

    #[test]
    fn the_first_reading_publishes_nothing_and_the_next_gives_rates_over_the_interval() {
        let mut m = LoadMeter::default();
        assert_eq!(m.observe(0, totals(0, 0)), None);
        // 2 workers over 1 s: 2 s of capacity, 0.5 s idle -> 75 % busy.
        let load = m.observe(1_000_000, totals(3_000_000, 500_000));
        assert_eq!(
            load,
            Some(BoxLoad {
                bytes_per_sec: 3_000_000,
                busy_ppm: 750_000
            })
        );
        // Over 500 ms, 1 MB and fully idle.
        let load = m.observe(1_500_000, totals(4_000_000, 1_500_000));
        assert_eq!(
            load,
            Some(BoxLoad {
                bytes_per_sec: 2_000_000,
                busy_ppm: 0
            })
        );
    }

    #[test]
    fn counters_going_back_or_time_standing_still_never_give_a_huge_rate() {
        let mut m = LoadMeter::default();
        m.observe(10, totals(1_000, 0));
        assert_eq!(m.observe(10, totals(2_000, 0)), None);
        let load = m.observe(1_000_010, totals(5, 9_999_999_999));
        assert_eq!(
            load,
            Some(BoxLoad {
                bytes_per_sec: 0,
                busy_ppm: 0
            })
        );
    }
}
