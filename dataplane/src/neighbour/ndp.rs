//! IPv6 neighbour discovery (RFC 4861) for the addresses we own: what to
//! do with a received Neighbor Solicitation or Advertisement, and the
//! frames we send: solicited advertisements, unsolicited ones with the
//! Override flag that move an address to this box (the IPv6 gratuitous
//! ARP, §7.2.6), and solicitations for a neighbour we must reach.
//!
//! Like `arp.rs` it builds frames and decides, but sends nothing and keeps
//! no table: the worker feeds what it learns to a
//! `NeighbourCache<Ipv6Addr>`. Knows no port, TCP or worker.

use crate::wire::ethernet::{self, EthernetHeader, MacAddr};
use crate::wire::icmpv6::{self, NaFlags};
use crate::wire::ipv6::{self, Ipv6Header};
use crate::wire::WireError;
use std::net::Ipv6Addr;

/// The hop limit every ND message is sent with and must arrive with: a
/// router decrements it, so 255 proves the sender is on the link
/// (RFC 4861 §3.1).
pub const ND_HOP_LIMIT: u8 = 255;

/// What to do with a received Neighbor Solicitation (RFC 4861 §7.1.1,
/// §7.2.3, §7.2.4; RFC 4862 §5.4.3 for DAD probes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsAction {
    /// Not from the link (hop limit not 255): ignored.
    BadHopLimit,
    /// Breaks §7.1.1's address rules (a DAD probe not to the
    /// solicited-node group, or one carrying a link-layer address).
    Malformed,
    /// Not for an address we own: nothing to answer (nor to learn).
    NotOurs,
    /// Answer with a solicited advertisement to `dst` at `dst_mac`; learn
    /// the sender (`learn`) if it gave its link-layer address.
    Advertise {
        /// IPv6 destination of the advertisement.
        dst: Ipv6Addr,
        /// Its Ethernet destination.
        dst_mac: MacAddr,
        /// The Solicited flag (false for a DAD probe's answer).
        solicited: bool,
        /// The soliciting neighbour to learn, if it named its MAC.
        learn: Option<(Ipv6Addr, MacAddr)>,
    },
}

/// Decides about a solicitation from `ih` for `target` (carrying
/// `source_mac`, the source link-layer option), arrived in a frame from
/// `frame_src`. `owns` says whether `target` is one of our addresses.
pub fn on_solicitation(
    ih: &Ipv6Header,
    target: Ipv6Addr,
    source_mac: Option<MacAddr>,
    frame_src: MacAddr,
    owns: bool,
) -> NsAction {
    if ih.hop_limit != ND_HOP_LIMIT {
        return NsAction::BadHopLimit;
    }
    if ih.src.is_unspecified() {
        // A DAD probe (RFC 4862 §5.4.2): to the target's solicited-node
        // group, with no link-layer address (RFC 4861 §7.1.1).
        if ih.dst != ipv6::solicited_node(target) || source_mac.is_some() {
            return NsAction::Malformed;
        }
        if !owns {
            return NsAction::NotOurs;
        }
        // The address is ours and in use: defend it, to all nodes, not
        // solicited (RFC 4861 §7.2.4, RFC 4862 §5.4.3).
        return NsAction::Advertise {
            dst: ipv6::ALL_NODES,
            dst_mac: ipv6::multicast_mac(ipv6::ALL_NODES),
            solicited: false,
            learn: None,
        };
    }
    if ih.src.is_multicast() {
        return NsAction::Malformed;
    }
    if !owns {
        return NsAction::NotOurs;
    }
    // §7.2.3: the sender's link-layer address updates our cache; a
    // unicast solicitation (reachability check) may omit it, then the
    // answer goes to the frame's source.
    NsAction::Advertise {
        dst: ih.src,
        dst_mac: source_mac.unwrap_or(frame_src),
        solicited: true,
        learn: source_mac.map(|m| (ih.src, m)),
    }
}

/// Whether a received advertisement may update the cache (RFC 4861
/// §7.1.2): from the link, and not claiming Solicited when multicast.
pub fn advertisement_valid(ih: &Ipv6Header, flags: NaFlags) -> Result<(), NsAction> {
    if ih.hop_limit != ND_HOP_LIMIT {
        return Err(NsAction::BadHopLimit);
    }
    if ih.dst.is_multicast() && flags.solicited {
        return Err(NsAction::Malformed);
    }
    Ok(())
}

