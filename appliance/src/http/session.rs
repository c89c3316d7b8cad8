//! One client connection's HTTP/1.1 state machine, sans-IO.
//!
//! Read RFC 9112 (message syntax, persistence) and RFC 9110 §13–§14
//! (conditionals, ranges) first. The session owns no socket and reads no
//! clock: the worker glue calls it in this order —
//!
//! * inputs: [`HttpSession::on_bytes`] with bytes the client sent,
//!   [`HttpSession::on_eof`] when the client half-closes,
//!   [`HttpSession::on_timeout`] when [`HttpSession::poll_timeout`] is due,
//!   [`HttpSession::on_object_progress`] when the worker's fetch-progress
//!   channel names an object;
//! * outputs: [`HttpSession::poll_send`] with the room in the TCP send
//!   queue, repeatedly until it returns `None`; after sending each piece,
//!   [`HttpSession::on_sent`] with the sequence number `send` returned —
//!   it yields a [`ResponseCheckpoint`] when a response starts;
//! * then [`HttpSession::should_close`]: FIN (after the queued bytes) or
//!   reset.
//!
//! Requests are parsed as they arrive (pipelining), queued, and answered
//! strictly in order. A response head is one small `Bytes`; a body is
//! handed out as slices of the object's chunks, never copied. When an
//! object is still being fetched, the body flows as the origin delivers it;
//! `poll_send` returns `None` meanwhile and the worker is woken through the
//! object's notifier.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use baton_dataplane::tcp::SeqNum;
use bytes::Bytes;

use super::checkpoint::{NotResumable, ResponseCheckpoint};
use super::context::WorkerContext;
use super::counters::bump;
use super::request::{self, Method, Parsed, Request, RequestBody};
use super::response::{self, ContentRange, ObjectHead};
use super::upload::{SpoolFile, UploadState};
use crate::cache::{Object, ObjectId, ObjectMeta, Read, UploadMethod, UploadRequest};
use baton_http::{Decision, Preconditions, Validators};

/// Most parsed requests waiting for their turn; further input stays
/// unparsed (and [`HttpSession::wants_input`] turns false) until earlier
/// answers are done.
pub const MAX_PIPELINE: usize = 32;

/// How the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Send FIN after every queued byte (RFC 9112 §9.6).
    Graceful,
    /// Reset: a response could not be completed (its object failed
    /// mid-body) or resumed after a takeover.
    Reset,
}

// Made once per request and moved once: boxing would cost an allocation
// per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Pending {
    Request(Request),
    /// A refused request (400, 408, 414, 431): answered, then closed.
    Reject(u16),
}

#[derive(Debug)]
struct BodyPlan {
    object: Arc<Object>,
    /// Next object byte to send (absolute object offset).
    next: u64,
    /// One past the last object byte to send; `None`: to the object's end.
    end: Option<u64>,
}

#[derive(Debug)]
enum Stage {
    /// An upload: sending `100 Continue` (from `pos`) if the client asked
    /// for it, then waiting for the whole body and for the checkpoint that
    /// says it goes to the origin; then the origin's answer is an object.
    AwaitBody {
        interim: Option<(Bytes, usize)>,
    },
    /// Waiting for the object's metadata (origin head).
    AwaitMeta(Arc<Object>),
    /// Sending the head (from `pos`), then the body, if any.
    Head {
        head: Bytes,
        pos: usize,
        body: Option<BodyPlan>,
    },
    Body(BodyPlan),
}

#[derive(Debug)]
struct Resume {
    cp: ResponseCheckpoint,
    /// Acknowledged sequence minus the body's first sequence: body bytes
    /// the client has, or (negative) head bytes it still lacks.
    delta: i64,
}

#[derive(Debug)]
struct Active {
    req: Request,
    stage: Stage,
    /// The checkpoint of this response, stamped by `on_sent`.
    cp: Option<ResponseCheckpoint>,
    resume: Option<Resume>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastOut {
    Nothing,
    /// Head bytes from `pos` of a head of `len` bytes.
    Head {
        pos: usize,
        len: usize,
    },
    Body,
    /// An interim `100 Continue`: not part of any response's bytes.
    Interim,
}

/// The upload being received or passed on (see [`super::upload`]).
#[derive(Debug)]
struct Upload {
    state: UploadState,
    /// `None` after a failure to write it (the upload is then answered 500).
    file: Option<SpoolFile>,
    method: Method,
    minor: u8,
    url: String,
    persistent: bool,
    /// The n-th request on the connection (from 1).
    request_count: u32,
}

impl Upload {
    fn receiving(&self) -> bool {
        self.state.received < self.state.content_length
    }

