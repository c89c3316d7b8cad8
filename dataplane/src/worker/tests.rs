//! The worker driven frame by frame on a memory port, for what needs its
//! private pieces together: neighbour resolution of restored connections,
//! their retransmission timer.

use super::*;
use crate::app::{App, CloseReason, Ctx};
use crate::flow::ConnId;
use crate::port::memory::MemoryPort;
use crate::tcp::{Flags, FourTuple, OutSegment, SeqNum, State, TcbExport};
use crate::wire::ethernet::{self, EthernetHeader, MacAddr};
use crate::wire::{arp, ipv4, tcp};
use bytes::Bytes;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const BOX_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);
const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);

struct Quiet;
impl App for Quiet {
    fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
}

fn export(port: u16) -> TcbExport {
    TcbExport {
        tuple: FourTuple {
            local: SocketAddr::new(IpAddr::V4(SERVICE), 80),
            remote: SocketAddr::new(IpAddr::V4(CLIENT), port),
        },
        state: State::Established,
        iss: 1000,
        irs: 5000,
        snd_una: 90_000,
        snd_nxt: 90_000,
        rcv_nxt: 5100,
        snd_wnd: 65_535,
        rcv_wnd: 65_535,
        mss: 1460,
        snd_wscale: 0,
        rcv_wscale: 0,
        sack_permitted: false,
        timestamps: false,
        ts_recent: 0,
        ts_last_sent: 0,
        acks_covered: false,
    }
}

fn arp_reply_from_client() -> Vec<u8> {
    arp_reply_to(SERVICE)
}

/// The client's ARP reply to a request from `ours`.
fn arp_reply_to(ours: Ipv4Addr) -> Vec<u8> {
    let mut r = vec![0u8; 60];
    crate::neighbour::arp::emit_arp_frame(
        &mut r,
        BOX_MAC,
        CLIENT_MAC,
        &arp::ArpPacket {
            op: arp::OP_REPLY,
            sender_mac: CLIENT_MAC,
            sender_ip: CLIENT,
            target_mac: BOX_MAC,
            target_ip: ours,
        },
    )
    .unwrap();
    r
}

/// The TCP segments (destination MAC, sequence number, payload length)
/// among `frames`.
fn tcp_frames(frames: &[Vec<u8>]) -> Vec<(MacAddr, u32, usize)> {
    frames
        .iter()
        .filter_map(|f| {
            let (eh, p) = ethernet::parse(f).ok()?;
            let (ih, l4) = ipv4::parse(p).ok()?;
            let s = tcp::parse(IpAddr::V4(ih.src), IpAddr::V4(ih.dst), l4, true).ok()?;
            Some((eh.dst, s.seq.0, s.payload.len()))
        })
        .collect()
}

#[test]
fn probes_for_an_unresolved_client_wait_for_its_arp_reply_instead_of_being_lost() {
    // A survivor that never talked to this client address restores two
    // of its connections: RFC 1122 §2.3.2.2, the link layer saves the
    // packets for an address being resolved. The probes go out the
    // moment the client answers the ARP request, not one probe
    // interval later.
    let now = Instant::now();
    let (mut wire, port) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut w = Worker::new(
        port,
        Quiet,
        WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]),
        now,
    );
    for p in [40_001, 40_002] {
        w.command(
            Command::Restore {
                export: export(p),
                app_data: Box::new(()),
            },
            now,
        );
    }
    w.poll(now).unwrap();
    let first = wire.drain();
    assert_eq!(w.counters().arp_requests_sent, 1, "one request per address");
    assert!(tcp_frames(&first).is_empty(), "no frame to an unknown MAC");
    assert_eq!(w.counters().drop_no_neighbour, 0, "the probes are kept");

    wire.send(arp_reply_from_client()).unwrap();
    w.poll(now + Duration::from_millis(1)).unwrap();
    let probes = tcp_frames(&wire.drain());
    assert_eq!(
        probes,
        vec![(CLIENT_MAC, 89_999, 1), (CLIENT_MAC, 89_999, 1)],
        "both probes (one old byte each) reach the client once it answered"
    );
    let stats = w.stats();
    assert_eq!(stats.restores.restored, 2);
    assert_eq!(stats.restores.pending, 2, "no answer from the client yet");
}

