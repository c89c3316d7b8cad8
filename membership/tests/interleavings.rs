//! Random interleavings of verdicts (true and false), kills, restarts,
//! slow start-ups and racing proposals across four simulated boxes that
//! share one view store: whatever the order, views are totally ordered,
//! each view is one change, each member leaves at most once, every box
//! that reads view n reads the same members, and no box outside the view
//! goes on as a member.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use baton_membership::{
    refresh, Event, Member, Membership, MemoryStore, Phase, Proposal, Reason, Verdict, View,
    ViewChange, ViewStore,
};
use proptest::prelude::*;

const BOXES: u16 = 4;

#[derive(Debug, Clone)]
enum Op {
    /// A new incarnation of a box that is not running.
    Start(u16),
    /// Its dataplane comes up and it beats.
    Up(u16),
    /// SIGKILL.
    Kill(u16),
    /// A control tick's read of the store.
    Refresh(u16),
    /// `judge`'s detector says `peer` was silent (true or not); `stale`
    /// names the previous incarnation.
    Judge { judge: u16, peer: u16, stale: bool },
    /// The box takes its next proposal...
    Poll(u16),
    /// ...and, maybe after others' steps, sends it to the store.
    Submit(u16),
    /// A whole control tick: read, propose, learn the outcome.
    Tick(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let id = 1..=BOXES;
    prop_oneof![
        2 => id.clone().prop_map(Op::Start),
        2 => id.clone().prop_map(Op::Up),
        1 => id.clone().prop_map(Op::Kill),
        2 => id.clone().prop_map(Op::Refresh),
        4 => (id.clone(), id.clone(), proptest::bool::weighted(0.2))
            .prop_map(|(judge, peer, stale)| Op::Judge { judge, peer, stale }),
        2 => id.clone().prop_map(Op::Poll),
        2 => id.clone().prop_map(Op::Submit),
        4 => id.prop_map(Op::Tick),
    ]
}

struct Incarnation {
    machine: Membership,
    pending: Option<Proposal>,
    events: Vec<Event>,
    up: bool,
}

struct Sim {
    store: MemoryStore,
    epochs: BTreeMap<u16, u32>,
    live: BTreeMap<u16, Incarnation>,
    /// Every incarnation's events, live or gone, by member.
    logs: BTreeMap<Member, Vec<Event>>,
    ups: BTreeSet<Member>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            store: MemoryStore::new(),
            epochs: BTreeMap::new(),
            live: BTreeMap::new(),
            logs: BTreeMap::new(),
            ups: BTreeSet::new(),
        }
    }

    fn retire(&mut self, id: u16) {
        if let Some(i) = self.live.remove(&id) {
            let me = i.machine.me();
            self.logs.insert(me, i.events);
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Start(id) => {
                if self.live.contains_key(&id) {
                    return;
                }
                let epoch = self.epochs.entry(id).or_insert(0);
                *epoch += 1;
                let mut machine = Membership::new(Member { id, epoch: *epoch });
                refresh(&mut machine, &self.store).unwrap();
                self.live.insert(
                    id,
                    Incarnation {
                        machine,
                        pending: None,
                        events: Vec::new(),
                        up: false,
                    },
                );
            }
            Op::Up(id) => {
                if let Some(i) = self.live.get_mut(&id) {
                    i.machine.handle_dataplane_up();
                    i.machine.handle_beat();
                    i.up = true;
                    self.ups.insert(i.machine.me());
                }
            }
            Op::Kill(id) => self.retire(id),
            Op::Refresh(id) => {
                if let Some(i) = self.live.get_mut(&id) {
                    refresh(&mut i.machine, &self.store).unwrap();
                }
            }
            Op::Judge { judge, peer, stale } => {
                let Some(&epoch) = self.epochs.get(&peer) else {
                    return;
                };
                let epoch = if stale {
                    epoch.saturating_sub(1).max(1)
                } else {
                    epoch
                };
                if let Some(i) = self.live.get_mut(&judge) {
                    i.machine.handle_verdict(Verdict {
                        peer: Member { id: peer, epoch },
                        silent_for: Duration::from_millis(300),
                    });
                }
            }
            Op::Poll(id) => {
                if let Some(i) = self.live.get_mut(&id) {
                    if i.pending.is_none() {
                        i.pending = i.machine.poll_proposal();
                    }
                }
            }
            Op::Tick(id) => {
                if let Some(i) = self.live.get_mut(&id) {
                    if i.pending.is_none() {
                        baton_membership::sync(&mut i.machine, &self.store).unwrap();
                    }
                }
            }
            Op::Submit(id) => {
                if let Some(i) = self.live.get_mut(&id) {
                    if let Some(p) = i.pending.take() {
                        let r = self.store.propose(id, p.expected, &p.members, p.reason);
                        i.machine.handle_proposal_result(r);
                    }
                }
            }
        }
        self.drain();
    }

    /// Collects events; a fenced box exits, as the appliance's would.
    fn drain(&mut self) {
        let mut fenced = Vec::new();
        for (&id, i) in self.live.iter_mut() {
            while let Some(e) = i.machine.poll_event() {
                i.events.push(e);
            }
            if i.machine.phase() == Phase::Fenced {
                fenced.push(id);
            }
        }
        for id in fenced {
            self.retire(id);
        }
    }

    fn finish(&mut self) {
        let ids: Vec<u16> = self.live.keys().copied().collect();
        for id in ids {
            self.step(&Op::Refresh(id));
        }
        let ids: Vec<u16> = self.live.keys().copied().collect();
        for id in ids {
            self.retire(id);
        }
    }
}

