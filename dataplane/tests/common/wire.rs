//! The test network's addresses, and the frames a test client sends or
//! reads: Ethernet, ARP (RFC 826), IPv4 and TCP built with the dataplane's
//! own emitters, so every test speaks the same wire.

use baton_dataplane::tcp::{Flags, OutSegment, Segment, SeqNum};
use baton_dataplane::wire::ethernet::{self, EthernetHeader, MacAddr, BROADCAST};
use baton_dataplane::wire::{arp, ipv4, tcp};
use std::net::{IpAddr, Ipv4Addr};

/// The box's MAC on the in-memory link.
pub const BOX_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
/// The client's MAC on the in-memory link.
pub const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);
/// The service address the box owns (lab range 198.18.0.0/15).
pub const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
/// The client's address (`eth0` of the lab's client namespace).
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

/// An Ethernet frame `src` → `dst` carrying `payload`.
pub fn eth_frame(src: MacAddr, dst: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN];
    ethernet::emit(
        &mut f,
        &EthernetHeader {
            dst,
            src,
            ethertype,
        },
    )
    .expect("an Ethernet header fits its buffer");
    f.extend_from_slice(payload);
    f
}

/// A frame from [`CLIENT_MAC`] to `dst`.
pub fn client_eth(dst: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    eth_frame(CLIENT_MAC, dst, ethertype, payload)
}

/// An IPv4 packet [`CLIENT`] → [`SERVICE`] carrying `l4`, in a frame
/// `src_mac` → `dst_mac`.
pub fn ipv4_frame_between(src_mac: MacAddr, dst_mac: MacAddr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut ip = vec![0u8; 20];
    ipv4::emit(&mut ip, CLIENT, SERVICE, proto, 1, l4.len()).expect("an IPv4 header fits");
    ip.extend_from_slice(l4);
    eth_frame(src_mac, dst_mac, ethernet::ETHERTYPE_IPV4, &ip)
}

/// An IPv4 packet [`CLIENT`] → [`SERVICE`] on the in-memory link.
pub fn client_ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    ipv4_frame_between(CLIENT_MAC, BOX_MAC, proto, l4)
}

/// The client's TCP segment `seg` ([`CLIENT`] → [`SERVICE`]) in a frame
/// `src_mac` → `dst_mac`.
pub fn tcp_frame_between(src_mac: MacAddr, dst_mac: MacAddr, seg: &OutSegment) -> Vec<u8> {
    let mut b = vec![0u8; 1600];
    let n = tcp::emit(&mut b, IpAddr::V4(CLIENT), IpAddr::V4(SERVICE), seg)
        .expect("a client segment fits a frame");
    b.truncate(n);
    ipv4_frame_between(src_mac, dst_mac, ipv4::PROTO_TCP, &b)
}

/// The client's TCP segment `seg` on the in-memory link.
pub fn client_tcp(seg: &OutSegment) -> Vec<u8> {
    tcp_frame_between(CLIENT_MAC, BOX_MAC, seg)
}

/// A client SYN from `sport` to port 80.
pub fn syn(sport: u16, seq: u32, window: u16) -> OutSegment {
    OutSegment {
        src_port: sport,
        dst_port: 80,
        seq: SeqNum(seq),
        flags: Flags {
            syn: true,
            ..Flags::default()
        },
        window,
        ..OutSegment::default()
    }
}

/// A broadcast ARP request from `from_mac`/`from_ip` for `target_ip`.
pub fn arp_request(from_mac: MacAddr, from_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        BROADCAST,
        &arp::ArpPacket {
            op: arp::OP_REQUEST,
            sender_mac: from_mac,
            sender_ip: from_ip,
            target_mac: MacAddr::default(),
            target_ip,
        },
    )
}

/// An ARP reply "`from_ip` is at `from_mac`" sent to `to_mac`/`to_ip`.
pub fn arp_reply(
    from_mac: MacAddr,
    from_ip: Ipv4Addr,
    to_mac: MacAddr,
    to_ip: Ipv4Addr,
) -> Vec<u8> {
    arp_frame(
        to_mac,
        &arp::ArpPacket {
            op: arp::OP_REPLY,
            sender_mac: from_mac,
            sender_ip: from_ip,
            target_mac: to_mac,
            target_ip: to_ip,
        },
    )
}

fn arp_frame(dst: MacAddr, p: &arp::ArpPacket) -> Vec<u8> {
    let mut a = [0u8; arp::PACKET_LEN];
    arp::emit(&mut a, p).expect("an ARP packet fits its buffer");
    eth_frame(p.sender_mac, dst, ethernet::ETHERTYPE_ARP, &a)
}

/// The ARP request in `frame`, when it asks for `target_ip`.
pub fn arp_request_for(frame: &[u8], target_ip: Ipv4Addr) -> Option<arp::ArpPacket> {
    let (eh, rest) = ethernet::parse(frame).ok()?;
    if eh.ethertype != ethernet::ETHERTYPE_ARP {
        return None;
    }
    let a = arp::parse(rest).ok()?;
    (a.op == arp::OP_REQUEST && a.target_ip == target_ip).then_some(a)
}

/// The TCP segment in an IPv4 `frame`, checksum verified, with the frame's
/// Ethernet header; `None` for anything else.
pub fn tcp_of(frame: &[u8]) -> Option<(EthernetHeader, Segment<'_>)> {
    let (eh, p) = ethernet::parse(frame).ok()?;
    if eh.ethertype != ethernet::ETHERTYPE_IPV4 {
        return None;
    }
    let (ih, l4) = ipv4::parse(p).ok()?;
    if ih.protocol != ipv4::PROTO_TCP {
        return None;
    }
    let s = tcp::parse(IpAddr::V4(ih.src), IpAddr::V4(ih.dst), l4, false).ok()?;
    Some((eh, s))
}

/// A TCP segment `seg` from any `src_ip`/`src_mac` (a spoofed source) to
/// [`SERVICE`] on the in-memory link.
pub fn tcp_frame_from(src_mac: MacAddr, src_ip: Ipv4Addr, seg: &OutSegment) -> Vec<u8> {
    let mut b = vec![0u8; 1600];
    let n = tcp::emit(&mut b, IpAddr::V4(src_ip), IpAddr::V4(SERVICE), seg)
        .expect("a segment fits a frame");
    b.truncate(n);
    let mut ip = vec![0u8; 20];
    ipv4::emit(&mut ip, src_ip, SERVICE, ipv4::PROTO_TCP, 1, b.len()).expect("an IPv4 header fits");
    ip.extend_from_slice(&b);
    eth_frame(src_mac, BOX_MAC, ethernet::ETHERTYPE_IPV4, &ip)
}
