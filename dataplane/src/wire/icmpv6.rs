//! ICMPv6 (RFC 4443) and the Neighbor Discovery messages it carries
//! (RFC 4861 §4.3, §4.4): parsing with the pseudo-header checksum, and
//! building what we send: echo replies, Neighbor Solicitations and
//! Advertisements with their link-layer address options, and (for tests)
//! Packet Too Big.
//!
//! Message-level checks only (lengths, option lengths, code zero for ND);
//! the rules that need the IP header (hop limit 255, what a multicast or
//! unspecified address allows) are neighbour discovery's, in
//! `neighbour/ndp.rs`. Knows nothing of the worker or TCP.

use super::checksum::pseudo_header;
use super::ethernet::MacAddr;
use super::ipv6::PROTO_ICMPV6;
use super::WireError;
use std::net::Ipv6Addr;

/// Destination Unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 1;
/// Packet Too Big (RFC 4443 §3.2).
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
/// Echo Request.
pub const TYPE_ECHO_REQUEST: u8 = 128;
/// Echo Reply.
pub const TYPE_ECHO_REPLY: u8 = 129;
/// Neighbor Solicitation (RFC 4861 §4.3).
pub const TYPE_NEIGHBOR_SOLICITATION: u8 = 135;
/// Neighbor Advertisement (RFC 4861 §4.4).
pub const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Type, code, checksum.
pub const HEADER_LEN: usize = 4;
/// Option type: source link-layer address (RFC 4861 §4.6.1).
const OPT_SOURCE_LLADDR: u8 = 1;
/// Option type: target link-layer address.
const OPT_TARGET_LLADDR: u8 = 2;
/// An ND message's fixed part: header, 4 bytes (reserved or flags), target.
const ND_FIXED_LEN: usize = HEADER_LEN + 4 + 16;

/// Flags of a Neighbor Advertisement (RFC 4861 §4.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in answer to a solicitation.
    pub solicited: bool,
    /// O: the advertisement overrides a cached link-layer address.
    pub override_: bool,
}

/// A parsed ICMPv6 message: the kinds we act on, and the rest by type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6<'a> {
    /// An echo request (or reply): identifier, sequence, data.
    Echo {
        /// True for a request, false for a reply.
        request: bool,
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Data after the 8-byte header.
        data: &'a [u8],
    },
    /// Packet Too Big: the next hop's MTU and as much of the packet we
    /// sent as fit.
    PacketTooBig {
        /// MTU of the next-hop link.
        mtu: u32,
        /// The start of the invoking packet (its IPv6 header first).
        invoking: &'a [u8],
    },
    /// A Neighbor Solicitation for `target`.
    NeighborSolicitation {
        /// The address asked for.
        target: Ipv6Addr,
        /// The source link-layer address option, if present.
        source_mac: Option<MacAddr>,
    },
    /// A Neighbor Advertisement of `target`.
    NeighborAdvertisement {
        /// Flags.
        flags: NaFlags,
        /// The address advertised.
        target: Ipv6Addr,
        /// The target link-layer address option, if present.
        target_mac: Option<MacAddr>,
    },
    /// Any other message (routers' messages, errors we do not act on).
    Other {
        /// ICMPv6 type.
        ty: u8,
        /// ICMPv6 code.
        code: u8,
    },
}

/// Parses and verifies an ICMPv6 message carried from `src` to `dst`
/// (checksum over the pseudo-header, RFC 4443 §2.3).
pub fn parse(src: Ipv6Addr, dst: Ipv6Addr, b: &[u8]) -> Result<Icmpv6<'_>, WireError> {
    if b.len() < HEADER_LEN {
        return Err(WireError::Icmpv6Truncated);
    }
    let mut c = pseudo_header(src.into(), dst.into(), PROTO_ICMPV6, b.len() as u32);
    c.add(b);
    if c.finish() != 0 {
        return Err(WireError::Icmpv6BadChecksum);
    }
    let (ty, code) = (b[0], b[1]);
    let be16 = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    match ty {
        TYPE_ECHO_REQUEST | TYPE_ECHO_REPLY => {
            if b.len() < 8 {
                return Err(WireError::Icmpv6Truncated);
            }
            Ok(Icmpv6::Echo {
                request: ty == TYPE_ECHO_REQUEST,
                ident: be16(4),
                seq: be16(6),
                data: &b[8..],
            })
        }
        TYPE_PACKET_TOO_BIG => {
            if b.len() < 8 {
                return Err(WireError::Icmpv6Truncated);
            }
            Ok(Icmpv6::PacketTooBig {
                mtu: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                invoking: &b[8..],
            })
        }
        TYPE_NEIGHBOR_SOLICITATION | TYPE_NEIGHBOR_ADVERTISEMENT => {
            // RFC 4861 §7.1.1, §7.1.2: code 0, at least 24 bytes, target
            // not multicast, options of non-zero length.
            if code != 0 || b.len() < ND_FIXED_LEN {
                return Err(WireError::NdMalformed);
            }
            let mut t = [0u8; 16];
            t.copy_from_slice(&b[8..24]);
            let target = Ipv6Addr::from(t);
            if target.is_multicast() {
                return Err(WireError::NdMalformed);
            }
            let want = if ty == TYPE_NEIGHBOR_SOLICITATION {
                OPT_SOURCE_LLADDR
            } else {
                OPT_TARGET_LLADDR
            };
            let mac = lladdr_option(&b[ND_FIXED_LEN..], want)?;
            if ty == TYPE_NEIGHBOR_SOLICITATION {
                Ok(Icmpv6::NeighborSolicitation {
                    target,
                    source_mac: mac,
                })
            } else {
                Ok(Icmpv6::NeighborAdvertisement {
                    flags: NaFlags {
                        router: b[4] & 0x80 != 0,
                        solicited: b[4] & 0x40 != 0,
                        override_: b[4] & 0x20 != 0,
                    },
                    target,
                    target_mac: mac,
                })
            }
        }
        _ => Ok(Icmpv6::Other { ty, code }),
    }
}

