//! Connections an app parks itself (`Ctx::park`, issue 19): dropped while
//! quiescent, rebuilt from their checkpoint by their client's next segment
//! (`UnknownAction::Resume`) or by the app (`Ctx::resume`), and moved as
//! they are by a hand-off or a release.

use super::*;
use crate::app::UnknownAction;
use std::collections::HashMap;

/// Parks every ready connection at its next poll (keeping its export, as
/// a checkpoint would), resumes them on their segments, and records what
/// it hears.
#[derive(Default)]
struct Parker {
    park: bool,
    /// `ctx.park` refused (not quiescent).
    refused: usize,
    parked: HashMap<FourTuple, TcbExport>,
    ready: Vec<ConnId>,
    restored: usize,
    read: Vec<u8>,
    /// Queue this before parking (a connection that is not quiescent).
    queue_first: bool,
    /// Resume every parked connection at the next poll.
    resume_all: bool,
}

impl App for Parker {
    fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_readable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let mut buf = [0u8; 64];
        let n = ctx.recv(conn, &mut buf).unwrap();
        self.read.extend_from_slice(&buf[..n]);
    }
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
    fn on_restored(&mut self, _: ConnId, _: Box<dyn std::any::Any + Send>, _: &mut Ctx<'_>) {
        self.restored += 1;
    }
    fn on_ready(&mut self, conn: ConnId, _: SeqNum, _: SeqNum, _: &mut Ctx<'_>) {
        self.ready.push(conn);
    }
    fn poll(&mut self, ctx: &mut Ctx<'_>) {
        if self.park {
            for conn in std::mem::take(&mut self.ready) {
                if self.queue_first {
                    ctx.send(conn, Bytes::from_static(b"late")).unwrap();
                }
                let export = ctx.export(conn).unwrap();
                if ctx.park(conn) {
                    self.parked.insert(export.tuple, export);
                } else {
                    self.refused += 1;
                }
            }
        }
        if self.resume_all {
            self.resume_all = false;
            for (_, export) in self.parked.drain() {
                ctx.resume(export, Box::new(()));
            }
        }
    }
    fn on_unknown_segment(&mut self, tuple: FourTuple, rst: bool) -> UnknownAction {
        match self.parked.remove(&tuple) {
            Some(_) if rst => UnknownAction::Drop,
            Some(export) => UnknownAction::Resume(export, Box::new(())),
            None => UnknownAction::Listener,
        }
    }
    fn on_handoff_parked(&mut self, tuple: &FourTuple, _: MacAddr) -> bool {
        self.parked.remove(tuple).is_some()
    }
    fn on_release_parked(&mut self) -> usize {
        self.parked.drain().count()
    }
}

/// A worker with port 40,003's connection restored and ready (its client
/// answered the probe), then parked by `app` at the next poll.
fn parked(app: Parker, t0: Instant) -> (MemoryPort, Worker<MemoryPort, Parker>) {
    let cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    let (mut wire, mut w) = restored_on_a_worker(app, cfg, t0);
    wire.send(client_ack(5100, 90_000)).unwrap();
    w.poll(t0).unwrap();
    assert_eq!(w.app().ready.len(), 1, "ready");
    w.app_mut().park = true;
    w.poll(t0).unwrap();
    let _ = wire.drain();
    (wire, w)
}

/// The client's segment on 40,003 with `payload`.
fn client_data(seq: u32, payload: &'static [u8]) -> Vec<u8> {
    client_frame(&OutSegment {
        src_port: 40_003,
        dst_port: 80,
        seq: SeqNum(seq),
        ack: SeqNum(90_000),
        flags: Flags {
            ack: true,
            psh: !payload.is_empty(),
            ..Flags::default()
        },
        window: 65_535,
        payload: vec![Bytes::from_static(payload)],
        ..OutSegment::default()
    })
}

/// The (seq, ack, payload length) of each TCP segment the box sent.
fn sent(wire: &mut MemoryPort) -> Vec<(u32, u32, usize)> {
    wire.drain()
        .iter()
        .filter_map(|f| {
            let (_, p) = ethernet::parse(f).ok()?;
            let (ih, l4) = ipv4::parse(p).ok()?;
            let s = tcp::parse(IpAddr::V4(ih.src), IpAddr::V4(ih.dst), l4, true).ok()?;
            Some((s.seq.0, s.ack.0, s.payload.len()))
        })
        .collect()
}

