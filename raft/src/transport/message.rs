//! The messages one datagram carries: openraft's three RPCs and their
//! answers, and a client's proposal or read forwarded to the leader.
//!
//! Each request carries a request id (`rid`, per sender) that its answer
//! repeats, so answers find their caller whatever the order they arrive
//! in. The datagram header's kind byte is [`Message::kind`]; the body is
//! the rid and the fields in `codec`'s format. This module knows nothing
//! of keys or sockets.

use baton_membership::View;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::codec::{Codec, DecodeError, Reader, Writer};
use crate::types::{NodeId, Outcome, Propose, TypeConfig};

/// A client's request to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequest {
    /// Commit this proposal.
    Propose(Propose),
    /// The committed view, read linearizably.
    Read,
}

/// The leader's answer to a [`ClientRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientResponse {
    /// What applying the proposal gave.
    Outcome(Outcome),
    /// The committed view.
    View(View),
    /// The receiver is not the leader; the leader it knows, if any.
    NotLeader(Option<NodeId>),
}

/// One datagram's message.
#[derive(Debug)]
pub enum Message {
    /// Raft's RequestVote.
    Vote(u64, VoteRequest<NodeId>),
    /// Its answer.
    VoteReply(u64, VoteResponse<NodeId>),
    /// Raft's AppendEntries, with how long ago (ms, `u32::MAX` = never) a
    /// quorum last acknowledged the sending leader: the followers' lease.
    Append(u64, u32, AppendEntriesRequest<TypeConfig>),
    /// Its answer.
    AppendReply(u64, AppendEntriesResponse<NodeId>),
    /// One chunk of InstallSnapshot (a view snapshot is one chunk).
    Snapshot(u64, InstallSnapshotRequest<TypeConfig>),
    /// Its answer.
    SnapshotReply(u64, InstallSnapshotResponse<NodeId>),
    /// A client request forwarded to the leader.
    Client(u64, ClientRequest),
    /// Its answer.
    ClientReply(u64, ClientResponse),
}

impl Message {
    /// The datagram kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Vote(..) => 1,
            Message::VoteReply(..) => 2,
            Message::Append(..) => 3,
            Message::AppendReply(..) => 4,
            Message::Snapshot(..) => 5,
            Message::SnapshotReply(..) => 6,
            Message::Client(..) => 7,
            Message::ClientReply(..) => 8,
        }
    }

    /// The request id.
    pub fn rid(&self) -> u64 {
        match *self {
            Message::Vote(rid, _)
            | Message::VoteReply(rid, _)
            | Message::Append(rid, _, _)
            | Message::AppendReply(rid, _)
            | Message::Snapshot(rid, _)
            | Message::SnapshotReply(rid, _)
            | Message::Client(rid, _)
            | Message::ClientReply(rid, _) => rid,
        }
    }

    /// Whether this answers a request (and so goes to a waiting caller).
    pub fn is_reply(&self) -> bool {
        self.kind() % 2 == 0
    }

    /// Appends the body (rid and fields).
    pub fn encode_body(&self, w: &mut Writer) {
        w.u64(self.rid());
        match self {
            Message::Vote(_, m) => m.encode(w),
            Message::VoteReply(_, m) => m.encode(w),
            Message::Append(_, age, m) => {
                w.u32(*age);
                m.encode(w);
            }
            Message::AppendReply(_, m) => m.encode(w),
            Message::Snapshot(_, m) => m.encode(w),
            Message::SnapshotReply(_, m) => m.encode(w),
            Message::Client(_, ClientRequest::Propose(p)) => {
                w.u8(0);
                p.encode(w);
            }
            Message::Client(_, ClientRequest::Read) => w.u8(1),
            Message::ClientReply(_, r) => match r {
                ClientResponse::Outcome(o) => {
                    w.u8(0);
                    o.encode(w);
                }
                ClientResponse::View(v) => {
                    w.u8(1);
                    v.encode(w);
                }
                ClientResponse::NotLeader(l) => {
                    w.u8(2);
                    l.encode(w);
                }
            },
        }
    }

    /// The message of kind `kind` whose body is `body`, all of it.
    pub fn decode(kind: u8, body: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(body);
        let rid = r.u64("request id")?;
        let m = match kind {
            1 => Message::Vote(rid, Codec::decode(&mut r)?),
            2 => Message::VoteReply(rid, Codec::decode(&mut r)?),
            3 => {
                let age = r.u32("quorum age")?;
                Message::Append(rid, age, Codec::decode(&mut r)?)
            }
            4 => Message::AppendReply(rid, Codec::decode(&mut r)?),
            5 => Message::Snapshot(rid, Codec::decode(&mut r)?),
            6 => Message::SnapshotReply(rid, Codec::decode(&mut r)?),
            7 => match r.u8("client request")? {
                0 => Message::Client(rid, ClientRequest::Propose(Codec::decode(&mut r)?)),
                1 => Message::Client(rid, ClientRequest::Read),
                tag => {
                    return Err(DecodeError::Tag {
                        what: "client request",
                        tag,
                    })
                }
            },
            8 => Message::ClientReply(
                rid,
                match r.u8("client response")? {
                    0 => ClientResponse::Outcome(Codec::decode(&mut r)?),
                    1 => ClientResponse::View(Codec::decode(&mut r)?),
                    2 => ClientResponse::NotLeader(Codec::decode(&mut r)?),
                    tag => {
                        return Err(DecodeError::Tag {
                            what: "client response",
                            tag,
                        })
                    }
                },
            ),
            tag => {
                return Err(DecodeError::Tag {
                    what: "message kind",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(m)
    }
}

impl Codec for u64 {
    fn encode(&self, w: &mut Writer) {
        w.u64(*self);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.u64("u64")
    }
}
