//! Egress: segments become frames in the TX batch. A TCB's output is
//! merged into GSO frames when the port offloads segmentation
//! ([`Core::transmit`]); a frame for a neighbour whose MAC is unknown waits
//! in the neighbour table's pending queue while an ARP request goes out
//! ([`Core::emit_tcp`]), and leaves when the answer arrives
//! ([`Core::send_pending`]). The batch goes to the port every
//! [`TX_FLUSH`] frames and at the end of an iteration ([`Core::flush`]).

use super::state::Core;
use crate::flow::ConnId;
use crate::neighbour;
use crate::port::{Port, PortError, TxOffload};
use crate::tcp::{FourTuple, OutSegment};
use crate::wire::ethernet::{self, EthernetHeader, MacAddr};
use crate::wire::{ipv4, ipv6, tcp};
use std::net::IpAddr;
use std::time::Instant;

/// Frames queued before the worker flushes them to the port mid-iteration.
pub(super) const TX_FLUSH: usize = 64;

impl Core {
    /// Hands the TX batch to the port.
    pub(super) fn flush<P: Port>(&mut self, port: &mut P) -> Result<(), PortError> {
        if self.tx.is_empty() {
            return Ok(());
        }
        let n = self.tx.len();
        let bytes: usize = self.tx.frames().map(|f| f.len()).sum();
        let sent = port.tx_burst(&mut self.tx)?;
        self.counters.tx_frames += sent as u64;
        self.counters.tx_bytes += bytes as u64;
        self.counters.tx_dropped += (n - sent.min(n)) as u64;
        Ok(())
    }

    /// Sends what connection `id` has to send: `poll_transmit` until empty.
    /// With offload, back-to-back full segments become one GSO frame.
    pub(super) fn transmit<P: Port>(
        &mut self,
        port: &mut P,
        id: ConnId,
        now: Instant,
    ) -> Result<(), PortError> {
        let mut pending: Option<(OutSegment, FourTuple, u16, usize)> = None;
        // The TCB keeps its tuple packed: unpacked once, not per segment.
        let Some((peer, tuple)) = self.flows.get(id).map(|c| (c.peer_mac, c.tcb.tuple())) else {
            return Ok(());
        };
        while let Some(seg) = self
            .flows
            .get_mut(id)
            .and_then(|c| c.tcb.poll_transmit(now))
        {
            if !self.offload {
                self.emit_tcp(&tuple, &seg, now, 0, peer);
            } else {
                if let Some((p, _, gso, count)) = pending.as_mut() {
                    if can_merge(p, *gso, *count, &seg) {
                        p.flags.psh |= seg.flags.psh;
                        p.flags.fin = seg.flags.fin;
                        p.payload.extend(seg.payload);
                        *count += 1;
                        continue;
                    }
                }
                if let Some((p, t, gso, count)) = pending.take() {
                    self.emit_tcp(&t, &p, now, if count > 1 { gso } else { 0 }, peer);
                }
                let gso = u16::try_from(seg.payload_len()).unwrap_or(0);
                pending = Some((seg, tuple, gso, 1));
            }
            if self.tx.len() >= TX_FLUSH {
                self.flush(port)?;
            }
        }
        if let Some((p, t, gso, count)) = pending.take() {
            self.emit_tcp(&t, &p, now, if count > 1 { gso } else { 0 }, peer);
        }
        Ok(())
    }

