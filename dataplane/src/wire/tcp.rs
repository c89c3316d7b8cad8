//! TCP headers (RFC 9293 §3.1) and options: parse a received segment into a
//! [`Segment`] for the state machine, emit an [`OutSegment`] as bytes.
//!
//! Options handled: MSS (RFC 9293 §3.7.1), window scale and timestamps
//! (RFC 7323 §2, §3), SACK-permitted and SACK blocks (RFC 2018 §2, §3).
//! Unknown options are skipped by their length; an option whose length is
//! wrong for its kind or runs past the header makes the segment malformed.
//! RFC 9293 §3.1 lets a receiver ignore such options, but a segment that
//! carries them comes from no stack we serve, so we count and drop it.

use super::checksum::pseudo_header;
use super::ipv4::PROTO_TCP;
use super::WireError;
use crate::tcp::segment::{Flags, OutSegment, Segment, MAX_SACK_BLOCKS};
use crate::tcp::seq::SeqNum;
use std::net::IpAddr;

/// Length of a TCP header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Most option bytes a header can carry (data offset 15 words).
pub const MAX_OPTIONS_LEN: usize = 40;

const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WS: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_SACK: u8 = 5;
const OPT_TS: u8 = 8;

const F_FIN: u8 = 0x01;
const F_SYN: u8 = 0x02;
const F_RST: u8 = 0x04;
const F_PSH: u8 = 0x08;
const F_ACK: u8 = 0x10;
const F_URG: u8 = 0x20;
const F_ECE: u8 = 0x40;
const F_CWR: u8 = 0x80;

fn flags_from_byte(b: u8) -> Flags {
    Flags {
        fin: b & F_FIN != 0,
        syn: b & F_SYN != 0,
        rst: b & F_RST != 0,
        psh: b & F_PSH != 0,
        ack: b & F_ACK != 0,
        urg: b & F_URG != 0,
        ece: b & F_ECE != 0,
        cwr: b & F_CWR != 0,
    }
}

fn flags_to_byte(f: &Flags) -> u8 {
    (f.fin as u8 * F_FIN)
        | (f.syn as u8 * F_SYN)
        | (f.rst as u8 * F_RST)
        | (f.psh as u8 * F_PSH)
        | (f.ack as u8 * F_ACK)
        | (f.urg as u8 * F_URG)
        | (f.ece as u8 * F_ECE)
        | (f.cwr as u8 * F_CWR)
}

/// Parses a TCP segment carried between `src` and `dst`.
///
/// `checksum_trusted` skips the checksum: set it only when the port says
/// the kernel verified it or the sender left it to offload (a veth peer's
/// `TP_STATUS_CSUMNOTREADY`/`TP_STATUS_CSUM_VALID`).
pub fn parse(
    src: IpAddr,
    dst: IpAddr,
    b: &[u8],
    checksum_trusted: bool,
) -> Result<Segment<'_>, WireError> {
    if b.len() < MIN_HEADER_LEN {
        return Err(WireError::TcpTruncated);
    }
    let data_off = usize::from(b[12] >> 4) * 4;
    if data_off < MIN_HEADER_LEN {
        return Err(WireError::TcpBadDataOffset);
    }
    if data_off > b.len() {
        return Err(WireError::TcpTruncated);
    }
    if !checksum_trusted {
        let mut c = pseudo_header(src, dst, PROTO_TCP, b.len() as u32);
        c.add(b);
        if c.finish() != 0 {
            return Err(WireError::TcpBadChecksum);
        }
    }
    let flags = flags_from_byte(b[13]);
    // RFC 9293 §3.10.7 gives no meaning to SYN with FIN or RST, and a
    // segment with no control bit at all is a scan, not a conversation.
    if (flags.syn && (flags.fin || flags.rst)) || (!flags.syn && !flags.ack && !flags.rst) {
        return Err(WireError::TcpBadFlags);
    }
    let options = parse_options(&b[MIN_HEADER_LEN..data_off])?;
    Ok(Segment {
        src_port: u16::from_be_bytes([b[0], b[1]]),
        dst_port: u16::from_be_bytes([b[2], b[3]]),
        seq: SeqNum(u32::from_be_bytes([b[4], b[5], b[6], b[7]])),
        ack: SeqNum(u32::from_be_bytes([b[8], b[9], b[10], b[11]])),
        flags,
        window: u16::from_be_bytes([b[14], b[15]]),
        options,
        payload: &b[data_off..],
    })
}