    fn checkpoint(&self) -> ResponseCheckpoint {
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

    fn remove(self) {
        if let Some(f) = self.file {
            f.remove();
        }
    }
}

enum Step {
    Out(Bytes, LastOut),
    Wait,
    Done,
    Abort,
}

/// One client connection's HTTP state (see the module doc).
#[derive(Debug)]
pub struct HttpSession {
    ctx: Arc<WorkerContext>,
    inbuf: Vec<u8>,
    /// Request body bytes still to drop from the input.
    discard: u64,
    queue: VecDeque<Pending>,
    active: Option<Active>,
    /// False once no further request will be read.
    reading: bool,
    reset: bool,
    last_out: LastOut,
    /// The object `poll_send` last stopped on.
    blocked: Option<ObjectId>,
    checkpoint: Option<ResponseCheckpoint>,
    body_sent: u64,
    request_count: u32,
    last_activity: Instant,
    partial_since: Option<Instant>,
    /// The upload in progress. One at a time: nothing after it is read
    /// until its response is done (clients do not pipeline after a
    /// non-idempotent request, RFC 9112 §9.3.2).
    upload: Option<Upload>,
    /// The client's sequence number after the last byte given to the
    /// session (`None` over transports without sequence numbers: then an
    /// upload has no checkpoint).
    input_end_seq: Option<SeqNum>,
    /// Names this connection's spool file (the same on a survivor).
    conn_name: Option<String>,
    /// The upload's state changed: the worker should checkpoint now.
    commit_due: bool,
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        self.ctx.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response decided for a request and an object.
struct Planned {
    status: u16,
    head: Bytes,
    body: Option<BodyPlan>,
    persistent: bool,
    cp: ResponseCheckpoint,
}

/// Decides status, head and body for `req` from an object with `meta`
/// (RFC 9110 §13.2.2 order: If-None-Match, else If-Modified-Since, then
/// If-Range and Range).
fn plan(req: &Request, object: &Arc<Object>, meta: &ObjectMeta, request_count: u32) -> Planned {
    let mut persistent = req.persistent;
    let is_get = req.method == Method::Get;
    // An upload's answer is the origin's own, whatever its status.
    let cacheable = matches!(meta.status, 200 | 206) && !req.method.is_upload();
    let (status, content_length, content_range, body) = if !cacheable {
        // Passed through from the origin (404 and the like): as it came.
        let has_body = req.method != Method::Head && !matches!(meta.status, 204 | 304);
        let body = has_body.then_some((0, meta.length));
        (meta.status, meta.length, None, body)
    } else {
        // A body whose length the origin did not announce (chunked) has
        // one once complete.
        let len = meta
            .length
            .or_else(|| object.body().map(|b| meta.base + b.len()));
        let pre = Preconditions {
            if_match: req.if_match.as_deref(),
            if_unmodified_since: req.if_unmodified_since.as_deref(),
            if_none_match: req.if_none_match.as_deref(),
            if_modified_since: req.if_modified_since.as_deref(),
            if_range: req.if_range.as_deref(),
            range: req.range.as_deref(),
        };
        let validators = Validators {
            etag: meta.etag.as_deref(),
            last_modified: meta.last_modified.as_deref(),
            length: len,
        };
        match baton_http::decide(is_get, &pre, &validators) {
            Decision::PreconditionFailed => (412, Some(0), None, None),
            Decision::NotModified => (304, None, None, None),
            Decision::Partial {
                first,
                last,
                length,
            } => (
                206,
                Some(last - first + 1),
                Some(ContentRange::Bytes {
                    first,
                    last,
                    len: length,
                }),
                is_get.then_some((first, Some(last + 1))),
            ),
            Decision::Unsatisfiable { length } => (
                416,
                Some(0),
                Some(ContentRange::Unsatisfied { len: length }),
                None,
            ),
            Decision::Full => (200, len, None, is_get.then_some((0, len))),
        }
    };
    if content_length.is_none() && status != 304 {
        // A body of unknown length ends with the connection (RFC 9112 §6.3
        // rule 8).
        persistent = false;
    }
    let head = response::object_head(&ObjectHead {
        status,
        meta,
        content_length,
        content_range,
        persistent,
        minor: req.minor,
    });
    let range = match content_range {
        Some(ContentRange::Bytes { first, last, .. }) => Some((first, last)),
        _ => None,
    };
    Planned {
        status,
        head,
        body: body.map(|(next, end)| BodyPlan {
            object: Arc::clone(object),
            next,
            end,
        }),
        persistent,
        cp: ResponseCheckpoint {
            object_start_seq: SeqNum(0),
            status,
            method: req.method,
            minor: req.minor,
            url: req.url.clone(),
            etag: meta.etag.clone(),
            last_modified: meta.last_modified.clone(),
            range,
            persistent,
            request_count,
            body_offset: range.map_or(0, |r| r.0),
            upload: None,
        },
    }
}

impl HttpSession {
    /// A session for a new connection, or — at the connection cap — the
    /// 503 answer to send before closing it (RFC 9110 §15.6.4).
    pub fn accept(ctx: &Arc<WorkerContext>, now: Instant) -> Result<HttpSession, Bytes> {
        if ctx.sessions() >= ctx.max_sessions {
            bump(&ctx.counters.refused_connections);
            ctx.counters.status(503);
            return Err(response::generated(503, false, 1, &ctx.http_date(now)));
        }
        Ok(HttpSession::new(Arc::clone(ctx), now))
    }