#[test]
fn a_client_resolved_by_worker_zero_is_told_to_the_worker_that_restored_it() {
    // The fanout sends ARP to worker 0 only. Worker 1 restored a
    // connection for a client this box never saw and asked for its MAC;
    // the reply lands on worker 0, which must pass it on, or worker 1's
    // probe waits out its bound and the connection is lost.
    let now = Instant::now();
    let (mut wire0, port0) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let (mut wire1, port1) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let cfg = |id| {
        let mut c = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
        c.id = id;
        c.n_workers = 2;
        c
    };
    let mut w0 = Worker::new(port0, Quiet, cfg(0), now);
    let mut w1 = Worker::new(port1, Quiet, cfg(1), now);
    let wakers = vec![Waker::new(), Waker::new()];
    let mut links = Siblings::link(&wakers).into_iter();
    w0.join_siblings(wakers[0].clone(), links.next().unwrap());
    w1.join_siblings(wakers[1].clone(), links.next().unwrap());
    w1.command(
        Command::Restore {
            export: export(40_001),
            app_data: Box::new(()),
        },
        now,
    );
    w1.poll(now).unwrap();
    assert_eq!(w1.counters().arp_requests_sent, 1);
    assert!(tcp_frames(&wire1.drain()).is_empty());

    wire0.send(arp_reply_from_client()).unwrap();
    w0.poll(now + Duration::from_millis(1)).unwrap();
    assert!(
        wire0.drain().is_empty(),
        "worker 0 holds nothing for the client"
    );
    assert_eq!(w0.counters().neighbour_news_dropped, 0);
    w1.poll(now + Duration::from_millis(2)).unwrap();
    assert_eq!(w1.counters().neighbour_news_learned, 1);
    assert_eq!(
        tcp_frames(&wire1.drain()),
        vec![(CLIENT_MAC, 89_999, 1)],
        "worker 1's probe reaches the client as soon as worker 0 heard it"
    );
    assert_eq!(
        w0.counters().neighbour_news_learned,
        0,
        "news is not echoed back"
    );
}

/// Sends 3000 bytes once the connection is ready.
struct Resumer;
impl App for Resumer {
    fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
    fn on_ready(&mut self, conn: ConnId, _: SeqNum, _: SeqNum, ctx: &mut Ctx<'_>) {
        ctx.send(conn, Bytes::from(vec![b'r'; 3000])).unwrap();
    }
}

fn client_ack(seq: u32, ack: u32) -> Vec<u8> {
    client_ack_from(40_003, seq, ack)
}

fn client_ack_from(port: u16, seq: u32, ack: u32) -> Vec<u8> {
    client_frame(&OutSegment {
        src_port: port,
        dst_port: 80,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags: Flags {
            ack: true,
            ..Flags::default()
        },
        window: 65_535,
        ..OutSegment::default()
    })
}

/// `seg` from the client to the service address, framed.
fn client_frame(seg: &OutSegment) -> Vec<u8> {
    let mut f = vec![0u8; 200];
    let e = ethernet::emit(
        &mut f,
        &EthernetHeader {
            dst: BOX_MAC,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_IPV4,
        },
    )
    .unwrap();
    let t = tcp::emit(
        &mut f[e + 20..],
        IpAddr::V4(CLIENT),
        IpAddr::V4(SERVICE),
        seg,
    )
    .unwrap();
    ipv4::emit(&mut f[e..], CLIENT, SERVICE, ipv4::PROTO_TCP, 1, t).unwrap();
    f.truncate(e + 20 + t);
    f
}

