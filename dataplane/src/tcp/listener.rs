//! Passive opens: the LISTEN state (RFC 9293 §3.10.7.2), a bounded SYN
//! backlog, SYN cookies when it is full, and RFC 6528 ISNs.
//!
//! SYN cookies follow Linux's layout: the ISN's top 8 bits are a coarse
//! counter (64 s ticks), the low 24 bits a keyed hash of the 4-tuple, the
//! client's ISN and the counter, plus the MSS index (2 bits; a forged
//! cookie passes with probability about 2^-22). When the client offered
//! timestamps, the low 6 bits of our TSval carry the rest (client window
//! scale, 4 bits with 15 = none; SACK-permitted; a marker bit) and come
//! back in the ACK's TSecr; without timestamps a cookie connection has no
//! window scaling and no SACK, as on Linux. A cookie is valid for the
//! current and the previous tick (64-128 s), like MAX_SYNCOOKIE_AGE.
//!
//! A cookie ACK is only checked when this listener sent cookies within
//! that window (the backlog overflowed), as Linux's
//! tcp_synq_no_recent_overflow: otherwise a blind ACK that happens to
//! validate (about 2^-22 each, cheap to try in bulk) would open a
//! connection on a listener that never answered with a cookie.

use super::siphash::siphash24;
use super::tcb::DEFAULT_PEER_MSS;
use super::{Flags, FourTuple, Options, OutSegment, Segment, SeqNum, Tcb, TcpConfig};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// MSS values a cookie can encode (Linux's msstab for IPv4).
const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// Seconds per cookie counter tick.
const COOKIE_TICK_SECS: u64 = 64;
/// How long after the last cookie SYN-ACK a cookie ACK may still come back:
/// the current and the previous tick, the longest a cookie validates.
const COOKIE_VALID: Duration = Duration::from_secs(2 * COOKIE_TICK_SECS);
/// Values of the MSS index carried in the ISN.
const COOKIE_DATA_MAX: u32 = MSS_TABLE.len() as u32;
/// Low bits of our TSval that carry options in a cookie SYN-ACK.
const TS_OPT_BITS: u32 = 6;
const TS_OPT_MASK: u32 = (1 << TS_OPT_BITS) - 1;
/// Set in the TSval bits so an ACK echoing an ordinary TSval is not
/// mistaken for one carrying options.
const TS_OPT_MARKER: u32 = 1 << 5;
const COOKIE_MASK: u32 = 0x00ff_ffff;

/// Hash domains, so the ISN, cookie and timestamp offset never share output.
const DOMAIN_ISN: u8 = 1;
const DOMAIN_COOKIE: u8 = 2;
const DOMAIN_TS: u8 = 3;

/// What to do with a SYN for no known connection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SynOutcome {
    /// A new TCB in SYN-RECEIVED; its `poll_transmit` yields the SYN-ACK.
    Tcb(Tcb),
    /// The backlog is full: send this stateless SYN-ACK carrying a cookie.
    Cookie(OutSegment),
    /// Ignore the segment.
    Drop,
}

/// The passive-open side of one worker: stateless apart from its key and
/// the first instant it saw (the origin of its clocks).
#[derive(Debug)]
pub struct Listener {
    config: Arc<TcpConfig>,
    secret: [u8; 16],
    epoch: Option<Instant>,
    /// When the backlog last overflowed (the last cookie SYN-ACK).
    last_overflow: Option<Instant>,
    /// ACKs with no connection not checked as cookies because no cookie
    /// was sent within [`COOKIE_VALID`].
    cookie_acks_unexpected: u64,
    /// Tests pin the ISS (e.g. just below 2^32 to cross the wrap).
    #[cfg(test)]
    pub(crate) fixed_iss: Option<u32>,
}

impl Listener {
    /// A listener whose ISNs, timestamps offsets and cookies are keyed by
    /// `cookie_secret` (pick it at random per worker, or per cluster if
    /// another worker must validate cookies).
    pub fn new(config: TcpConfig, cookie_secret: [u8; 16]) -> Self {
        Listener {
            config: Arc::new(config),
            secret: cookie_secret,
            epoch: None,
            last_overflow: None,
            cookie_acks_unexpected: 0,
            #[cfg(test)]
            fixed_iss: None,
        }
    }

    /// The configuration new TCBs get.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// ACKs for no connection that were not checked as SYN-cookie ACKs
    /// because this listener sent no cookie recently (each got a RST).
    pub fn cookie_acks_unexpected(&self) -> u64 {
        self.cookie_acks_unexpected
    }

    /// True when a cookie sent now or up to [`COOKIE_VALID`] ago may come
    /// back (Linux's !tcp_synq_no_recent_overflow).
    fn recent_overflow(&self, now: Instant) -> bool {
        self.last_overflow
            .is_some_and(|t| now.saturating_duration_since(t) <= COOKIE_VALID)
    }

