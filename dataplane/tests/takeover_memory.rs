//! A connection restored on a second worker from the first worker's
//! export (the takeover path of seed Fig. 6, through the worker): the
//! survivor ARPs for the client, probes, becomes ready, and the client
//! receives the survivor's bytes right after the dead worker's.

use baton_dataplane::app::{App, CloseReason, Ctx, UnknownAction};
use baton_dataplane::port::memory::MemoryPort;
use baton_dataplane::tcp::{FourTuple, SeqNum, State, Tcb, TcbExport, TcpConfig};
use baton_dataplane::wire::ethernet::{self, EthernetHeader, MacAddr};
use baton_dataplane::wire::{arp, ipv4, tcp};
use baton_dataplane::worker::{Command, Worker, WorkerConfig};
use baton_dataplane::ConnId;
use bytes::Bytes;
use std::any::Any;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const BOX_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);
const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

#[derive(Default)]
struct Recorder {
    conns: Vec<ConnId>,
    last_export: Option<TcbExport>,
    restored: Vec<u32>,
    ready: Option<(SeqNum, SeqNum)>,
    /// Checkpoints of a dead worker's connections (lazy takeover).
    orphans: Vec<TcbExport>,
    /// Forward every unknown connection to this MAC.
    forward: Option<MacAddr>,
}

impl App for Recorder {
    fn on_accept(&mut self, conn: ConnId, _ctx: &mut Ctx<'_>) {
        self.conns.push(conn);
    }
    fn on_readable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let mut b = [0u8; 100];
        while ctx.recv(conn, &mut b).unwrap() > 0 {}
        ctx.send(conn, Bytes::from(vec![b'a'; 3000])).unwrap();
    }
    fn on_writable(&mut self, _conn: ConnId, _ctx: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _conn: ConnId, _reason: CloseReason, _ctx: &mut Ctx<'_>) {}
    fn on_restored(&mut self, conn: ConnId, data: Box<dyn Any + Send>, _ctx: &mut Ctx<'_>) {
        self.conns.push(conn);
        self.restored.push(*data.downcast::<u32>().unwrap());
    }
    fn on_ready(&mut self, conn: ConnId, snd_una: SeqNum, rcv_nxt: SeqNum, ctx: &mut Ctx<'_>) {
        self.ready = Some((snd_una, rcv_nxt));
        ctx.send(conn, Bytes::from(vec![b'b'; 2000])).unwrap();
    }
    fn on_unknown_segment(&mut self, tuple: FourTuple, _rst: bool) -> UnknownAction {
        if let Some(mac) = self.forward {
            return UnknownAction::Forward(mac);
        }
        match self.orphans.iter().position(|e| e.tuple == tuple) {
            Some(i) => UnknownAction::Restore(self.orphans.remove(i), Box::new(7u32)),
            None => UnknownAction::Listener,
        }
    }
    fn poll(&mut self, ctx: &mut Ctx<'_>) {
        for &c in &self.conns {
            if let Some(e) = ctx.export(c) {
                self.last_export = Some(e);
            }
        }
    }
}

fn client_frame(seg: &baton_dataplane::tcp::OutSegment) -> Vec<u8> {
    let mut f = vec![0u8; 1600];
    ethernet::emit(
        &mut f,
        &EthernetHeader {
            dst: BOX_MAC,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_IPV4,
        },
    )
    .unwrap();
    let t = tcp::emit(&mut f[34..], IpAddr::V4(CLIENT), IpAddr::V4(SERVICE), seg).unwrap();
    ipv4::emit(&mut f[14..], CLIENT, SERVICE, ipv4::PROTO_TCP, 1, t).unwrap();
    f.truncate(34 + t);
    f
}