/// A worker on a memory port whose client is resolved, with port
/// 40,003's checkpoint (`export`) restored on it and its probe sent.
fn restored_on_a_worker<A: App>(
    app: A,
    cfg: WorkerConfig,
    t0: Instant,
) -> (MemoryPort, Worker<MemoryPort, A>) {
    let (mut wire, port) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut w = Worker::new(port, app, cfg, t0);
    wire.send(arp_reply_from_client()).unwrap();
    w.poll(t0).unwrap();
    w.command(
        Command::Restore {
            export: export(40_003),
            app_data: Box::new(()),
        },
        t0,
    );
    w.poll(t0).unwrap();
    assert_eq!(tcp_frames(&wire.drain()).len(), 1, "the probe");
    (wire, w)
}

#[test]
fn restored_connection_retransmits_a_lost_first_segment_after_min_rto_not_a_second() {
    // RFC 6298 §2.2: a round trip of ~1 ms (the probe's) gives an RTO
    // of min_rto (200 ms). The resumed download's first segment is
    // lost: the client must see it again well before the 1 s initial
    // RTO of a connection with no RTT measurement.
    let t0 = Instant::now();
    let cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    let (mut wire, mut w) = restored_on_a_worker(Resumer, cfg, t0);
    // The client's answer: its RCV.NXT is the checkpoint's SND.UNA.
    wire.send(client_ack(5100, 90_000)).unwrap();
    let t1 = t0 + Duration::from_millis(1);
    w.poll(t1).unwrap();
    let first = tcp_frames(&wire.drain());
    assert!(
        first.iter().any(|&(_, seq, len)| seq == 90_000 && len > 0),
        "ready: the download resumes at the client's byte: {first:?}"
    );
    // Lost. Nothing comes back from the client.
    let mut retransmitted_at = None;
    for ms in 2..1000u64 {
        let now = t0 + Duration::from_millis(ms);
        w.poll(now).unwrap();
        if tcp_frames(&wire.drain())
            .iter()
            .any(|&(_, seq, len)| seq == 90_000 && len > 0)
        {
            retransmitted_at = Some(ms);
            break;
        }
    }
    let at = retransmitted_at.expect("the lost segment was sent again within a second");
    assert!(
        (200..=300).contains(&at),
        "retransmitted {at} ms after the restore: min_rto, not the 1 s initial RTO"
    );
}

/// Resumes with as much as the connection may queue, as an HTTP session
/// does.
struct FloorResumer;
impl App for FloorResumer {
    fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
    fn on_ready(&mut self, conn: ConnId, _: SeqNum, _: SeqNum, ctx: &mut Ctx<'_>) {
        let room = ctx.send_capacity(conn);
        ctx.send(conn, Bytes::from(vec![b'r'; room])).unwrap();
    }
}

#[test]
fn a_connection_restored_while_the_budget_is_spent_resumes_at_the_floor() {
    // SECURITY.md "Memory limits": a takeover under memory pressure is
    // slower, never a reset. A budget of 0 is spent from the start.
    let t0 = Instant::now();
    let mut cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    cfg.tcp.buffer_budget = crate::tcp::BufferBudget::new(0);
    let (mut wire, mut w) = restored_on_a_worker(FloorResumer, cfg, t0);
    wire.send(client_ack(5100, 90_000)).unwrap();
    w.poll(t0 + Duration::from_millis(1)).unwrap();
    let sent: usize = tcp_frames(&wire.drain())
        .iter()
        .filter(|&&(_, seq, _)| seq >= 90_000)
        .map(|&(_, _, len)| len)
        .sum();
    assert!(sent > 0, "the response resumed");
    let stats = w.stats();
    assert_eq!((stats.restores.ready, stats.restores.not_ready), (1, 0));
    let floor = crate::tcp::SEND_FLOOR;
    assert_eq!(
        stats.counters.tcp_buffer_bytes, floor as u64,
        "the floor was queued"
    );
    assert!(stats.counters.tcp_budget_send_limited > 0);
    // The client acknowledges what it got, then the rest: the bytes leave
    // the budget.
    wire.send(client_ack(5100, 90_000 + sent as u32)).unwrap();
    w.poll(t0 + Duration::from_millis(2)).unwrap();
    assert_eq!(w.stats().counters.tcp_buffer_bytes, (floor - sent) as u64);
    let rest: usize = tcp_frames(&wire.drain())
        .iter()
        .map(|&(_, _, len)| len)
        .sum();
    assert_eq!(sent + rest, floor);
    wire.send(client_ack(5100, 90_000 + floor as u32)).unwrap();
    w.poll(t0 + Duration::from_millis(3)).unwrap();
    assert_eq!(w.stats().counters.tcp_buffer_bytes, 0);
}

