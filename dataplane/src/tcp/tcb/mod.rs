//! One connection's transmission control block (RFC 9293 §3.3.1) and its
//! event processing (§3.10.7), with the takeover hooks of the seed's Fig. 6.
//!
//! The code follows the order of RFC 9293 §3.10.7.4 ("first check sequence
//! number … second check the RST bit … fifth check the ACK field … seventh,
//! process the segment text … eighth, check the FIN bit"), so a reader can
//! hold the RFC next to [`Tcb::on_segment`].
//!
//! The methods fall into quinn-proto's classes, one file each:
//! - this file: the block itself, its constructors, the getters and the
//!   application mutators (`send`, `recv`, `close`, …);
//! - `input.rs`: a segment arrives (`on_segment` and the RFC steps);
//! - `timers.rs`: time passes (`on_timeout`: RTO, persist, TIME-WAIT, idle,
//!   takeover probes);
//! - `output.rs`: `poll_transmit`, `poll_event`, `poll_timeout` and how
//!   segments are built;
//! - `restore.rs`: the takeover hooks (`export`, `restore`, and the answer
//!   to a probe while unready).
//!
//! The SACK scoreboard (`tcp/scoreboard.rs`), the RTT estimator
//! (`tcp/rtt.rs`) and congestion control (`tcp/congestion.rs`) are parts
//! the block holds; they know nothing of it. No file here touches a port
//! or reads the clock: time comes in as `now`.

use super::congestion::NewReno;
use super::events::EventSet;
use super::recvq::RecvQueue;
use super::rtt::RttEstimator;
use super::scoreboard::Scoreboard;
use super::segment::MAX_SACK_BLOCKS;
use super::sendq::SendQueue;
use super::{
    Event, Flags, FourTuple, Options, OutSegment, PackedTuple, Segment, SendError, SeqNum, State,
    TcbExport, TcbStats, TcpConfig,
};
use bytes::Bytes;
use clock::Tick;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod clock;
mod input;
mod output;
mod restore;
mod timers;

/// RFC 9293 §3.7.1: without an MSS option, assume 536 (IPv4).
pub(crate) const DEFAULT_PEER_MSS: u16 = 536;
/// Bytes the timestamps option takes in every segment (RFC 7323 App. A:
/// NOP, NOP, kind, length, TSval, TSecr), deducted from the payload.
const TS_OPT_LEN: u16 = 12;
/// RFC 7323 §5.5: TS.Recent older than 24 days is invalid for PAWS.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// RFC 9293 §3.8.6.3 / RFC 5681 §4.2: ACK at least every second full segment.
const ACK_EVERY_SEGMENTS: u32 = 2;
/// RFC 5681 §3.2: three duplicate ACKs signal a loss.
const DUP_THRESH: u32 = 3;
/// How long client bytes stay held before a retransmission of them
/// releases the hold (see `release_on_retransmit`): a client whose RTO
/// fires while its request is answered slowly has nothing more to send and
/// loses nothing by waiting, and a box that dies within this time leaves
/// the bytes unacknowledged, so a survivor gets them again; a client that
/// needs our ACK to send the rest (a congestion window of one segment
/// after an RTO, a partial request) is not stalled for longer.
const HOLD_PATIENCE: Duration = Duration::from_secs(1);
/// Back-off exponent cap, so `rto << backoff` cannot overflow.
const MAX_BACKOFF: u32 = 16;

/// Takeover probe retries sent at the first interval before the interval
/// starts doubling. A probe or its answer lost in a survivor's ring during
/// the first second of a large takeover costs one short interval, not a
/// doubled one (10,000 connections: the last ones resumed after 1.2-2.6 s
/// with doubling from the first retry).
const FLAT_PROBE_RETRIES: u32 = 4;

/// A RST we owe the peer.
#[derive(Debug, Clone, Copy)]
struct RstSeg {
    seq: SeqNum,
    ack: Option<SeqNum>,
}

/// A restored connection whose client showed a sequence beyond the
/// checkpoint: bytes it sent that the dead box never checkpointed.
#[derive(Debug, Clone, Copy, Default)]
struct Gap {
    /// The checkpoint's RCV.NXT: the client's first byte from there again
    /// closes the gap (the connection is then ready, reported with it).
    from: SeqNum,
    /// When we give up and reset (a real gap).
    deadline: Option<Instant>,
    /// Events held back until the gap closes (the application hears
    /// `Ready` first).
    readable: bool,
    peer_closed: bool,
}

