//! Outputs: segments, events and the next deadline, and how segments are built.

use super::*;

impl Tcb {
    // ------------------------------------------------------------------
    // Outputs
    // ------------------------------------------------------------------

    /// The next segment to send, if any; call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<OutSegment> {
        self.rebase_clock(now);
        if let Some(r) = self.rst.take() {
            let mut s = self.bare_segment(r.seq);
            s.flags = Flags {
                rst: true,
                ack: r.ack.is_some(),
                ..Flags::default()
            };
            s.ack = r.ack.unwrap_or(SeqNum(0));
            self.stats.segments_sent = self.stats.segments_sent.wrapping_add(1);
            return Some(s);
        }
        match self.state {
            State::Closed => return None,
            State::Unready => {
                if self.probe_pending {
                    self.probe_pending = false;
                    return Some(self.probe_segment(now));
                }
                return None;
            }
            State::SynSent | State::SynReceived => {
                if self.syn_pending || (self.state == State::SynReceived && self.ack_now) {
                    self.ack_now = false;
                    return Some(self.syn_segment(now));
                }
                return None;
            }
            _ => {}
        }

        // Loss recovery first: the next hole (RFC 6675 NextSeg rules 1-2,
        // RFC 6582 for the first unacknowledged segment without SACK).
        if self.in_recovery && self.rexmit_quota > 0 {
            if let Some((seq, len)) = self.next_hole() {
                let len = len.min((usize::from(self.mss) - self.sack_reserve()) as u32);
                self.rexmit_quota -= 1;
                self.rexmit_next = seq + len;
                return self.data_segment(now, seq, len);
            }
            self.rexmit_quota = 0;
        }

        if self.zwp_pending {
            self.zwp_pending = false;
            if let Some(s) = self.zero_window_probe(now) {
                return Some(s);
            }
        }

        if let Some(s) = self.next_data_segment(now) {
            return Some(s);
        }

        if self.dupacks_owed > 0 {
            // Identical pure ACKs at RCV.NXT: to the client, duplicate ACKs
            // (RFC 5681 §3.2), prompting its fast retransmit of the bytes
            // the dead box never acknowledged.
            self.dupacks_owed -= 1;
            let mut s = self.bare_segment(self.snd_max);
            s.flags.ack = true;
            self.finish(now, &mut s);
            return Some(s);
        }