/// Opens one connection to the client per port in `ports` at its first
/// poll, and records what it hears.
#[derive(Default)]
struct Dialer {
    ports: Vec<u16>,
    opened: Vec<ConnId>,
    accepted: Vec<ConnId>,
    closed: Vec<(ConnId, CloseReason)>,
}
impl App for Dialer {
    fn on_accept(&mut self, conn: ConnId, _: &mut Ctx<'_>) {
        self.accepted.push(conn);
    }
    fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, conn: ConnId, reason: CloseReason, _: &mut Ctx<'_>) {
        self.closed.push((conn, reason));
    }
    fn poll(&mut self, ctx: &mut Ctx<'_>) {
        for port in std::mem::take(&mut self.ports) {
            let tuple = FourTuple {
                local: SocketAddr::new(IpAddr::V4(SERVICE), 40_000),
                remote: SocketAddr::new(IpAddr::V4(CLIENT), port),
            };
            self.opened.extend(ctx.connect(tuple));
            assert_eq!(ctx.connect(tuple), None, "a 4-tuple in use");
        }
    }
}

#[test]
fn an_app_opened_connection_is_accepted_when_established_and_closed_when_refused() {
    // FTP's active mode: the box connects to the client. The SYN waits for
    // the client's MAC like any frame; the SYN-ACK makes it an accepted
    // connection; a refusal (RST) is told to the app although the
    // connection never was announced.
    let now = Instant::now();
    let (mut wire, port) = crate::port::memory::MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let app = Dialer {
        ports: vec![20_000, 20_001],
        ..Dialer::default()
    };
    let mut w = Worker::new(
        port,
        app,
        WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]),
        now,
    );
    w.poll(now).unwrap();
    assert_eq!(w.app().opened.len(), 2);
    assert!(
        tcp_frames(&wire.drain()).is_empty(),
        "SYNs wait for the ARP reply"
    );
    wire.send(arp_reply_from_client()).unwrap();
    w.poll(now + Duration::from_millis(1)).unwrap();
    let syns: Vec<(u16, u32)> = wire
        .drain()
        .iter()
        .filter_map(|f| {
            let (_, p) = ethernet::parse(f).ok()?;
            let (ih, l4) = ipv4::parse(p).ok()?;
            let s = tcp::parse(IpAddr::V4(ih.src), IpAddr::V4(ih.dst), l4, true).ok()?;
            (s.flags.syn && !s.flags.ack && s.src_port == 40_000).then_some((s.dst_port, s.seq.0))
        })
        .collect();
    assert_eq!(syns.len(), 2, "{syns:?}");
    let reply = |dst_port: u16, iss: u32, flags: Flags| {
        client_frame(&OutSegment {
            src_port: dst_port,
            dst_port: 40_000,
            seq: SeqNum(7_000),
            ack: SeqNum(iss.wrapping_add(1)),
            flags,
            window: 65_535,
            ..OutSegment::default()
        })
    };
    let (p0, iss0) = syns.iter().copied().find(|s| s.0 == 20_000).unwrap();
    let (p1, iss1) = syns.iter().copied().find(|s| s.0 == 20_001).unwrap();
    wire.send(reply(
        p0,
        iss0,
        Flags {
            syn: true,
            ack: true,
            ..Flags::default()
        },
    ))
    .unwrap();
    wire.send(reply(
        p1,
        iss1,
        Flags {
            rst: true,
            ack: true,
            ..Flags::default()
        },
    ))
    .unwrap();
    w.poll(now + Duration::from_millis(2)).unwrap();
    let opened = w.app().opened.clone();
    assert_eq!(w.app().accepted, vec![opened[0]]);
    assert_eq!(w.app().closed, vec![(opened[1], CloseReason::Reset)]);
    assert_eq!(w.connections(), 1);
}