fn parse_options(mut o: &[u8]) -> Result<crate::tcp::segment::Options, WireError> {
    let mut opts = crate::tcp::segment::Options::default();
    while let Some((&kind, rest)) = o.split_first() {
        match kind {
            OPT_END => break,
            OPT_NOP => {
                o = rest;
                continue;
            }
            _ => {}
        }
        let len = usize::from(*rest.first().ok_or(WireError::TcpBadOption)?);
        if len < 2 || len > o.len() {
            return Err(WireError::TcpBadOption);
        }
        let body = &o[2..len];
        match (kind, len) {
            (OPT_MSS, 4) => opts.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            (OPT_WS, 3) => opts.window_scale = Some(body[0]),
            (OPT_SACK_PERM, 2) => opts.sack_permitted = true,
            (OPT_TS, 10) => {
                let v = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let e = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                opts.timestamps = Some((v, e));
            }
            (OPT_SACK, _) if (len - 2) & 7 == 0 && len > 2 => {
                // RFC 2018 §3: 1 to 4 blocks of (left, right) edges.
                for (slot, blk) in opts.sack_blocks.iter_mut().zip(body.chunks_exact(8)) {
                    let l = u32::from_be_bytes([blk[0], blk[1], blk[2], blk[3]]);
                    let r = u32::from_be_bytes([blk[4], blk[5], blk[6], blk[7]]);
                    *slot = Some((SeqNum(l), SeqNum(r)));
                }
            }
            (OPT_MSS | OPT_WS | OPT_SACK_PERM | OPT_TS | OPT_SACK, _) => {
                return Err(WireError::TcpBadOption)
            }
            _ => {} // unknown kind: skipped by its length
        }
        o = &o[len..];
    }
    Ok(opts)
}

/// Writes the options of `seg` into `out` (at most 40 bytes), padded to a
/// multiple of four; returns their length. The layout is the one Linux
/// uses, so middleboxes and the client see nothing unusual: MSS, SACK-perm
/// with timestamps, NOP + window scale, then NOP NOP + SACK blocks.
fn emit_options(out: &mut [u8; MAX_OPTIONS_LEN], seg: &OutSegment) -> Result<usize, WireError> {
    let mut n = 0usize;
    let mut put = |bytes: &[u8], n: &mut usize| -> Result<(), WireError> {
        let dst = out
            .get_mut(*n..*n + bytes.len())
            .ok_or(WireError::OptionsTooLong)?;
        dst.copy_from_slice(bytes);
        *n += bytes.len();
        Ok(())
    };
    let o = &seg.options;
    if let Some(mss) = o.mss {
        let m = mss.to_be_bytes();
        put(&[OPT_MSS, 4, m[0], m[1]], &mut n)?;
    }
    match (o.sack_permitted, o.timestamps) {
        (sp, Some((v, e))) => {
            let head = if sp {
                [OPT_SACK_PERM, 2]
            } else {
                [OPT_NOP, OPT_NOP]
            };
            put(&head, &mut n)?;
            put(&[OPT_TS, 10], &mut n)?;
            put(&v.to_be_bytes(), &mut n)?;
            put(&e.to_be_bytes(), &mut n)?;
        }
        (true, None) => put(&[OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2], &mut n)?,
        (false, None) => {}
    }
    if let Some(ws) = o.window_scale {
        put(&[OPT_NOP, OPT_WS, 3, ws], &mut n)?;
    }
    let count = o.sack_blocks.iter().flatten().count();
    if count > 0 {
        // Send as many blocks as fit (RFC 2018 §3: the first block is the
        // most recent, so truncating from the end loses the least).
        let room = (MAX_OPTIONS_LEN - n).saturating_sub(4) / 8;
        let k = count.min(room).min(MAX_SACK_BLOCKS);
        if k > 0 {
            put(&[OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * k as u8], &mut n)?;
            for (l, r) in o.sack_blocks.iter().flatten().take(k) {
                put(&l.0.to_be_bytes(), &mut n)?;
                put(&r.0.to_be_bytes(), &mut n)?;
            }
        }
    }
    while n & 3 != 0 {
        put(&[OPT_END], &mut n)?;
    }
    Ok(n)
}

