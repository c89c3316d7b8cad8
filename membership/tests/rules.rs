//! The membership rules of issue #21, one behaviour per test, on simulated
//! boxes sharing one view store (and, at the end, on a real segment cell).

mod common;

use baton_membership::{
    address_heir, orphan_owner, propose, refresh, survivors, Event, Fence, Member, Membership,
    Phase, Reason, SegmentStore, StoreError, Verdict, ViewNumber, ViewStore,
};
use common::{m, Cluster};
use std::time::Duration;

fn verdict(peer: Member) -> Verdict {
    Verdict {
        peer,
        silent_for: Duration::from_millis(300),
    }
}

fn silent(member: Member) -> Reason {
    Reason::Silent {
        member,
        silent_ms: 300,
    }
}

// Views and view changes.

#[test]
fn boxes_join_one_view_change_each_and_all_read_the_same_view() {
    let c = Cluster::running(&[1, 2, 3]);
    let history = c.store.history();
    assert_eq!(history.len(), 3);
    let reasons: Vec<_> = history
        .iter()
        .map(|v| Reason::from_code(v.reason()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            Some(Reason::Joined(m(1, 1))),
            Some(Reason::Joined(m(2, 1))),
            Some(Reason::Joined(m(3, 1)))
        ]
    );
    for id in 1..=3 {
        assert_eq!(c.boxes[&id].view(), history.last());
    }
}

#[test]
fn two_survivors_racing_to_remove_the_same_dead_box_commit_one_view_change() {
    let mut c = Cluster::running(&[1, 2, 3]);
    let store = c.store.clone();
    // Both survivors read view 3 and judge box 3 in the same instant.
    let mut proposals = Vec::new();
    for id in [1, 2] {
        let b = c.machine(id);
        refresh(b, &store).unwrap();
        b.handle_verdict(verdict(m(3, 1)));
        proposals.push(b.poll_proposal().expect("box 3 must go"));
    }
    assert_eq!(proposals[0], proposals[1], "same view, same proposal");
    for (id, p) in [1, 2].into_iter().zip(proposals) {
        let result = store.propose(id, p.expected, &p.members, p.reason);
        c.machine(id).handle_proposal_result(result);
    }
    // The loser re-read view 4 and has nothing left to propose.
    assert_eq!(c.machine(2).poll_proposal(), None);
    assert_eq!(c.store.history().len(), 4, "one removal committed");
    for id in [1, 2] {
        c.tick(id);
        let changes = c.changes(id);
        let removals: Vec<_> = changes.iter().filter(|ch| !ch.left.is_empty()).collect();
        assert_eq!(removals.len(), 1, "box {id} acts on one change");
        assert_eq!(removals[0].left, vec![m(3, 1)]);
        assert_eq!(removals[0].reason, Some(silent(m(3, 1))));
    }
}

#[test]
fn two_boxes_dying_together_are_removed_by_one_view_change_each() {
    let mut c = Cluster::running(&[1, 2, 3, 4]);
    let store = c.store.clone();
    let b = c.machine(1);
    refresh(b, &store).unwrap();
    b.handle_verdict(verdict(m(4, 1)));
    b.handle_verdict(verdict(m(3, 1)));
    propose(b, &store);
    c.tick(1);
    let left: Vec<_> = c.changes(1).into_iter().map(|ch| ch.left).collect();
    assert_eq!(left[left.len() - 2..], [vec![m(3, 1)], vec![m(4, 1)]]);
    assert_eq!(c.members(), vec![m(1, 1), m(2, 1)]);
}

#[test]
fn a_verdict_about_another_epoch_than_the_views_is_dropped() {
    let mut c = Cluster::running(&[1, 2]);
    c.judge(1, m(2, 7), 300);
    assert_eq!(c.members(), vec![m(1, 1), m(2, 1)]);
}

#[test]
fn a_box_that_missed_views_reports_each_change_in_order() {
    let mut c = Cluster::running(&[1, 2, 3, 4]);
    c.judge(2, m(4, 1), 300);
    c.judge(2, m(3, 1), 450);
    c.tick(1);
    let late: Vec<_> = c.changes(1).into_iter().rev().take(2).rev().collect();
    assert_eq!(late, c.changes(2)[c.changes(2).len() - 2..].to_vec());
    assert_eq!(late[0].left, vec![m(4, 1)]);
    assert_eq!(late[0].members, vec![m(1, 1), m(2, 1), m(3, 1)]);
    assert_eq!(late[1].left, vec![m(3, 1)]);
    assert_eq!(
        late[1].to_string(),
        "view 5 → 6: box 3 (epoch 1) silent for 450 ms; left [3/1]; joined []; members [1/1, 2/1]"
    );
    assert_eq!(
        (late[1].from, late[1].number),
        (ViewNumber(5), ViewNumber(6))
    );
}

