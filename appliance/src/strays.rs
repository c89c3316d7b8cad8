//! Strays: segments for connections this box neither holds nor has an
//! orphan route for — a flow an L4 switch moved here while its owner lives
//! (a re-hash, a box given its buckets back), or one whose dead owner's
//! takeover has not routed it yet (issue 20, network-steered takeover).
//!
//! The segment's tuple index (`baton_shmem::index`) says which boxes hold
//! a record of the connection. A record of a live member (the view's, at
//! the record's epoch) sends the frame there; a record of a box no longer
//! in the view sends it to whoever claimed its slot, if that box lives;
//! any other record holds the frame (dropped: the client retransmits, and
//! the takeover under way routes it); no record anywhere leaves the
//! segment to the listener, which resets it as before. So a connection
//! with a record anywhere is never reset by a box that does not hold it.
//!
//! The workers ask ([`Strays::route`]) only for segments of connections
//! they do not know, never on the steady-state path. The control core
//! tells it the view's members ([`Strays::set_members`]). It knows the
//! segment and the view, not how frames are forwarded nor why a view
//! changed.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use baton_dataplane::tcp::FourTuple;
use baton_dataplane::wire::ethernet::MacAddr;
use baton_shmem::{Claim, Segment};

/// Where a stray segment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrayRoute {
    /// To the box that holds the connection, at this MAC.
    Forward(MacAddr),
    /// Nowhere yet: a record exists but no live box holds it (its owner's
    /// takeover is under way, or the record is this box's own).
    Hold,
    /// No box has a record: an unknown connection (the listener answers).
    Unknown,
}

/// A record of the connection, as the index found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The box whose region holds the record.
    pub region: u16,
    /// The owner's epoch when it wrote the record.
    pub epoch: u32,
    /// Who claimed the record's slot, if anyone did.
    pub claim: Option<Claim>,
}

/// A member of the view: its epoch and front MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// The incarnation the view holds.
    pub epoch: u32,
    /// Where its frames go.
    pub mac: MacAddr,
}

/// Where a stray goes, given the records found and the live members: a
/// live holder first (the record's own box, or the claimer of a departed
/// box's slot), else hold if any record exists, else unknown. Pure.
pub fn decide(found: &[Found], me: u16, members: &HashMap<u16, Live>) -> StrayRoute {
    let live = |id: u16| members.get(&id).filter(|_| id != me);
    let holder = found.iter().find_map(|f| {
        match members.get(&f.region) {
            // The record's own box, in the incarnation that wrote it.
            Some(m) if m.epoch == f.epoch => live(f.region).map(|m| m.mac),
            // Its box left or restarted: the claimer restored it.
            _ => f.claim.and_then(|c| live(c.by)).map(|m| m.mac),
        }
    });
    match holder {
        Some(mac) => StrayRoute::Forward(mac),
        None if found.is_empty() => StrayRoute::Unknown,
        None => StrayRoute::Hold,
    }
}

/// What became of stray segments, for the metrics.
#[derive(Debug, Default)]
pub struct StrayCounts {
    /// Forwarded to the box that holds the connection.
    pub forwarded: AtomicU64,
    /// Held (dropped) while no live box holds the connection.
    pub held: AtomicU64,
}

/// The box's view of where strays go.
#[derive(Debug)]
pub struct Strays {
    segment: Segment,
    me: u16,
    members: RwLock<HashMap<u16, Live>>,
    /// What became of them.
    pub counts: StrayCounts,
}

impl Strays {
    /// Strays of box `me`, looked up in `segment`. Until the control core
    /// names the members, no box is live: a record holds its frames.
    pub fn new(segment: Segment, me: u16) -> Strays {
        Strays {
            segment,
            me,
            members: RwLock::default(),
            counts: StrayCounts::default(),
        }
    }

    /// The view's members now, with their front MACs.
    pub fn set_members(&self, members: HashMap<u16, Live>) {
        *self.members.write().unwrap_or_else(|p| p.into_inner()) = members;
    }

