//! A connection restored on a second worker from the first worker's
//! export (the takeover path of seed Fig. 6, through the worker): the
//! survivor ARPs for the client, probes, becomes ready, and the client
//! receives the survivor's bytes right after the dead worker's.

mod common;

use baton_dataplane::app::{App, CloseReason, Ctx, UnknownAction};
use baton_dataplane::tcp::{FourTuple, SeqNum, State, Tcb, TcbExport, TcpConfig};
use baton_dataplane::wire::ethernet::MacAddr;
use baton_dataplane::worker::Command;
use baton_dataplane::ConnId;
use bytes::Bytes;
use common::memnet::{test_config, MemNet};
use common::wire::{client_tcp, BOX_MAC, CLIENT, SERVICE};
use std::any::Any;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

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
    /// Connections given their final checkpoint (freeze, handoff, release).
    frozen: Vec<ConnId>,
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
    fn on_freeze(&mut self, conn: ConnId, _ctx: &mut Ctx<'_>) {
        self.frozen.push(conn);
    }
    fn poll(&mut self, ctx: &mut Ctx<'_>) {
        for &c in &self.conns {
            if let Some(e) = ctx.export(c) {
                self.last_export = Some(e);
            }
        }
    }
}

/// Worker A answers `request` on a new connection from the client's
/// `port` (initial sequence number `iss`), checkpoints it, and dies.
/// Returns the client, A's last export of the connection and the clock.
fn served_by_a_that_dies(port: u16, iss: u32, request: &'static [u8]) -> (Tcb, TcbExport, Instant) {
    let mut a = MemNet::new(Recorder::default(), test_config(), Instant::now());
    let tuple = FourTuple {
        local: SocketAddr::new(IpAddr::V4(CLIENT), port),
        remote: SocketAddr::new(IpAddr::V4(SERVICE), 80),
    };
    let mut client = Tcb::connect(a.now, TcpConfig::default(), tuple, SeqNum(iss));
    a.run(&mut client, 5);
    assert_eq!(client.state(), State::Established);
    client.send(Bytes::from_static(request)).unwrap();
    assert_eq!(a.run(&mut client, 300), vec![b'a'; 3000]);
    let export = a
        .worker
        .app()
        .last_export
        .expect("worker A exported its connection");
    (client, export, a.now) // worker A dies with `a`
}

#[test]
fn restored_connection_resumes_on_another_worker_after_arp_and_probe() {
    let (mut client, export, now) = served_by_a_that_dies(40500, 77, b"request");

    let mut b = MemNet::new(Recorder::default(), test_config(), now);
    assert!(b.worker.command(
        Command::Restore {
            export,
            app_data: Box::new(42u32)
        },
        now
    ));
    assert_eq!(b.worker.app().restored, vec![42]);
    // A second order for the same connection changes nothing.
    assert!(b.worker.command(
        Command::Restore {
            export,
            app_data: Box::new(43u32)
        },
        now
    ));
    assert_eq!(b.worker.app().restored, vec![42]);
    assert_eq!(b.worker.counters().restore_duplicate, 1);
    let rest = b.run(&mut client, 1000);
    assert!(
        b.worker.counters().arp_requests_sent >= 1,
        "B had to learn the client's MAC"
    );
    let (una, _) = b
        .worker
        .app()
        .ready
        .expect("restored connection became ready");
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
    let (mut client, export, now) = served_by_a_that_dies(40600, u32::MAX - 3, b"first");

    // Worker B was told nothing; it only has the checkpoint.
    let recorder = Recorder {
        orphans: vec![export],
        ..Recorder::default()
    };
    let mut b = MemNet::new(recorder, test_config(), now);
    client.send(Bytes::from_static(b"second")).unwrap();
    let rest = b.run(&mut client, 1000);
    assert_eq!(b.worker.counters().tcp_lazy_restored, 1);
    assert_eq!(b.worker.app().restored, vec![7]);
    assert!(
        b.worker.app().ready.is_some(),
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
    let recorder = Recorder {
        forward: Some(other),
        ..Recorder::default()
    };
    let MemNet {
        worker: mut w,
        mut wire,
        ..
    } = MemNet::new(recorder, test_config(), now);
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
    let frame = client_tcp(&seg);
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

#[test]
fn restored_connections_count_toward_the_per_client_cap_but_are_never_refused() {
    let (_c1, e1, now) = served_by_a_that_dies(40601, 77, b"one");
    let (_c2, e2, _) = served_by_a_that_dies(40602, 99, b"two");
    let mut cfg = test_config();
    cfg.max_connections_per_client = 1;
    let mut b = MemNet::new(Recorder::default(), cfg, now);
    for (export, tag) in [(e1, 1u32), (e2, 2u32)] {
        assert!(b.worker.command(
            Command::Restore {
                export,
                app_data: Box::new(tag)
            },
            now
        ));
    }
    assert_eq!(b.worker.app().restored, vec![1, 2], "both restored");
    assert_eq!(b.worker.connections(), 2);
    assert_eq!(b.worker.counters().drop_tcp_client_limit, 0);
    // The client holds twice its cap: its new SYN is dropped and counted.
    b.wire
        .send(client_tcp(&common::wire::syn(40_700, 5, 65_535)))
        .unwrap();
    b.worker.poll(now).unwrap();
    assert_eq!(b.worker.counters().drop_tcp_client_limit, 1);
    assert_eq!(b.worker.connections(), 2);
}

#[test]
fn a_release_checkpoints_and_drops_every_connection_and_the_worker_goes_on() {
    // The end of a drain's hand-over: what could not be handed to a box by
    // name is let go for the survivors' takeover, while the worker keeps
    // running (it forwards what was handed off before).
    let mut a = MemNet::new(Recorder::default(), test_config(), Instant::now());
    let tuple = FourTuple {
        local: SocketAddr::new(IpAddr::V4(CLIENT), 40700),
        remote: SocketAddr::new(IpAddr::V4(SERVICE), 80),
    };
    let mut client = Tcb::connect(a.now, TcpConfig::default(), tuple, SeqNum(5));
    a.run(&mut client, 5);
    assert_eq!(client.state(), State::Established);
    assert_eq!(a.worker.connections(), 1);
    let conn = a.worker.app().conns[0];
    let (tx, rx) = crossbeam_channel::unbounded();
    let now = a.now;
    assert!(
        a.worker.command(Command::Release(tx), now),
        "a release does not stop the worker"
    );
    assert_eq!(rx.try_recv().ok(), Some(1), "one connection released");
    assert_eq!(
        a.worker.app().frozen,
        vec![conn],
        "its final checkpoint first"
    );
    assert_eq!(a.worker.connections(), 0);
    // Silently: the client heard nothing.
    assert!(a.step(&mut client).is_empty(), "the release sent a frame");
    let (tx, rx) = crossbeam_channel::unbounded();
    assert!(a.worker.command(Command::Stats(tx), now));
    assert!(rx.try_recv().is_ok(), "the worker still answers");
}
