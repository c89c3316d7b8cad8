//! One client connection's HTTP/1.1 state machine, sans-IO: a thin
//! dispatcher over three machines, each in its own module —
//! [`answer`] (GET and HEAD answers planned from the cache and handed out
//! as zero-copy slices), [`upload`] (POST and PUT bodies spooled, then
//! passed to the origin) and [`resume`] (continuing, after a takeover,
//! what a dead box's checkpoint describes).
//!
//! Read RFC 9112 (message syntax, persistence) and RFC 9110 §13–§14
//! (conditionals, ranges) first. The session owns no socket, reads no
//! clock and touches no file: the worker glue calls it in this order —
//!
//! * inputs: [`HttpSession::on_bytes`] with bytes the client sent,
//!   [`HttpSession::on_eof`] when the client half-closes,
//!   [`HttpSession::on_timeout`] when [`HttpSession::poll_timeout`] is due,
//!   [`HttpSession::on_object_progress`] when the worker's fetch-progress
//!   channel names an object, [`HttpSession::on_spooled`] with each answer
//!   of the spool writer — every input takes `now`;
//! * outputs: [`HttpSession::poll_send`] with the room in the TCP send
//!   queue, repeatedly until it returns `None`; after sending each piece,
//!   [`HttpSession::on_sent`] with the sequence number `send` returned —
//!   it yields a [`ResponseCheckpoint`] when a response starts;
//!   [`HttpSession::take_commit_due`]: write [`HttpSession::checkpoint`]
//!   now (an upload's spooled bytes); [`HttpSession::spool_writes`]: hand
//!   these file operations to the spool writer, in order;
//! * then [`HttpSession::should_close`]: FIN (after the queued bytes) or
//!   reset.
//!
//! Requests are parsed as they arrive (pipelining), queued, and answered
//! strictly in order. When an object is still being fetched, the body
//! flows as the origin delivers it; `poll_send` returns `None` meanwhile
//! and the worker is woken through the object's notifier.

pub mod answer;
mod covered;
pub mod intake;
mod last;
pub mod resume;
pub mod upload;

pub use intake::MAX_PIPELINE;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use baton_dataplane::tcp::SeqNum;
use bytes::Bytes;

use self::answer::{LastOut, Stage, Step};
use self::intake::{Intake, Next, Pending};
use self::last::LastResponse;
use self::resume::{Resume, Start};
use self::upload::{Resumed, Spooled, UploadDesk};
use super::checkpoint::{NotResumable, ResponseCheckpoint};
use super::context::WorkerContext;
use super::counters::bump;
use super::request::{Method, Request, RequestBody};
use super::response;
use super::upload::{SpoolDone, SpoolOpKind, SpoolWrite, UploadState};
use crate::cache::{Object, ObjectId, ObjectMeta};

/// How the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Send FIN after every queued byte (RFC 9112 §9.6).
    Graceful,
    /// Reset: a response could not be completed (its object failed
    /// mid-body) or resumed after a takeover.
    Reset,
}

/// Where the active request stands.
#[derive(Debug)]
enum Phase {
    /// An upload: sending `100 Continue` (from `pos`) if the client asked
    /// for it, then waiting for the whole body to be spooled and for the
    /// checkpoint that says it goes to the origin; then the origin's
    /// answer is an object.
    AwaitBody { interim: Option<(Bytes, usize)> },
    /// Answering from an object (or an answer of the box's own).
    Answer(Stage),
}

#[derive(Debug)]
struct Active {
    req: Request,
    phase: Phase,
    /// The checkpoint of this response, stamped by `on_sent`.
    cp: Option<ResponseCheckpoint>,
    resume: Option<Resume>,
}