fn diff(before: &View, after: &View) -> (Vec<Member>, Vec<Member>) {
    let left = before
        .members
        .iter()
        .copied()
        .filter(|m| !after.members.contains(m))
        .collect();
    let joined = after
        .members
        .iter()
        .copied()
        .filter(|m| !before.members.contains(m))
        .collect();
    (left, joined)
}

fn check(sim: &Sim) -> Result<(), TestCaseError> {
    let history = sim.store.history();
    let view = |n: u32| {
        if n == 0 {
            View::default()
        } else {
            history[n as usize - 1].clone()
        }
    };
    // Views are totally ordered and each is exactly the one change its
    // reason names.
    let mut left_once = BTreeSet::new();
    let mut joined_once = BTreeSet::new();
    for (i, v) in history.iter().enumerate() {
        prop_assert_eq!(v.number.0 as usize, i + 1);
        let before = view(i as u32);
        let reason = Reason::from_code(v.reason());
        prop_assert!(reason.is_some());
        prop_assert_eq!(&reason.unwrap().apply(&before.members), &v.members);
        prop_assert_ne!(&before.members, &v.members, "a view that changes nothing");
        let (left, joined) = diff(&before, v);
        for m in left {
            prop_assert!(left_once.insert(m), "{:?} removed twice", m);
        }
        for m in joined {
            prop_assert!(joined_once.insert(m), "{:?} admitted twice", m);
            prop_assert!(
                sim.ups.contains(&m),
                "{:?} admitted before its dataplane was up",
                m
            );
        }
    }
    for (me, events) in &sim.logs {
        let changes: Vec<&ViewChange> = events
            .iter()
            .filter_map(|e| match e {
                Event::Committed(c) => Some(c),
                _ => None,
            })
            .collect();
        // Each box reports changes as a chain: none twice, none skipped.
        for w in changes.windows(2) {
            prop_assert_eq!(
                w[0].number,
                w[1].from,
                "{:?} skipped or repeated a view",
                me
            );
        }
        // Every box that read view n read the same members as the store.
        for c in changes {
            let (after, before) = (view(c.number.0), view(c.from.0));
            prop_assert_eq!(&c.members, &after.members);
            let (left, joined) = diff(&before, &after);
            prop_assert_eq!(&c.left, &left);
            prop_assert_eq!(&c.joined, &joined);
        }
        // Admitted exactly when some view held it; fenced only once out.
        let admitted = events.iter().any(|e| matches!(e, Event::Admitted { .. }));
        prop_assert_eq!(admitted, joined_once.contains(me));
        let fenced = events.iter().any(|e| matches!(e, Event::Fence(_)));
        let in_last = history.last().is_some_and(|v| v.contains(*me));
        prop_assert!(!(fenced && in_last), "{:?} fenced while in the view", me);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_interleaving_of_deaths_restarts_and_races_keeps_one_agreed_history(
        ops in proptest::collection::vec(op(), 0..160)
    ) {
        let mut sim = Sim::new();
        // A running cluster first, then chaos.
        for id in 1..=BOXES {
            sim.step(&Op::Start(id));
            sim.step(&Op::Up(id));
            sim.step(&Op::Poll(id));
            sim.step(&Op::Submit(id));
        }
        let mut live_members_checked = 0;
        for op in &ops {
            sim.step(op);
            // A live box that calls itself a member is in the view it read.
            for i in sim.live.values() {
                if i.machine.phase() == Phase::Member {
                    let v = i.machine.view().expect("a member has read a view");
                    prop_assert!(v.contains(i.machine.me()));
                    live_members_checked += 1;
                }
            }
        }
        sim.finish();
        check(&sim)?;
        let _ = live_members_checked;
    }
}
