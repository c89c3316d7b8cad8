//! Inputs: time passes (RFC 6298 retransmission, persist, TIME-WAIT, idle,
//! and the takeover probe schedule).

use super::restore::probe_jitter;
use super::*;

impl Tcb {
    /// Call when `now >= poll_timeout()`.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.rebase_clock(now);
        if let Some(r) = self.restore.as_mut() {
            if now >= r.probe_at {
                if r.probes_sent > self.config.restore_probe_retries {
                    // Give up: the client never answered.
                    self.rst = Some(RstSeg {
                        seq: SeqNum(r.export.snd_nxt),
                        ack: Some(self.rcv_nxt),
                    });
                    self.push_event(Event::NotReady);
                    self.enter_closed();
                } else {
                    let shift = r
                        .probes_sent
                        .saturating_sub(FLAT_PROBE_RETRIES)
                        .min(MAX_BACKOFF);
                    // Thousands of connections restored at one instant
                    // would probe in lockstep and overflow rings on both
                    // sides again at every retry: spread each retry over
                    // up to half an interval more, by a per-connection
                    // amount.
                    let base = self.config.restore_probe_interval * (1u32 << shift);
                    r.probe_at = now + base + probe_jitter(&r.export, base / 2);
                    self.probe_pending = true;
                }
            }
            return;
        }
        if self.timewait_at.is_some() {
            if self.due(self.timewait_at, now) {
                self.enter_closed();
            }
            return;
        }
        if self
            .gap
            .as_ref()
            .and_then(|g| g.deadline)
            .is_some_and(|t| now >= t)
        {
            self.on_gap_timeout();
            return;
        }
        if self.idle_deadline().is_some_and(|t| now >= t) {
            self.on_idle();
            return;
        }
        if self.due(self.rto_at, now) {
            self.on_rto(now);
            if self.state == State::Closed {
                return;
            }
        }
        if self.due(self.persist_at, now) {
            self.on_persist(now);
            if self.state == State::Closed {
                return;
            }
        }
        if self.due(self.delack_at, now) {
            self.delack_at = None;
            self.schedule_ack(now, true);
        }
    }

    /// When the idle rule applies: nothing received for
    /// [`TcpConfig::idle_timeout`] while nothing of ours is in flight (data
    /// or a FIN in flight, or a zero window, leave a silent peer to the
    /// retransmission and persist limits, RFC 9293 §3.8.3), in ESTABLISHED,
    /// CLOSE-WAIT or FIN-WAIT-2.
    pub(super) fn idle_deadline(&self) -> Option<Instant> {
        let applies = match self.state {
            State::Established | State::CloseWait => {
                self.rto_at.is_none() && self.persist_at.is_none()
            }
            State::FinWait2 => true,
            _ => false,
        };
        applies.then(|| self.last_rx.instant(self.ts_epoch) + self.config.idle_timeout)
    }

    /// The idle timer ran out. Closing for idleness is the orderly close of
    /// RFC 9293 §3.10.4 (a FIN after whatever is queued), never a RST: a
    /// client that merely paused longer than we wait sees an end of stream
    /// it can retry on (RFC 9112 §9.3.1), not an error. In FIN-WAIT-2 our
    /// FIN is already acknowledged and the peer never sent its own: drop
    /// the connection silently, as Linux does after `tcp_fin_timeout`.
    pub(super) fn on_idle(&mut self) {
        match self.state {
            State::FinWait2 => {
                self.push_event(Event::TimedOut);
                self.enter_closed();
            }
            _ => self.close(),
        }
    }

    /// RFC 6298 §5.4-5.6, RFC 5681 §3.1 for cwnd.
    pub(super) fn on_rto(&mut self, now: Instant) {
        self.stats.rto_fired = self.stats.rto_fired.wrapping_add(1);
        self.retries += 1;
        let syn_state = matches!(self.state, State::SynSent | State::SynReceived);
        let limit = if syn_state {
            self.config.syn_retries
        } else {
            self.config.max_retries
        };
        if self.retries > limit {
            self.timed_out();
            return;
        }
        // "The host MUST set RTO <- RTO * 2 ("back off the timer")".
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
        self.rtt_timed = None;
        if syn_state {
            self.syn_pending = true;
            self.snd_nxt = self.iss;
        } else {
            let flight = (self.snd_max - self.snd_una).max(0) as u32;
            self.cc.on_rto(flight);
            self.in_recovery = false;
            self.dupacks = 0;
            // RFC 6582 §4: no fast retransmit for the old window's dupacks.
            self.recover = self.snd_max;
            // RFC 2018 §8 lets the receiver renege on SACKed data, so after a
            // timeout the sender "SHOULD turn off all of the SACKed bits". We
            // keep them once, as Linux does (go-back-N then skips what the
            // peer holds), unless the peer evidently reneged (SND.UNA itself
            // SACKed) or this is a repeated timeout.
            let reneged = self
                .scoreboard
                .blocks()
                .first()
                .is_some_and(|b| b.0.le(self.snd_una));
            if reneged || self.backoff > 1 {
                self.scoreboard.clear();
            }
            self.rexmit_quota = 0;
            self.snd_nxt = self.snd_una;
        }
        self.rto_at = Some(self.deadline(now, self.current_rto()));
    }

    /// RFC 9293 §3.8.6.1: the persist timer, probing a zero window.
    pub(super) fn on_persist(&mut self, now: Instant) {
        self.persist_probes += 1;
        if self.persist_probes > self.config.zero_window_probe_max {
            self.timed_out();
            return;
        }
        self.zwp_pending = true;
        let shift = self.persist_probes.min(MAX_BACKOFF);
        let interval = (self.current_rto() * (1u32 << shift)).min(self.config.max_rto);
        self.persist_at = Some(self.deadline(now, interval));
    }

    pub(super) fn timed_out(&mut self) {
        if !matches!(self.state, State::SynSent | State::TimeWait) {
            self.rst = Some(RstSeg {
                seq: self.snd_nxt,
                ack: Some(self.rcv_nxt),
            });
        }
        self.push_event(Event::TimedOut);
        self.enter_closed();
    }

    /// Takes a round-trip sample of `r` µs (RFC 6298 §2.2-2.3).
    pub(super) fn update_rtt(&mut self, r: u64) {
        self.rtt.sample(r, self.config.min_rto, self.config.max_rto);
    }

    /// The RTO with the current back-off.
    pub(super) fn current_rto(&self) -> Duration {
        self.rtt.rto(self.backoff, self.config.max_rto)
    }
}