/// One client connection's HTTP state (see the module doc). What only a
/// request in progress needs is boxed: an idle session is small (issue 19).
#[derive(Debug)]
pub struct HttpSession {
    ctx: Arc<WorkerContext>,
    intake: Intake,
    active: Option<Box<Active>>,
    /// False once no further request will be read.
    reading: bool,
    reset: bool,
    last_out: LastOut,
    blocked: Option<ObjectId>, // where `poll_send` last stopped
    /// The latest response's record (a marker once the client has it).
    last: LastResponse,
    body_sent: u64,
    request_count: u32,
    last_activity: Instant,
    uploads: UploadDesk,
    /// The upload's state changed: the worker should checkpoint now.
    commit_due: bool,
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        self.ctx.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl HttpSession {
    /// A session for a new connection, or — at the connection cap — the
    /// 503 answer to send before closing it (RFC 9110 §15.6.4).
    pub fn accept(ctx: &Arc<WorkerContext>, now: Instant) -> Result<HttpSession, Bytes> {
        if ctx.sessions() >= ctx.max_sessions {
            bump(&ctx.counters.refused_connections);
            return Err(made_up(ctx, 503, false, 1, now));
        }
        Ok(HttpSession::new(Arc::clone(ctx), now))
    }

    /// A session for a new connection (use [`HttpSession::accept`] to
    /// honour the connection cap).
    pub fn new(ctx: Arc<WorkerContext>, now: Instant) -> HttpSession {
        ctx.live.fetch_add(1, Ordering::Relaxed);
        HttpSession {
            ctx,
            intake: Intake::default(),
            active: None,
            reading: true,
            reset: false,
            last_out: LastOut::Nothing,
            blocked: None,
            last: LastResponse::None,
            body_sent: 0,
            request_count: 0,
            last_activity: now,
            uploads: UploadDesk::default(),
            commit_due: false,
        }
    }

    /// The TCP sequence number of the next byte the client sends (once,
    /// when the connection starts here: an upload's checkpoint records
    /// where its body sits in the client's byte stream). Kept if already
    /// known (a resumed upload knows its own).
    pub fn set_input_seq(&mut self, seq: Option<SeqNum>) {
        self.uploads.set_input_seq(seq);
    }

    /// Names the connection for its spool file; the transport derives it
    /// from what a survivor's restored connection has too (see
    /// [`super::super::upload`]).
    pub fn set_conn_name(&mut self, name: Option<String>) {
        self.uploads.set_conn_name(name);
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
        s.uploads.set_conn_name(conn_name);
        s.request_count = cp.request_count.saturating_sub(1);
        s.last = LastResponse::Recorded(Box::new(cp.clone()));
        if let Some(u) = &cp.upload {
            s.resume_upload(cp, u, now);
            return s;
        }
        let (req, from, validator, resume) = match resume::start(cp, acked_seq) {
            Start::Finished => {
                s.last.settle(acked_seq);
                s.finish_response(cp.persistent, now);
                bump(&s.ctx.counters.resumed);
                return s;
            }
            Start::Refuse(why) => {
                s.not_resumable(why);
                return s;
            }
            Start::Object(req, from, validator, resume) => (req, from, validator, resume),
        };
        let object = match (s.ctx.cache.peek(&cp.url), validator) {
            (Some(o), _) => o,
            (None, Some(v)) => s.ctx.cache.fetch_range(&cp.url, from, Some(v)),
            (None, None) => {
                s.not_resumable(NotResumable::Position);
                return s;
            }
        };
        // What the client already has of this body (for `app_block`).
        s.body_sent = resume.delta.max(0) as u64;
        s.active = Some(Box::new(Active {
            req,
            phase: Phase::Answer(Stage::AwaitMeta(object)),
            cp: None,
            resume: Some(resume),
        }));
        s
    }

    /// Continues, on a survivor, an upload whose body the dead box was
    /// receiving (see [`UploadDesk::resume`]).
    fn resume_upload(&mut self, cp: &ResponseCheckpoint, u: &UploadState, now: Instant) {
        let max = self.ctx.limits.max_upload_bytes;
        match self.uploads.resume(cp, u, max, &self.ctx.spool) {
            Err(why) => self.not_resumable(why),
            Ok(Resumed::Lost502(req)) => {
                self.stop_reading();
                self.active = Some(Box::new(self.generated_active(502, req, false, now)));
            }
            Ok(Resumed::Continue(req)) => {
                self.active = Some(Box::new(Active {
                    req,
                    phase: Phase::AwaitBody { interim: None },
                    cp: None,
                    resume: None,
                }));
                self.publish_upload();
            }
        }
    }

    fn not_resumable(&mut self, why: NotResumable) {
        tracing::debug!("response not resumable: {why}");
        bump(&self.ctx.counters.not_resumable);
        self.reset = true;
        self.reading = false;
        self.active = None;
        self.intake.clear_queue();
        self.discard_upload();
    }

    /// The connection is gone for good (not handed to another box): its
    /// upload's spool file goes too.
    /// The connection is gone for good (not handed to another box): its
    /// upload's spool file goes too (see [`Self::spool_writes`]).
    pub fn discard_upload(&mut self) {
        self.uploads.discard();
    }

    /// Makes the upload's state the connection's checkpoint, once the
    /// upload is the request being answered (a checkpoint describes one
    /// request; earlier pipelined answers keep theirs until done).
    fn publish_upload(&mut self) {
        let current = self
            .active
            .as_ref()
            .is_some_and(|a| a.req.method.is_upload());
        if let Some(cp) = self.uploads.checkpoint().filter(|_| current) {
            self.last = LastResponse::Recorded(Box::new(cp));
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
                self.active = Some(Box::new(self.generated_active(status, req, false, now)));
            }
            _ => {
                // Still queued behind earlier answers: it is the last
                // request read.
                if let Some(Pending::Request(r)) = self.intake.queue().back() {
                    if r.method.is_upload() {
                        self.intake.replace_last(Pending::Reject(status));
                    }
                }
            }
        }
    }

