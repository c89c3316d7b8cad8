//! IPv4 headers (RFC 791): verified on the way in, built on the way out.
//!
//! We never reassemble: a fragment (MF set or a non-zero offset) is an error
//! that the worker counts and drops. Clients of a cache send TCP segments
//! that fit the MSS we advertise, so fragments are an attack or a
//! misconfiguration, not traffic to serve. Options are skipped (the IHL
//! tells where the payload starts).

use super::checksum::checksum;
use super::WireError;
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// TTL of the packets we send (RFC 1700's recommended default).
pub const DEFAULT_TTL: u8 = 64;

/// A parsed IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub id: u16,
    /// Header length in bytes (IHL × 4).
    pub header_len: usize,
    /// Total length from the header.
    pub total_len: usize,
}

/// Parses and verifies an IPv4 header. The payload returned is cut at the
/// header's total length: Ethernet pads short frames to 60 bytes, and the
/// padding is not TCP payload.
pub fn parse(b: &[u8]) -> Result<(Ipv4Header, &[u8]), WireError> {
    if b.len() < MIN_HEADER_LEN {
        return Err(WireError::Ipv4Truncated);
    }
    if b[0] >> 4 != 4 {
        return Err(WireError::Ipv4BadHeader);
    }
    let header_len = usize::from(b[0] & 0x0f) * 4;
    if header_len < MIN_HEADER_LEN {
        return Err(WireError::Ipv4BadHeader);
    }
    if header_len > b.len() {
        return Err(WireError::Ipv4Truncated);
    }
    let total_len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if total_len < header_len || total_len > b.len() {
        return Err(WireError::Ipv4BadLength);
    }
    if checksum(&b[..header_len]) != 0 {
        return Err(WireError::Ipv4BadChecksum);
    }
    let frag = u16::from_be_bytes([b[6], b[7]]);
    // MF flag (0x2000) or a fragment offset (low 13 bits): RFC 791 §3.1.
    if frag & 0x3fff != 0 {
        return Err(WireError::Ipv4Fragment);
    }
    let h = Ipv4Header {
        src: Ipv4Addr::new(b[12], b[13], b[14], b[15]),
        dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
        protocol: b[9],
        ttl: b[8],
        id: u16::from_be_bytes([b[4], b[5]]),
        header_len,
        total_len,
    };
    Ok((h, &b[header_len..total_len]))
}

/// Writes a 20-byte IPv4 header (no options, DF set: we do path MTU
/// discovery by MSS, RFC 1191) with its checksum; returns its length.
pub fn emit(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    id: u16,
    payload_len: usize,
) -> Result<usize, WireError> {
    let total = MIN_HEADER_LEN + payload_len;
    let total = u16::try_from(total).map_err(|_| WireError::BufferTooSmall)?;
    let b = buf
        .get_mut(..MIN_HEADER_LEN)
        .ok_or(WireError::BufferTooSmall)?;
    b[0] = 0x45;
    b[1] = 0;
    b[2..4].copy_from_slice(&total.to_be_bytes());
    b[4..6].copy_from_slice(&id.to_be_bytes());
    b[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    b[8] = DEFAULT_TTL;
    b[9] = protocol;
    b[10..12].copy_from_slice(&[0, 0]);
    b[12..16].copy_from_slice(&src.octets());
    b[16..20].copy_from_slice(&dst.octets());
    let c = checksum(b);
    b[10..12].copy_from_slice(&c.to_be_bytes());
    Ok(MIN_HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 20 + payload.len()];
        emit(
            &mut b,
            Ipv4Addr::new(198, 18, 0, 100),
            Ipv4Addr::new(198, 18, 0, 11),
            PROTO_TCP,
            7,
            payload.len(),
        )
        .unwrap();
        b[20..].copy_from_slice(payload);
        b
    }

    fn fix_checksum(b: &mut [u8]) {
        let hl = usize::from(b[0] & 0xf) * 4;
        b[10] = 0;
        b[11] = 0;
        let c = checksum(&b[..hl]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn emitted_header_parses_back() {
        let b = packet(b"hello");
        let (h, p) = parse(&b).unwrap();
        assert_eq!(h.src, Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(h.dst, Ipv4Addr::new(198, 18, 0, 11));
        assert_eq!(h.protocol, PROTO_TCP);
        assert_eq!(h.id, 7);
        assert_eq!(p, b"hello");
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut b = packet(b"hi");
        b.extend_from_slice(&[0; 20]);
        let (_, p) = parse(&b).unwrap();
        assert_eq!(p, b"hi");
    }

    #[test]
    fn flipped_bit_fails_header_checksum() {
        let mut b = packet(b"x");
        b[8] ^= 1;
        assert_eq!(parse(&b), Err(WireError::Ipv4BadChecksum));
    }

    #[test]
    fn total_length_beyond_frame_is_rejected() {
        let mut b = packet(b"xyz");
        b[2..4].copy_from_slice(&100u16.to_be_bytes());
        fix_checksum(&mut b);
        assert_eq!(parse(&b), Err(WireError::Ipv4BadLength));
        b[2..4].copy_from_slice(&10u16.to_be_bytes());
        fix_checksum(&mut b);
        assert_eq!(parse(&b), Err(WireError::Ipv4BadLength));
    }

    #[test]
    fn ihl_beyond_frame_is_truncated_and_below_five_is_bad() {
        let mut b = packet(b"");
        b[0] = 0x4f; // 60-byte header in a 20-byte packet
        assert_eq!(parse(&b), Err(WireError::Ipv4Truncated));
        b[0] = 0x44;
        assert_eq!(parse(&b), Err(WireError::Ipv4BadHeader));
        b[0] = 0x65;
        assert_eq!(parse(&b), Err(WireError::Ipv4BadHeader));
    }

    #[test]
    fn options_are_skipped() {
        // IHL 6: one word of options (NOP NOP NOP EOL) before the payload.
        let mut b = vec![0u8; 24 + 2];
        b[..20].copy_from_slice(&packet(b"")[..20]);
        b[0] = 0x46;
        b[2..4].copy_from_slice(&26u16.to_be_bytes());
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        b[24..26].copy_from_slice(b"ok");
        fix_checksum(&mut b);
        let (h, p) = parse(&b).unwrap();
        assert_eq!(h.header_len, 24);
        assert_eq!(p, b"ok");
    }

    #[test]
    fn fragments_are_rejected() {
        let mut b = packet(b"frag");
        b[6] = 0x20; // MF
        fix_checksum(&mut b);
        assert_eq!(parse(&b), Err(WireError::Ipv4Fragment));
        b[6] = 0x00;
        b[7] = 0x10; // offset 16 × 8
        fix_checksum(&mut b);
        assert_eq!(parse(&b), Err(WireError::Ipv4Fragment));
    }
}
