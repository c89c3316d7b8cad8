//! IPv6 headers (RFC 8200): verified on the way in, built on the way out.
//!
//! Extension headers before the upper-layer header are walked and skipped
//! by their length: hop-by-hop options (only first, RFC 8200 §4.1),
//! routing and destination options. We never reassemble: a Fragment
//! header (even an atomic one, RFC 6946 has nothing worth serving) is an
//! error the worker counts and drops, as for IPv4. Any other next header
//! ends the walk and is the packet's protocol (the worker counts the ones
//! it does not speak). This module knows addresses and lengths, not what
//! the payload means.

use super::ethernet::MacAddr;
use super::WireError;
use std::net::Ipv6Addr;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Next header: hop-by-hop options.
pub const NEXT_HOP_BY_HOP: u8 = 0;
/// Next header: TCP.
pub const PROTO_TCP: u8 = 6;
/// Next header: routing header.
pub const NEXT_ROUTING: u8 = 43;
/// Next header: fragment header.
pub const NEXT_FRAGMENT: u8 = 44;
/// Next header: ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// Next header: no next header.
pub const NEXT_NONE: u8 = 59;
/// Next header: destination options.
pub const NEXT_DEST_OPTS: u8 = 60;
/// Hop limit of the packets we send (Linux's default).
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// Every IPv6 link carries packets of this size (RFC 8200 §5); a Packet
/// Too Big below it is clamped to it (RFC 8201 §4).
pub const MIN_MTU: usize = 1280;
/// Extension headers walked at most: each costs at least 8 bytes, so a
/// frame bounds the walk anyway; this keeps a jumbo frame of empty
/// options from costing more than a normal packet.
const MAX_EXTENSION_HEADERS: usize = 8;

/// A parsed IPv6 header, extension headers skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The upper-layer protocol after the extension headers.
    pub protocol: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Bytes from the start of the fixed header to the upper-layer header.
    pub header_len: usize,
    /// Payload length from the fixed header (extension headers included).
    pub payload_len: usize,
}

/// Parses an IPv6 header and skips its extension headers. The payload
/// returned is the upper-layer message, cut at the header's payload length
/// (Ethernet padding is not payload).
pub fn parse(b: &[u8]) -> Result<(Ipv6Header, &[u8]), WireError> {
    parse_with(b, false)
}

/// Like [`parse`] for the invoking packet quoted in an ICMPv6 error
/// (RFC 4443 §2.4 (c)): cut to fit the minimum MTU, so its payload length
/// may run past the bytes we have; the payload returned is what is there.
pub fn parse_quoted(b: &[u8]) -> Result<(Ipv6Header, &[u8]), WireError> {
    parse_with(b, true)
}

fn parse_with(b: &[u8], quoted: bool) -> Result<(Ipv6Header, &[u8]), WireError> {
    if b.len() < HEADER_LEN {
        return Err(WireError::Ipv6Truncated);
    }
    if b[0] >> 4 != 6 {
        return Err(WireError::Ipv6BadHeader);
    }
    let payload_len = usize::from(u16::from_be_bytes([b[4], b[5]]));
    // Payload length 0 with hop-by-hop is a jumbogram (RFC 2675): never on
    // an Ethernet LAN; it fails here as a length that holds no header.
    let mut end = HEADER_LEN + payload_len;
    if end > b.len() {
        if !quoted {
            return Err(WireError::Ipv6BadLength);
        }
        end = b.len();
    }
    let mut next = b[6];
    let mut at = HEADER_LEN;
    let mut walked = 0;
    loop {
        match next {
            NEXT_FRAGMENT => return Err(WireError::Ipv6Fragment),
            NEXT_HOP_BY_HOP if walked > 0 => return Err(WireError::Ipv6BadExtension),
            NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_DEST_OPTS => {
                walked += 1;
                if walked > MAX_EXTENSION_HEADERS {
                    return Err(WireError::Ipv6BadExtension);
                }
                let h = b.get(at..at + 2).filter(|_| at + 8 <= end);
                let Some(h) = h else {
                    return Err(WireError::Ipv6BadExtension);
                };
                // Length in 8-byte units, not counting the first 8 bytes.
                let len = 8 + usize::from(h[1]) * 8;
                if at + len > end {
                    return Err(WireError::Ipv6BadExtension);
                }
                next = h[0];
                at += len;
            }
            _ => break,
        }
    }
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[8..24]);
    let src = Ipv6Addr::from(a);
    a.copy_from_slice(&b[24..40]);
    let dst = Ipv6Addr::from(a);
    let h = Ipv6Header {
        src,
        dst,
        protocol: next,
        hop_limit: b[7],
        header_len: at,
        payload_len,
    };
    Ok((h, &b[at..end]))
}