    /// A session for a new connection (use [`HttpSession::accept`] to
    /// honour the connection cap).
    pub fn new(ctx: Arc<WorkerContext>, now: Instant) -> HttpSession {
        ctx.live.fetch_add(1, Ordering::Relaxed);
        HttpSession {
            ctx,
            inbuf: Vec::new(),
            discard: 0,
            queue: VecDeque::new(),
            active: None,
            reading: true,
            reset: false,
            last_out: LastOut::Nothing,
            blocked: None,
            checkpoint: None,
            body_sent: 0,
            request_count: 0,
            last_activity: now,
            partial_since: None,
            upload: None,
            input_end_seq: None,
            conn_name: None,
            commit_due: false,
        }
    }

    /// Bytes from the client whose first byte has TCP sequence number `seq`.
    #[cfg(test)]
    pub fn on_bytes_at(&mut self, data: &[u8], seq: Option<SeqNum>, now: Instant) {
        self.set_input_seq(seq);
        self.on_bytes(data, now);
    }

    /// The TCP sequence number of the next byte the client sends (once,
    /// when the connection starts here: an upload's checkpoint records
    /// where its body sits in the client's byte stream). Kept if already
    /// known (a resumed upload knows its own).
    pub fn set_input_seq(&mut self, seq: Option<SeqNum>) {
        if seq.is_some() || self.upload.is_none() {
            self.input_end_seq = seq;
        }
    }

    /// Names the connection for its spool file; the transport derives it
    /// from what a survivor's restored connection has too (see
    /// [`super::upload`]).
    pub fn set_conn_name(&mut self, name: Option<String>) {
        self.conn_name = name;
    }

    /// Continues, on a survivor, the response `cp` describes, from the
    /// byte after `acked_seq` — what the client acknowledged (ARCHITECTURE.md,
    /// Takeover step 6). The object comes from this box's cache if it holds
    /// the same version, else from the origin with `Range` and `If-Range`.
    /// When the object turns out to have changed, or the position cannot be
    /// located, the session asks for a reset ([`Self::should_close`]);
    /// that may happen later, once the origin has answered.
    pub fn resume(
        ctx: Arc<WorkerContext>,
        cp: &ResponseCheckpoint,
        acked_seq: SeqNum,
        conn_name: Option<String>,
        now: Instant,
    ) -> HttpSession {
        let mut s = HttpSession::new(ctx, now);
        s.conn_name = conn_name;
        s.request_count = cp.request_count.saturating_sub(1);
        s.checkpoint = Some(cp.clone());
        if let Some(u) = &cp.upload {
            s.resume_upload(cp, u, now);
            return s;
        }
        // Sequence numbers wrap (RFC 9293 §3.4): the signed 32-bit
        // difference is the distance.
        let delta = i64::from(acked_seq - cp.object_start_seq);
        let req = Request {
            range: cp.range.map(|(a, b)| format!("bytes={a}-{b}")),
            ..Request::bare(cp.method, cp.minor, cp.url.clone(), cp.persistent)
        };
        // The checkpoint comes from the shared segment: check its range
        // rather than trust it.
        let body_len = match (cp.method, cp.range) {
            (Method::Head, _) => Some(0),
            (_, Some((a, b))) => match b.checked_sub(a) {
                Some(d) => Some(d.saturating_add(1)),
                None => {
                    s.not_resumable(NotResumable::Position);
                    return s;
                }
            },
            _ => None,
        };
        match body_len {
            Some(l) if delta >= 0 && delta as u64 == l => {
                // The client has the whole response: carry on as an idle
                // connection.
                s.finish_response(cp.persistent, now);
                bump(&s.ctx.counters.resumed);
                return s;
            }
            Some(l) if delta >= 0 && delta as u64 > l => {
                // It acknowledged bytes of a later response this checkpoint
                // does not describe: nothing here says what it still needs.
                s.not_resumable(NotResumable::Position);
                return s;
            }
            _ => {}
        }
        if !cp.rebuildable() {
            s.not_resumable(NotResumable::Position);
            return s;
        }
        let from = cp.body_offset.saturating_add(delta.max(0) as u64);
        let object = match s.ctx.cache.peek(&cp.url) {
            Some(o) => o,
            None => {
                let validator = cp.etag.clone().or_else(|| cp.last_modified.clone());
                if validator.is_none() {
                    s.not_resumable(NotResumable::Position);
                    return s;
                }
                s.ctx.cache.fetch_range(&cp.url, from, validator)
            }
        };
        // What the client already has of this body (for `app_block`).
        s.body_sent = delta.max(0) as u64;
        s.active = Some(Active {
            req,
            stage: Stage::AwaitMeta(object),
            cp: None,
            resume: Some(Resume {
                cp: cp.clone(),
                delta,
            }),
        });
        s
    }

