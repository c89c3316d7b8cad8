//! UDP headers (RFC 768): parse a received datagram, emit one with its
//! checksum over the pseudo-header (RFC 768 for IPv4, RFC 8200 §8.1 for
//! IPv6, both through [`super::checksum::pseudo_header`]).
//!
//! Zero checksums: over IPv4 a zero field means the sender computed none
//! (RFC 768), so the datagram is taken unchecked; over IPv6 it is invalid
//! (RFC 8200 §8.1) and the datagram dropped. A computed sum of zero is sent
//! as `0xffff` (RFC 768: "all ones"). Knows nothing of flows or of what a
//! datagram carries (RTP, RTCP).

use super::checksum::pseudo_header;
use super::WireError;
use std::net::IpAddr;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// IP protocol number (and IPv6 next header) of UDP.
pub const PROTOCOL: u8 = 17;

/// A parsed datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The payload, as long as the header's length says.
    pub payload: &'a [u8],
}

/// Parses a datagram carried between `src` and `dst` (`b` is the IP
/// payload). `checksum_trusted` skips the check, as for TCP, when the port
/// says the kernel verified it.
pub fn parse(
    src: IpAddr,
    dst: IpAddr,
    b: &[u8],
    checksum_trusted: bool,
) -> Result<Datagram<'_>, WireError> {
    if b.len() < HEADER_LEN {
        return Err(WireError::UdpTruncated);
    }
    let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
    // A length below the header is nonsense; one beyond the IP payload
    // claims bytes that are not there. Bytes after `len` are IP padding.
    if len < HEADER_LEN || len > b.len() {
        return Err(WireError::UdpBadLength);
    }
    let d = &b[..len];
    let field = u16::from_be_bytes([b[6], b[7]]);
    if field == 0 {
        if !src.is_ipv4() {
            return Err(WireError::UdpBadChecksum);
        }
    } else if !checksum_trusted {
        let mut c = pseudo_header(src, dst, PROTOCOL, len as u32);
        c.add(d);
        if c.finish() != 0 {
            return Err(WireError::UdpBadChecksum);
        }
    }
    Ok(Datagram {
        src_port: u16::from_be_bytes([b[0], b[1]]),
        dst_port: u16::from_be_bytes([b[2], b[3]]),
        payload: &d[HEADER_LEN..],
    })
}

