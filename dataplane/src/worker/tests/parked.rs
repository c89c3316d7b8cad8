//! Parked restores (`Command::RestoreLater`): a takeover's connections
//! whose box had sent their clients everything wait for them to speak.

use super::*;
use std::collections::HashSet;

/// Restores only the connections (by client port) still listed: the
/// others its client restored or ended first. Counts final checkpoints.
#[derive(Default)]
struct Orphans {
    listed: HashSet<u16>,
    frozen: usize,
}
impl App for Orphans {
    fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
    fn is_orphan(&mut self, tuple: &FourTuple) -> bool {
        self.listed.contains(&tuple.remote.port())
    }
    fn on_freeze(&mut self, _: ConnId, _: &mut Ctx<'_>) {
        self.frozen += 1;
    }
}

const AFTER: Duration = Duration::from_secs(3);

/// A worker whose app still wants `wanted`, with `ports`' checkpoints
/// parked at `t0` for `AFTER`.
fn parked(
    wanted: &[u16],
    ports: std::ops::RangeInclusive<u16>,
    t0: Instant,
) -> (MemoryPort, Worker<MemoryPort, Orphans>) {
    let app = Orphans {
        listed: wanted.iter().copied().collect(),
        frozen: 0,
    };
    parked_with(app, ports, t0)
}

/// A worker running `app`, its client resolved, with `ports`' checkpoints
/// parked at `t0` for `AFTER`.
fn parked_with<A: App>(
    app: A,
    ports: std::ops::RangeInclusive<u16>,
    t0: Instant,
) -> (MemoryPort, Worker<MemoryPort, A>) {
    let cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
    let (wire, port) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let mut w = Worker::new(port, app, cfg, t0);
    wire.send(arp_reply_from_client()).unwrap();
    w.poll(t0).unwrap();
    for p in ports {
        w.command(
            Command::RestoreLater {
                export: export(p),
                app_data: Box::new(()),
                after: AFTER,
            },
            t0,
        );
    }
    (wire, w)
}

#[test]
fn a_parked_restore_sends_nothing_until_it_falls_due() {
    let t0 = Instant::now();
    let (mut wire, mut w) = parked(&[40_001, 40_002], 40_001..=40_002, t0);
    w.poll(t0 + AFTER - Duration::from_millis(1)).unwrap();
    assert!(tcp_frames(&wire.drain()).is_empty(), "no probe yet");
    let r = w.stats().restores;
    assert_eq!((r.restored, r.pending, r.parked), (0, 0, 2));
    assert_eq!(w.connections(), 0);
    w.poll(t0 + AFTER).unwrap();
    assert_eq!(tcp_frames(&wire.drain()).len(), 2, "due: restored, probed");
    let r = w.stats().restores;
    assert_eq!(
        (r.restored, r.pending, r.parked),
        (2, 2, 0),
        "probed, waiting"
    );
    assert_eq!(w.connections(), 2);
}

#[test]
fn a_parked_restore_the_app_no_longer_wants_is_not_brought_back() {
    // 40,002's client spoke (restored lazily) and closed before the
    // restore fell due: it must not come back and probe.
    let t0 = Instant::now();
    let (mut wire, mut w) = parked(&[40_001], 40_001..=40_002, t0);
    w.poll(t0 + AFTER).unwrap();
    assert_eq!(tcp_frames(&wire.drain()).len(), 1, "40,001's probe only");
    assert_eq!(w.connections(), 1);
    assert_eq!(w.counters().restore_duplicate, 1);
    assert_eq!(w.stats().restores.pending, 1, "40,001 waits for its client");
}

#[test]
fn a_freeze_writes_the_final_checkpoints_of_parked_restores_too() {
    // A drain with nobody to hand to freezes the workers: whoever takes
    // the region later must find the parked connections in it.
    let t0 = Instant::now();
    let (_wire, mut w) = parked(&[40_001, 40_002], 40_001..=40_002, t0);
    assert!(!w.command(Command::Freeze, t0), "the worker stops");
    assert_eq!(w.app().frozen, 2);
}