    /// Builds the frame of `seg` for `tuple` into the TX batch. With
    /// `gso` > 0, `seg` is several MSS-sized segments merged, which the
    /// port's GSO cuts back into `gso`-byte segments. `peer` is the MAC to
    /// use when the neighbour cache does not know the client (the MAC its
    /// frame came from, never cached: a SYN's source is unproven).
    pub(super) fn emit_tcp(
        &mut self,
        tuple: &FourTuple,
        seg: &OutSegment,
        now: Instant,
        gso: u16,
        peer: Option<MacAddr>,
    ) {
        let (local, remote) = (tuple.local.ip(), tuple.remote.ip());
        if local.is_ipv6() != remote.is_ipv6() {
            self.counters.drop_emit_error += 1;
            return;
        }
        let v6 = remote.is_ipv6();
        let dst_mac = self.neighbour_mac(remote, now).or(peer);
        if dst_mac.is_none() {
            self.resolve(local, remote, now);
        }
        let id = self.next_ip_id();
        let mac = self.mac;
        let mtu = self.cfg.mtu;
        let partial = self.offload;
        let payload = seg.payload_len();
        let l4_at = ethernet::HEADER_LEN
            + if v6 {
                ipv6::HEADER_LEN
            } else {
                ipv4::MIN_HEADER_LEN
            };
        let buf = self
            .tx
            .next_buf_sized(l4_at + tcp::MIN_HEADER_LEN + tcp::MAX_OPTIONS_LEN + payload);
        let result = (|| {
            let e = ethernet::emit(
                buf,
                &EthernetHeader {
                    // Written when the neighbour answers (see L2Pending).
                    dst: dst_mac.unwrap_or(MacAddr([0; 6])),
                    src: mac,
                    ethertype: if v6 {
                        ethernet::ETHERTYPE_IPV6
                    } else {
                        ethernet::ETHERTYPE_IPV4
                    },
                },
            )?;
            // A frame the device will not cut must fit the MTU.
            let limit = if gso > 0 {
                buf.len()
            } else {
                (e + mtu).min(buf.len())
            };
            let t = tcp::emit_with(
                buf.get_mut(l4_at..limit)
                    .ok_or(crate::wire::WireError::BufferTooSmall)?,
                tuple.local.ip(),
                tuple.remote.ip(),
                seg,
                partial,
            )?;
            match (local, remote) {
                (IpAddr::V4(l), IpAddr::V4(r)) => {
                    ipv4::emit(&mut buf[e..], l, r, ipv4::PROTO_TCP, id, t)?
                }
                (IpAddr::V6(l), IpAddr::V6(r)) => ipv6::emit(
                    &mut buf[e..],
                    l,
                    r,
                    ipv6::PROTO_TCP,
                    ipv6::DEFAULT_HOP_LIMIT,
                    t,
                )?,
                _ => return Err(crate::wire::WireError::Unsupported),
            };
            Ok::<usize, crate::wire::WireError>(t)
        })();
        let (len, offload) = match result {
            Ok(t) if partial => (
                l4_at + t,
                Some(TxOffload {
                    gso_size: gso,
                    csum_start: l4_at as u16,
                    // The checksum field's offset in the TCP header.
                    csum_offset: 16,
                    hdr_len: (l4_at + t - payload) as u16,
                    ipv6: v6,
                }),
            ),
            Ok(t) => (l4_at + t, None),
            Err(e) => return self.counters.record(e),
        };
        if dst_mac.is_none() {
            // Built in the TX buffer but not committed: keep a copy until
            // the neighbour answers.
            let frame = self.tx.next_buf_sized(len).get(..len).unwrap_or(&[]);
            let queued = match remote {
                IpAddr::V4(r) => !frame.is_empty() && self.l2_pending.push(r, frame, offload, now),
                IpAddr::V6(r) => !frame.is_empty() && self.l2_pending6.push(r, frame, offload, now),
            };
            if !queued {
                self.counters.drop_no_neighbour += 1;
            }
            return;
        }
        if offload.is_some_and(|o| o.gso_size > 0) {
            self.counters.tx_gso_frames += 1;
        }
        match offload {
            Some(o) => self.tx.commit_offload(len, o),
            None => self.tx.commit(len),
        }
    }

    /// Asks for `remote`'s MAC (at most once a second per address): an
    /// ARP request or an NDP solicitation, from the box's first address of
    /// that family (its own: `service.ips` lists a box's own addresses
    /// first), or from `local` without one.
    fn resolve(&mut self, local: IpAddr, remote: IpAddr, now: Instant) {
        let due = match remote {
            IpAddr::V4(r) => self.neighbours.should_request(r, now),
            IpAddr::V6(r) => self.neighbours6.should_request(r, now),
        };
        if !due {
            return;
        }
        // A request updates the target's entry for its sender (RFC 826,
        // RFC 4861 §7.2.3), and a solicitation is answered to its source
        // address through that entry (§7.2.4). So ask from an address that
        // is this box's alone: not `local`, which may be another box's
        // (a connection restored here for another survivor's inherited
        // address) or an anycast address every box serves, which the
        // client's router (the lab's switch) sends to whichever box its
        // hash picks — the answer would be lost and the restored
        // connection never probed.
        let sender = self
            .cfg
            .service_ips
            .iter()
            .copied()
            .find(|ip| ip.is_ipv6() == local.is_ipv6())
            .unwrap_or(local);
        let mac = self.mac;
        let buf = self.tx.next_buf();
        match (sender, remote) {
            (IpAddr::V4(s), IpAddr::V4(r)) => {
                if let Ok(n) = neighbour::arp::emit_request(buf, mac, s, r) {
                    self.tx.commit(n);
                    self.counters.arp_requests_sent += 1;
                }
            }
            (IpAddr::V6(s), IpAddr::V6(r)) => {
                if let Ok(n) = neighbour::ndp::emit_solicitation(buf, mac, s, r) {
                    self.tx.commit(n);
                    self.counters.nd_solicitations_sent += 1;
                }
            }
            _ => {}
        }
    }

