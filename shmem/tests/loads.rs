//! Loads committed with a view change in shared mode (issue 20): written
//! into the proposer's ring before the commit, read by every mapping of
//! the segment for the views that name them, never misread.

mod common;

use baton_shmem::{
    ChangeLoads, CommittedLoads, Layout, Member, MemberLoad, Segment, ViewCell, ViewNumber,
};
use common::TempSeg;

const LAYOUT: Layout = Layout {
    regions: 4,
    slots_per_region: 8,
    slot_size: baton_shmem::SLOT_SIZE as u32,
};

fn m(id: u16, epoch: u32) -> Member {
    Member { id, epoch }
}

fn loads(orphans: u32, box2: u32) -> ChangeLoads {
    ChangeLoads {
        capacity: 1000,
        orphans,
        members: vec![
            MemberLoad {
                id: 2,
                connections: box2,
                busy_ppm: 1,
            },
            MemberLoad {
                id: 3,
                connections: 0,
                busy_ppm: 999_999,
            },
        ],
    }
}

#[test]
fn loads_committed_with_a_removal_are_read_by_another_mapping() {
    let seg = TempSeg::new("loads-commit");
    let a = ViewCell::new(&Segment::open_or_create(seg.path(), LAYOUT).unwrap());
    let b = ViewCell::new(&Segment::open_existing(seg.path()).unwrap());
    a.propose(1, ViewNumber(0), &[m(1, 1), m(2, 1), m(3, 1)], 7)
        .unwrap();
    let committed = a
        .propose_with_loads(
            2,
            ViewNumber(1),
            &[m(2, 1), m(3, 1)],
            8,
            Some(&loads(30, 40)),
        )
        .unwrap();
    let read = b.read().unwrap();
    assert_eq!(read, committed, "the proposer and a reader see one view");
    assert_eq!(read.loads[0], CommittedLoads::Read(loads(30, 40)));
    assert_eq!(read.loads[1], CommittedLoads::None, "view 1 carried none");
    // The next view, without loads, still names view 2's.
    let v3 = b.propose(3, ViewNumber(2), &[m(3, 1)], 9).unwrap();
    assert_eq!(v3.loads[0], CommittedLoads::None);
    assert_eq!(
        v3.loads_of(ViewNumber(2)),
        &CommittedLoads::Read(loads(30, 40))
    );
    assert_eq!(a.read().unwrap().loads, v3.loads);
}

#[test]
fn a_losing_proposal_s_loads_are_named_by_no_view() {
    let seg = TempSeg::new("loads-lose");
    let c = ViewCell::new(&Segment::open_or_create(seg.path(), LAYOUT).unwrap());
    c.propose(1, ViewNumber(0), &[m(1, 1), m(2, 1), m(3, 1)], 7)
        .unwrap();
    let won = c
        .propose_with_loads(
            2,
            ViewNumber(1),
            &[m(2, 1), m(3, 1)],
            8,
            Some(&loads(30, 40)),
        )
        .unwrap();
    // Box 3 judged the same death a moment later, over the same number.
    let lost = c.propose_with_loads(
        3,
        ViewNumber(1),
        &[m(2, 1), m(3, 1)],
        8,
        Some(&loads(30, 0)),
    );
    assert!(lost.is_err());
    assert_eq!(c.read().unwrap(), won);
    assert_eq!(won.loads[0], CommittedLoads::Read(loads(30, 40)));
}

#[test]
fn loads_overwritten_in_the_ring_read_as_unread_never_as_another_view_s() {
    let seg = TempSeg::new("loads-ring");
    let s = Segment::open_or_create(seg.path(), LAYOUT).unwrap();
    let c = ViewCell::new(&s);
    c.propose(1, ViewNumber(0), &[m(1, 1), m(2, 1)], 7).unwrap();
    c.propose_with_loads(2, ViewNumber(1), &[m(2, 1)], 8, Some(&loads(5, 1)))
        .unwrap();
    // A later proposal by box 2 for view 6 takes the same ring entry.
    let r = s.region(2).unwrap();
    assert!(r.write_loads(6, &loads(9, 9)));
    assert_eq!(
        c.read().unwrap().loads[0],
        CommittedLoads::Unread { proposer: 2 }
    );
    assert_eq!(r.loads_for(2), None);
    assert_eq!(r.loads_for(6), Some(loads(9, 9)));
}

#[test]
fn loads_the_ring_cannot_hold_are_left_out_and_the_view_carries_none() {
    let seg = TempSeg::new("loads-bad");
    let c = ViewCell::new(&Segment::open_or_create(seg.path(), LAYOUT).unwrap());
    let mut twice = loads(1, 1);
    twice.members.push(twice.members[0]);
    let v = c
        .propose_with_loads(1, ViewNumber(0), &[m(1, 1)], 7, Some(&twice))
        .unwrap();
    assert_eq!(v.loads[0], CommittedLoads::None);
    // Proposer 9 has no region in a 4-region segment.
    let v = c
        .propose_with_loads(9, ViewNumber(1), &[m(1, 1)], 7, Some(&loads(1, 1)))
        .unwrap();
    assert_eq!(v.loads[0], CommittedLoads::None);
}
