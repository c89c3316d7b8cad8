//! The replicated state machine: one [`View`], changed only by a
//! [`Propose`] over the current number.
//!
//! The same compare semantics as the shared segment's cell and
//! `baton_membership::MemoryStore`: a proposal is applied iff its
//! `expected` is the committed number, else it is a no-op answered with the
//! view that holds. Applying is a pure function of the view and the
//! command, so every replica computes the same views from the same log.
//! This module knows nothing of openraft, files or sockets.

use baton_membership::{CommittedLoads, View, ViewNumber, REASON_HISTORY};
use baton_shmem::view::check_proposal;

use crate::types::{Outcome, Propose};

/// The committed view of one replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewMachine {
    view: View,
}

impl ViewMachine {
    /// A machine holding `view` (view 0, empty, by default).
    pub fn new(view: View) -> ViewMachine {
        ViewMachine { view }
    }

    /// The committed view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Applies one proposal: the new view, or why it was not applied.
    pub fn apply(&mut self, p: &Propose) -> Outcome {
        // The cell's limits, so both modes refuse the same proposals.
        if let Err(e) = check_proposal(p.proposer, p.expected, &p.members) {
            return Outcome::Invalid(e);
        }
        if p.expected != self.view.number {
            return Outcome::Conflict(self.view.clone());
        }
        let mut members = p.members.clone();
        members.sort();
        let mut reasons = [0; REASON_HISTORY];
        reasons[0] = p.reason;
        reasons[1..].copy_from_slice(&self.view.reasons[..REASON_HISTORY - 1]);
        // The loads ride in the entry itself, shifted like the reasons.
        let mut loads = [const { CommittedLoads::None }; REASON_HISTORY];
        loads[0] = p
            .loads
            .clone()
            .map_or(CommittedLoads::None, CommittedLoads::Read);
        loads[1..].clone_from_slice(&self.view.loads[..REASON_HISTORY - 1]);
        self.view = View {
            loads: Box::new(loads),
            number: ViewNumber(p.expected.0 + 1),
            proposer: p.proposer,
            reasons,
            members,
        };
        Outcome::Committed(self.view.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_membership::Member;
    use baton_shmem::InvalidProposal;

    fn m(id: u16, epoch: u32) -> Member {
        Member { id, epoch }
    }

    fn propose(proposer: u16, expected: u32, members: &[Member], reason: u64) -> Propose {
        Propose {
            proposer,
            expected: ViewNumber(expected),
            members: members.to_vec(),
            reason,
            loads: None,
        }
    }

    #[test]
    fn a_proposal_over_the_current_number_commits_the_next_view_with_sorted_members() {
        let mut sm = ViewMachine::default();
        let out = sm.apply(&propose(2, 0, &[m(3, 1), m(1, 1)], 7));
        let view = sm.view().clone();
        assert_eq!(out, Outcome::Committed(view.clone()));
        assert_eq!(view.number, ViewNumber(1));
        assert_eq!(view.proposer, 2);
        assert_eq!(view.members, vec![m(1, 1), m(3, 1)]);
        assert_eq!(view.reasons, [7, 0, 0, 0]);
    }

    #[test]
    fn a_stale_expectation_is_a_no_op_answered_with_the_committed_view() {
        let mut sm = ViewMachine::default();
        sm.apply(&propose(1, 0, &[m(1, 1)], 1));
        let committed = sm.view().clone();
        assert_eq!(
            sm.apply(&propose(2, 0, &[m(2, 1)], 2)),
            Outcome::Conflict(committed.clone())
        );
        assert_eq!(
            sm.apply(&propose(2, 5, &[m(2, 1)], 2)),
            Outcome::Conflict(committed.clone()),
            "a number from the future conflicts too"
        );
        assert_eq!(sm.view(), &committed);
    }

    #[test]
    fn reasons_shift_so_each_view_carries_its_predecessors() {
        let mut sm = ViewMachine::default();
        for n in 0..5u32 {
            sm.apply(&propose(1, n, &[m(1, 1)], 10 + n as u64));
        }
        assert_eq!(sm.view().number, ViewNumber(5));
        assert_eq!(sm.view().reasons, [14, 13, 12, 11]);
    }

    #[test]
    fn loads_committed_with_a_proposal_shift_with_the_reasons() {
        let mut sm = ViewMachine::default();
        let loads = baton_membership::ChangeLoads {
            capacity: 100,
            orphans: 7,
            members: vec![],
        };
        let mut with = propose(1, 0, &[m(1, 1)], 10);
        with.loads = Some(loads.clone());
        sm.apply(&with);
        assert_eq!(sm.view().loads[0], CommittedLoads::Read(loads.clone()));
        sm.apply(&propose(1, 1, &[m(1, 1)], 11));
        assert_eq!(sm.view().loads[0], CommittedLoads::None);
        assert_eq!(
            sm.view().loads_of(ViewNumber(1)),
            &CommittedLoads::Read(loads)
        );
    }

    #[test]
    fn a_proposal_the_cell_could_not_hold_is_refused_and_changes_nothing() {
        let mut sm = ViewMachine::default();
        assert_eq!(
            sm.apply(&propose(1, 0, &[m(1, 1), m(1, 2)], 1)),
            Outcome::Invalid(InvalidProposal::Duplicate(1))
        );
        assert_eq!(
            sm.apply(&propose(1, 0, &[m(40, 1)], 1)),
            Outcome::Invalid(InvalidProposal::MemberId(40))
        );
        assert_eq!(sm.view(), &View::default());
    }
}
