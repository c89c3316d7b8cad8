//! The one small file per box that holds its Raft state: the vote, the log
//! (a handful of entries: it is purged behind each snapshot), and the last
//! snapshot (the view, with the log id and membership it stands for).
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! |-------|-------|
//! | 0..8  | magic `BATONRFT` |
//! | 8..12 | version (1) |
//! | 12..16 | body length |
//! | body  | vote (option), last purged log id (option), entries (count, each), snapshot (option: meta, data bytes), in `codec`'s format |
//! | 32    | SHA-256 of everything before it |
//!
//! Every change rewrites the whole file: to `<path>.tmp`, `fsync`, rename
//! over `<path>`, `fsync` of the directory, and only then does the caller
//! report success (a box that forgot its vote could vote twice in a term).
//! A torn write leaves the previous file; a file whose checksum, magic,
//! version or fields are wrong is a [`FileError::Corrupt`], never a panic
//! and never silently an empty state. This module knows nothing of
//! openraft's traits, only the values they store.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use openraft::{EmptyNode, Entry, LogId, SnapshotMeta, Vote};
use sha2::{Digest, Sha256};

use crate::codec::{decode_entries, encode_entries, Codec, DecodeError, Reader, Writer};
use crate::types::{NodeId, TypeConfig};

const MAGIC: &[u8; 8] = b"BATONRFT";
const VERSION: u32 = 1;
const PREFIX: usize = 16;
const SUM: usize = 32;

/// A snapshot as the file keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSnapshot {
    /// What it stands for.
    pub meta: SnapshotMeta<NodeId, EmptyNode>,
    /// The encoded view.
    pub data: Vec<u8>,
}

/// Everything the file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RaftState {
    /// The last vote saved.
    pub vote: Option<Vote<NodeId>>,
    /// The newest log id purged (behind a snapshot).
    pub last_purged: Option<LogId<NodeId>>,
    /// The log entries kept, by index.
    pub log: BTreeMap<u64, Entry<TypeConfig>>,
    /// The last snapshot built or installed.
    pub snapshot: Option<StoredSnapshot>,
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading or writing it failed.
    #[error("raft state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// It is not a state file this build wrote, or it was damaged.
    #[error("raft state {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The state file and the state it holds.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: RaftState,
}

