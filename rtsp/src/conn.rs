//! One RTSP control connection and the RTP flow it sets up, driven
//! sans-IO: the caller feeds the TCP bytes it received and its clock, and
//! gets back the response bytes to write and the datagrams to send, with
//! the time the next one is due. This is what a worker runs per connection
//! on the RTSP port; the worker owns sockets, the clock and the cache.
//!
//! It joins [`crate::session`] (what to answer) to [`crate::flow`] (what to
//! send) through the session's [`Host`] callbacks. It knows nothing of the
//! dataplane, the cache or the segment: objects come from the caller's
//! lookup function, and [`Conn::flow_record`] is the RTP flow's part of a
//! checkpoint, stored wherever the caller stores it.

use std::sync::Arc;

use crate::bundle::BundleRecord;
use crate::checkpoint::FlowRecord;
use crate::flow::{FlowConfig, RtpFlow};
use crate::request::{parse, Limits, Message};
use crate::rtcp;
use crate::rtp::interleave;
use crate::session::{Config, Host, ObjectInfo, RtpInfo, Session, State};
use crate::transport::Transport;
use crate::ts::{self, HZ, PACKET};

/// Finds an object's bytes by URL path (`/clip.ts`); `None`: not served.
pub type Lookup = Box<dyn FnMut(&str) -> Option<Arc<[u8]>> + Send>;

/// Where a media packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// A UDP datagram to this port of the client's address (the only
    /// address media may go to: the session refused any other).
    Udp(u16),
    /// Bytes appended to the connection's output (interleaved frame).
    Tcp,
}

/// The media side of one connection.
struct Media {
    lookup: Lookup,
    flow_cfg: FlowConfig,
    ssrc: u32,
    first_seq: u16,
    rtp_base: u32,
    now_us: u64,
    object: Option<Arc<[u8]>>,
    flow: Option<RtpFlow>,
    transport: Option<Transport>,
    /// The BYE after the object's last packet went (a player ends its
    /// recording on it, RFC 3550 §6.6).
    bye_sent: bool,
}

/// Normal play time from the object's first PCR to its last.
fn duration_ms(object: &[u8]) -> u64 {
    let mut first = None;
    let mut last = None;
    for p in object.chunks_exact(PACKET) {
        if let Some((_, pcr)) = ts::pcr(p) {
            first.get_or_insert(pcr);
            last = Some(pcr);
        }
    }
    match (first, last) {
        (Some(a), Some(b)) => ts::pcr_delta(a, b) / (HZ / 1000),
        _ => 0,
    }
}

impl Host for Media {
    fn lookup(&mut self, path: &str) -> Option<ObjectInfo> {
        let object = (self.lookup)(path)?;
        let info = ObjectInfo {
            duration_ms: duration_ms(&object),
        };
        self.object = Some(object);
        Some(info)
    }

    fn play(&mut self, _path: &str, from_ms: u64, transport: Transport) -> RtpInfo {
        self.transport = Some(transport);
        let now = self.now_us;
        let Some(object) = self.object.clone() else {
            return RtpInfo {
                seq: self.first_seq,
                rtptime: self.rtp_base,
            };
        };
        let flow = self.flow.get_or_insert_with(|| {
            RtpFlow::new(self.flow_cfg, self.ssrc, self.first_seq, self.rtp_base, now)
        });
        // A PLAY after PAUSE without a new range goes on from the same
        // byte; any other position is a seek.
        self.bye_sent = false;
        let (seq, rtptime) = if flow.offset() > 0 && from_ms == flow.npt_ms() {
            flow.resume(now)
        } else {
            flow.seek(&object, from_ms, now)
        };
        RtpInfo { seq, rtptime }
    }

    fn pause(&mut self) -> u64 {
        self.flow.as_mut().map_or(0, RtpFlow::pause)
    }

    fn stop(&mut self) {
        self.flow = None;
        self.transport = None;
    }
}

/// What a connection answered, for the caller's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered (refused bytes included).
    pub requests: u64,
    /// Of those, answered with a 4xx or 5xx status.
    pub refused: u64,
}

/// One control connection: its session, its flow and its unread bytes.
pub struct Conn {
    session: Session,
    media: Media,
    limits: Limits,
    buf: Vec<u8>,
    closing: bool,
    counts: Counts,
}

