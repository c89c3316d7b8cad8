//! The worker over IPv6, frame by frame on a memory port: neighbour
//! discovery (solicitations answered, hop limit 255 enforced, DAD probes
//! defended, announcements, our own solicitations), TCP with the IPv6 MSS,
//! ICMPv6 echo, and Packet Too Big lowering a connection's MSS.

use super::*;
use crate::app::{App, CloseReason, Ctx};
use crate::flow::ConnId;
use crate::tcp::{Flags, FourTuple, Options, OutSegment, Segment, SeqNum, State, TcbExport};
use crate::wire::ethernet::{self, EthernetHeader, MacAddr};
use crate::wire::icmpv6::{self, Icmpv6, NaFlags};
use crate::wire::{ipv6, tcp, WireError};
use bytes::Bytes;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

const BOX_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);
const SERVICE: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x11);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x100);

/// Sends 100 KB on every connection it accepts.
struct Sender;
impl App for Sender {
    fn on_accept(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let _ = ctx.send(conn, Bytes::from(vec![b's'; 100_000]));
    }
    fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
}

fn worker(
    now: Instant,
) -> (
    crate::port::memory::MemoryPort,
    Worker<crate::port::memory::MemoryPort, Sender>,
) {
    let (wire, port) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let cfg = WorkerConfig::for_test(vec![IpAddr::V6(SERVICE)]);
    (wire, Worker::new(port, Sender, cfg, now))
}

/// An Ethernet/IPv6 frame from the client carrying what `body` writes.
fn frame6(
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    protocol: u8,
    hop_limit: u8,
    body: impl FnOnce(&mut [u8]) -> Result<usize, WireError>,
) -> Vec<u8> {
    let mut f = vec![0u8; 2000];
    let e = ethernet::emit(
        &mut f,
        &EthernetHeader {
            dst: dst_mac,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_IPV6,
        },
    )
    .unwrap();
    let n = body(&mut f[e + 40..]).unwrap();
    ipv6::emit(&mut f[e..], src, dst, protocol, hop_limit, n).unwrap();
    f.truncate(e + 40 + n);
    f
}

fn solicitation(src: Ipv6Addr, target: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
    let group = ipv6::solicited_node(target);
    frame6(
        ipv6::multicast_mac(group),
        src,
        group,
        ipv6::PROTO_ICMPV6,
        hop_limit,
        |b| {
            let mac = (!src.is_unspecified()).then_some(CLIENT_MAC);
            icmpv6::emit_neighbor_solicitation(b, src, group, target, mac)
        },
    )
}

/// The ICMPv6 messages among `frames`, with their Ethernet and IPv6
/// destinations and hop limits.
fn icmpv6_out(frames: &[Vec<u8>]) -> Vec<(MacAddr, Ipv6Addr, u8, Icmpv6<'_>)> {
    frames
        .iter()
        .filter_map(|f| {
            let (eh, p) = ethernet::parse(f).ok()?;
            let (ih, l4) = ipv6::parse(p).ok()?;
            let m = icmpv6::parse(ih.src, ih.dst, l4).ok()?;
            Some((eh.dst, ih.dst, ih.hop_limit, m))
        })
        .collect()
}

/// The TCP segments among `frames` (checksums verified).
fn tcp_out(frames: &[Vec<u8>]) -> Vec<(MacAddr, Segment<'_>)> {
    frames
        .iter()
        .filter_map(|f| {
            let (eh, p) = ethernet::parse(f).ok()?;
            let (ih, l4) = ipv6::parse(p).ok()?;
            let s = tcp::parse(IpAddr::V6(ih.src), IpAddr::V6(ih.dst), l4, false).ok()?;
            Some((eh.dst, s))
        })
        .collect()
}

fn client_segment(port: u16, seq: u32, ack: u32, flags: Flags, options: Options) -> Vec<u8> {
    let seg = OutSegment {
        src_port: port,
        dst_port: 80,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 65_535,
        options,
        ..OutSegment::default()
    };
    frame6(BOX_MAC, CLIENT, SERVICE, ipv6::PROTO_TCP, 64, |b| {
        tcp::emit(b, CLIENT.into(), SERVICE.into(), &seg)
    })
}

const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
    psh: false,
    urg: false,
    ece: false,
    cwr: false,
};
const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
    psh: false,
    urg: false,
    ece: false,
    cwr: false,
};

