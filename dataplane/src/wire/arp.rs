//! ARP for IPv4 over Ethernet (RFC 826), including gratuitous ARP
//! (RFC 5227 §3: an ARP request whose sender and target IP are both ours).

use super::ethernet::MacAddr;
use super::WireError;
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// ARP request opcode.
pub const OP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const OP_REPLY: u16 = 2;

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// Request or reply.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in requests).
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// Parses an ARP packet; anything but Ethernet (htype 1) / IPv4 is malformed
/// for us (RFC 826 "?Do I have the hardware type in ar$hrd?").
pub fn parse(b: &[u8]) -> Result<ArpPacket, WireError> {
    let b = b.get(..PACKET_LEN).ok_or(WireError::ArpMalformed)?;
    if b[0..2] != [0, 1] || b[2..4] != [0x08, 0x00] || b[4] != 6 || b[5] != 4 {
        return Err(WireError::ArpMalformed);
    }
    let op = u16::from_be_bytes([b[6], b[7]]);
    let mac = |at: usize| {
        let mut m = [0u8; 6];
        m.copy_from_slice(&b[at..at + 6]);
        MacAddr(m)
    };
    let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
    Ok(ArpPacket {
        op,
        sender_mac: mac(8),
        sender_ip: ip(14),
        target_mac: mac(18),
        target_ip: ip(24),
    })
}

/// Writes an ARP packet into `buf`; returns its length.
pub fn emit(buf: &mut [u8], p: &ArpPacket) -> Result<usize, WireError> {
    let b = buf.get_mut(..PACKET_LEN).ok_or(WireError::BufferTooSmall)?;
    b[0..2].copy_from_slice(&1u16.to_be_bytes());
    b[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
    b[4] = 6;
    b[5] = 4;
    b[6..8].copy_from_slice(&p.op.to_be_bytes());
    b[8..14].copy_from_slice(&p.sender_mac.0);
    b[14..18].copy_from_slice(&p.sender_ip.octets());
    b[18..24].copy_from_slice(&p.target_mac.0);
    b[24..28].copy_from_slice(&p.target_ip.octets());
    Ok(PACKET_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let p = ArpPacket {
            op: OP_REQUEST,
            sender_mac: MacAddr([2, 0, 0, 0, 0, 9]),
            sender_ip: Ipv4Addr::new(198, 18, 0, 100),
            target_mac: MacAddr::default(),
            target_ip: Ipv4Addr::new(198, 18, 0, 11),
        };
        let mut buf = [0u8; 28];
        emit(&mut buf, &p).unwrap();
        assert_eq!(parse(&buf), Ok(p));
    }

    #[test]
    fn non_ethernet_or_short_arp_is_malformed() {
        let mut buf = [0u8; 28];
        emit(
            &mut buf,
            &ArpPacket {
                op: OP_REPLY,
                sender_mac: MacAddr::default(),
                sender_ip: Ipv4Addr::UNSPECIFIED,
                target_mac: MacAddr::default(),
                target_ip: Ipv4Addr::UNSPECIFIED,
            },
        )
        .unwrap();
        assert_eq!(parse(&buf[..27]), Err(WireError::ArpMalformed));
        buf[1] = 6; // IEEE 802 hardware type
        assert_eq!(parse(&buf), Err(WireError::ArpMalformed));
    }
}
