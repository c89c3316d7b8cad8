//! ARP (RFC 826) for the addresses we own: replies to requests for a
//! service address, gratuitous announcements (RFC 5227 §3) that move an
//! address to this box, and requests for a neighbour we must reach.
//! Builds frames only; the worker decides when to send them and feeds what
//! it learns to the [`super::NeighbourCache`].

use crate::wire::ethernet::{self, EthernetHeader, MacAddr, BROADCAST};
use crate::wire::{arp, WireError};
use std::net::Ipv4Addr;

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

#[cfg(test)]
mod tests {
    use super::*;

    const ME: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x11]);
    const PEER: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);

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
