//! The connections a dead box had claimed in earlier takeovers and not
//! restored yet when it died: idle ones parked until their clients speak
//! (`super::pace`), restores still queued behind the window. They live
//! only in the earlier dead box's slots, claimed by the box that died
//! now; its own region holds nothing of them. They are its orphans too,
//! so its survivors plan them beside its own region's (seed Fig. 6,
//! applied again): a second death within `idle_restore_after_ms` of the
//! first loses none of them.
//!
//! A slot counts only while no other region holds the connection: one the
//! dead box restored (its record then in its own region) or handed on
//! since (a drain or migrate: the new holder's region) is the newer
//! record's. A restarted box forgets the claims on its region
//! (`Region::clear_claims`), so a claim never names a connection of a new
//! incarnation. Claims are shared only by a shared segment: with
//! replicated segments each box's claims stay in its own file, and these
//! connections are lost with their claimer (docs/TAKEOVER.md).
//!
//! It knows claims and the tuple index, not how a record resumes.

use baton_shmem::{Segment, ViewNumber};
use tracing::info;

use super::bundle::survivor_for;
use super::takeover::{add_slot, cluster_ips, Plan};
use crate::record::tuple_of;

/// Adds to `plan` the orphans of slots of other regions that `dead`
/// claimed and no other region holds (see the module doc), split like
/// `dead`'s own: slot `s` to `owner(s)`, an FTP bundle to `heir`. Regions
/// of `members` (the view's, after `dead` left) are skipped: their slots
/// are their own boxes'. A slot a member claimed already in `view` (the
/// change that removed `dead`: a faster survivor) counts too, so that
/// every survivor routes it, the heir above all, whose older route for it
/// names `dead`. Returns how many orphans it added.
// `plan_with`'s inputs and the view's: grouping them would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn add_inherited(
    segment: &Segment,
    dead: u16,
    me: u16,
    owner: &dyn Fn(usize) -> Option<u16>,
    heir: Option<u16>,
    members: &[u16],
    view: ViewNumber,
    plan: &mut Plan,
) -> usize {
    let allowed = cluster_ips(segment);
    let mine_before = plan.mine.len();
    let mut added = 0;
    for id in 0..segment.layout().regions {
        if id == dead || members.contains(&id) {
            continue;
        }
        let Ok(region) = segment.region(id) else {
            continue;
        };
        // The claim word first: reading and validating every record of
        // every other region cost a 300,000-connection takeover 0.4 s,
        // for the few slots claimed.
        for s in 0..region.slot_count() {
            let claimed = match region.claim_of(baton_shmem::SlotId(s)) {
                Ok(Some(c)) => c.by == dead || (members.contains(&c.by) && c.view >= view),
                _ => false,
            };
            if !claimed {
                continue;
            }
            // A corrupt slot was counted by that region's own takeover.
            let Ok(Some(slot)) = region.read(baton_shmem::SlotId(s)) else {
                continue;
            };
            let held_elsewhere = slot.bundle().records.iter().any(|record| {
                let t = tuple_of(&record.view());
                segment
                    .locate(t.local, t.remote)
                    .iter()
                    .any(|at| at.region != id)
            });
            if held_elsewhere {
                continue;
            }
            let Some(owner) =
                owner(slot.slot().0 as usize).map(|o| survivor_for(slot.bundle(), o, heir))
            else {
                return added;
            };
            added += add_slot(plan, id, &slot, owner, me, &allowed);
        }
    }
    plan.inherited += added;
    if added > 0 {
        info!(
            dead,
            inherited = added,
            restoring_here = plan.mine.len() - mine_before,
            "the dead box had not restored all it took over: its claims on earlier dead boxes' slots are taken over too"
        );
    }
    added
}

#[cfg(test)]
mod tests {
    use baton_shmem::SlotId;

    use super::*;
    use crate::control::takeover::tests::{checkpoint_connection, dead_box_with, TempSegment};
    use crate::control::takeover::{claim_mine, plan_with};

