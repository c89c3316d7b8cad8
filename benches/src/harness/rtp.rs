//! What one RTP stream looked like to its receiver: the RTP header's fields
//! (RFC 3550 §5.1) and, from the packets in arrival order, loss and
//! repeats by sequence number (16 bits, extended across wraparound), SSRC
//! changes, the longest silence between two arrivals, and how late packets
//! came against the stream's own RTP clock. Pure: packets and their arrival
//! times in, figures out; it must not know sockets, RTSP or the lab.
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The fields of an RTP header the statistics need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// The header of an RTP packet, or `None` when it is not one (version 2,
/// at least the 12 fixed bytes).
pub fn parse_header(p: &[u8]) -> Option<RtpHeader> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    Some(RtpHeader {
        seq: u16::from_be_bytes([p[2], p[3]]),
        timestamp: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    })
}

/// One stream's figures, as a receiver reports them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Packets received, repeats included.
    pub packets: u64,
    /// RTP payload bytes received (repeats included).
    pub payload_bytes: u64,
    /// Distinct sequence numbers received.
    pub distinct: u64,
    /// Sequence numbers between the first and the last received that never came.
    pub missing: u64,
    /// Packets whose sequence number had come already.
    pub repeats: u64,
    /// Packets that came after one with a higher sequence number.
    pub reordered: u64,
    /// SSRCs seen (1 for one stream).
    pub ssrcs: u32,
    /// Longest time between two arrivals, ms.
    pub longest_gap_ms: f64,
    /// When that gap began (µs, the arrival clock).
    pub longest_gap_from_us: u64,
    /// Spread of (arrival time − RTP time) over the stream, ms: how much
    /// later than its schedule the latest packet came, against the earliest.
    pub lateness_ms: f64,
    /// RTP time spanned by the packets received, s.
    pub rtp_seconds: f64,
}

impl StreamStats {
    /// Payload bit rate over the RTP time received, bits per second.
    pub fn bits_per_s(&self) -> f64 {
        if self.rtp_seconds <= 0.0 {
            return 0.0;
        }
        self.payload_bytes as f64 * 8.0 / self.rtp_seconds
    }
}

/// Accumulates one stream's packets in arrival order.
#[derive(Debug, Default)]
pub struct StreamTracker {
    seen: HashSet<i64>,
    last_seq: Option<u16>,
    ext: i64,
    hi: i64,
    lo: i64,
    ssrcs: Vec<u32>,
    first_ts: u32,
    ts_ext: i64,
    last_ts: u32,
    ts_lo: i64,
    ts_hi: i64,
    last_arrival: Option<u64>,
    delay_lo: i64,
    delay_hi: i64,
    first_arrival: u64,
    stats: StreamStats,
}

/// RTP clock of payload type 33 (MPEG-TS, RFC 2250): 90 kHz.
const CLOCK_HZ: i64 = 90_000;

impl StreamTracker {
    /// Counts one packet: its header, its payload length, when it came (µs).
    pub fn push(&mut self, h: RtpHeader, payload_len: usize, at_us: u64) {
        let s = &mut self.stats;
        s.packets += 1;
        s.payload_bytes += payload_len as u64;
        if !self.ssrcs.contains(&h.ssrc) {
            self.ssrcs.push(h.ssrc);
        }
        match self.last_seq {
            None => {
                (self.ext, self.lo, self.hi) = (0, 0, 0);
                self.first_ts = h.timestamp;
                self.last_ts = h.timestamp;
                self.first_arrival = at_us;
            }
            Some(last) => {
                // The signed distance from the previous packet: wraparound
                // of the 16-bit number is a step of +1, not −65535.
                self.ext += i64::from(h.seq.wrapping_sub(last) as i16);
                self.ts_ext += i64::from(h.timestamp.wrapping_sub(self.last_ts) as i32);
                self.last_ts = h.timestamp;
            }
        }
        self.last_seq = Some(h.seq);
        if self.ext < self.hi {
            s.reordered += 1;
        }
        self.lo = self.lo.min(self.ext);
        self.hi = self.hi.max(self.ext);
        if !self.seen.insert(self.ext) {
            s.repeats += 1;
        }
        self.ts_lo = self.ts_lo.min(self.ts_ext);
        self.ts_hi = self.ts_hi.max(self.ts_ext);
        // Arrival against schedule: (arrival since the first) − (RTP time
        // since the first). Only its spread means anything.
        let delay = (at_us as i64 - self.first_arrival as i64) - self.ts_ext * 1_000_000 / CLOCK_HZ;
        if s.packets == 1 {
            (self.delay_lo, self.delay_hi) = (delay, delay);
        }
        self.delay_lo = self.delay_lo.min(delay);
        self.delay_hi = self.delay_hi.max(delay);
        if let Some(prev) = self.last_arrival {
            let gap = at_us.saturating_sub(prev) as f64 / 1e3;
            if gap > s.longest_gap_ms {
                s.longest_gap_ms = gap;
                s.longest_gap_from_us = prev;
            }
        }
        self.last_arrival = Some(at_us);
    }