#[test]
fn a_restored_connection_the_client_had_closed_counts_closed_not_unready() {
    // The client answers the probe from TIME-WAIT (both FINs past the
    // record): the worker ends the connection without a frame and the
    // takeover report counts it closed, not "not ready".
    let t0 = Instant::now();
    let cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    let (mut wire, mut w) = restored_on_a_worker(Quiet, cfg, t0);
    wire.send(client_ack(5101, 90_001)).unwrap();
    w.poll(t0 + Duration::from_millis(1)).unwrap();
    assert!(tcp_frames(&wire.drain()).is_empty(), "no ACK, no RST");
    let r = w.stats().restores;
    assert_eq!((r.ready, r.not_ready, r.closed, r.pending), (0, 0, 1, 0));
}

#[test]
fn a_frame_forwarded_by_another_box_to_an_address_we_own_does_not_teach_its_mac() {
    // An anycast address every box serves (`lab up --steering ecmp`): the
    // box the switch hashed the client's flow to forwards its frames to
    // the survivor that restored the connection. The frame is for an
    // address the survivor owns, but its source MAC is the forwarder's:
    // the response must still go to the client's MAC. (Learning it sent
    // the resumed download to the forwarder, one segment per RTO reaching
    // the client; seen in lab_steering.)
    const FORWARDER: MacAddr = MacAddr([0x02, 0xba, 0x70, 0, 0, 0x02]);
    let t0 = Instant::now();
    let cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    let (mut wire, mut w) = restored_on_a_worker(Resumer, cfg, t0);
    w.command(Command::AddForwarders(vec![FORWARDER]), t0);
    let mut answer = client_ack(5100, 90_000);
    answer[6..12].copy_from_slice(&FORWARDER.0);
    wire.send(answer).unwrap();
    w.poll(t0 + Duration::from_millis(1)).unwrap();
    let sent = tcp_frames(&wire.drain());
    assert!(!sent.is_empty(), "the response resumed");
    assert!(
        sent.iter().all(|&(dst, _, _)| dst == CLIENT_MAC),
        "frames went to {:?}",
        sent.iter().map(|f| f.0).collect::<Vec<_>>()
    );
}

/// A SYN from the client to `SERVICE`:`port` whose frame came from `src_mac`.
fn client_syn(port: u16, src_mac: MacAddr) -> Vec<u8> {
    let mut f = client_frame(&OutSegment {
        src_port: 51_000,
        dst_port: port,
        seq: SeqNum(7_000),
        flags: Flags {
            syn: true,
            ..Flags::default()
        },
        window: 65_535,
        ..OutSegment::default()
    });
    f[6..12].copy_from_slice(&src_mac.0);
    f
}

const ADOPTER: MacAddr = MacAddr([0x02, 0xba, 0x70, 0, 0, 0x02]);

#[test]
fn a_migrated_ftp_clients_new_connection_to_a_routed_port_goes_to_the_adopter() {
    // The migrating box (issue 17): its client route names the session's
    // client, our address and the passive range; the SYN of the
    // session's next data connection is forwarded unchanged but for the
    // MACs, while another port (or client) still meets our listener.
    let t0 = Instant::now();
    let mut cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    cfg.listen_ports.extend(40_000..=40_099);
    let (mut wire, port) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut w = Worker::new(port, Quiet, cfg, t0);
    wire.send(arp_reply_from_client()).unwrap();
    w.poll(t0).unwrap();
    w.command(
        Command::RouteClient {
            local: IpAddr::V4(SERVICE),
            client: IpAddr::V4(CLIENT),
            ports: 40_000..=40_099,
            to: ADOPTER,
            ttl: Duration::from_secs(300),
        },
        t0,
    );
    wire.send(client_syn(40_050, CLIENT_MAC)).unwrap();
    w.poll(t0).unwrap();
    let sent = wire.drain();
    assert_eq!(w.counters().tcp_forwarded, 1);
    assert_eq!(sent.len(), 1);
    assert_eq!(&sent[0][0..6], &ADOPTER.0, "to the adopter");
    assert_eq!(&sent[0][6..12], &BOX_MAC.0, "from us");
    assert_eq!(&sent[0][12..], &client_syn(40_050, CLIENT_MAC)[12..]);
    // Port 80 is not routed: our listener answers with a SYN-ACK.
    wire.send(client_syn(80, CLIENT_MAC)).unwrap();
    w.poll(t0).unwrap();
    let sent = tcp_frames(&wire.drain());
    assert_eq!(w.counters().tcp_forwarded, 1);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, CLIENT_MAC, "the SYN-ACK");
    // Expired: the passive port's SYN meets our listener.
    let later = t0 + Duration::from_secs(300);
    wire.send(client_syn(40_051, CLIENT_MAC)).unwrap();
    w.poll(later).unwrap();
    assert_eq!(w.counters().tcp_forwarded, 1, "the route expired");
}