/// Runs client and worker for `ms` simulated milliseconds; the client
/// answers ARP requests for its address. Returns the bytes it received.
fn run(
    client: &mut Tcb,
    w: &mut Worker<MemoryPort, Recorder>,
    wire: &mut MemoryPort,
    now: &mut Instant,
    ms: u64,
) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    for _ in 0..ms {
        while let Some(seg) = client.poll_transmit(*now) {
            wire.send(client_frame(&seg)).unwrap();
        }
        w.poll(*now).unwrap();
        for f in wire.drain() {
            let (eh, p) = ethernet::parse(&f).unwrap();
            if eh.ethertype == ethernet::ETHERTYPE_ARP {
                let a = arp::parse(p).unwrap();
                if a.op == arp::OP_REQUEST && a.target_ip == CLIENT {
                    let mut r = vec![0u8; 42];
                    ethernet::emit(
                        &mut r,
                        &EthernetHeader {
                            dst: a.sender_mac,
                            src: CLIENT_MAC,
                            ethertype: ethernet::ETHERTYPE_ARP,
                        },
                    )
                    .unwrap();
                    arp::emit(
                        &mut r[14..],
                        &arp::ArpPacket {
                            op: arp::OP_REPLY,
                            sender_mac: CLIENT_MAC,
                            sender_ip: CLIENT,
                            target_mac: a.sender_mac,
                            target_ip: a.sender_ip,
                        },
                    )
                    .unwrap();
                    wire.send(r).unwrap();
                }
                continue;
            }
            let (ih, l4) = ipv4::parse(p).unwrap();
            let s = tcp::parse(IpAddr::V4(ih.src), IpAddr::V4(ih.dst), l4, false).unwrap();
            client.on_segment(*now, &s);
        }
        while client.poll_event().is_some() {}
        loop {
            let n = client.recv(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        *now += Duration::from_millis(1);
        if client.poll_timeout().is_some_and(|t| t <= *now) {
            client.on_timeout(*now);
        }
    }
    got
}

#[test]
fn restored_connection_resumes_on_another_worker_after_arp_and_probe() {
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    let (mut wire_a, port_a) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut a = Worker::new(port_a, Recorder::default(), cfg.clone(), t0);
    let tuple = FourTuple {
        local: SocketAddr::new(IpAddr::V4(CLIENT), 40500),
        remote: SocketAddr::new(IpAddr::V4(SERVICE), 80),
    };
    let mut client = Tcb::connect(t0, TcpConfig::default(), tuple, SeqNum(77));
    run(&mut client, &mut a, &mut wire_a, &mut now, 5);
    assert_eq!(client.state(), State::Established);
    client.send(Bytes::from_static(b"request")).unwrap();
    let first = run(&mut client, &mut a, &mut wire_a, &mut now, 300);
    assert_eq!(first, vec![b'a'; 3000]);
    let export = a
        .app()
        .last_export
        .expect("worker A exported its connection");
    drop(a); // worker A dies

    let (mut wire_b, port_b) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut b = Worker::new(port_b, Recorder::default(), cfg, now);
    assert!(b.command(
        Command::Restore {
            export,
            app_data: Box::new(42u32)
        },
        now
    ));
    assert_eq!(b.app().restored, vec![42]);
    // A second order for the same connection changes nothing.
    assert!(b.command(
        Command::Restore {
            export,
            app_data: Box::new(43u32)
        },
        now
    ));
    assert_eq!(b.app().restored, vec![42]);
    assert_eq!(b.counters().restore_duplicate, 1);
    let rest = run(&mut client, &mut b, &mut wire_b, &mut now, 1000);
    assert!(
        b.counters().arp_requests_sent >= 1,
        "B had to learn the client's MAC"
    );
    let (una, _) = b.app().ready.expect("restored connection became ready");
    assert_eq!(
        una,
        SeqNum(export.snd_nxt),
        "client had acknowledged everything A sent"
    );
    assert_eq!(
        rest,
        vec![b'b'; 2000],
        "B's bytes follow A's with nothing lost or repeated"
    );
}

#[test]
fn segment_for_an_orphan_restores_it_lazily_without_a_reset() {
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    let (mut wire_a, port_a) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut a = Worker::new(port_a, Recorder::default(), cfg.clone(), t0);
    let tuple = FourTuple {
        local: SocketAddr::new(IpAddr::V4(CLIENT), 40600),
        remote: SocketAddr::new(IpAddr::V4(SERVICE), 80),
    };
    let mut client = Tcb::connect(t0, TcpConfig::default(), tuple, SeqNum(u32::MAX - 3));
    run(&mut client, &mut a, &mut wire_a, &mut now, 5);
    client.send(Bytes::from_static(b"first")).unwrap();
    assert_eq!(
        run(&mut client, &mut a, &mut wire_a, &mut now, 300),
        vec![b'a'; 3000]
    );
    let export = a.app().last_export.expect("exported");
    drop(a);

    // Worker B was told nothing; it only has the checkpoint.
    let (mut wire_b, port_b) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let recorder = Recorder {
        orphans: vec![export],
        ..Recorder::default()
    };
    let mut b = Worker::new(port_b, recorder, cfg, now);
    client.send(Bytes::from_static(b"second")).unwrap();
    let rest = run(&mut client, &mut b, &mut wire_b, &mut now, 1000);
    assert_eq!(b.counters().tcp_lazy_restored, 1);
    assert_eq!(b.app().restored, vec![7]);
    assert!(
        b.app().ready.is_some(),
        "the client's own segment made it ready"
    );
    let mut want = vec![b'b'; 2000];
    want.extend_from_slice(&[b'a'; 3000]);
    assert_eq!(
        rest, want,
        "B's resume bytes, then its answer to the second request"
    );
    assert_eq!(
        client.state(),
        State::Established,
        "no reset reached the client"
    );
}

#[test]
fn segment_for_another_survivors_connection_is_forwarded_with_rewritten_macs() {
    let now = Instant::now();
    let other = MacAddr([2, 0, 0, 0, 0, 0x0c]);
    let (mut wire, port) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let recorder = Recorder {
        forward: Some(other),
        ..Recorder::default()
    };
    let mut w = Worker::new(
        port,
        recorder,
        WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]),
        now,
    );
    let seg = baton_dataplane::tcp::OutSegment {
        src_port: 40700,
        dst_port: 80,
        seq: SeqNum(10),
        ack: SeqNum(20),
        flags: baton_dataplane::tcp::Flags {
            ack: true,
            ..Default::default()
        },
        window: 100,
        payload: vec![Bytes::from_static(b"data")],
        ..Default::default()
    };
    let frame = client_frame(&seg);
    wire.send(frame.clone()).unwrap();
    w.poll(now).unwrap();
    let out = wire.drain();
    assert_eq!(out.len(), 1, "forwarded, not reset");
    assert_eq!(&out[0][0..6], &other.0, "to the new owner");
    assert_eq!(&out[0][6..12], &BOX_MAC.0, "from us");
    assert_eq!(&out[0][12..], &frame[12..], "IP packet untouched");
    assert_eq!(w.counters().tcp_forwarded, 1);
    assert_eq!(w.connections(), 0);
}
