//! The retransmission timer's round-trip estimator (RFC 6298 §2): smoothed
//! RTT, its variation, and the RTO they give. Pure arithmetic on
//! microseconds; the TCB decides what counts as a sample (Karn's
//! algorithm, timestamps) and owns the back-off.

use std::time::Duration;

/// SRTT, RTTVAR and RTO, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RttEstimator {
    srtt_us: u64,
    rttvar_us: u64,
    rto_us: u64,
}

impl RttEstimator {
    /// Before the first measurement: RTO = `initial` (RFC 6298 §2.1).
    pub(crate) fn new(initial: Duration) -> Self {
        RttEstimator {
            srtt_us: 0,
            rttvar_us: 0,
            rto_us: initial.as_micros() as u64,
        }
    }

    /// The smoothed RTT; 0 before the first sample.
    pub(crate) fn srtt_us(&self) -> u64 {
        self.srtt_us
    }

    /// True once a round trip was measured.
    pub(crate) fn has_sample(&self) -> bool {
        self.srtt_us != 0
    }

    /// Takes a round-trip sample of `r` µs; the RTO stays within
    /// `[min, max]`.
    pub(crate) fn sample(&mut self, r: u64, min: Duration, max: Duration) {
        // RFC 6298 §2.2-2.3 (alpha = 1/8, beta = 1/4, K = 4, G = 1 ms).
        if self.srtt_us == 0 {
            self.srtt_us = r.max(1);
            self.rttvar_us = r / 2;
        } else {
            let err = self.srtt_us.abs_diff(r);
            self.rttvar_us = (3 * self.rttvar_us + err) / 4;
            self.srtt_us = ((7 * self.srtt_us + r) / 8).max(1);
        }
        let min = min.as_micros() as u64;
        let max = max.as_micros() as u64;
        self.rto_us = (self.srtt_us + (4 * self.rttvar_us).max(1000)).clamp(min, max);
    }

    /// Raises the RTO to at least `floor` (RFC 6298 §5.7 after a SYN
    /// timed out).
    pub(crate) fn raise_rto_to(&mut self, floor: Duration) {
        self.rto_us = self.rto_us.max(floor.as_micros() as u64);
    }

    /// The RTO after `backoff` doublings, at most `max`.
    pub(crate) fn rto(&self, backoff: u32, max: Duration) -> Duration {
        let us = self.rto_us.saturating_mul(1u64 << backoff);
        Duration::from_micros(us).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn first_sample_sets_srtt_and_half_of_it_as_variation() {
        // RFC 6298 §2.2: SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max(G, 4*RTTVAR).
        let mut e = RttEstimator::new(Duration::from_secs(1));
        assert!(!e.has_sample());
        assert_eq!(e.rto(0, MAX), Duration::from_secs(1));
        e.sample(100_000, MIN, MAX);
        assert_eq!(e.srtt_us(), 100_000);
        assert_eq!(e.rto(0, MAX), Duration::from_millis(300));
        assert_eq!(
            e.rto(2, MAX),
            Duration::from_millis(1200),
            "backed off twice"
        );
    }

    #[test]
    fn rto_is_clamped_to_min_rto_on_a_fast_path() {
        // RFC 6298 §2.4: "Whenever RTO is computed, if it is less than 1
        // second, then the RTO SHOULD be rounded up to 1 second" (here
        // min_rto, as Linux does).
        let mut e = RttEstimator::new(Duration::from_secs(1));
        e.sample(500, MIN, MAX);
        assert_eq!(e.rto(0, MAX), MIN);
    }
}