    /// Continues, on a survivor, an upload whose body the dead box was
    /// receiving: the spool holds the `received` bytes the checkpoint
    /// covers, the restored connection asks the client for the rest.
    fn resume_upload(&mut self, cp: &ResponseCheckpoint, u: &UploadState, now: Instant) {
        if u.content_length > self.ctx.limits.max_upload_bytes {
            // The segment says more than this box would ever accept.
            self.not_resumable(NotResumable::UploadLost);
            return;
        }
        let have = if u.forwarded {
            u.content_length
        } else {
            u.received
        };
        let file = match self
            .conn_name
            .as_deref()
            .ok_or_else(|| std::io::Error::other("connection has no name"))
            .and_then(|name| self.ctx.spool.reopen(name, have))
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(url = %cp.url, "upload cannot be continued: {e}");
                self.not_resumable(NotResumable::UploadLost);
                return;
            }
        };
        let req = Request {
            body: RequestBody::Length(u.content_length),
            content_type: u.content_type.clone(),
            ..Request::bare(cp.method, cp.minor, cp.url.clone(), cp.persistent)
        };
        if u.forwarded && !cp.method.is_idempotent() {
            // The origin may have acted on the body already: a proxy must
            // not send a non-idempotent request again (RFC 9110 §9.2.2).
            // The client learns that the answer was lost.
            tracing::warn!(url = %cp.url, "upload was passed to the origin before the takeover: answering 502");
            file.remove();
            self.stop_reading();
            self.active = Some(self.generated_active(502, req, false, now));
            return;
        }
        bump(&self.ctx.counters.uploads_resumed);
        tracing::info!(
            url = %cp.url,
            received = have,
            length = u.content_length,
            "upload continued after a takeover"
        );
        let upload = Upload {
            state: UploadState {
                received: have,
                forwarded: false,
                ..u.clone()
            },
            file: Some(file),
            method: cp.method,
            minor: cp.minor,
            url: cp.url.clone(),
            persistent: cp.persistent,
            request_count: cp.request_count,
        };
        self.input_end_seq = Some(upload.state.covered_seq());
        self.upload = Some(upload);
        self.active = Some(Active {
            req,
            stage: Stage::AwaitBody { interim: None },
            cp: None,
            resume: None,
        });
        self.publish_upload();
    }

    fn not_resumable(&mut self, why: NotResumable) {
        tracing::debug!("response not resumable: {why}");
        bump(&self.ctx.counters.not_resumable);
        self.reset = true;
        self.reading = false;
        self.active = None;
        self.queue.clear();
        self.discard_upload();
    }

    /// The connection is gone for good (not handed to another box): its
    /// upload's spool file goes too.
    pub fn discard_upload(&mut self) {
        if let Some(u) = self.upload.take() {
            u.remove();
        }
    }

    /// Makes the upload's state the connection's checkpoint, once the
    /// upload is the request being answered (a checkpoint describes one
    /// request; earlier pipelined answers keep theirs until done).
    fn publish_upload(&mut self) {
        let Some(u) = &self.upload else {
            return;
        };
        let current = self
            .active
            .as_ref()
            .is_some_and(|a| a.req.method.is_upload());
        if current && self.input_end_seq.is_some() {
            self.checkpoint = Some(u.checkpoint());
            self.commit_due = true;
        }
    }

    /// True once after the upload's state changed: the worker writes the
    /// connection's checkpoint ([`Self::checkpoint`]) before anything else
    /// (with `ack_after_commit`, that is what acknowledges the body bytes).
    pub fn take_commit_due(&mut self) -> bool {
        std::mem::take(&mut self.commit_due)
    }

    /// The upload failed on this box (spool write, stalled client): answer
    /// `status` and close.
    fn fail_upload(&mut self, status: u16, now: Instant) {
        self.discard_upload();
        self.stop_reading();
        match self.active.as_mut() {
            Some(a) if a.req.method.is_upload() => {
                let req = Request::bare(a.req.method, a.req.minor, a.req.url.clone(), false);
                self.active = Some(self.generated_active(status, req, false, now));
            }
            _ => {
                // Still queued behind earlier answers: it is the last
                // request read.
                if let Some(Pending::Request(r)) = self.queue.back() {
                    if r.method.is_upload() {
                        self.queue.pop_back();
                        self.queue.push_back(Pending::Reject(status));
                    }
                }
            }
        }
    }

    // ---- getters ----

    /// The checkpoint of the latest response (stamped with its sequence
    /// number), for the worker to write with every checkpoint of this
    /// connection.
    pub fn checkpoint(&self) -> Option<&ResponseCheckpoint> {
        self.checkpoint.as_ref()
    }

    /// The application block for this connection's next checkpoint write
    /// (`None`: nothing a survivor could resume; write the record without
    /// one).
    #[cfg(test)]
    pub fn app_block(&self) -> Option<baton_shmem::AppBlock<'_>> {
        self.checkpoint.as_ref()?.to_app_block(self.body_sent)
    }