#[test]
fn the_adopter_admits_a_forwarded_syn_to_an_address_it_does_not_own() {
    // The adopter (issue 17): SERVICE is the migrating box's address, not
    // ours; a SYN the migrating box (a known forwarder) sends to our MAC
    // reaches our listener, which answers the client from SERVICE. The
    // same SYN from a MAC that is no forwarder is dropped.
    let t0 = Instant::now();
    let ours = Ipv4Addr::new(198, 18, 0, 12);
    let mut cfg = WorkerConfig::for_test(vec![IpAddr::V4(ours)]);
    cfg.listen_ports.extend(40_000..=40_099);
    let (mut wire, port) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut w = Worker::new(port, Quiet, cfg, t0);
    wire.send(client_syn(40_050, ADOPTER)).unwrap();
    w.poll(t0).unwrap();
    assert!(tcp_frames(&wire.drain()).is_empty(), "not a forwarder yet");
    w.command(Command::AddForwarders(vec![ADOPTER]), t0);
    wire.send(client_syn(40_050, ADOPTER)).unwrap();
    w.poll(t0).unwrap();
    // The client is resolved from our own address (the forwarder's MAC is
    // never learned as the client's).
    assert!(tcp_frames(&wire.drain()).is_empty(), "an ARP request first");
    assert_eq!(w.counters().arp_requests_sent, 1);
    wire.send(arp_reply_to(ours)).unwrap();
    w.poll(t0 + Duration::from_millis(1)).unwrap();
    let sent = wire.drain();
    let tcp = tcp_frames(&sent);
    assert_eq!(tcp.len(), 1, "the SYN-ACK");
    assert_eq!(tcp[0].0, CLIENT_MAC, "to the client, not the forwarder");
    let (ih, _) = ipv4::parse(&sent[0][ethernet::HEADER_LEN..]).unwrap();
    assert_eq!(ih.src, SERVICE, "from the address the client connected to");
}

/// A worker with restore window `window` and a resolved client, told at
/// `t0` to restore the checkpoints of `ports` (not polled since).
fn restoring_behind_a_window(
    window: usize,
    ports: std::ops::RangeInclusive<u16>,
    t0: Instant,
) -> (MemoryPort, Worker<MemoryPort, Quiet>) {
    let mut cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    cfg.restore_window = window;
    let (wire, port) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut w = Worker::new(port, Quiet, cfg, t0);
    wire.send(arp_reply_from_client()).unwrap();
    w.poll(t0).unwrap();
    for p in ports {
        w.command(
            Command::Restore {
                export: export(p),
                app_data: Box::new(()),
            },
            t0,
        );
    }
    (wire, w)
}