#[test]
fn solicitation_for_our_address_is_answered_and_one_from_off_link_ignored() {
    let now = Instant::now();
    let (mut wire, mut w) = worker(now);
    wire.send(solicitation(CLIENT, SERVICE, 64)).unwrap();
    w.poll(now).unwrap();
    assert!(wire.drain().is_empty(), "hop limit 64: not from the link");
    assert_eq!(w.counters().drop_nd_bad_hop_limit, 1);

    wire.send(solicitation(CLIENT, SERVICE, 255)).unwrap();
    w.poll(now).unwrap();
    let out = wire.drain();
    let na = icmpv6_out(&out);
    assert_eq!(
        na,
        vec![(
            CLIENT_MAC,
            CLIENT,
            255,
            Icmpv6::NeighborAdvertisement {
                flags: NaFlags {
                    router: false,
                    solicited: true,
                    override_: true
                },
                target: SERVICE,
                target_mac: Some(BOX_MAC),
            }
        )]
    );
    assert_eq!(w.counters().nd_advertisements_sent, 1);
    // Another address's group is not ours: the frame is not even taken.
    let other: Ipv6Addr = "2001:2:0:18::12".parse().unwrap();
    wire.send(solicitation(CLIENT, other, 255)).unwrap();
    w.poll(now).unwrap();
    assert!(wire.drain().is_empty());
    assert_eq!(w.counters().drop_eth_not_for_us, 1);
}

#[test]
fn dad_probe_for_our_address_is_defended_to_all_nodes() {
    let now = Instant::now();
    let (mut wire, mut w) = worker(now);
    wire.send(solicitation(Ipv6Addr::UNSPECIFIED, SERVICE, 255))
        .unwrap();
    w.poll(now).unwrap();
    let out = wire.drain();
    let na = icmpv6_out(&out);
    assert_eq!(na.len(), 1);
    let (mac, dst, hl, m) = na[0];
    assert_eq!(
        (mac, dst, hl),
        (MacAddr([0x33, 0x33, 0, 0, 0, 1]), ipv6::ALL_NODES, 255)
    );
    assert!(matches!(
        m,
        Icmpv6::NeighborAdvertisement {
            flags: NaFlags {
                solicited: false,
                override_: true,
                ..
            },
            target: SERVICE,
            ..
        }
    ));
    // The prober is not learned: it has no address yet.
    assert_eq!(w.stats().neighbours, 0);
}

#[test]
fn announcement_is_an_unsolicited_override_advertisement() {
    let now = Instant::now();
    let (mut wire, mut w) = worker(now);
    w.command(Command::Announce(IpAddr::V6(SERVICE)), now);
    w.poll(now).unwrap();
    let out = wire.drain();
    let na = icmpv6_out(&out);
    assert_eq!(na.len(), 1);
    assert_eq!(na[0].1, ipv6::ALL_NODES);
    assert!(matches!(
        na[0].3,
        Icmpv6::NeighborAdvertisement {
            flags: NaFlags {
                solicited: false,
                override_: true,
                router: false
            },
            target: SERVICE,
            target_mac: Some(BOX_MAC),
        }
    ));
    assert_eq!(w.counters().nd_announcements_sent, 1);
}

#[test]
fn echo_request_to_our_address_is_answered() {
    let now = Instant::now();
    let (mut wire, mut w) = worker(now);
    let req = frame6(BOX_MAC, CLIENT, SERVICE, ipv6::PROTO_ICMPV6, 64, |b| {
        let n = icmpv6::emit_echo_reply(b, CLIENT, SERVICE, 7, 3, b"ping6")?;
        b[0] = icmpv6::TYPE_ECHO_REQUEST;
        b[2] = 0;
        b[3] = 0;
        let mut c = crate::wire::checksum::pseudo_header(
            CLIENT.into(),
            SERVICE.into(),
            ipv6::PROTO_ICMPV6,
            n as u32,
        );
        c.add(&b[..n]);
        let sum = c.finish();
        b[2..4].copy_from_slice(&sum.to_be_bytes());
        Ok(n)
    });
    wire.send(req).unwrap();
    w.poll(now).unwrap();
    let out = wire.drain();
    assert_eq!(
        icmpv6_out(&out),
        vec![(
            CLIENT_MAC,
            CLIENT,
            64,
            Icmpv6::Echo {
                request: false,
                ident: 7,
                seq: 3,
                data: b"ping6"
            }
        )]
    );
    assert_eq!(w.counters().icmpv6_echo_replies_sent, 1);
}