impl Conn {
    /// A new connection. The first RTP sequence number and timestamp are
    /// taken from `cfg.session_id` (the caller draws it at random, RFC
    /// 3550 §5.1 asks for random starts).
    pub fn new(cfg: Config, flow_cfg: FlowConfig, limits: Limits, lookup: Lookup) -> Conn {
        let media = Media {
            lookup,
            flow_cfg,
            ssrc: cfg.ssrc,
            first_seq: (cfg.session_id >> 32) as u16,
            rtp_base: cfg.session_id as u32,
            now_us: 0,
            object: None,
            flow: None,
            transport: None,
            bye_sent: false,
        };
        Conn {
            session: Session::new(cfg),
            media,
            limits,
            buf: Vec::new(),
            closing: false,
            counts: Counts::default(),
        }
    }

    /// The session's state.
    pub fn state(&self) -> State {
        self.session.state()
    }

    /// Whether SETUP may choose RTP over UDP ([`Session::set_udp`]).
    pub fn set_udp(&mut self, allowed: bool) {
        self.session.set_udp(allowed);
    }

    /// The session's transport, once set up.
    pub fn transport(&self) -> Option<Transport> {
        self.session.transport()
    }

    /// Requests answered and refused so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The client showed it is alive outside the connection (an RTCP
    /// receiver report over UDP): the session's timeout restarts.
    pub fn on_activity(&mut self, now_us: u64) {
        self.session.on_activity(now_us / 1000);
    }

    /// Whether the connection should be closed once `out` is written
    /// (bytes that did not parse were refused).
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Takes `data` received at `now_us` and appends the responses to
    /// every complete request to `out`.
    pub fn on_bytes(&mut self, now_us: u64, data: &[u8], out: &mut Vec<u8>) {
        if self.closing {
            return;
        }
        self.buf.extend_from_slice(data);
        self.media.now_us = now_us;
        let now_ms = now_us / 1000;
        loop {
            match parse(&self.buf, &self.limits) {
                Ok(None) => return,
                Ok(Some(Message::Request(req, len))) => {
                    let resp = self.session.handle(now_ms, &req, &mut self.media);
                    self.count(resp.status);
                    out.extend_from_slice(&resp.to_bytes());
                    self.buf.drain(..len.min(self.buf.len()));
                }
                Ok(Some(Message::Interleaved { len, .. })) => {
                    // RTCP from the client on an interleaved channel: proof
                    // of life, nothing to answer.
                    let total = 4 + usize::from(len);
                    if self.buf.len() < total {
                        return;
                    }
                    self.session.on_activity(now_ms);
                    self.buf.drain(..total);
                }
                Err(e) => {
                    let resp = Session::refuse(&e);
                    self.count(resp.status);
                    out.extend_from_slice(&resp.to_bytes());
                    self.buf.clear();
                    self.closing = true;
                    return;
                }
            }
        }
    }

    fn count(&mut self, status: u16) {
        self.counts.requests += 1;
        if status >= 400 {
            self.counts.refused += 1;
        }
    }

