//! openraft's state machine store: the [`ViewMachine`] applied from the
//! log, and its snapshots (the view) kept in the state file.
//!
//! The applied view lives in memory; what survives a restart is the last
//! snapshot, and openraft applies the entries after it again as the
//! leader's commit index reaches them (the log is purged only behind a
//! snapshot, so nothing applied is lost). This module knows nothing of
//! the network.

use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard};

use baton_membership::View;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EmptyNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};

use super::file::{StateFile, StoredSnapshot};
use crate::codec::{from_bytes, to_bytes};
use crate::machine::ViewMachine;
use crate::types::{NodeId, Outcome, TypeConfig};

/// What the replica has applied.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The view.
    pub machine: ViewMachine,
    /// The last entry applied.
    pub last_applied: Option<LogId<NodeId>>,
    /// The last membership applied.
    pub membership: StoredMembership<NodeId, EmptyNode>,
}

/// Why the file's snapshot could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the snapshot's view does not decode: {0}")]
pub struct BadSnapshot(#[from] crate::codec::DecodeError);

/// The state machine store; clones share the applied view (the
/// `RaftStore` reads it) and the file.
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    file: Arc<Mutex<StateFile>>,
    applied: Arc<Mutex<Applied>>,
}

impl StateMachineStore {
    /// The store over `file`, starting from its snapshot.
    pub fn new(file: Arc<Mutex<StateFile>>) -> Result<StateMachineStore, BadSnapshot> {
        let applied = match &lock(&file).state().snapshot {
            None => Applied::default(),
            Some(s) => Applied {
                machine: ViewMachine::new(from_bytes::<View>(&s.data)?),
                last_applied: s.meta.last_log_id,
                membership: s.meta.last_membership.clone(),
            },
        };
        Ok(StateMachineStore {
            file,
            applied: Arc::new(Mutex::new(applied)),
        })
    }

    /// The view applied so far.
    pub fn view(&self) -> View {
        self.applied().machine.view().clone()
    }

    fn applied(&self) -> MutexGuard<'_, Applied> {
        lock(&self.applied)
    }

    fn save(&self, snap: StoredSnapshot) -> std::io::Result<()> {
        lock(&self.file).update(|s| s.snapshot = Some(snap))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Updates are single steps; a panic elsewhere leaves the value whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn snapshot_of(s: &StoredSnapshot) -> Snapshot<TypeConfig> {
    Snapshot {
        meta: s.meta.clone(),
        snapshot: Box::new(Cursor::new(s.data.clone())),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let snap = {
            let a = self.applied();
            let snapshot_id = match a.last_applied {
                Some(id) => format!(
                    "{}-{}-{}",
                    id.leader_id.term, id.leader_id.node_id, id.index
                ),
                None => "empty".to_owned(),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: a.last_applied,
                    last_membership: a.membership.clone(),
                    snapshot_id,
                },
                data: to_bytes(a.machine.view()),
            }
        };
        let out = snapshot_of(&snap);
        self.save(snap)
            .map_err(|e| StorageIOError::write_snapshot(Some(out.meta.signature()), &e))?;
        Ok(out)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, EmptyNode>), StorageError<NodeId>>
    {
        let a = self.applied();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut a = self.applied();
        let mut out = Vec::new();
        for e in entries {
            a.last_applied = Some(e.log_id);
            out.push(match e.payload {
                EntryPayload::Blank => Outcome::NotAProposal,
                EntryPayload::Normal(p) => a.machine.apply(&p),
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(e.log_id), m);
                    Outcome::NotAProposal
                }
            });
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachineStore {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, EmptyNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let view = from_bytes::<View>(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.save(StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let mut a = self.applied();
        a.machine = ViewMachine::new(view);
        a.last_applied = meta.last_log_id;
        a.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(lock(&self.file).state().snapshot.as_ref().map(snapshot_of))
    }
}
