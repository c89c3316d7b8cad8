//! The byte format of everything the Raft sends or stores: openraft's
//! messages, log entries, snapshots, and the view.
//!
//! Hand-written, little-endian, length-prefixed, with no serde: the format
//! is specified here and in `docs/MEMBERSHIP.md` ("Replicated mode"), and
//! a decoder fed any bytes returns an error, never panics and never
//! allocates more than the input could hold. Node ids travel as u64 (as
//! openraft holds them). Options are a byte 0/1 and the value.
//!
//! This module knows the shapes of openraft's types, and nothing of
//! sockets, keys or files: framing and authentication are `transport`'s,
//! the file layout is `storage`'s.

use std::collections::BTreeSet;

use baton_membership::{
    ChangeLoads, CommittedLoads, Member, MemberLoad, View, ViewNumber, MAX_MEMBERS, REASON_HISTORY,
};
use baton_shmem::InvalidProposal;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    CommittedLeaderId, EmptyNode, Entry, EntryPayload, LeaderId, LogId, Membership, SnapshotMeta,
    StoredMembership, Vote,
};

use crate::types::{NodeId, Outcome, Propose, TypeConfig};

/// Most entries one message or file may hold.
const MAX_ENTRIES: usize = 4096;
/// Most voter sets in a membership (two during a joint change).
const MAX_CONFIGS: usize = 2;
/// Most nodes a membership may name.
const MAX_NODES: usize = 64;

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end inside a field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A tag byte this build does not know.
    #[error("unknown {what} tag {tag}")]
    Tag {
        /// The field.
        what: &'static str,
        /// The byte read.
        tag: u8,
    },
    /// A count beyond the format's limit.
    #[error("{what}: {n} is too many")]
    TooMany {
        /// The field.
        what: &'static str,
        /// The count read.
        n: usize,
    },
    /// A field whose value the format never writes.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes left over after the last field.
    #[error("{0} bytes after the end")]
    Trailing(usize),
}

/// Appends fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer appending to `buf`.
    pub fn new(buf: Vec<u8>) -> Writer {
        Writer { buf }
    }

    /// The bytes written.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// A byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A little-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A little-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A little-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A u32 length and the bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }

    fn count(&mut self, n: usize) {
        self.u32(n as u32);
    }

    fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
}

/// Reads fields from a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    /// Whether every byte was read (an optional trailing field is absent).
    pub fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    /// A byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A little-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// A little-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A u32 length and that many bytes.
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    /// A count of items at least `min_size` bytes each, at most `max`: an
    /// allocation sized by it is bounded by the input.
    fn count(
        &mut self,
        what: &'static str,
        max: usize,
        min_size: usize,
    ) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(DecodeError::TooMany { what, n });
        }
        if n.saturating_mul(min_size) > self.rest.len() {
            return Err(DecodeError::Truncated(what));
        }
        Ok(n)
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::Tag { what, tag }),
        }
    }
}

/// A value with a byte form.
pub trait Codec: Sized {
    /// Appends the value.
    fn encode(&self, w: &mut Writer);
    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// The value alone, as bytes.
pub fn to_bytes<T: Codec>(v: &T) -> Vec<u8> {
    let mut w = Writer::default();
    v.encode(&mut w);
    w.into_inner()
}

/// The value `bytes` hold, with nothing after it.
pub fn from_bytes<T: Codec>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = T::decode(&mut r)?;
    r.finish()?;
    Ok(v)
}

impl<T: Codec> Codec for Option<T> {
    fn encode(&self, w: &mut Writer) {
        match self {
            None => w.u8(0),
            Some(v) => {
                w.u8(1);
                v.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.bool("option")? {
            false => Ok(None),
            true => Ok(Some(T::decode(r)?)),
        }
    }
}

impl Codec for LogId<NodeId> {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.leader_id.term);
        w.u64(self.leader_id.node_id);
        w.u64(self.index);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let term = r.u64("log id")?;
        let node_id = r.u64("log id")?;
        let index = r.u64("log id")?;
        Ok(LogId::new(CommittedLeaderId::new(term, node_id), index))
    }
}

impl Codec for Vote<NodeId> {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.leader_id.term);
        w.u64(self.leader_id.node_id);
        w.bool(self.committed);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let term = r.u64("vote")?;
        let node_id = r.u64("vote")?;
        let committed = r.bool("vote")?;
        Ok(Vote {
            leader_id: LeaderId { term, node_id },
            committed,
        })
    }
}

