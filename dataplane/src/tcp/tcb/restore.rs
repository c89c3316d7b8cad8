//! Takeover hooks (seed Fig. 6, ARCHITECTURE.md "Takeover"): the TCP block
//! of a checkpoint, the TCB rebuilt from one, and its unready life until
//! the client answers the probe. The probe schedule itself runs in
//! `timers.rs`.

use super::*;

/// The longest a client ahead of the checkpoint is waited for: below the
/// default idle limit (60 s), so that a real gap still ends with a RST,
/// not the idle close's FIN.
const MAX_GAP_WAIT: Duration = Duration::from_secs(45);

/// A per-connection share of `max`, from the connection's own numbers:
/// deterministic (tests replay it), different across connections.
pub(super) fn probe_jitter(export: &TcbExport, max: std::time::Duration) -> std::time::Duration {
    let max_us = max.as_micros() as u64;
    if max_us == 0 {
        return std::time::Duration::ZERO;
    }
    let mix = (u64::from(export.irs) ^ (u64::from(export.tuple.remote.port()) << 32))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    std::time::Duration::from_micros((mix >> 32) % max_us)
}

impl Tcb {
    // ------------------------------------------------------------------
    // Takeover hooks (issue 3 item 5, ARCHITECTURE.md "Takeover")
    // ------------------------------------------------------------------

    /// The TCP block of a checkpoint. `snd_nxt` is the highest sequence
    /// number sent (retransmissions do not lower it); `ts_last_sent` is our
    /// timestamp clock at `now`, at or above every TSval sent so far.
    pub fn export(&self, now: Instant) -> TcbExport {
        if let Some(r) = &self.restore {
            // Still unready: hand on what we were restored from, with our clock.
            let mut e = r.export;
            e.ts_last_sent = self.ts_now(now);
            return e;
        }
        TcbExport {
            tuple: self.tuple(),
            state: self.state,
            iss: self.iss.0,
            irs: self.irs.0,
            snd_una: self.snd_una.0,
            snd_nxt: self.snd_max.0,
            rcv_nxt: self.rcv_nxt.0,
            snd_wnd: self.snd_wnd,
            // What the client may have seen, which a budget under pressure
            // may have made larger than what is free now.
            rcv_wnd: self.rcv_accept_window(),
            mss: self.mss,
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            sack_permitted: self.sack_ok,
            timestamps: self.ts_ok,
            ts_recent: self.ts_recent,
            ts_last_sent: self.ts_now(now),
            // ACKs never pass the committed point while held, and the
            // application commits a point only once its checkpoint covers it.
            acks_covered: self.acks_held(),
        }
    }

    /// Rebuild a TCB from a checkpoint, in [`State::Unready`]: its first
    /// `poll_transmit` yields the probe (one already-acknowledged byte at
    /// `snd_una - 1`, ACK = the checkpoint's `rcv_nxt`, TSval continuing our
    /// clock from `ts_last_sent`). Probes are repeated after
    /// `restore_probe_interval`, doubling, `restore_probe_retries` times;
    /// then [`Event::NotReady`] and a RST.
    ///
    /// Connections whose checkpoint is in ESTABLISHED, CLOSE-WAIT,
    /// FIN-WAIT-1 or LAST-ACK resume (as ESTABLISHED or CLOSE-WAIT: the
    /// application re-sends the rest and closes again). One in FIN-WAIT-2
    /// is held as it was, without a probe or an event, until the client's
    /// FIN ends it. Any other state yields [`Event::NotReady`] at once,
    /// without a probe.
    pub fn restore(now: Instant, config: TcpConfig, export: &TcbExport) -> Tcb {
        let iss = SeqNum(export.iss);
        let mut t = Tcb::blank(
            now,
            Arc::new(config),
            export.tuple,
            State::Unready,
            iss,
            SeqNum(export.irs),
        );
        let una = SeqNum(export.snd_una);
        t.send_from(una);
        t.rcv_nxt = SeqNum(export.rcv_nxt);
        t.last_ack_sent = t.rcv_nxt;
        t.ack_committed = t.rcv_nxt;
        // The client may have seen this window: it must not shrink.
        t.rcv_adv = t.rcv_nxt + export.rcv_wnd;
        t.snd_wnd = export.snd_wnd;
        t.max_snd_wnd = export.snd_wnd;
        t.mss = export.mss.max(64);
        t.cc = NewReno::new(t.mss);
        t.ws_ok = export.snd_wscale > 0 || export.rcv_wscale > 0;
        t.snd_wscale = export.snd_wscale.min(14);
        t.rcv_wscale = export.rcv_wscale.min(14);
        t.sack_ok = export.sack_permitted;
        t.ts_ok = export.timestamps;
        t.ts_recent = export.ts_recent;
        t.ts_epoch = now;
        t.ts_recent_at = t.tick(now);
        t.ts_base = export.ts_last_sent;
        t.fin_received = matches!(export.state, State::CloseWait | State::LastAck);
        let resumable = matches!(
            export.state,
            State::Established | State::CloseWait | State::FinWait1 | State::LastAck
        );
        if resumable {
            t.restore = Some(Box::new(Restore {
                export: *export,
                probes_sent: 0,
                probe_at: now + t.config.restore_probe_interval,
                last_probe_sent_at: None,
            }));
            t.probe_pending = true;
        } else if export.state == State::FinWait2 {
            // Everything we sent, our FIN included, was acknowledged, but
            // the client has not closed: it may still be reading what its
            // kernel holds (a rate-limited curl after `Connection: close`)
            // and its window updates must not meet a RST. Hold the
            // connection quietly until its FIN (TIME-WAIT) or the idle
            // limit: no probe, nothing to resume, no event.
            let end = SeqNum(export.snd_nxt);
            t.send_from(end);
            t.fin_queued = true;
            t.state = State::FinWait2;
        } else {
            t.push_event(Event::NotReady);
            t.enter_closed();
        }
        t
    }

