//! Load-aware placement on the box (issue 20, `takeover.assignment =
//! "least_loaded"`): the loads this box commits with a removal it
//! proposes, read from the box table, and the one log line that says how
//! a committed change's orphans are split and why.
//!
//! The split itself is `baton_membership::split_of`, a function of the
//! committed change alone; this module only gathers its inputs for a
//! proposal. It must not know how a split is carried out (`takeover`)
//! nor how the view is stored.
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use baton_membership::{ChangeLoads, MemberLoad, Proposal, Reason, Split, ViewChange};
use baton_shmem::Segment;
use tracing::{error, info};

use super::routes::routes_from_claims;
use super::takeover::Plan;
use crate::orphans::OrphanTable;

/// Reads the loads a least_loaded box commits with its removals.
#[derive(Debug, Clone)]
pub(crate) struct LoadReader {
    segment: Segment,
    capacity: u32,
}

impl LoadReader {
    /// Loads read from `segment`'s box table (this box's copy of it: the
    /// segment, or its replicas of the peers' entries), for a box sized
    /// for `capacity` connections (`takeover.capacity`).
    pub(crate) fn new(segment: Segment, capacity: u64) -> LoadReader {
        LoadReader {
            segment,
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
        }
    }

    /// The loads to commit with `proposal`: for a removal, each remaining
    /// member's connections and busy fraction and the removed box's
    /// connection count (the orphans); `None` for a join, which has no
    /// orphans to split.
    pub(crate) fn loads_for(&self, proposal: &Proposal) -> Option<ChangeLoads> {
        let Reason::Silent { member, .. } = proposal.reason else {
            return None;
        };
        let count = |c: i64| u32::try_from(c.max(0)).unwrap_or(u32::MAX);
        let orphans = self
            .segment
            .box_info(member.id)
            .map(|i| count(i.connections))
            .unwrap_or(0);
        let mut members: Vec<MemberLoad> = proposal
            .members
            .iter()
            .map(|m| {
                let info = self.segment.box_info(m.id).ok();
                MemberLoad {
                    id: m.id,
                    connections: info.as_ref().map_or(0, |i| count(i.connections)),
                    busy_ppm: info
                        .and_then(|i| i.load)
                        .map_or(0, |l| l.busy_ppm.min(1_000_000)),
                }
            })
            .collect();
        members.sort_unstable_by_key(|m| m.id);
        members.dedup_by_key(|m| m.id);
        Some(ChangeLoads {
            capacity: self.capacity,
            orphans,
            members,
        })
    }
}