#[test]
fn handshake_over_ipv6_advertises_the_ipv6_mss_and_packet_too_big_lowers_it() {
    let now = Instant::now();
    let (mut wire, mut w) = worker(now);
    let syn_opts = Options {
        mss: Some(1440),
        ..Options::default()
    };
    wire.send(client_segment(40_000, 1000, 0, SYN, syn_opts))
        .unwrap();
    w.poll(now).unwrap();
    let out = wire.drain();
    let segs = tcp_out(&out);
    assert_eq!(segs.len(), 1, "the SYN-ACK");
    let (mac, syn_ack) = &segs[0];
    assert_eq!(*mac, CLIENT_MAC);
    assert!(syn_ack.flags.syn && syn_ack.flags.ack);
    // MTU 1500: 1460 for IPv4, 1440 for IPv6's 20 more header bytes.
    assert_eq!(syn_ack.options.mss, Some(1440));
    let iss = syn_ack.seq.0;

    wire.send(client_segment(
        40_000,
        1001,
        iss + 1,
        ACK,
        Options::default(),
    ))
    .unwrap();
    w.poll(now).unwrap();
    let out = wire.drain();
    let first = tcp_out(&out);
    assert!(!first.is_empty(), "the app's data leaves");
    assert!(first.iter().all(|(_, s)| s.payload.len() <= 1440));
    assert!(first.iter().any(|(_, s)| s.payload.len() == 1440));

    // A router on the way reports an MTU of 600: clamped to 1280, the
    // path carries 1280 - 40 - 20 = 1220 bytes of TCP payload.
    let mut quoted = vec![0u8; 40 + 20 + 1440];
    let seg = OutSegment {
        src_port: 80,
        dst_port: 40_000,
        seq: SeqNum(iss + 1),
        flags: ACK,
        ..OutSegment::default()
    };
    let t = tcp::emit(&mut quoted[40..], SERVICE.into(), CLIENT.into(), &seg).unwrap();
    ipv6::emit(&mut quoted, SERVICE, CLIENT, ipv6::PROTO_TCP, 64, t + 1440).unwrap();
    let router: Ipv6Addr = "2001:2:0:18::1".parse().unwrap();
    let ptb = frame6(BOX_MAC, router, SERVICE, ipv6::PROTO_ICMPV6, 64, |b| {
        icmpv6::emit_packet_too_big(b, router, SERVICE, 600, &quoted)
    });
    // First one quoting a sequence number not in flight: a blind guess
    // (RFC 8201 §5.2), ignored.
    let mut guessed = quoted.clone();
    guessed[44..48].copy_from_slice(&(iss + 1_000_000).to_be_bytes());
    let blind = frame6(BOX_MAC, router, SERVICE, ipv6::PROTO_ICMPV6, 64, |b| {
        icmpv6::emit_packet_too_big(b, router, SERVICE, 600, &guessed)
    });
    wire.send(blind).unwrap();
    w.poll(now).unwrap();
    assert_eq!(
        (
            w.counters().icmpv6_ptb_applied,
            w.counters().drop_icmpv6_ptb_ignored
        ),
        (0, 1)
    );
    wire.send(ptb.clone()).unwrap();
    w.poll(now).unwrap();
    assert_eq!(w.counters().icmpv6_ptb_applied, 1);
    // The same message again changes nothing: the MSS is already lower.
    wire.send(ptb).unwrap();
    w.poll(now).unwrap();
    assert_eq!(w.counters().drop_icmpv6_ptb_ignored, 2);
    wire.drain();

    // The client acknowledges everything sent so far: what follows is cut
    // to the new MSS.
    let acked: u32 = first.iter().map(|(_, s)| s.payload.len() as u32).sum();
    wire.send(client_segment(
        40_000,
        1001,
        iss + 1 + acked,
        ACK,
        Options::default(),
    ))
    .unwrap();
    w.poll(now + Duration::from_millis(1)).unwrap();
    let out = wire.drain();
    let after = tcp_out(&out);
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|(_, s)| s.payload.len() <= 1220),
        "{:?}",
        after
            .iter()
            .map(|(_, s)| s.payload.len())
            .collect::<Vec<_>>()
    );
    assert!(after.iter().any(|(_, s)| s.payload.len() == 1220));

    // A Packet Too Big about no connection of ours is ignored.
    let mut stray = quoted.clone();
    stray[42..44].copy_from_slice(&40_999u16.to_be_bytes());
    let ptb = frame6(BOX_MAC, router, SERVICE, ipv6::PROTO_ICMPV6, 64, |b| {
        icmpv6::emit_packet_too_big(b, router, SERVICE, 1280, &stray)
    });
    wire.send(ptb).unwrap();
    w.poll(now + Duration::from_millis(2)).unwrap();
    assert_eq!(w.counters().drop_icmpv6_ptb_ignored, 3);
    assert_eq!(w.counters().icmpv6_ptb_applied, 1);
}

