//! NewReno congestion control (RFC 5681 §3, RFC 6582) with the initial
//! window of RFC 6928. Why NewReno rather than CUBIC: see the module doc of
//! `tcp`. This is the only type that knows the algorithm; the TCB tells it
//! about ACKs, loss and recovery and reads `cwnd`.

/// Upper bound on cwnd: far above any window a peer can advertise
/// (65535 << 14), and far below where arithmetic on it could overflow.
const CWND_MAX: u32 = 1 << 30;

/// Congestion window state, in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewReno {
    pub(crate) cwnd: u32,
    pub(crate) ssthresh: u32,
    mss: u32,
    /// Bytes acknowledged since cwnd last grew in congestion avoidance.
    acked_accum: u32,
}

impl NewReno {
    /// RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)); ssthresh starts
    /// "arbitrarily high" (RFC 5681 §3.1).
    pub(crate) fn new(mss: u16) -> Self {
        let mss = u32::from(mss.max(1));
        NewReno {
            cwnd: (10 * mss).min((2 * mss).max(14600)),
            ssthresh: u32::MAX,
            mss,
            acked_accum: 0,
        }
    }

    /// The path's MSS shrank (PMTU): growth steps follow it; the window
    /// in bytes stays, but never below one new segment.
    pub(crate) fn set_mss(&mut self, mss: u16) {
        self.mss = u32::from(mss.max(1));
        self.cwnd = self.cwnd.max(self.mss);
    }

    /// New data acknowledged outside recovery.
    pub(crate) fn on_ack(&mut self, acked: u32) {
        if self.cwnd < self.ssthresh {
            // Slow start with appropriate byte counting, limit L = 2*SMSS
            // per ACK (RFC 3465 §2.3): a delayed-ACK receiver (one ACK per
            // two segments, like Linux) still doubles cwnd every RTT.
            self.cwnd = self
                .cwnd
                .saturating_add(acked.min(2 * self.mss))
                .min(CWND_MAX);
        } else {
            // Congestion avoidance: one SMSS per cwnd of data acknowledged
            // (RFC 5681 §3.1, byte-counting variant).
            self.acked_accum = self.acked_accum.saturating_add(acked);
            if self.acked_accum >= self.cwnd {
                self.acked_accum -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(self.mss).min(CWND_MAX);
            }
        }
    }

    /// Third duplicate ACK: RFC 5681 §3.2 steps 2-3 (`inflate` when no SACK
    /// scoreboard accounts for the segments that left the network).
    pub(crate) fn on_enter_recovery(&mut self, flight: u32, inflate: bool) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = if inflate {
            self.ssthresh + 3 * self.mss
        } else {
            self.ssthresh
        };
        self.acked_accum = 0;
    }

    /// Each further duplicate ACK in recovery without SACK (RFC 5681 §3.2 step 4).
    pub(crate) fn on_dupack_in_recovery(&mut self) {
        self.cwnd = self.cwnd.saturating_add(self.mss).min(CWND_MAX);
    }

    /// A partial ACK without SACK (RFC 6582 §3.2 step 3): deflate by the
    /// amount acknowledged, add back one SMSS if that was at least one SMSS.
    pub(crate) fn on_partial_ack(&mut self, acked: u32) {
        self.cwnd = self.cwnd.saturating_sub(acked);
        if acked >= self.mss {
            self.cwnd = self.cwnd.saturating_add(self.mss);
        }
        self.cwnd = self.cwnd.max(self.mss);
    }

    /// Full ACK ending recovery (RFC 6582 §3.2 step 3, first option:
    /// min(ssthresh, max(FlightSize, SMSS) + SMSS)).
    pub(crate) fn on_exit_recovery(&mut self, flight: u32) {
        self.cwnd = self.ssthresh.min(flight.max(self.mss) + self.mss);
    }

    /// Retransmission timeout (RFC 5681 §3.1 eq. 4 and "LW = 1 SMSS").
    pub(crate) fn on_rto(&mut self, flight: u32) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.mss;
        self.acked_accum = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_window_is_ten_segments() {
        // RFC 6928 §2: min(10*1460, max(2*1460, 14600)) = 14600.
        assert_eq!(NewReno::new(1460).cwnd, 14600);
        assert_eq!(NewReno::new(1448).cwnd, 14480);
        // Small MSS: still 10 segments.
        assert_eq!(NewReno::new(536).cwnd, 5360);
    }

    #[test]
    fn loss_halves_the_window_and_timeout_collapses_it() {
        let mut cc = NewReno::new(1000);
        cc.on_enter_recovery(20_000, true);
        assert_eq!(cc.ssthresh, 10_000);
        assert_eq!(cc.cwnd, 13_000);
        cc.on_exit_recovery(20_000);
        assert_eq!(cc.cwnd, 10_000);
        cc.on_rto(8_000);
        assert_eq!((cc.cwnd, cc.ssthresh), (1000, 4000));
        // Slow start again until ssthresh (at most 2 SMSS per ACK), then
        // linear growth.
        cc.on_ack(5000);
        assert_eq!(cc.cwnd, 3000);
        cc.on_ack(1000);
        assert_eq!(cc.cwnd, 4000);
        cc.on_ack(1000);
        assert_eq!(cc.cwnd, 4000);
        cc.on_ack(3000);
        assert_eq!(cc.cwnd, 5000);
    }
}
