//! One connection's transmission control block (RFC 9293 §3.3.1) and its
//! event processing (§3.10.7), with the takeover hooks of the seed's Fig. 6.
//!
//! The code follows the order of RFC 9293 §3.10.7.4 ("first check sequence
//! number … second check the RST bit … fifth check the ACK field … seventh,
//! process the segment text … eighth, check the FIN bit"), so a reader can
//! hold the RFC next to [`Tcb::on_segment`].

use super::congestion::NewReno;
use super::recvq::RecvQueue;
use super::segment::MAX_SACK_BLOCKS;
use super::sendq::SendQueue;
use super::{
    Event, Flags, FourTuple, Options, OutSegment, Segment, SendError, SeqNum, State, TcbExport,
    TcbStats, TcpConfig,
};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RFC 9293 §3.7.1: without an MSS option, assume 536 (IPv4).
pub(crate) const DEFAULT_PEER_MSS: u16 = 536;
/// Bytes the timestamps option takes in every segment (RFC 7323 App. A:
/// NOP, NOP, kind, length, TSval, TSecr), deducted from the payload.
const TS_OPT_LEN: u16 = 12;
/// RFC 7323 §5.5: TS.Recent older than 24 days is invalid for PAWS.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// SACK blocks remembered from the peer (RFC 6675 scoreboard).
const SCOREBOARD_MAX: usize = 8;
/// RFC 9293 §3.8.6.3 / RFC 5681 §4.2: ACK at least every second full segment.
const ACK_EVERY_SEGMENTS: u32 = 2;
/// RFC 5681 §3.2: three duplicate ACKs signal a loss.
const DUP_THRESH: u32 = 3;
/// Back-off exponent cap, so `rto << backoff` cannot overflow.
const MAX_BACKOFF: u32 = 16;

/// Takeover probe retries sent at the first interval before the interval
/// starts doubling. A probe or its answer lost in a survivor's ring during
/// the first second of a large takeover costs one short interval, not a
/// doubled one (10,000 connections: the last ones resumed after 1.2-2.6 s
/// with doubling from the first retry).
const FLAT_PROBE_RETRIES: u32 = 4;

/// The peer's SACK blocks above `snd_una`, sorted and merged (RFC 6675 §3
/// scoreboard, in ranges rather than per-segment bits).
#[derive(Debug, Default, Clone, Copy)]
struct Scoreboard {
    blocks: [(SeqNum, SeqNum); SCOREBOARD_MAX],
    n: usize,
}

impl Scoreboard {
    fn blocks(&self) -> &[(SeqNum, SeqNum)] {
        &self.blocks[..self.n]
    }

    fn clear(&mut self) {
        self.n = 0;
    }

    fn sacked_bytes(&self) -> u32 {
        self.blocks()
            .iter()
            .map(|(l, r)| (*r - *l).max(0) as u32)
            .sum()
    }

    fn highest(&self) -> Option<SeqNum> {
        self.blocks().last().map(|b| b.1)
    }

    /// Add `[l, r)`; true when it told us something new.
    fn insert(&mut self, l: SeqNum, r: SeqNum) -> bool {
        if !l.lt(r) {
            return false;
        }
        let before = self.sacked_bytes();
        let mut tmp = [(SeqNum(0), SeqNum(0)); SCOREBOARD_MAX + 1];
        let mut k = 0;
        let mut placed = false;
        for &b in self.blocks() {
            if !placed && l.lt(b.0) {
                tmp[k] = (l, r);
                k += 1;
                placed = true;
            }
            tmp[k] = b;
            k += 1;
        }
        if !placed {
            tmp[k] = (l, r);
            k += 1;
        }
        let mut m = 0;
        for i in 0..k {
            let b = tmp[i];
            if m > 0 && b.0.le(tmp[m - 1].1) {
                tmp[m - 1].1 = tmp[m - 1].1.max(b.1);
            } else {
                tmp[m] = b;
                m += 1;
            }
        }
        // Keep the lowest blocks: they decide the next retransmission.
        let m = m.min(SCOREBOARD_MAX);
        self.blocks[..m].copy_from_slice(&tmp[..m]);
        self.n = m;
        self.sacked_bytes() > before
    }

    /// Forget everything below the cumulative ACK.
    fn trim_below(&mut self, una: SeqNum) {
        let mut m = 0;
        for i in 0..self.n {
            let (l, r) = self.blocks[i];
            if r.gt(una) {
                self.blocks[m] = (l.max(una), r);
                m += 1;
            }
        }
        self.n = m;
    }
}

/// A RST we owe the peer.
#[derive(Debug, Clone, Copy)]
struct RstSeg {
    seq: SeqNum,
    ack: Option<SeqNum>,
}

/// A per-connection share of `max`, from the connection's own numbers:
/// deterministic (tests replay it), different across connections.
fn probe_jitter(export: &TcbExport, max: std::time::Duration) -> std::time::Duration {
    let max_us = max.as_micros() as u64;
    if max_us == 0 {
        return std::time::Duration::ZERO;
    }
    let mix = (u64::from(export.irs) ^ (u64::from(export.tuple.remote.port()) << 32))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    std::time::Duration::from_micros((mix >> 32) % max_us)
}