/// Writes an Ethernet/IPv6 frame carrying the ND message `body` builds
/// (hop limit 255); returns its length.
fn emit_nd_frame(
    buf: &mut [u8],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    body: impl FnOnce(&mut [u8]) -> Result<usize, WireError>,
) -> Result<usize, WireError> {
    let e = ethernet::emit(
        buf,
        &EthernetHeader {
            dst: dst_mac,
            src: src_mac,
            ethertype: ethernet::ETHERTYPE_IPV6,
        },
    )?;
    let l4_at = e + ipv6::HEADER_LEN;
    let n = body(buf.get_mut(l4_at..).ok_or(WireError::BufferTooSmall)?)?;
    ipv6::emit(&mut buf[e..], src, dst, ipv6::PROTO_ICMPV6, ND_HOP_LIMIT, n)?;
    Ok(l4_at + n)
}

/// An advertisement of `our_ip` at `our_mac` to `dst`/`dst_mac`, with the
/// Override flag (we are no proxy and no anycast, §7.2.4) and our
/// link-layer address.
pub fn emit_advertisement(
    buf: &mut [u8],
    our_mac: MacAddr,
    our_ip: Ipv6Addr,
    dst_mac: MacAddr,
    dst: Ipv6Addr,
    solicited: bool,
) -> Result<usize, WireError> {
    let flags = NaFlags {
        router: false,
        solicited,
        override_: true,
    };
    emit_nd_frame(buf, our_mac, dst_mac, our_ip, dst, |b| {
        icmpv6::emit_neighbor_advertisement(b, our_ip, dst, our_ip, flags, Some(our_mac))
    })
}

/// An unsolicited advertisement of `ip` at `mac` to all nodes with the
/// Override flag (RFC 4861 §7.2.6): every neighbour that caches `ip`
/// moves it to `mac`, which is how clients follow a service address to
/// the survivor that inherits it. Sent on the ARP announcements' schedule.
pub fn emit_announcement(buf: &mut [u8], mac: MacAddr, ip: Ipv6Addr) -> Result<usize, WireError> {
    emit_advertisement(
        buf,
        mac,
        ip,
        ipv6::multicast_mac(ipv6::ALL_NODES),
        ipv6::ALL_NODES,
        false,
    )
}

/// A multicast solicitation for `target`'s MAC, to its solicited-node
/// group (RFC 4861 §7.2.2), from `our_ip` with our link-layer address.
pub fn emit_solicitation(
    buf: &mut [u8],
    mac: MacAddr,
    our_ip: Ipv6Addr,
    target: Ipv6Addr,
) -> Result<usize, WireError> {
    let group = ipv6::solicited_node(target);
    emit_nd_frame(buf, mac, ipv6::multicast_mac(group), our_ip, group, |b| {
        icmpv6::emit_neighbor_solicitation(b, our_ip, group, target, Some(mac))
    })
}