    /// Sends the frames that waited for `ip`'s MAC, now known.
    pub(super) fn send_pending(&mut self, ip: IpAddr, now: Instant) {
        let Some(mac) = self.neighbour_mac(ip, now) else {
            return;
        };
        let frames = match ip {
            IpAddr::V4(v4) if self.l2_pending.frames() > 0 => self.l2_pending.take(v4),
            IpAddr::V6(v6) if self.l2_pending6.frames() > 0 => self.l2_pending6.take(v6),
            _ => return,
        };
        for (frame, offload) in frames {
            let buf = self.tx.next_buf_sized(frame.len());
            let Some(out) = buf.get_mut(..frame.len()) else {
                self.counters.drop_no_neighbour += 1;
                continue;
            };
            out.copy_from_slice(&frame);
            out[0..6].copy_from_slice(&mac.0);
            match offload {
                Some(o) => {
                    if o.gso_size > 0 {
                        self.counters.tx_gso_frames += 1;
                    }
                    self.tx.commit_offload(frame.len(), o)
                }
                None => self.tx.commit(frame.len()),
            }
        }
    }
}

/// Largest payload merged into one GSO frame: the IPv4 total length is a
/// 16-bit field, and headers take up to 80 bytes of it.
const GSO_MAX_PAYLOAD: usize = 65_535 - 100;

/// Whether `seg` may be appended to `p` (already `count` segments of `gso`
/// bytes) as one GSO frame: the same header but for sequence number and
/// PSH/FIN (which GSO keeps on the last segment only), contiguous, every
/// earlier segment full-sized (GSO cuts at `gso` bytes), no SYN, RST or
/// ECN signalling.
fn can_merge(p: &OutSegment, gso: u16, count: usize, seg: &OutSegment) -> bool {
    let plen = p.payload_len();
    let slen = seg.payload_len();
    gso > 0
        && plen == usize::from(gso) * count
        && slen > 0
        && slen <= usize::from(gso)
        && plen + slen <= GSO_MAX_PAYLOAD
        && !(p.flags.fin || p.flags.syn || p.flags.rst || p.flags.cwr || p.flags.ece || p.flags.urg)
        && !(seg.flags.syn || seg.flags.rst || seg.flags.cwr || seg.flags.ece || seg.flags.urg)
        && seg.flags.ack == p.flags.ack
        && seg.seq == p.seq + plen as u32
        && seg.ack == p.ack
        && seg.window == p.window
        && seg.options == p.options
        && seg.src_port == p.src_port
        && seg.dst_port == p.dst_port
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::{Flags, SeqNum};
    use bytes::Bytes;

    fn data(seq: u32, len: usize) -> OutSegment {
        OutSegment {
            src_port: 80,
            dst_port: 40000,
            seq: SeqNum(seq),
            ack: SeqNum(7),
            flags: Flags {
                ack: true,
                ..Flags::default()
            },
            window: 100,
            payload: vec![Bytes::from(vec![0u8; len])],
            ..OutSegment::default()
        }
    }

    #[test]
    fn back_to_back_full_segments_merge_and_a_short_one_ends_the_run() {
        let first = data(u32::MAX - 100, 1448);
        // Contiguous across the 2^32 wrap, full-sized: mergeable.
        assert!(can_merge(
            &first,
            1448,
            1,
            &data((u32::MAX - 100).wrapping_add(1448), 1448)
        ));
        // A shorter last segment may join...
        assert!(can_merge(
            &first,
            1448,
            1,
            &data((u32::MAX - 100).wrapping_add(1448), 10)
        ));
        // ...but nothing may follow a short one (GSO cuts at gso_size).
        let mut short = data(0, 1448);
        short.payload.push(Bytes::from_static(b"x"));
        assert!(!can_merge(&short, 1448, 1, &data(1449, 1448)));
        // A gap, another ACK, a window change, a SYN/FIN/RST: no merge.
        assert!(!can_merge(
            &first,
            1448,
            1,
            &data((u32::MAX - 100).wrapping_add(1449), 1448)
        ));
        let mut other_ack = data((u32::MAX - 100).wrapping_add(1448), 1448);
        other_ack.ack = SeqNum(8);
        assert!(!can_merge(&first, 1448, 1, &other_ack));
        let mut fin = first.clone();
        fin.flags.fin = true;
        assert!(!can_merge(
            &fin,
            1448,
            1,
            &data((u32::MAX - 100).wrapping_add(1448), 1448)
        ));
        assert!(
            !can_merge(
                &first,
                1448,
                1,
                &data((u32::MAX - 100).wrapping_add(1448), 0)
            ),
            "pure ACKs stay apart"
        );
        // The IPv4 total length caps a merged frame below 64 KiB.
        let big = data(0, 1448 * 45);
        assert!(!can_merge(&big, 1448, 45, &data(1448 * 45, 1448)));
    }
}
