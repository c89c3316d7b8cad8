//! Checksum repair for fuzzed frames: a mutated frame almost never keeps
//! valid IPv4 and TCP/UDP/ICMP checksums, so a target may fix them first and
//! reach the code behind the checks.

use baton_dataplane::wire::checksum::{checksum, pseudo_header};
use baton_dataplane::wire::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, HEADER_LEN};
use baton_dataplane::wire::ipv6;
use std::net::{IpAddr, Ipv4Addr};

/// Rewrites the IPv4 header checksum and the TCP, UDP or ICMP checksum of an
/// Ethernet/IPv4 frame in place, as far as the frame's own lengths allow.
pub fn fix_checksums(f: &mut [u8]) {
    if f.len() >= HEADER_LEN && u16::from_be_bytes([f[12], f[13]]) == ETHERTYPE_IPV6 {
        return fix_checksums_v6(&mut f[HEADER_LEN..]);
    }
    if f.len() < HEADER_LEN + 20 || u16::from_be_bytes([f[12], f[13]]) != ETHERTYPE_IPV4 {
        return;
    }
    let ip = &mut f[HEADER_LEN..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < 20 || ihl > ip.len() {
        return;
    }
    ip[10] = 0;
    ip[11] = 0;
    let c = checksum(&ip[..ihl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).clamp(ihl, ip.len());
    let (src, dst) = (
        Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
    );
    let proto = ip[9];
    let l4 = &mut ip[ihl..total];
    match proto {
        1 if l4.len() >= 8 => {
            l4[2] = 0;
            l4[3] = 0;
            let c = checksum(l4);
            l4[2..4].copy_from_slice(&c.to_be_bytes());
        }
        6 if l4.len() >= 20 => {
            l4[16] = 0;
            l4[17] = 0;
            let mut c = pseudo_header(IpAddr::V4(src), IpAddr::V4(dst), 6, l4.len() as u32);
            c.add(l4);
            l4[16..18].copy_from_slice(&c.finish().to_be_bytes());
        }
        17 if l4.len() >= 8 => {
            l4[6] = 0;
            l4[7] = 0;
            let mut c = pseudo_header(IpAddr::V4(src), IpAddr::V4(dst), 17, l4.len() as u32);
            c.add(l4);
            l4[6..8].copy_from_slice(&c.finish().to_be_bytes());
        }
        _ => {}
    }
}

/// The IPv6 half of [`fix_checksums`]: the TCP or ICMPv6 checksum after
/// the extension headers (IPv6 has no header checksum).
fn fix_checksums_v6(ip: &mut [u8]) {
    let Ok((h, l4)) = ipv6::parse_quoted(ip) else {
        return;
    };
    let (at, len) = (h.header_len, l4.len());
    let (src, dst) = (IpAddr::V6(h.src), IpAddr::V6(h.dst));
    let at_sum = match h.protocol {
        ipv6::PROTO_TCP if len >= 20 => 16,
        ipv6::PROTO_ICMPV6 if len >= 4 => 2,
        _ => return,
    };
    let l4 = &mut ip[at..at + len];
    l4[at_sum] = 0;
    l4[at_sum + 1] = 0;
    let mut c = pseudo_header(src, dst, h.protocol, len as u32);
    c.add(l4);
    l4[at_sum..at_sum + 2].copy_from_slice(&c.finish().to_be_bytes());
}
