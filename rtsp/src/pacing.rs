//! The pacing clock of one stream: when each byte of an MPEG-TS object is
//! due on the wire, from the PCRs it carries (RFC 2250 §2: the timestamp
//! is "the target transmission time of the first byte of the packet").
//!
//! Stream time (`clock`, 27 MHz ticks since the object's first PCR) moves
//! with the PCRs; between two PCRs it is extrapolated at the byte rate the
//! last two PCRs showed, so packets are spread rather than sent in bursts
//! at each PCR. A jump of more than [`MAX_PCR_STEP`] (a discontinuity or a
//! spliced object) keeps the extrapolated clock instead of following it.
//! Stream time maps to the caller's virtual time through an anchor taken
//! at PLAY, resume or restore. A restored state comes from the segment, so
//! the arithmetic saturates rather than trusting its magnitudes. Pure: no
//! clock is read here; knows nothing of RTP or sockets.

use crate::ts::{self, HZ, PACKET};

/// The largest PCR step trusted as continuous (ISO/IEC 13818-1 asks for a
/// PCR at least every 100 ms; a second leaves room for sparse muxers).
pub const MAX_PCR_STEP: u64 = HZ;
/// Lowest byte rate accepted from PCRs (bytes per second).
const MIN_RATE: u64 = 1_000;

/// Where the stream's clock stands; everything a survivor needs to go on
/// pacing, and nothing tied to one box's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingState {
    /// Stream time of the next byte to send (27 MHz).
    pub clock: u64,
    /// Stream time at the last PCR seen.
    pub clock_at_pcr: u64,
    /// That PCR's PID and raw value.
    pub last_pcr: Option<(u16, u64)>,
    /// Bytes sent since that PCR's packet began.
    pub bytes_since_pcr: u64,
    /// Byte rate between the last two PCRs (bytes per second).
    pub rate: u64,
}

/// A stream's pacing clock anchored to virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    state: PacingState,
    anchor_us: u64,
    anchor_clock: u64,
}

impl Pacer {
    /// A clock at `state`, anchored so that its next byte is due at `now_us`.
    pub fn new(state: PacingState, now_us: u64) -> Pacer {
        let mut state = state;
        state.rate = state.rate.max(MIN_RATE);
        Pacer {
            state,
            anchor_us: now_us,
            anchor_clock: state.clock,
        }
    }

    /// The state to checkpoint.
    pub fn state(&self) -> PacingState {
        self.state
    }

    /// Stream time of the next byte.
    pub fn clock(&self) -> u64 {
        self.state.clock
    }

    /// Virtual time the next byte is due.
    pub fn due_us(&self) -> u64 {
        self.anchor_us
            .saturating_add(self.state.clock.saturating_sub(self.anchor_clock) / (HZ / 1_000_000))
    }

    /// Stream time that corresponds to `now_us` (for sender reports).
    pub fn clock_at(&self, now_us: u64) -> u64 {
        self.anchor_clock.saturating_add(
            now_us
                .saturating_sub(self.anchor_us)
                .saturating_mul(HZ / 1_000_000),
        )
    }

    /// Makes the next byte due at `now_us` (after a pause or a restore).
    pub fn reanchor(&mut self, now_us: u64) {
        self.anchor_us = now_us;
        self.anchor_clock = self.state.clock;
    }

    /// Moves the clock past `payload` (whole TS packets just sent).
    pub fn advance(&mut self, payload: &[u8]) {
        let s = &mut self.state;
        for p in payload.chunks_exact(PACKET) {
            if let Some((pid, v)) = ts::pcr(p) {
                match s.last_pcr {
                    Some((lpid, _)) if lpid != pid => {}
                    Some((_, last)) => {
                        let step = ts::pcr_delta(last, v);
                        if step > 0 && step <= MAX_PCR_STEP {
                            s.rate = (s.bytes_since_pcr.saturating_mul(HZ) / step).max(MIN_RATE);
                            s.clock_at_pcr = s.clock_at_pcr.saturating_add(step);
                        } else {
                            s.clock_at_pcr = s.clock;
                        }
                        s.last_pcr = Some((pid, v));
                        s.bytes_since_pcr = 0;
                    }
                    None => {
                        s.clock_at_pcr = s.clock;
                        s.last_pcr = Some((pid, v));
                        s.bytes_since_pcr = 0;
                    }
                }
            }
            s.bytes_since_pcr = s.bytes_since_pcr.saturating_add(PACKET as u64);
            let extrapolated = s
                .clock_at_pcr
                .saturating_add(s.bytes_since_pcr.saturating_mul(HZ) / s.rate);
            // RTP timestamps must not run backwards when a PCR shows the
            // rate estimate was low.
            s.clock = s.clock.max(extrapolated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::build_packet;

    /// A stream of `n` packets at `rate` bytes/s with a PCR every 10.
    fn stream(n: u64, rate: u64, pcr0: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            let t = pcr0 + i * PACKET as u64 * HZ / rate;
            let pcr = (i % 10 == 0).then_some(t % ts::PCR_WRAP);
            v.extend_from_slice(&build_packet(0x100, i as u8, pcr, 0));
        }
        v
    }

    fn fresh(rate: u64, now: u64) -> Pacer {
        Pacer::new(
            PacingState {
                clock: 0,
                clock_at_pcr: 0,
                last_pcr: None,
                bytes_since_pcr: 0,
                rate,
            },
            now,
        )
    }

    #[test]
    fn send_times_follow_the_pcr_rate_not_the_fallback() {
        // 250 kB/s (2 Mbit/s) stream, fallback guess 10x too fast.
        let data = stream(200, 250_000, 1_000);
        let mut p = fresh(2_500_000, 5_000);
        for chunk in data.chunks(7 * PACKET) {
            p.advance(chunk);
        }
        // 200 packets at 250 kB/s last 150.4 ms; within one PCR interval
        // of the truth despite the wrong initial guess.
        let due = p.due_us() - 5_000;
        assert!((144_000..=151_000).contains(&due), "{due}");
        assert_eq!(p.state().rate, 250_000);
    }

    #[test]
    fn clock_crosses_the_pcr_wrap_and_never_runs_back() {
        let data = stream(100, 250_000, ts::PCR_WRAP - 27_000);
        let mut p = fresh(250_000, 0);
        let mut last = 0;
        for chunk in data.chunks(PACKET) {
            p.advance(chunk);
            assert!(p.clock() >= last);
            last = p.clock();
        }
        let expect = 100 * PACKET as u64 * HZ / 250_000;
        assert!(p.clock().abs_diff(expect) < HZ / 100, "{}", p.clock());
    }

    #[test]
    fn a_pcr_discontinuity_keeps_the_extrapolated_clock() {
        let mut data = stream(20, 250_000, 0);
        data.extend_from_slice(&build_packet(0x100, 0, Some(50 * HZ), 0));
        let mut p = fresh(250_000, 0);
        p.advance(&data);
        assert!(p.clock() < HZ / 10, "{}", p.clock());
    }

    #[test]
    fn reanchor_makes_the_next_byte_due_now() {
        let mut p = fresh(250_000, 0);
        p.advance(&stream(10, 250_000, 0));
        p.reanchor(9_000_000);
        assert_eq!(p.due_us(), 9_000_000);
        assert_eq!(p.clock_at(9_000_001), p.clock() + 27);
    }
}