    /// The figures so far.
    pub fn stats(&self) -> StreamStats {
        let mut s = self.stats.clone();
        s.distinct = self.seen.len() as u64;
        if s.packets > 0 {
            s.missing = (self.hi - self.lo + 1) as u64 - s.distinct;
        }
        s.ssrcs = self.ssrcs.len() as u32;
        s.lateness_ms = (self.delay_hi - self.delay_lo) as f64 / 1e3;
        s.rtp_seconds = (self.ts_hi - self.ts_lo) as f64 / CLOCK_HZ as f64;
        s
    }
}

/// The `p`-th percentile (0–100) of `v` by nearest rank; 0 when empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seq: u16, timestamp: u32) -> RtpHeader {
        RtpHeader {
            seq,
            timestamp,
            ssrc: 7,
        }
    }

    /// 20 ms per packet on both clocks: 1800 ticks at 90 kHz.
    fn feed(t: &mut StreamTracker, seqs: &[u16], from_us: u64) {
        for (i, &s) in seqs.iter().enumerate() {
            let k = u32::from(s.wrapping_sub(seqs[0]));
            t.push(h(s, 1000 + k * 1800), 1316, from_us + i as u64 * 20_000);
        }
    }

    #[test]
    fn parses_the_fixed_header_and_refuses_what_is_not_rtp() {
        let mut p = vec![0x80, 33, 0xff, 0xfe, 0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef];
        p.extend([0x47; 188]);
        assert_eq!(
            parse_header(&p),
            Some(RtpHeader {
                seq: 0xfffe,
                timestamp: 256,
                ssrc: 0xdead_beef
            })
        );
        assert_eq!(parse_header(&p[..11]), None);
        p[0] = 0x40; // version 1
        assert_eq!(parse_header(&p), None);
    }

    #[test]
    fn a_whole_stream_across_the_sequence_wraparound_has_no_loss() {
        let mut t = StreamTracker::default();
        let seqs: Vec<u16> = (0..100u16).map(|i| 65500u16.wrapping_add(i)).collect();
        feed(&mut t, &seqs, 1_000_000);
        let s = t.stats();
        assert_eq!(
            (s.packets, s.distinct, s.missing, s.repeats),
            (100, 100, 0, 0)
        );
        assert_eq!((s.reordered, s.ssrcs), (0, 1));
        assert!((s.longest_gap_ms - 20.0).abs() < 1e-9);
        assert!(s.lateness_ms.abs() < 1e-9, "on schedule: {}", s.lateness_ms);
        assert!((s.rtp_seconds - 99.0 * 0.02).abs() < 1e-9);
        assert!((s.bits_per_s() - 100.0 * 1316.0 * 8.0 / 1.98).abs() < 1e-6);
    }

    #[test]
    fn loss_repeats_and_reordering_across_the_wraparound_are_counted() {
        let mut t = StreamTracker::default();
        // 65534, 65535, [0 lost], 1, 2, 2 again, 4, 3 (late), 5.
        let seqs = [65534u16, 65535, 1, 2, 2, 4, 3, 5];
        feed(&mut t, &seqs, 0);
        let s = t.stats();
        assert_eq!(s.packets, 8);
        assert_eq!(s.distinct, 7);
        assert_eq!(s.missing, 1, "only 0 never came");
        assert_eq!(s.repeats, 1);
        assert_eq!(s.reordered, 1);
    }

    #[test]
    fn a_silence_is_the_longest_gap_and_the_stream_stays_that_late() {
        let mut t = StreamTracker::default();
        // 50 packets every 20 ms, then 140 ms of nothing, then on at the
        // same rate: the stream resumes late by 120 ms (a takeover that
        // re-anchors its pacing clock, as the survivor does).
        for i in 0..100u32 {
            let extra = if i >= 50 { 120_000 } else { 0 };
            t.push(h(i as u16, i * 1800), 1316, u64::from(i) * 20_000 + extra);
        }
        let s = t.stats();
        assert!((s.longest_gap_ms - 140.0).abs() < 1e-9);
        assert_eq!(s.longest_gap_from_us, 49 * 20_000);
        assert!((s.lateness_ms - 120.0).abs() < 1e-9);
        assert_eq!(s.missing, 0);
    }

    #[test]
    fn a_second_ssrc_is_seen() {
        let mut t = StreamTracker::default();
        t.push(h(1, 0), 10, 0);
        t.push(
            RtpHeader {
                ssrc: 8,
                ..h(2, 1800)
            },
            10,
            20_000,
        );
        assert_eq!(t.stats().ssrcs, 2);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