/// Takeover bookkeeping while [`State::Unready`].
#[derive(Debug, Clone, Copy)]
struct Restore {
    export: TcbExport,
    probes_sent: u32,
    probe_at: Instant,
}

/// One TCP connection's state (RFC 9293 §3.3.1).
///
/// Created by [`super::Listener`] (passive open), [`Tcb::connect`] (active
/// open) or [`Tcb::restore`] (takeover). See the module doc of `tcp` for the
/// call order.
#[derive(Debug)]
pub struct Tcb {
    tuple: FourTuple,
    /// Shared with the listener and every other TCB it made.
    config: Arc<TcpConfig>,
    state: State,

    // Send sequence space (RFC 9293 §3.3.1 figure 3). `snd_max` is the
    // highest sequence sent; `snd_nxt` goes back to `snd_una` after an RTO.
    iss: SeqNum,
    snd_una: SeqNum,
    snd_nxt: SeqNum,
    snd_max: SeqNum,
    snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: SeqNum,
    snd_wl2: SeqNum,
    sendq: SendQueue,
    /// Sequence number of the first byte in `sendq`.
    sendq_seq: SeqNum,
    /// The application closed: a FIN follows the queued data.
    fin_queued: bool,

    // Receive sequence space.
    irs: SeqNum,
    rcv_nxt: SeqNum,
    /// Right edge of the window we last advertised (never moves left).
    rcv_adv: SeqNum,
    recvq: RecvQueue,
    /// A FIN that arrived out of order, at this sequence number.
    ooo_fin: Option<SeqNum>,
    fin_received: bool,
    last_ack_sent: SeqNum,
    /// With `ack_after_commit`: we acknowledge no further than this.
    ack_committed: SeqNum,
    /// In-order payload bytes received since we last sent an ACK.
    unacked_bytes: u32,
    /// Largest payload seen from the peer: its "full-sized segment".
    rcv_mss_seen: u32,

    // Negotiated options.
    /// Payload bytes per segment we send (options deducted).
    mss: u16,
    ws_ok: bool,
    snd_wscale: u8,
    rcv_wscale: u8,
    sack_ok: bool,
    ts_ok: bool,
    ts_recent: u32,
    ts_recent_at: Instant,
    /// Our timestamp clock: `ts_base + ms since ts_epoch`.
    ts_epoch: Instant,
    ts_base: u32,

    // Retransmission timer (RFC 6298), microseconds.
    srtt_us: u64,
    rttvar_us: u64,
    rto_us: u64,
    backoff: u32,
    /// Karn's algorithm without timestamps: (end of timed segment, sent at).
    rtt_timed: Option<(SeqNum, Instant)>,
    retries: u32,

    // Congestion control and loss recovery.
    cc: NewReno,
    dupacks: u32,
    in_recovery: bool,
    recover: SeqNum,
    rexmit_next: SeqNum,
    rexmit_quota: u32,
    scoreboard: Scoreboard,

    // Timers.
    rto_at: Option<Instant>,
    delack_at: Option<Instant>,
    persist_at: Option<Instant>,
    persist_probes: u32,
    timewait_at: Option<Instant>,
    last_rx: Instant,

    // Output owed.
    ack_now: bool,
    window_update: bool,
    syn_pending: bool,
    probe_pending: bool,
    zwp_pending: bool,
    /// A zero-window probe byte at SND.UNA is outstanding beyond SND.MAX.
    zwp_sent: bool,
    /// Last reply to an unacceptable segment without data (rate limit).
    last_oow_reply: Option<Instant>,
    /// Resumed by takeover: the client may acknowledge what the dead box
    /// sent beyond our SND.MAX.
    restored: bool,
    rst: Option<RstSeg>,

    restore: Option<Box<Restore>>,
    events: VecDeque<Event>,
    stats: TcbStats,
}

impl Tcb {
    fn blank(
        now: Instant,
        config: Arc<TcpConfig>,
        tuple: FourTuple,
        state: State,
        iss: SeqNum,
        irs: SeqNum,
    ) -> Tcb {
        let rto_us = config.initial_rto.as_micros() as u64;
        let mss = config.mss.min(DEFAULT_PEER_MSS);
        Tcb {
            tuple,
            state,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: irs,
            snd_wl2: iss,
            sendq: SendQueue::default(),
            sendq_seq: iss + 1,
            fin_queued: false,
            irs,
            rcv_nxt: irs + 1,
            rcv_adv: irs + 1,
            recvq: RecvQueue::default(),
            ooo_fin: None,
            fin_received: false,
            last_ack_sent: irs + 1,
            ack_committed: irs + 1,
            unacked_bytes: 0,
            rcv_mss_seen: 0,
            mss,
            ws_ok: false,
            snd_wscale: 0,
            rcv_wscale: 0,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            ts_recent_at: now,
            ts_epoch: now,
            ts_base: iss.0,
            srtt_us: 0,
            rttvar_us: 0,
            rto_us,
            backoff: 0,
            rtt_timed: None,
            retries: 0,
            cc: NewReno::new(mss),
            dupacks: 0,
            in_recovery: false,
            recover: iss,
            rexmit_next: iss,
            rexmit_quota: 0,
            scoreboard: Scoreboard::default(),
            rto_at: None,
            delack_at: None,
            persist_at: None,
            persist_probes: 0,
            timewait_at: None,
            last_rx: now,
            ack_now: false,
            window_update: false,
            syn_pending: false,
            probe_pending: false,
            zwp_pending: false,
            zwp_sent: false,
            last_oow_reply: None,
            restored: false,
            rst: None,
            restore: None,
            events: VecDeque::with_capacity(4),
            stats: TcbStats::default(),
            config,
        }
    }

