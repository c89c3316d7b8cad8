//! One upload (POST or PUT body) on its way through the box: its body
//! bytes go to the spool as [`SpoolWrite`]s the session hands out (no file
//! I/O here), the answers ([`SpoolDone`]) say how much is spooled, and
//! only spooled bytes count in its checkpoint ([`UploadState::received`]);
//! once all are spooled it is forwarded to the origin (see
//! `super::super::upload` for the spool and the takeover rules).
//!
//! It knows nothing of the session's queue or of responses.

use std::path::PathBuf;
use std::sync::Arc;

use baton_dataplane::tcp::SeqNum;
use bytes::Bytes;

use super::super::checkpoint::ResponseCheckpoint;
use super::super::request::{Method, Request};
use super::super::upload::{SpoolDone, SpoolOp, SpoolOpKind, SpoolWrite, UploadState};
use crate::cache::{UploadMethod, UploadRequest};

/// Most body bytes handed to the spool writer and not yet answered: input
/// beyond it stays in TCP's receive queue, so a slow disk pushes back on
/// the client instead of filling memory.
pub const SPOOL_AHEAD: u64 = 1 << 20;

/// What a [`SpoolDone`] meant for the upload.
#[derive(Debug, PartialEq, Eq)]
pub enum Spooled {
    /// Not this upload's (an earlier one's, or a removal).
    Ignored,
    /// The file is there (created or reopened).
    Opened,
    /// More of the body is spooled: the checkpoint may cover it now.
    Progress,
    /// The spool failed: the upload cannot go on.
    Failed {
        /// The error.
        why: String,
        /// It was the reopening of a taken-over upload's file.
        reopening: bool,
    },
}

/// An upload being received, spooled, or passed on.
#[derive(Debug)]
pub struct Upload {
    /// As the checkpoint records it; `received` counts spooled bytes.
    pub state: UploadState,
    /// Body bytes handed to the spool writer (spooled or not yet).
    queued: u64,
    /// The spool writer created (or reopened) the file.
    opened: bool,
    /// Which upload of the connection (for its spool answers).
    id: u64,
    /// The spool file's name.
    name: Arc<str>,
    /// Where the spool file is, for the fetcher.
    path: PathBuf,
    /// The request method (POST or PUT).
    pub method: Method,
    minor: u8,
    /// The URL.
    pub url: String,
    persistent: bool,
    /// The n-th request on the connection (from 1).
    request_count: u32,
}

impl Upload {
    /// A new upload for `req` with a body of `length` bytes starting at
    /// client sequence `body_start_seq`; emits the creation of its file.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        req: &Request,
        length: u64,
        body_start_seq: SeqNum,
        id: u64,
        name: Arc<str>,
        path: PathBuf,
        request_count: u32,
        out: &mut Vec<SpoolWrite>,
    ) -> Upload {
        let u = Upload {
            state: UploadState {
                body_start_seq,
                content_length: length,
                received: 0,
                forwarded: false,
                content_type: req.content_type.clone(),
            },
            queued: 0,
            opened: false,
            id,
            name,
            path,
            method: req.method,
            minor: req.minor,
            url: req.url.clone(),
            persistent: req.persistent,
            request_count,
        };
        u.emit(SpoolOp::Create, out);
        u
    }

    /// A taken-over upload in `state` whose spool keeps `state.received`
    /// bytes; emits the reopening (and cutting) of its file.
    pub fn resumed(
        cp: &ResponseCheckpoint,
        state: UploadState,
        id: u64,
        name: Arc<str>,
        path: PathBuf,
        out: &mut Vec<SpoolWrite>,
    ) -> Upload {
        let u = Upload {
            queued: state.received,
            opened: false,
            state,
            id,
            name,
            path,
            method: cp.method,
            minor: cp.minor,
            url: cp.url.clone(),
            persistent: cp.persistent,
            request_count: cp.request_count,
        };
        u.emit(
            SpoolOp::Reopen {
                len: u.state.received,
            },
            out,
        );
        u
    }

    fn emit(&self, op: SpoolOp, out: &mut Vec<SpoolWrite>) {
        out.push(SpoolWrite {
            name: Arc::clone(&self.name),
            upload: self.id,
            op,
        });
    }

    /// True while body bytes are still to come from the client.
    pub fn receiving(&self) -> bool {
        self.queued < self.state.content_length
    }

    /// True once every body byte is in the spool (and the file is there,
    /// even for an empty body).
    pub fn spooled(&self) -> bool {
        self.opened && self.state.received >= self.state.content_length
    }

    /// True while spool writes are unanswered.
    pub fn pending(&self) -> bool {
        !self.opened || self.queued > self.state.received
    }

    /// Body bytes it takes from the client now (the rest of the body,
    /// within what the spool writer may have outstanding).
    pub fn room(&self) -> u64 {
        let ahead = self.queued.saturating_sub(self.state.received);
        (self.state.content_length - self.queued).min(SPOOL_AHEAD.saturating_sub(ahead))
    }

    /// Hands body bytes to the spool (at most [`Self::room`] of them).
    pub fn take_body(&mut self, data: &[u8], out: &mut Vec<SpoolWrite>) {
        debug_assert!(data.len() as u64 <= self.room());
        self.queued += data.len() as u64;
        self.emit(SpoolOp::Append(Bytes::copy_from_slice(data)), out);
    }

    /// Takes in what the spool writer did.
    pub fn on_spooled(&mut self, done: &SpoolDone) -> Spooled {
        if done.upload != self.id || done.op == SpoolOpKind::Remove {
            return Spooled::Ignored;
        }
        match (&done.result, done.op) {
            (Err(e), op) => Spooled::Failed {
                why: e.clone(),
                reopening: op == SpoolOpKind::Reopen,
            },
            (Ok(_), SpoolOpKind::Create | SpoolOpKind::Reopen) => {
                self.opened = true;
                Spooled::Opened
            }
            (Ok(len), _) => {
                // Answers come in order: the file's length is what is
                // spooled of the body.
                self.state.received = (*len).min(self.state.content_length);
                Spooled::Progress
            }
        }
    }

    /// Emits the removal of its file: the upload is over on this box.
    pub fn remove(self, out: &mut Vec<SpoolWrite>) {
        self.emit(SpoolOp::Remove, out);
    }

    /// Its checkpoint, before its response.
    pub fn checkpoint(&self) -> ResponseCheckpoint {
        ResponseCheckpoint {
            object_start_seq: SeqNum(0),
            status: 0,
            method: self.method,
            minor: self.minor,
            url: self.url.clone(),
            etag: None,
            last_modified: None,
            range: None,
            persistent: self.persistent,
            request_count: self.request_count,
            body_offset: 0,
            upload: Some(self.state.clone()),
        }
    }

    /// What the fetcher needs to send it to the origin.
    pub fn request(&self) -> UploadRequest {
        UploadRequest {
            method: if self.method == Method::Put {
                UploadMethod::Put
            } else {
                UploadMethod::Post
            },
            body: self.path.clone(),
            length: self.state.content_length,
            content_type: self.state.content_type.clone(),
        }
    }
}