    /// The members as last set.
    pub fn members(&self) -> HashMap<u16, Live> {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Where a segment of `tuple`, a connection no worker here holds and
    /// no orphan route names, goes.
    pub fn route(&self, tuple: &FourTuple) -> StrayRoute {
        let found: Vec<Found> = self
            .segment
            .locate(tuple.local, tuple.remote)
            .into_iter()
            .filter_map(|at| {
                let region = self.segment.region(at.region).ok()?;
                Some(Found {
                    region: at.region,
                    epoch: at.epoch,
                    claim: region.claim_of(at.slot).ok().flatten(),
                })
            })
            .collect();
        let route = {
            let members = self.members.read().unwrap_or_else(|p| p.into_inner());
            decide(&found, self.me, &members)
        };
        match route {
            StrayRoute::Forward(_) => self.counts.forwarded.fetch_add(1, Ordering::Relaxed),
            StrayRoute::Hold => self.counts.held.fetch_add(1, Ordering::Relaxed),
            StrayRoute::Unknown => 0,
        };
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_shmem::ViewNumber;

    fn mac(id: u16) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, id as u8])
    }

    fn members(ids: &[(u16, u32)]) -> HashMap<u16, Live> {
        ids.iter()
            .map(|&(id, epoch)| {
                (
                    id,
                    Live {
                        epoch,
                        mac: mac(id),
                    },
                )
            })
            .collect()
    }

    fn found(region: u16, epoch: u32, claim: Option<(u16, u32)>) -> Found {
        Found {
            region,
            epoch,
            claim: claim.map(|(by, view)| Claim {
                by,
                view: ViewNumber(view),
            }),
        }
    }

    #[test]
    fn a_live_owners_connection_is_forwarded_to_it() {
        let m = members(&[(1, 4), (2, 1), (3, 2)]);
        assert_eq!(
            decide(&[found(1, 4, None)], 2, &m),
            StrayRoute::Forward(mac(1))
        );
    }

    #[test]
    fn no_record_anywhere_is_unknown_and_any_record_is_never_unknown() {
        let m = members(&[(1, 4), (2, 1)]);
        assert_eq!(decide(&[], 2, &m), StrayRoute::Unknown);
        // The owner left the view and nobody claimed the slot yet: the
        // takeover is under way; hold, never reset.
        assert_eq!(decide(&[found(3, 1, None)], 2, &m), StrayRoute::Hold);
        // Our own record (a previous incarnation's, or a move under way).
        assert_eq!(decide(&[found(2, 1, None)], 2, &m), StrayRoute::Hold);
    }

    #[test]
    fn a_departed_owners_slot_goes_to_its_claimer_if_it_lives() {
        let m = members(&[(1, 4), (2, 1)]);
        assert_eq!(
            decide(&[found(3, 1, Some((1, 7)))], 2, &m),
            StrayRoute::Forward(mac(1))
        );
        // Claimed by us: our takeover restores it; claimed by a box that
        // died too: its own takeover is next.
        assert_eq!(
            decide(&[found(3, 1, Some((2, 7)))], 2, &m),
            StrayRoute::Hold
        );
        assert_eq!(
            decide(&[found(3, 1, Some((5, 7)))], 2, &m),
            StrayRoute::Hold
        );
    }

    #[test]
    fn a_restarted_owners_old_record_is_not_its_own_but_the_restorers_copy_is() {
        // Box 1 restarted (epoch 5 now); its epoch-4 record is stale, and
        // box 3 restored the connection and checkpoints it at epoch 2.
        let m = members(&[(1, 5), (2, 1), (3, 2)]);
        let stale = found(1, 4, Some((3, 9)));
        let copy = found(3, 2, None);
        assert_eq!(decide(&[stale, copy], 2, &m), StrayRoute::Forward(mac(3)));
        assert_eq!(decide(&[stale], 2, &m), StrayRoute::Forward(mac(3)));
        assert_eq!(decide(&[found(1, 4, None)], 2, &m), StrayRoute::Hold);
    }
}
