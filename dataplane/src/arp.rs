//! Layer 2/3 helpers of a worker: the neighbour cache (IPv4 → MAC, learned
//! from ARP and from every IPv4 frame a client sends us), and the frames
//! we answer with: ARP replies for owned service addresses (RFC 826),
//! gratuitous ARP announcements (RFC 5227 §3) and ICMP echo replies
//! (RFC 792). IPv6 neighbour discovery will sit beside this.

use crate::wire::ethernet::{self, EthernetHeader, MacAddr, BROADCAST};
use crate::wire::icmp::{self, IcmpMessage};
use crate::wire::{arp, ipv4, WireError};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Neighbours remembered at most; beyond this, new addresses are not
/// learned (a flood of spoofed sources must not grow memory without bound).
pub const DEFAULT_CAPACITY: usize = 1 << 20;
/// We ask for an unknown neighbour at most this often (RFC 1122 §2.3.2.1:
/// at most one request per second per destination).
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// IPv4 → MAC, learned passively.
#[derive(Debug)]
pub struct NeighbourCache {
    map: HashMap<Ipv4Addr, MacAddr>,
    requested: HashMap<Ipv4Addr, Instant>,
    capacity: usize,
}

impl Default for NeighbourCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl NeighbourCache {
    /// A cache holding at most `capacity` neighbours.
    pub fn with_capacity(capacity: usize) -> Self {
        NeighbourCache {
            map: HashMap::new(),
            requested: HashMap::new(),
            capacity,
        }
    }

    /// Records that `ip` is at `mac` (RFC 826's merge: an existing entry is
    /// updated, a new one added while there is room). Broadcast, multicast
    /// and unspecified sources are ignored.
    pub fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || mac.is_multicast() {
            return;
        }
        let room = self.map.len() < self.capacity;
        match self.map.get_mut(&ip) {
            Some(m) => *m = mac,
            None if room => {
                self.map.insert(ip, mac);
                self.requested.remove(&ip);
            }
            None => {}
        }
    }

    /// The MAC of `ip`, if known.
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.map.get(&ip).copied()
    }

    /// Number of known neighbours.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no neighbour is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True if an ARP request for `ip` may go out now (and notes that it did).
    pub fn should_request(&mut self, ip: Ipv4Addr, now: Instant) -> bool {
        if self.requested.len() > 4096 {
            self.requested
                .retain(|_, t| now.saturating_duration_since(*t) < REQUEST_INTERVAL);
        }
        match self.requested.get(&ip) {
            Some(t) if now.saturating_duration_since(*t) < REQUEST_INTERVAL => false,
            _ => {
                self.requested.insert(ip, now);
                true
            }
        }
    }
}

/// Writes an Ethernet frame carrying `p`; returns its length.
pub fn emit_arp_frame(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    p: &arp::ArpPacket,
) -> Result<usize, WireError> {
    let e = ethernet::emit(
        buf,
        &EthernetHeader {
            dst,
            src,
            ethertype: ethernet::ETHERTYPE_ARP,
        },
    )?;
    let a = arp::emit(buf.get_mut(e..).ok_or(WireError::BufferTooSmall)?, p)?;
    // Pad to the 60-byte Ethernet minimum; NICs do it, veth does not.
    let len = (e + a).max(60);
    buf.get_mut(e + a..len)
        .ok_or(WireError::BufferTooSmall)?
        .fill(0);
    Ok(len)
}

/// The reply to an ARP request for `our_ip` (RFC 826 "swap fields").
pub fn emit_arp_reply(
    buf: &mut [u8],
    our_mac: MacAddr,
    our_ip: Ipv4Addr,
    req: &arp::ArpPacket,
) -> Result<usize, WireError> {
    emit_arp_frame(
        buf,
        req.sender_mac,
        our_mac,
        &arp::ArpPacket {
            op: arp::OP_REPLY,
            sender_mac: our_mac,
            sender_ip: our_ip,
            target_mac: req.sender_mac,
            target_ip: req.sender_ip,
        },
    )
}