#[test]
fn a_release_hands_over_parked_restores_before_they_fall_due() {
    let t0 = Instant::now();
    let (_wire, mut w) = parked(&[40_001, 40_002, 40_003], 40_001..=40_003, t0);
    let (tx, rx) = crossbeam_channel::bounded(1);
    w.command(Command::Release(tx), t0);
    assert_eq!(rx.recv().unwrap(), 3, "the parked ones too");
    let r = w.stats().restores;
    assert_eq!((r.pending, r.parked), (0, 0));
}

/// [`Orphans`] that also restores its orphans when a segment names them.
#[derive(Default)]
struct LazyOrphans(Orphans);
impl App for LazyOrphans {
    fn on_accept(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_readable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_writable(&mut self, _: ConnId, _: &mut Ctx<'_>) {}
    fn on_closed(&mut self, _: ConnId, _: CloseReason, _: &mut Ctx<'_>) {}
    fn is_orphan(&mut self, tuple: &FourTuple) -> bool {
        self.0.is_orphan(tuple)
    }
    fn on_unknown_segment(&mut self, tuple: FourTuple, _: bool) -> crate::app::UnknownAction {
        let port = tuple.remote.port();
        if self.0.listed.remove(&port) {
            crate::app::UnknownAction::Restore(export(port), Box::new(()))
        } else {
            crate::app::UnknownAction::Listener
        }
    }
}

#[test]
fn a_forwarded_segment_of_a_parked_orphan_restores_it_at_a_survivor_without_the_address() {
    // Box 3 restores half of box 1's connections but box 2 inherited the
    // address and forwards their frames: a parked orphan's segment must
    // restore it here (lazily), not be dropped as not ours until the
    // restore falls due. A forwarded frame of no orphan is still dropped.
    let t0 = Instant::now();
    let ours = Ipv4Addr::new(198, 18, 0, 13);
    let cfg = WorkerConfig::for_test(vec![IpAddr::V4(ours)]);
    let (mut wire, port) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let app = LazyOrphans(Orphans {
        listed: [40_003].into_iter().collect(),
        frozen: 0,
    });
    let mut w = Worker::new(port, app, cfg, t0);
    w.command(Command::AddForwarders(vec![ADOPTER]), t0);
    let forwarded = |port: u16| {
        let mut f = client_ack_from(port, 5100, 90_000);
        f[6..12].copy_from_slice(&ADOPTER.0);
        f
    };
    wire.send(forwarded(40_004)).unwrap();
    w.poll(t0).unwrap();
    assert_eq!(w.counters().drop_ipv4_not_ours, 1, "no orphan of ours");
    wire.send(forwarded(40_003)).unwrap();
    w.poll(t0).unwrap();
    assert_eq!(w.counters().drop_ipv4_not_ours, 1);
    assert_eq!(w.counters().tcp_lazy_restored, 1, "restored by its segment");
    assert_eq!(w.connections(), 1);
    let _ = wire.drain();
}

#[test]
fn a_parked_connection_its_client_restored_leaves_the_count_and_is_not_restored_again() {
    let t0 = Instant::now();
    let app = LazyOrphans(Orphans {
        listed: [40_001, 40_002].into_iter().collect(),
        frozen: 0,
    });
    let (mut wire, mut w) = parked_with(app, 40_001..=40_002, t0);
    wire.send(client_ack_from(40_001, 5100, 90_000)).unwrap();
    w.poll(t0).unwrap();
    assert_eq!(w.counters().tcp_lazy_restored, 1);
    assert_eq!(w.stats().restores.parked, 1, "only 40,002 still parked");
    let _ = wire.drain();
    w.poll(t0 + AFTER).unwrap();
    assert_eq!(tcp_frames(&wire.drain()).len(), 1, "40,002's probe only");
    assert_eq!(w.counters().restore_duplicate, 1, "40,001 skipped");
    assert_eq!(w.connections(), 2);
    assert_eq!(w.stats().restores.parked, 0);
}
