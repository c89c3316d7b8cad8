//! Inputs: a segment arrives (RFC 9293 §3.10.7, in its order).

use super::*;

impl Tcb {
    // ------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------

    /// A segment for this connection arrived (checksum already verified).
    /// RFC 9293 §3.10.7.
    pub fn on_segment(&mut self, now: Instant, seg: &Segment<'_>) {
        self.rebase_clock(now);
        self.stats.segments_received = self.stats.segments_received.wrapping_add(1);
        match self.state {
            State::Closed => return,
            State::SynSent => return self.on_segment_syn_sent(now, seg),
            State::Unready => return self.on_segment_unready(now, seg),
            _ => {}
        }

        // A retransmitted SYN in SYN-RECEIVED means our SYN-ACK was lost:
        // answer with the SYN-ACK again rather than a bare ACK.
        if self.state == State::SynReceived
            && seg.flags.syn
            && !seg.flags.ack
            && !seg.flags.rst
            && seg.seq == self.irs
        {
            self.syn_pending = true;
            return;
        }

        // RFC 7323 §5.3 R1 (PAWS): "If there is a Timestamps option in the
        // arriving segment, SEG.TSval < TS.Recent, TS.Recent is valid, and
        // if the RST bit is not set, then treat the arriving segment as not
        // acceptable: Send an acknowledgment in reply … and drop."
        if self.ts_ok && !seg.flags.rst {
            if let Some((tsval, _)) = seg.options.timestamps {
                if (tsval.wrapping_sub(self.ts_recent) as i32) < 0
                    && self.ts_recent_at.elapsed(self.ts_epoch, now) < PAWS_IDLE
                {
                    self.stats.dropped = self.stats.dropped.wrapping_add(1);
                    self.oow_reply(now, seg);
                    return;
                }
            }
        }

        // First: sequence number (RFC 9293 §3.10.7.4, the four cases).
        if !self.acceptable(seg) {
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
            if !seg.flags.rst {
                // "If an incoming segment is not acceptable, an
                // acknowledgment should be sent in reply (unless the RST bit
                // is set)". In TIME-WAIT a retransmitted FIN also restarts
                // the 2 MSL timeout.
                self.release_on_retransmit(now, seg);
                self.oow_reply(now, seg);
                if self.state == State::TimeWait && seg.flags.fin {
                    self.timewait_at = Some(self.deadline(now, self.config.time_wait));
                }
            }
            return;
        }
        // Only a segment that passed the sequence check says the peer of
        // this connection is alive: SYNs of a new incarnation on the same
        // 4-tuple, blind RSTs and stale duplicates must not keep a
        // connection whose client is gone from ever going idle.
        self.last_rx = self.tick(now);
        self.accepted = self.accepted.wrapping_add(1);

        // Second: RST (RFC 5961 §3.2): exactly at RCV.NXT resets; anywhere
        // else in the window earns a challenge ACK.
        if seg.flags.rst {
            // RFC 1337 §3 (TIME-WAIT Assassination, fix F1): "Ignore RST
            // segments in TIME-WAIT state." A RST cannot tell an old
            // duplicate or a forged one from a real one here, and closing
            // early would let stale segments of this incarnation reach the
            // next one on the same 4-tuple. The 2 MSL timer closes it.
            if self.state == State::TimeWait {
                self.stats.dropped = self.stats.dropped.wrapping_add(1);
                return;
            }
            if seg.seq == self.rcv_nxt {
                self.on_reset_received();
            } else {
                self.challenge_ack(now, seg);
            }
            return;
        }

        // Fourth: SYN in a synchronized state (RFC 5961 §4.2, RFC 9293
        // §3.10.7.4 "fourth"): challenge ACK, drop.
        if seg.flags.syn {
            self.challenge_ack(now, seg);
            return;
        }

        // Fifth: "if the ACK bit is off, drop the segment and return".
        if !seg.flags.ack {
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
            return;
        }

        // RFC 7323 §4.3 (2): TS.Recent follows the segment that the next ACK
        // will acknowledge ("SEG.SEQ <= Last.ACK.sent").
        if self.ts_ok {
            if let Some((tsval, _)) = seg.options.timestamps {
                if seg.seq.le(self.last_ack_sent)
                    && (tsval.wrapping_sub(self.ts_recent) as i32) >= 0
                {
                    self.ts_recent = tsval;
                    self.ts_recent_at = self.tick(now);
                }
            }
        }

        if !self.process_ack(now, seg) {
            return;
        }

        // Seventh: segment text, in the states that still receive.
        if matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            self.process_data(now, seg);
        } else if self.state == State::TimeWait && seg.flags.fin {
            // Eighth, TIME-WAIT: "Remain in the TIME-WAIT state. Restart the
            // 2 MSL time-wait timeout." (and acknowledge it).
            self.ack_now = true;
            self.timewait_at = Some(self.deadline(now, self.config.time_wait));
        }
    }

    /// RFC 9293 §3.10.7.4 "first", the table of four cases, with the
    /// allowance for ACKs and RSTs when our window is zero.
    pub(super) fn acceptable(&self, seg: &Segment<'_>) -> bool {
        let wnd = self.rcv_accept_window();
        let len = seg.seq_len();
        let nxt = self.rcv_nxt;
        let in_win = |s: SeqNum| s.ge(nxt) && s.lt(nxt + wnd);
        match (len, wnd) {
            (0, 0) => seg.seq == nxt,
            (0, _) => in_win(seg.seq),
            // "special allowance should be made to accept valid ACKs, URGs,
            // and RSTs": the text is trimmed away later.
            (_, 0) => seg.seq == nxt,
            (_, _) => in_win(seg.seq) || in_win(seg.seq + (len - 1)),
        }
    }

    /// The client sent again bytes whose ACK we held for
    /// [`HOLD_PATIENCE`]: it may be waiting for that ACK to send the rest
    /// (a request larger than its congestion window after a loss), and
    /// holding on could stall it for good. Acknowledge what we have (the
    /// hold goes on from there), and leave a takeover in the meantime to
    /// the survivor's gap deadline. Never under `ack_after_commit`, which
    /// promises no ACK before the commit.
    pub(super) fn release_on_retransmit(&mut self, now: Instant, seg: &Segment<'_>) {
        if self.config.ack_after_commit || !self.acks_held() || seg.payload.is_empty() {
            return;
        }
        let held_ms = self.held_since.map(|t| self.ts_now(now).wrapping_sub(t));
        let patient = held_ms.is_some_and(|ms| u128::from(ms) >= HOLD_PATIENCE.as_millis());
        if !patient {
            return;
        }
        let end = seg.seq + seg.payload.len() as u32;
        if end.gt(self.ack_to_send()) && seg.seq.lt(self.rcv_nxt) {
            self.ack_committed = self.rcv_nxt;
        }
    }

    pub(super) fn on_reset_received(&mut self) {
        self.push_event(Event::Reset);
        self.enter_closed();
    }

    /// RFC 5961 §3.2/§4.2: an ACK carrying our current numbers, so a peer
    /// that really lost its state answers with an exact RST.
    pub(super) fn challenge_ack(&mut self, now: Instant, seg: &Segment<'_>) {
        if self.oow_reply(now, seg) {
            self.stats.challenge_acks = self.stats.challenge_acks.wrapping_add(1);
        }
    }

    /// An ACK in reply to an unacceptable segment, rate-limited as Linux
    /// does (tcp_oow_rate_limited, RFC 5961 §7): segments without data get
    /// at most one reply per `invalid_ratelimit`, so two stacks that
    /// disagree about sequence numbers cannot ACK each other forever, and a
    /// blind attacker gets no amplification. Segments carrying data (or a
    /// FIN) are always answered. True when a reply was scheduled.
    pub(super) fn oow_reply(&mut self, now: Instant, seg: &Segment<'_>) -> bool {
        let pure = seg.payload.is_empty() && !seg.flags.fin;
        if pure {
            if let Some(t) = self.last_oow_reply {
                if t.elapsed(self.ts_epoch, now) < self.config.invalid_ratelimit {
                    return false;
                }
            }
            self.last_oow_reply = Some(self.tick(now));
        }
        self.ack_now = true;
        self.stats.oow_acks = self.stats.oow_acks.wrapping_add(1);
        true
    }

    /// RFC 9293 §3.10.7.4 "fifth": the ACK field. Returns false when the
    /// segment must be dropped now.
    pub(super) fn process_ack(&mut self, now: Instant, seg: &Segment<'_>) -> bool {
        let mut ack = seg.ack;
        if self.state == State::SynReceived {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED …
            // If the segment acknowledgment is not acceptable, form a reset
            // segment <SEQ=SEG.ACK><CTL=RST> and send it."
            if ack.gt(self.snd_una) && ack.le(self.snd_max) {
                // RFC 6298 §5.7: "If the timer expires awaiting the ACK of a
                // SYN segment and the TCP implementation is using an RTO
                // less than 3 seconds, the RTO MUST be re-initialized to 3
                // seconds when data transmission begins" (a timestamp echo
                // below may still give a real sample).
                if self.retries > 0 && !self.rtt.has_sample() {
                    self.rtt.raise_rto_to(Duration::from_secs(3));
                }
                // A close() during the handshake takes effect now.
                self.state = if self.fin_queued {
                    State::FinWait1
                } else {
                    State::Established
                };
                self.push_event(Event::Established);
                self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = ack;
            } else {
                self.rst = Some(RstSeg {
                    seq: ack,
                    ack: None,
                });
                return false;
            }
        }

        // RFC 5961 §5.2: an ACK for data we never sent is answered with an
        // ACK and dropped; one too far in the past gets a challenge ACK.
        let limit = if self.zwp_sent {
            self.snd_max.max(self.snd_una + 1)
        } else {
            self.snd_max
        };
        if ack.gt(limit) {
            let queued_end = self.sendq_seq + self.sendq.len() as u32;
            if self.restored {
                // After a takeover the client may hold data the dead box
                // sent beyond what we re-sent (its out-of-order queue fills
                // the hole we just repaired): the same object bytes at the
                // same sequence numbers. Count what we have queued as
                // acknowledged; re-sending the rest is harmless.
                ack = ack.min(self.snd_max.max(queued_end));
            } else {
                self.stats.dropped = self.stats.dropped.wrapping_add(1);
                self.oow_reply(now, seg);
                return false;
            }
        }
        let max_wnd = self.max_snd_wnd.max(u32::from(self.mss));
        if ack.lt(self.snd_una - max_wnd) {
            self.challenge_ack(now, seg);
            return false;
        }

        let old_wnd = self.snd_wnd;
        let acked = ack - self.snd_una;
        let mut new_sack = false;
        if self.sack_ok {
            for (l, r) in seg.options.sack_blocks.iter().flatten() {
                // Blocks at or below SND.UNA are D-SACKs (RFC 2883): ignored.
                if r.gt(self.snd_una.max(ack)) && r.le(self.snd_max) {
                    new_sack |= self.scoreboard.insert(l.max(self.snd_una.max(ack)), *r);
                }
            }
        }

        if acked > 0 {
            self.on_new_ack(now, seg, ack, acked as u32);
        } else if acked == 0 && self.snd_max.gt(self.snd_una) {
            // With SACK, RFC 6675 §2: a duplicate is an ACK that "carries
            // new SACK information" while data is outstanding, data or not
            // (so losses are found when both sides send). Without SACK,
            // RFC 5681 §2: no data, no SYN/FIN, the same window.
            let dup = if self.sack_ok {
                new_sack
            } else {
                seg.payload.is_empty()
                    && !seg.flags.fin
                    && u32::from(seg.window) << self.snd_wscale == old_wnd
            };
            if dup {
                self.on_dupack();
            }
        }

        // Window update: "If SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and
        // SND.WL2 =< SEG.ACK), set SND.WND <- SEG.WND …"
        if self.snd_wl1.lt(seg.seq) || (self.snd_wl1 == seg.seq && self.snd_wl2.le(ack)) {
            self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            if self.snd_wnd > 0 {
                self.persist_at = None;
                self.persist_probes = 0;
            }
        }

        // Our FIN acknowledged?
        let fin_acked = self.fin_queued && self.snd_una.gt(self.fin_seq());
        match self.state {
            State::FinWait1 if fin_acked => self.state = State::FinWait2,
            State::Closing if fin_acked => self.enter_time_wait(now),
            State::LastAck if fin_acked => {
                self.enter_closed();
                return false;
            }
            _ => {}
        }
        true
    }

    pub(super) fn fin_seq(&self) -> SeqNum {
        self.sendq_seq + self.sendq.len() as u32
    }

    pub(super) fn on_new_ack(&mut self, now: Instant, seg: &Segment<'_>, ack: SeqNum, acked: u32) {
        let data_acked = if ack.gt(self.sendq_seq) {
            ((ack - self.sendq_seq) as usize).min(self.sendq.len())
        } else {
            0
        };
        self.sendq.consume(data_acked, &self.config.buffer_budget);
        self.sendq_seq += data_acked as u32;
        self.stats.bytes_acked += data_acked as u64;
        let flight_before = (self.snd_max - self.snd_una).max(0) as u32;
        self.snd_una = ack;
        self.zwp_sent = false;
        if self.snd_nxt.lt(ack) {
            self.snd_nxt = ack;
        }
        if self.snd_max.lt(ack) {
            // The zero-window probe byte was taken.
            self.snd_max = ack;
        }

        // RTT sample: RFC 7323 §4.2 from TSecr, else Karn's timed segment
        // (RFC 6298 §3: never from a retransmitted one).
        let mut sample = None;
        if self.ts_ok {
            if let Some((_, tsecr)) = seg.options.timestamps {
                let ms = self.ts_now(now).wrapping_sub(tsecr);
                if (ms as i32) >= 0
                    && u64::from(ms) * 1000 <= self.config.max_rto.as_micros() as u64
                {
                    sample = Some(u64::from(ms) * 1000);
                }
            }
        } else if let Some((end, t0)) = self.rtt_timed {
            if ack.ge(end) {
                sample = Some(now.saturating_duration_since(t0).as_micros() as u64);
                self.rtt_timed = None;
            }
        }
        if let Some(us) = sample {
            self.update_rtt(us);
        }
        // RFC 6298 §5.7-ish: a new ACK ends the back-off.
        self.backoff = 0;
        self.retries = 0;

        if self.in_recovery {
            if ack.ge(self.recover) {
                // RFC 6582 §3.2 step 3: full acknowledgment.
                self.in_recovery = false;
                self.dupacks = 0;
                let flight = (self.snd_max - self.snd_una).max(0) as u32;
                self.cc.on_exit_recovery(flight);
            } else {
                // Partial acknowledgment: retransmit the first unacknowledged
                // segment (RFC 6582 step 3; RFC 6675 keeps going by NextSeg).
                self.scoreboard.trim_below(self.snd_una);
                if self.sack_active() {
                    // Holes already retransmitted stay behind the cursor.
                    self.rexmit_next = self.rexmit_next.max(self.snd_una);
                } else {
                    self.cc.on_partial_ack(acked);
                    self.rexmit_next = self.snd_una;
                }
                self.rexmit_quota += 1;
            }
        } else {
            self.dupacks = 0;
            // Only grow cwnd when the window was actually in use
            // (RFC 7661's concern, simplified): bytes acked of data.
            if flight_before > 0 {
                self.cc.on_ack(acked);
            }
        }
        self.scoreboard.trim_below(self.snd_una);

        // RFC 6298 §5.2/5.3.
        if self.snd_una.ge(self.snd_max) {
            self.rto_at = None;
        } else {
            self.rto_at = Some(self.deadline(now, self.current_rto()));
        }
        if data_acked > 0 && self.state.can_send() && !self.fin_queued {
            self.push_event(Event::Writable);
        }
    }

    pub(super) fn sack_active(&self) -> bool {
        self.sack_ok && !self.scoreboard.is_empty()
    }

    pub(super) fn on_dupack(&mut self) {
        self.dupacks += 1;
        if self.in_recovery {
            if self.sack_active() {
                // RFC 6675 §5 (C): each ACK lets NextSeg send one more.
                self.rexmit_quota += 1;
            } else {
                self.cc.on_dupack_in_recovery();
            }
        } else if (self.dupacks >= DUP_THRESH
            || self.scoreboard.sacked_bytes() > (DUP_THRESH - 1) * u32::from(self.mss))
            && self.snd_una.ge(self.recover)
        {
            // RFC 5681 §3.2 steps 2-3, RFC 6582 §3.2 step 2 (only once per
            // window: SND.UNA must be past `recover`). RFC 6675 §5 also
            // enters recovery when IsLost(SND.UNA): "more than (DupThresh -
            // 1) * SMSS bytes with sequence numbers greater than SeqNum have
            // been SACKed" (ACKs get coalesced; bytes do not).
            self.in_recovery = true;
            self.recover = self.snd_max;
            let flight = (self.snd_max - self.snd_una).max(0) as u32;
            self.cc.on_enter_recovery(flight, !self.sack_active());
            self.rexmit_next = self.snd_una;
            self.rexmit_quota = 1;
            self.rtt_timed = None;
            self.stats.fast_retransmits = self.stats.fast_retransmits.wrapping_add(1);
        }
    }

    /// RFC 9293 §3.10.7.4 "seventh" and "eighth": queue the text, handle FIN.
    pub(super) fn process_data(&mut self, now: Instant, seg: &Segment<'_>) {
        let mut seq = seg.seq;
        let mut data = seg.payload;
        let mut fin = seg.flags.fin;
        // Trim what we already have.
        if seq.lt(self.rcv_nxt) {
            let skip = (self.rcv_nxt - seq) as u32 as usize;
            if skip > data.len() {
                // Even the FIN (at seq + len) is old.
                data = &[];
                fin = false;
            } else {
                data = data.get(skip..).unwrap_or(&[]);
            }
            seq = self.rcv_nxt;
        }
        // Trim what falls beyond the window (and the FIN with it).
        let wnd = self.rcv_accept_window();
        let room = ((self.rcv_nxt + wnd) - seq).max(0) as usize;
        if data.len() > room {
            data = data.get(..room).unwrap_or(&[]);
            fin = false;
            // Tell the peer at once where our window ends.
            self.ack_now = true;
        }
        if data.is_empty() && !fin {
            return;
        }
        self.rcv_mss_seen = self.rcv_mss_seen.max(data.len() as u32);

        if seq == self.rcv_nxt {
            let had_ooo = self.recvq.has_ooo();
            let before = self.recvq.len();
            if !data.is_empty() {
                self.recvq.push_in_order(data, &self.config.buffer_budget);
                self.rcv_nxt += data.len() as u32;
            }
            self.rcv_nxt = self
                .recvq
                .drain_ooo(self.rcv_nxt, &self.config.buffer_budget);
            let delivered = self.recvq.len() - before;
            self.stats.bytes_received += delivered as u64;
            self.unacked_bytes = self.unacked_bytes.saturating_add(delivered as u32);
            if delivered > 0 {
                self.push_event(Event::Readable);
            }
            if had_ooo {
                // RFC 5681 §4.2: ACK at once when a segment fills a hole.
                self.ack_now = true;
            }
            let fin_here = if fin {
                Some(seq + data.len() as u32)
            } else {
                self.ooo_fin
            };
            if fin_here == Some(self.rcv_nxt) {
                self.on_fin(now);
            } else {
                // RFC 5681 §4.2: "an ACK SHOULD be generated for at least
                // every second full-sized segment".
                let full = self.unacked_bytes
                    >= ACK_EVERY_SEGMENTS * self.rcv_mss_seen.max(u32::from(DEFAULT_PEER_MSS));
                self.schedule_ack(now, full);
            }
            self.check_gap();
        } else {
            // Out of order: hold it and send an immediate duplicate ACK
            // (RFC 5681 §4.2) with SACK blocks (RFC 2018 §4).
            if !self.recvq.push_ooo(seq, data, &self.config.buffer_budget) {
                self.stats.dropped = self.stats.dropped.wrapping_add(1);
            }
            if fin {
                self.ooo_fin = Some(seq + data.len() as u32);
            }
            self.ack_now = true;
        }
    }

    /// RFC 9293 §3.10.7.4 "eighth": the FIN bit.
    pub(super) fn on_fin(&mut self, now: Instant) {
        self.rcv_nxt += 1;
        self.ooo_fin = None;
        self.fin_received = true;
        self.push_event(Event::PeerClosed);
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            // Our FIN not yet acknowledged (else we would be in FIN-WAIT-2).
            State::FinWait1 => self.state = State::Closing,
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
        // After the state change: a connection closed both ways holds
        // nothing (see `acks_held`).
        self.schedule_ack(now, true);
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.timewait_at = Some(self.deadline(now, self.config.time_wait));
        self.rto_at = None;
        self.persist_at = None;
        self.delack_at = None;
    }

    pub(super) fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.rto_at = None;
        self.persist_at = None;
        self.delack_at = None;
        self.timewait_at = None;
        self.restore = None;
        self.gap = None;
        self.dupacks_owed = 0;
        self.syn_pending = false;
        self.probe_pending = false;
        self.zwp_pending = false;
        self.ack_now = false;
        self.window_update = false;
        self.push_event(Event::Closed);
    }

    /// RFC 9293 §3.10.7.3: SYN-SENT (active open, tests and tools).
    pub(super) fn on_segment_syn_sent(&mut self, now: Instant, seg: &Segment<'_>) {
        if seg.flags.ack && (seg.ack.le(self.iss) || seg.ack.gt(self.snd_max)) {
            // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless
            // the RST bit is set) <SEQ=SEG.ACK><CTL=RST>".
            if !seg.flags.rst {
                self.rst = Some(RstSeg {
                    seq: seg.ack,
                    ack: None,
                });
            }
            return;
        }
        if seg.flags.rst {
            if seg.flags.ack {
                self.on_reset_received();
            }
            return;
        }
        // Simultaneous open is not supported: only a SYN-ACK moves us on.
        if !seg.flags.syn || !seg.flags.ack {
            return;
        }
        self.last_rx = self.tick(now);
        self.accepted = self.accepted.wrapping_add(1);
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.ack_committed = self.rcv_nxt;
        self.negotiate(now, &seg.options);
        self.snd_una = seg.ack;
        self.snd_nxt = self.snd_nxt.max(seg.ack);
        self.recover = seg.ack;
        self.snd_wnd = u32::from(seg.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
        if let Some((_, t0)) = self.rtt_timed.take() {
            self.update_rtt(now.saturating_duration_since(t0).as_micros() as u64);
        }
        self.rto_at = None;
        self.retries = 0;
        self.backoff = 0;
        self.syn_pending = false;
        self.state = State::Established;
        self.push_event(Event::Established);
        self.ack_now = true;
    }
}