/// Takeover bookkeeping while [`State::Unready`].
#[derive(Debug, Clone, Copy)]
struct Restore {
    export: TcbExport,
    probes_sent: u32,
    probe_at: Instant,
    /// When the last probe left: its answer is the connection's first
    /// round-trip sample.
    last_probe_sent_at: Option<Instant>,
}

/// One TCP connection's state (RFC 9293 §3.3.1).
///
/// Created by [`super::Listener`] (passive open), [`Tcb::connect`] (active
/// open) or [`Tcb::restore`] (takeover). See the module doc of `tcp` for the
/// call order.
#[derive(Debug)]
pub struct Tcb {
    tuple: PackedTuple,
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
    /// While ACKs are held (`ack_after_commit`, or `hold_acks` with the
    /// application's hold on): we acknowledge no further than this.
    ack_committed: SeqNum,
    /// The application's hold under `hold_acks`.
    ack_hold: bool,
    /// Since when client bytes are held unacknowledged, on our timestamp
    /// clock (`ts_now`, ms; four bytes where an `Instant` takes sixteen).
    held_since: Option<u32>,
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
    /// When TS.Recent was taken (RFC 7323 §5.5: PAWS trusts it 24 days).
    ts_recent_at: Tick,
    /// Our timestamp clock: `ts_base + ms since ts_epoch`.
    ts_epoch: Instant,
    ts_base: u32,

    // Retransmission timer (RFC 6298).
    rtt: RttEstimator,
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

    // Timers, on the TCB's clock (`clock.rs`).
    rto_at: Option<Tick>,
    delack_at: Option<Tick>,
    persist_at: Option<Tick>,
    persist_probes: u32,
    timewait_at: Option<Tick>,
    last_rx: Tick,
    /// Segments that passed the sequence check (or answered a takeover
    /// probe): proof the sender is this connection's peer.
    accepted: u8,

    // Output owed.
    ack_now: bool,
    window_update: bool,
    syn_pending: bool,
    probe_pending: bool,
    zwp_pending: bool,
    /// A zero-window probe byte at SND.UNA is outstanding beyond SND.MAX.
    zwp_sent: bool,
    /// Last reply to an unacceptable segment without data (rate limit).
    last_oow_reply: Option<Tick>,
    /// Resumed by takeover: the client may acknowledge what the dead box
    /// sent beyond our SND.MAX.
    restored: bool,
    rst: Option<RstSeg>,

    restore: Option<Box<Restore>>,
    /// Restored, client ahead of the checkpoint: waiting for its
    /// retransmissions before telling the application `Ready`.
    gap: Option<Box<Gap>>,
    /// Duplicate ACKs owed at once (prompting a client's fast retransmit).
    dupacks_owed: u8,
    events: EventSet,
    stats: Counters,
}

/// A connection's queued bytes leave the worker's budget with it
/// (tcp/budget.rs).
/// What a TCB counts ([`TcbStats`] without the estimates, which
/// [`Tcb::stats`] reads from the TCB itself: 32 bytes less in each of
/// 300,000 TCBs).
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    bytes_sent: u64,
    bytes_acked: u64,
    bytes_received: u64,
    // Counts of segments and events wrap at 2^32 (a connection's own
    // figures, read for tests and logs; 24 bytes less a TCB).
    segments_sent: u32,
    segments_received: u32,
    retransmits: u32,
    rto_fired: u32,
    fast_retransmits: u32,
    dropped: u32,
    challenge_acks: u32,
    oow_acks: u32,
}

