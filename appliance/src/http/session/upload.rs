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

use super::super::checkpoint::{NotResumable, ResponseCheckpoint};
use super::super::request::{Method, Request};
use super::super::upload::{Spool, SpoolDone, SpoolOp, SpoolOpKind, SpoolWrite, UploadState};
use super::resume::{self, UploadStart};
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
            body_len: None,
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

/// How a taken-over upload goes on (see [`UploadDesk::resume`]).
#[derive(Debug)]
pub enum Resumed {
    /// Answer 502: the origin may have acted on it already.
    Lost502(Request),
    /// Receive the rest of its body, then pass it on.
    Continue(Request),
}

/// The upload side of one connection: its upload (one at a time: nothing
/// after it is read until its response is done, as clients do not
/// pipeline after a non-idempotent request, RFC 9112 §9.3.2), where the
/// client's bytes stand in its sequence space, and the spool writes to
/// hand out.
#[derive(Debug, Default)]
pub struct UploadDesk {
    /// What a connection keeps once it began an upload (boxed: most
    /// sessions never upload, and an idle one should stay small, issue 19).
    spooling: Option<Box<Spooling>>,
    /// The client's sequence number after the last byte given to the
    /// session (`None` over transports without sequence numbers: then an
    /// upload has no checkpoint).
    input_end_seq: Option<SeqNum>,
    /// Names this connection's spool file (the same on a survivor).
    conn_name: Option<Box<str>>,
}

/// The upload side of a connection that began one.
#[derive(Debug, Default)]
struct Spooling {
    /// The upload in progress (boxed: the desk outlives it).
    current: Option<Box<Upload>>,
    /// Spool writes not handed out yet, in order.
    out: Vec<SpoolWrite>,
    /// Uploads begun on this connection (numbers their spool answers).
    begun: u64,
}

impl UploadDesk {
    /// The sequence number of the client's next byte (kept if already
    /// known: a resumed upload knows its own).
    pub fn set_input_seq(&mut self, seq: Option<SeqNum>) {
        if seq.is_some() || self.current().is_none() {
            self.input_end_seq = seq;
        }
    }

    /// Heap bytes held: the upload side, the upload in progress, the
    /// spool name, the spool writes not handed out.
    pub fn heap_bytes(&self) -> usize {
        self.conn_name.as_ref().map_or(0, |n| n.len())
            + self.spooling.as_ref().map_or(0, |s| {
                std::mem::size_of::<Spooling>()
                    + s.current
                        .as_ref()
                        .map_or(0, |_| std::mem::size_of::<Upload>())
                    + s.out.capacity() * std::mem::size_of::<SpoolWrite>()
            })
    }

    /// Names the connection's spool file.
    pub fn set_conn_name(&mut self, name: Option<String>) {
        self.conn_name = name.map(String::into_boxed_str);
    }

    /// The upload in progress, if any.
    pub fn current(&self) -> Option<&Upload> {
        self.spooling.as_ref()?.current.as_deref()
    }

    /// The upload in progress, if any, to change.
    pub fn current_mut(&mut self) -> Option<&mut Upload> {
        self.spooling.as_mut()?.current.as_deref_mut()
    }

    /// The upload side, made when the connection begins its first upload.
    fn spooling(&mut self) -> &mut Spooling {
        self.spooling.get_or_insert_with(Box::default)
    }

    /// `n` more bytes came from the client.
    pub fn advance_input(&mut self, n: usize) {
        // Sequence space wraps: only the low 32 bits of the count matter.
        self.input_end_seq = self.input_end_seq.map(|s| s + n as u32);
    }

    /// True while the current upload's body is still to come.
    pub fn receiving(&self) -> bool {
        self.current().is_some_and(Upload::receiving)
    }

    /// True while spool writes are unanswered.
    pub fn pending(&self) -> bool {
        self.current().is_some_and(Upload::pending)
    }

