//! The segment file: create, attach, refuse foreign or corrupt layouts, and
//! the box table's heartbeats, states, epochs and identity.

mod common;

use std::net::IpAddr;
use std::os::unix::fs::FileExt;

use baton_shmem::segment::HEADER_SIZE;
use baton_shmem::{BoxLoad, BoxState, BoxTableError, Layout, Segment, SegmentError, SLOT_SIZE};
use common::{http_record, TempSeg};

const SMALL: Layout = Layout {
    regions: 3,
    slots_per_region: 64,
    slot_size: baton_shmem::SLOT_SIZE as u32,
};

#[test]
fn three_hundred_thousand_slots_fit_in_256_mib() {
    let l = Layout {
        regions: 1,
        slots_per_region: 300_000,
        slot_size: baton_shmem::SLOT_SIZE as u32,
    };
    let mib = l.region_stride() as f64 / (1024.0 * 1024.0);
    assert!(mib < 256.0, "a 300,000-slot region takes {mib:.1} MiB");
    assert_eq!(SLOT_SIZE, 768);
}

#[test]
fn create_then_attach_sees_the_same_records_and_layout() {
    let t = TempSeg::new("attach");
    let a = Segment::open_or_create(t.path(), SMALL).unwrap();
    let r1 = a.region(1).unwrap();
    let mut w = r1.writer();
    w.write(
        baton_shmem::SlotId(5),
        &[http_record(1, 40000, "/1M.bin", None)],
    )
    .unwrap();

    let b = Segment::open_or_create(t.path(), SMALL).unwrap();
    assert_eq!(b.layout(), SMALL);
    let c = Segment::open_existing(t.path()).unwrap();
    assert_eq!(c.layout(), SMALL);
    let got: Vec<_> = c.region(1).unwrap().records().collect();
    assert_eq!(got.len(), 1);
    let v = got[0].as_ref().unwrap();
    assert_eq!(v.slot().0, 5);
    assert_eq!(v.bundle().records[0].view().app.unwrap().name, "/1M.bin");
}

#[test]
fn open_with_another_layout_is_a_layout_mismatch() {
    let t = TempSeg::new("mismatch");
    Segment::open_or_create(t.path(), SMALL).unwrap();
    let other = Layout {
        regions: 3,
        slots_per_region: 65,
        slot_size: baton_shmem::SLOT_SIZE as u32,
    };
    match Segment::open_or_create(t.path(), other) {
        Err(SegmentError::LayoutMismatch {
            found, requested, ..
        }) => {
            assert_eq!(found, SMALL);
            assert_eq!(requested, other);
        }
        r => panic!("expected LayoutMismatch, got {r:?}"),
    }
    let msg = Segment::open_or_create(t.path(), other)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("config asks for"), "{msg}");
}

/// A smaller slot is another layout: a box configured for it does not
/// attach to a segment of 768-byte slots (nor the other way round), a
/// size off the steps is refused before any file is made, and a header
/// whose slot size field says so is refused as corrupt.
#[test]
fn the_slot_size_is_part_of_the_layout() {
    let t = TempSeg::new("slot-size");
    Segment::open_or_create(t.path(), SMALL).unwrap();
    let small_slots = Layout {
        slot_size: 384,
        ..SMALL
    };
    assert!(matches!(
        Segment::open_or_create(t.path(), small_slots),
        Err(SegmentError::LayoutMismatch { found, .. }) if found == SMALL
    ));
    let u = TempSeg::new("slot-size-small");
    let s = Segment::open_or_create(u.path(), small_slots).unwrap();
    assert_eq!(
        Segment::open_existing(u.path()).unwrap().layout(),
        small_slots
    );
    assert_eq!(s.region(1).unwrap().slot_size(), 384);
    assert!(small_slots.segment_len() < SMALL.segment_len());
    drop(s);

    let off = Layout {
        slot_size: 400,
        ..SMALL
    };
    let v = TempSeg::new("slot-size-off");
    let err = Segment::open_or_create(v.path(), off).unwrap_err();
    assert!(
        matches!(err, SegmentError::BadSlotSize(l) if l == off),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("320 to 768 bytes, a multiple of 64"),
        "{err}"
    );
    assert!(!v.path().exists(), "nothing was created");

    // The header says 448 where the geometry was computed for 384.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(u.path())
        .unwrap();
    f.write_at(&448u32.to_le_bytes(), 12).unwrap();
    match Segment::open_existing(u.path()) {
        // The first geometry field that disagrees with what 448 implies
        // (here the pieces an entry: 27 against 32; the stride happens to
        // be the same).
        Err(SegmentError::BadHeader { field, .. }) => assert_eq!(field, "overflow_pieces"),
        r => panic!("expected BadHeader, got {r:?}"),
    }
}