/// A gratuitous ARP announcement of `ip` at `mac`: a broadcast request
/// whose sender and target address are both `ip` (RFC 5227 §3). Peers
/// that already know `ip` update their entry, which is how clients follow
/// a service address to the survivor that inherits it.
pub fn emit_announcement(buf: &mut [u8], mac: MacAddr, ip: Ipv4Addr) -> Result<usize, WireError> {
    emit_arp_frame(
        buf,
        BROADCAST,
        mac,
        &arp::ArpPacket {
            op: arp::OP_REQUEST,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::default(),
            target_ip: ip,
        },
    )
}

/// A broadcast request for `target`'s MAC.
pub fn emit_request(
    buf: &mut [u8],
    mac: MacAddr,
    our_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Result<usize, WireError> {
    emit_arp_frame(
        buf,
        BROADCAST,
        mac,
        &arp::ArpPacket {
            op: arp::OP_REQUEST,
            sender_mac: mac,
            sender_ip: our_ip,
            target_mac: MacAddr::default(),
            target_ip: target,
        },
    )
}

/// The echo reply frame to `req`, from `our_ip`/`our_mac` back to the
/// requester.
pub fn emit_echo_reply_frame(
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

#[cfg(test)]
mod tests {
    use super::*;

    const ME: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x11]);
    const PEER: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);

    #[test]
    fn learned_neighbour_is_found_and_updated() {
        let mut c = NeighbourCache::default();
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        assert_eq!(c.lookup(ip), None);
        c.learn(ip, PEER);
        assert_eq!(c.lookup(ip), Some(PEER));
        c.learn(ip, ME);
        assert_eq!(c.lookup(ip), Some(ME));
        c.learn(Ipv4Addr::UNSPECIFIED, PEER);
        c.learn(Ipv4Addr::new(198, 18, 0, 101), BROADCAST);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn full_cache_keeps_updating_but_learns_nothing_new() {
        let mut c = NeighbourCache::with_capacity(1);
        c.learn(Ipv4Addr::new(198, 18, 0, 1), PEER);
        c.learn(Ipv4Addr::new(198, 18, 0, 2), PEER);
        assert_eq!(c.lookup(Ipv4Addr::new(198, 18, 0, 2)), None);
        c.learn(Ipv4Addr::new(198, 18, 0, 1), ME);
        assert_eq!(c.lookup(Ipv4Addr::new(198, 18, 0, 1)), Some(ME));
    }

    #[test]
    fn requests_for_one_address_are_rate_limited_to_one_per_second() {
        let mut c = NeighbourCache::default();
        let t0 = Instant::now();
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        assert!(c.should_request(ip, t0));
        assert!(!c.should_request(ip, t0 + Duration::from_millis(500)));
        assert!(c.should_request(ip, t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn announcement_is_a_broadcast_request_for_our_own_address() {
        let mut buf = [0u8; 100];
        let ip = Ipv4Addr::new(198, 18, 0, 11);
        let n = emit_announcement(&mut buf, ME, ip).unwrap();
        assert_eq!(n, 60);
        let (eh, rest) = ethernet::parse(&buf[..n]).unwrap();
        assert!(eh.dst.is_broadcast());
        let p = arp::parse(rest).unwrap();
        assert_eq!(
            (p.op, p.sender_ip, p.target_ip, p.sender_mac),
            (arp::OP_REQUEST, ip, ip, ME)
        );
    }

    #[test]
    fn arp_reply_swaps_sender_and_target() {
        let req = arp::ArpPacket {
            op: arp::OP_REQUEST,
            sender_mac: PEER,
            sender_ip: Ipv4Addr::new(198, 18, 0, 100),
            target_mac: MacAddr::default(),
            target_ip: Ipv4Addr::new(198, 18, 0, 11),
        };
        let mut buf = [0u8; 100];
        let n = emit_arp_reply(&mut buf, ME, req.target_ip, &req).unwrap();
        let (eh, rest) = ethernet::parse(&buf[..n]).unwrap();
        assert_eq!(eh.dst, PEER);
        let p = arp::parse(rest).unwrap();
        assert_eq!(p.op, arp::OP_REPLY);
        assert_eq!((p.sender_mac, p.sender_ip), (ME, req.target_ip));
        assert_eq!((p.target_mac, p.target_ip), (PEER, req.sender_ip));
    }
}
