//! What a committed view change decides, computed alike on every survivor.
//!
//! A takeover acts only on a committed [`ViewChange`]; the orphan split and
//! the address inheritance are functions of it and nothing else (no local
//! heartbeat reading, no clock), so two survivors can never disagree on
//! who restores a connection or who announces an address. The rules are
//! the ones `takeover::plan` applied to a locally derived survivor list;
//! here the list is the committed view's. This module knows no slots,
//! packets or stores.

use crate::placement::{least_loaded_owner, least_loaded_shares, SurvivorLoad};
use crate::{CommittedLoads, ViewChange};

/// The boxes that take over what the change's departed members left:
/// the members of the new view, sorted by id, without a box that left and
/// came back in the same change (a restarted box clears its own region and
/// never restores its previous incarnation's connections).
pub fn survivors(change: &ViewChange) -> Vec<u16> {
    let mut ids: Vec<u16> = change
        .members
        .iter()
        .map(|m| m.id)
        .filter(|id| !change.left.iter().any(|l| l.id == *id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The survivor that restores orphan number `orphan_index` (the index of
/// the dead box's valid slots, in slot order): survivor `i mod n`, the
/// survivors sorted by id. `None` when the change leaves no survivor.
pub fn orphan_owner(change: &ViewChange, orphan_index: usize) -> Option<u16> {
    let s = survivors(change);
    if s.is_empty() {
        return None;
    }
    s.get(orphan_index % s.len()).copied()
}

/// The box that answers for `dead`'s service addresses after the change:
/// `dead` itself if it rejoined in this change (a restarted box takes its
/// addresses back), else the lowest surviving id. `None` when no box is
/// left, or `dead` did not leave with this change.
pub fn address_heir(change: &ViewChange, dead: u16) -> Option<u16> {
    if !change.left.iter().any(|m| m.id == dead) {
        return None;
    }
    if change.members.iter().any(|m| m.id == dead) {
        return Some(dead);
    }
    survivors(change).first().copied()
}

/// How a committed change's orphans are split among its survivors: a
/// function of the change alone, so every survivor computes the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// The change carries no loads: slot `s` to survivor `s mod n`
    /// ([`orphan_owner`]), the survivors sorted by id.
    RoundRobin(Vec<u16>),
    /// The change carries loads (its proposer splits by load): each
    /// survivor's share of the orphans (`placement::least_loaded_shares`
    /// over the committed loads, orphan count and capacity), slot `s` to
    /// `placement::least_loaded_owner(shares, s)`.
    LeastLoaded(Vec<(u16, u64)>),
    /// The change says loads were committed, and this box cannot read
    /// them: it does not guess (a guess that differs from the others'
    /// split could leave a slot to nobody). No slot has an owner here.
    Unreadable {
        /// The box whose ring held them.
        proposer: u16,
    },
}

impl Split {
    /// The survivor that restores slot `slot`'s bundle; `None` when there
    /// is none, or the split is [`Split::Unreadable`].
    pub fn owner(&self, slot: usize) -> Option<u16> {
        match self {
            Split::RoundRobin(s) => (!s.is_empty()).then(|| s[slot % s.len()]),
            Split::LeastLoaded(shares) => least_loaded_owner(shares, slot),
            Split::Unreadable { .. } => None,
        }
    }
}

/// The split of `change`'s orphans: by the loads committed with it when
/// it carries them (whatever this box is configured with: the proposer's
/// choice, committed, is what every survivor follows), else round-robin.
pub fn split_of(change: &ViewChange) -> Split {
    let ids = survivors(change);
    match &change.loads {
        CommittedLoads::None => Split::RoundRobin(ids),
        CommittedLoads::Unread { proposer } => Split::Unreadable {
            proposer: *proposer,
        },
        CommittedLoads::Read(loads) => {
            let listed: Vec<SurvivorLoad> = ids
                .iter()
                .map(|&id| {
                    let l = loads.members.iter().find(|m| m.id == id);
                    SurvivorLoad {
                        id,
                        connections: l.map_or(0, |m| u64::from(m.connections)),
                        busy_ppm: l.map_or(0, |m| m.busy_ppm),
                    }
                })
                .collect();
            Split::LeastLoaded(least_loaded_shares(
                &listed,
                // At least one, so a dead box whose counter lagged its
                // slots still gives every slot an owner.
                u64::from(loads.orphans.max(1)),
                u64::from(loads.capacity),
            ))
        }
    }
}