#[test]
fn a_file_that_is_not_a_segment_is_refused_with_bad_magic() {
    let t = TempSeg::new("magic");
    std::fs::write(t.path(), vec![0x41u8; 8192]).unwrap();
    assert!(matches!(
        Segment::open_or_create(t.path(), SMALL),
        Err(SegmentError::BadMagic { .. })
    ));
    assert!(matches!(
        Segment::open_existing(t.path()),
        Err(SegmentError::BadMagic { .. })
    ));
}

#[test]
fn a_segment_of_another_version_is_refused() {
    let t = TempSeg::new("version");
    drop(Segment::open_or_create(t.path(), SMALL).unwrap());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(t.path())
        .unwrap();
    let other = baton_shmem::LAYOUT_VERSION + 1;
    f.write_at(&other.to_le_bytes(), 8).unwrap();
    match Segment::open_existing(t.path()) {
        Err(SegmentError::VersionMismatch { found, .. }) if found == other => {}
        r => panic!("expected VersionMismatch, got {r:?}"),
    }
}

#[test]
fn a_truncated_segment_is_refused() {
    let t = TempSeg::new("trunc");
    drop(Segment::open_or_create(t.path(), SMALL).unwrap());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(t.path())
        .unwrap();
    f.set_len(HEADER_SIZE as u64 + 1000).unwrap();
    assert!(matches!(
        Segment::open_existing(t.path()),
        Err(SegmentError::Truncated { .. })
    ));
}

#[test]
fn a_zeroed_preexisting_file_is_initialized_in_place() {
    // A fresh ivshmem BAR or a hugetlbfs file made by a setup script.
    let t = TempSeg::new("zeroed");
    std::fs::write(t.path(), vec![0u8; SMALL.segment_len()]).unwrap();
    let s = Segment::open_or_create(t.path(), SMALL).unwrap();
    assert_eq!(s.layout(), SMALL);
    assert_eq!(Segment::open_existing(t.path()).unwrap().layout(), SMALL);
}

#[test]
fn a_region_beyond_the_segment_is_an_error() {
    let t = TempSeg::new("noregion");
    let s = Segment::open_or_create(t.path(), SMALL).unwrap();
    assert!(matches!(
        s.region(3),
        Err(SegmentError::NoSuchRegion { id: 3, regions: 3 })
    ));
    assert!(matches!(s.box_info(7), Err(BoxTableError::NoSuchBox(7))));
}

#[test]
fn heartbeat_bumps_the_counter_and_time_seen_by_every_reader() {
    let t = TempSeg::new("hb");
    let s = Segment::open_or_create(t.path(), SMALL).unwrap();
    let other = Segment::open_existing(t.path()).unwrap();
    let me = s.region(2).unwrap();
    assert_eq!(other.box_info(2).unwrap().state, BoxState::Unused);
    me.heartbeat(1_000);
    me.heartbeat(1_250);
    let info = other.box_info(2).unwrap();
    assert_eq!(info.heartbeat, 2);
    assert_eq!(info.heartbeat_ms, 1_250);
    // Other regions are untouched.
    assert_eq!(other.box_info(1).unwrap().heartbeat, 0);
}

#[test]
fn a_published_load_is_seen_by_every_reader_and_an_unpublished_one_is_none() {
    let t = TempSeg::new("load");
    let s = Segment::open_or_create(t.path(), SMALL).unwrap();
    let other = Segment::open_existing(t.path()).unwrap();
    let me = s.region(1).unwrap();
    assert_eq!(other.box_info(1).unwrap().load, None);
    me.set_load(baton_shmem::BoxLoad {
        bytes_per_sec: 9_000,
        busy_ppm: 250_000,
    });
    let load = other.box_info(1).unwrap().load.unwrap();
    assert_eq!((load.bytes_per_sec, load.busy_ppm), (9_000, 250_000));
    assert_eq!(other.box_info(0).unwrap().load, None);
    me.clear_load();
    assert_eq!(other.box_info(1).unwrap().load, None);
}