    /// When [`Conn::poll_media`] has something to send, or the session
    /// expires, whichever is first (µs).
    pub fn poll_at(&self) -> Option<u64> {
        let media = match (&self.media.flow, &self.media.object) {
            (Some(f), Some(o)) => f.poll_at(o),
            _ => None,
        };
        let expiry = self.session.timeout_at().map(|ms| ms.saturating_mul(1000));
        match (media, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends the session if it expired at `now_us`; true when it did.
    pub fn handle_timeout(&mut self, now_us: u64) -> bool {
        self.session.handle_timeout(now_us / 1000, &mut self.media)
    }

    /// Writes the next RTP packet due at `now_us` into `out` (an
    /// interleaved frame for a TCP transport) and says where it goes.
    pub fn poll_media(&mut self, now_us: u64, out: &mut Vec<u8>) -> Option<Dest> {
        let (Some(flow), Some(object), Some(t)) = (
            self.media.flow.as_mut(),
            self.media.object.as_ref(),
            self.media.transport,
        ) else {
            return None;
        };
        match t {
            Transport::Udp { client_rtp, .. } => flow
                .poll_transmit(now_us, object, out)
                .then_some(Dest::Udp(client_rtp)),
            Transport::Interleaved { rtp, .. } => {
                let mut pkt = Vec::new();
                if !flow.poll_transmit(now_us, object, &mut pkt) {
                    return None;
                }
                interleave(rtp, &pkt, out).map(|()| Dest::Tcp)
            }
        }
    }

    /// When [`Conn::poll_rtcp`] has something to send: the next sender
    /// report while playing, or at once the BYE after the last packet.
    pub fn rtcp_at(&self) -> Option<u64> {
        let (flow, object) = (self.media.flow.as_ref()?, self.media.object.as_ref()?);
        self.media.transport?;
        if flow.finished(object) {
            return (!self.media.bye_sent).then_some(0);
        }
        flow.sr_at()
    }

    /// Writes the RTCP packet due at `now_us` into `out` (an interleaved
    /// frame for a TCP transport) and says where it goes: a sender report
    /// (`ntp`: `now_us` on the wallclock in NTP format, `cname` its SDES
    /// name) every interval while playing; after the object's last packet
    /// a final report and a BYE, once.
    pub fn poll_rtcp(
        &mut self,
        now_us: u64,
        ntp: u64,
        cname: &str,
        out: &mut Vec<u8>,
    ) -> Option<Dest> {
        let (Some(flow), Some(object), Some(t)) = (
            self.media.flow.as_mut(),
            self.media.object.as_ref(),
            self.media.transport,
        ) else {
            return None;
        };
        let mut pkt = Vec::new();
        if flow.finished(object) {
            if self.media.bye_sent {
                return None;
            }
            self.media.bye_sent = true;
            // A compound packet starts with a report (RFC 3550 §6.1).
            let _ = flow.poll_rtcp(now_us, ntp, cname, &mut pkt);
            if pkt.is_empty() {
                rtcp::SenderReport {
                    ssrc: flow.ssrc(),
                    ntp,
                    rtp_time: flow.next().1,
                    packets: flow.checkpoint().packets,
                    octets: flow.checkpoint().octets,
                }
                .write(cname, &mut pkt);
            }
            rtcp::bye(flow.ssrc(), &mut pkt);
        } else if !flow.poll_rtcp(now_us, ntp, cname, &mut pkt) {
            return None;
        }
        match t {
            Transport::Udp { client_rtcp, .. } => {
                out.extend_from_slice(&pkt);
                Some(Dest::Udp(client_rtcp))
            }
            Transport::Interleaved { rtcp, .. } => interleave(rtcp, &pkt, out).map(|()| Dest::Tcp),
        }
    }

    /// The bundle's record: session and flow, for the control
    /// connection's checkpoint.
    pub fn checkpoint(&self) -> BundleRecord {
        let cfg = self.session.config();
        BundleRecord {
            session_id: cfg.session_id,
            ssrc: cfg.ssrc,
            session: self.session.snapshot(),
            flow: self.flow_record(),
        }
    }

    /// The connection a survivor goes on with: `cfg`'s addresses and
    /// ports with the record's session id and SSRC; the flow, if any,
    /// continues at `now_us` from the record's packet with its sequence
    /// numbers and timestamps. `None` when the object is no longer found
    /// (the caller resets the connection: better than a silent stream).
    pub fn restore(
        mut cfg: Config,
        flow_cfg: FlowConfig,
        limits: Limits,
        mut lookup: Lookup,
        rec: &BundleRecord,
        now_us: u64,
    ) -> Option<Conn> {
        cfg.session_id = rec.session_id;
        cfg.ssrc = rec.ssrc;
        let object = match rec.session.path.as_deref() {
            Some(p) => Some(lookup(p)?),
            None => None,
        };
        let flow = rec.flow.map(|f| RtpFlow::restore(flow_cfg, &f, now_us));
        let mut conn = Conn::new(cfg, flow_cfg, limits, lookup);
        conn.session = Session::restore(cfg, &rec.session, now_us / 1000);
        conn.media.object = object;
        conn.media.flow = flow;
        conn.media.transport = rec.session.transport;
        Some(conn)
    }

    /// The RTP flow's checkpoint record (none before the first PLAY).
    pub fn flow_record(&self) -> Option<FlowRecord> {
        self.media.flow.as_ref().map(RtpFlow::checkpoint)
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
