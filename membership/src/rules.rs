//! What a committed view change decides, computed alike on every survivor.
//!
//! A takeover acts only on a committed [`ViewChange`]; the orphan split and
//! the address inheritance are functions of it and nothing else (no local
//! heartbeat reading, no clock), so two survivors can never disagree on
//! who restores a connection or who announces an address. The rules are
//! the ones `takeover::plan` applied to a locally derived survivor list;
//! here the list is the committed view's. This module knows no slots,
//! packets or stores.

use crate::ViewChange;

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