impl Drop for Tcb {
    fn drop(&mut self) {
        self.sendq.release(&self.config.buffer_budget);
        self.recvq.release(&self.config.buffer_budget);
    }
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
        let mss = config.mss_for(tuple.local.ip()).min(DEFAULT_PEER_MSS);
        Tcb {
            tuple: PackedTuple::pack(&tuple),
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
            ack_hold: config.hold_acks,
            held_since: None,
            unacked_bytes: 0,
            rcv_mss_seen: 0,
            mss,
            ws_ok: false,
            snd_wscale: 0,
            rcv_wscale: 0,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            ts_recent_at: Tick::at(now, now),
            ts_epoch: now,
            ts_base: iss.0,
            rtt: RttEstimator::new(config.initial_rto),
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
            last_rx: Tick::at(now, now),
            accepted: 0,
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
            gap: None,
            dupacks_owed: 0,
            events: EventSet::default(),
            stats: Counters::default(),
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
            self.ts_recent_at = self.tick(now);
        }
        self.set_mss(peer_mss);
    }

    fn set_mss(&mut self, peer_mss: u16) {
        let opt = if self.ts_ok { TS_OPT_LEN } else { 0 };
        // Never below 64 payload bytes, whatever a peer claims.
        let ours = self.config.mss_for(self.tuple.local_ip());
        self.mss = peer_mss.min(ours).saturating_sub(opt).max(64);
        self.cc = NewReno::new(self.mss);
    }

    /// Path MTU discovery (RFC 8201 §4, RFC 1191 §6.3 for IPv4): the path
    /// carries at most `mss` bytes of TCP payload after the headers (the
    /// caller derives it from a Packet Too Big's MTU, clamped to the
    /// minimum). Segments cut from now on fit it; one lost for being too
    /// big is retransmitted at the new size. Returns false when `mss` is
    /// not below the MSS in use (a stale or forged message changes nothing).
    pub fn lower_mss(&mut self, mss: u16) -> bool {
        let opt = if self.ts_ok { TS_OPT_LEN } else { 0 };
        let mss = mss.saturating_sub(opt).max(64);
        if mss >= self.mss {
            return false;
        }
        self.mss = mss;
        self.cc.set_mss(mss);
        true
    }

    /// Whether `seq` is a sequence number we sent that is not acknowledged
    /// yet (SND.UNA ≤ seq < SND.MAX): an ICMP error quoting any other is
    /// not about a segment in flight, a blind attacker's guess (RFC 5927
    /// §4.1, RFC 8201 §5.2).
    pub fn in_flight(&self, seq: SeqNum) -> bool {
        self.snd_una.le(seq) && seq.lt(self.snd_max)
    }

    /// The MSS segments are cut at now (payload bytes, options excluded).
    pub fn mss(&self) -> u16 {
        self.mss
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
        t.set_clock(now, ts_epoch, ts_base);
        t.negotiate(now, &syn.options);
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
        t.set_clock(now, ts_epoch, ts_base);
        t.negotiate(now, &opts);
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

    /// Segments accepted so far, modulo 256 (compare for change):
    /// passed the sequence check (RFC 9293 §3.10.7.4 "first"), the SYN-ACK
    /// of an active open, or the answer to a takeover probe. A blind sender
    /// cannot change it. One byte: an idle TCB must stay small.
    pub fn segments_accepted(&self) -> u8 {
        self.accepted
    }

    /// Out-of-window ACKs answered so far (RFC 5961 §5.2), wrapping: the
    /// per-segment path compares it before and after a segment without
    /// copying the whole [`TcbStats`].
    pub fn oow_acks(&self) -> u32 {
        self.stats.oow_acks
    }

    /// The connection's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The connection's addresses.
    pub fn tuple(&self) -> FourTuple {
        self.tuple.unpack()
    }

    /// [`Tcb::tuple`] packed as the TCB keeps it, for lookups that only
    /// compare or hash it.
    pub(crate) fn packed_tuple(&self) -> &PackedTuple {
        &self.tuple
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
        let room = (self.config.send_buffer as usize).saturating_sub(self.sendq.len());
        // The worker's budget may hold it to a floor (tcp/budget.rs).
        self.config.buffer_budget.send_room(self.sendq.len(), room)
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
        let c = &self.stats;
        TcbStats {
            bytes_sent: c.bytes_sent,
            bytes_acked: c.bytes_acked,
            bytes_received: c.bytes_received,
            segments_sent: c.segments_sent.into(),
            segments_received: c.segments_received.into(),
            retransmits: c.retransmits.into(),
            rto_fired: c.rto_fired.into(),
            fast_retransmits: c.fast_retransmits.into(),
            dropped: c.dropped.into(),
            challenge_acks: c.challenge_acks,
            oow_acks: c.oow_acks,
            srtt_us: self.rtt.srtt_us(),
            rto_us: self.current_rto().as_micros() as u64,
            cwnd: self.cc.cwnd,
            ssthresh: self.cc.ssthresh,
            mss: self.mss,
        }
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
        self.sendq.push(data, &self.config.buffer_budget);
        Ok(seq)
    }

    /// Heap bytes this TCB holds beyond its own size: its queues'
    /// capacities and its SACK blocks (what an idle connection costs on
    /// top of `size_of::<Tcb>()`; issue 19).
    pub fn heap_bytes(&self) -> usize {
        self.recvq.heap_bytes() + self.sendq.heap_bytes() + self.scoreboard.heap_bytes()
    }

    /// Copy received in-order bytes into `buf`; returns how many.
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = self.recvq.read(buf, &self.config.buffer_budget);
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

    /// While ACKs are held ([`TcpConfig::ack_after_commit`], or
    /// [`TcpConfig::hold_acks`] with the hold on), our ACKs never pass the
    /// sequence number given here: the worker calls this with the `rcv_nxt`
    /// of a checkpoint once that checkpoint is committed, so client data is
    /// acknowledged only when a survivor could resume after it (issue 6).
    /// The ACK goes out with the next segment (a response queued in the
    /// same poll carries it). Without a hold it has no effect.
    pub fn commit_ack(&mut self, upto: SeqNum) {
        let upto = upto.min(self.rcv_nxt);
        if upto.gt(self.ack_committed) {
            self.ack_committed = upto;
            if self.acks_held() && upto.gt(self.last_ack_sent) {
                self.ack_now = true;
            }
        }
    }

    /// Under [`TcpConfig::hold_acks`]: `false` lets client bytes be
    /// acknowledged as they arrive (an upload body, whose spool the
    /// checkpoint may trail), `true` holds them at the committed point
    /// again (from what was already acknowledged). No effect under
    /// [`TcpConfig::ack_after_commit`] (always held) or without either.
    pub fn set_ack_hold(&mut self, hold: bool) {
        if !self.config.hold_acks || self.ack_hold == hold {
            return;
        }
        self.ack_hold = hold;
        if hold {
            self.ack_committed = self.ack_committed.max(self.last_ack_sent);
        } else if self.rcv_nxt.gt(self.last_ack_sent) && self.delack_at.is_none() {
            self.ack_now = true;
        }
    }

    /// Whether ACKs stop at the committed point now.
    /// Not once both sides have closed (CLOSING, TIME-WAIT): no survivor
    /// restores such a connection, and the client's FIN must be
    /// acknowledged or it retransmits it from LAST-ACK.
    pub(super) fn acks_held(&self) -> bool {
        if matches!(self.state, State::Closing | State::TimeWait | State::Closed) {
            return false;
        }
        self.config.ack_after_commit || (self.config.hold_acks && self.ack_hold)
    }

    /// True when client bytes are received but held unacknowledged.
    pub fn ack_held(&self) -> bool {
        self.acks_held() && self.ack_to_send().lt(self.rcv_nxt)
    }

    /// In-order client bytes (or a FIN) arrived: ACK now (`now == true`)
    /// or after the delayed-ACK timer. Nothing is scheduled when the ACK
    /// is held at a point already acknowledged: it would be a duplicate
    /// ACK, which the client counts towards a fast retransmit of data we
    /// have. The commit that releases it sends it.
    pub(super) fn schedule_ack(&mut self, now: Instant, immediate: bool) {
        if self.acks_held() && self.ack_to_send() == self.last_ack_sent {
            if self.held_since.is_none() {
                self.held_since = Some(self.ts_now(now));
            }
            return;
        }
        if immediate {
            self.ack_now = true;
        } else if !self.ack_now && self.delack_at.is_none() {
            self.delack_at = Some(self.deadline(now, self.config.delayed_ack));
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

    fn push_event(&mut self, e: Event) {
        if let Some(g) = self.gap.as_mut() {
            // The application has not heard `Ready` yet.
            match e {
                Event::Readable => return g.readable = true,
                Event::PeerClosed => return g.peer_closed = true,
                _ => {}
            }
        }
        self.events.push(e);
    }
}