/// An established connection of CLIENT to SERVICE:80 as a checkpoint
/// holds it.
fn restored_export() -> TcbExport {
    TcbExport {
        tuple: FourTuple {
            local: SocketAddr::new(IpAddr::V6(SERVICE), 80),
            remote: SocketAddr::new(IpAddr::V6(CLIENT), 40_001),
        },
        state: State::Established,
        iss: 1000,
        irs: 5000,
        snd_una: 90_000,
        snd_nxt: 90_000,
        rcv_nxt: 5100,
        snd_wnd: 65_535,
        rcv_wnd: 65_535,
        mss: 1440,
        snd_wscale: 0,
        rcv_wscale: 0,
        sack_permitted: false,
        timestamps: false,
        ts_recent: 0,
        ts_last_sent: 0,
        acks_covered: false,
    }
}

/// Orders the worker to restore `export` and lets it act.
fn restore<A: App>(
    w: &mut Worker<crate::port::memory::MemoryPort, A>,
    export: TcbExport,
    now: Instant,
) {
    w.command(
        Command::Restore {
            export,
            app_data: Box::new(()),
        },
        now,
    );
    w.poll(now).unwrap();
}

#[test]
fn restored_ipv6_connection_solicits_its_client_and_probes_once_it_answers() {
    let now = Instant::now();
    let (mut wire, mut w) = worker(now);
    let export = restored_export();
    restore(&mut w, export, now);
    let out = wire.drain();
    assert!(tcp_out(&out).is_empty(), "no frame to an unknown MAC");
    let ns = icmpv6_out(&out);
    assert_eq!(ns.len(), 1);
    assert_eq!(
        (ns[0].0, ns[0].1, ns[0].2),
        (
            MacAddr([0x33, 0x33, 0xff, 0, 1, 0]),
            ipv6::solicited_node(CLIENT),
            255
        )
    );
    assert_eq!(w.counters().nd_solicitations_sent, 1);

    // The client answers, solicited, to our address.
    let na = frame6(BOX_MAC, CLIENT, SERVICE, ipv6::PROTO_ICMPV6, 255, |b| {
        let flags = NaFlags {
            router: false,
            solicited: true,
            override_: true,
        };
        icmpv6::emit_neighbor_advertisement(b, CLIENT, SERVICE, CLIENT, flags, Some(CLIENT_MAC))
    });
    wire.send(na).unwrap();
    w.poll(now + Duration::from_millis(1)).unwrap();
    let out = wire.drain();
    let probes = tcp_out(&out);
    assert_eq!(probes.len(), 1, "the probe, kept until the client answered");
    assert_eq!(probes[0].0, CLIENT_MAC);
    assert_eq!(probes[0].1.seq.0, 89_999);
    assert_eq!(w.counters().drop_no_neighbour, 0);
}

#[test]
fn a_connection_restored_on_an_anycast_address_solicits_from_the_box_s_own_address() {
    // Every box serves ANYCAST; a solicitation from it would be answered
    // through the client's entry for ANYCAST (its router's MAC), to
    // whichever box the router picks. The box asks from its own address.
    const ANYCAST: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x10);
    let now = Instant::now();
    let (mut wire, port) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let cfg = WorkerConfig::for_test(vec![IpAddr::V6(SERVICE), IpAddr::V6(ANYCAST)]);
    let mut w = Worker::new(port, Sender, cfg, now);
    let mut export = restored_export();
    export.tuple.local = SocketAddr::new(IpAddr::V6(ANYCAST), 80);
    restore(&mut w, export, now);
    let out = wire.drain();
    let sources: Vec<Ipv6Addr> = out
        .iter()
        .filter_map(|f| {
            let (_, p) = ethernet::parse(f).ok()?;
            let (ih, l4) = ipv6::parse(p).ok()?;
            matches!(
                icmpv6::parse(ih.src, ih.dst, l4).ok()?,
                Icmpv6::NeighborSolicitation { .. }
            )
            .then_some(ih.src)
        })
        .collect();
    assert_eq!(
        sources,
        vec![SERVICE],
        "one solicitation, from the box's own address"
    );
}