    /// Apply the options of the peer's SYN (or SYN-ACK): RFC 9293 §3.7.1
    /// (MSS), RFC 7323 §2.2 (scaling only if both sides sent the option) and
    /// §3.2 (timestamps likewise), RFC 2018 §2 (SACK-permitted).
    fn negotiate(&mut self, now: Instant, opts: &Options) {
        let peer_mss = opts.mss.unwrap_or(DEFAULT_PEER_MSS);
        match opts.window_scale {
            Some(ws) => {
                self.ws_ok = true;
                // RFC 7323 §2.3: a shift above 14 is treated as 14.
                self.snd_wscale = ws.min(14);
                self.rcv_wscale = self.config.window_scale.min(14);
            }
            None => {
                self.ws_ok = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_ok = self.config.sack && opts.sack_permitted;
        self.ts_ok = self.config.timestamps && opts.timestamps.is_some();
        if let Some((tsval, _)) = opts.timestamps {
            self.ts_recent = tsval;
            self.ts_recent_at = now;
        }
        self.set_mss(peer_mss);
    }

    fn set_mss(&mut self, peer_mss: u16) {
        let opt = if self.ts_ok { TS_OPT_LEN } else { 0 };
        // Never below 64 payload bytes, whatever a peer claims.
        self.mss = peer_mss.min(self.config.mss).saturating_sub(opt).max(64);
        self.cc = NewReno::new(self.mss);
    }

    /// A passive open: the TCB for a SYN received by the listener, in
    /// SYN-RECEIVED; its first `poll_transmit` yields the SYN-ACK.
    pub(crate) fn new_passive(
        now: Instant,
        config: Arc<TcpConfig>,
        tuple: FourTuple,
        syn: &Segment<'_>,
        iss: SeqNum,
        ts_epoch: Instant,
        ts_base: u32,
    ) -> Tcb {
        let mut t = Tcb::blank(now, config, tuple, State::SynReceived, iss, syn.seq);
        t.negotiate(now, &syn.options);
        t.ts_epoch = ts_epoch;
        t.ts_base = ts_base;
        // RFC 7323 §2.2: the window field of a SYN is never scaled.
        t.snd_wnd = u32::from(syn.window);
        t.max_snd_wnd = t.snd_wnd;
        t.snd_wl1 = syn.seq;
        t.snd_wl2 = iss;
        t.syn_pending = true;
        t
    }

    /// A TCB for a valid SYN-cookie ACK: ESTABLISHED at once, with the
    /// options the cookie carried. Processes `seg` (it may carry data).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_from_cookie(
        now: Instant,
        config: Arc<TcpConfig>,
        tuple: FourTuple,
        seg: &Segment<'_>,
        iss: SeqNum,
        irs: SeqNum,
        peer_mss: u16,
        peer_wscale: Option<u8>,
        sack: bool,
        ts: bool,
        ts_epoch: Instant,
        ts_base: u32,
    ) -> Tcb {
        let mut t = Tcb::blank(now, config, tuple, State::Established, iss, irs);
        let opts = Options {
            mss: Some(peer_mss),
            window_scale: peer_wscale,
            sack_permitted: sack,
            // The ACK's own TSval becomes TS.Recent; without one, timestamps
            // are off even if the SYN offered them.
            timestamps: if ts { seg.options.timestamps } else { None },
            ..Options::default()
        };
        t.negotiate(now, &opts);
        t.ts_epoch = ts_epoch;
        t.ts_base = ts_base;
        t.snd_una = iss + 1;
        t.snd_nxt = iss + 1;
        t.snd_max = iss + 1;
        t.recover = iss + 1;
        t.snd_wnd = u32::from(seg.window) << t.snd_wscale;
        t.max_snd_wnd = t.snd_wnd;
        t.snd_wl1 = seg.seq;
        t.snd_wl2 = seg.ack;
        t.push_event(Event::Established);
        t.on_segment(now, seg);
        t
    }

    /// An active open (RFC 9293 §3.10.1): a TCB in SYN-SENT whose first
    /// `poll_transmit` yields the SYN. Baton's service only does passive
    /// opens; this side exists for tests, benchmarks and tools.
    pub fn connect(now: Instant, config: TcpConfig, tuple: FourTuple, iss: SeqNum) -> Tcb {
        let mut t = Tcb::blank(now, Arc::new(config), tuple, State::SynSent, iss, SeqNum(0));
        t.syn_pending = true;
        t
    }

    // ------------------------------------------------------------------
    // Getters
    // ------------------------------------------------------------------

    /// The connection's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The connection's addresses.
    pub fn tuple(&self) -> FourTuple {
        self.tuple
    }

    /// False while a restored TCB waits for the peer's answer to its probe.
    pub fn is_ready(&self) -> bool {
        self.state != State::Unready
    }

    /// Sequence number the next byte given to [`Tcb::send`] will get (the
    /// seed's "next sequence number" API: the application records where an
    /// object starts).
    pub fn next_seq(&self) -> SeqNum {
        self.sendq_seq + self.sendq.len() as u32
    }

    /// Bytes [`Tcb::send`] accepts now.
    pub fn send_capacity(&self) -> usize {
        if !self.state.can_send() || self.fin_queued {
            return 0;
        }
        (self.config.send_buffer as usize).saturating_sub(self.sendq.len())
    }

    /// In-order bytes waiting for [`Tcb::recv`].
    pub fn recv_available(&self) -> usize {
        self.recvq.len()
    }

    /// Bytes queued for sending and not yet acknowledged.
    pub fn send_queued(&self) -> usize {
        self.sendq.len()
    }

    /// Counters and estimates.
    pub fn stats(&self) -> TcbStats {
        let mut s = self.stats;
        s.srtt_us = self.srtt_us;
        s.rto_us = self.current_rto().as_micros() as u64;
        s.cwnd = self.cc.cwnd;
        s.ssthresh = self.cc.ssthresh;
        s.mss = self.mss;
        s
    }

    /// Whether a SYN for this connection's 4-tuple may open a new
    /// connection although this TCB still exists: only in TIME-WAIT, and
    /// only when the SYN is newer than anything of the old connection
    /// (RFC 6191 §2: a TSval above TS.Recent, or without timestamps a
    /// sequence number above RCV.NXT; Linux's tcp_timewait_state_process).
    /// The worker then drops this TCB and gives the SYN to the
    /// [`super::Listener`], sparing a client that reuses its port a
    /// one-second SYN retransmission.
    pub fn accepts_new_syn(&self, seg: &Segment<'_>) -> bool {
        if self.state != State::TimeWait || !seg.flags.syn || seg.flags.ack || seg.flags.rst {
            return false;
        }
        match (self.ts_ok, seg.options.timestamps) {
            (true, Some((tsval, _))) => (tsval.wrapping_sub(self.ts_recent) as i32) > 0,
            _ => seg.seq.gt(self.rcv_nxt),
        }
    }

    /// The peer's window in bytes (scaled).
    pub fn peer_window(&self) -> u32 {
        self.snd_wnd
    }

    // ------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------

    /// A segment for this connection arrived (checksum already verified).
    /// RFC 9293 §3.10.7.
    pub fn on_segment(&mut self, now: Instant, seg: &Segment<'_>) {
        self.stats.segments_received += 1;
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
                    && now.saturating_duration_since(self.ts_recent_at) < PAWS_IDLE
                {
                    self.stats.dropped += 1;
                    self.oow_reply(now, seg);
                    return;
                }
            }
        }