#[test]
fn a_box_that_missed_more_views_than_the_store_remembers_reports_one_merged_change() {
    let mut c = Cluster::running(&[1, 2]);
    for epoch in 2..=6 {
        c.start(m(3, epoch));
    }
    c.tick(1);
    let last = c.changes(1).pop().unwrap();
    assert_eq!(last.reason, None, "the reasons in between are gone");
    assert_eq!((last.from, last.number), (ViewNumber(2), ViewNumber(7)));
    assert_eq!(last.joined, vec![m(3, 6)]);
    assert!(last.left.is_empty());
}

// Joining: not judged before the dataplane is up and the first beat.

#[test]
fn a_restarted_box_is_not_judged_until_its_dataplane_is_up_and_it_has_beaten_once() {
    let mut c = Cluster::running(&[1, 2, 3]);
    c.judge(1, m(3, 1), 300);
    // Box 3 comes back; its receive rings take long to allocate.
    c.boot(m(3, 2));
    c.judge(1, m(3, 2), 150);
    c.tick(3);
    assert_eq!(c.phase(3), Phase::Starting);
    assert_eq!(
        c.members(),
        vec![m(1, 1), m(2, 1)],
        "not judged, not a member"
    );
    c.machine(3).handle_dataplane_up();
    c.tick(3);
    assert_eq!(c.phase(3), Phase::Starting, "up but not beaten yet");
    c.machine(3).handle_beat();
    c.tick(3);
    assert_eq!(c.phase(3), Phase::Member);
    assert!(c.events[&3].contains(&Event::Admitted {
        view: ViewNumber(5)
    }));
    // Now it is a member, and it can be judged.
    c.judge(1, m(3, 2), 300);
    assert_eq!(c.members(), vec![m(1, 1), m(2, 1)]);
}

#[test]
fn a_joining_box_does_not_judge_its_peers() {
    let mut c = Cluster::running(&[1, 2]);
    c.boot(m(3, 1));
    c.judge(3, m(2, 1), 300);
    assert_eq!(c.members(), vec![m(1, 1), m(2, 1)]);
}

#[test]
fn a_box_that_restarted_faster_than_detection_replaces_its_old_incarnation_in_one_change() {
    let mut c = Cluster::running(&[1, 2, 3]);
    c.start(m(2, 2));
    c.tick(1);
    let change = c.changes(1).pop().unwrap();
    assert_eq!(
        (change.left.clone(), change.joined.clone()),
        (vec![m(2, 1)], vec![m(2, 2)])
    );
    assert_eq!(change.reason, Some(Reason::Joined(m(2, 2))));
    // It takes its addresses back and restores nothing of its past.
    assert_eq!(address_heir(&change, 2), Some(2));
    assert!(!change.died(2));
    assert_eq!(survivors(&change), vec![1, 3]);
}

// Fencing by view.

#[test]
fn a_box_outside_the_committed_view_fences_itself_whatever_its_age() {
    let mut c = Cluster::running(&[1, 2]);
    // Box 3 has just joined: a mark in its first moments counts too.
    c.start(m(3, 1));
    c.judge(1, m(3, 1), 300);
    c.tick(3);
    assert_eq!(c.phase(3), Phase::Fenced);
    assert_eq!(
        c.fences(3),
        vec![Event::Fence(Fence::Removed {
            view: ViewNumber(4),
            reason: Some(silent(m(3, 1))),
        })]
    );
    // A fenced box proposes nothing and reports nothing more.
    let reported = c.events[&3].len();
    c.machine(3).handle_verdict(verdict(m(1, 1)));
    assert_eq!(c.machine(3).poll_proposal(), None);
    c.start(m(2, 2));
    c.tick(3);
    assert_eq!(c.events[&3].len(), reported);
}

#[test]
fn a_box_that_missed_its_removal_names_the_change_that_removed_it() {
    let mut c = Cluster::running(&[1, 2, 3]);
    c.judge(1, m(3, 1), 300);
    c.start(m(4, 1));
    c.tick(3);
    let fence = Fence::Removed {
        view: ViewNumber(4),
        reason: Some(silent(m(3, 1))),
    };
    assert_eq!(c.fences(3), vec![Event::Fence(fence)]);
    assert_eq!(
        fence.to_string(),
        "view 4 removed this box (box 3 (epoch 1) silent for 300 ms)"
    );
}

#[test]
fn a_box_not_yet_admitted_is_not_fenced_by_a_view_without_it() {
    let mut c = Cluster::running(&[1, 2]);
    c.boot(m(3, 1));
    c.start(m(4, 1));
    c.tick(3);
    assert_eq!(c.phase(3), Phase::Starting);
}