    /// Requests answered on this connection.
    #[cfg(test)]
    pub fn request_count(&self) -> u32 {
        self.request_count
    }

    /// The object whose progress this session waits for, if any: set when
    /// `poll_send` stopped for lack of object bytes (not for lack of send
    /// space), so a worker only keeps sessions the object's progress can
    /// move.
    pub fn waiting_on(&self) -> Option<ObjectId> {
        self.blocked
    }

    fn active_object(&self) -> Option<ObjectId> {
        match &self.active.as_ref()?.stage {
            Stage::AwaitMeta(o) => Some(o.id()),
            Stage::Head { body, .. } => body.as_ref().map(|b| b.object.id()),
            Stage::Body(b) => Some(b.object.id()),
            Stage::AwaitBody { .. } => None,
        }
    }

    /// False while enough requests are queued: the glue should leave
    /// further bytes in the TCP receive queue (its window then pushes back
    /// on the client).
    pub fn wants_input(&self) -> bool {
        self.reading
            && self.queue.len() < MAX_PIPELINE
            && self.upload.as_ref().is_none_or(Upload::receiving)
    }

    /// How the connection must end, once `poll_send` has nothing more:
    /// `None` while it stays open.
    pub fn should_close(&self) -> Option<Close> {
        if self.reset {
            return Some(Close::Reset);
        }
        (!self.reading && self.queue.is_empty() && self.active.is_none()).then_some(Close::Graceful)
    }

