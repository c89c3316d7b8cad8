//! IPv6 ingress: a received IPv6 packet is parsed and dispatched, as
//! `ingress.rs` does for IPv4. Neighbor Solicitations for our addresses
//! are answered (DAD probes defended) and teach the cache, Advertisements
//! answer our own solicitations, an echo request is answered, a Packet Too
//! Big lowers its connection's MSS, and a TCP segment goes on to the demux
//! (`demux.rs`), which does not care about the family. The neighbour
//! discovery rules themselves are `neighbour::ndp`'s.

use super::state::Core;
use crate::app::App;
use crate::neighbour::ndp::{self, NsAction};
use crate::port::RxMeta;
use crate::tcp::{FourTuple, SeqNum, IPV6_MIN_MSS};
use crate::wire::ethernet::{self, EthernetHeader, MacAddr};
use crate::wire::icmpv6::{self, Icmpv6, NaFlags};
use crate::wire::ipv6::{self, Ipv6Header};
use crate::wire::WireError;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

/// TCP and IPv6 headers without options: what a Packet Too Big's MTU
/// leaves for TCP payload and options.
const TCP_IPV6_HEADERS: u32 = (ipv6::HEADER_LEN + crate::wire::tcp::MIN_HEADER_LEN) as u32;

impl Core {
    pub(super) fn on_ipv6<A: App>(
        &mut self,
        app: &mut A,
        frame: &[u8],
        eh: &EthernetHeader,
        payload: &[u8],
        meta: RxMeta,
        now: Instant,
    ) {
        let (ih, l4) = match ipv6::parse(payload) {
            Ok(x) => x,
            Err(e) => return self.counters.record(e),
        };
        let (src, dst) = (IpAddr::V6(ih.src), IpAddr::V6(ih.dst));
        // Multicast reaches us only for neighbour discovery (all-nodes and
        // our solicited-node groups, the MACs the port takes).
        let owned = self.owns(dst) || (ih.dst.is_multicast() && ih.protocol == ipv6::PROTO_ICMPV6);
        if !owned && !self.holds_forwarded(app, eh, ih.protocol, src, dst, l4) {
            self.counters.drop_ipv6_not_ours += 1;
            return;
        }
        match ih.protocol {
            ipv6::PROTO_TCP => self.on_tcp(app, frame, src, dst, l4, meta, now),
            ipv6::PROTO_ICMPV6 => self.on_icmpv6(eh, &ih, l4, now),
            crate::wire::udp::PROTOCOL if self.owns(dst) => {
                self.on_udp(app, (src, dst), l4, meta, now)
            }
            _ => self.counters.drop_ipv6_unknown_protocol += 1,
        }
    }

    fn on_icmpv6(&mut self, eh: &EthernetHeader, ih: &Ipv6Header, l4: &[u8], now: Instant) {
        let m = match icmpv6::parse(ih.src, ih.dst, l4) {
            Ok(m) => m,
            Err(e) => return self.counters.record(e),
        };
        match m {
            Icmpv6::Echo {
                request: true,
                ident,
                seq,
                data,
            } if !ih.dst.is_multicast() => self.echo_reply(eh, ih, ident, seq, data),
            Icmpv6::NeighborSolicitation { target, source_mac } => {
                self.on_solicitation(eh, ih, target, source_mac, now)
            }
            Icmpv6::NeighborAdvertisement {
                flags,
                target,
                target_mac,
            } => self.on_advertisement(eh, ih, flags, target, target_mac, now),
            Icmpv6::PacketTooBig { mtu, invoking } if !ih.dst.is_multicast() => {
                self.on_packet_too_big(mtu, invoking)
            }
            _ => self.counters.drop_icmpv6_unhandled += 1,
        }
    }

    fn echo_reply(
        &mut self,
        eh: &EthernetHeader,
        ih: &Ipv6Header,
        ident: u16,
        seq: u16,
        data: &[u8],
    ) {
        // The reply goes to the frame's source, like IPv4's: the source
        // address is unvalidated, so nothing is learned from it.
        let mac = self.mac;
        let buf = self.tx.next_buf();
        match emit_echo_reply_frame(buf, mac, eh.src, ih.dst, ih.src, ident, seq, data) {
            Ok(n) => {
                self.tx.commit(n);
                self.counters.icmpv6_echo_replies_sent += 1;
            }
            Err(e) => self.counters.record(e),
        }
    }

    fn on_solicitation(
        &mut self,
        eh: &EthernetHeader,
        ih: &Ipv6Header,
        target: Ipv6Addr,
        source_mac: Option<MacAddr>,
        now: Instant,
    ) {
        let owns = self.owns(IpAddr::V6(target));
        match ndp::on_solicitation(ih, target, source_mac, eh.src, owns) {
            NsAction::BadHopLimit => self.counters.drop_nd_bad_hop_limit += 1,
            NsAction::Malformed => self.counters.drop_nd_malformed += 1,
            NsAction::NotOurs => {
                // As ARP not for us: a known neighbour's entry is
                // refreshed, but the LAN's chatter adds none.
                if let Some(mac) = source_mac.filter(|m| *m == eh.src) {
                    if self.neighbours6.update(ih.src, mac, now) {
                        self.sync_neighbour_counters();
                        self.send_pending(IpAddr::V6(ih.src), now);
                    }
                }
                self.counters.nd_not_for_us += 1;
            }
            NsAction::Advertise {
                dst,
                dst_mac,
                solicited,
                learn,
            } => {
                // A solicitation for our address teaches its sender, as
                // ARP to us does; only if the frame came from that MAC.
                if let Some((ip, mac)) = learn.filter(|(_, m)| *m == eh.src) {
                    self.learn_and_tell(IpAddr::V6(ip), mac, now);
                    self.send_pending(IpAddr::V6(ip), now);
                }
                let mac = self.mac;
                let buf = self.tx.next_buf();
                match ndp::emit_advertisement(buf, mac, target, dst_mac, dst, solicited) {
                    Ok(n) => {
                        self.tx.commit(n);
                        self.counters.nd_advertisements_sent += 1;
                    }
                    Err(e) => self.counters.record(e),
                }
            }
        }
    }