    // ---- getters ----

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
        match &self.active.as_ref()?.phase {
            Phase::Answer(stage) => stage.object(),
            Phase::AwaitBody { .. } => None,
        }
    }

    /// False while enough requests are queued, or an upload's spool
    /// writes are far enough behind: the glue should leave further bytes
    /// in the TCP receive queue (its window then pushes back on the
    /// client).
    pub fn wants_input(&self) -> bool {
        self.reading && self.intake.queue().len() < MAX_PIPELINE && self.uploads.wants_body()
    }

    /// True while spool writes of the upload are unanswered.
    pub fn spool_pending(&self) -> bool {
        self.uploads.pending()
    }

    /// How the connection must end, once `poll_send` has nothing more:
    /// `None` while it stays open.
    pub fn should_close(&self) -> Option<Close> {
        if self.reset {
            return Some(Close::Reset);
        }
        (!self.reading && self.intake.queue().is_empty() && self.active.is_none())
            .then_some(Close::Graceful)
    }

    /// When [`Self::on_timeout`] is due: the slow-request deadline while a
    /// request head is incomplete, the idle deadline while nothing is in
    /// progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.reading && self.uploads.receiving() {
            // A body that stops coming holds a spool file and a slot.
            return Some(self.last_activity + self.ctx.limits.idle_timeout);
        }
        // While answers are owed, the client is receiving, not stalling:
        // no timer (TCP's own timers watch a dead client).
        if !self.reading || self.active.is_some() || !self.intake.queue().is_empty() {
            return None;
        }
        Some(match self.intake.partial_since() {
            Some(t) => t + self.ctx.limits.request_timeout,
            None => self.last_activity + self.ctx.limits.idle_timeout,
        })
    }

    // ---- inputs ----

    /// Bytes from the client.
    pub fn on_bytes(&mut self, data: &[u8], now: Instant) {
        // Counted here, so the transport is asked for a sequence number
        // once per connection, not per read.
        self.uploads.advance_input(data.len());
        self.last_activity = now;
        if !self.reading {
            // After a close decision further input is not processed
            // (RFC 9112 §9.6).
            return;
        }
        self.intake.push_bytes(data);
        self.parse_input(now);
    }

    /// The client half-closed: answer what was asked, then close.
    pub fn on_eof(&mut self) {
        self.reading = false;
        self.intake.stop();
    }

    /// A timer set from [`Self::poll_timeout`] fired.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.reading
            && self.uploads.receiving()
            && now >= self.last_activity + self.ctx.limits.idle_timeout
        {
            self.fail_upload(408, now);
            return;
        }
        if !self.reading || self.active.is_some() || !self.intake.queue().is_empty() {
            return;
        }
        if let Some(t) = self.intake.partial_since() {
            if now >= t + self.ctx.limits.request_timeout {
                self.intake.push_pending(Pending::Reject(408));
                self.stop_reading();
            }
            return;
        }
        if self.active.is_none()
            && self.intake.queue().is_empty()
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
        self.intake.stop();
    }

    fn parse_input(&mut self, now: Instant) {
        while self.reading {
            if self.uploads.current().is_some() {
                self.receive_body();
                break;
            }
            match self.intake.next(&self.ctx.limits, now) {
                Next::Stop => break,
                Next::Request(req) => {
                    bump(&self.ctx.counters.requests);
                    if req.method.is_upload() {
                        self.begin_upload(req);
                        continue;
                    }
                    if let RequestBody::Length(l) = req.body {
                        self.intake.skip_body(l);
                    }
                    let last = !req.persistent;
                    self.intake.push_pending(Pending::Request(req));
                    if last {
                        self.stop_reading();
                    }
                }
                Next::Refused(status) => self.refuse(status),
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
        let ahead = self.intake.queue().len() + usize::from(self.active.is_some());
        let index = self
            .request_count
            .saturating_add(ahead as u32)
            .saturating_add(1);
        let buffered = self.intake.buffered().len();
        self.uploads
            .begin(&req, length, buffered, index, &self.ctx.spool);
        self.intake.push_pending(Pending::Request(req));
    }

    fn refuse(&mut self, status: u16) {
        self.intake.push_pending(Pending::Reject(status));
        self.stop_reading();
    }

    /// Hands the upload's body bytes from the input to the spool writer.
    fn receive_body(&mut self) {
        let k = self.uploads.receive(self.intake.buffered());
        self.intake.consume(k);
    }

    /// The spool writer did one of [`Self::spool_writes`].
    pub fn on_spooled(&mut self, done: &SpoolDone, now: Instant) {
        let Some(u) = self.uploads.current_mut() else {
            return;
        };
        match u.on_spooled(done) {
            Spooled::Ignored => {}
            Spooled::Opened => bump(if done.op == SpoolOpKind::Reopen {
                &self.ctx.counters.uploads_resumed
            } else {
                &self.ctx.counters.uploads
            }),
            Spooled::Progress => {
                self.last_activity = now;
                self.publish_upload();
                // Input held back for the spool writer may go on now.
                self.parse_input(now);
            }
            Spooled::Failed { why, reopening } => {
                tracing::warn!(url = %u.url, "cannot spool an upload: {why}");
                if reopening {
                    self.not_resumable(NotResumable::UploadLost);
                } else {
                    self.fail_upload(500, now);
                }
            }
        }
    }

    // ---- outputs ----

    /// File operations on the upload's spool for the worker's spool
    /// writer, in the order they must be done.
    pub fn spool_writes(&mut self) -> impl Iterator<Item = SpoolWrite> + '_ {
        self.uploads.writes()
    }

    /// The next bytes to send, at most `capacity`; `None` when there is
    /// nothing to send now (waiting for the client, the origin, or done).
    pub fn poll_send(&mut self, capacity: usize, now: Instant) -> Option<Bytes> {
        self.blocked = None;
        if capacity == 0 || self.reset {
            return None;
        }
        loop {
            if self.active.is_none() {
                let next = self.intake.pop_pending()?;
                self.active = Some(Box::new(self.start(next, now)));
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
            let a = self.active.as_mut()?;
            let Phase::Answer(stage) = &mut a.phase else {
                // `upload_step` moves an upload past its body.
                return None;
            };
            match answer::step(stage, &self.ctx.notifier, capacity) {
                Step::Meta(object, meta) => {
                    if let Err(why) = self.on_meta(&object, &meta) {
                        self.not_resumable(why);
                        return None;
                    }
                }
                Step::Failed(err) => {
                    if a.resume.is_some() {
                        self.not_resumable(NotResumable::Unavailable);
                        return None;
                    }
                    let (persistent, minor) = (a.req.persistent, a.req.minor);
                    let head = made_up(&self.ctx, err.client_status(), persistent, minor, now);
                    if let Some(a) = self.active.as_mut() {
                        a.phase = Phase::Answer(Stage::head_only(head));
                    }
                }
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
                    self.intake.clear_queue();
                    self.stop_reading();
                    self.reset = true;
                    return None;
                }
            }
        }
    }

    /// The object's metadata arrived for the active response: plan its
    /// answer, or — for a resumed one — check that it continues.
    fn on_meta(&mut self, object: &Arc<Object>, meta: &ObjectMeta) -> Result<(), NotResumable> {
        let index = self.request_count.saturating_add(1);
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        let p = answer::plan(&a.req, object, meta, index);
        match a.resume.take() {
            None => {
                self.ctx.counters.status(p.status);
                a.req.persistent = p.persistent;
                a.cp = Some(p.cp);
                a.phase = Phase::Answer(Stage::Head {
                    head: p.head,
                    pos: 0,
                    body: p.body,
                });
            }
            Some(r) => match resume::stage(&r, meta, p) {
                Ok(stage) => {
                    bump(&self.ctx.counters.resumed);
                    a.phase = Phase::Answer(stage);
                }
                Err(why) => {
                    tracing::debug!("resume of {} refused: {why}", r.cp.url);
                    return Err(why);
                }
            },
        }
        Ok(())
    }

    /// The upload part of `poll_send`: `None` when the active response is
    /// past it; `Some(None)` to wait; `Some(Some(bytes))` to send.
    fn upload_step(&mut self, capacity: usize, now: Instant) -> Option<Option<Bytes>> {
        let a = self.active.as_mut()?;
        let Phase::AwaitBody { interim } = &mut a.phase else {
            return None;
        };
        if let Some((head, pos)) = interim {
            let out = answer::piece(head, pos, capacity);
            if *pos >= head.len() {
                *interim = None;
            }
            self.last_out = LastOut::Interim;
            return Some(Some(out));
        }
        let Some(u) = self.uploads.current_mut() else {
            // Cannot happen: an upload request always has its upload.
            let head = made_up(&self.ctx, 500, false, a.req.minor, now);
            a.phase = Phase::Answer(Stage::head_only(head));
            a.req.persistent = false;
            self.reading = false;
            return None;
        };
        if !u.spooled() {
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
        let object = self.ctx.cache.upload(&a.req.url, u.request());
        a.phase = Phase::Answer(Stage::AwaitMeta(object));
        None
    }

    fn finish_response(&mut self, persistent: bool, now: Instant) {
        self.request_count = self.request_count.saturating_add(1);
        self.last_activity = now;
        // A pipelined head that arrived while we were busy answering: its
        // clock starts now that it is the one we wait for.
        self.intake.restart_clock(now);
        if !persistent {
            self.intake.clear_queue();
            self.stop_reading();
        }
    }

    /// Tells the session that the bytes last returned by `poll_send` were
    /// queued at TCP sequence `first_seq`. Returns the new checkpoint when
    /// they were the start of a response head (the first body byte's
    /// sequence is known from then on, even before any body byte exists).
    pub fn on_sent(&mut self, first_seq: SeqNum) -> Option<&ResponseCheckpoint> {
        let last = std::mem::replace(&mut self.last_out, LastOut::Nothing);
        let LastOut::Head { pos, len } = last else {
            return None;
        };
        let mut cp = self.active.as_mut()?.cp.take()?;
        cp.object_start_seq = first_seq + (len - pos);
        // Kept, not copied: the checkpoint is written from the session's
        // own record (a copy was its URL and validators again: up to
        // three allocations a request).
        self.last = LastResponse::Recorded(Box::new(cp));
        self.last.recorded()
    }

    /// A response the box makes up itself, as the active one.
    fn generated_active(
        &self,
        status: u16,
        req: Request,
        persistent: bool,
        now: Instant,
    ) -> Active {
        let head = made_up(&self.ctx, status, persistent, req.minor, now);
        Active {
            req: Request { persistent, ..req },
            phase: Phase::Answer(Stage::head_only(head)),
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
                let waiting = self.uploads.receiving();
                let interim = (req.expect_continue && req.minor == 1 && waiting)
                    .then(|| (response::continue_interim(), 0));
                Active {
                    req,
                    phase: Phase::AwaitBody { interim },
                    cp: None,
                    resume: None,
                }
            }
            Pending::Request(req) => {
                // Too many fills: 503, come back later (SECURITY.md, "Memory limits").
                let Ok(lookup) = self.ctx.cache.try_lookup(&req.url, now) else {
                    let persistent = req.persistent;
                    return self.generated_active(503, req, persistent, now);
                };
                let object = Arc::clone(lookup.object());
                Active {
                    req,
                    phase: Phase::Answer(Stage::AwaitMeta(object)),
                    cp: None,
                    resume: None,
                }
            }
        }
    }
}

/// An answer the box makes up itself (errors, refusals), counted.
fn made_up(ctx: &WorkerContext, status: u16, persistent: bool, minor: u8, now: Instant) -> Bytes {
    ctx.counters.status(status);
    response::generated(status, persistent, minor, &ctx.http_date(now))
}