/// Walks ND options (RFC 4861 §4.6): the link-layer address of kind
/// `want`, if any. An option of length zero, or one that runs past the
/// message, makes the whole message invalid (§4.6: "silently discard").
fn lladdr_option(mut o: &[u8], want: u8) -> Result<Option<MacAddr>, WireError> {
    let mut found = None;
    while !o.is_empty() {
        let (Some(&kind), Some(&units)) = (o.first(), o.get(1)) else {
            return Err(WireError::NdMalformed);
        };
        let len = usize::from(units) * 8;
        if len == 0 || len > o.len() {
            return Err(WireError::NdMalformed);
        }
        // An Ethernet address option is one unit: type, length, 6 bytes.
        if kind == want && len == 8 && found.is_none() {
            let mut m = [0u8; 6];
            m.copy_from_slice(&o[2..8]);
            found = Some(MacAddr(m));
        }
        o = &o[len..];
    }
    Ok(found)
}

/// Fills in the checksum of the ICMPv6 message `b` from `src` to `dst`.
fn seal(b: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    b[2] = 0;
    b[3] = 0;
    let mut c = pseudo_header(src.into(), dst.into(), PROTO_ICMPV6, b.len() as u32);
    c.add(b);
    let sum = c.finish();
    b[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Writes the echo reply to a request (same identifier, sequence and data,
/// RFC 4443 §4.2) from `src` to `dst`; returns its length.
pub fn emit_echo_reply(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ident: u16,
    seq: u16,
    data: &[u8],
) -> Result<usize, WireError> {
    let len = 8 + data.len();
    let b = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
    b[0] = TYPE_ECHO_REPLY;
    b[1] = 0;
    b[4..6].copy_from_slice(&ident.to_be_bytes());
    b[6..8].copy_from_slice(&seq.to_be_bytes());
    b[8..].copy_from_slice(data);
    seal(b, src, dst);
    Ok(len)
}

/// Writes an ND message (type, flags byte, target, optional link-layer
/// address option of kind `opt`).
#[allow(clippy::too_many_arguments)]
fn emit_nd(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ty: u8,
    flags: u8,
    target: Ipv6Addr,
    opt: u8,
    mac: Option<MacAddr>,
) -> Result<usize, WireError> {
    let len = ND_FIXED_LEN + if mac.is_some() { 8 } else { 0 };
    let b = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
    b[0] = ty;
    b[1] = 0;
    b[4..8].copy_from_slice(&[flags, 0, 0, 0]);
    b[8..24].copy_from_slice(&target.octets());
    if let Some(m) = mac {
        b[24] = opt;
        b[25] = 1;
        b[26..32].copy_from_slice(&m.0);
    }
    seal(b, src, dst);
    Ok(len)
}

/// A Neighbor Solicitation for `target` (RFC 4861 §4.3); `source_mac` is
/// omitted when `src` is unspecified (DAD, §4.3 "MUST NOT be included").
pub fn emit_neighbor_solicitation(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    source_mac: Option<MacAddr>,
) -> Result<usize, WireError> {
    let mac = source_mac.filter(|_| !src.is_unspecified());
    emit_nd(
        buf,
        src,
        dst,
        TYPE_NEIGHBOR_SOLICITATION,
        0,
        target,
        OPT_SOURCE_LLADDR,
        mac,
    )
}

/// A Neighbor Advertisement of `target` (RFC 4861 §4.4).
pub fn emit_neighbor_advertisement(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    flags: NaFlags,
    target_mac: Option<MacAddr>,
) -> Result<usize, WireError> {
    let f = (flags.router as u8) << 7 | (flags.solicited as u8) << 6 | (flags.override_ as u8) << 5;
    emit_nd(
        buf,
        src,
        dst,
        TYPE_NEIGHBOR_ADVERTISEMENT,
        f,
        target,
        OPT_TARGET_LLADDR,
        target_mac,
    )
}

/// A Packet Too Big quoting `invoking` (cut so the message stays within
/// the minimum MTU, RFC 4443 §3.2). Routers send these; we build them for
/// tests and fuzz seeds.
pub fn emit_packet_too_big(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    mtu: u32,
    invoking: &[u8],
) -> Result<usize, WireError> {
    let quoted = invoking.len().min(super::ipv6::MIN_MTU - 40 - 8);
    let len = 8 + quoted;
    let b = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
    b[0] = TYPE_PACKET_TOO_BIG;
    b[1] = 0;
    b[4..8].copy_from_slice(&mtu.to_be_bytes());
    b[8..].copy_from_slice(&invoking[..quoted]);
    seal(b, src, dst);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x100);
    const S: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x11);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x11]);

    fn request(data: &[u8]) -> Vec<u8> {
        let mut b = vec![TYPE_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 7];
        b.extend_from_slice(data);
        seal(&mut b, C, S);
        b
    }

    #[test]
    fn echo_reply_mirrors_the_request_and_verifies() {
        let req = request(b"ping6!");
        let Icmpv6::Echo {
            request: true,
            ident,
            seq,
            data,
        } = parse(C, S, &req).unwrap()
        else {
            panic!("not an echo request");
        };
        let mut out = [0u8; 64];
        let n = emit_echo_reply(&mut out, S, C, ident, seq, data).unwrap();
        assert_eq!(
            parse(S, C, &out[..n]).unwrap(),
            Icmpv6::Echo {
                request: false,
                ident: 0x1234,
                seq: 7,
                data: b"ping6!"
            }
        );
    }

    #[test]
    fn checksum_covers_the_pseudo_header() {
        let req = request(b"x");
        // The same bytes between other addresses do not verify.
        assert_eq!(parse(C, C, &req), Err(WireError::Icmpv6BadChecksum));
        let mut bad = req.clone();
        bad[8] ^= 1;
        assert_eq!(parse(C, S, &bad), Err(WireError::Icmpv6BadChecksum));
        assert_eq!(parse(C, S, &req[..3]), Err(WireError::Icmpv6Truncated));
    }

    #[test]
    fn solicitation_and_advertisement_round_trip_with_options() {
        let mut b = [0u8; 64];
        let group = super::super::ipv6::solicited_node(S);
        let n = emit_neighbor_solicitation(&mut b, C, group, S, Some(MAC)).unwrap();
        assert_eq!(n, 32);
        assert_eq!(
            parse(C, group, &b[..n]).unwrap(),
            Icmpv6::NeighborSolicitation {
                target: S,
                source_mac: Some(MAC)
            }
        );
        // DAD: unspecified source, no option even if asked.
        let n =
            emit_neighbor_solicitation(&mut b, Ipv6Addr::UNSPECIFIED, group, S, Some(MAC)).unwrap();
        assert_eq!(n, 24);
        let flags = NaFlags {
            router: false,
            solicited: true,
            override_: true,
        };
        let n = emit_neighbor_advertisement(&mut b, S, C, S, flags, Some(MAC)).unwrap();
        assert_eq!(b[4], 0x60);
        assert_eq!(
            parse(S, C, &b[..n]).unwrap(),
            Icmpv6::NeighborAdvertisement {
                flags,
                target: S,
                target_mac: Some(MAC)
            }
        );
    }

    #[test]
    fn nd_with_bad_options_code_or_target_is_malformed() {
        let mut b = [0u8; 64];
        let n = emit_neighbor_solicitation(&mut b, C, S, S, Some(MAC)).unwrap();
        let mut zero_len = b[..n].to_vec();
        zero_len[25] = 0;
        seal(&mut zero_len, C, S);
        assert_eq!(parse(C, S, &zero_len), Err(WireError::NdMalformed));
        let mut long = b[..n].to_vec();
        long[25] = 2;
        seal(&mut long, C, S);
        assert_eq!(parse(C, S, &long), Err(WireError::NdMalformed));
        let mut code = b[..n].to_vec();
        code[1] = 1;
        seal(&mut code, C, S);
        assert_eq!(parse(C, S, &code), Err(WireError::NdMalformed));
        let n =
            emit_neighbor_solicitation(&mut b, C, S, super::super::ipv6::ALL_NODES, None).unwrap();
        assert_eq!(parse(C, S, &b[..n]), Err(WireError::NdMalformed));
        // Unknown options are skipped by their length.
        let n = emit_neighbor_solicitation(&mut b, C, S, S, None).unwrap();
        let mut other = b[..n].to_vec();
        other.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]);
        seal(&mut other, C, S);
        assert!(matches!(
            parse(C, S, &other),
            Ok(Icmpv6::NeighborSolicitation {
                source_mac: None,
                ..
            })
        ));
    }

    #[test]
    fn packet_too_big_carries_mtu_and_a_cut_invoking_packet() {
        let invoking = vec![0x60u8; 1500];
        let mut b = vec![0u8; 1500];
        let n = emit_packet_too_big(&mut b, C, S, 1300, &invoking).unwrap();
        assert_eq!(n, 1280 - 40);
        let Icmpv6::PacketTooBig { mtu, invoking } = parse(C, S, &b[..n]).unwrap() else {
            panic!("not a PTB");
        };
        assert_eq!((mtu, invoking.len()), (1300, 1280 - 48));
    }
}