/// Every unknown segment belongs to an orphan another survivor took over.
struct Forwarder;
const OTHER_SURVIVOR: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0c]);
impl App for Forwarder {
    fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
    fn on_unknown_segment(&mut self, _: FourTuple, _: bool) -> crate::app::UnknownAction {
        crate::app::UnknownAction::Forward(OTHER_SURVIVOR)
    }
}

#[test]
fn segment_of_an_ipv6_orphan_held_by_another_survivor_is_forwarded_unchanged() {
    // The survivor that inherited the dead box's IPv6 address receives
    // the client's frames for a connection another survivor restored: it
    // hands each over at layer 2, IPv6 header and segment untouched, and
    // answers nothing itself (no RST, no ACK).
    let now = Instant::now();
    let (mut wire, port) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let cfg = WorkerConfig::for_test(vec![IpAddr::V6(SERVICE)]);
    let mut w = Worker::new(port, Forwarder, cfg, now);
    let seg = client_segment(40_000, 1000, 5000, ACK, Options::default());
    wire.send(seg.clone()).unwrap();
    w.poll(now).unwrap();
    let out = wire.drain();
    assert_eq!(out.len(), 1, "one frame out: the forwarded one");
    assert_eq!(&out[0][0..6], &OTHER_SURVIVOR.0, "to the other survivor");
    assert_eq!(&out[0][6..12], &BOX_MAC.0, "from us");
    assert_eq!(&out[0][12..], &seg[12..], "IPv6 and TCP untouched");
    assert_eq!(w.counters().tcp_forwarded, 1);
    assert!(tcp_out(&out)
        .iter()
        .all(|(mac, s)| *mac == OTHER_SURVIVOR && !s.flags.rst));
}

/// Answers every datagram with its payload reversed, to its sender.
struct Echo;
impl App for Echo {
    fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
    fn on_datagram(&mut self, tuple: FourTuple, payload: &[u8], ctx: &mut Ctx<'_>) {
        let back: Vec<u8> = payload.iter().rev().copied().collect();
        ctx.send_datagram(tuple, Bytes::from(back));
    }
}

#[test]
fn udp_over_ipv6_reaches_the_app_and_its_answer_goes_back_over_ipv6() {
    // RTP and RTCP to an IPv6 player (issue 18): a datagram to our address
    // and a port of the UDP range reaches the app with its IPv6 4-tuple;
    // what the app sends back leaves as an IPv6/UDP frame to the client's
    // MAC, its checksum over the IPv6 pseudo-header.
    let now = Instant::now();
    let (mut wire, port) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut cfg = WorkerConfig::for_test(vec![IpAddr::V6(SERVICE)]);
    cfg.udp_ports = 6970..=6999;
    let mut w = Worker::new(port, Echo, cfg, now);
    // The client is a neighbour (its solicitation teaches its MAC).
    wire.send(solicitation(CLIENT, SERVICE, 255)).unwrap();
    w.poll(now).unwrap();
    wire.drain();
    let datagram = frame6(BOX_MAC, CLIENT, SERVICE, 17, 64, |b| {
        crate::wire::udp::emit(
            b,
            IpAddr::V6(CLIENT),
            IpAddr::V6(SERVICE),
            5000,
            6970,
            b"rtcp",
        )
    });
    wire.send(datagram).unwrap();
    w.poll(now).unwrap();
    assert_eq!(w.counters().udp_rx_datagrams, 1);
    let out = wire.drain();
    assert_eq!(out.len(), 1, "one answer");
    let (eh, p) = ethernet::parse(&out[0]).unwrap();
    assert_eq!(
        (eh.dst, eh.ethertype),
        (CLIENT_MAC, ethernet::ETHERTYPE_IPV6)
    );
    let (ih, l4) = ipv6::parse(p).unwrap();
    assert_eq!((ih.src, ih.dst, ih.protocol), (SERVICE, CLIENT, 17));
    let d = crate::wire::udp::parse(IpAddr::V6(SERVICE), IpAddr::V6(CLIENT), l4, false)
        .expect("a valid checksum over the IPv6 pseudo-header");
    assert_eq!(
        (d.src_port, d.dst_port, d.payload),
        (6970, 5000, &b"pctr"[..])
    );
    assert_eq!(w.counters().udp_tx_datagrams, 1);
}
