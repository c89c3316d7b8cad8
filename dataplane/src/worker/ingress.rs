//! Ingress: a received frame is parsed and dispatched. ARP updates the
//! neighbour table and is answered for our addresses, an ICMP echo request
//! is answered, a TCP segment goes on to the demux (`demux.rs`), a UDP
//! datagram to its flow (`udp.rs`); IPv6 continues in `ingress6.rs`.
//! Frames for addresses we neither own nor hold a connection for are
//! counted and dropped here.

use super::state::Core;
use crate::app::App;
use crate::neighbour;
use crate::port::RxMeta;
use crate::tcp::FourTuple;
use crate::wire::ethernet::{self, EthernetHeader, MacAddr};
use crate::wire::icmp::{self, IcmpMessage};
use crate::wire::{arp, ipv4, udp, WireError};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

impl Core {
    pub(super) fn on_frame<A: App>(
        &mut self,
        app: &mut A,
        frame: &[u8],
        meta: RxMeta,
        now: Instant,
    ) {
        self.counters.rx_frames += 1;
        self.counters.rx_bytes += frame.len() as u64;
        let (eh, payload) = match ethernet::parse(frame) {
            Ok(x) => x,
            Err(e) => return self.counters.record(e),
        };
        if eh.dst != self.mac
            && !eh.dst.is_broadcast()
            && !neighbour::ndp::accepts_multicast_mac(eh.dst, self.service_v6())
        {
            self.counters.drop_eth_not_for_us += 1;
            return;
        }
        match eh.ethertype {
            ethernet::ETHERTYPE_ARP => self.on_arp(&eh, payload, now),
            ethernet::ETHERTYPE_IPV4 => self.on_ipv4(app, frame, &eh, payload, meta, now),
            ethernet::ETHERTYPE_IPV6 => self.on_ipv6(app, frame, &eh, payload, meta, now),
            _ => self.counters.drop_eth_unknown_type += 1,
        }
    }

    fn on_arp(&mut self, eh: &EthernetHeader, payload: &[u8], now: Instant) {
        let p = match arp::parse(payload) {
            Ok(p) => p,
            Err(e) => return self.counters.record(e),
        };
        // RFC 826: merge the sender into the table before looking at the
        // op; but only ARP addressed to one of our addresses may add an
        // entry, so a LAN's chatter (or a flood of invented senders) does
        // not fill the cache.
        if eh.src == p.sender_mac {
            let known = if self.owns_v4(p.target_ip) {
                self.learn_and_tell(IpAddr::V4(p.sender_ip), p.sender_mac, now);
                true
            } else {
                let known = self.neighbours.update(p.sender_ip, p.sender_mac, now);
                self.sync_neighbour_counters();
                known
            };
            if known {
                self.send_pending(IpAddr::V4(p.sender_ip), now);
            } else {
                self.counters.neighbour_learn_refused += 1;
            }
        }
        if p.op == arp::OP_REQUEST && self.owns_v4(p.target_ip) {
            let mac = self.mac;
            let buf = self.tx.next_buf();
            match neighbour::arp::emit_arp_reply(buf, mac, p.target_ip, &p) {
                Ok(n) => {
                    self.tx.commit(n);
                    self.counters.arp_replies_sent += 1;
                }
                Err(e) => self.counters.record(e),
            }
        } else {
            self.counters.arp_not_for_us += 1;
        }
    }

    fn on_ipv4<A: App>(
        &mut self,
        app: &mut A,
        frame: &[u8],
        eh: &EthernetHeader,
        payload: &[u8],
        meta: RxMeta,
        now: Instant,
    ) {
        let (ih, l4) = match ipv4::parse(payload) {
            Ok(x) => x,
            Err(e) => return self.counters.record(e),
        };
        let (src, dst) = (IpAddr::V4(ih.src), IpAddr::V4(ih.dst));
        let owned = self.owns_v4(ih.dst);
        if !owned && !self.holds_forwarded(app, eh, ih.protocol, src, dst, l4) {
            self.counters.drop_ipv4_not_ours += 1;
            return;
        }
        // No neighbour is learned here: the IPv4 source is unvalidated. A
        // TCP client's MAC is learned once a connection accepts its
        // segment (demux.rs); an echo reply goes to the frame's source.
        match ih.protocol {
            ipv4::PROTO_TCP => self.on_tcp(app, frame, src, dst, l4, meta, now),
            ipv4::PROTO_ICMP => self.on_icmp(eh, &ih, l4),
            udp::PROTOCOL if owned => {
                self.on_udp(app, (IpAddr::V4(ih.src), IpAddr::V4(ih.dst)), l4, meta, now)
            }
            _ => self.counters.drop_ipv4_unknown_protocol += 1,
        }
    }

    /// Teaches the neighbour cache of `ip`'s family that `ip` is at `mac`
    /// (the caller trusts the source), with its counters.
    pub(super) fn learn_neighbour(&mut self, ip: IpAddr, mac: MacAddr, now: Instant) {
        match ip {
            IpAddr::V4(v4) => {
                self.neighbours.learn(v4, mac, now);
            }
            IpAddr::V6(v6) => {
                self.neighbours6.learn(v6, mac, now);
            }
        }
        self.sync_neighbour_counters();
    }