    /// When [`Self::on_timeout`] is due: the slow-request deadline while a
    /// request head is incomplete, the idle deadline while nothing is in
    /// progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.reading && self.upload.as_ref().is_some_and(Upload::receiving) {
            // A body that stops coming holds a spool file and a slot.
            return Some(self.last_activity + self.ctx.limits.idle_timeout);
        }
        // While answers are owed, the client is receiving, not stalling:
        // no timer (TCP's own timers watch a dead client).
        if !self.reading || self.active.is_some() || !self.queue.is_empty() {
            return None;
        }
        Some(match self.partial_since {
            Some(t) => t + self.ctx.limits.request_timeout,
            None => self.last_activity + self.ctx.limits.idle_timeout,
        })
    }

    // ---- inputs ----

    /// Bytes from the client.
    pub fn on_bytes(&mut self, data: &[u8], now: Instant) {
        // Counted here, so the transport is asked for a sequence number
        // once per connection, not per read.
        self.input_end_seq = self.input_end_seq.map(|s| s + data.len() as u32);
        self.last_activity = now;
        if !self.reading {
            // After a close decision further input is not processed
            // (RFC 9112 §9.6).
            return;
        }
        self.inbuf.extend_from_slice(data);
        self.parse_input(now);
    }

    /// The client half-closed: answer what was asked, then close.
    pub fn on_eof(&mut self) {
        self.reading = false;
        self.inbuf.clear();
        self.partial_since = None;
    }

    /// A timer set from [`Self::poll_timeout`] fired.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.reading
            && self.upload.as_ref().is_some_and(Upload::receiving)
            && now >= self.last_activity + self.ctx.limits.idle_timeout
        {
            self.fail_upload(408, now);
            return;
        }
        if !self.reading || self.active.is_some() || !self.queue.is_empty() {
            return;
        }
        if let Some(t) = self.partial_since {
            if now >= t + self.ctx.limits.request_timeout {
                self.queue.push_back(Pending::Reject(408));
                self.stop_reading();
            }
            return;
        }
        if self.active.is_none()
            && self.queue.is_empty()
            && now >= self.last_activity + self.ctx.limits.idle_timeout
        {
            // RFC 9112 §9.6: an idle connection may be closed at any time.
            bump(&self.ctx.counters.idle_timeouts);
            self.stop_reading();
        }
    }

    /// The worker learned that object `id` progressed; true when this
    /// session waits for it (then call `poll_send`).
    pub fn on_object_progress(&mut self, id: ObjectId) -> bool {
        self.waiting_on() == Some(id)
    }

    fn stop_reading(&mut self) {
        self.reading = false;
        self.inbuf.clear();
        self.partial_since = None;
    }

    fn parse_input(&mut self, now: Instant) {
        while self.reading {
            if self.upload.is_some() {
                self.receive_body(now);
                break;
            }
            if self.discard > 0 {
                let k = (self.discard.min(self.inbuf.len() as u64)) as usize;
                self.inbuf.drain(..k);
                self.discard -= k as u64;
                if self.discard > 0 {
                    break;
                }
            }
            // RFC 9112 §2.2: empty lines before a request line are ignored.
            let skip = self
                .inbuf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            self.inbuf.drain(..skip);
            if self.inbuf.is_empty() {
                self.partial_since = None;
                break;
            }
            if self.queue.len() >= MAX_PIPELINE {
                break;
            }
            match request::parse(&self.inbuf, &self.ctx.limits) {
                Ok(Parsed::Partial) => {
                    self.partial_since.get_or_insert(now);
                    break;
                }
                Ok(Parsed::Complete(req, n)) => {
                    self.inbuf.drain(..n);
                    self.partial_since = None;
                    bump(&self.ctx.counters.requests);
                    if req.method.is_upload() {
                        self.begin_upload(req);
                        continue;
                    }
                    if let RequestBody::Length(l) = req.body {
                        self.discard = l;
                    }
                    let last = !req.persistent;
                    self.queue.push_back(Pending::Request(req));
                    if last {
                        self.stop_reading();
                    }
                }
                Err(e) => {
                    tracing::debug!("request refused: {e}");
                    self.queue.push_back(Pending::Reject(e.status()));
                    self.stop_reading();
                }
            }
        }
    }

    /// A POST or PUT head was read: refuse it (411, 413) or spool its body.
    fn begin_upload(&mut self, req: Request) {
        let length = match req.body {
            // A chunked upload would have to be decoded and re-framed;
            // clients send a length when asked (RFC 9110 §15.5.12).
            RequestBody::Unframed => return self.refuse(411),
            RequestBody::Length(n) if n > self.ctx.limits.max_upload_bytes => {
                return self.refuse(413)
            }
            RequestBody::Length(n) => n,
            RequestBody::None => 0,
        };
        let name = self
            .conn_name
            .clone()
            .unwrap_or_else(|| self.ctx.spool.anonymous_name());
        let file = match self.ctx.spool.create(&name) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(dir = %self.ctx.spool.dir().display(), "cannot spool an upload: {e}");
                return self.refuse(500);
            }
        };
        bump(&self.ctx.counters.uploads);
        let ahead = self.queue.len() + usize::from(self.active.is_some());
        let body_start_seq = self.input_end_seq.map(|end| end - self.inbuf.len() as u32);
        self.upload = Some(Upload {
            state: UploadState {
                body_start_seq: body_start_seq.unwrap_or_default(),
                content_length: length,
                received: 0,
                forwarded: false,
                content_type: req.content_type.clone(),
            },
            file: Some(file),
            method: req.method,
            minor: req.minor,
            url: req.url.clone(),
            persistent: req.persistent,
            request_count: self
                .request_count
                .saturating_add(ahead as u32)
                .saturating_add(1),
        });
        self.queue.push_back(Pending::Request(req));
    }

    fn refuse(&mut self, status: u16) {
        self.queue.push_back(Pending::Reject(status));
        self.stop_reading();
    }

    /// Moves the upload's body bytes from the input to its spool file.
    fn receive_body(&mut self, now: Instant) {
        let Some(u) = self.upload.as_mut() else {
            return;
        };
        let k = (u.state.content_length - u.state.received).min(self.inbuf.len() as u64) as usize;
        if k == 0 {
            return;
        }
        let written = match u.file.as_mut() {
            Some(f) => f.append(&self.inbuf[..k]),
            None => Ok(()),
        };
        if let Err(e) = written {
            tracing::warn!(url = %u.url, "cannot spool an upload: {e}");
            return self.fail_upload(500, now);
        }
        self.inbuf.drain(..k);
        u.state.received += k as u64;
        self.publish_upload();
    }

    // ---- outputs ----

    /// The next bytes to send, at most `capacity`; `None` when there is
    /// nothing to send now (waiting for the client, the origin, or done).
    pub fn poll_send(&mut self, capacity: usize, now: Instant) -> Option<Bytes> {
        self.blocked = None;
        if capacity == 0 || self.reset {
            return None;
        }
        loop {
            if self.active.is_none() {
                let next = self.queue.pop_front()?;
                self.active = Some(self.start(next, now));
                self.publish_upload();
            }
            if let Some(out) = self.upload_step(capacity, now) {
                match out {
                    Some(bytes) => return Some(bytes),
                    None => {
                        self.blocked = None;
                        return None;
                    }
                }
            }
            let index = self.request_count.saturating_add(1);
            let mut refused = None;
            let step = match self.active.as_mut() {
                Some(a) => step(a, &self.ctx, capacity, index, &mut refused, now),
                None => continue,
            };
            if let Some(why) = refused {
                self.not_resumable(why);
                return None;
            }
            match step {
                Step::Out(bytes, last) => {
                    self.last_out = last;
                    if let LastOut::Head { pos: 0, .. } = last {
                        // A new response: the count describes it from now.
                        self.body_sent = 0;
                    }
                    if last == LastOut::Body {
                        self.body_sent += bytes.len() as u64;
                        self.ctx
                            .counters
                            .body_bytes
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    }
                    return Some(bytes);
                }
                Step::Wait => {
                    self.blocked = self.active_object();
                    return None;
                }
                Step::Done => {
                    let done = self.active.take();
                    if done.as_ref().is_some_and(|a| a.req.method.is_upload()) {
                        self.discard_upload();
                    }
                    let persistent = done.is_some_and(|a| a.req.persistent);
                    self.finish_response(persistent, now);
                    self.parse_input(now);
                }
                Step::Abort => {
                    self.discard_upload();
                    bump(&self.ctx.counters.aborted);
                    self.active = None;
                    self.queue.clear();
                    self.stop_reading();
                    self.reset = true;
                    return None;
                }
            }
        }
    }

    /// The upload part of `poll_send`: `None` when the active response is
    /// past it; `Some(None)` to wait; `Some(Some(bytes))` to send.
    fn upload_step(&mut self, capacity: usize, now: Instant) -> Option<Option<Bytes>> {
        let a = self.active.as_mut()?;
        let Stage::AwaitBody { interim } = &mut a.stage else {
            return None;
        };
        if let Some((head, pos)) = interim {
            let n = capacity.min(head.len() - *pos);
            let out = head.slice(*pos..*pos + n);
            *pos += n;
            if *pos >= head.len() {
                *interim = None;
            }
            self.last_out = LastOut::Interim;
            return Some(Some(out));
        }
        let Some(u) = self.upload.as_mut() else {
            // Cannot happen: an upload request always has its upload.
            a.stage = Stage::Head {
                head: response::generated(500, false, a.req.minor, &self.ctx.http_date(now)),
                pos: 0,
                body: None,
            };
            a.req.persistent = false;
            self.reading = false;
            return None;
        };
        if u.receiving() {
            return Some(None);
        }
        if !u.state.forwarded {
            // Say so in the segment before the origin sees a byte: a
            // survivor must know the origin may have it (RFC 9110 §9.2.2).
            // (Over a transport without sequence numbers there is no
            // checkpoint to wait for.)
            u.state.forwarded = true;
            self.publish_upload();
            return if self.commit_due { Some(None) } else { None };
        }
        if self.commit_due {
            return Some(None);
        }
        let Some(path) = u.file.as_ref().map(|f| f.path().to_path_buf()) else {
            return Some(None);
        };
        let object = self.ctx.cache.upload(
            &a.req.url,
            UploadRequest {
                method: if a.req.method == Method::Put {
                    UploadMethod::Put
                } else {
                    UploadMethod::Post
                },
                body: path,
                length: u.state.content_length,
                content_type: u.state.content_type.clone(),
            },
        );
        a.stage = Stage::AwaitMeta(object);
        None
    }

    fn finish_response(&mut self, persistent: bool, now: Instant) {
        self.request_count = self.request_count.saturating_add(1);
        self.last_activity = now;
        if self.partial_since.is_some() {
            // A pipelined head arrived while we were busy answering: its
            // clock starts now that it is the one we wait for.
            self.partial_since = Some(now);
        }
        if !persistent {
            self.queue.clear();
            self.stop_reading();
        }
    }

    /// Tells the session that the bytes last returned by `poll_send` were
    /// queued at TCP sequence `first_seq`. Returns the new checkpoint when
    /// they were the start of a response head (the first body byte's
    /// sequence is known from then on, even before any body byte exists).
    pub fn on_sent(&mut self, first_seq: SeqNum) -> Option<ResponseCheckpoint> {
        let last = std::mem::replace(&mut self.last_out, LastOut::Nothing);
        let LastOut::Head { pos, len } = last else {
            return None;
        };
        let mut cp = self.active.as_mut()?.cp.take()?;
        cp.object_start_seq = first_seq + (len - pos) as u32;
        self.checkpoint = Some(cp.clone());
        Some(cp)
    }

    /// A response the box makes up itself, as the active one.
    fn generated_active(
        &self,
        status: u16,
        req: Request,
        persistent: bool,
        now: Instant,
    ) -> Active {
        self.ctx.counters.status(status);
        let head = response::generated(status, persistent, req.minor, &self.ctx.http_date(now));
        Active {
            req: Request { persistent, ..req },
            stage: Stage::Head {
                head,
                pos: 0,
                body: None,
            },
            cp: None,
            resume: None,
        }
    }

    fn start(&mut self, p: Pending, now: Instant) -> Active {
        match p {
            Pending::Reject(status) => self.generated_active(
                status,
                Request::bare(Method::Other, 1, String::new(), false),
                false,
                now,
            ),
            Pending::Request(req) if req.method == Method::Other => {
                let persistent = req.persistent;
                self.generated_active(405, req, persistent, now)
            }
            Pending::Request(req) if !req.url.starts_with('/') => {
                self.discard_upload();
                self.generated_active(400, req, false, now)
            }
            Pending::Request(req) if req.method.is_upload() => {
                let waiting = self.upload.as_ref().is_some_and(Upload::receiving);
                let interim = (req.expect_continue && req.minor == 1 && waiting)
                    .then(|| (response::continue_interim(), 0));
                Active {
                    req,
                    stage: Stage::AwaitBody { interim },
                    cp: None,
                    resume: None,
                }
            }
            Pending::Request(req) => {
                let object = Arc::clone(self.ctx.cache.lookup(&req.url, now).object());
                Active {
                    req,
                    stage: Stage::AwaitMeta(object),
                    cp: None,
                    resume: None,
                }
            }
        }
    }
}