/// Writes a datagram (header and `payload`) at the start of `buf` with its
/// checksum; returns its length.
pub fn emit(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Result<usize, WireError> {
    emit_with(buf, src, dst, src_port, dst_port, payload, false)
}

/// Like [`emit`]; with `partial`, the checksum field gets only the folded
/// pseudo-header sum for a device to complete (checksum offload).
pub fn emit_with(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    partial: bool,
) -> Result<usize, WireError> {
    let total = HEADER_LEN + payload.len();
    let len = u16::try_from(total).map_err(|_| WireError::UdpBadLength)?;
    let b = buf.get_mut(..total).ok_or(WireError::BufferTooSmall)?;
    b[0..2].copy_from_slice(&src_port.to_be_bytes());
    b[2..4].copy_from_slice(&dst_port.to_be_bytes());
    b[4..6].copy_from_slice(&len.to_be_bytes());
    b[6..8].copy_from_slice(&[0, 0]);
    b[HEADER_LEN..].copy_from_slice(payload);
    let mut c = pseudo_header(src, dst, PROTOCOL, total as u32);
    let sum = if partial {
        c.fold()
    } else {
        c.add(b);
        match c.finish() {
            0 => 0xffff,
            s => s,
        }
    };
    b[6..8].copy_from_slice(&sum.to_be_bytes());
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
    const S: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11));
    const C6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100));
    const S6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x11));

    fn datagram(src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 2000];
        let n = emit(&mut b, src, dst, 6970, 5000, payload).unwrap();
        b.truncate(n);
        b
    }

    #[test]
    fn ipv4_and_ipv6_datagrams_round_trip() {
        for (s, d) in [(S, C), (S6, C6)] {
            let b = datagram(s, d, b"rtp payload");
            assert_eq!(&b[4..6], &19u16.to_be_bytes());
            let g = parse(s, d, &b, false).unwrap();
            assert_eq!(g.src_port, 6970);
            assert_eq!(g.dst_port, 5000);
            assert_eq!(g.payload, b"rtp payload");
        }
    }

    #[test]
    fn known_checksum_matches_an_independent_sum() {
        // 198.18.0.11:6970 -> 198.18.0.100:5000, payload "ab": words summed
        // by hand: c612 000b c612 0064 0011 000a | 1b3a 1388 000a 0000 6162.
        let b = datagram(S, C, b"ab");
        let sum: u32 = [
            0xc612u32, 0x000b, 0xc612, 0x0064, 0x0011, 0x000a, 0x1b3a, 0x1388, 0x000a, 0x6162,
        ]
        .iter()
        .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        let folded = (folded & 0xffff) + (folded >> 16);
        assert_eq!(u16::from_be_bytes([b[6], b[7]]), !(folded as u16));
    }

    #[test]
    fn a_corrupt_byte_fails_the_checksum_unless_trusted() {
        let mut b = datagram(S, C, b"hello");
        b[9] ^= 1;
        assert_eq!(parse(S, C, &b, false), Err(WireError::UdpBadChecksum));
        assert!(parse(S, C, &b, true).is_ok());
        // The pseudo-header binds the addresses.
        let b = datagram(S, C, b"hello");
        let other = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 101));
        assert_eq!(parse(S, other, &b, false), Err(WireError::UdpBadChecksum));
    }

    #[test]
    fn rfc_768_zero_checksum_means_none_over_ipv4_only() {
        let mut b = datagram(S, C, b"hello");
        b[6] = 0;
        b[7] = 0;
        b[9] ^= 1;
        assert!(parse(S, C, &b, false).is_ok(), "IPv4: no checksum sent");
        let mut b = datagram(S6, C6, b"hello");
        b[6] = 0;
        b[7] = 0;
        // RFC 8200 §8.1: "IPv6 receivers must discard UDP packets
        // containing a zero checksum".
        assert_eq!(parse(S6, C6, &b, true), Err(WireError::UdpBadChecksum));
    }

    #[test]
    fn rfc_768_a_computed_zero_is_sent_as_all_ones() {
        // Find a payload whose sum comes out zero: the checksum field then
        // must read 0xffff, and the datagram still verifies.
        let mut found = false;
        for x in 0..=u16::MAX {
            let b = datagram(S, C, &x.to_be_bytes());
            if u16::from_be_bytes([b[6], b[7]]) == 0xffff {
                assert!(parse(S, C, &b, false).is_ok());
                found = true;
                break;
            }
        }
        assert!(found, "some 2-byte payload sums to zero");
    }

    #[test]
    fn bad_lengths_are_errors_and_ip_padding_is_cut() {
        assert_eq!(parse(S, C, &[0; 7], false), Err(WireError::UdpTruncated));
        let mut b = datagram(S, C, b"hi");
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(parse(S, C, &b, true), Err(WireError::UdpBadLength));
        b[4..6].copy_from_slice(&11u16.to_be_bytes());
        assert_eq!(parse(S, C, &b, true), Err(WireError::UdpBadLength));
        let mut padded = datagram(S, C, b"hi");
        padded.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(parse(S, C, &padded, false).unwrap().payload, b"hi");
    }

    #[test]
    fn emit_refuses_small_buffers_and_oversized_payloads() {
        let mut small = [0u8; 9];
        assert_eq!(
            emit(&mut small, S, C, 1, 2, b"xy"),
            Err(WireError::BufferTooSmall)
        );
        let mut big = vec![0u8; 70_000];
        assert_eq!(
            emit(&mut big, S, C, 1, 2, &[0; 65_530]),
            Err(WireError::UdpBadLength)
        );
    }

    #[test]
    fn partial_checksum_is_the_folded_pseudo_header() {
        let mut b = vec![0u8; 100];
        let n = emit_with(&mut b, S, C, 1, 2, b"abc", true).unwrap();
        let want = pseudo_header(S, C, PROTOCOL, n as u32).fold();
        assert_eq!(u16::from_be_bytes([b[6], b[7]]), want);
    }
}