    /// False while an upload's body is complete or its spool writes are
    /// far enough behind (true when there is no upload).
    pub fn wants_body(&self) -> bool {
        self.current().is_none_or(|u| u.receiving() && u.room() > 0)
    }

    /// Starts the upload of `req`, `length` body bytes, whose body begins
    /// `buffered` bytes before the input's end; it is the connection's
    /// `request_count`-th request.
    pub fn begin(
        &mut self,
        req: &Request,
        length: u64,
        buffered: usize,
        request_count: u32,
        spool: &Spool,
    ) {
        let name: Arc<str> = match &self.conn_name {
            Some(n) => Arc::from(&**n),
            None => spool.anonymous_name().into(),
        };
        let path = spool.path(&name);
        let body_start_seq = self.input_end_seq.map(|end| end - buffered as u32);
        let s = self.spooling();
        s.begun += 1;
        s.current = Some(Box::new(Upload::begin(
            req,
            length,
            body_start_seq.unwrap_or_default(),
            s.begun,
            name,
            path,
            request_count,
            &mut s.out,
        )));
    }

    /// Takes what it can of `input` as body bytes; returns how many.
    pub fn receive(&mut self, input: &[u8]) -> usize {
        let Some(s) = self.spooling.as_mut() else {
            return 0;
        };
        let Some(u) = s.current.as_mut() else {
            return 0;
        };
        let k = u.room().min(input.len() as u64) as usize;
        if k > 0 {
            u.take_body(&input[..k], &mut s.out);
        }
        k
    }

    /// Continues, on a survivor, the upload `u` of checkpoint `cp`: the
    /// spool holds the `received` bytes the checkpoint covers (the spool
    /// writer cuts the file to them), the restored connection asks the
    /// client for the rest.
    pub fn resume(
        &mut self,
        cp: &ResponseCheckpoint,
        u: &UploadState,
        max_upload_bytes: u64,
        spool: &Spool,
    ) -> Result<Resumed, NotResumable> {
        let Some(name) = self.conn_name.as_deref().map(Arc::<str>::from) else {
            tracing::warn!(url = %cp.url, "upload cannot be continued: connection has no name");
            return Err(NotResumable::UploadLost);
        };
        let input_end_seq = &mut self.input_end_seq;
        let s = self.spooling.get_or_insert_with(Box::default);
        s.begun += 1;
        match resume::upload(cp, u, max_upload_bytes) {
            UploadStart::Lost => Err(NotResumable::UploadLost),
            UploadStart::Lost502(req) => {
                tracing::warn!(url = %cp.url, "upload was passed to the origin before the takeover: answering 502");
                s.out.push(SpoolWrite {
                    name,
                    upload: s.begun,
                    op: SpoolOp::Remove,
                });
                Ok(Resumed::Lost502(req))
            }
            UploadStart::Continue { req, have, state } => {
                tracing::info!(
                    url = %cp.url,
                    received = have,
                    length = u.content_length,
                    "upload continued after a takeover"
                );
                let path = spool.path(&name);
                let upload = Upload::resumed(cp, state, s.begun, name, path, &mut s.out);
                *input_end_seq = Some(upload.state.covered_seq());
                s.current = Some(Box::new(upload));
                Ok(Resumed::Continue(req))
            }
        }
    }

    /// The upload is over on this box: its spool file goes.
    pub fn discard(&mut self) {
        if let Some(s) = self.spooling.as_mut() {
            if let Some(u) = s.current.take() {
                u.remove(&mut s.out);
            }
        }
    }

    /// The current upload's checkpoint, when the transport gives sequence
    /// numbers (without them, no survivor could place its body).
    pub fn checkpoint(&self) -> Option<ResponseCheckpoint> {
        self.input_end_seq?;
        Some(self.current()?.checkpoint())
    }

    /// Spool writes for the worker's spool writer, in order.
    pub fn writes(&mut self) -> impl Iterator<Item = SpoolWrite> + '_ {
        self.spooling
            .as_mut()
            .map(|s| s.out.drain(..))
            .into_iter()
            .flatten()
    }
}
