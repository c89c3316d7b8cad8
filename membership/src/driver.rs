//! The glue between a [`Membership`] machine and a [`ViewStore`]: each
//! control tick reads the committed view ([`refresh`]), hands the machine
//! the detector's verdicts, then makes the proposals the machine asks for
//! ([`propose`]); [`sync`] is both, for ticks without verdicts.
//!
//! Kept apart so the machine stays free of I/O; it knows nothing of how
//! either side works inside.

use crate::{ChangeLoads, Membership, Proposal, StoreError, ViewStore};

/// At most this many proposals per call: each one either commits or
/// learns a newer view, so more would only chase a store others keep
/// changing; the next tick goes on.
const ROUNDS: usize = 8;

/// Reads the committed view into `machine`. Do this before handing it
/// verdicts: a verdict is judged against the view the machine holds, and
/// one about a box it does not know as a member is dropped. An unreadable
/// store is returned as an error and changes nothing.
pub fn refresh<S: ViewStore + ?Sized>(
    machine: &mut Membership,
    store: &S,
) -> Result<(), StoreError> {
    machine.handle_view(store.read()?);
    Ok(())
}

/// Makes the proposals `machine` asks for and hands back what the store
/// said. Events are left for the caller to drain with
/// [`Membership::poll_event`].
pub fn propose<S: ViewStore + ?Sized>(machine: &mut Membership, store: &S) {
    propose_with(machine, store, &|_| None);
}

/// [`propose`], committing with each proposal the loads `loads` gives for
/// it (issue 20: the box's reading of the survivors' loads, for a removal
/// when it splits by load; `None` commits none, and the change splits
/// round-robin for every box).
pub fn propose_with<S: ViewStore + ?Sized>(
    machine: &mut Membership,
    store: &S,
    loads: &dyn Fn(&Proposal) -> Option<ChangeLoads>,
) {
    for _ in 0..ROUNDS {
        let Some(p) = machine.poll_proposal() else {
            break;
        };
        let l = loads(&p);
        let result = store.propose_with_loads(
            machine.me().id,
            p.expected,
            &p.members,
            p.reason,
            l.as_ref(),
        );
        machine.handle_proposal_result(result);
    }
}

/// [`refresh`] then [`propose`].
pub fn sync<S: ViewStore + ?Sized>(machine: &mut Membership, store: &S) -> Result<(), StoreError> {
    refresh(machine, store)?;
    propose(machine, store);
    Ok(())
}
