//! The evidence of ownership: after a committed view change, one log line
//! per connection this box restores (this box, the view, the dead box,
//! the slot, the 4-tuple, the client's ISN). The lab's checker
//! (`appliance/tests/common/ownership.rs`) reads these lines with the view
//! changes to prove that each connection had at most one owner per view,
//! and only a member of that view.
//!
//! It knows the plan's shape only: not how slots are claimed, nor how
//! restores are paced.
use baton_dataplane::tcp::FourTuple;
use baton_shmem::ViewNumber;
use tracing::info;

use super::takeover::Plan;

/// One connection this box restores, as its line names it.
pub(super) struct Restored {
    tuple: FourTuple,
    region: u16,
    slot: u32,
    client_isn: u32,
}

/// The connections of `plan` this box restores (after its claims).
pub(super) fn of(plan: &Plan) -> Vec<Restored> {
    plan.mine
        .iter()
        .zip(&plan.mine_slots)
        .map(|(o, at)| Restored {
            tuple: o.export.tuple,
            region: at.region,
            slot: at.slot.0,
            client_isn: o.export.irs,
        })
        .collect()
}

/// Logs `restored`, restored here (`me`) in `view` from box `dead`: one
/// line each, off the control thread (a 10,000-connection takeover writes
/// 10,000 lines; the watcher must not wait on them).
pub(super) fn log(me: u16, dead: u16, view: Option<ViewNumber>, restored: &[Restored]) {
    let view = view.map(|v| v.0);
    for r in restored {
        info!(
            owner = me,
            view,
            dead,
            region = r.region,
            slot = r.slot,
            local = %r.tuple.local,
            remote = %r.tuple.remote,
            client_isn = r.client_isn,
            "restored a connection"
        );
    }
}
