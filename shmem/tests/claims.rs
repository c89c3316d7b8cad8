//! Slot ownership claims: the survivors of one view change claim each of
//! a dead box's slots once between them, a later view claims afresh, and
//! claims never touch what the slots hold.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Barrier};

use baton_shmem::{Claim, ClaimError, Layout, Segment, SlotId, ViewNumber};
use common::{http_record, TempSeg};

const LAYOUT: Layout = Layout {
    regions: 3,
    slots_per_region: 64,
    slot_size: baton_shmem::SLOT_SIZE as u32,
};

fn seg(t: &TempSeg) -> Segment {
    Segment::open_or_create(t.path(), LAYOUT).unwrap()
}

fn claim(by: u16, view: u32) -> Claim {
    Claim {
        by,
        view: ViewNumber(view),
    }
}

#[test]
fn a_slot_never_claimed_belongs_to_its_region() {
    let t = TempSeg::new("claims-none");
    let s = seg(&t);
    assert_eq!(s.region(1).unwrap().claim_of(SlotId(5)), Ok(None));
}

#[test]
fn the_first_claim_in_a_view_wins_and_the_second_learns_who_holds_it() {
    let t = TempSeg::new("claims-race");
    let dead = seg(&t).region(2).unwrap();
    assert_eq!(dead.claim(SlotId(7), 1, ViewNumber(5)), Ok(()));
    assert_eq!(
        dead.claim(SlotId(7), 0, ViewNumber(5)),
        Err(ClaimError::Taken(claim(1, 5)))
    );
    assert_eq!(
        dead.claim(SlotId(7), 1, ViewNumber(5)),
        Ok(()),
        "a retry of the same claim"
    );
    assert_eq!(dead.claim_of(SlotId(7)), Ok(Some(claim(1, 5))));
}

#[test]
fn a_newer_view_claims_afresh_and_an_older_one_cannot() {
    let t = TempSeg::new("claims-views");
    let dead = seg(&t).region(2).unwrap();
    dead.claim(SlotId(0), 1, ViewNumber(5)).unwrap();
    // Box 2 came back, served again in this slot, and died again.
    assert_eq!(dead.claim(SlotId(0), 0, ViewNumber(9)), Ok(()));
    assert_eq!(
        dead.claim(SlotId(0), 1, ViewNumber(7)),
        Err(ClaimError::Taken(claim(0, 9)))
    );
}

#[test]
fn claims_outside_a_view_or_the_region_are_refused() {
    let t = TempSeg::new("claims-bounds");
    let r = seg(&t).region(0).unwrap();
    assert_eq!(
        r.claim(SlotId(1), 1, ViewNumber(0)),
        Err(ClaimError::NoView)
    );
    assert_eq!(
        r.claim(SlotId(64), 1, ViewNumber(1)),
        Err(ClaimError::NoSuchSlot {
            slot: 64,
            slots: 64
        })
    );
}

#[test]
fn claims_are_per_region_and_leave_the_slots_contents_alone() {
    let t = TempSeg::new("claims-apart");
    let s = seg(&t);
    let r1 = s.region(1).unwrap();
    let mut slots = r1.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    let slot = slots.alloc().unwrap();
    w.write(slot, &[http_record(1, 40_000, "/kept.bin", None)])
        .unwrap();
    for i in 0..64 {
        r1.claim(SlotId(i), 2, ViewNumber(3)).unwrap();
    }
    let kept = r1.read(slot).unwrap().expect("the record is still there");
    assert_eq!(kept.bundle().records[0].remote.port, 40_000);
    for other in [0, 2] {
        let r = s.region(other).unwrap();
        assert!((0..64).all(|i| r.claim_of(SlotId(i)) == Ok(None)));
    }
}

/// A restarted box forgets the claims on its region (its new records are
/// its own) and touches no other region's.
#[test]
fn clearing_a_regions_claims_leaves_the_others() {
    let t = TempSeg::new("claims-clear");
    let s = seg(&t);
    let (r1, r2) = (s.region(1).unwrap(), s.region(2).unwrap());
    r1.claim(SlotId(3), 2, ViewNumber(4)).unwrap();
    r2.claim(SlotId(3), 1, ViewNumber(4)).unwrap();
    r1.clear_claims();
    assert_eq!(r1.claim_of(SlotId(3)), Ok(None));
    assert_eq!(r2.claim_of(SlotId(3)), Ok(Some(claim(1, 4))));
    r1.claim(SlotId(3), 2, ViewNumber(1))
        .expect("an older view claims a cleared slot again");
}

#[test]
fn bytes_no_claimer_writes_are_an_error_for_that_slot_only() {
    let t = TempSeg::new("claims-corrupt");
    let s = seg(&t);
    let off = LAYOUT.claims_offset() + (64 + 3) * 8;
    let f = OpenOptions::new().write(true).open(t.path()).unwrap();
    f.write_all_at(&0x0000_0001_0001_0002u64.to_le_bytes(), off as u64)
        .unwrap();
    let r1 = s.region(1).unwrap();
    assert!(matches!(
        r1.claim_of(SlotId(3)),
        Err(ClaimError::Corrupt(_))
    ));
    assert!(matches!(
        r1.claim(SlotId(3), 0, ViewNumber(2)),
        Err(ClaimError::Corrupt(_))
    ));
    assert_eq!(r1.claim(SlotId(4), 0, ViewNumber(2)), Ok(()));
}

#[test]
fn survivors_racing_on_two_mappings_claim_every_slot_exactly_once() {
    let t = TempSeg::new("claims-threads");
    let first = seg(&t);
    let boxes = [0u16, 1, 3, 4];
    let start = Arc::new(Barrier::new(boxes.len()));
    let handles: Vec<_> = boxes
        .iter()
        .map(|&me| {
            let s = if me % 2 == 0 {
                first.clone()
            } else {
                Segment::open_existing(t.path()).unwrap()
            };
            let start = start.clone();
            std::thread::spawn(move || {
                let dead = s.region(2).unwrap();
                start.wait();
                // Every survivor tries every slot, as diverging plans would.
                (0..64)
                    .filter(|&i| dead.claim(SlotId(i), me, ViewNumber(8)).is_ok())
                    .collect::<Vec<u32>>()
            })
        })
        .collect();
    let mut won: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    won.sort_unstable();
    assert_eq!(won, (0..64).collect::<Vec<_>>());
}