        if self.ack_now || self.window_update {
            // <SEQ=SND.NXT> in RFC terms is the highest sequence sent: our
            // `snd_nxt` goes back to SND.UNA after an RTO, and an ACK below
            // the peer's RCV.NXT would be unacceptable to it (§3.10.7.4).
            let mut s = self.bare_segment(self.snd_max);
            s.flags.ack = true;
            self.finish(now, &mut s);
            return Some(s);
        }
        None
    }

    /// The next event for the application, if any; call until `None`.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// The earliest deadline at which [`Tcb::on_timeout`] must be called
    /// (retransmission, delayed ACK, persist, TIME-WAIT, idle, probe).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        if let Some(r) = &self.restore {
            return Some(r.probe_at);
        }
        if let Some(t) = self.timewait_at {
            return Some(t.instant(self.ts_epoch));
        }
        let on_clock = [self.rto_at, self.delack_at, self.persist_at]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.instant(self.ts_epoch));
        [
            self.gap.as_ref().and_then(|g| g.deadline),
            on_clock,
            self.idle_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ------------------------------------------------------------------
    // Segment construction
    // ------------------------------------------------------------------

    pub(super) fn ts_now(&self, now: Instant) -> u32 {
        let ms = now.saturating_duration_since(self.ts_epoch).as_millis() as u32;
        self.ts_base.wrapping_add(ms)
    }

    pub(super) fn rcv_free(&self) -> u32 {
        let free = self
            .config
            .recv_buffer
            .saturating_sub(self.recvq.len() as u32);
        // The worker's budget may hold it to a floor (tcp/budget.rs);
        // `rcv_accept_window` and `window_field` keep what was advertised.
        self.config.buffer_budget.recv_room(self.recvq.len(), free)
    }

    /// Data we accept beyond RCV.NXT: the free buffer, and never less than
    /// what we advertised (the window must not shrink, RFC 9293 §3.8.6.2.2).
    pub(super) fn rcv_accept_window(&self) -> u32 {
        let adv = (self.rcv_adv - self.rcv_nxt).max(0) as u32;
        self.rcv_free().max(adv)
    }

    /// The window field for a non-SYN segment (RFC 7323 §2.3: scaled).
    pub(super) fn window_field(&self) -> u16 {
        // The window is relative to the ACK number we send; bytes held back
        // by `ack_after_commit` are inside it (we have them, RFC 9293
        // §3.8.6.2.2 forbids shrinking).
        let ack = self.ack_to_send();
        let held = (self.rcv_nxt - ack).max(0) as u32;
        let adv = (self.rcv_adv - ack).max(0) as u32;
        let free = self.rcv_free().saturating_add(held);
        let scale = u32::from(self.rcv_wscale);
        // Rounded up so the advertised edge never moves left.
        let keep = (adv + (1 << scale) - 1) >> scale;
        // Receiver SWS avoidance: advance the edge only by a useful amount.
        let growth = free.saturating_sub(adv);
        let w = if growth >= (self.config.recv_buffer / 2).min(u32::from(self.config.mss)) {
            (free >> scale).max(keep)
        } else {
            keep
        };
        w.min(u32::from(u16::MAX)) as u16
    }

    pub(super) fn bare_segment(&self, seq: SeqNum) -> OutSegment {
        OutSegment {
            src_port: self.tuple.local_port(),
            dst_port: self.tuple.remote_port(),
            seq,
            ack: SeqNum(0),
            flags: Flags::default(),
            window: 0,
            options: Options::default(),
            payload: Vec::new(),
        }
    }

    /// Window, ACK number, timestamps and SACK blocks for a segment that
    /// carries ACK; records what we acknowledged.
    /// RCV.NXT, or while ACKs are held the committed point below it.
    pub(super) fn ack_to_send(&self) -> SeqNum {
        if self.acks_held() {
            self.ack_committed.min(self.rcv_nxt)
        } else {
            self.rcv_nxt
        }
    }

    pub(super) fn finish(&mut self, now: Instant, s: &mut OutSegment) {
        s.ack = self.ack_to_send();
        s.window = self.window_field();
        if self.ts_ok {
            s.options.timestamps = Some((self.ts_now(now), self.ts_recent));
        }
        if self.sack_ok && self.recvq.has_ooo() {
            // Options space is 40 bytes: 12 for timestamps leaves 3 blocks
            // (RFC 2018 §3); and the blocks must not push a full segment over
            // the MSS.
            let max = if self.ts_ok { 3 } else { MAX_SACK_BLOCKS };
            let room = usize::from(self.mss).saturating_sub(s.payload_len());
            let fit = room.saturating_sub(2) / 8;
            self.recvq
                .sack_blocks(max.min(fit), &mut s.options.sack_blocks);
        }
        self.last_ack_sent = s.ack;
        if s.ack == self.rcv_nxt {
            self.held_since = None;
        }
        let edge = s.ack + (u32::from(s.window) << self.rcv_wscale);
        self.rcv_adv = self.rcv_adv.max(edge);
        self.ack_now = false;
        self.window_update = false;
        self.delack_at = None;
        self.unacked_bytes = 0;
        self.stats.segments_sent = self.stats.segments_sent.wrapping_add(1);
    }

    pub(super) fn syn_segment(&mut self, now: Instant) -> OutSegment {
        let mut s = self.bare_segment(self.iss);
        let active = self.state == State::SynSent;
        s.flags.syn = true;
        s.options.mss = Some(self.config.mss_for(self.tuple.local_ip()));
        if active {
            s.options.window_scale = Some(self.config.window_scale.min(14));
            s.options.sack_permitted = self.config.sack;
            if self.config.timestamps {
                s.options.timestamps = Some((self.ts_now(now), 0));
            }
        } else {
            s.flags.ack = true;
            s.ack = self.rcv_nxt;
            if self.ws_ok {
                s.options.window_scale = Some(self.rcv_wscale);
            }
            s.options.sack_permitted = self.sack_ok;
            if self.ts_ok {
                s.options.timestamps = Some((self.ts_now(now), self.ts_recent));
            }
        }
        // RFC 7323 §2.2: "The window field in a segment where the SYN bit is
        // set … MUST NOT be scaled".
        s.window = self.rcv_free().min(u32::from(u16::MAX)) as u16;
        if !active {
            self.last_ack_sent = self.rcv_nxt;
            self.rcv_adv = self.rcv_adv.max(self.rcv_nxt + u32::from(s.window));
        }
        self.syn_pending = false;
        if self.retries == 0 && self.rtt_timed.is_none() && !self.ts_ok {
            self.rtt_timed = Some((self.iss + 1, now));
        }
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if self.rto_at.is_none() {
            self.rto_at = Some(self.deadline(now, self.current_rto()));
        }
        self.stats.segments_sent = self.stats.segments_sent.wrapping_add(1);
        s
    }

    pub(super) fn probe_segment(&mut self, now: Instant) -> OutSegment {
        // ARCHITECTURE.md "Takeover" 4: one byte the client already
        // acknowledged (a pure ACK would be rate-limited or, failing PAWS,
        // dropped), ACK = the checkpoint's RCV.NXT (never a guess).
        let mut s = self.bare_segment(self.snd_una - 1);
        s.flags.ack = true;
        s.payload.push(Bytes::from_static(&[0]));
        self.finish(now, &mut s);
        if let Some(r) = self.restore.as_mut() {
            r.probes_sent += 1;
            r.last_probe_sent_at = Some(now);
        }
        s
    }

    /// The first unSACKed range at or after `rexmit_next` that the
    /// scoreboard deems lost (below the highest SACKed byte), or, without
    /// SACK information, the first unacknowledged segment once.
    pub(super) fn next_hole(&self) -> Option<(SeqNum, u32)> {
        let from = self.rexmit_next.max(self.snd_una);
        let mss = u32::from(self.mss);
        if self.sack_active() {
            let high = self.scoreboard.highest()?;
            let mut s = from;
            let mut limit = high;
            for &(l, r) in self.scoreboard.blocks() {
                if r.le(s) {
                    continue;
                }
                if l.le(s) {
                    s = r;
                    continue;
                }
                limit = l;
                break;
            }
            if s.ge(high) {
                return None;
            }
            let len = ((limit - s).max(0) as u32).min(mss);
            (len > 0).then_some((s, len))
        } else if from == self.snd_una && self.snd_una.lt(self.snd_max) {
            let len = ((self.snd_max - self.snd_una).max(0) as u32).min(mss);
            Some((self.snd_una, len))
        } else {
            None
        }
    }

    /// A segment covering `[seq, seq + len)` of what was already sent
    /// (retransmission), the FIN included when it falls inside.
    pub(super) fn data_segment(
        &mut self,
        now: Instant,
        seq: SeqNum,
        len: u32,
    ) -> Option<OutSegment> {
        let off = (seq - self.sendq_seq).max(0) as usize;
        let len = (len as usize).min(usize::from(self.mss) - self.sack_reserve());
        let mut s = self.bare_segment(seq);
        let n = self.sendq.slice_into(off, len, &mut s.payload);
        let fin = self.fin_queued && seq + n as u32 == self.fin_seq() && n < len;
        if n == 0 && !fin {
            return None;
        }
        s.flags.ack = true;
        s.flags.fin = fin;
        s.flags.psh = true;
        self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
        self.stats.bytes_sent += n as u64;
        self.finish(now, &mut s);
        if self.rto_at.is_none() {
            self.rto_at = Some(self.deadline(now, self.current_rto()));
        }
        Some(s)
    }

    /// RFC 9293 §3.8.6.1: "the sending TCP must regularly transmit at least
    /// one octet of new data (if available)" into a zero window. The byte is
    /// counted in neither `snd_nxt` nor `snd_max` (our ACKs keep a sequence
    /// number the peer accepts), so the persist timer, not the RTO, keeps
    /// probing until the window opens.
    pub(super) fn zero_window_probe(&mut self, now: Instant) -> Option<OutSegment> {
        let off = (self.snd_una - self.sendq_seq).max(0) as usize;
        let mut s = self.bare_segment(self.snd_una);
        let n = self.sendq.slice_into(off, 1, &mut s.payload);
        if n == 0 {
            return None;
        }
        s.flags.ack = true;
        self.zwp_sent = true;
        self.stats.bytes_sent += 1;
        self.finish(now, &mut s);
        Some(s)
    }

    /// New data (or data again after an RTO) at SND.NXT, within the peer's
    /// window and the congestion window, with the FIN when it fits.
    pub(super) fn next_data_segment(&mut self, now: Instant) -> Option<OutSegment> {
        if !matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        ) {
            return None;
        }
        if self.snd_nxt.lt(self.sendq_seq) {
            self.snd_nxt = self.sendq_seq;
        }
        // Resending after a timeout: skip what the peer SACKed, and stop
        // before the next SACKed block.
        let mut resend_limit = None;
        if self.snd_nxt.lt(self.snd_max) {
            for &(l, r) in self.scoreboard.blocks() {
                if r.le(self.snd_nxt) {
                    continue;
                }
                if l.le(self.snd_nxt) {
                    self.snd_nxt = r.min(self.snd_max);
                    continue;
                }
                resend_limit = Some((l - self.snd_nxt).max(0) as usize);
                break;
            }
        }
        let off = (self.snd_nxt - self.sendq_seq).max(0) as usize;
        let unsent = self.sendq.len().saturating_sub(off);
        let unsent = resend_limit.map_or(unsent, |l| unsent.min(l));
        let wnd_avail = ((self.snd_una + self.snd_wnd) - self.snd_nxt).max(0) as usize;
        // RFC 3042 limited transmit: on the first two duplicate ACKs, new
        // data may go out as long as "the amount of outstanding data remains
        // less than or equal to the congestion window plus 2*SMSS bytes", so
        // a small window still yields the third duplicate ACK.
        let limited = if self.in_recovery || self.snd_nxt.lt(self.snd_max) {
            0
        } else {
            self.dupacks.min(2) * u32::from(self.mss)
        };
        let cwnd_avail = self
            .cc
            .cwnd
            .saturating_add(limited)
            .saturating_sub(self.pipe()) as usize;
        let mss = usize::from(self.mss) - self.sack_reserve();
        let mut len = mss.min(unsent).min(wnd_avail).min(cwnd_avail);
        if len < mss.min(unsent) {
            // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a full segment, or
            // all that is queued; a part only to fill the peer's window when
            // nothing is in flight (else the ACKs will open more room).
            let idle = self.snd_nxt == self.snd_una;
            if !(idle && len == wnd_avail && len > 0) {
                len = 0;
            }
        }
        let fin = self.fin_queued && self.snd_nxt.le(self.fin_seq()) && {
            self.snd_nxt + len as u32 == self.fin_seq()
        };
        if len == 0 && !fin {
            if unsent > 0
                && wnd_avail == 0
                && self.snd_nxt == self.snd_una
                && self.rto_at.is_none()
                && self.persist_at.is_none()
            {
                self.persist_at = Some(self.deadline(now, self.current_rto()));
            }
            return None;
        }
        let seq = self.snd_nxt;
        let mut s = self.bare_segment(seq);
        let n = self.sendq.slice_into(off, len, &mut s.payload);
        s.flags.ack = true;
        s.flags.fin = fin;
        s.flags.psh = n > 0 && off + n == self.sendq.len();
        let seq_len = n as u32 + fin as u32;
        if seq.lt(self.snd_max) {
            self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
            if self.rtt_timed.is_some_and(|(end, _)| end.gt(seq)) {
                self.rtt_timed = None;
            }
        } else if !self.ts_ok && self.rtt_timed.is_none() && self.retries == 0 {
            self.rtt_timed = Some((seq + seq_len, now));
        }
        self.snd_nxt = seq + seq_len;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        self.stats.bytes_sent += n as u64;
        self.finish(now, &mut s);
        if self.rto_at.is_none() {
            self.rto_at = Some(self.deadline(now, self.current_rto()));
        }
        self.persist_at = None;
        Some(s)
    }

    /// Payload bytes to leave free for the SACK blocks we owe the peer, so
    /// data segments carry them (as Linux's tcp_current_mss does) and a
    /// peer that is also sending learns about its losses.
    pub(super) fn sack_reserve(&self) -> usize {
        if !(self.sack_ok && self.recvq.has_ooo()) {
            return 0;
        }
        let blocks = if self.ts_ok { 3 } else { MAX_SACK_BLOCKS };
        let n = self.recvq.ooo_runs().min(blocks);
        // Kind, length, 8 bytes per block, rounded to 4 with two NOPs.
        (2 + 8 * n + 3) & !3
    }

    /// Bytes in flight: RFC 6675 "pipe" during SACK recovery (outstanding
    /// minus SACKed), else SND.NXT - SND.UNA.
    pub(super) fn pipe(&self) -> u32 {
        let out = (self.snd_nxt - self.snd_una).max(0) as u32;
        if self.in_recovery && self.sack_active() {
            out.saturating_sub(self.scoreboard.sacked_bytes())
        } else {
            out
        }
    }
}
