//! The Raft's type configuration and the one command it replicates.
//!
//! openraft is generic over its types; this module names them once: node
//! ids are box ids (held in openraft's `u64`), nodes carry no data (the
//! back-LAN addresses come from the configuration, not from the log), and
//! the application data is [`Propose`], answered by an [`Outcome`]. It
//! knows nothing of files, sockets or the runtime.

use std::fmt;
use std::io::Cursor;

use baton_membership::{ChangeLoads, Member, View, ViewNumber};
use baton_shmem::InvalidProposal;

/// A box id as openraft holds it.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The type configuration of the view Raft.
    pub TypeConfig:
        D = Propose,
        R = Outcome,
        NodeId = NodeId,
        Node = openraft::EmptyNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The only command: commit `members` as view `expected + 1` if `expected`
/// is still the committed number (the view cell's compare semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propose {
    /// The box that proposes.
    pub proposer: u16,
    /// The view number the proposer read.
    pub expected: ViewNumber,
    /// The next view's members.
    pub members: Vec<Member>,
    /// Why (a `baton_membership::Reason` code; 0 = unknown).
    pub reason: u64,
    /// The survivors' loads committed with the change (issue 20), when
    /// its proposer splits by load; `None` for a round-robin split.
    pub loads: Option<ChangeLoads>,
}

impl fmt::Display for Propose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "propose by {} over view {}: {} members",
            self.proposer,
            self.expected.0,
            self.members.len()
        )
    }
}

/// What applying one log entry gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The proposal was applied: the new view.
    Committed(View),
    /// The proposal's expected number was stale: the committed view.
    Conflict(View),
    /// The proposal is not a view the store can hold (the view is unchanged).
    Invalid(InvalidProposal),
    /// The entry was not a proposal (a leader's blank entry, a membership).
    NotAProposal,
}