#[test]
fn restores_beyond_the_window_wait_until_probes_are_answered() {
    // Issue 19's 100,000-connection kill: every restored connection probed
    // at once, and the retries of the unanswered ones, flooded the heir.
    // With a window of 2, the third restore waits for an answer.
    let t0 = Instant::now();
    let (mut wire, mut w) = restoring_behind_a_window(2, 40_001..=40_005, t0);
    w.poll(t0).unwrap();
    assert_eq!(tcp_frames(&wire.drain()).len(), 2, "two probes: the window");
    let r = w.stats().restores;
    assert_eq!(
        (r.restored, r.pending),
        (2, 5),
        "three wait their turn and count as pending"
    );
    assert_eq!(w.connections(), 2);

    // 40,001's client answers: 40,003 is restored and probed in the next
    // iteration (which a worker that had work runs at once).
    wire.send(client_ack_from(40_001, 5100, 90_000)).unwrap();
    let t1 = t0 + Duration::from_millis(1);
    assert!(w.poll(t1).unwrap());
    assert!(
        tcp_frames(&wire.drain()).is_empty(),
        "ready: nothing to send"
    );
    assert!(w.poll(t1).unwrap(), "an admission is work");
    assert_eq!(
        tcp_frames(&wire.drain()),
        vec![(CLIENT_MAC, 89_999, 1)],
        "the next probe"
    );
    let r = w.stats().restores;
    assert_eq!((r.restored, r.ready, r.pending), (3, 1, 4));

    // Clients that do not answer hold the window only while their probes
    // are frequent: 40,004 goes once 40,002 is past that, 40,005 once
    // 40,003 is.
    w.poll(t0 + super::unready::YOUNG_FOR).unwrap();
    assert_eq!(w.stats().restores.restored, 4, "40,003 is still young");
    w.poll(t1 + super::unready::YOUNG_FOR).unwrap();
    let r = w.stats().restores;
    assert_eq!((r.restored, r.pending), (5, 4));
    assert_eq!(w.connections(), 5);
}

#[test]
fn a_release_hands_over_restores_still_waiting_for_the_window() {
    let t0 = Instant::now();
    let (_wire, mut w) = restoring_behind_a_window(1, 40_001..=40_003, t0);
    assert_eq!(w.connections(), 1);
    let (tx, rx) = crossbeam_channel::bounded(1);
    w.command(Command::Release(tx), t0);
    assert_eq!(rx.recv().unwrap(), 3, "the waiting ones too");
    assert_eq!(w.stats().restores.pending, 0);
}

/// Forwards every segment for no known connection to `ADOPTER`: a route
/// some earlier takeover left.
struct StaleRoute;
impl App for StaleRoute {
    fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
    fn on_unknown_segment(&mut self, _: FourTuple, _: bool) -> crate::app::UnknownAction {
        crate::app::UnknownAction::Forward(ADOPTER)
    }
}

#[test]
fn a_cookie_ack_opens_a_new_connection_even_where_a_stale_route_would_forward_it() {
    // A restarted box routes its old connections to their restorers; a
    // client that reuses such a 4-tuple for a new connection, answered
    // with a SYN cookie (backlog full), must get that connection here,
    // not have its handshake's ACK forwarded to a box that never saw
    // the SYN. Any other unknown segment still follows the route.
    let t0 = Instant::now();
    let mut cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    cfg.syn_backlog = 0;
    let (mut wire, port) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut w = Worker::new(port, StaleRoute, cfg, t0);
    wire.send(arp_reply_from_client()).unwrap();
    w.poll(t0).unwrap();
    wire.send(client_syn(80, CLIENT_MAC)).unwrap();
    w.poll(t0).unwrap();
    let syn_ack = tcp_frames(&wire.drain());
    assert_eq!(syn_ack.len(), 1, "the cookie's SYN-ACK");
    assert_eq!(w.counters().tcp_syn_backlog_full, 1);
    let cookie = syn_ack[0].1;
    // A segment that returns no cookie follows the route.
    wire.send(client_ack_from(51_000, 7_001, cookie.wrapping_add(99)))
        .unwrap();
    w.poll(t0).unwrap();
    assert_eq!(w.counters().tcp_forwarded, 1);
    assert_eq!(&wire.drain()[0][0..6], &ADOPTER.0);
    // The handshake's ACK opens the connection here.
    wire.send(client_ack_from(51_000, 7_001, cookie.wrapping_add(1)))
        .unwrap();
    w.poll(t0).unwrap();
    assert_eq!(w.counters().tcp_forwarded, 1, "not forwarded");
    assert_eq!(w.connections(), 1, "the new connection");
}

mod parked;
mod self_parked;
