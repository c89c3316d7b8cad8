//! One RTP flow: an MPEG-TS object sent as RTP payload type 33 at the pace
//! of its PCRs, with RTCP sender reports, and its checkpoint and restore.
//!
//! Sans-IO: the caller holds the object's bytes and the clock; it asks
//! [`RtpFlow::poll_at`] when the next packet is due, calls
//! [`RtpFlow::poll_transmit`] at that time and sends what it wrote, and
//! does the same with [`RtpFlow::poll_rtcp`]. [`RtpFlow::checkpoint`] is
//! taken on a time cadence (no ACKs to wait for); [`RtpFlow::restore`] on
//! a survivor continues with the same SSRC, the next sequence number and
//! timestamps that go on from the record's, so a player sees a gap and no
//! new stream. Packets sent after the last checkpoint are sent again with
//! the same numbers: a receiver drops duplicates, while a skipped number
//! would be loss. Knows nothing of UDP, TCP or the segment.

use crate::checkpoint::FlowRecord;
use crate::pacing::{Pacer, PacingState};
use crate::rtcp::SenderReport;
use crate::rtp::{Header, PT_MP2T, TS_PER_PACKET};
use crate::ts::{self, HZ, PACKET};

/// Pacing and reporting settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// How far ahead of its PCR time a packet may go (the player's jitter
    /// buffer absorbs it; it lets a loaded worker catch up).
    pub lead_us: u64,
    /// Byte rate assumed until two PCRs have been seen.
    pub fallback_rate: u64,
    /// Interval between sender reports (RFC 3550 §6.2: 5 s minimum).
    pub sr_interval_us: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            lead_us: 100_000,
            fallback_rate: 250_000,
            sr_interval_us: 5_000_000,
        }
    }
}

/// A flow's RTP state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpFlow {
    cfg: FlowConfig,
    ssrc: u32,
    seq: u16,
    /// RTP timestamp at stream time 0.
    rtp_base: u32,
    offset: u64,
    pacer: Pacer,
    packets: u32,
    octets: u32,
    playing: bool,
    next_sr_us: u64,
}

impl RtpFlow {
    /// A new flow, not yet playing; `seq` and `rtp_base` random per RFC
    /// 3550 §5.1.
    pub fn new(cfg: FlowConfig, ssrc: u32, seq: u16, rtp_base: u32, now_us: u64) -> RtpFlow {
        let state = PacingState {
            clock: 0,
            clock_at_pcr: 0,
            last_pcr: None,
            bytes_since_pcr: 0,
            rate: cfg.fallback_rate,
        };
        RtpFlow {
            cfg,
            ssrc,
            seq,
            rtp_base,
            offset: 0,
            pacer: Pacer::new(state, now_us),
            packets: 0,
            octets: 0,
            playing: false,
            next_sr_us: now_us,
        }
    }

    // Getters.

    /// The synchronisation source.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number and timestamp of the next packet (`RTP-Info`).
    pub fn next(&self) -> (u16, u32) {
        (self.seq, self.timestamp())
    }

    /// Object offset of the next packet.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Normal play time of the next packet.
    pub fn npt_ms(&self) -> u64 {
        self.pacer.clock() / (HZ / 1000)
    }

    /// Whether packets are being sent.
    pub fn playing(&self) -> bool {
        self.playing
    }

    /// Whether the whole object has been sent.
    pub fn finished(&self, object: &[u8]) -> bool {
        self.offset.saturating_add(PACKET as u64) > object.len() as u64
    }

    /// When the next RTP packet is due (`None` when paused or done).
    pub fn poll_at(&self, object: &[u8]) -> Option<u64> {
        (self.playing && !self.finished(object))
            .then(|| self.pacer.due_us().saturating_sub(self.cfg.lead_us))
    }

    // Mutators.