    fn on_advertisement(
        &mut self,
        eh: &EthernetHeader,
        ih: &Ipv6Header,
        flags: NaFlags,
        target: Ipv6Addr,
        target_mac: Option<MacAddr>,
        now: Instant,
    ) {
        match ndp::advertisement_valid(ih, flags) {
            Err(NsAction::BadHopLimit) => return self.counters.drop_nd_bad_hop_limit += 1,
            Err(_) => return self.counters.drop_nd_malformed += 1,
            Ok(()) => {}
        }
        if self.owns(IpAddr::V6(target)) {
            // Another node claims one of our addresses (a dead box's
            // stale announcement, a misconfiguration): ours stands.
            self.counters.nd_not_for_us += 1;
            return;
        }
        let mac = target_mac.unwrap_or(eh.src);
        // The answer to our own solicitation (unicast to one of our
        // addresses, Solicited) is trusted as an ARP reply to us is; an
        // unsolicited one only refreshes a neighbour we already know.
        let known = if flags.solicited && self.owns(IpAddr::V6(ih.dst)) {
            self.learn_and_tell(IpAddr::V6(target), mac, now);
            true
        } else {
            let known = self.neighbours6.update(target, mac, now);
            self.sync_neighbour_counters();
            known
        };
        if known {
            self.send_pending(IpAddr::V6(target), now);
        } else {
            self.counters.neighbour_learn_refused += 1;
        }
    }

    /// RFC 8201 §4: a Packet Too Big for one of our connections, quoting a
    /// segment still in flight (§5.2: not a blind guess), lowers its
    /// MSS to what the reported MTU carries, the MTU clamped to IPv6's
    /// minimum of 1280 (a smaller one is a lie or an IPv4 translator's,
    /// and the segments we send fit 1280 anyway).
    fn on_packet_too_big(&mut self, mtu: u32, invoking: &[u8]) {
        let Some((tuple, seq)) = quoted_tuple(invoking) else {
            self.counters.drop_icmpv6_ptb_ignored += 1;
            return;
        };
        let mtu = mtu.max(ipv6::MIN_MTU as u32);
        let mss = u16::try_from(mtu - TCP_IPV6_HEADERS)
            .unwrap_or(u16::MAX)
            .max(IPV6_MIN_MSS);
        let lowered = self
            .flows
            .lookup(&tuple)
            .and_then(|id| self.flows.get_mut(id))
            .is_some_and(|c| c.tcb.in_flight(seq) && c.tcb.lower_mss(mss));
        if lowered {
            self.counters.icmpv6_ptb_applied += 1;
        } else {
            self.counters.drop_icmpv6_ptb_ignored += 1;
        }
    }
}

/// The connection a Packet Too Big is about, and the sequence number of
/// the segment quoted: the invoking packet is one we sent, so its source
/// is our side. Only TCP has connections to lower.
fn quoted_tuple(invoking: &[u8]) -> Option<(FourTuple, SeqNum)> {
    let (h, l4) = ipv6::parse_quoted(invoking).ok()?;
    if h.protocol != ipv6::PROTO_TCP {
        return None;
    }
    let (sp, dp, sq) = (l4.get(0..2)?, l4.get(2..4)?, l4.get(4..8)?);
    let tuple = FourTuple {
        local: SocketAddr::new(IpAddr::V6(h.src), u16::from_be_bytes([sp[0], sp[1]])),
        remote: SocketAddr::new(IpAddr::V6(h.dst), u16::from_be_bytes([dp[0], dp[1]])),
    };
    Some((
        tuple,
        SeqNum(u32::from_be_bytes([sq[0], sq[1], sq[2], sq[3]])),
    ))
}

/// The echo reply frame from `our_ip`/`our_mac` back to the requester.
#[allow(clippy::too_many_arguments)]
fn emit_echo_reply_frame(
    buf: &mut [u8],
    our_mac: MacAddr,
    peer_mac: MacAddr,
    our_ip: Ipv6Addr,
    peer_ip: Ipv6Addr,
    ident: u16,
    seq: u16,
    data: &[u8],
) -> Result<usize, WireError> {
    let e = ethernet::emit(
        buf,
        &EthernetHeader {
            dst: peer_mac,
            src: our_mac,
            ethertype: ethernet::ETHERTYPE_IPV6,
        },
    )?;
    let l4_at = e + ipv6::HEADER_LEN;
    let n = icmpv6::emit_echo_reply(
        buf.get_mut(l4_at..).ok_or(WireError::BufferTooSmall)?,
        our_ip,
        peer_ip,
        ident,
        seq,
        data,
    )?;
    ipv6::emit(
        &mut buf[e..],
        our_ip,
        peer_ip,
        ipv6::PROTO_ICMPV6,
        ipv6::DEFAULT_HOP_LIMIT,
        n,
    )?;
    Ok(l4_at + n)
}