    /// True when the connection rests with nothing of its own beyond its
    /// export: established, every byte sent acknowledged and none queued,
    /// nothing received unread or out of order, no FIN either way, no ACK
    /// or window update owed, no timer but the idle one, no event waiting.
    /// Such a TCB is rebuilt exactly from [`Tcb::export`] (the client's
    /// next segment then synchronises it without a probe), so a box may
    /// drop it and keep only its checkpoint (parking, issue 19).
    pub fn quiescent(&self) -> bool {
        self.state == State::Established
            && self.restore.is_none()
            && self.gap.is_none()
            && self.snd_una == self.snd_nxt
            && self.snd_nxt == self.snd_max
            && self.sendq.len() == 0
            && !self.fin_queued
            && !self.fin_received
            && self.recvq.len() == 0
            && !self.recvq.has_ooo()
            && self.ooo_fin.is_none()
            && self.last_ack_sent == self.rcv_nxt
            && !(self.ack_now
                || self.window_update
                || self.syn_pending
                || self.probe_pending
                || self.zwp_pending
                || self.zwp_sent)
            && self.rst.is_none()
            && self.dupacks_owed == 0
            && self.rto_at.is_none()
            && self.delack_at.is_none()
            && self.persist_at.is_none()
            && self.events.is_empty()
    }

    /// The answer to a takeover probe (ARCHITECTURE.md "Takeover" 5-6).
    pub(super) fn on_segment_unready(&mut self, now: Instant, seg: &Segment<'_>) {
        let Some(export) = self.restore.as_ref().map(|r| r.export) else {
            return;
        };
        self.last_rx = self.tick(now);
        if seg.flags.rst {
            // RFC 5961 §3.2: only an exact RST ends the connection.
            if seg.seq == self.rcv_nxt {
                self.on_reset_received();
            }
            return;
        }
        if seg.flags.syn || !seg.flags.ack {
            return;
        }
        // Both FINs past the record: the dead box and the client closed the
        // connection after its last checkpoint (a replica a few
        // milliseconds behind), and the client, in TIME-WAIT, acknowledges
        // a FIN this record never sent, from one past the last sequence it
        // knows. Nothing to resume and nothing to reset: end quietly (the
        // gap deadline would reset a client that owes nothing, 5 s later).
        if seg.seq_len() == 0
            && seg.ack == SeqNum(export.snd_nxt) + 1
            && seg.seq == self.rcv_nxt + 1
        {
            self.enter_closed();
            return;
        }
        // The client's sequence beyond the checkpoint: it sent data (or a
        // FIN) we never saw. Bytes the dead box never acknowledged are
        // still in the client's send queue and come again from RCV.NXT;
        // only bytes it acknowledged without a checkpoint are lost for
        // good. Go on, prompt the retransmission (three duplicate ACKs),
        // and tell the application only once the client's first byte from
        // RCV.NXT arrives (`check_gap`); a deadline ends a real gap
        // (`on_gap_timeout`).
        let ahead = seg.seq.gt(self.rcv_nxt);
        let gap_wait = self.gap_wait(&export, seg);
        // Sync to the greater of the client's ACK and the checkpoint.
        let una = seg.ack.max(SeqNum(export.snd_una));
        self.send_from(una);
        if self.ts_ok {
            if let Some((tsval, tsecr)) = seg.options.timestamps {
                self.ts_recent = tsval;
                self.ts_recent_at = self.tick(now);
                // TSecr is the TS.Recent the client holds: our clock must
                // not be below it or PAWS drops what we send next.
                let cur = self.ts_now(now);
                let ahead = tsecr.wrapping_sub(cur) as i32;
                if ahead > 0 {
                    self.ts_base = self.ts_base.wrapping_add(ahead as u32);
                }
            }
        }
        self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
        self.state = if self.fin_received {
            State::CloseWait
        } else {
            State::Established
        };
        self.sample_probe_round_trip(now);
        if seg.seq.lt(self.rcv_nxt) && seg.seq_len() == 0 {
            // Below the window (a keep-alive probe, RFC 9293 §3.8.4): the
            // client wants an ACK, or it gives the connection up.
            self.ack_now = true;
        }
        self.restore = None;
        self.restored = true;
        self.accepted = self.accepted.wrapping_add(1);
        self.probe_pending = false;
        if ahead {
            self.gap = Some(Box::new(Gap {
                from: self.rcv_nxt,
                deadline: Some(now + gap_wait),
                ..Gap::default()
            }));
            self.dupacks_owed = DUP_THRESH as u8;
        } else {
            self.push_event(Event::Ready {
                snd_una: una,
                rcv_nxt: self.rcv_nxt,
            });
        }
        // The answer may carry data (a client retransmitting what the
        // checkpoint did not cover): process it as any segment.
        if seg.seq_len() > 0 {
            self.on_segment(now, seg);
        }
    }

