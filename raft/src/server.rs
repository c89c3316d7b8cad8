//! The Raft's server side: answers the requests peers send (openraft's
//! RPCs, and client requests forwarded to the leader).
//!
//! Each request is handled in a task of its own, so a client write
//! waiting for its commit never holds up a vote or a heartbeat. The
//! follower's side of the quorum lease is renewed here, from the age an
//! accepted AppendEntries carries. This module knows nothing of files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::raft::AppendEntriesResponse;
use openraft::Raft;
use tokio::sync::mpsc;

use crate::lease::Lease;
use crate::storage::StateMachineStore;
use crate::transport::{ClientRequest, ClientResponse, Endpoint, Incoming, Message};
use crate::types::{NodeId, TypeConfig};

/// What a request handler needs.
#[derive(Clone)]
pub struct Server {
    /// The local Raft.
    pub raft: Raft<TypeConfig>,
    /// Where answers go.
    pub endpoint: Arc<Endpoint>,
    /// The quorum lease to renew.
    pub lease: Arc<Lease>,
    /// The applied view, for forwarded reads.
    pub machine: StateMachineStore,
    /// How long a forwarded client request may take.
    pub deadline: Duration,
}

impl Server {
    /// Answers requests until the endpoint stops.
    pub async fn run(self, mut requests: mpsc::UnboundedReceiver<Incoming>) {
        while let Some((from, m)) = requests.recv().await {
            tokio::spawn(self.clone().handle(from, m));
        }
    }

    async fn handle(self, from: u16, m: Message) {
        let reply = match m {
            Message::Vote(rid, req) => match self.raft.vote(req).await {
                Ok(resp) => Message::VoteReply(rid, resp),
                Err(_) => return,
            },
            Message::Append(rid, age, req) => {
                let at = Instant::now();
                match self.raft.append_entries(req).await {
                    Ok(resp) => {
                        if age != u32::MAX && !matches!(resp, AppendEntriesResponse::HigherVote(_))
                        {
                            self.lease
                                .follower_heard(at, Duration::from_millis(age as u64));
                        }
                        Message::AppendReply(rid, resp)
                    }
                    Err(_) => return,
                }
            }
            Message::Snapshot(rid, req) => match self.raft.install_snapshot(req).await {
                Ok(resp) => Message::SnapshotReply(rid, resp),
                Err(_) => return,
            },
            Message::Client(rid, req) => {
                match tokio::time::timeout(self.deadline, self.client(req)).await {
                    Ok(resp) => Message::ClientReply(rid, resp),
                    Err(_) => return,
                }
            }
            Message::VoteReply(..)
            | Message::AppendReply(..)
            | Message::SnapshotReply(..)
            | Message::ClientReply(..) => return,
        };
        let _ = self.endpoint.send(from, &reply).await;
    }

    /// A forwarded client request, answered only if this box is the
    /// leader (never forwarded again: no loops between two boxes that
    /// each believe the other leads).
    async fn client(&self, req: ClientRequest) -> ClientResponse {
        match req {
            ClientRequest::Propose(p) => match self.raft.client_write(p).await {
                Ok(r) => ClientResponse::Outcome(r.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    ClientResponse::NotLeader(f.leader_id)
                }
                Err(_) => ClientResponse::NotLeader(None),
            },
            ClientRequest::Read => match self.raft.ensure_linearizable().await {
                Ok(_) => ClientResponse::View(self.machine.view()),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    ClientResponse::NotLeader(f.leader_id)
                }
                Err(_) => ClientResponse::NotLeader(None::<NodeId>),
            },
        }
    }
}