    /// Plays from `npt_ms` of `object` (PLAY with a Range); returns the
    /// next sequence number and timestamp. Stream time jumps to the seek
    /// point's PCR; sequence numbers continue.
    pub fn seek(&mut self, object: &[u8], npt_ms: u64, now_us: u64) -> (u16, u32) {
        let sp = ts::seek(object, npt_ms);
        self.offset = sp.offset;
        let rate = self.pacer.state().rate;
        self.pacer = Pacer::new(
            PacingState {
                clock: sp.clock,
                clock_at_pcr: sp.clock,
                last_pcr: None,
                bytes_since_pcr: 0,
                rate,
            },
            now_us,
        );
        self.playing = true;
        self.next()
    }

    /// Goes on from where the flow stopped (PLAY after PAUSE).
    pub fn resume(&mut self, now_us: u64) -> (u16, u32) {
        self.pacer.reanchor(now_us);
        self.playing = true;
        self.next()
    }

    /// Stops sending; returns the normal play time reached.
    pub fn pause(&mut self) -> u64 {
        self.playing = false;
        self.npt_ms()
    }

    // Outputs.

    /// Appends the next RTP packet to `out` if it is due at `now_us`.
    pub fn poll_transmit(&mut self, now_us: u64, object: &[u8], out: &mut Vec<u8>) -> bool {
        if self.poll_at(object).is_none_or(|at| at > now_us) {
            return false;
        }
        let Ok(start) = usize::try_from(self.offset) else {
            return false;
        };
        let whole = (object.len() - start) / PACKET;
        let end = start + whole.min(TS_PER_PACKET) * PACKET;
        let payload = &object[start..end];
        Header {
            pt: PT_MP2T,
            marker: false,
            seq: self.seq,
            timestamp: self.timestamp(),
            ssrc: self.ssrc,
        }
        .write(out);
        out.extend_from_slice(payload);
        self.pacer.advance(payload);
        self.seq = self.seq.wrapping_add(1);
        self.offset = end as u64;
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        true
    }

    /// When the next sender report is due (`None` when paused).
    pub fn sr_at(&self) -> Option<u64> {
        self.playing.then_some(self.next_sr_us)
    }

    /// Appends a sender report if one is due; `ntp` is `now_us` on the
    /// wallclock in NTP format.
    pub fn poll_rtcp(&mut self, now_us: u64, ntp: u64, cname: &str, out: &mut Vec<u8>) -> bool {
        if !self.playing || now_us < self.next_sr_us {
            return false;
        }
        self.next_sr_us = now_us.saturating_add(self.cfg.sr_interval_us);
        let clock = self.pacer.clock_at(now_us);
        SenderReport {
            ssrc: self.ssrc,
            ntp,
            rtp_time: self.rtp_base.wrapping_add((clock / 300) as u32),
            packets: self.packets,
            octets: self.octets,
        }
        .write(cname, out);
        true
    }

    // Takeover.

    /// The record to checkpoint.
    pub fn checkpoint(&self) -> FlowRecord {
        FlowRecord {
            ssrc: self.ssrc,
            next_seq: self.seq,
            next_rtptime: self.timestamp(),
            offset: self.offset,
            pacing: self.pacer.state(),
            packets: self.packets,
            octets: self.octets,
            playing: self.playing,
        }
    }

    /// The flow a record describes, its next packet due at `now_us`.
    pub fn restore(cfg: FlowConfig, rec: &FlowRecord, now_us: u64) -> RtpFlow {
        RtpFlow {
            cfg,
            ssrc: rec.ssrc,
            seq: rec.next_seq,
            rtp_base: rec
                .next_rtptime
                .wrapping_sub((rec.pacing.clock / 300) as u32),
            offset: rec.offset,
            pacer: Pacer::new(rec.pacing, now_us),
            packets: rec.packets,
            octets: rec.octets,
            playing: rec.playing,
            next_sr_us: now_us,
        }
    }

    /// 90 kHz timestamp of the next byte (27 MHz / 300).
    fn timestamp(&self) -> u32 {
        self.rtp_base
            .wrapping_add((self.pacer.clock() / 300) as u32)
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
