//! Where the agreed view lives: a register that commits at most one view
//! per number.
//!
//! [`ViewStore`] is the whole contract the state machine needs: read the
//! committed view; propose the next one over an expected number, and on a
//! lost race learn the view that won. [`SegmentStore`] is the shared
//! segment's cell (boxes on one host, `baton_shmem::ViewCell`);
//! [`MemoryStore`] is the same contract in memory, for tests and
//! simulations. The replicated mode's store is an embedded Raft log
//! (`baton-raft`'s `RaftStore`, `docs/MEMBERSHIP.md`). This module knows nothing of the state machine.

use std::sync::{Arc, Mutex};

use baton_shmem::view::check_proposal;
use baton_shmem::{InvalidProposal, ProposeError, ViewCell, ViewError};

use crate::{ChangeLoads, CommittedLoads, Member, Reason, View, ViewNumber};

/// Why a store did not commit a proposal or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another view holds the expected number's successor (or the
    /// expectation was stale): here is the committed view.
    #[error("view {} is already committed", current.number)]
    Conflict {
        /// The committed view.
        current: View,
    },
    /// The committed view cannot be read.
    #[error(transparent)]
    Unreadable(#[from] ViewError),
    /// The proposal is not a view the store can hold.
    #[error(transparent)]
    Invalid(#[from] InvalidProposal),
    /// The store could not answer in time: a replicated store with no
    /// leader reachable (no quorum). The proposal may still commit later;
    /// read again before acting.
    #[error("the view store is unavailable (no quorum answered in time)")]
    Unavailable,
}

/// A register holding the agreed view, changed only by proposals over the
/// current number. Implementations must commit at most one view per
/// number, and views must only grow.
pub trait ViewStore {
    /// The committed view (view 0, empty, before the first commit).
    fn read(&self) -> Result<View, StoreError>;

    /// Commits `members` as view `expected + 1` on behalf of box `proposer`
    /// if `expected` is still the committed number; otherwise
    /// [`StoreError::Conflict`] with the view that is.
    fn propose(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: Reason,
    ) -> Result<View, StoreError>;

    /// [`ViewStore::propose`], committing `loads` with the view (issue 20)
    /// so that every box reads the same ones with the change. A store that
    /// cannot carry loads commits the view without them: its change then
    /// splits round-robin for every box, which is safe.
    fn propose_with_loads(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: Reason,
        loads: Option<&ChangeLoads>,
    ) -> Result<View, StoreError> {
        let _ = loads;
        self.propose(proposer, expected, members, reason)
    }
}

/// The view cell of a shared segment: every box mapping it agrees by CAS.
#[derive(Debug, Clone)]
pub struct SegmentStore {
    cell: ViewCell,
}

impl SegmentStore {
    /// The store over `cell` (`ViewCell::new(&segment)`).
    pub fn new(cell: ViewCell) -> SegmentStore {
        SegmentStore { cell }
    }
}

impl ViewStore for SegmentStore {
    fn read(&self) -> Result<View, StoreError> {
        Ok(self.cell.read()?)
    }

    fn propose(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: Reason,
    ) -> Result<View, StoreError> {
        self.propose_with_loads(proposer, expected, members, reason, None)
    }

    fn propose_with_loads(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: Reason,
        loads: Option<&ChangeLoads>,
    ) -> Result<View, StoreError> {
        self.cell
            .propose_with_loads(proposer, expected, members, reason.code(), loads)
            .map_err(|e| match e {
                ProposeError::Conflict { current } => StoreError::Conflict { current },
                ProposeError::Unreadable(e) => StoreError::Unreadable(e),
                ProposeError::Invalid(e) => StoreError::Invalid(e),
            })
    }
}

/// The store in memory, shared by clones: simulated boxes of one test
/// propose to it as boxes on one host propose to the segment's cell. It
/// keeps every committed view, for the test's checks.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    views: Arc<Mutex<Vec<View>>>,
}

impl MemoryStore {
    /// An empty store (view 0).
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Every view committed so far, in order (without view 0).
    pub fn history(&self) -> Vec<View> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<View>> {
        // A test thread that panicked holding the lock left a complete
        // history (each push is one step); go on with it.
        self.views.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ViewStore for MemoryStore {
    fn read(&self) -> Result<View, StoreError> {
        Ok(self.lock().last().cloned().unwrap_or_default())
    }

    fn propose(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: Reason,
    ) -> Result<View, StoreError> {
        self.propose_with_loads(proposer, expected, members, reason, None)
    }

    fn propose_with_loads(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: Reason,
        loads: Option<&ChangeLoads>,
    ) -> Result<View, StoreError> {
        // The segment cell's limits, so a simulation refuses what a box would.
        check_proposal(proposer, expected, members)?;
        let mut views = self.lock();
        let current = views.last().cloned().unwrap_or_default();
        if current.number != expected {
            return Err(StoreError::Conflict { current });
        }
        let mut sorted = members.to_vec();
        sorted.sort();
        let mut reasons = [0; baton_shmem::REASON_HISTORY];
        reasons[0] = reason.code();
        reasons[1..].copy_from_slice(&current.reasons[..baton_shmem::REASON_HISTORY - 1]);
        let mut committed = [const { CommittedLoads::None }; baton_shmem::REASON_HISTORY];
        committed[0] = loads
            .cloned()
            .map_or(CommittedLoads::None, CommittedLoads::Read);
        committed[1..].clone_from_slice(&current.loads[..baton_shmem::REASON_HISTORY - 1]);
        let view = View {
            number: ViewNumber(expected.0 + 1),
            proposer,
            reasons,
            members: sorted,
            loads: Box::new(committed),
        };
        views.push(view.clone());
        Ok(view)
    }
}