#[test]
fn a_restarted_box_gets_a_new_epoch_and_is_marked_rejoined() {
    let t = TempSeg::new("epoch");
    let s = Segment::open_or_create(t.path(), SMALL).unwrap();
    let r = s.region(0).unwrap();
    assert_eq!(r.begin_epoch(), 1);
    assert_eq!(s.box_info(0).unwrap().state, BoxState::Alive);
    r.set_state(BoxState::Dead);
    assert_eq!(s.box_info(0).unwrap().state, BoxState::Dead);
    assert_eq!(r.begin_epoch(), 2);
    let info = s.box_info(0).unwrap();
    assert_eq!((info.epoch, info.state), (2, BoxState::Rejoined));
    r.set_state(BoxState::Draining);
    assert_eq!(s.box_info(0).unwrap().state, BoxState::Draining);
}

#[test]
fn mac_service_ips_and_counters_round_trip() {
    let t = TempSeg::new("ident");
    let s = Segment::open_or_create(t.path(), SMALL).unwrap();
    let r = s.region(1).unwrap();
    let ips: Vec<IpAddr> = vec![
        "198.18.0.11".parse().unwrap(),
        "2001:2::11".parse().unwrap(),
        "198.18.0.111".parse().unwrap(),
    ];
    let mac = [0x02, 0xba, 0x70, 0, 0, 0x0b];
    r.set_identity(mac, &ips).unwrap();
    r.add_connections(5);
    r.add_connections(-2);
    r.add_checkpoints(40);
    let info = s.box_info(1).unwrap();
    assert_eq!(info.mac, mac);
    assert_eq!(info.service_ips, ips);
    assert_eq!(info.connections, 3);
    assert_eq!(info.checkpoints, 40);
    let nine = vec![ips[0]; 9];
    assert_eq!(
        r.set_identity(mac, &nine),
        Err(BoxTableError::TooManyIps(9))
    );
}

/// A box that inherited two dual-stack boxes holds six addresses; a third
/// dual-stack inheritance makes eight: every one must be in the entry, in
/// order and with its family, for the box that later takes over from it.
#[test]
fn eight_dual_stack_addresses_fit_and_keep_the_load_words() {
    let t = TempSeg::new("ident8");
    let s = Segment::open_or_create(t.path(), SMALL).unwrap();
    let r = s.region(2).unwrap();
    r.set_load(BoxLoad {
        bytes_per_sec: 123_456_789,
        busy_ppm: 250_000,
    });
    let ips: Vec<IpAddr> = (1..=4u8)
        .flat_map(|n| {
            [
                format!("198.18.0.{}", 10 + n).parse().unwrap(),
                format!("2001:2:0:18::{}", 10 + n).parse().unwrap(),
            ]
        })
        .collect();
    let mac = [0x02, 0xba, 0x70, 0, 0, 0x02];
    r.set_identity(mac, &ips[..6]).unwrap();
    assert_eq!(s.box_info(2).unwrap().service_ips, ips[..6]);
    r.set_identity(mac, &ips).unwrap();
    let info = s.box_info(2).unwrap();
    assert_eq!(info.service_ips, ips);
    assert_eq!(info.mac, mac);
    // The high IP block lies past the load words: neither clobbers the other.
    assert_eq!(
        info.load,
        Some(BoxLoad {
            bytes_per_sec: 123_456_789,
            busy_ppm: 250_000
        })
    );
    // Shrinking back (an address handed back) leaves no stale entries.
    r.set_identity(mac, &ips[..2]).unwrap();
    assert_eq!(s.box_info(2).unwrap().service_ips, ips[..2]);
}

fn region_offset(l: Layout, id: u16) -> u64 {
    l.region_offset(id) as u64
}

