//! Anti-replay across restarts: every replication datagram names the
//! incarnation (epoch) of the box it is meant for, so a datagram captured
//! before its receiver or its sender restarted is refused after the
//! restart by every box, the restarted one included, although replay
//! windows live in memory. Driven by hand (no sockets, no clock).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use baton_shmem::{
    Layout, Region, ReplicationConfig, ReplicationStats, Replicator, Segment, SlotId,
};
use common::{http_record, Tap, TempSeg};

const KEY: &[u8] = b"baton-lab-cluster-key-0123456789";
const L: Layout = Layout {
    regions: 2,
    slots_per_region: 64,
    slot_size: baton_shmem::SLOT_SIZE as u32,
};

/// Two boxes' segments (removed on drop) and what each sends.
struct Two {
    files: (TempSeg, TempSeg),
    a: Segment,
    b: Segment,
    ta: Tap,
    tb: Tap,
}

fn two(tag: &str) -> Two {
    let files = (
        TempSeg::new(&format!("{tag}-a")),
        TempSeg::new(&format!("{tag}-b")),
    );
    let a = Segment::open_or_create(files.0.path(), L).unwrap();
    let b = Segment::open_or_create(files.1.path(), L).unwrap();
    Two {
        files,
        a,
        b,
        ta: Tap::default(),
        tb: Tap::default(),
    }
}

fn addr() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

/// Box `me`'s replicator with the one peer `1 - me`, started as a box
/// starts: its epoch begun first.
fn start(seg: &Segment, me: u16, tap: &Tap) -> Replicator<Tap> {
    seg.region(me).unwrap().begin_epoch();
    let cfg = ReplicationConfig {
        me,
        key: KEY.to_vec(),
        peers: vec![(1 - me, addr())],
    };
    Replicator::new(seg, cfg, tap.clone()).unwrap()
}

fn deliver(to: &mut Replicator<Tap>, datagrams: &[Vec<u8>]) {
    for d in datagrams {
        to.handle(d, addr(), 0).unwrap();
    }
}

fn count(stats: &ReplicationStats, f: fn(&ReplicationStats) -> &AtomicU64) -> u64 {
    f(stats).load(Ordering::Relaxed)
}

fn url(r: &Region, slot: u32) -> Option<String> {
    r.read(SlotId(slot))
        .unwrap()
        .map(|v| v.bundle().records[0].view().app.unwrap().name.to_string())
}

/// Each box hears the other: from then on their datagrams name each
/// other's current epoch; a few more rounds let the snapshots that follow
/// a first contact complete, so the next tick ships only news.
fn introduce(a: &mut Replicator<Tap>, ta: &Tap, b: &mut Replicator<Tap>, tb: &Tap) {
    for round in 0..6 {
        b.tick(round * 100).unwrap();
        deliver(a, &tb.take());
        a.tick(round * 100).unwrap();
        deliver(b, &ta.take());
    }
    deliver(a, &tb.take());
}

#[test]
fn a_datagram_captured_before_its_receiver_restarted_is_refused_after_the_restart() {
    let Two {
        files: _files,
        a,
        b,
        ta,
        tb,
    } = two("inc");
    let mut ra = start(&a, 0, &ta);
    let mut rb = start(&b, 1, &tb);
    introduce(&mut ra, &ta, &mut rb, &tb);

    // Box 0 checkpoints a connection; an attacker captures what it sends
    // (an update and a heartbeat), which box 1 applies.
    a.region(0)
        .unwrap()
        .writer()
        .write(SlotId(3), &[http_record(0, 7, "/before", None)])
        .unwrap();
    ra.tick(10).unwrap();
    let captured = ta.take();
    assert_eq!(captured.len(), 2, "an update and a heartbeat");
    let accepted = count(&rb.stats(), |s| &s.accepted);
    deliver(&mut rb, &captured);
    assert_eq!(count(&rb.stats(), |s| &s.accepted), accepted + 2);
    let replica = b.region(0).unwrap();
    assert_eq!(url(&replica, 3).as_deref(), Some("/before"));

    // Box 1 restarts: its replay windows are gone.
    drop(rb);
    let mut rb = start(&b, 1, &tb);
    assert_eq!(b.region(1).unwrap().epoch(), 2);

    // The replay: refused, counted, nothing applied.
    deliver(&mut rb, &captured);
    let stats = rb.stats();
    assert_eq!(count(&stats, |s| &s.old_incarnation), 2);
    assert_eq!(count(&stats, |s| &s.accepted), 0);
    assert_eq!(count(&stats, |s| &s.slots_applied), 0);
    assert_eq!(count(&stats, |s| &s.heartbeats), 0);

    // Box 0's datagrams reach the new incarnation once it was heard.
    introduce(&mut ra, &ta, &mut rb, &tb);
    ra.tick(30).unwrap();
    deliver(&mut rb, &ta.take());
    assert!(count(&stats, |s| &s.accepted) >= 2);
    // ... and the captured ones still do not.
    deliver(&mut rb, &captured);
    assert_eq!(count(&stats, |s| &s.old_incarnation), 4);
}