    /// A SYN for no known connection. `half_open` is how many SYN-RECEIVED
    /// TCBs the caller holds; from `backlog` on, answer with a SYN cookie
    /// instead of a TCB. Anything but a bare SYN (SYN+ACK, SYN+RST,
    /// SYN+FIN) is dropped.
    pub fn on_syn(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &Segment,
        half_open: usize,
        backlog: usize,
    ) -> SynOutcome {
        let f = seg.flags;
        if !f.syn || f.ack || f.rst || f.fin {
            return SynOutcome::Drop;
        }
        let epoch = self.epoch(now);
        if half_open >= backlog {
            self.last_overflow = Some(now);
            return SynOutcome::Cookie(self.cookie_syn_ack(now, tuple, seg));
        }
        let iss = self.isn(now, tuple);
        #[cfg(test)]
        let iss = self.fixed_iss.map_or(iss, SeqNum);
        let ts_base = self.hash(DOMAIN_TS, tuple, &[]) as u32;
        SynOutcome::Tcb(Tcb::new_passive(
            now,
            self.config.clone(),
            tuple,
            seg,
            iss,
            epoch,
            ts_base,
        ))
    }

    /// An active open from this box (FTP's active-mode data connection):
    /// a SYN-SENT TCB whose ISN follows RFC 6528 as a passive open's does.
    pub fn open(&mut self, now: Instant, tuple: FourTuple) -> Tcb {
        let iss = self.isn(now, tuple);
        Tcb::connect(now, (*self.config).clone(), tuple, iss)
    }

    /// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport,
    /// secretkey), M a 4 microsecond timer.
    fn isn(&mut self, now: Instant, tuple: FourTuple) -> SeqNum {
        let epoch = self.epoch(now);
        let m = (now.saturating_duration_since(epoch).as_micros() / 4) as u32;
        SeqNum(m.wrapping_add(self.hash(DOMAIN_ISN, tuple, &[]) as u32))
    }

    /// The connection an ACK for no known connection completes, if it
    /// returns a cookie this listener sent within [`COOKIE_VALID`] (none
    /// is checked when no cookie went out lately). Asked before anything
    /// else claims the segment: a client that opened a new connection
    /// through a cookie on a 4-tuple a stale route still names (a dead
    /// box's connection that reused it) must get that new connection.
    /// When it gives `None`, [`Listener::on_unknown`] says what to answer.
    pub fn cookie_ack(&mut self, now: Instant, tuple: FourTuple, seg: &Segment) -> Option<Tcb> {
        let f = seg.flags;
        if !f.ack || f.rst || f.syn || !self.recent_overflow(now) {
            return None;
        }
        let epoch = self.epoch(now);
        let cookie = seg.ack.0.wrapping_sub(1);
        let client_isn = seg.seq.0.wrapping_sub(1);
        let mss_idx = self.check_cookie(now, tuple, client_isn, cookie)?;
        let mss = MSS_TABLE[mss_idx as usize];
        // The rest of the options came back in the TSecr.
        let bits = seg
            .options
            .timestamps
            .map(|(_, ecr)| ecr & TS_OPT_MASK)
            .filter(|b| b & TS_OPT_MARKER != 0);
        let (ws, sack, ts) = match bits {
            Some(b) => ((b & 0xf) as u8, b & 0x10 != 0, true),
            None => (15, false, false),
        };
        let ts_base = self.hash(DOMAIN_TS, tuple, &[]) as u32;
        Some(Tcb::new_from_cookie(
            now,
            self.config.clone(),
            tuple,
            seg,
            SeqNum(cookie),
            SeqNum(client_isn),
            mss,
            (ws != 15).then_some(ws),
            sack,
            ts,
            epoch,
            ts_base,
        ))
    }

    /// The reply to a non-SYN segment for no known connection: a RST per
    /// RFC 9293 §3.10.7.1, or `None` to drop it (a RST, or a SYN, which
    /// goes to [`Listener::on_syn`]). A SYN cookie is the caller's to check
    /// first, with [`Listener::cookie_ack`]: this answers as if the segment
    /// completed nothing, so an ACK reaching it is refused.
    pub fn on_unknown(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &Segment,
    ) -> Option<OutSegment> {
        let f = seg.flags;
        if f.rst || f.syn {
            // "An incoming segment containing a RST is discarded".
            return None;
        }
        self.epoch(now);
        if f.ack {
            if !self.recent_overflow(now) {
                // `cookie_ack` did not even check it: no cookie of ours
                // can still be valid.
                self.cookie_acks_unexpected += 1;
            }
            // "If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>".
            let mut r = reply(tuple, seg.ack);
            r.flags.rst = true;
            return Some(r);
        }
        // "If the ACK bit is off, sequence number zero is used,
        // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>".
        let mut r = reply(tuple, SeqNum(0));
        r.flags.rst = true;
        r.flags.ack = true;
        r.ack = seg.seq + seg.seq_len();
        Some(r)
    }