impl StateFile {
    /// Opens the file at `path`; a missing file is a pristine state (it is
    /// created at the first change).
    pub fn open(path: &Path) -> Result<StateFile, FileError> {
        let state = match fs::read(path) {
            Ok(bytes) => decode_file(&bytes).map_err(|reason| FileError::Corrupt {
                path: path.to_owned(),
                reason,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => RaftState::default(),
            Err(source) => {
                return Err(FileError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Ok(StateFile {
            path: path.to_owned(),
            state,
        })
    }

    /// The state as last saved.
    pub fn state(&self) -> &RaftState {
        &self.state
    }

    /// Applies `change` and saves it durably; on failure the state in
    /// memory stays as it was on disk.
    pub fn update(&mut self, change: impl FnOnce(&mut RaftState)) -> io::Result<()> {
        let mut next = self.state.clone();
        change(&mut next);
        write_durably(&self.path, &encode_file(&next))?;
        self.state = next;
        Ok(())
    }
}

fn encode_file(s: &RaftState) -> Vec<u8> {
    let mut w = Writer::new(Vec::with_capacity(1024));
    s.vote.encode(&mut w);
    s.last_purged.encode(&mut w);
    let entries: Vec<Entry<TypeConfig>> = s.log.values().cloned().collect();
    encode_entries(&entries, &mut w);
    match &s.snapshot {
        None => w.u8(0),
        Some(snap) => {
            w.u8(1);
            snap.meta.encode(&mut w);
            w.bytes(&snap.data);
        }
    }
    let body = w.into_inner();
    let mut out = Vec::with_capacity(PREFIX + body.len() + SUM);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

fn decode_file(bytes: &[u8]) -> Result<RaftState, String> {
    if bytes.len() < PREFIX + SUM || &bytes[..8] != MAGIC {
        return Err("not a Baton raft state file (magic)".into());
    }
    let (signed, sum) = bytes.split_at(bytes.len() - SUM);
    if Sha256::digest(signed).as_slice() != sum {
        return Err("checksum mismatch (torn or damaged)".into());
    }
    let mut r = Reader::new(&signed[8..]);
    let version = r.u32("version").map_err(|e| e.to_string())?;
    if version != VERSION {
        return Err(format!("version {version}, this build reads {VERSION}"));
    }
    let len = r.u32("length").map_err(|e| e.to_string())? as usize;
    if len != signed.len() - PREFIX {
        return Err("body length disagrees with the file size".into());
    }
    decode_body(&mut r).map_err(|e| e.to_string())
}

fn decode_body(r: &mut Reader<'_>) -> Result<RaftState, DecodeError> {
    let vote = Option::<Vote<NodeId>>::decode(r)?;
    let last_purged = Option::<LogId<NodeId>>::decode(r)?;
    let log = decode_entries(r)?
        .into_iter()
        .map(|e| (e.log_id.index, e))
        .collect();
    let snapshot = match r.u8("snapshot")? {
        0 => None,
        1 => Some(StoredSnapshot {
            meta: SnapshotMeta::decode(r)?,
            data: r.bytes("snapshot data")?.to_vec(),
        }),
        tag => {
            return Err(DecodeError::Tag {
                what: "snapshot",
                tag,
            })
        }
    };
    Ok(RaftState {
        vote,
        last_purged,
        log,
        snapshot,
    })
}

fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // The votes and the membership log are the box user's only (0600); a
    // leftover temporary file (or a symlink planted there) is removed, never
    // written through: O_EXCL does not follow symlinks.
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    // The rename is durable only once the directory is.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Propose;
    use baton_membership::{Member, ViewNumber};
    use openraft::{CommittedLeaderId, EntryPayload, LeaderId, Membership, StoredMembership};
    use std::collections::BTreeSet;

    /// A fresh directory, removed when the test ends.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let d = std::env::temp_dir().join(format!("baton-raft-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{d:?}: {e}"));
            TempDir(d)
        }

        fn file(&self) -> PathBuf {
            self.0.join("box.raft")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn state() -> RaftState {
        let voters: BTreeSet<NodeId> = [1, 2, 3].into();
        let membership = Membership::new(vec![voters], ());
        let mut log = BTreeMap::new();
        log.insert(
            5,
            Entry {
                log_id: log_id(2, 5),
                payload: EntryPayload::Normal(Propose {
                    proposer: 2,
                    expected: ViewNumber(3),
                    members: vec![Member { id: 1, epoch: 4 }],
                    reason: 99,
                    loads: None,
                }),
            },
        );
        log.insert(
            6,
            Entry {
                log_id: log_id(2, 6),
                payload: EntryPayload::Membership(membership.clone()),
            },
        );
        RaftState {
            vote: Some(Vote {
                leader_id: LeaderId::new(2, 3),
                committed: true,
            }),
            last_purged: Some(log_id(1, 4)),
            log,
            snapshot: Some(StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: Some(log_id(1, 4)),
                    last_membership: StoredMembership::new(Some(log_id(0, 0)), membership),
                    snapshot_id: "1-1-4".into(),
                },
                data: vec![1, 2, 3],
            }),
        }
    }

    #[test]
    fn what_was_saved_is_what_a_restart_reads() {
        let dir = TempDir::new("roundtrip");
        let path = dir.file();
        let mut f = StateFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f.state(),
            &RaftState::default(),
            "a missing file is pristine"
        );
        f.update(|s| *s = state()).unwrap_or_else(|e| panic!("{e}"));
        let again = StateFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.state(), &state());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).map(|m| m.permissions().mode());
        assert_eq!(
            mode.ok().map(|m| m & 0o777),
            Some(0o600),
            "private to the box user"
        );
    }

    #[test]
    fn a_damaged_file_is_reported_corrupt_never_read_as_empty() {
        let dir = TempDir::new("damaged");
        let path = dir.file();
        let mut f = StateFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
        f.update(|s| *s = state()).unwrap_or_else(|e| panic!("{e}"));
        let good = fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() - 1].to_vec(), "checksum"),
            (Vec::new(), "magic"),
            (b"BATONRFT".to_vec(), "magic"),
        ];
        let mut flipped = good.clone();
        flipped[40] ^= 0x10;
        cases.push((flipped, "checksum"));
        for (bytes, why) in cases {
            fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
            match StateFile::open(&path) {
                Err(FileError::Corrupt { reason, .. }) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{why}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_file_of_another_version_with_a_valid_checksum_is_refused_by_version() {
        let dir = TempDir::new("version");
        let path = dir.file();
        let mut bytes = encode_file(&state());
        bytes[8] = 9;
        let n = bytes.len() - SUM;
        let sum = Sha256::digest(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum);
        fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        match StateFile::open(&path) {
            Err(FileError::Corrupt { reason, .. }) => {
                assert!(reason.contains("version 9"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