#[test]
fn a_corrupt_state_word_is_reported_not_misread() {
    let t = TempSeg::new("badstate");
    let s = Segment::open_or_create(t.path(), SMALL).unwrap();
    s.region(1).unwrap().begin_epoch();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(t.path())
        .unwrap();
    f.write_at(&99u32.to_le_bytes(), region_offset(SMALL, 1) + 16)
        .unwrap();
    assert_eq!(
        s.box_info(1),
        Err(BoxTableError::BadState { id: 1, code: 99 })
    );
    f.write_at(&0xffu64.to_le_bytes(), region_offset(SMALL, 2) + 56)
        .unwrap();
    assert!(matches!(
        s.box_info(2),
        Err(BoxTableError::BadIps { id: 2, .. })
    ));
}

mod header_fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random bytes over the header never panic and never yield a
        /// layout other than the one written: either the original is read
        /// back or a typed error says why not.
        #[test]
        fn random_header_bytes_give_the_original_layout_or_an_error(
            at in 0usize..64, bytes in proptest::collection::vec(any::<u8>(), 1..16)
        ) {
            let t = TempSeg::new("hdrfuzz");
            drop(Segment::open_or_create(t.path(), SMALL).unwrap());
            let f = std::fs::OpenOptions::new().write(true).open(t.path()).unwrap();
            f.write_at(&bytes, at as u64).unwrap();
            match Segment::open_existing(t.path()) {
                Ok(s) => prop_assert_eq!(s.layout(), SMALL),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            match Segment::open_or_create(t.path(), SMALL) {
                Ok(s) => prop_assert_eq!(s.layout(), SMALL),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}

#[test]
fn boxes_starting_together_all_attach_to_one_segment() {
    let t = TempSeg::new("race");
    let path = t.path().to_path_buf();
    let handles: Vec<_> = (0..3u16)
        .map(|id| {
            let path = path.clone();
            std::thread::spawn(move || {
                let s = Segment::open_or_create(&path, SMALL).unwrap();
                s.region(id).unwrap().heartbeat(100 + id as u64);
                s
            })
        })
        .collect();
    let segs: Vec<Segment> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // Every heartbeat is visible through every mapping: one file, not three.
    for s in &segs {
        for id in 0..3u16 {
            assert_eq!(s.box_info(id).unwrap().heartbeat_ms, 100 + id as u64);
        }
    }
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(len, SMALL.file_len());
    assert_eq!(
        len % (2 * 1024 * 1024),
        0,
        "hugetlbfs needs whole huge pages"
    );
}

#[test]
fn a_new_segment_is_private_and_one_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempSeg::new("private");
    drop(Segment::open_or_create(t.path(), SMALL).unwrap());
    let mode = std::fs::metadata(t.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "a new segment is the box user's only");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = Segment::open_or_create(t.path(), SMALL).unwrap_err();
    assert!(
        matches!(err, SegmentError::NotPrivate { mode: 0o666, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(&t.path().display().to_string()), "{text}");
    assert!(text.contains("owned by uid"), "{text}");
    // Another user's file, even private, is refused too.
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(t.path(), Some(65534), None).unwrap();
    let err = Segment::open_or_create(t.path(), SMALL).unwrap_err();
    assert!(
        matches!(err, SegmentError::NotPrivate { uid: 65534, .. }),
        "{err}"
    );
}

/// Replication applies a peer's identity with every heartbeat; readers
/// (the detector, a takeover) must never be told `Busy` for an identity
/// that does not change, however often it is applied.
#[test]
fn an_identity_applied_again_unchanged_never_makes_a_reader_busy() {
    let t = TempSeg::new("ident-again");
    let s = Segment::open_or_create(t.path(), SMALL).unwrap();
    let r = s.region(1).unwrap();
    let ips: Vec<IpAddr> = vec![
        "198.18.0.11".parse().unwrap(),
        "2001:2::11".parse().unwrap(),
    ];
    let mac = [0x02, 0xba, 0x70, 0, 0, 0x0b];
    r.set_identity(mac, &ips).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (r, ips, stop) = (r.clone(), ips.clone(), stop.clone());
        move || {
            let mut applied = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                r.set_identity(mac, &ips).unwrap();
                applied += 1;
            }
            applied
        }
    });
    let mut reads = 0u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    while std::time::Instant::now() < deadline {
        let info = s.box_info(1).unwrap();
        assert_eq!((info.mac, &info.service_ips), (mac, &ips));
        reads += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let applied = writer.join().unwrap();
    assert!(
        applied > 1_000 && reads > 1_000,
        "{applied} writes, {reads} reads"
    );
}
