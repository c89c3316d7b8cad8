//! openraft's log storage over the state file: the vote and the entries,
//! each change durable before it is reported.
//!
//! `append` calls its flush callback only after the file was rewritten and
//! synced, so openraft never counts an entry as persisted that a crash
//! could lose. The sync runs on the Raft's own thread: it holds up only
//! the Raft's runtime (a few ms for a file of a few KiB), never a caller.
//! This module knows nothing of the view or the network.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};

use super::file::StateFile;
use crate::types::{NodeId, TypeConfig};

/// The log store; clones share the file (one is openraft's log reader).
#[derive(Debug, Clone)]
pub struct LogStore {
    file: Arc<Mutex<StateFile>>,
}

impl LogStore {
    /// The log store over `file` (shared with the state machine's store).
    pub fn new(file: Arc<Mutex<StateFile>>) -> LogStore {
        LogStore { file }
    }

    fn file(&self) -> MutexGuard<'_, StateFile> {
        // An update replaces the state only after the file was written, so
        // a panic elsewhere never leaves it half-changed.
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .file()
            .state()
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let f = self.file();
        let s = f.state();
        let last_purged_log_id = s.last_purged;
        let last_log_id = s
            .log
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        self.file()
            .update(|s| s.vote = Some(vote))
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.file().state().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let r = self.file().update(|s| {
            for e in entries {
                s.log.insert(e.log_id.index, e);
            }
        });
        match r {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e).into();
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.file()
            .update(|s| {
                s.log.split_off(&log_id.index);
            })
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.file()
            .update(|s| {
                s.log = s.log.split_off(&(log_id.index + 1));
                s.last_purged = Some(log_id);
            })
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