#[test]
fn a_datagram_captured_before_its_sender_restarted_is_refused_by_every_box() {
    let Two {
        files: _files,
        a,
        b,
        ta,
        tb,
    } = two("inc-s");
    let mut ra = start(&a, 0, &ta);
    let mut rb = start(&b, 1, &tb);
    introduce(&mut ra, &ta, &mut rb, &tb);
    a.region(0)
        .unwrap()
        .writer()
        .write(SlotId(5), &[http_record(0, 9, "/old-life", None)])
        .unwrap();
    ra.tick(10).unwrap();
    let captured = ta.take();
    deliver(&mut rb, &captured);

    // Box 0 restarts: its new incarnation introduces itself.
    drop(ra);
    a.region(0).unwrap().clear_all();
    let mut ra = start(&a, 0, &ta);
    introduce(&mut ra, &ta, &mut rb, &tb);
    ra.tick(20).unwrap();
    deliver(&mut rb, &ta.take());
    let replica = b.region(0).unwrap();
    assert_eq!(b.box_info(0).unwrap().epoch, 2);
    assert_eq!(
        url(&replica, 5),
        None,
        "the new incarnation wiped the replica"
    );

    // Replayed to the box that did not restart: an older epoch of box 0.
    let stale = count(&rb.stats(), |s| &s.stale_epoch);
    deliver(&mut rb, &captured);
    assert_eq!(count(&rb.stats(), |s| &s.stale_epoch), stale + 2);
    assert_eq!(url(&replica, 5), None);

    // Box 1 restarts too and has heard nothing yet: the replay names its
    // old incarnation.
    drop(rb);
    let mut rb = start(&b, 1, &tb);
    deliver(&mut rb, &captured);
    assert_eq!(count(&rb.stats(), |s| &s.old_incarnation), 2);
    assert_eq!(count(&rb.stats(), |s| &s.accepted), 0);
    assert_eq!(url(&replica, 5), None);
}

#[test]
fn a_peer_that_has_not_heard_of_this_incarnation_is_only_learned_from() {
    let Two {
        files: _files,
        a,
        b,
        ta,
        tb,
    } = two("inc-u");
    let mut ra = start(&a, 0, &ta);
    let mut rb = start(&b, 1, &tb);
    a.region(0)
        .unwrap()
        .writer()
        .write(SlotId(1), &[http_record(0, 1, "/early", None)])
        .unwrap();
    // Box 0 has heard nothing of box 1: its first datagrams name no
    // incarnation and are not applied, only learned from.
    ra.tick(0).unwrap();
    let first = ta.take();
    deliver(&mut rb, &first);
    assert_eq!(count(&rb.stats(), |s| &s.unintroduced), 2);
    assert_eq!(count(&rb.stats(), |s| &s.accepted), 0);
    assert_eq!(url(&b.region(0).unwrap(), 1), None);
    // Box 1's heartbeat now names box 0's epoch; box 0 answers with the
    // right one, and the replica catches up by a snapshot.
    introduce(&mut ra, &ta, &mut rb, &tb);
    for t in 1..5 {
        ra.tick(t * 100).unwrap();
        rb.tick(t * 100).unwrap();
        deliver(&mut rb, &ta.take());
        deliver(&mut ra, &tb.take());
    }
    assert_eq!(url(&b.region(0).unwrap(), 1).as_deref(), Some("/early"));
    // The early datagrams stay refused.
    deliver(&mut rb, &first);
    assert_eq!(count(&rb.stats(), |s| &s.unintroduced), 4);
}
