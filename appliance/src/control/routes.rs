//! Routes to where a connection went, for a box that receives frames of
//! connections it does not hold: a restarted box's previous incarnation's
//! connections (to the survivors that claimed them, or by the split that
//! removed it), and the connections earlier takeovers left on other boxes
//! that an heir's inherited address brings (to their holders).
//!
//! It reads regions, claims and records; it does not split, claim or
//! restore (`super::takeover`).
use std::net::IpAddr;

use baton_dataplane::tcp::FourTuple;
use baton_dataplane::wire::ethernet::MacAddr;
use baton_shmem::{Region, Segment, ValidSlot};

use crate::orphans::OrphanRoute;
use crate::record::{orphan_of, tuple_of};

/// Whether every slot of `me`'s region that holds a restorable connection
/// is claimed in view `since` or later: the survivors that removed this
/// box's previous incarnation in view `since` have each read their share.
pub fn region_taken_over(segment: &Segment, me: u16, since: u32) -> bool {
    let Ok(region) = segment.region(me) else {
        return true;
    };
    region.records().flatten().all(|slot| {
        let restorable = slot.bundle().records.iter().any(|r| orphan_of(r).is_some());
        !restorable || matches!(region.claim_of(slot.slot()), Ok(Some(c)) if c.view.0 >= since)
    })
}

/// Routes for the restorable connections of `region` that a box other
/// than `me` claimed in view `since` or later: their frames go to the
/// claimer. A restarted box reads its previous incarnation's region so
/// (`region` = `me`, `since` the view that removed it) before clearing it:
/// the claims say where each connection went even before its new owner
/// has checkpointed it. A survivor that cannot compute a change's split
/// (`super::placement`, an unreadable load ring) reads the dead box's so
/// (shared mode; a replicated box sees only its own replica's claims).
pub fn routes_from_claims(
    segment: &Segment,
    region: u16,
    me: u16,
    since: u32,
) -> Vec<(FourTuple, OrphanRoute)> {
    routes_to_holders_of(
        segment,
        region,
        me,
        &|slots, slot| match slots.claim_of(slot.slot()) {
            Ok(Some(claim)) if claim.view.0 >= since => Some(claim.by),
            _ => None,
        },
    )
}

/// Routes for the connections a restarted box's previous incarnation
/// left in its own region (`me`'s), by the split of the committed change
/// that removed it: slot `s` went to `owner(s)`, as every survivor
/// computed it from its replica (replicated mode, where no claims are
/// shared). Read before the region is cleared.
pub fn routes_from_split(
    segment: &Segment,
    me: u16,
    owner: &dyn Fn(usize) -> Option<u16>,
) -> Vec<(FourTuple, OrphanRoute)> {
    routes_to_holders_of(segment, me, me, &|_, slot| owner(slot.slot().0 as usize))
}

/// Routes for the restorable connections of `region` to the box `holder`
/// names for their slot, when that is not `me`.
fn routes_to_holders_of(
    segment: &Segment,
    region: u16,
    me: u16,
    holder: &dyn Fn(&Region, &ValidSlot) -> Option<u16>,
) -> Vec<(FourTuple, OrphanRoute)> {
    let Ok(slots) = segment.region(region) else {
        return Vec::new();
    };
    let mut routes = Vec::new();
    for slot in slots.records().flatten() {
        let Some(by) = holder(&slots, &slot).filter(|&by| by != me) else {
            continue;
        };
        let Ok(info) = segment.box_info(by) else {
            continue;
        };
        for record in slot.bundle().records.iter() {
            if orphan_of(record).is_some() {
                routes.push((
                    tuple_of(&record.view()),
                    OrphanRoute::Elsewhere(MacAddr(info.mac)),
                ));
            }
        }
    }
    routes
}

/// Routes for connections to `ips` that other boxes hold, among the boxes
/// `holds` accepts (the agreed view's members, so that a dead box's stale
/// records never route a connection to a MAC that no longer answers; any
/// box without a view). A box that rejoins after a takeover answers for
/// its addresses again, so the frames of the connections a survivor
/// restored reach it first; it forwards them to their holder instead of
/// resetting them. An heir needs it too: it receives the frames of every connection to the
/// address it inherits, those earlier takeovers left on third boxes
/// included, and must forward them rather than reset them.
pub fn routes_to_holders_among(
    segment: &Segment,
    me: u16,
    ips: &[IpAddr],
    holds: &dyn Fn(u16) -> bool,
) -> Vec<(FourTuple, OrphanRoute)> {
    let mut routes = Vec::new();
    if ips.is_empty() {
        return routes;
    }
    for holder in 0..segment.layout().regions {
        if holder == me || !holds(holder) {
            continue;
        }
        let (Ok(info), Ok(region)) = (segment.box_info(holder), segment.region(holder)) else {
            continue;
        };
        if info.state == baton_shmem::BoxState::Unused {
            continue;
        }
        let mac = MacAddr(info.mac);
        for slot in region.records().flatten() {
            for record in slot.bundle().records.iter() {
                let tuple = tuple_of(&record.view());
                if ips.contains(&tuple.local.ip()) {
                    routes.push((tuple, OrphanRoute::Elsewhere(mac)));
                }
            }
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use baton_shmem::BoxState;

    use super::*;
    use crate::control::takeover::tests::{dead_box_with, TempSegment, DEAD_IP};

    #[test]
    fn a_rejoining_box_forwards_its_connections_to_the_box_holding_them() {
        // Box 1 took over box 2's two connections and still holds them.
        let (_file, segment) = TempSegment::new("holders");
        dead_box_with(&segment, 2);
        segment
            .region(1)
            .expect("region 1")
            .set_state(BoxState::Alive);
        let routes = routes_to_holders_among(&segment, 2, &[DEAD_IP.into()], &|_| true);
        assert_eq!(routes.len(), 2);
        for (tuple, route) in routes {
            assert_eq!(tuple.local.ip(), IpAddr::from(DEAD_IP));
            assert!(matches!(
                route,
                OrphanRoute::Elsewhere(MacAddr([2, 0, 0, 0, 0, 1]))
            ));
        }
        assert!(
            routes_to_holders_among(&segment, 2, &["198.18.0.12".parse().unwrap()], &|_| true)
                .is_empty()
        );
        assert!(
            routes_to_holders_among(&segment, 2, &[DEAD_IP.into()], &|h| h != 1).is_empty(),
            "a box outside the view holds nothing"
        );
    }
}