/// The TCB's clock (`clock.rs`): its ticks from `ts_epoch`.
impl Tcb {
    /// `now` on this TCB's clock.
    pub(super) fn tick(&self, now: Instant) -> Tick {
        Tick::at(self.ts_epoch, now)
    }

    /// The deadline `after` from `now`, on this TCB's clock.
    pub(super) fn deadline(&self, now: Instant, after: Duration) -> Tick {
        Tick::deadline(self.ts_epoch, now + after)
    }

    /// Whether the deadline `at` (if set) has come at `now`.
    pub(super) fn due(&self, at: Option<Tick>, now: Instant) -> bool {
        at.is_some_and(|t| t.reached(self.ts_epoch, now))
    }

    /// A new TCB takes the listener's timestamp clock (`epoch`, `base`),
    /// moved on to `now` if the listener is old (`rebase_clock`); its
    /// moments are `now` on it. Before any deadline is set.
    pub(super) fn set_clock(&mut self, now: Instant, epoch: Instant, base: u32) {
        self.ts_epoch = epoch;
        self.ts_base = base;
        self.rebase_clock(now);
        self.last_rx = self.tick(now);
        self.ts_recent_at = self.tick(now);
    }

    /// Keeps `now` within what a tick holds: once the epoch is older than
    /// `clock::REBASE_AFTER`, it moves on by whole milliseconds, the
    /// timestamp base with it (the TSvals sent stay exactly the same), and
    /// every tick back by as much.
    pub(super) fn rebase_clock(&mut self, now: Instant) {
        while now.saturating_duration_since(self.ts_epoch) > clock::REBASE_AFTER {
            let step = clock::REBASE_STEP_MS;
            self.ts_epoch += Duration::from_millis(u64::from(step));
            self.ts_base = self.ts_base.wrapping_add(step);
            for t in [
                &mut self.rto_at,
                &mut self.delack_at,
                &mut self.persist_at,
                &mut self.timewait_at,
                &mut self.last_oow_reply,
            ]
            .into_iter()
            .flatten()
            {
                *t = t.rebased(step);
            }
            self.last_rx = self.last_rx.rebased(step);
            self.ts_recent_at = self.ts_recent_at.rebased(step);
        }
    }
}