        // First: sequence number (RFC 9293 §3.10.7.4, the four cases).
        if !self.acceptable(seg) {
            self.stats.dropped += 1;
            if !seg.flags.rst {
                // "If an incoming segment is not acceptable, an
                // acknowledgment should be sent in reply (unless the RST bit
                // is set)". In TIME-WAIT a retransmitted FIN also restarts
                // the 2 MSL timeout.
                self.oow_reply(now, seg);
                if self.state == State::TimeWait && seg.flags.fin {
                    self.timewait_at = Some(now + self.config.time_wait);
                }
            }
            return;
        }
        // Only a segment that passed the sequence check says the peer of
        // this connection is alive: SYNs of a new incarnation on the same
        // 4-tuple, blind RSTs and stale duplicates must not keep a
        // connection whose client is gone from ever going idle.
        self.last_rx = now;

        // Second: RST (RFC 5961 §3.2): exactly at RCV.NXT resets; anywhere
        // else in the window earns a challenge ACK.
        if seg.flags.rst {
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
            self.stats.dropped += 1;
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
                    self.ts_recent_at = now;
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
            self.timewait_at = Some(now + self.config.time_wait);
        }
    }

    /// RFC 9293 §3.10.7.4 "first", the table of four cases, with the
    /// allowance for ACKs and RSTs when our window is zero.
    fn acceptable(&self, seg: &Segment<'_>) -> bool {
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

    fn on_reset_received(&mut self) {
        self.push_event(Event::Reset);
        self.enter_closed();
    }

    /// RFC 5961 §3.2/§4.2: an ACK carrying our current numbers, so a peer
    /// that really lost its state answers with an exact RST.
    fn challenge_ack(&mut self, now: Instant, seg: &Segment<'_>) {
        if self.oow_reply(now, seg) {
            self.stats.challenge_acks += 1;
        }
    }

    /// An ACK in reply to an unacceptable segment, rate-limited as Linux
    /// does (tcp_oow_rate_limited, RFC 5961 §7): segments without data get
    /// at most one reply per `invalid_ratelimit`, so two stacks that
    /// disagree about sequence numbers cannot ACK each other forever, and a
    /// blind attacker gets no amplification. Segments carrying data (or a
    /// FIN) are always answered. True when a reply was scheduled.
    fn oow_reply(&mut self, now: Instant, seg: &Segment<'_>) -> bool {
        let pure = seg.payload.is_empty() && !seg.flags.fin;
        if pure {
            if let Some(t) = self.last_oow_reply {
                if now.saturating_duration_since(t) < self.config.invalid_ratelimit {
                    return false;
                }
            }
            self.last_oow_reply = Some(now);
        }
        self.ack_now = true;
        true
    }

    /// RFC 9293 §3.10.7.4 "fifth": the ACK field. Returns false when the
    /// segment must be dropped now.
    fn process_ack(&mut self, now: Instant, seg: &Segment<'_>) -> bool {
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
                if self.retries > 0 && self.srtt_us == 0 {
                    self.rto_us = self.rto_us.max(3_000_000);
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
                self.stats.dropped += 1;
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

    fn fin_seq(&self) -> SeqNum {
        self.sendq_seq + self.sendq.len() as u32
    }

    fn on_new_ack(&mut self, now: Instant, seg: &Segment<'_>, ack: SeqNum, acked: u32) {
        let data_acked = if ack.gt(self.sendq_seq) {
            ((ack - self.sendq_seq) as usize).min(self.sendq.len())
        } else {
            0
        };
        self.sendq.consume(data_acked);
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
            self.rto_at = Some(now + self.current_rto());
        }
        if data_acked > 0 && self.state.can_send() && !self.fin_queued {
            self.push_event(Event::Writable);
        }
    }

    fn sack_active(&self) -> bool {
        self.sack_ok && self.scoreboard.n > 0
    }

    fn on_dupack(&mut self) {
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
            self.stats.fast_retransmits += 1;
        }
    }

    /// RFC 9293 §3.10.7.4 "seventh" and "eighth": queue the text, handle FIN.
    fn process_data(&mut self, now: Instant, seg: &Segment<'_>) {
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
                self.recvq.push_in_order(data);
                self.rcv_nxt += data.len() as u32;
            }
            self.rcv_nxt = self.recvq.drain_ooo(self.rcv_nxt);
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
            } else if self.unacked_bytes
                >= ACK_EVERY_SEGMENTS * self.rcv_mss_seen.max(u32::from(DEFAULT_PEER_MSS))
            {
                // RFC 5681 §4.2: "an ACK SHOULD be generated for at least
                // every second full-sized segment".
                self.ack_now = true;
            } else if !self.ack_now && self.delack_at.is_none() {
                self.delack_at = Some(now + self.config.delayed_ack);
            }
        } else {
            // Out of order: hold it and send an immediate duplicate ACK
            // (RFC 5681 §4.2) with SACK blocks (RFC 2018 §4).
            if !self.recvq.push_ooo(seq, data) {
                self.stats.dropped += 1;
            }
            if fin {
                self.ooo_fin = Some(seq + data.len() as u32);
            }
            self.ack_now = true;
        }
    }

    /// RFC 9293 §3.10.7.4 "eighth": the FIN bit.
    fn on_fin(&mut self, now: Instant) {
        self.rcv_nxt += 1;
        self.ooo_fin = None;
        self.fin_received = true;
        self.ack_now = true;
        self.push_event(Event::PeerClosed);
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            // Our FIN not yet acknowledged (else we would be in FIN-WAIT-2).
            State::FinWait1 => self.state = State::Closing,
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.timewait_at = Some(now + self.config.time_wait);
        self.rto_at = None;
        self.persist_at = None;
        self.delack_at = None;
    }

    fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.rto_at = None;
        self.persist_at = None;
        self.delack_at = None;
        self.timewait_at = None;
        self.restore = None;
        self.syn_pending = false;
        self.probe_pending = false;
        self.zwp_pending = false;
        self.ack_now = false;
        self.window_update = false;
        self.push_event(Event::Closed);
    }

    /// RFC 9293 §3.10.7.3: SYN-SENT (active open, tests and tools).
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &Segment<'_>) {
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
        self.last_rx = now;
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

    /// The answer to a takeover probe (ARCHITECTURE.md "Takeover" 5-6).
    fn on_segment_unready(&mut self, now: Instant, seg: &Segment<'_>) {
        let Some(export) = self.restore.as_ref().map(|r| r.export) else {
            return;
        };
        self.last_rx = now;
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
        if seg.seq.gt(self.rcv_nxt) && !(self.config.ack_after_commit || export.acks_covered) {
            // The client's sequence is beyond the checkpoint: it sent data
            // (or a FIN) we never saw and that the dead box may have
            // acknowledged. Reset exactly at the client's RCV.NXT (its ACK)
            // and tell the application "not ready". (When the checkpoint
            // covers every ACK its box sent, those bytes are merely in
            // flight: the client retransmits them, and we go on.)
            self.rst = Some(RstSeg {
                seq: seg.ack,
                ack: None,
            });
            self.push_event(Event::NotReady);
            self.enter_closed();
            return;
        }
        // Sync to the greater of the client's ACK and the checkpoint.
        let una = seg.ack.max(SeqNum(export.snd_una));
        self.snd_una = una;
        self.snd_nxt = una;
        self.snd_max = una;
        self.sendq_seq = una;
        self.recover = una;
        self.rexmit_next = una;
        if self.ts_ok {
            if let Some((tsval, tsecr)) = seg.options.timestamps {
                self.ts_recent = tsval;
                self.ts_recent_at = now;
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
        self.restore = None;
        self.restored = true;
        self.probe_pending = false;
        self.push_event(Event::Ready {
            snd_una: una,
            rcv_nxt: self.rcv_nxt,
        });
        // The answer may carry data (a client retransmitting what the
        // checkpoint did not cover): process it as any segment.
        if seg.seq_len() > 0 {
            self.on_segment(now, seg);
        }
    }

    /// Call when `now >= poll_timeout()`.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
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
        if let Some(t) = self.timewait_at {
            if now >= t {
                self.enter_closed();
            }
            return;
        }
        if self.idle_deadline().is_some_and(|t| now >= t) {
            self.on_idle();
            return;
        }
        if self.rto_at.is_some_and(|t| now >= t) {
            self.on_rto(now);
            if self.state == State::Closed {
                return;
            }
        }
        if self.persist_at.is_some_and(|t| now >= t) {
            self.on_persist(now);
            if self.state == State::Closed {
                return;
            }
        }
        if self.delack_at.is_some_and(|t| now >= t) {
            self.delack_at = None;
            self.ack_now = true;
        }
    }

    /// When the idle rule applies: nothing received for
    /// [`TcpConfig::idle_timeout`] while nothing of ours is in flight (data
    /// or a FIN in flight, or a zero window, leave a silent peer to the
    /// retransmission and persist limits, RFC 9293 §3.8.3), in ESTABLISHED,
    /// CLOSE-WAIT or FIN-WAIT-2.
    fn idle_deadline(&self) -> Option<Instant> {
        let applies = match self.state {
            State::Established | State::CloseWait => {
                self.rto_at.is_none() && self.persist_at.is_none()
            }
            State::FinWait2 => true,
            _ => false,
        };
        applies.then(|| self.last_rx + self.config.idle_timeout)
    }

    /// The idle timer ran out. Closing for idleness is the orderly close of
    /// RFC 9293 §3.10.4 (a FIN after whatever is queued), never a RST: a
    /// client that merely paused longer than we wait sees an end of stream
    /// it can retry on (RFC 9112 §9.3.1), not an error. In FIN-WAIT-2 our
    /// FIN is already acknowledged and the peer never sent its own: drop
    /// the connection silently, as Linux does after `tcp_fin_timeout`.
    fn on_idle(&mut self) {
        match self.state {
            State::FinWait2 => {
                self.push_event(Event::TimedOut);
                self.enter_closed();
            }
            _ => self.close(),
        }
    }

    /// RFC 6298 §5.4-5.6, RFC 5681 §3.1 for cwnd.
    fn on_rto(&mut self, now: Instant) {
        self.stats.rto_fired += 1;
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
        self.rto_at = Some(now + self.current_rto());
    }

    /// RFC 9293 §3.8.6.1: the persist timer, probing a zero window.
    fn on_persist(&mut self, now: Instant) {
        self.persist_probes += 1;
        if self.persist_probes > self.config.zero_window_probe_max {
            self.timed_out();
            return;
        }
        self.zwp_pending = true;
        let shift = self.persist_probes.min(MAX_BACKOFF);
        let interval = (self.current_rto() * (1u32 << shift)).min(self.config.max_rto);
        self.persist_at = Some(now + interval);
    }

    fn timed_out(&mut self) {
        if !matches!(self.state, State::SynSent | State::TimeWait) {
            self.rst = Some(RstSeg {
                seq: self.snd_nxt,
                ack: Some(self.rcv_nxt),
            });
        }
        self.push_event(Event::TimedOut);
        self.enter_closed();
    }

    fn update_rtt(&mut self, r: u64) {
        // RFC 6298 §2.2-2.3 (alpha = 1/8, beta = 1/4, K = 4, G = 1 ms).
        if self.srtt_us == 0 {
            self.srtt_us = r.max(1);
            self.rttvar_us = r / 2;
        } else {
            let err = self.srtt_us.abs_diff(r);
            self.rttvar_us = (3 * self.rttvar_us + err) / 4;
            self.srtt_us = ((7 * self.srtt_us + r) / 8).max(1);
        }
        let min = self.config.min_rto.as_micros() as u64;
        let max = self.config.max_rto.as_micros() as u64;
        self.rto_us = (self.srtt_us + (4 * self.rttvar_us).max(1000)).clamp(min, max);
    }

    fn current_rto(&self) -> Duration {
        let us = self.rto_us.saturating_mul(1u64 << self.backoff);
        Duration::from_micros(us).min(self.config.max_rto)
    }

    // ------------------------------------------------------------------
    // Application mutators
    // ------------------------------------------------------------------

    /// Queue `data` (zero-copy: the chunk is kept and sliced into segments);
    /// returns the sequence number of its first byte. Refused while a
    /// restored TCB is not ready, after [`Tcb::close`], or when `data` does
    /// not fit in [`Tcb::send_capacity`] (nothing is queued then).
    pub fn send(&mut self, data: Bytes) -> Result<SeqNum, SendError> {
        if self.state == State::Unready {
            return Err(SendError::NotReady);
        }
        if !self.state.can_send() || self.fin_queued {
            return Err(SendError::Closed);
        }
        let capacity = self.send_capacity();
        if data.len() > capacity {
            return Err(SendError::Full {
                len: data.len(),
                capacity,
            });
        }
        let seq = self.next_seq();
        self.sendq.push(data);
        Ok(seq)
    }

    /// Copy received in-order bytes into `buf`; returns how many.
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = self.recvq.read(buf);
        if n > 0 {
            // RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): announce the
            // reopened window only when it grew by a useful amount.
            let adv = (self.rcv_adv - self.rcv_nxt).max(0) as u32;
            let free = self.rcv_free();
            let growth = free.saturating_sub(adv);
            if growth >= self.config.recv_buffer / 2
                || (adv < u32::from(self.mss) && growth >= u32::from(self.mss))
            {
                self.window_update = true;
            }
        }
        n
    }

    /// With [`TcpConfig::ack_after_commit`], our ACKs never pass the
    /// sequence number given here: the worker calls this with the `rcv_nxt`
    /// of a checkpoint once that checkpoint is committed, so client data is
    /// acknowledged only when a survivor could resume after it (issue 6).
    /// Without the option it has no effect.
    pub fn commit_ack(&mut self, upto: SeqNum) {
        let upto = upto.min(self.rcv_nxt);
        if upto.gt(self.ack_committed) {
            self.ack_committed = upto;
            if self.config.ack_after_commit {
                self.ack_now = true;
            }
        }
    }

    /// Send a FIN after the queued data (RFC 9293 §3.10.4).
    pub fn close(&mut self) {
        match self.state {
            State::SynSent => self.enter_closed(),
            // RFC 9293 §3.10.4, SYN-RECEIVED: "If no SENDs have been issued
            // and there is no pending data to send, then form a FIN segment
            // and send it, and enter FIN-WAIT-1 state; otherwise, queue for
            // processing after entering ESTABLISHED state." We always queue:
            // the SYN-ACK keeps being retransmitted until it is acknowledged.
            State::SynReceived => self.fin_queued = true,
            State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            State::Unready => self.abort(),
            _ => {}
        }
    }

    /// Send a RST now and close (RFC 9293 §3.10.5).
    pub fn abort(&mut self) {
        match self.state {
            State::Closed => {}
            State::SynSent | State::TimeWait | State::Unready => self.enter_closed(),
            _ => {
                self.rst = Some(RstSeg {
                    seq: self.snd_max,
                    ack: Some(self.rcv_nxt),
                });
                self.enter_closed();
            }
        }
    }

    // ------------------------------------------------------------------
    // Outputs
    // ------------------------------------------------------------------

    /// The next segment to send, if any; call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<OutSegment> {
        if let Some(r) = self.rst.take() {
            let mut s = self.bare_segment(r.seq);
            s.flags = Flags {
                rst: true,
                ack: r.ack.is_some(),
                ..Flags::default()
            };
            s.ack = r.ack.unwrap_or(SeqNum(0));
            self.stats.segments_sent += 1;
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
        self.events.pop_front()
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
            return Some(t);
        }
        [
            self.rto_at,
            self.delack_at,
            self.persist_at,
            self.idle_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

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
            tuple: self.tuple,
            state: self.state,
            iss: self.iss.0,
            irs: self.irs.0,
            snd_una: self.snd_una.0,
            snd_nxt: self.snd_max.0,
            rcv_nxt: self.rcv_nxt.0,
            snd_wnd: self.snd_wnd,
            rcv_wnd: self.rcv_free(),
            mss: self.mss,
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            sack_permitted: self.sack_ok,
            timestamps: self.ts_ok,
            ts_recent: self.ts_recent,
            ts_last_sent: self.ts_now(now),
            // ACKs never pass the committed point, and the application
            // commits a point only once its checkpoint covers it.
            acks_covered: self.config.ack_after_commit,
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
    /// application re-sends the rest and closes again); any other state
    /// yields [`Event::NotReady`] at once, without a probe.
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
        t.snd_una = una;
        t.snd_nxt = una;
        t.snd_max = una;
        t.sendq_seq = una;
        t.recover = una;
        t.rexmit_next = una;
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
        t.ts_recent_at = now;
        t.ts_epoch = now;
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
            }));
            t.probe_pending = true;
        } else {
            t.push_event(Event::NotReady);
            t.enter_closed();
        }
        t
    }

    // ------------------------------------------------------------------
    // Segment construction
    // ------------------------------------------------------------------

    fn ts_now(&self, now: Instant) -> u32 {
        let ms = now.saturating_duration_since(self.ts_epoch).as_millis() as u32;
        self.ts_base.wrapping_add(ms)
    }

    fn rcv_free(&self) -> u32 {
        self.config
            .recv_buffer
            .saturating_sub(self.recvq.len() as u32)
    }

    /// Data we accept beyond RCV.NXT: the free buffer, and never less than
    /// what we advertised (the window must not shrink, RFC 9293 §3.8.6.2.2).
    fn rcv_accept_window(&self) -> u32 {
        let adv = (self.rcv_adv - self.rcv_nxt).max(0) as u32;
        self.rcv_free().max(adv)
    }

    /// The window field for a non-SYN segment (RFC 7323 §2.3: scaled).
    fn window_field(&self) -> u16 {
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

    fn bare_segment(&self, seq: SeqNum) -> OutSegment {
        OutSegment {
            src_port: self.tuple.local.port(),
            dst_port: self.tuple.remote.port(),
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
    /// RCV.NXT, or with `ack_after_commit` the committed point below it.
    fn ack_to_send(&self) -> SeqNum {
        if self.config.ack_after_commit {
            self.ack_committed.min(self.rcv_nxt)
        } else {
            self.rcv_nxt
        }
    }

    fn finish(&mut self, now: Instant, s: &mut OutSegment) {
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
        let edge = s.ack + (u32::from(s.window) << self.rcv_wscale);
        self.rcv_adv = self.rcv_adv.max(edge);
        self.ack_now = false;
        self.window_update = false;
        self.delack_at = None;
        self.unacked_bytes = 0;
        self.stats.segments_sent += 1;
    }

    fn syn_segment(&mut self, now: Instant) -> OutSegment {
        let mut s = self.bare_segment(self.iss);
        let active = self.state == State::SynSent;
        s.flags.syn = true;
        s.options.mss = Some(self.config.mss);
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
            self.rto_at = Some(now + self.current_rto());
        }
        self.stats.segments_sent += 1;
        s
    }

    fn probe_segment(&mut self, now: Instant) -> OutSegment {
        // ARCHITECTURE.md "Takeover" 4: one byte the client already
        // acknowledged (a pure ACK would be rate-limited or, failing PAWS,
        // dropped), ACK = the checkpoint's RCV.NXT (never a guess).
        let mut s = self.bare_segment(self.snd_una - 1);
        s.flags.ack = true;
        s.payload.push(Bytes::from_static(&[0]));
        self.finish(now, &mut s);
        if let Some(r) = self.restore.as_mut() {
            r.probes_sent += 1;
        }
        s
    }

    /// The first unSACKed range at or after `rexmit_next` that the
    /// scoreboard deems lost (below the highest SACKed byte), or, without
    /// SACK information, the first unacknowledged segment once.
    fn next_hole(&self) -> Option<(SeqNum, u32)> {
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
    fn data_segment(&mut self, now: Instant, seq: SeqNum, len: u32) -> Option<OutSegment> {
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
        self.stats.retransmits += 1;
        self.stats.bytes_sent += n as u64;
        self.finish(now, &mut s);
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.current_rto());
        }
        Some(s)
    }

    /// RFC 9293 §3.8.6.1: "the sending TCP must regularly transmit at least
    /// one octet of new data (if available)" into a zero window. The byte is
    /// counted in neither `snd_nxt` nor `snd_max` (our ACKs keep a sequence
    /// number the peer accepts), so the persist timer, not the RTO, keeps
    /// probing until the window opens.
    fn zero_window_probe(&mut self, now: Instant) -> Option<OutSegment> {
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
    fn next_data_segment(&mut self, now: Instant) -> Option<OutSegment> {
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
                self.persist_at = Some(now + self.current_rto());
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
            self.stats.retransmits += 1;
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
            self.rto_at = Some(now + self.current_rto());
        }
        self.persist_at = None;
        Some(s)
    }

    /// Payload bytes to leave free for the SACK blocks we owe the peer, so
    /// data segments carry them (as Linux's tcp_current_mss does) and a
    /// peer that is also sending learns about its losses.
    fn sack_reserve(&self) -> usize {
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
    fn pipe(&self) -> u32 {
        let out = (self.snd_nxt - self.snd_una).max(0) as u32;
        if self.in_recovery && self.sack_active() {
            out.saturating_sub(self.scoreboard.sacked_bytes())
        } else {
            out
        }
    }

    fn push_event(&mut self, e: Event) {
        if matches!(e, Event::Readable | Event::Writable) && self.events.contains(&e) {
            return;
        }
        self.events.push_back(e);
    }
}
