//! Sample Raft messages, one of every kind, for the codec tests and the
//! fuzz corpus seeds (`fuzz/examples/seeds.rs` includes this file by path,
//! so it must need nothing but `baton-raft`, `baton-membership`,
//! `baton-shmem` and `openraft`).

use std::collections::BTreeSet;

use baton_membership::{Member, View, ViewNumber};
use baton_raft::transport::{ClientRequest, ClientResponse, Message};
use baton_raft::types::{NodeId, TypeConfig};
use baton_raft::{Outcome, Propose};
use baton_shmem::InvalidProposal;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LeaderId, LogId, Membership, SnapshotMeta,
    StoredMembership, Vote,
};

pub fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 2), index)
}

pub fn vote(term: u64, committed: bool) -> Vote<NodeId> {
    Vote {
        leader_id: LeaderId::new(term, 3),
        committed,
    }
}

pub fn view() -> View {
    View {
        number: ViewNumber(7),
        proposer: 3,
        reasons: [1, 2, 3, u64::MAX],
        members: vec![
            Member { id: 1, epoch: 9 },
            Member {
                id: 3,
                epoch: u32::MAX,
            },
        ],
        loads: Default::default(),
    }
}

pub fn membership() -> Membership<NodeId, openraft::EmptyNode> {
    let voters: BTreeSet<NodeId> = [1, 2, 3, 4].into();
    Membership::new(vec![voters], ())
}

pub fn entries() -> Vec<Entry<TypeConfig>> {
    vec![
        Entry {
            log_id: log_id(1, 1),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(1, 2),
            payload: EntryPayload::Membership(membership()),
        },
        Entry {
            log_id: log_id(2, 3),
            payload: EntryPayload::Normal(Propose {
                proposer: 1,
                expected: ViewNumber(6),
                members: view().members,
                reason: 42,
                loads: None,
            }),
        },
    ]
}

/// Every kind of message, each with its optional fields filled.
pub fn messages() -> Vec<Message> {
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(2, 3)),
        last_membership: StoredMembership::new(Some(log_id(1, 2)), membership()),
        snapshot_id: "2-2-3".into(),
    };
    vec![
        Message::Vote(
            1,
            VoteRequest {
                vote: vote(4, false),
                last_log_id: Some(log_id(3, 9)),
            },
        ),
        Message::Vote(
            2,
            VoteRequest {
                vote: vote(4, false),
                last_log_id: None,
            },
        ),
        Message::VoteReply(
            3,
            VoteResponse {
                vote: vote(4, true),
                vote_granted: true,
                last_log_id: None,
            },
        ),
        Message::Append(
            4,
            17,
            AppendEntriesRequest {
                vote: vote(5, true),
                prev_log_id: Some(log_id(1, 0)),
                entries: entries(),
                leader_commit: Some(log_id(1, 2)),
            },
        ),
        Message::Append(
            5,
            u32::MAX,
            AppendEntriesRequest {
                vote: vote(5, true),
                prev_log_id: None,
                entries: vec![],
                leader_commit: None,
            },
        ),
        Message::AppendReply(6, AppendEntriesResponse::Success),
        Message::AppendReply(7, AppendEntriesResponse::PartialSuccess(Some(log_id(2, 2)))),
        Message::AppendReply(8, AppendEntriesResponse::Conflict),
        Message::AppendReply(9, AppendEntriesResponse::HigherVote(vote(9, true))),
        Message::Snapshot(
            10,
            InstallSnapshotRequest {
                vote: vote(5, true),
                meta,
                offset: 0,
                data: vec![1, 2, 3],
                done: true,
            },
        ),
        Message::SnapshotReply(
            11,
            InstallSnapshotResponse {
                vote: vote(5, true),
            },
        ),
        Message::Client(12, ClientRequest::Read),
        Message::Client(
            13,
            ClientRequest::Propose(Propose {
                proposer: 2,
                expected: ViewNumber(0),
                members: vec![],
                reason: 0,
                loads: None,
            }),
        ),
        Message::ClientReply(14, ClientResponse::View(view())),
        Message::ClientReply(15, ClientResponse::Outcome(Outcome::Committed(view()))),
        Message::ClientReply(16, ClientResponse::Outcome(Outcome::Conflict(view()))),
        Message::ClientReply(
            17,
            ClientResponse::Outcome(Outcome::Invalid(InvalidProposal::Exhausted(ViewNumber(
                u32::MAX,
            )))),
        ),
        Message::ClientReply(
            18,
            ClientResponse::Outcome(Outcome::Invalid(InvalidProposal::Duplicate(4))),
        ),
        Message::ClientReply(19, ClientResponse::Outcome(Outcome::NotAProposal)),
        Message::ClientReply(20, ClientResponse::NotLeader(Some(3))),
        Message::ClientReply(21, ClientResponse::NotLeader(None)),
    ]
}