    /// Box 1 died with six connections: box 2 claimed slots 0, 2, 4 and
    /// restored only slot 0's (now in its own region), box 3 claimed the
    /// odd ones. Then box 2 dies too.
    fn box_2_dies_with_two_parked() -> (TempSegment, Segment) {
        let (file, seg) = TempSegment::new("inherited");
        dead_box_with(&seg, 6);
        let box1 = seg.region(1).expect("region 1");
        for slot in 0..6u32 {
            let by = if slot % 2 == 0 { 2 } else { 3 };
            box1.claim(SlotId(slot), by, ViewNumber(2)).expect("claim");
        }
        checkpoint_connection(&seg, 2, 7, 0);
        (file, seg)
    }

    fn ports(plan: &Plan) -> Vec<u16> {
        plan.mine
            .iter()
            .map(|o| o.export.tuple.remote.port())
            .collect()
    }

    #[test]
    fn a_dead_boxs_unrestored_claims_are_taken_over_with_its_region() {
        let (_file, seg) = box_2_dies_with_two_parked();
        let owner = |_: usize| Some(3);
        let mut plan = plan_with(&seg, 2, 3, &owner, Some(3));
        assert_eq!(ports(&plan), [40_000], "box 2's own region");
        let added = add_inherited(&seg, 2, 3, &owner, Some(3), &[3], ViewNumber(3), &mut plan);
        // Slot 0's connection is box 2's record's; slots 1, 3, 5 are
        // box 3's claims.
        assert_eq!((added, plan.inherited), (2, 2));
        assert_eq!(ports(&plan), [40_000, 40_002, 40_004]);
        let regions: Vec<u16> = plan.mine_slots.iter().map(|at| at.region).collect();
        assert_eq!(regions, [2, 1, 1]);
        assert_eq!(claim_mine(&seg, 3, ViewNumber(3), &mut plan), 0);
        let box1 = seg.region(1).expect("region 1");
        let claim = box1
            .claim_of(SlotId(2))
            .expect("readable")
            .expect("claimed");
        assert_eq!((claim.by, claim.view), (3, ViewNumber(3)));
        // Box 4, slower, still routes what box 3 claimed in this view —
        // not what box 3 claimed in the earlier one (slots 1, 3, 5).
        let mut four = plan_with(&seg, 2, 4, &owner, Some(3));
        add_inherited(
            &seg,
            2,
            4,
            &owner,
            Some(3),
            &[3, 4],
            ViewNumber(3),
            &mut four,
        );
        let routed: Vec<(u16, u16)> = four
            .elsewhere
            .iter()
            .map(|(t, by)| (t.remote.port(), *by))
            .collect();
        assert_eq!(routed, [(40_000, 3), (40_002, 3), (40_004, 3)]);
        assert!(four.mine.is_empty());
    }

    #[test]
    fn a_member_regions_claims_and_other_boxes_claims_are_never_inherited() {
        let (_file, seg) = box_2_dies_with_two_parked();
        let owner = |_: usize| Some(3);
        let mut plan = plan_with(&seg, 2, 3, &owner, Some(3));
        // Box 1 is a member again: its slots are its own.
        assert_eq!(
            add_inherited(
                &seg,
                2,
                3,
                &owner,
                Some(3),
                &[1, 3],
                ViewNumber(3),
                &mut plan
            ),
            0
        );
        // Box 3 dying instead inherits box 3's claims, not box 2's.
        let mut three = plan_with(&seg, 3, 2, &|_| Some(2), Some(2));
        assert_eq!(
            add_inherited(
                &seg,
                3,
                2,
                &|_| Some(2),
                Some(2),
                &[2],
                ViewNumber(3),
                &mut three
            ),
            3
        );
        assert_eq!(ports(&three), [40_001, 40_003, 40_005]);
    }
}