/// Logs how `change`'s orphans of box `dead` are split: `split` (from the
/// change), how many this box and every other survivor take (`taken`:
/// per survivor id, the orphans planned for it here) and why.
pub(crate) fn log_split(change: &ViewChange, dead: u16, split: &Split, taken: &[(u16, usize)]) {
    let counts = taken
        .iter()
        .map(|(id, n)| format!("box {id}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    match (split, &change.loads) {
        (Split::RoundRobin(_), _) => info!(
            view = change.number.0,
            dead,
            "orphans split round-robin by slot (the change carries no loads): {counts}"
        ),
        (Split::LeastLoaded(shares), baton_membership::CommittedLoads::Read(l)) => {
            let loads = l
                .members
                .iter()
                .map(|m| {
                    format!(
                        "box {} {} conns {}% busy",
                        m.id,
                        m.connections,
                        m.busy_ppm / 10_000
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let shares = shares
                .iter()
                .map(|(id, n)| format!("box {id}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            info!(
                view = change.number.0,
                dead,
                orphans = l.orphans,
                capacity = l.capacity,
                "orphans split by load (loads committed with the change: {loads}; shares {shares}): {counts}"
            )
        }
        (Split::LeastLoaded(_), _) => {}
        (Split::Unreadable { proposer }, _) => error!(
            view = change.number.0,
            dead,
            proposer,
            "the change says loads were committed with it and this box cannot read them (box {proposer}'s ring): it restores none of box {dead}'s connections rather than guess a split that could leave some to nobody"
        ),
    }
}

/// After an unreadable split, routes `dead`'s connections to whoever
/// claimed them in view `since` or later, a few times over the next
/// second (the others claim as they act on the change, a tick apart), on
/// a thread of its own: the frames this box receives for them (it may be
/// the address heir) reach their new owners instead of a reset.
pub(crate) fn route_by_claims_meanwhile(
    segment: Segment,
    orphans: Arc<OrphanTable>,
    dead: u16,
    me: u16,
    since: u32,
) {
    let _ = thread::Builder::new()
        .name("claims-routes".into())
        .spawn(move || {
            for wait in [20, 80, 200, 700] {
                thread::sleep(Duration::from_millis(wait));
                orphans.extend(routes_from_claims(&segment, dead, me, since));
            }
        });
}

/// How many orphans `plan` gives each survivor, `me` (this box) included,
/// sorted by id.
pub(crate) fn per_owner(plan: &Plan, me: u16) -> Vec<(u16, usize)> {
    let mut counts: std::collections::BTreeMap<u16, usize> = std::collections::BTreeMap::new();
    if !plan.mine.is_empty() {
        counts.insert(me, plan.mine.len());
    }
    for &(_, owner) in &plan.elsewhere {
        *counts.entry(owner).or_default() += 1;
    }
    counts.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use baton_membership::{
        split_of, ChangeLoads, CommittedLoads, Member, MemberLoad, Proposal, Reason, Split,
        ViewChange, ViewNumber,
    };
    use baton_shmem::BoxLoad;

    use super::super::takeover::plan_with;
    use super::super::takeover::tests::{dead_box_with, TempSegment};
    use super::{per_owner, LoadReader};

    fn m(id: u16) -> Member {
        Member { id, epoch: 1 }
    }

    /// Box 1's removal, boxes 2 and 3 surviving, with `loads`.
    fn removal(loads: CommittedLoads) -> ViewChange {
        ViewChange {
            from: ViewNumber(4),
            number: ViewNumber(5),
            left: vec![m(1)],
            joined: vec![],
            members: vec![m(2), m(3)],
            reason: Some(Reason::Silent {
                member: m(1),
                silent_ms: 90,
            }),
            loads,
        }
    }

    fn preloaded_box_2() -> CommittedLoads {
        let load = |id, connections| MemberLoad {
            id,
            connections,
            busy_ppm: 0,
        };
        CommittedLoads::Read(ChangeLoads {
            capacity: 100,
            orphans: 12,
            members: vec![load(2, 40), load(3, 0)],
        })
    }

    #[test]
    fn survivors_of_a_change_with_loads_plan_the_same_split_and_the_preloaded_one_takes_none() {
        let (_file, seg) = TempSegment::new("placement-split");
        dead_box_with(&seg, 12);
        let change = removal(preloaded_box_2());
        let split = split_of(&change);
        let plan = |me: u16| plan_with(&seg, 1, me, &|s| split.owner(s), Some(2));
        let (p2, p3) = (plan(2), plan(3));
        assert_eq!(p2.mine.len(), 0, "box 2 holds 40, box 3 none");
        assert_eq!(p3.mine.len(), 12);
        assert_eq!(per_owner(&p2, 2), vec![(3, 12)]);
        assert_eq!(per_owner(&p3, 3), vec![(3, 12)], "both plan the same split");
    }

    #[test]
    fn without_loads_the_plans_are_round_robin_and_with_unread_loads_nobody_restores() {
        let (_file, seg) = TempSegment::new("placement-rr");
        dead_box_with(&seg, 6);
        let rr = split_of(&removal(CommittedLoads::None));
        let p2 = plan_with(&seg, 1, 2, &|s| rr.owner(s), Some(2));
        assert_eq!(per_owner(&p2, 2), vec![(2, 3), (3, 3)]);
        let unread = split_of(&removal(CommittedLoads::Unread { proposer: 2 }));
        assert_eq!(unread, Split::Unreadable { proposer: 2 });
        let p3 = plan_with(&seg, 1, 3, &|s| unread.owner(s), Some(2));
        assert!(p3.mine.is_empty() && p3.elsewhere.is_empty());
    }

    #[test]
    fn after_an_unreadable_split_the_others_claims_route_their_connections() {
        let (_file, seg) = TempSegment::new("placement-claims");
        dead_box_with(&seg, 4);
        let three = seg.region(3).expect("region 3");
        three
            .set_identity([2, 0, 0, 0, 0, 3], &["198.18.0.13".parse().expect("ip")])
            .expect("identity");
        let dead = seg.region(1).expect("region 1");
        for slot in [0, 2] {
            dead.claim(baton_shmem::SlotId(slot), 3, ViewNumber(5))
                .expect("claim");
        }
        // An older view's claim says nothing of this change.
        dead.claim(baton_shmem::SlotId(3), 3, ViewNumber(4))
            .expect("claim");
        let routes = super::routes_from_claims(&seg, 1, 2, 5);
        let ports: Vec<u16> = routes.iter().map(|(t, _)| t.remote.port()).collect();
        assert_eq!(ports, vec![40_000, 40_002]);
        assert!(routes.iter().all(|(_, r)| matches!(
            r,
            crate::orphans::OrphanRoute::Elsewhere(mac) if mac.0 == [2, 0, 0, 0, 0, 3]
        )));
        assert!(
            super::routes_from_claims(&seg, 1, 3, 5).is_empty(),
            "its own claims"
        );
    }

    #[test]
    fn a_removal_commits_the_box_tables_loads_and_a_join_commits_none() {
        let (_file, seg) = TempSegment::new("placement-reader");
        for (id, conns, busy) in [(1u16, 12i64, 0u32), (2, 40, 250_000), (3, 3, 0)] {
            let r = seg.region(id).expect("region");
            r.set_connections(conns);
            r.set_load(BoxLoad {
                bytes_per_sec: 0,
                busy_ppm: busy,
            });
        }
        let reader = LoadReader::new(seg.clone(), u64::MAX);
        let gone = Proposal {
            expected: ViewNumber(4),
            members: vec![m(3), m(2)],
            reason: Reason::Silent {
                member: m(1),
                silent_ms: 90,
            },
        };
        let loads = reader.loads_for(&gone).expect("a removal carries loads");
        assert_eq!(loads.orphans, 12, "box 1's published connections");
        assert_eq!(loads.capacity, u32::MAX, "saturated");
        assert_eq!(
            loads.members,
            vec![
                MemberLoad {
                    id: 2,
                    connections: 40,
                    busy_ppm: 250_000
                },
                MemberLoad {
                    id: 3,
                    connections: 3,
                    busy_ppm: 0
                },
            ]
        );
        let join = Proposal {
            reason: Reason::Joined(m(1)),
            ..gone
        };
        assert_eq!(reader.loads_for(&join), None);
    }
}