/// Whether a frame sent to `dst` is one the port must take for IPv6: the
/// all-nodes group or the solicited-node group of one of `ours`
/// (33:33:xx:xx:xx:xx, RFC 2464 §7).
pub fn accepts_multicast_mac(dst: MacAddr, ours: impl IntoIterator<Item = Ipv6Addr>) -> bool {
    if dst.0[0] != 0x33 || dst.0[1] != 0x33 {
        return false;
    }
    dst == ipv6::multicast_mac(ipv6::ALL_NODES)
        || ours
            .into_iter()
            .any(|ip| dst == ipv6::multicast_mac(ipv6::solicited_node(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::icmpv6::Icmpv6;

    const ME: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x11]);
    const PEER: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);
    const OURS: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x11);
    const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x100);

    fn header(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8) -> Ipv6Header {
        Ipv6Header {
            src,
            dst,
            protocol: ipv6::PROTO_ICMPV6,
            hop_limit,
            header_len: 40,
            payload_len: 32,
        }
    }

    fn parse_frame(b: &[u8]) -> (EthernetHeader, Ipv6Header, Icmpv6<'_>) {
        let (eh, p) = ethernet::parse(b).unwrap();
        let (ih, l4) = ipv6::parse(p).unwrap();
        (eh, ih, icmpv6::parse(ih.src, ih.dst, l4).unwrap())
    }

    #[test]
    fn solicitation_for_our_address_is_answered_unicast_and_teaches_the_sender() {
        let ih = header(CLIENT, ipv6::solicited_node(OURS), 255);
        assert_eq!(
            on_solicitation(&ih, OURS, Some(PEER), PEER, true),
            NsAction::Advertise {
                dst: CLIENT,
                dst_mac: PEER,
                solicited: true,
                learn: Some((CLIENT, PEER)),
            }
        );
        assert_eq!(
            on_solicitation(&ih, CLIENT, Some(PEER), PEER, false),
            NsAction::NotOurs
        );
    }

    #[test]
    fn solicitation_with_a_hop_limit_below_255_is_ignored() {
        for hl in [0, 1, 64, 254] {
            let ih = header(CLIENT, ipv6::solicited_node(OURS), hl);
            assert_eq!(
                on_solicitation(&ih, OURS, Some(PEER), PEER, true),
                NsAction::BadHopLimit
            );
        }
        let na = header(CLIENT, OURS, 254);
        assert_eq!(
            advertisement_valid(&na, NaFlags::default()),
            Err(NsAction::BadHopLimit)
        );
    }

    #[test]
    fn dad_probe_for_our_address_is_defended_to_all_nodes_unsolicited() {
        let ih = header(Ipv6Addr::UNSPECIFIED, ipv6::solicited_node(OURS), 255);
        assert_eq!(
            on_solicitation(&ih, OURS, None, PEER, true),
            NsAction::Advertise {
                dst: ipv6::ALL_NODES,
                dst_mac: MacAddr([0x33, 0x33, 0, 0, 0, 1]),
                solicited: false,
                learn: None,
            }
        );
        // A probe for an address not ours: silence, so the prober may take it.
        assert_eq!(
            on_solicitation(&ih, CLIENT, None, PEER, false),
            NsAction::Malformed,
            "not sent to the target's group"
        );
        let other = header(Ipv6Addr::UNSPECIFIED, ipv6::solicited_node(CLIENT), 255);
        assert_eq!(
            on_solicitation(&other, CLIENT, None, PEER, false),
            NsAction::NotOurs
        );
        // RFC 4861 §7.1.1: a DAD probe carries no link-layer address, and
        // goes to the solicited-node group.
        assert_eq!(
            on_solicitation(&ih, OURS, Some(PEER), PEER, true),
            NsAction::Malformed
        );
        let unicast = header(Ipv6Addr::UNSPECIFIED, OURS, 255);
        assert_eq!(
            on_solicitation(&unicast, OURS, None, PEER, true),
            NsAction::Malformed
        );
    }

    #[test]
    fn multicast_advertisement_claiming_solicited_is_invalid() {
        let ih = header(CLIENT, ipv6::ALL_NODES, 255);
        let solicited = NaFlags {
            solicited: true,
            ..NaFlags::default()
        };
        assert_eq!(
            advertisement_valid(&ih, solicited),
            Err(NsAction::Malformed)
        );
        assert_eq!(advertisement_valid(&ih, NaFlags::default()), Ok(()));
    }

    #[test]
    fn announcement_is_an_unsolicited_override_advertisement_to_all_nodes() {
        let mut buf = [0u8; 128];
        let n = emit_announcement(&mut buf, ME, OURS).unwrap();
        let (eh, ih, m) = parse_frame(&buf[..n]);
        assert_eq!(eh.dst, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!((ih.src, ih.dst, ih.hop_limit), (OURS, ipv6::ALL_NODES, 255));
        assert_eq!(
            m,
            Icmpv6::NeighborAdvertisement {
                flags: NaFlags {
                    router: false,
                    solicited: false,
                    override_: true
                },
                target: OURS,
                target_mac: Some(ME),
            }
        );
        assert_eq!(advertisement_valid(&ih, NaFlags::default()), Ok(()));
    }

    #[test]
    fn solicitation_goes_to_the_targets_group_with_our_mac() {
        let mut buf = [0u8; 128];
        let n = emit_solicitation(&mut buf, ME, OURS, CLIENT).unwrap();
        let (eh, ih, m) = parse_frame(&buf[..n]);
        assert_eq!(eh.dst, MacAddr([0x33, 0x33, 0xff, 0, 1, 0]));
        assert_eq!(ih.dst, "ff02::1:ff00:100".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ih.hop_limit, 255);
        assert_eq!(
            m,
            Icmpv6::NeighborSolicitation {
                target: CLIENT,
                source_mac: Some(ME)
            }
        );
    }

    #[test]
    fn multicast_macs_accepted_are_all_nodes_and_our_groups_only() {
        let ours = [OURS];
        assert!(accepts_multicast_mac(
            MacAddr([0x33, 0x33, 0, 0, 0, 1]),
            ours
        ));
        assert!(accepts_multicast_mac(
            MacAddr([0x33, 0x33, 0xff, 0, 0, 0x11]),
            ours
        ));
        assert!(!accepts_multicast_mac(
            MacAddr([0x33, 0x33, 0xff, 0, 0, 0x12]),
            ours
        ));
        assert!(!accepts_multicast_mac(
            MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]),
            ours
        ));
    }
}