/// Advances one response by one output piece.
fn step(
    a: &mut Active,
    ctx: &WorkerContext,
    capacity: usize,
    request_index: u32,
    refused: &mut Option<NotResumable>,
    now: Instant,
) -> Step {
    loop {
        match &mut a.stage {
            // `HttpSession::upload_step` moves an upload past this stage.
            Stage::AwaitBody { .. } => return Step::Wait,
            Stage::AwaitMeta(object) => {
                let object = Arc::clone(object);
                let Some(meta) = object.meta_or_subscribe(Some(&ctx.notifier)) else {
                    let Some(err) = object.failure() else {
                        return Step::Wait;
                    };
                    if a.resume.is_some() {
                        *refused = Some(NotResumable::Unavailable);
                        return Step::Wait;
                    }
                    let status = err.client_status();
                    ctx.counters.status(status);
                    a.stage = Stage::Head {
                        head: response::generated(
                            status,
                            a.req.persistent,
                            a.req.minor,
                            &ctx.http_date(now),
                        ),
                        pos: 0,
                        body: None,
                    };
                    continue;
                };
                let p = plan(&a.req, &object, &meta, request_index);
                match a.resume.take() {
                    None => {
                        ctx.counters.status(p.status);
                        a.req.persistent = p.persistent;
                        a.cp = Some(p.cp);
                        a.stage = Stage::Head {
                            head: p.head,
                            pos: 0,
                            body: p.body,
                        };
                    }
                    Some(r) => match resume_stage(&r, &meta, p) {
                        Ok(stage) => {
                            bump(&ctx.counters.resumed);
                            a.stage = stage;
                        }
                        Err(why) => {
                            tracing::debug!("resume of {} refused: {why}", r.cp.url);
                            *refused = Some(why);
                            return Step::Wait;
                        }
                    },
                }
            }
            Stage::Head { head, pos, body } => {
                if *pos < head.len() {
                    let n = capacity.min(head.len() - *pos);
                    let out = head.slice(*pos..*pos + n);
                    let last = LastOut::Head {
                        pos: *pos,
                        len: head.len(),
                    };
                    *pos += n;
                    return Step::Out(out, last);
                }
                match body.take() {
                    Some(b) => a.stage = Stage::Body(b),
                    None => return Step::Done,
                }
            }
            Stage::Body(b) => {
                if b.end.is_some_and(|e| b.next >= e) {
                    return Step::Done;
                }
                let base = b.object.meta().map_or(0, |m| m.base);
                let max = match b.end {
                    Some(e) => capacity.min(usize::try_from(e - b.next).unwrap_or(usize::MAX)),
                    None => capacity,
                };
                let at = b.next.saturating_sub(base);
                return match b.object.read(at, max, Some(&ctx.notifier)) {
                    Read::Data(d) => {
                        b.next += d.len() as u64;
                        Step::Out(d, LastOut::Body)
                    }
                    Read::Pending => Step::Wait,
                    // The object ended before the promised length.
                    Read::End if b.end.is_some() => Step::Abort,
                    Read::End => Step::Done,
                    Read::Failed(_) => Step::Abort,
                };
            }
        }
    }
}