/// Writes `seg` (header, options, payload) at the start of `buf` with its
/// checksum over the pseudo-header of `src` → `dst`; returns its length.
/// The payload chunks are copied here, once, into the frame.
pub fn emit(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    seg: &OutSegment,
) -> Result<usize, WireError> {
    emit_with(buf, src, dst, seg, false)
}

/// Like [`emit`]; with `partial`, the checksum field gets only the folded
/// pseudo-header sum (not complemented) for a device to complete
/// (checksum offload, and what GSO expects), and the payload is not summed.
pub fn emit_with(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    seg: &OutSegment,
    partial: bool,
) -> Result<usize, WireError> {
    let mut opts = [0u8; MAX_OPTIONS_LEN];
    let opt_len = emit_options(&mut opts, seg)?;
    let hdr_len = MIN_HEADER_LEN + opt_len;
    let total = hdr_len + seg.payload_len();
    let b = buf.get_mut(..total).ok_or(WireError::BufferTooSmall)?;
    b[0..2].copy_from_slice(&seg.src_port.to_be_bytes());
    b[2..4].copy_from_slice(&seg.dst_port.to_be_bytes());
    b[4..8].copy_from_slice(&seg.seq.0.to_be_bytes());
    b[8..12].copy_from_slice(&seg.ack.0.to_be_bytes());
    b[12] = ((hdr_len / 4) as u8) << 4;
    b[13] = flags_to_byte(&seg.flags);
    b[14..16].copy_from_slice(&seg.window.to_be_bytes());
    b[16..18].copy_from_slice(&[0, 0]);
    b[18..20].copy_from_slice(&[0, 0]);
    b[MIN_HEADER_LEN..hdr_len].copy_from_slice(&opts[..opt_len]);
    let mut at = hdr_len;
    for chunk in &seg.payload {
        b[at..at + chunk.len()].copy_from_slice(chunk);
        at += chunk.len();
    }
    let mut c = pseudo_header(src, dst, PROTO_TCP, total as u32);
    let sum = if partial {
        c.fold()
    } else {
        c.add(b);
        c.finish()
    };
    b[16..18].copy_from_slice(&sum.to_be_bytes());
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::segment::Options;
    use bytes::Bytes;
    use std::net::Ipv4Addr;

    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
    const S: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11));

    fn out(flags: Flags, options: Options, payload: Vec<Bytes>) -> OutSegment {
        OutSegment {
            src_port: 80,
            dst_port: 40000,
            seq: SeqNum(u32::MAX - 2),
            ack: SeqNum(12345),
            flags,
            window: 502,
            options,
            payload,
        }
    }

    fn emit_vec(seg: &OutSegment) -> Vec<u8> {
        let mut buf = vec![0u8; 2000];
        let n = emit(&mut buf, S, C, seg).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn syn_ack_with_every_option_round_trips() {
        let options = Options {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((1000, 2000)),
            sack_blocks: [None; MAX_SACK_BLOCKS],
        };
        let flags = Flags {
            syn: true,
            ack: true,
            ..Flags::default()
        };
        let seg = out(flags, options, vec![]);
        let b = emit_vec(&seg);
        assert_eq!(b.len(), 20 + 20, "MSS 4 + SACKperm/TS 12 + NOP/WS 4");
        let p = parse(S, C, &b, false).unwrap();
        assert_eq!(p.options, options);
        assert_eq!(p.flags, flags);
        assert_eq!(
            (p.src_port, p.dst_port, p.seq, p.ack, p.window),
            (80, 40000, seg.seq, seg.ack, 502)
        );
        assert!(p.payload.is_empty());
    }

    #[test]
    fn payload_chunks_are_copied_in_order_and_checksummed() {
        let flags = Flags {
            ack: true,
            psh: true,
            ..Flags::default()
        };
        // An odd-length first chunk exercises the checksum carry between chunks.
        let seg = out(
            flags,
            Options {
                timestamps: Some((5, 6)),
                ..Options::default()
            },
            vec![
                Bytes::from_static(b"HTTP/1.1 2"),
                Bytes::from_static(b"00 OK\r\n!"),
            ],
        );
        let b = emit_vec(&seg);
        let p = parse(S, C, &b, false).unwrap();
        assert_eq!(p.payload, b"HTTP/1.1 200 OK\r\n!");
        assert_eq!(p.options.timestamps, Some((5, 6)));
    }

    #[test]
    fn sack_blocks_round_trip_and_are_truncated_to_fit_with_timestamps() {
        let mut options = Options {
            timestamps: Some((1, 2)),
            ..Options::default()
        };
        for i in 0..4u32 {
            options.sack_blocks[i as usize] = Some((SeqNum(i * 100), SeqNum(i * 100 + 50)));
        }
        let seg = out(
            Flags {
                ack: true,
                ..Flags::default()
            },
            options,
            vec![],
        );
        let b = emit_vec(&seg);
        let p = parse(S, C, &b, false).unwrap();
        // 12 bytes of timestamps leave room for 3 blocks (RFC 2018 §3).
        assert_eq!(p.options.sack_blocks.iter().flatten().count(), 3);
        assert_eq!(p.options.sack_blocks[0], Some((SeqNum(0), SeqNum(50))));
        assert_eq!(p.options.sack_blocks[3], None);
    }

    #[test]
    fn partial_checksum_completed_like_a_device_verifies() {
        let seg = out(
            Flags {
                ack: true,
                ..Flags::default()
            },
            Options {
                timestamps: Some((9, 8)),
                ..Options::default()
            },
            vec![Bytes::from_static(b"offloaded payload, odd length")],
        );
        let mut b = vec![0u8; 200];
        let n = emit_with(&mut b, S, C, &seg, true).unwrap();
        b.truncate(n);
        assert_eq!(
            parse(S, C, &b, false).unwrap_err(),
            WireError::TcpBadChecksum,
            "not complete yet"
        );
        // What a NIC (or skb_checksum_help) does: sum from csum_start over
        // the segment, field included, and store the complement.
        let done = crate::wire::checksum::checksum(&b);
        b[16..18].copy_from_slice(&done.to_be_bytes());
        assert_eq!(
            parse(S, C, &b, false).unwrap().payload,
            b"offloaded payload, odd length"
        );
    }

    #[test]
    fn ipv6_pseudo_header_checksum_verifies_and_covers_the_addresses() {
        // RFC 8200 §8.1: 128-bit addresses, 32-bit length, next header.
        let c6: IpAddr = "2001:2:0:18::100".parse().unwrap();
        let s6: IpAddr = "2001:2:0:18::11".parse().unwrap();
        let seg = out(
            Flags {
                ack: true,
                psh: true,
                ..Flags::default()
            },
            Options::default(),
            vec![Bytes::from_static(b"over six")],
        );
        let mut buf = vec![0u8; 200];
        let n = emit(&mut buf, s6, c6, &seg).unwrap();
        let b = &buf[..n];
        let p = parse(s6, c6, b, false).unwrap();
        assert_eq!(p.payload, b"over six");
        // Summed by hand: the pseudo-header then the segment sum to zero.
        let mut sum = crate::wire::checksum::Checksum::new();
        if let (IpAddr::V6(s), IpAddr::V6(d)) = (s6, c6) {
            sum.add(&s.octets());
            sum.add(&d.octets());
        }
        sum.add(&(n as u32).to_be_bytes());
        sum.add(&[0, 0, 0, PROTO_TCP]);
        sum.add(b);
        assert_eq!(sum.finish(), 0);
        let other: IpAddr = "2001:2:0:18::12".parse().unwrap();
        assert_eq!(
            parse(s6, other, b, false).unwrap_err(),
            WireError::TcpBadChecksum
        );
    }

    #[test]
    fn corrupted_segment_fails_checksum_unless_trusted() {
        let seg = out(
            Flags {
                ack: true,
                ..Flags::default()
            },
            Options::default(),
            vec![Bytes::from_static(b"data")],
        );
        let mut b = emit_vec(&seg);
        b[21] ^= 0x40;
        assert_eq!(
            parse(S, C, &b, false).unwrap_err(),
            WireError::TcpBadChecksum
        );
        assert!(
            parse(S, C, &b, true).is_ok(),
            "port vouched for the checksum"
        );
        // The pseudo-header covers the addresses: a segment for another IP fails.
        let good = emit_vec(&seg);
        assert_eq!(
            parse(S, S, &good, false).unwrap_err(),
            WireError::TcpBadChecksum
        );
    }

    #[test]
    fn truncated_header_and_bad_data_offset_are_rejected() {
        let seg = out(
            Flags {
                ack: true,
                ..Flags::default()
            },
            Options {
                mss: Some(1),
                ..Options::default()
            },
            vec![],
        );
        let b = emit_vec(&seg);
        assert_eq!(
            parse(S, C, &b[..19], true).unwrap_err(),
            WireError::TcpTruncated
        );
        assert_eq!(
            parse(S, C, &b[..22], true).unwrap_err(),
            WireError::TcpTruncated
        );
        let mut bad = b.clone();
        bad[12] = 4 << 4;
        assert_eq!(
            parse(S, C, &bad, true).unwrap_err(),
            WireError::TcpBadDataOffset
        );
    }

    #[test]
    fn nonsense_flag_sets_are_rejected() {
        let base = emit_vec(&out(
            Flags {
                ack: true,
                ..Flags::default()
            },
            Options::default(),
            vec![],
        ));
        for bits in [F_SYN | F_FIN, F_SYN | F_RST, 0, F_PSH | F_URG | F_FIN] {
            let mut b = base.clone();
            b[13] = bits;
            assert_eq!(
                parse(S, C, &b, true).unwrap_err(),
                WireError::TcpBadFlags,
                "flags {bits:#x}"
            );
        }
    }

    fn with_raw_options(opts: &[u8]) -> Vec<u8> {
        let mut b = emit_vec(&out(
            Flags {
                ack: true,
                ..Flags::default()
            },
            Options::default(),
            vec![],
        ));
        b.extend_from_slice(opts);
        b[12] = (((20 + opts.len()) / 4) as u8) << 4;
        b
    }

    #[test]
    fn unknown_options_are_skipped_and_malformed_ones_rejected() {
        // Kind 30 (MPTCP) length 4 is skipped; then MSS.
        let b = with_raw_options(&[30, 4, 0, 0, OPT_MSS, 4, 0x05, 0xb4]);
        assert_eq!(parse(S, C, &b, true).unwrap().options.mss, Some(1460));
        for bad in [
            [OPT_MSS, 3, 0, 0],  // wrong length for MSS
            [30, 1, 0, 0],       // length below 2
            [30, 9, 0, 0],       // runs past the header
            [OPT_SACK, 6, 0, 0], // SACK not a multiple of 8
        ] {
            let b = with_raw_options(&bad);
            assert_eq!(
                parse(S, C, &b, true).unwrap_err(),
                WireError::TcpBadOption,
                "{bad:?}"
            );
        }
        // A kind with no length byte at the very end.
        let b = with_raw_options(&[OPT_NOP, OPT_NOP, OPT_NOP, 30]);
        assert_eq!(parse(S, C, &b, true).unwrap_err(), WireError::TcpBadOption);
        // End-of-list stops parsing even if garbage follows.
        let b = with_raw_options(&[OPT_END, 0xff, 0xff, 0xff]);
        assert!(parse(S, C, &b, true).is_ok());
    }
}