    fn epoch(&mut self, now: Instant) -> Instant {
        *self.epoch.get_or_insert(now)
    }

    fn ts_now(&self, now: Instant, tuple: FourTuple) -> u32 {
        let ms = self
            .epoch
            .map(|e| now.saturating_duration_since(e).as_millis() as u32)
            .unwrap_or(0);
        (self.hash(DOMAIN_TS, tuple, &[]) as u32).wrapping_add(ms)
    }

    fn counter(&self, now: Instant) -> u32 {
        self.epoch
            .map(|e| (now.saturating_duration_since(e).as_secs() / COOKIE_TICK_SECS) as u32)
            .unwrap_or(0)
    }

    /// SipHash-2-4 of (domain, 4-tuple, extra words) under the secret.
    fn hash(&self, domain: u8, tuple: FourTuple, extra: &[u32]) -> u64 {
        let mut buf = [0u8; 64];
        buf[0] = domain;
        let mut n = 1;
        for a in [tuple.local, tuple.remote] {
            let ip = match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                IpAddr::V6(v6) => v6.octets(),
            };
            buf[n..n + 16].copy_from_slice(&ip);
            buf[n + 16..n + 18].copy_from_slice(&a.port().to_be_bytes());
            n += 18;
        }
        for w in extra.iter().take(4) {
            buf[n..n + 4].copy_from_slice(&w.to_le_bytes());
            n += 4;
        }
        siphash24(&self.secret, &buf[..n])
    }

    fn make_cookie(&self, now: Instant, tuple: FourTuple, client_isn: u32, mss_idx: u32) -> u32 {
        let count = self.counter(now);
        let h = self.hash(DOMAIN_COOKIE, tuple, &[client_isn, count]) as u32;
        ((count & 0xff) << 24) | (h.wrapping_add(mss_idx) & COOKIE_MASK)
    }

    fn check_cookie(
        &self,
        now: Instant,
        tuple: FourTuple,
        client_isn: u32,
        cookie: u32,
    ) -> Option<u32> {
        let now_count = self.counter(now);
        for age in 0..2u32 {
            let count = now_count.checked_sub(age)?;
            if count & 0xff != cookie >> 24 {
                continue;
            }
            let h = self.hash(DOMAIN_COOKIE, tuple, &[client_isn, count]) as u32;
            let data = (cookie.wrapping_sub(h)) & COOKIE_MASK;
            if data < COOKIE_DATA_MAX {
                return Some(data);
            }
        }
        None
    }

    fn cookie_syn_ack(&self, now: Instant, tuple: FourTuple, seg: &Segment) -> OutSegment {
        let cap = seg
            .options
            .mss
            .unwrap_or(DEFAULT_PEER_MSS)
            .min(self.config.mss_for(tuple.local.ip()));
        let mss_idx = MSS_TABLE.iter().rposition(|&m| m <= cap).unwrap_or(0) as u32;
        let cookie = self.make_cookie(now, tuple, seg.seq.0, mss_idx);
        let mut r = reply(tuple, SeqNum(cookie));
        r.flags.syn = true;
        r.flags.ack = true;
        r.ack = seg.seq + 1;
        r.window = self.config.recv_buffer.min(u32::from(u16::MAX)) as u16;
        r.options.mss = Some(self.config.mss_for(tuple.local.ip()));
        if let (true, Some((peer_tsval, _))) = (self.config.timestamps, seg.options.timestamps) {
            let ws = seg.options.window_scale.map(|w| w.min(14)).unwrap_or(15);
            let sack = self.config.sack && seg.options.sack_permitted;
            let bits = u32::from(ws) | (u32::from(sack) << 4) | TS_OPT_MARKER;
            // Linux's cookie_init_timestamp: keep our clock's high bits, and
            // never go above the clock (the TCB continues from it: PAWS).
            let clock = self.ts_now(now, tuple);
            let mut tsval = (clock & !TS_OPT_MASK) | bits;
            if (tsval.wrapping_sub(clock) as i32) > 0 {
                tsval = tsval.wrapping_sub(1 << TS_OPT_BITS);
            }
            r.options.timestamps = Some((tsval, peer_tsval));
            r.options.window_scale = (ws != 15).then_some(self.config.window_scale.min(14));
            r.options.sack_permitted = sack;
        }
        r
    }
}

fn reply(tuple: FourTuple, seq: SeqNum) -> OutSegment {
    let port = |a: SocketAddr| a.port();
    OutSegment {
        src_port: port(tuple.local),
        dst_port: port(tuple.remote),
        seq,
        ack: SeqNum(0),
        flags: Flags::default(),
        window: 0,
        options: Options::default(),
        payload: Vec::new(),
    }
}