    /// Every send pointer at `seq`: nothing in flight, the next byte sent
    /// (new or again) is `seq`.
    fn send_from(&mut self, seq: SeqNum) {
        self.snd_una = seq;
        self.snd_nxt = seq;
        self.snd_max = seq;
        self.sendq_seq = seq;
        self.recover = seq;
        self.rexmit_next = seq;
    }

    /// The probe's round trip as the first RTT sample (RFC 6298 §2.2): a
    /// restored connection's estimator starts empty, and its first loss
    /// would otherwise wait out `initial_rto` (1 s) instead of about the
    /// path's RTO. Only when one probe went out (Karn, RFC 6298 §3: the
    /// answer to one of several is ambiguous). Not from TSecr: the client
    /// answers an old byte without taking its TSval (RFC 7323 §4.3).
    fn sample_probe_round_trip(&mut self, now: Instant) {
        let Some(sent) = self
            .restore
            .as_ref()
            .filter(|r| r.probes_sent == 1)
            .and_then(|r| r.last_probe_sent_at)
        else {
            return;
        };
        let us = now.saturating_duration_since(sent).as_micros() as u64;
        if us <= self.config.max_rto.as_micros() as u64 {
            self.update_rtt(us);
        }
    }

    /// The client's retransmission reached us from the checkpoint's
    /// RCV.NXT: the connection is ready, with what it got.
    pub(super) fn check_gap(&mut self) {
        let Some(from) = self.gap.as_ref().map(|g| g.from) else {
            return;
        };
        // A client sends nothing below its SND.UNA: bytes from the
        // checkpoint's RCV.NXT coming again prove the dead box never
        // acknowledged beyond it, so every byte up to what the client
        // showed is in its send queue. Ready now: the application reads
        // (and commits) what comes, and the client, whose congestion
        // window an RTO shrank, gets the ACKs it needs to send the rest.
        if !self.rcv_nxt.gt(from) {
            return;
        }
        let Some(g) = self.gap.take() else {
            return;
        };
        self.push_event(Event::Ready {
            snd_una: self.snd_una,
            rcv_nxt: g.from,
        });
        if g.readable {
            self.push_event(Event::Readable);
        }
        if g.peer_closed {
            self.push_event(Event::PeerClosed);
        }
    }

    /// How long a client ahead of the checkpoint is given to send its
    /// bytes again: `restore_gap_timeout`, or twice as long as the client
    /// may have been retransmitting into the dead box if that is longer
    /// (capped at [`MAX_GAP_WAIT`]). A Linux client's RTO doubles: after
    /// retransmitting for 20 s its next try comes ~20 s later, and one
    /// more lost doubles that. Its silence is read from its TSval against
    /// the last one the dead box recorded (RFC 7323 clocks tick 1 ms to
    /// 1 s; Linux's 1 ms: a slower clock only shortens the wait back to
    /// the timeout). Seen in a capture: a connection restored 21 s after
    /// the kill (300,000 taken over, BENCHMARKS.md "Open findings") was
    /// reset 5 s later; its backed-off client's next retransmission was,
    /// by that doubling, still 10-15 s away (inferred: the RST came first,
    /// so the capture could not show it).
    fn gap_wait(&self, export: &TcbExport, seg: &Segment<'_>) -> Duration {
        let silence_ms = seg
            .options
            .timestamps
            .filter(|_| self.ts_ok)
            .and_then(|(tsval, _)| u64::try_from(tsval.wrapping_sub(export.ts_recent) as i32).ok())
            .unwrap_or(0);
        let backed_off = Duration::from_millis(silence_ms.saturating_mul(2)).min(MAX_GAP_WAIT);
        self.config.restore_gap_timeout.max(backed_off)
    }

    /// The client never filled the gap: the dead box acknowledged bytes no
    /// checkpoint holds. Reset at the client's RCV.NXT (everything we sent
    /// is what it acknowledged: the application has sent nothing yet) and
    /// tell the application "not ready", as an unanswered probe does.
    pub(super) fn on_gap_timeout(&mut self) {
        self.gap = None;
        self.rst = Some(RstSeg {
            seq: self.snd_max,
            ack: None,
        });
        self.push_event(Event::NotReady);
        self.enter_closed();
    }
}