#[test]
fn a_view_naming_this_box_with_a_newer_epoch_fences_the_old_incarnation() {
    let mut c = Cluster::running(&[1, 2]);
    // The old incarnation of box 2 was stopped, not killed; a new one joined.
    let mut zombie = c.boxes.remove(&2).unwrap();
    c.start(m(2, 2));
    refresh(&mut zombie, &c.store).unwrap();
    assert_eq!(zombie.phase(), Phase::Fenced);
    assert_eq!(
        zombie.poll_event(),
        Some(Event::Fence(Fence::Superseded {
            view: ViewNumber(3),
            epoch: 2
        }))
    );
    // Even one that was never admitted.
    let mut early = Membership::new(m(2, 1));
    refresh(&mut early, &c.store).unwrap();
    assert_eq!(early.phase(), Phase::Fenced);
}

// What every survivor computes from a change.

#[test]
fn every_survivor_computes_the_same_split_from_the_same_change() {
    let mut c = Cluster::running(&[1, 2, 3, 4]);
    c.judge(3, m(2, 1), 300);
    for id in [1, 3, 4] {
        c.tick(id);
    }
    let changes: Vec<_> = [1, 3, 4].map(|id| c.changes(id).pop().unwrap()).into();
    assert!(changes.windows(2).all(|w| w[0] == w[1]));
    for change in &changes {
        assert!(change.died(2));
        assert_eq!(survivors(change), vec![1, 3, 4]);
        let owners: Vec<_> = (0..7).map(|i| orphan_owner(change, i).unwrap()).collect();
        assert_eq!(
            owners,
            vec![1, 3, 4, 1, 3, 4, 1],
            "orphan i goes to survivor i mod n"
        );
        assert_eq!(address_heir(change, 2), Some(1), "the lowest surviving id");
        assert_eq!(address_heir(change, 4), None, "box 4 did not leave");
    }
}

#[test]
fn the_last_box_standing_owns_everything_and_an_empty_view_owns_nothing() {
    let mut c = Cluster::running(&[5, 9]);
    c.judge(9, m(5, 1), 300);
    let change = c.changes(9).pop().unwrap();
    assert_eq!(orphan_owner(&change, 41), Some(9));
    assert_eq!(address_heir(&change, 5), Some(9));
    let nobody = baton_membership::ViewChange {
        members: Vec::new(),
        ..change
    };
    assert_eq!(orphan_owner(&nobody, 0), None);
    assert_eq!(address_heir(&nobody, 5), None);
}

// The shared segment's cell as the store.

#[test]
fn two_boxes_on_one_host_agree_through_the_segment_cell() {
    use baton_shmem::{Layout, Segment, ViewCell};
    let path = std::env::temp_dir().join(format!("baton-membership-{}.seg", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let layout = Layout {
        regions: 4,
        slots_per_region: 4,
        slot_size: baton_shmem::SLOT_SIZE as u32,
    };
    let s1 = SegmentStore::new(ViewCell::new(
        &Segment::open_or_create(&path, layout).unwrap(),
    ));
    let s2 = SegmentStore::new(ViewCell::new(&Segment::open_existing(&path).unwrap()));
    let _ = std::fs::remove_file(&path);
    let mut boxes = [
        (Membership::new(m(1, 1)), &s1),
        (Membership::new(m(2, 1)), &s2),
        (Membership::new(m(3, 1)), &s2),
    ];
    for (b, s) in boxes.iter_mut() {
        b.handle_dataplane_up();
        b.handle_beat();
        baton_membership::sync(b, *s).unwrap();
    }
    for (b, s) in boxes.iter_mut() {
        refresh(b, *s).unwrap();
    }
    // Boxes 1 and 2 race to remove box 3, each through its own mapping.
    let p1 = {
        boxes[0].0.handle_verdict(verdict(m(3, 1)));
        boxes[0].0.poll_proposal().unwrap()
    };
    let p2 = {
        boxes[1].0.handle_verdict(verdict(m(3, 1)));
        boxes[1].0.poll_proposal().unwrap()
    };
    let r1 = s1.propose(1, p1.expected, &p1.members, p1.reason);
    let r2 = s2.propose(2, p2.expected, &p2.members, p2.reason);
    assert!(r1.is_ok());
    assert!(matches!(r2, Err(StoreError::Conflict { .. })));
    boxes[0].0.handle_proposal_result(r1);
    boxes[1].0.handle_proposal_result(r2);
    assert_eq!(boxes[1].0.poll_proposal(), None);
    assert_eq!(boxes[0].0.view(), boxes[1].0.view());
    refresh(&mut boxes[2].0, &s1).unwrap();
    assert_eq!(boxes[2].0.phase(), Phase::Fenced);
}