    /// [`Self::learn_neighbour`] for what ARP or NDP addressed to us
    /// taught, and news for the sibling workers: the fanout sends those
    /// frames to worker 0 only (`siblings.rs`).
    pub(super) fn learn_and_tell(&mut self, ip: IpAddr, mac: MacAddr, now: Instant) {
        self.learn_neighbour(ip, mac, now);
        if let Some(s) = &self.siblings {
            self.counters.neighbour_news_dropped += s.post((ip, mac));
        }
    }

    /// What the sibling workers learned from ARP and NDP: learned here
    /// too, and the frames held for those addresses go out.
    pub(super) fn take_neighbour_news(&mut self, now: Instant) {
        while let Some((ip, mac)) = self.siblings.as_ref().and_then(|s| s.next()) {
            self.learn_neighbour(ip, mac, now);
            self.counters.neighbour_news_learned += 1;
            self.send_pending(ip, now);
        }
    }

    /// The MAC the neighbour cache of `ip`'s family knows for it.
    pub(super) fn neighbour_mac(&self, ip: IpAddr, now: Instant) -> Option<MacAddr> {
        match ip {
            IpAddr::V4(v4) => self.neighbours.lookup(v4, now),
            IpAddr::V6(v6) => self.neighbours6.lookup(v6, now),
        }
    }

    /// The caches count their evictions and expiries themselves (they
    /// free entries inside `learn` and `update`); the worker's counters
    /// copy their sum.
    pub(super) fn sync_neighbour_counters(&mut self) {
        self.counters.neighbour_evicted = self.neighbours.evicted() + self.neighbours6.evicted();
        self.counters.neighbour_expired = self.neighbours.expired() + self.neighbours6.expired();
    }

    /// A frame for an address we do not own, sent to our MAC by the survivor
    /// that inherited a dead box's address, for a connection restored here
    /// (ARCHITECTURE.md "Takeover" step 3) or one of our orphans not yet
    /// restored (the app's [`App::is_orphan`]: its segment restores it
    /// lazily, as at the inheritor), or one the app parked
    /// ([`App::holds_parked`]): ours to process. We never answer ARP
    /// for such an address, so only forwarded frames reach us.
    pub(super) fn holds_forwarded<A: App>(
        &self,
        app: &mut A,
        eh: &EthernetHeader,
        protocol: u8,
        src: IpAddr,
        dst: IpAddr,
        l4: &[u8],
    ) -> bool {
        // TCP's protocol number is the same in IPv4 and IPv6.
        if protocol != ipv4::PROTO_TCP || eh.dst != self.mac {
            return false;
        }
        let (Some(sp), Some(dp)) = (l4.get(0..2), l4.get(2..4)) else {
            return false;
        };
        let tuple = FourTuple {
            local: SocketAddr::new(dst, u16::from_be_bytes([dp[0], dp[1]])),
            remote: SocketAddr::new(src, u16::from_be_bytes([sp[0], sp[1]])),
        };
        if self.flows.lookup(&tuple).is_some() {
            return true;
        }
        // A bare SYN forwarded by a box that hands clients to us (migrate:
        // a moved FTP session's next data connection, to the migrating
        // box's address): the listener decides, and the app resets what
        // no session of ours waits for.
        let flags = l4.get(13).copied().unwrap_or(0);
        self.forwarders.contains(&eh.src)
            && (flags & 0x12 == 0x02 || app.is_orphan(&tuple) || app.holds_parked(&tuple))
    }

    fn on_icmp(&mut self, eh: &EthernetHeader, ih: &ipv4::Ipv4Header, l4: &[u8]) {
        let m = match icmp::parse(l4) {
            Ok(m) => m,
            Err(e) => return self.counters.record(e),
        };
        if m.ty != icmp::TYPE_ECHO_REQUEST || m.code != 0 {
            self.counters.drop_icmp_unhandled += 1;
            return;
        }
        let id = self.next_ip_id();
        let mac = self.mac;
        let buf = self.tx.next_buf();
        match emit_echo_reply_frame(buf, mac, eh.src, ih.dst, ih.src, id, &m) {
            Ok(n) => {
                self.tx.commit(n);
                self.counters.icmp_echo_replies_sent += 1;
            }
            Err(e) => self.counters.record(e),
        }
    }
}

/// The echo reply frame to `req`, from `our_ip`/`our_mac` back to the
/// requester.
fn emit_echo_reply_frame(
    buf: &mut [u8],
    our_mac: MacAddr,
    peer_mac: MacAddr,
    our_ip: Ipv4Addr,
    peer_ip: Ipv4Addr,
    ip_id: u16,
    req: &IcmpMessage<'_>,
) -> Result<usize, WireError> {
    let e = ethernet::emit(
        buf,
        &EthernetHeader {
            dst: peer_mac,
            src: our_mac,
            ethertype: ethernet::ETHERTYPE_IPV4,
        },
    )?;
    let ip_at = e;
    let l4_at = ip_at + ipv4::MIN_HEADER_LEN;
    let n = icmp::emit_echo_reply(buf.get_mut(l4_at..).ok_or(WireError::BufferTooSmall)?, req)?;
    ipv4::emit(
        &mut buf[ip_at..],
        our_ip,
        peer_ip,
        ipv4::PROTO_ICMP,
        ip_id,
        n,
    )?;
    Ok(l4_at + n)
}