/// Where a resumed response continues, given the object found for it.
fn resume_stage(r: &Resume, meta: &ObjectMeta, p: Planned) -> Result<Stage, NotResumable> {
    // A whole-object response whose every body byte the client has already
    // acknowledged: its kernel took them into its receive buffer while the
    // application reads slowly. The origin answers the range from there
    // with 416 (RFC 9110 §15.5.17, `bytes */length`): nothing is left to
    // send, and the connection carries on as an idle one.
    if meta.status == 416 && r.cp.range.is_none() && r.delta > 0 {
        let from = r.cp.body_offset.saturating_add(r.delta as u64);
        return match meta.length {
            Some(len) if len != from => Err(NotResumable::Position),
            _ => Ok(Stage::Head {
                head: Bytes::new(),
                pos: 0,
                body: None,
            }),
        };
    }
    if !r.cp.same_object(meta) {
        return Err(NotResumable::Changed);
    }
    if p.status != r.cp.status {
        return Err(NotResumable::Changed);
    }
    let head_len = p.head.len() as i64;
    let pos = if r.delta < 0 {
        // The client lacks the end of the head: the rebuilt head is the
        // same bytes (see `response`), so send its tail.
        usize::try_from(head_len + r.delta).map_err(|_| NotResumable::Position)?
    } else {
        p.head.len()
    };
    let body = match p.body {
        Some(mut b) => {
            let next = b
                .next
                .checked_add(r.delta.max(0) as u64)
                .ok_or(NotResumable::Position)?;
            if b.end.is_some_and(|e| next > e) || next < meta.base {
                return Err(NotResumable::Position);
            }
            b.next = next;
            Some(b)
        }
        None if r.delta > 0 => return Err(NotResumable::Position),
        None => None,
    };
    Ok(Stage::Head {
        head: p.head,
        pos,
        body,
    })
}