impl Codec for View {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.number.0);
        w.u16(self.proposer);
        for r in self.reasons {
            w.u64(r);
        }
        members(&self.members, w);
        // The loads committed with this view and the three before it
        // (issue 20): an optional trailing list, written only when one is
        // there, so views without loads keep the older bytes. A view is
        // always the last field of what carries it (an outcome, a client
        // answer, a snapshot). Loads never read stay out (`Unread` is the
        // shared segment's, never the Raft's).
        if self
            .loads
            .iter()
            .any(|l| matches!(l, CommittedLoads::Read(_)))
        {
            for l in self.loads.iter() {
                match l {
                    CommittedLoads::Read(l) => Some(l.clone()),
                    _ => None,
                }
                .encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let number = ViewNumber(r.u32("view")?);
        let proposer = r.u16("view")?;
        let mut reasons = [0; REASON_HISTORY];
        for x in &mut reasons {
            *x = r.u64("view reasons")?;
        }
        let members = read_members(r)?;
        let mut loads = [const { CommittedLoads::None }; REASON_HISTORY];
        if !r.at_end() {
            for l in &mut loads {
                if let Some(read) = Option::<ChangeLoads>::decode(r)? {
                    *l = CommittedLoads::Read(read);
                }
            }
        }
        Ok(View {
            number,
            proposer,
            reasons,
            members,
            loads: Box::new(loads),
        })
    }
}

fn members(ms: &[Member], w: &mut Writer) {
    w.count(ms.len());
    for m in ms {
        w.u16(m.id);
        w.u32(m.epoch);
    }
}

fn read_members(r: &mut Reader<'_>) -> Result<Vec<Member>, DecodeError> {
    // A proposal may name more members than a view holds (it is then
    // refused by the machine), but never more than a byte of ids.
    let n = r.count("members", 4 * MAX_MEMBERS, 6)?;
    (0..n)
        .map(|_| {
            Ok(Member {
                id: r.u16("member")?,
                epoch: r.u32("member")?,
            })
        })
        .collect()
}

impl Codec for ChangeLoads {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.capacity);
        w.u32(self.orphans);
        w.count(self.members.len());
        for m in &self.members {
            w.u16(m.id);
            w.u32(m.connections);
            w.u32(m.busy_ppm);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let capacity = r.u32("loads")?;
        let orphans = r.u32("loads")?;
        let n = r.count("member loads", MAX_MEMBERS, 10)?;
        let members = (0..n)
            .map(|_| {
                Ok(MemberLoad {
                    id: r.u16("member load")?,
                    connections: r.u32("member load")?,
                    busy_ppm: r.u32("member load")?,
                })
            })
            .collect::<Result<_, DecodeError>>()?;
        Ok(ChangeLoads {
            capacity,
            orphans,
            members,
        })
    }
}

/// A proposal's fields before its optional loads.
fn propose_base(r: &mut Reader<'_>) -> Result<Propose, DecodeError> {
    Ok(Propose {
        proposer: r.u16("proposal")?,
        expected: ViewNumber(r.u32("proposal")?),
        members: read_members(r)?,
        reason: r.u64("proposal")?,
        loads: None,
    })
}

