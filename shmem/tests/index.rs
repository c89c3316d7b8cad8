//! The tuple index (issue 20): every checkpointed TCP connection is found
//! by its tuple, in the right region, slot and bundle position, without a
//! scan; a freed or rewritten slot is found no more under its old tuple.
mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};

use baton_shmem::{Endpoint, Layout, Located, Segment, SlotId, Transport};
use common::{http_record, TempSeg};

fn local(owner: u16) -> SocketAddr {
    format!("198.18.0.{}:80", 10 + owner).parse().unwrap()
}

fn client(port: u16) -> SocketAddr {
    format!("198.18.0.100:{port}").parse().unwrap()
}

#[test]
fn a_checkpointed_connection_is_located_until_its_slot_is_freed() {
    let t = TempSeg::new("index-basic");
    let seg = Segment::open_or_create(
        t.path(),
        Layout {
            regions: 3,
            slots_per_region: 64,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    )
    .unwrap();
    let r1 = seg.region(1).unwrap();
    let mut slots = r1.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    let s = slots.alloc().unwrap();
    w.write(s, &[http_record(1, 40_000, "/a", None)]).unwrap();

    let found = seg.locate(local(1), client(40_000));
    assert_eq!(
        found,
        vec![Located {
            region: 1,
            slot: s,
            index: 0,
            epoch: 1,
        }]
    );
    // Another client port, or the same tuple asked of another region's
    // address, is not this connection.
    assert!(seg.locate(local(1), client(40_001)).is_empty());
    assert!(seg.locate(local(2), client(40_000)).is_empty());

    // Rewrites of the same connection keep it found.
    for i in 0..5 {
        w.write(s, &[http_record(1, 40_000, &format!("/a{i}"), None)])
            .unwrap();
    }
    assert_eq!(seg.locate(local(1), client(40_000)).len(), 1);

    // The slot reused for another connection: the old tuple is gone.
    w.write(s, &[http_record(1, 40_002, "/b", None)]).unwrap();
    assert!(seg.locate(local(1), client(40_000)).is_empty());
    assert_eq!(seg.locate(local(1), client(40_002)).len(), 1);

    w.clear(s).unwrap();
    slots.free(s).unwrap();
    assert!(seg.locate(local(1), client(40_002)).is_empty());
}

#[test]
fn a_bundles_tcp_members_are_located_and_its_udp_member_is_not() {
    let t = TempSeg::new("index-bundle");
    let seg = Segment::open_or_create(
        t.path(),
        Layout {
            regions: 2,
            slots_per_region: 16,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    )
    .unwrap();
    let r0 = seg.region(0).unwrap();
    let mut w = r0.writer();
    let control = http_record(0, 50_000, "/", None);
    let mut data = http_record(0, 50_001, "/", None);
    data.app = None;
    let mut udp = http_record(0, 50_002, "/", None);
    udp.app = None;
    udp.tcp = None;
    udp.transport = Transport::Udp;
    w.write(SlotId(3), &[control, udp, data]).unwrap();

    let at = |port| seg.locate(local(0), client(port));
    assert_eq!(at(50_000)[0].index, 0);
    assert_eq!(
        at(50_001)[0].index,
        2,
        "the second TCP member, after the UDP one"
    );
    assert!(at(50_002).is_empty(), "UDP records are not indexed");

    // The bundle shrinks to its control connection: the data member goes.
    w.write(SlotId(3), &[http_record(0, 50_000, "/", None)])
        .unwrap();
    assert_eq!(at(50_000).len(), 1);
    assert!(at(50_001).is_empty());
}

#[test]
fn twenty_thousand_connections_churned_are_all_found_and_the_freed_never() {
    let t = TempSeg::new("index-churn");
    let n = 20_000u32;
    let seg = Segment::open_or_create(
        t.path(),
        Layout {
            regions: 2,
            slots_per_region: n,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    )
    .unwrap();
    let r1 = seg.region(1).unwrap();
    let mut slots = r1.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    // Client ports over several client addresses: 20,000 tuples.
    let tuple = |i: u32| {
        let addr: SocketAddr = format!(
            "198.18.{}.{}:{}",
            1 + i / 60_000,
            100 + (i / 1000) % 100,
            1024 + i % 1000
        )
        .parse()
        .unwrap();
        addr
    };
    let record = |i: u32| {
        let mut r = http_record(1, 0, "/x", None);
        r.remote = Endpoint::from(tuple(i));
        r
    };
    let mut held = Vec::new();
    for i in 0..n {
        let s = slots.alloc().unwrap();
        w.write(s, &[record(i)]).unwrap();
        held.push((i, s));
    }
    // Half end; their slots take new connections.
    for (k, next) in (0..held.len()).step_by(2).zip(n..) {
        let (_, s) = held[k];
        w.clear(s).unwrap();
        w.write(s, &[record(next)]).unwrap();
        held[k] = (next, s);
    }
    assert_eq!(w.index_full(), 0, "no connection left out of the index");
    for &(i, s) in &held {
        let found = seg.locate(local(1), tuple(i));
        assert_eq!(found.len(), 1, "connection {i}");
        assert_eq!(found[0].slot, s);
    }
    for i in (0..n).step_by(2) {
        assert!(
            seg.locate(local(1), tuple(i)).is_empty(),
            "ended connection {i}"
        );
    }
    // A new epoch of the region's box clears its slots and its index.
    let _fresh = r1.worker_slots(0, 1).unwrap();
    assert!(seg.locate(local(1), tuple(1)).is_empty());
}

#[test]
fn workers_writing_at_once_index_every_connection() {
    let t = TempSeg::new("index-workers");
    let seg = Segment::open_or_create(
        t.path(),
        Layout {
            regions: 1,
            slots_per_region: 8_000,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    )
    .unwrap();
    let workers = 4;
    let go = Arc::new(Barrier::new(workers));
    let threads: Vec<_> = (0..workers)
        .map(|k| {
            let (seg, go) = (seg.clone(), go.clone());
            std::thread::spawn(move || {
                let region = seg.region(0).unwrap();
                let mut slots = region.worker_slots(k, workers).unwrap();
                let mut w = slots.writer();
                go.wait();
                let mut written = Vec::new();
                for i in 0..1_500u16 {
                    let port = 1_024 + k as u16 * 2_000 + i;
                    let s = slots.alloc().unwrap();
                    w.write(s, &[http_record(0, port, "/w", None)]).unwrap();
                    written.push((port, s));
                }
                written
            })
        })
        .collect();
    for t in threads {
        for (port, s) in t.join().unwrap() {
            let found = seg.locate(local(0), client(port));
            assert_eq!(found.len(), 1, "port {port}");
            assert_eq!(found[0].slot, s);
        }
    }
}

#[test]
fn a_connection_recorded_in_two_slots_is_found_in_both_until_one_is_cleared() {
    // A connection taken back after a refused hand-over: its final
    // checkpoint's slot and the slot its restored TCB writes.
    let t = TempSeg::new("index-two-slots");
    let seg = Segment::open_or_create(
        t.path(),
        Layout {
            regions: 2,
            slots_per_region: 64,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    )
    .unwrap();
    let r1 = seg.region(1).unwrap();
    let mut slots = r1.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    let (old, new) = (slots.alloc().unwrap(), slots.alloc().unwrap());
    w.write(old, &[http_record(1, 40_000, "/a", None)]).unwrap();
    assert_eq!(r1.slots_of(local(1), client(40_000)), vec![old]);
    w.write(new, &[http_record(1, 40_000, "/a", None)]).unwrap();
    let mut both = r1.slots_of(local(1), client(40_000));
    both.sort_by_key(|s| s.0);
    assert_eq!(both, vec![old, new]);
    assert!(r1.slots_of(local(1), client(40_001)).is_empty());
    w.clear(old).unwrap();
    assert_eq!(r1.slots_of(local(1), client(40_000)), vec![new]);
}
