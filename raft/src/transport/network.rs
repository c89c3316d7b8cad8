//! openraft's `RaftNetwork` over the endpoint: each RPC is one request
//! datagram and one answer, or a timeout.
//!
//! The leader's side of the quorum lease lives here: an AppendEntries
//! carries the age of the leader's quorum proof, and a peer's acceptance
//! of it renews that proof (`crate::lease`). This module knows nothing of
//! storage or of the view.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, PayloadTooLarge, RPCError, RaftError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::EmptyNode;

use super::endpoint::{CallError, Endpoint};
use super::message::Message;
use crate::lease::Lease;
use crate::types::{NodeId, TypeConfig};

/// Makes one [`PeerLink`] per peer openraft replicates to.
#[derive(Debug, Clone)]
pub struct Network {
    me: NodeId,
    endpoint: Arc<Endpoint>,
    lease: Arc<Lease>,
}

impl Network {
    /// The network of box `me` over `endpoint`, renewing `lease`.
    pub fn new(me: NodeId, endpoint: Arc<Endpoint>, lease: Arc<Lease>) -> Network {
        Network {
            me,
            endpoint,
            lease,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, _node: &EmptyNode) -> PeerLink {
        PeerLink {
            net: self.clone(),
            target,
        }
    }
}

/// openraft's connection to one peer.
#[derive(Debug)]
pub struct PeerLink {
    net: Network,
    target: NodeId,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, EmptyNode, RaftError<NodeId, E>>;

impl PeerLink {
    fn error<E: std::error::Error>(
        &self,
        e: CallError,
        action: RPCTypes,
        ttl: Duration,
        entries: usize,
    ) -> RpcErr<E> {
        match e {
            CallError::Timeout => RPCError::Timeout(Timeout {
                action,
                id: self.net.me,
                target: self.target,
                timeout: ttl,
            }),
            CallError::TooLarge => RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(
                (entries as u64 / 2).max(1),
            )),
            CallError::UnknownPeer(_) => RPCError::Unreachable(Unreachable::new(&e)),
        }
    }
}

/// An answer of the wrong kind to a request (a peer of another build).
#[derive(Debug, thiserror::Error)]
#[error("answer of the wrong kind")]
struct WrongAnswer;

impl RaftNetwork<TypeConfig> for PeerLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let ttl = option.hard_ttl();
        let sent_at = Instant::now();
        let age = self.net.lease.age_ms(sent_at);
        let term = rpc.vote.leader_id.term;
        let entries = rpc.entries.len();
        let call = self
            .net
            .endpoint
            .call(self.target, |rid| Message::Append(rid, age, rpc), ttl);
        match call.await {
            Ok(Message::AppendReply(_, resp)) => {
                if !matches!(resp, AppendEntriesResponse::HigherVote(_)) {
                    self.net.lease.leader_ack(term, self.target, sent_at);
                }
                Ok(resp)
            }
            Ok(_) => Err(RPCError::Unreachable(Unreachable::new(&WrongAnswer))),
            Err(e) => Err(self.error(e, RPCTypes::AppendEntries, ttl, entries)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let ttl = option.hard_ttl();
        let call = self
            .net
            .endpoint
            .call(self.target, |rid| Message::Snapshot(rid, rpc), ttl);
        match call.await {
            Ok(Message::SnapshotReply(_, resp)) => Ok(resp),
            Ok(_) => Err(RPCError::Unreachable(Unreachable::new(&WrongAnswer))),
            Err(e) => Err(self.error(e, RPCTypes::InstallSnapshot, ttl, 1)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        let ttl = option.hard_ttl();
        let call = self
            .net
            .endpoint
            .call(self.target, |rid| Message::Vote(rid, rpc), ttl);
        match call.await {
            Ok(Message::VoteReply(_, resp)) => Ok(resp),
            Ok(_) => Err(RPCError::Unreachable(Unreachable::new(&WrongAnswer))),
            Err(e) => Err(self.error(e, RPCTypes::Vote, ttl, 0)),
        }
    }
}