/// A proposal's loads (issue 20) follow its other fields, only when it
/// has some: as the last field of a client request they are there when
/// bytes are left; inside a log entry, the entry's payload tag says so
/// (1 without, 3 with), since entries follow each other.
impl Codec for Propose {
    fn encode(&self, w: &mut Writer) {
        w.u16(self.proposer);
        w.u32(self.expected.0);
        members(&self.members, w);
        w.u64(self.reason);
        if let Some(l) = &self.loads {
            l.encode(w);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut p = propose_base(r)?;
        if !r.at_end() {
            p.loads = Some(ChangeLoads::decode(r)?);
        }
        Ok(p)
    }
}

impl Codec for InvalidProposal {
    fn encode(&self, w: &mut Writer) {
        let (tag, v) = match *self {
            InvalidProposal::Proposer(id) => (0, id as u32),
            InvalidProposal::MemberId(id) => (1, id as u32),
            InvalidProposal::ZeroEpoch(id) => (2, id as u32),
            InvalidProposal::Duplicate(id) => (3, id as u32),
            InvalidProposal::Exhausted(n) => (4, n.0),
        };
        w.u8(tag);
        w.u32(v);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tag = r.u8("invalid proposal")?;
        let v = r.u32("invalid proposal")?;
        let id = || u16::try_from(v).map_err(|_| DecodeError::Invalid("box id"));
        Ok(match tag {
            0 => InvalidProposal::Proposer(id()?),
            1 => InvalidProposal::MemberId(id()?),
            2 => InvalidProposal::ZeroEpoch(id()?),
            3 => InvalidProposal::Duplicate(id()?),
            4 => InvalidProposal::Exhausted(ViewNumber(v)),
            tag => {
                return Err(DecodeError::Tag {
                    what: "invalid proposal",
                    tag,
                })
            }
        })
    }
}

impl Codec for Outcome {
    fn encode(&self, w: &mut Writer) {
        match self {
            Outcome::Committed(v) => {
                w.u8(0);
                v.encode(w);
            }
            Outcome::Conflict(v) => {
                w.u8(1);
                v.encode(w);
            }
            Outcome::Invalid(e) => {
                w.u8(2);
                e.encode(w);
            }
            Outcome::NotAProposal => w.u8(3),
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("outcome")? {
            0 => Outcome::Committed(View::decode(r)?),
            1 => Outcome::Conflict(View::decode(r)?),
            2 => Outcome::Invalid(InvalidProposal::decode(r)?),
            3 => Outcome::NotAProposal,
            tag => {
                return Err(DecodeError::Tag {
                    what: "outcome",
                    tag,
                })
            }
        })
    }
}

fn node_set(ids: impl ExactSizeIterator<Item = NodeId>, w: &mut Writer) {
    w.count(ids.len());
    for id in ids {
        w.u64(id);
    }
}

fn read_node_set(r: &mut Reader<'_>) -> Result<BTreeSet<NodeId>, DecodeError> {
    let n = r.count("node ids", MAX_NODES, 8)?;
    (0..n).map(|_| r.u64("node id")).collect()
}

impl Codec for Membership<NodeId, EmptyNode> {
    fn encode(&self, w: &mut Writer) {
        let configs = self.get_joint_config();
        w.count(configs.len());
        for c in configs {
            node_set(c.iter().copied(), w);
        }
        let nodes: Vec<NodeId> = self.nodes().map(|(id, _)| *id).collect();
        node_set(nodes.into_iter(), w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count("membership configs", MAX_CONFIGS, 4)?;
        let configs = (0..n)
            .map(|_| read_node_set(r))
            .collect::<Result<Vec<_>, _>>()?;
        let nodes = read_node_set(r)?;
        let m = Membership::new(configs, nodes);
        // openraft adds every voter to the node set: a node set and voter
        // sets each within the limit can still add up to more nodes than
        // the encoding allows, which would be stored or forwarded and then
        // fail to decode (found by fuzzing, fuzz/corpus/raft_message).
        let n = m.nodes().count();
        if n > MAX_NODES {
            return Err(DecodeError::TooMany {
                what: "node ids",
                n,
            });
        }
        Ok(m)
    }
}

impl Codec for StoredMembership<NodeId, EmptyNode> {
    fn encode(&self, w: &mut Writer) {
        self.log_id().encode(w);
        self.membership().encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let log_id = Option::<LogId<NodeId>>::decode(r)?;
        Ok(StoredMembership::new(log_id, Membership::decode(r)?))
    }
}

impl Codec for SnapshotMeta<NodeId, EmptyNode> {
    fn encode(&self, w: &mut Writer) {
        self.last_log_id.encode(w);
        self.last_membership.encode(w);
        w.bytes(self.snapshot_id.as_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let last_log_id = Option::<LogId<NodeId>>::decode(r)?;
        let last_membership = StoredMembership::decode(r)?;
        let id = r.bytes("snapshot id")?;
        let snapshot_id = std::str::from_utf8(id)
            .map_err(|_| DecodeError::Invalid("snapshot id"))?
            .to_owned();
        Ok(SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        })
    }
}

impl Codec for Entry<TypeConfig> {
    fn encode(&self, w: &mut Writer) {
        self.log_id.encode(w);
        match &self.payload {
            EntryPayload::Blank => w.u8(0),
            EntryPayload::Normal(p) => {
                w.u8(if p.loads.is_some() { 3 } else { 1 });
                p.encode(w);
            }
            EntryPayload::Membership(m) => {
                w.u8(2);
                m.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let log_id = LogId::decode(r)?;
        let payload = match r.u8("entry payload")? {
            0 => EntryPayload::Blank,
            1 => EntryPayload::Normal(propose_base(r)?),
            3 => {
                let mut p = propose_base(r)?;
                p.loads = Some(ChangeLoads::decode(r)?);
                EntryPayload::Normal(p)
            }
            2 => EntryPayload::Membership(Membership::decode(r)?),
            tag => {
                return Err(DecodeError::Tag {
                    what: "entry payload",
                    tag,
                })
            }
        };
        Ok(Entry { log_id, payload })
    }
}

/// Smallest encoded entry: a log id and a payload tag.
const MIN_ENTRY: usize = 25;

/// Appends `entries` with their count.
pub fn encode_entries(entries: &[Entry<TypeConfig>], w: &mut Writer) {
    w.count(entries.len());
    for e in entries {
        e.encode(w);
    }
}

/// Reads a count and that many entries.
pub fn decode_entries(r: &mut Reader<'_>) -> Result<Vec<Entry<TypeConfig>>, DecodeError> {
    let n = r.count("entries", MAX_ENTRIES, MIN_ENTRY)?;
    (0..n).map(|_| Entry::decode(r)).collect()
}

impl Codec for VoteRequest<NodeId> {
    fn encode(&self, w: &mut Writer) {
        self.vote.encode(w);
        self.last_log_id.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(VoteRequest {
            vote: Vote::decode(r)?,
            last_log_id: Option::decode(r)?,
        })
    }
}

impl Codec for VoteResponse<NodeId> {
    fn encode(&self, w: &mut Writer) {
        self.vote.encode(w);
        w.bool(self.vote_granted);
        self.last_log_id.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(VoteResponse {
            vote: Vote::decode(r)?,
            vote_granted: r.bool("vote granted")?,
            last_log_id: Option::decode(r)?,
        })
    }
}

impl Codec for AppendEntriesRequest<TypeConfig> {
    fn encode(&self, w: &mut Writer) {
        self.vote.encode(w);
        self.prev_log_id.encode(w);
        encode_entries(&self.entries, w);
        self.leader_commit.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AppendEntriesRequest {
            vote: Vote::decode(r)?,
            prev_log_id: Option::decode(r)?,
            entries: decode_entries(r)?,
            leader_commit: Option::decode(r)?,
        })
    }
}

impl Codec for AppendEntriesResponse<NodeId> {
    fn encode(&self, w: &mut Writer) {
        match self {
            AppendEntriesResponse::Success => w.u8(0),
            AppendEntriesResponse::PartialSuccess(id) => {
                w.u8(1);
                id.encode(w);
            }
            AppendEntriesResponse::Conflict => w.u8(2),
            AppendEntriesResponse::HigherVote(v) => {
                w.u8(3);
                v.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("append response")? {
            0 => AppendEntriesResponse::Success,
            1 => AppendEntriesResponse::PartialSuccess(Option::decode(r)?),
            2 => AppendEntriesResponse::Conflict,
            3 => AppendEntriesResponse::HigherVote(Vote::decode(r)?),
            tag => {
                return Err(DecodeError::Tag {
                    what: "append response",
                    tag,
                })
            }
        })
    }
}

impl Codec for InstallSnapshotRequest<TypeConfig> {
    fn encode(&self, w: &mut Writer) {
        self.vote.encode(w);
        self.meta.encode(w);
        w.u64(self.offset);
        w.bytes(&self.data);
        w.bool(self.done);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(InstallSnapshotRequest {
            vote: Vote::decode(r)?,
            meta: SnapshotMeta::decode(r)?,
            offset: r.u64("snapshot offset")?,
            data: r.bytes("snapshot data")?.to_vec(),
            done: r.bool("snapshot done")?,
        })
    }
}

impl Codec for InstallSnapshotResponse<NodeId> {
    fn encode(&self, w: &mut Writer) {
        self.vote.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(InstallSnapshotResponse {
            vote: Vote::decode(r)?,
        })
    }
}
