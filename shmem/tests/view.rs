//! The membership view cell: one committed view per number, read whole by
//! everyone, across threads and across mappings, and never misread from
//! bytes no proposer wrote.

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use baton_shmem::{
    InvalidProposal, Layout, Member, ProposeError, Segment, View, ViewCell, ViewError, ViewNumber,
    MAX_MEMBERS,
};
use common::TempSeg;
use proptest::prelude::*;

const LAYOUT: Layout = Layout {
    regions: 4,
    slots_per_region: 8,
    slot_size: baton_shmem::SLOT_SIZE as u32,
};

fn m(id: u16, epoch: u32) -> Member {
    Member { id, epoch }
}

fn cell(seg: &TempSeg) -> ViewCell {
    ViewCell::new(&Segment::open_or_create(seg.path(), LAYOUT).unwrap())
}

/// Writes raw bytes into the segment file, as a foreign or stale writer would.
fn scribble(seg: &TempSeg, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(seg.path()).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

#[test]
fn a_new_segment_holds_the_empty_view_zero() {
    let seg = TempSeg::new("view-empty");
    assert_eq!(cell(&seg).read(), Ok(View::default()));
}

#[test]
fn a_proposal_over_the_current_number_commits_the_next_view() {
    let seg = TempSeg::new("view-commit");
    let c = cell(&seg);
    let v1 = c.propose(1, ViewNumber(0), &[m(2, 1), m(1, 1)], 7).unwrap();
    assert_eq!(v1.number, ViewNumber(1));
    assert_eq!(v1.members, vec![m(1, 1), m(2, 1)], "sorted by id");
    assert_eq!(c.read(), Ok(v1.clone()));
    let v2 = c.propose(2, ViewNumber(1), &[m(2, 1)], 8).unwrap();
    assert_eq!(c.read(), Ok(v2.clone()));
    assert_eq!(
        (v2.number, v2.proposer, v2.reasons),
        (ViewNumber(2), 2, [8, 7, 0, 0])
    );
}

#[test]
fn a_proposal_over_a_stale_number_loses_and_learns_the_committed_view() {
    let seg = TempSeg::new("view-stale");
    let c = cell(&seg);
    let v1 = c.propose(1, ViewNumber(0), &[m(1, 1), m(2, 1)], 0).unwrap();
    let lost = c.propose(2, ViewNumber(0), &[m(2, 1)], 0);
    assert_eq!(
        lost,
        Err(ProposeError::Conflict {
            current: v1.clone()
        })
    );
    assert_eq!(c.read(), Ok(v1));
}

#[test]
fn proposals_the_cell_cannot_hold_are_refused_before_touching_it() {
    let seg = TempSeg::new("view-invalid");
    let c = cell(&seg);
    let max = MAX_MEMBERS as u16;
    let cases = [
        (max, vec![m(1, 1)], InvalidProposal::Proposer(max)),
        (1, vec![m(max, 1)], InvalidProposal::MemberId(max)),
        (1, vec![m(1, 0)], InvalidProposal::ZeroEpoch(1)),
        (1, vec![m(1, 1), m(1, 2)], InvalidProposal::Duplicate(1)),
    ];
    for (proposer, members, why) in cases {
        assert_eq!(
            c.propose(proposer, ViewNumber(0), &members, 0),
            Err(ProposeError::Invalid(why))
        );
    }
    assert_eq!(c.read(), Ok(View::default()));
}

#[test]
fn two_mappings_of_one_file_see_one_view_and_one_winner() {
    let seg = TempSeg::new("view-two-maps");
    let box1 = cell(&seg);
    let box2 = ViewCell::new(&Segment::open_existing(seg.path()).unwrap());
    let v1 = box1
        .propose(1, ViewNumber(0), &[m(1, 1), m(2, 1)], 0)
        .unwrap();
    assert_eq!(box2.read(), Ok(v1.clone()));
    // Both saw view 1 and both want to remove the other: one commit.
    let a = box1.propose(1, ViewNumber(1), &[m(1, 1)], 0);
    let b = box2.propose(2, ViewNumber(1), &[m(2, 1)], 0);
    assert!(a.is_ok());
    assert_eq!(
        b,
        Err(ProposeError::Conflict {
            current: a.clone().unwrap()
        })
    );
    assert_eq!(box2.read(), box1.read());
}

#[test]
fn a_proposer_that_died_while_staging_leaves_the_committed_view_readable() {
    let seg = TempSeg::new("view-died-staging");
    let c = cell(&seg);
    let v1 = c.propose(3, ViewNumber(0), &[m(3, 1)], 0).unwrap();
    // Proposer 1's record for an even view: seqlock odd, garbage members.
    let rec = 128 + 2 * 112;
    scribble(&seg, rec, &5u64.to_le_bytes());
    scribble(&seg, rec + 48, &[0xaa; 40]);
    assert_eq!(c.read(), Ok(v1));
    // Its next incarnation moves past the odd seqlock.
    let v2 = c.propose(1, ViewNumber(1), &[m(1, 2), m(3, 1)], 0).unwrap();
    assert_eq!(c.read(), Ok(v2));
}

#[test]
fn a_stale_writer_overwriting_the_committed_record_is_detected_and_repaired_by_the_next_proposal() {
    let seg = TempSeg::new("view-stale-writer");
    let c = cell(&seg);
    c.propose(2, ViewNumber(0), &[m(1, 1), m(2, 1)], 0).unwrap();
    // Proposer 2's record for view 1 (odd parity): change member 1's epoch
    // under the same number, with an even seqlock, as a stopped-then-resumed
    // old incarnation would.
    let rec = 128 + (2 * 2 + 1) * 112;
    scribble(&seg, rec + 48 + 4, &9u32.to_le_bytes());
    assert_eq!(
        c.read(),
        Err(ViewError::Unreadable {
            number: ViewNumber(1),
            proposer: 2
        })
    );
    let v2 = c.propose(1, ViewNumber(1), &[m(1, 1)], 0).unwrap();
    assert_eq!(c.read(), Ok(v2));
}

#[test]
fn each_view_carries_the_reasons_of_the_three_views_before_it() {
    let seg = TempSeg::new("view-reasons");
    let c = cell(&seg);
    let mut v = View::default();
    for reason in 1..=6u64 {
        v = c
            .propose(1, v.number, &[m(1, reason as u32)], reason * 10)
            .unwrap();
    }
    assert_eq!(v.reasons, [60, 50, 40, 30]);
    assert_eq!(v.reason_of(ViewNumber(4)), Some(40));
    assert_eq!(v.reason_of(ViewNumber(2)), None, "too old to be carried");
    assert_eq!(v.reason_of(ViewNumber(7)), None, "not yet committed");
}

#[test]
fn a_foreign_current_word_is_an_error() {
    let seg = TempSeg::new("view-foreign");
    let c = cell(&seg);
    scribble(&seg, 64, &0x0000_0000_0000_00ffu64.to_le_bytes());
    assert!(matches!(c.read(), Err(ViewError::Corrupt { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever bytes fill the cell, reading gives a view or an error, and
    /// a view it gives is one a proposer could have written.
    #[test]
    fn arbitrary_bytes_in_the_cell_never_panic_or_give_an_impossible_view(
        bytes in proptest::collection::vec(any::<u8>(), 4096 - 64),
        pick in 0usize..3,
    ) {
        let seg = TempSeg::new("view-garbage");
        let c = cell(&seg);
        scribble(&seg, 64, &bytes);
        if pick == 0 {
            // A plausible current word over garbage records.
            scribble(&seg, 64, &((5u64 << 32) | (3 << 24) | 0x1234).to_le_bytes());
        }
        if let Ok(v) = c.read() {
            let mut ids: Vec<u16> = v.ids().collect();
            ids.dedup();
            prop_assert_eq!(ids.len(), v.members.len());
            prop_assert!(v.members.iter().all(|m| (m.id as usize) < MAX_MEMBERS && m.epoch != 0));
            prop_assert!(v.members.windows(2).all(|w| w[0].id < w[1].id));
        }
    }
}

/// Members that encode their view: a reader can tell a torn mix of two
/// views from a whole one.
fn signed_members(number: u32, proposer: u16) -> Vec<Member> {
    let mut out = vec![m(proposer, number)];
    if proposer != 0 {
        out.push(m(0, number.wrapping_mul(2_654_435_761) | 1));
    }
    out.push(m(15, number ^ 0x5a5a_0000 | 1));
    out.sort();
    out
}

fn is_signed(v: &View) -> bool {
    v.members == signed_members(v.number.0, v.proposer)
}

#[test]
fn concurrent_proposers_commit_each_number_once_and_readers_see_whole_growing_views() {
    const PROPOSERS: u16 = 6;
    const READERS: usize = 2;
    const COMMITS_EACH: usize = 2_000;
    let seg = TempSeg::new("view-stress");
    let c = cell(&seg);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(PROPOSERS as usize + READERS));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (c, stop, start) = (c.clone(), stop.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut last = ViewNumber(0);
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let v = c.read().expect("a live cell is always readable");
                    assert!(v.number >= last, "view numbers only grow");
                    assert!(v.number.0 == 0 || is_signed(&v), "torn view {v:?}");
                    assert!(v.number.0 == 0 || v.reason() == v.proposer as u64);
                    last = v.number;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let proposers: Vec<_> = (1..=PROPOSERS)
        .map(|p| {
            let (c, start) = (c.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut won = Vec::new();
                let mut expected = ViewNumber(0);
                while won.len() < COMMITS_EACH {
                    let next = expected.0 + 1;
                    match c.propose(p, expected, &signed_members(next, p), p as u64) {
                        Ok(v) => {
                            assert_eq!(v.number.0, next);
                            won.push(next);
                            expected = v.number;
                        }
                        Err(ProposeError::Conflict { current }) => {
                            assert!(
                                current.number > expected
                                    || expected.0 == 0
                                    || current.number >= expected
                            );
                            assert!(is_signed(&current));
                            expected = current.number;
                        }
                        Err(e) => panic!("proposer {p}: {e}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut committed: BTreeMap<u32, usize> = BTreeMap::new();
    for h in proposers {
        for n in h.join().unwrap() {
            *committed.entry(n).or_default() += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in readers {
        assert!(h.join().unwrap() > 0);
    }
    let total = PROPOSERS as usize * COMMITS_EACH;
    assert!(
        committed.values().all(|&k| k == 1),
        "a number committed twice"
    );
    assert_eq!(
        committed.keys().copied().collect::<Vec<_>>(),
        (1..=total as u32).collect::<Vec<_>>(),
        "every number from 1 on committed, none skipped"
    );
    let last = c.read().unwrap();
    assert_eq!(last.number.0, total as u32);
    assert!(is_signed(&last));
}

#[test]
fn boxes_on_two_mappings_racing_proposals_agree_on_every_view() {
    let seg = TempSeg::new("view-stress-maps");
    let first = cell(&seg);
    let maps: Vec<ViewCell> = (0..3)
        .map(|i| {
            if i == 0 {
                first.clone()
            } else {
                ViewCell::new(&Segment::open_existing(seg.path()).unwrap())
            }
        })
        .collect();
    let handles: Vec<_> = maps
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            std::thread::spawn(move || {
                let p = i as u16 + 1;
                let mut seen = BTreeMap::new();
                let mut expected = ViewNumber(0);
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while expected.0 < 600 && std::time::Instant::now() < deadline {
                    match c.propose(p, expected, &signed_members(expected.0 + 1, p), 0) {
                        Ok(v) | Err(ProposeError::Conflict { current: v }) => {
                            assert!(v.number > expected);
                            seen.insert(v.number.0, v.clone());
                            expected = v.number;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                seen
            })
        })
        .collect();
    let seen: Vec<BTreeMap<u32, View>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // Whoever read view n, on whichever mapping, read the same members.
    for a in &seen {
        for b in &seen {
            for (n, v) in a {
                if let Some(w) = b.get(n) {
                    assert_eq!(v, w, "view {n} read differently");
                }
            }
        }
    }
}

const CHILD_ENV: &str = "BATON_VIEW_TEST_PROPOSER";

/// A proposer process: proposes signed views over whatever it reads, until
/// it is killed.
fn propose_forever(path: &std::path::Path, me: u16) -> ! {
    let c = ViewCell::new(&Segment::open_existing(path).unwrap());
    loop {
        let expected = match c.read() {
            Ok(v) => v.number,
            Err(e) => panic!("proposer {me}: {e}"),
        };
        let next = expected.0 + 1;
        let _ = c.propose(me, expected, &signed_members(next, me), me as u64);
    }
}

#[test]
fn proposers_killed_at_any_instant_never_leave_a_torn_or_unreadable_view() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        let (path, me) = role.split_once(':').unwrap();
        propose_forever(std::path::Path::new(path), me.parse().unwrap());
    }
    let seg = TempSeg::new("view-sigkill");
    let c = cell(&seg);
    let exe = std::env::current_exe().unwrap();
    let spawn = |me: u16| {
        std::process::Command::new(&exe)
            .args([
                "--exact",
                "proposers_killed_at_any_instant_never_leave_a_torn_or_unreadable_view",
                "--nocapture",
            ])
            .env(CHILD_ENV, format!("{}:{me}", seg.path().display()))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut children: Vec<_> = (1..=3u16).map(|me| (me, spawn(me))).collect();
    let mut last = ViewNumber(0);
    let mut kills = 0;
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    let mut tick = 0u64;
    while std::time::Instant::now() < deadline {
        let v = c.read().expect("the cell stays readable");
        assert!(v.number >= last, "view numbers only grow");
        assert!(v.number.0 == 0 || is_signed(&v), "torn view {v:?}");
        last = v.number;
        tick += 1;
        if tick.is_multiple_of(2_000) {
            // SIGKILL one proposer wherever it is (staging, between staging
            // and CAS, or after), then start its next incarnation.
            let (me, child) = &mut children[(tick / 2_000) as usize % 3];
            child.kill().unwrap();
            child.wait().unwrap();
            *child = spawn(*me);
            kills += 1;
        }
    }
    for (_, mut child) in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let v = c.read().unwrap();
    assert!(is_signed(&v));
    assert!(
        kills > 0 && v.number.0 > 100,
        "{kills} kills, {} views",
        v.number
    );
}
