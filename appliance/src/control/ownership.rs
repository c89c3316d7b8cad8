//! The evidence of ownership: after a committed view change, which
//! connections this box restores (this box, the view, the dead box, and
//! per connection the region and slot, the 4-tuple, the client's ISN). The
//! lab's checker (`appliance/tests/common/ownership.rs`) reads these lines
//! with the view changes to prove that each connection had at most one
//! owner per view, and only a member of that view.
//!
//! The connections go [`PER_LINE`] to a line: a line each cost a 300,000
//! takeover ~0.5 s of a survivor's CPU in its first seconds, when its
//! worker needs the core most.
//!
//! It knows the plan's shape only: not how slots are claimed, nor how
//! restores are paced.
use std::fmt::Write as _;

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

/// Connections named in one log line.
const PER_LINE: usize = 256;

/// Logs `restored`, restored here (`me`) in `view` from box `dead`,
/// [`PER_LINE`] to a line, off the control thread (the watcher must not
/// wait on them): `restored connections owner= view= dead= count=
/// conns=REGION.SLOT LOCAL REMOTE CLIENT_ISN, …`.
pub(super) fn log(me: u16, dead: u16, view: Option<ViewNumber>, restored: &[Restored]) {
    let view = view.map(|v| v.0);
    for chunk in restored.chunks(PER_LINE) {
        info!(
            owner = me,
            view,
            dead,
            count = chunk.len(),
            conns = %listed(chunk),
            "restored connections"
        );
    }
}

/// `chunk` as the `conns=` field lists it.
fn listed(chunk: &[Restored]) -> String {
    let mut out = String::with_capacity(chunk.len() * 56);
    for (i, r) in chunk.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(
            out,
            "{sep}{}.{} {} {} {}",
            r.region, r.slot, r.tuple.local, r.tuple.remote, r.client_isn
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_is_listed_with_its_slot_tuple_and_isn() {
        let r = |slot, remote: &str| Restored {
            tuple: FourTuple {
                local: "10.0.0.1:80".parse().expect("addr"),
                remote: remote.parse().expect("addr"),
            },
            region: 1,
            slot,
            client_isn: 4242,
        };
        assert_eq!(
            listed(&[r(7, "10.0.1.2:40000"), r(9, "[2001:2::5]:40001")]),
            "1.7 10.0.0.1:80 10.0.1.2:40000 4242, 1.9 10.0.0.1:80 [2001:2::5]:40001 4242"
        );
    }
}
