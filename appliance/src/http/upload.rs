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

use baton_dataplane::tcp::SeqNum;

pub use crate::spool::{Spool, SpoolFile};

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
