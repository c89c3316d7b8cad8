//! Load-aware splits committed with the change (issue 20): survivors that
//! read the same committed change compute the same owner for every slot,
//! on a real segment cell read through two mappings; a change without
//! loads splits round-robin; loads that cannot be read are never guessed.

mod common;

use std::time::Duration;

use baton_membership::{
    propose_with, refresh, split_of, survivors, ChangeLoads, CommittedLoads, Event, MemberLoad,
    Membership, SegmentStore, Split, Verdict, ViewChange,
};
use baton_shmem::{Layout, Segment, ViewCell};
use common::m;

struct Host {
    path: std::path::PathBuf,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Boxes 1..=4 on one host, each with its own mapping; all joined.
fn four_boxes(name: &str) -> (Host, Vec<Segment>, Vec<Membership>) {
    let path =
        std::env::temp_dir().join(format!("baton-placement-{name}-{}.seg", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let layout = Layout {
        regions: 5,
        slots_per_region: 4,
        slot_size: baton_shmem::SLOT_SIZE as u32,
    };
    let first = Segment::open_or_create(&path, layout).unwrap();
    let mut segs = vec![first];
    for _ in 1..4 {
        segs.push(Segment::open_existing(&path).unwrap());
    }
    let mut boxes: Vec<Membership> = (1..=4).map(|id| Membership::new(m(id, 1))).collect();
    for (b, s) in boxes.iter_mut().zip(&segs) {
        b.handle_dataplane_up();
        b.handle_beat();
        baton_membership::sync(b, &SegmentStore::new(ViewCell::new(s))).unwrap();
    }
    for (b, s) in boxes.iter_mut().zip(&segs) {
        refresh(b, &SegmentStore::new(ViewCell::new(s))).unwrap();
        while b.poll_event().is_some() {}
    }
    (Host { path }, segs, boxes)
}

fn preloaded(box2: u32) -> ChangeLoads {
    ChangeLoads {
        capacity: 1000,
        orphans: 30,
        members: vec![
            MemberLoad {
                id: 1,
                connections: 10,
                busy_ppm: 0,
            },
            MemberLoad {
                id: 2,
                connections: box2,
                busy_ppm: 0,
            },
            MemberLoad {
                id: 3,
                connections: 0,
                busy_ppm: 0,
            },
        ],
    }
}

/// Box `judge` (index `judge - 1`) removes box 4, committing `loads`.
fn remove_box_4(
    segs: &[Segment],
    boxes: &mut [Membership],
    judge: u16,
    loads: Option<ChangeLoads>,
) {
    let store = SegmentStore::new(ViewCell::new(&segs[judge as usize - 1]));
    let b = &mut boxes[judge as usize - 1];
    b.handle_verdict(Verdict {
        peer: m(4, 1),
        silent_for: Duration::from_millis(100),
    });
    propose_with(b, &store, &|_| loads.clone());
}

fn removal(b: &mut Membership, seg: &Segment) -> ViewChange {
    refresh(b, &SegmentStore::new(ViewCell::new(seg))).unwrap();
    std::iter::from_fn(|| b.poll_event())
        .find_map(|e| match e {
            Event::Committed(c) if c.died(4) => Some(c),
            _ => None,
        })
        .expect("the removal of box 4")
}

fn owners(split: &Split) -> Vec<Option<u16>> {
    (0..400).map(|s| split.owner(s)).collect()
}

#[test]
fn survivors_reading_one_committed_change_compute_the_same_owner_for_every_slot() {
    let (_host, segs, mut boxes) = four_boxes("same");
    remove_box_4(&segs, &mut boxes, 1, Some(preloaded(40)));
    let changes: Vec<ViewChange> = (0..3).map(|i| removal(&mut boxes[i], &segs[i])).collect();
    assert!(
        changes.windows(2).all(|w| w[0] == w[1]),
        "one change on all"
    );
    assert_eq!(changes[0].loads, CommittedLoads::Read(preloaded(40)));
    let splits: Vec<Split> = changes.iter().map(split_of).collect();
    let all = owners(&splits[0]);
    for s in &splits[1..] {
        assert_eq!(
            owners(s),
            all,
            "every survivor gives every slot the same owner"
        );
    }
    assert!(all.iter().all(|o| o.is_some()), "every slot has an owner");
    let to = |id| all.iter().filter(|&&o| o == Some(id)).count();
    // Box 2 holds 40, box 1 10, box 3 none: the 30 orphans level boxes 1
    // and 3 (shares 0 / 10 / 20), so box 2 takes nothing and box 3 most.
    assert_eq!(to(2), 0, "the preloaded survivor takes none: {all:?}");
    assert!(to(3) > to(1), "box 3 {} vs box 1 {}", to(3), to(1));
    assert_eq!(
        splits[0],
        Split::LeastLoaded(vec![(1, 10), (2, 0), (3, 20)])
    );
}

#[test]
fn a_box_that_missed_the_removal_s_view_reads_its_loads_from_a_later_one() {
    let (_host, segs, mut boxes) = four_boxes("missed");
    remove_box_4(&segs, &mut boxes, 1, Some(preloaded(40)));
    let on_box_1 = removal(&mut boxes[0], &segs[0]);
    // Box 1 restarts (a join, without loads) before box 3 polls again.
    let store = SegmentStore::new(ViewCell::new(&segs[0]));
    let mut again = Membership::new(m(1, 2));
    again.handle_dataplane_up();
    again.handle_beat();
    baton_membership::sync(&mut again, &store).unwrap();
    let on_box_3 = removal(&mut boxes[2], &segs[2]);
    assert_eq!(on_box_3, on_box_1, "rebuilt from the later view's history");
    assert_eq!(split_of(&on_box_3), split_of(&on_box_1));
}

#[test]
fn a_change_committed_without_loads_splits_round_robin_for_everyone() {
    let (_host, segs, mut boxes) = four_boxes("rr");
    remove_box_4(&segs, &mut boxes, 2, None);
    let change = removal(&mut boxes[0], &segs[0]);
    assert_eq!(change.loads, CommittedLoads::None);
    assert_eq!(split_of(&change), Split::RoundRobin(vec![1, 2, 3]));
    let owners: Vec<_> = (0..5).map(|s| split_of(&change).owner(s)).collect();
    assert_eq!(owners, [1, 2, 3, 1, 2].map(Some));
    assert_eq!(survivors(&change), vec![1, 2, 3]);
}

#[test]
fn a_survivor_that_cannot_read_the_committed_loads_does_not_guess() {
    let (_host, segs, mut boxes) = four_boxes("unread");
    remove_box_4(&segs, &mut boxes, 1, Some(preloaded(40)));
    let number = boxes[0].view().unwrap().number;
    // Box 1's ring entry for that number is rewritten (as by its proposal
    // four views later) before box 3 reads the change.
    let later = number.0 + 4;
    assert!(segs[0].region(1).unwrap().write_loads(later, &preloaded(0)));
    let change = removal(&mut boxes[2], &segs[2]);
    assert_eq!(change.loads, CommittedLoads::Unread { proposer: 1 });
    let split = split_of(&change);
    assert_eq!(split, Split::Unreadable { proposer: 1 });
    assert!(
        owners(&split).iter().all(|o| o.is_none()),
        "no slot is guessed"
    );
}

#[test]
fn committed_loads_survive_a_member_missing_from_them_and_a_zero_orphan_count() {
    let (_host, segs, mut boxes) = four_boxes("partial");
    let mut loads = preloaded(40);
    loads.members.retain(|l| l.id != 3);
    loads.orphans = 0;
    remove_box_4(&segs, &mut boxes, 1, Some(loads));
    let change = removal(&mut boxes[1], &segs[1]);
    // Box 3, unlisted, counts as empty; the orphan count is at least one,
    // so every slot still has an owner.
    let split = split_of(&change);
    assert_eq!(split, Split::LeastLoaded(vec![(1, 0), (2, 0), (3, 1)]));
    assert!(owners(&split).iter().all(|&o| o == Some(3)));
}
