//! Target `wire`: Ethernet, ARP, IPv4, ICMP, IPv6 (extension headers),
//! ICMPv6 (neighbor discovery, Packet Too Big), TCP and UDP parsing of one
//! frame.

use baton_dataplane::wire::{arp, ethernet, icmp, icmpv6, ipv4, ipv6, tcp, udp};
use std::net::IpAddr;

/// `data[0]` bit 0 set: fix the checksums first; the rest is one frame,
/// parsed down to its innermost header as the worker's ingress does, with
/// and without checksum trust.
pub fn run(data: &[u8]) {
    let Some((&ctl, frame)) = data.split_first() else {
        return;
    };
    let mut frame = frame.to_vec();
    if ctl & 1 == 1 {
        crate::frames::fix_checksums(&mut frame);
    }
    let Ok((eh, payload)) = ethernet::parse(&frame) else {
        return;
    };
    match eh.ethertype {
        ethernet::ETHERTYPE_ARP => {
            let _ = arp::parse(payload);
        }
        ethernet::ETHERTYPE_IPV4 => {
            let Ok((ih, l4)) = ipv4::parse(payload) else {
                return;
            };
            assert!(l4.len() + ih.header_len <= payload.len());
            match ih.protocol {
                ipv4::PROTO_ICMP => {
                    let _ = icmp::parse(l4);
                }
                ipv4::PROTO_TCP => {
                    let (s, d) = (IpAddr::V4(ih.src), IpAddr::V4(ih.dst));
                    let _ = tcp::parse(s, d, l4, true);
                    let _ = tcp::parse(s, d, l4, false);
                }
                udp::PROTOCOL => {
                    let (s, d) = (IpAddr::V4(ih.src), IpAddr::V4(ih.dst));
                    for trusted in [true, false] {
                        if let Ok(g) = udp::parse(s, d, l4, trusted) {
                            assert!(g.payload.len() + udp::HEADER_LEN <= l4.len());
                        }
                    }
                }
                _ => {}
            }
        }
        ethernet::ETHERTYPE_IPV6 => {
            let Ok((ih, l4)) = ipv6::parse(payload) else {
                return;
            };
            assert!(l4.len() + ih.header_len <= payload.len());
            match ih.protocol {
                ipv6::PROTO_ICMPV6 => {
                    if let Ok(icmpv6::Icmpv6::PacketTooBig { invoking, .. }) =
                        icmpv6::parse(ih.src, ih.dst, l4)
                    {
                        if let Ok((q, ql4)) = ipv6::parse_quoted(invoking) {
                            assert!(ql4.len() + q.header_len <= invoking.len());
                        }
                    }
                }
                ipv6::PROTO_TCP => {
                    let (s, d) = (IpAddr::V6(ih.src), IpAddr::V6(ih.dst));
                    let _ = tcp::parse(s, d, l4, true);
                    let _ = tcp::parse(s, d, l4, false);
                }
                _ => {}
            }
        }
        _ => {}
    }
}
