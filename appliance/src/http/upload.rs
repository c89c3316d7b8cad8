//! Uploads (POST and PUT bodies) on their way to the origin: spooled to a
//! file so that a survivor can continue one its box did not finish.
//!
//! A request body is written to the spool as it arrives — by the worker's
//! spool writer thread ([`super::spool_writer`]), from the [`SpoolWrite`]s
//! its session makes — and the checkpoint says how many of its bytes are
//! there ([`UploadState`]): only bytes whose write was answered. With
//! `ack_after_commit` the client's bytes are acknowledged only once both
//! the spool write and that checkpoint are done (ARCHITECTURE.md), so a
//! survivor finds every acknowledged byte in the spool and the client
//! retransmits the rest to it. The spool directory must therefore be one
//! every box that may take the connection over can read — beside the
//! segment, on the same file system (`[checkpoint] upload_dir`).
//!
//! A spool file is named after its connection (both addresses and ports and
//! the client's initial sequence number), which the survivor's restored
//! connection has too. It is removed when its response is done, when the
//! connection closes, or by [`Spool::reap`] when its box died and nobody
//! took it over.
//!
//! It knows files and the upload block of a checkpoint, nothing of
//! sessions or of when a write happens.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use baton_dataplane::tcp::SeqNum;

/// An upload as a checkpoint records it (see [`baton_shmem::UploadBlock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    /// TCP sequence number of the body's first byte.
    pub body_start_seq: SeqNum,
    /// The body's length (`Content-Length`).
    pub content_length: u64,
    /// Body bytes in the spool.
    pub received: u64,
    /// The body went to the origin.
    pub forwarded: bool,
    /// The body's `Content-Type`.
    pub content_type: Option<String>,
}

impl UploadState {
    /// The client sequence number up to which this state covers the
    /// client's bytes: everything before it is in the spool.
    pub fn covered_seq(&self) -> SeqNum {
        // Sequence space wraps: only the low 32 bits of the count matter.
        self.body_start_seq + self.received as u32
    }
}

/// What a session asks done to its upload's spool file. Sessions do no
/// file I/O: the worker hands these to [`super::spool_writer`], off the
/// worker thread, and tells the session what became of each
/// ([`SpoolDone`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolOp {
    /// A new, empty file (replacing an old one of that name).
    Create,
    /// A taken-over upload's file, cut to the `len` bytes its checkpoint
    /// covers; fails when the file is shorter or missing.
    Reopen {
        /// Bytes to keep.
        len: u64,
    },
    /// Body bytes to add at the end.
    Append(bytes::Bytes),
    /// The upload is over: delete the file.
    Remove,
}

/// One [`SpoolOp`] on the file `name`, for the connection's upload number
/// `upload` (a connection's uploads share its file name; the number tells
/// a late answer for an earlier one apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolWrite {
    /// The spool file's name.
    pub name: std::sync::Arc<str>,
    /// Which upload of the connection.
    pub upload: u64,
    /// What to do.
    pub op: SpoolOp,
}

/// What became of a [`SpoolWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolDone {
    /// The upload it was for.
    pub upload: u64,
    /// Which operation it was.
    pub op: SpoolOpKind,
    /// The file's length after it, or why it failed.
    pub result: Result<u64, String>,
}

/// A [`SpoolOp`] without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolOpKind {
    /// [`SpoolOp::Create`].
    Create,
    /// [`SpoolOp::Reopen`].
    Reopen,
    /// [`SpoolOp::Append`].
    Append,
    /// [`SpoolOp::Remove`].
    Remove,
}

impl SpoolOp {
    /// The kind, for its [`SpoolDone`].
    pub fn kind(&self) -> SpoolOpKind {
        match self {
            SpoolOp::Create => SpoolOpKind::Create,
            SpoolOp::Reopen { .. } => SpoolOpKind::Reopen,
            SpoolOp::Append(_) => SpoolOpKind::Append,
            SpoolOp::Remove => SpoolOpKind::Remove,
        }
    }
}

/// The spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// For names of connections that have none (tests over kernel sockets).
    next_anonymous: AtomicU64,
}

impl Spool {
    /// A spool in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Spool> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Spool {
            dir,
            next_anonymous: AtomicU64::new(0),
        })
    }

    /// A spool in a private temporary directory of this process (tests,
    /// and boxes without a checkpoint segment).
    pub fn private() -> io::Result<Spool> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Spool::new(std::env::temp_dir().join(format!("baton-uploads-{}-{n}", std::process::id())))
    }

    /// A spool whose directory does not exist: every upload fails to
    /// create its file (answered 500).
    pub fn unusable() -> Spool {
        Spool {
            dir: PathBuf::from("/nonexistent/baton-uploads"),
            next_anonymous: AtomicU64::new(0),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A name for a connection the transport cannot name.
    pub fn anonymous_name(&self) -> String {
        let n = self.next_anonymous.fetch_add(1, Ordering::Relaxed);
        format!("local-{}-{n}", std::process::id())
    }

    /// Where the file of the connection named `name` is.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A new, empty spool file for the connection named `name` (an old
    /// file of that name, from a connection whose 4-tuple and initial
    /// sequence number were the same, is replaced).
    pub fn create(&self, name: &str) -> io::Result<SpoolFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path(name);
        // Clients' bodies: readable by the box's user only.
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        Ok(SpoolFile { file, path, len: 0 })
    }

    /// The spool file of a taken-over upload, cut to the `received` bytes
    /// its checkpoint covers (the dead box may have written more after its
    /// last checkpoint; the client sends those again).
    pub fn reopen(&self, name: &str, received: u64) -> io::Result<SpoolFile> {
        let path = self.path(name);
        // Appending: writes go after the kept bytes.
        let file = OpenOptions::new().append(true).open(&path)?;
        let len = file.metadata()?.len();
        if len < received {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("spool holds {len} bytes, the checkpoint says {received}"),
            ));
        }
        file.set_len(received)?;
        Ok(SpoolFile {
            file,
            path,
            len: received,
        })
    }

    /// Removes spool files not written for `older_than`: uploads of a box
    /// that died with nobody to take them over (the client went away).
    /// Returns how many were removed.
    pub fn reap(&self, older_than: Duration) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > older_than);
            if old && fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// One upload's spool file.
#[derive(Debug)]
pub struct SpoolFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl SpoolFile {
    /// Appends body bytes.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes in the file.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Deletes the file: the upload is over.
    pub fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_spool_is_cut_to_what_the_checkpoint_covers() {
        let spool = Spool::private().unwrap();
        let mut f = spool.create("c1").unwrap();
        f.append(b"0123456789").unwrap();
        drop(f);
        let mut f = spool.reopen("c1", 4).unwrap();
        assert_eq!(f.len(), 4);
        f.append(b"abcd").unwrap();
        assert_eq!(fs::read(spool.dir().join("c1")).unwrap(), b"0123abcd");
        f.remove();
        assert!(!spool.dir().join("c1").exists());
        let _ = fs::remove_dir(spool.dir());
    }

    #[test]
    fn a_spool_shorter_than_its_checkpoint_is_refused() {
        let spool = Spool::private().unwrap();
        spool.create("c2").unwrap().append(b"abc").unwrap();
        let e = spool.reopen("c2", 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(spool.reopen("missing", 0).is_err());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(spool.reap(Duration::from_millis(10)), 1);
        let _ = fs::remove_dir(spool.dir());
    }
}