/// Writes a 40-byte IPv6 header (no extension headers, traffic class and
/// flow label zero); returns its length.
pub fn emit(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    protocol: u8,
    hop_limit: u8,
    payload_len: usize,
) -> Result<usize, WireError> {
    let len = u16::try_from(payload_len).map_err(|_| WireError::BufferTooSmall)?;
    let b = buf.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall)?;
    b[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    b[4..6].copy_from_slice(&len.to_be_bytes());
    b[6] = protocol;
    b[7] = hop_limit;
    b[8..24].copy_from_slice(&src.octets());
    b[24..40].copy_from_slice(&dst.octets());
    Ok(HEADER_LEN)
}

/// The solicited-node multicast address of `ip` (RFC 4291 §2.7.1):
/// `ff02::1:ff` followed by its low 24 bits.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The all-nodes multicast address (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The Ethernet address of an IPv6 multicast group (RFC 2464 §7):
/// `33:33` and the group's low 32 bits.
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x100);
    const S: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x11);

    fn packet(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + payload.len()];
        emit(&mut b, C, S, protocol, 64, payload.len()).unwrap();
        b[HEADER_LEN..].copy_from_slice(payload);
        b
    }

    #[test]
    fn emitted_header_parses_back_and_padding_is_not_payload() {
        let mut b = packet(PROTO_TCP, b"hello");
        b.extend_from_slice(&[0; 9]);
        let (h, p) = parse(&b).unwrap();
        assert_eq!(
            (h.src, h.dst, h.protocol, h.hop_limit),
            (C, S, PROTO_TCP, 64)
        );
        assert_eq!((h.header_len, h.payload_len), (40, 5));
        assert_eq!(p, b"hello");
    }

    #[test]
    fn extension_headers_are_skipped_by_their_length() {
        // Hop-by-hop (8 bytes: PadN), routing (16 bytes), destination options (8), then TCP.
        let mut ext = vec![NEXT_ROUTING, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[NEXT_DEST_OPTS, 1]);
        ext.extend_from_slice(&[0; 14]);
        ext.extend_from_slice(&[PROTO_TCP, 0, 1, 4, 0, 0, 0, 0]);
        ext.extend_from_slice(b"tcp!");
        let b = packet(NEXT_HOP_BY_HOP, &ext);
        let (h, p) = parse(&b).unwrap();
        assert_eq!((h.protocol, h.header_len), (PROTO_TCP, 40 + 32));
        assert_eq!(p, b"tcp!");
    }

    #[test]
    fn fragments_are_rejected_even_behind_other_headers() {
        let b = packet(NEXT_FRAGMENT, &[PROTO_TCP, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(parse(&b), Err(WireError::Ipv6Fragment));
        let b = packet(
            NEXT_DEST_OPTS,
            &[NEXT_FRAGMENT, 0, 1, 4, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 1],
        );
        assert_eq!(parse(&b), Err(WireError::Ipv6Fragment));
    }

    #[test]
    fn malformed_extension_headers_are_rejected() {
        // Runs past the payload length.
        let b = packet(NEXT_DEST_OPTS, &[PROTO_TCP, 3, 1, 4, 0, 0, 0, 0]);
        assert_eq!(parse(&b), Err(WireError::Ipv6BadExtension));
        // Shorter than 8 bytes.
        let b = packet(NEXT_DEST_OPTS, &[PROTO_TCP, 0, 1]);
        assert_eq!(parse(&b), Err(WireError::Ipv6BadExtension));
        // Hop-by-hop anywhere but first.
        let b = packet(
            NEXT_DEST_OPTS,
            &[NEXT_HOP_BY_HOP, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0],
        );
        assert_eq!(parse(&b), Err(WireError::Ipv6BadExtension));
        // An endless chain of destination options stops at the bound.
        let mut chain = Vec::new();
        for _ in 0..20 {
            chain.extend_from_slice(&[NEXT_DEST_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        let b = packet(NEXT_DEST_OPTS, &chain);
        assert_eq!(parse(&b), Err(WireError::Ipv6BadExtension));
    }

    #[test]
    fn bad_version_and_lengths_are_rejected() {
        let mut b = packet(PROTO_TCP, b"xyz");
        assert_eq!(parse(&b[..39]), Err(WireError::Ipv6Truncated));
        b[4..6].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(parse(&b), Err(WireError::Ipv6BadLength));
        b[0] = 0x45;
        assert_eq!(parse(&b), Err(WireError::Ipv6BadHeader));
    }

    #[test]
    fn solicited_node_group_and_its_mac() {
        let g = solicited_node(S);
        assert_eq!(g, "ff02::1:ff00:11".parse::<Ipv6Addr>().unwrap());
        assert_eq!(multicast_mac(g).0, [0x33, 0x33, 0xff, 0, 0, 0x11]);
        assert_eq!(multicast_mac(ALL_NODES).0, [0x33, 0x33, 0, 0, 0, 1]);
    }
}