#[test]
fn a_parked_connection_is_gone_silently_and_its_clients_request_brings_it_back_unprobed() {
    let t0 = Instant::now();
    let (mut wire, mut w) = parked(Parker::default(), t0);
    assert_eq!(w.connections(), 0, "no TCB left");
    assert_eq!(w.counters().tcp_parked, 1);
    assert!(sent(&mut wire).is_empty(), "nothing told to the client");
    let restored = w.stats().restores.restored;

    let later = t0 + Duration::from_secs(30);
    wire.send(client_data(5100, b"GET")).unwrap();
    w.poll(later).unwrap();
    assert_eq!(w.connections(), 1);
    assert_eq!(w.counters().tcp_unparked, 1);
    assert_eq!(w.app().restored, 2, "the restore, then the resume");
    assert_eq!(w.app().read, b"GET", "the request reaches the app");
    assert_eq!(w.app().ready.len(), 1, "ready at once: no probe");
    assert_eq!(
        w.stats().restores.restored,
        restored,
        "not tallied as a takeover"
    );
    assert!(
        sent(&mut wire)
            .iter()
            .all(|&(seq, _, len)| len == 0 && seq == 90_000),
        "no probe below SND.UNA"
    );
}

#[test]
fn a_keep_alive_probe_of_a_parked_connection_is_acknowledged() {
    // RFC 9293 §3.8.4: a probe one below RCV.NXT, no data; a client that
    // gets no ACK gives the connection up.
    let t0 = Instant::now();
    let (mut wire, mut w) = parked(Parker::default(), t0);
    wire.send(client_data(5099, b"")).unwrap();
    w.poll(t0 + Duration::from_secs(30)).unwrap();
    assert_eq!(w.counters().tcp_unparked, 1);
    assert_eq!(
        sent(&mut wire),
        vec![(90_000, 5100, 0)],
        "an ACK of RCV.NXT"
    );
}

#[test]
fn a_connection_with_bytes_queued_is_not_parked() {
    let t0 = Instant::now();
    let app = Parker {
        queue_first: true,
        ..Parker::default()
    };
    let (_wire, w) = parked(app, t0);
    assert_eq!(w.app().refused, 1);
    assert_eq!(w.connections(), 1);
    assert_eq!(w.counters().tcp_parked, 0);
}

#[test]
fn a_parked_connection_the_app_resumes_is_probed_and_ready_when_its_client_answers() {
    let t0 = Instant::now();
    let (mut wire, mut w) = parked(Parker::default(), t0);
    w.app_mut().park = false;
    w.app_mut().resume_all = true;
    let t1 = t0 + Duration::from_secs(60);
    w.poll(t1).unwrap();
    assert_eq!(w.counters().tcp_unparked, 1);
    assert_eq!(
        sent(&mut wire),
        vec![(89_999, 5100, 1)],
        "the probe: one acknowledged byte below SND.UNA"
    );
    wire.send(client_ack(5100, 90_000)).unwrap();
    w.poll(t1).unwrap();
    assert_eq!(w.app().ready.len(), 1);
}

#[test]
fn a_clients_reset_ends_a_parked_connection_without_an_answer() {
    let t0 = Instant::now();
    let (mut wire, mut w) = parked(Parker::default(), t0);
    wire.send(client_frame(&OutSegment {
        src_port: 40_003,
        dst_port: 80,
        seq: SeqNum(5100),
        ack: SeqNum(90_000),
        flags: Flags {
            ack: true,
            rst: true,
            ..Flags::default()
        },
        window: 0,
        ..OutSegment::default()
    }))
    .unwrap();
    w.poll(t0).unwrap();
    assert_eq!(w.connections(), 0);
    assert_eq!(w.counters().tcp_unparked, 0);
    assert!(w.app().parked.is_empty(), "the app forgot it");
    assert!(sent(&mut wire).is_empty());
}

#[test]
fn a_hand_off_and_a_release_move_parked_connections_with_the_live_ones() {
    let t0 = Instant::now();
    let (_wire, mut w) = parked(Parker::default(), t0);
    let tuple = export(40_003).tuple;
    let (tx, rx) = crossbeam_channel::bounded(1);
    w.command(
        Command::Handoff {
            tuples: vec![tuple],
            to: ADOPTER,
            done: tx,
        },
        t0,
    );
    assert_eq!(rx.recv().unwrap(), vec![tuple], "handed off");

    let (_wire, mut w) = parked(Parker::default(), t0);
    let (tx, rx) = crossbeam_channel::bounded(1);
    w.command(Command::Release(tx), t0);
    assert_eq!(rx.recv().unwrap(), 1, "the parked one counts");
    assert!(w.app().parked.is_empty());
}
