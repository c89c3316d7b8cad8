//! Planning a GET or HEAD answer from the cache, and handing out its head
//! and body: once the object's metadata is known, [`plan`] decides status,
//! head and body by RFC 9110 §13.2.2 (via `baton_http::decide`); then
//! [`step`] gives out the head from where it stands and the body as
//! zero-copy slices of the object's chunks as the fetcher fills them.
//!
//! A response is a [`Stage`] machine: `AwaitMeta` → `Head` → `Body`. It
//! knows nothing of connections, uploads or takeovers: what to do with
//! the metadata (a fresh plan, or a resumed one) is the session's choice.

use std::sync::Arc;

use bytes::Bytes;

use super::super::checkpoint::ResponseCheckpoint;
use super::super::request::{Method, Request};
use super::super::response::{self, ContentRange, ObjectHead};
use crate::cache::error::FetchError;
use crate::cache::{Notifier, Object, ObjectId, ObjectMeta, Read};
use baton_dataplane::tcp::SeqNum;
use baton_http::{Decision, Preconditions, Validators};

/// The body of a response: a span of an object.
#[derive(Debug)]
pub struct BodyPlan {
    /// The object.
    pub object: Arc<Object>,
    /// Next object byte to send (absolute object offset).
    pub next: u64,
    /// One past the last object byte to send; `None`: to the object's end.
    pub end: Option<u64>,
}

/// Where a response stands.
#[derive(Debug)]
pub enum Stage {
    /// Waiting for the object's metadata (origin head).
    AwaitMeta(Arc<Object>),
    /// Sending the head (from `pos`), then the body, if any.
    Head {
        /// The head's bytes.
        head: Bytes,
        /// The next byte of it to send.
        pos: usize,
        /// The body after it.
        body: Option<BodyPlan>,
    },
    /// Sending the body.
    Body(BodyPlan),
}

impl Stage {
    /// A head with no body (answers the box makes up itself).
    pub fn head_only(head: Bytes) -> Stage {
        Stage::Head {
            head,
            pos: 0,
            body: None,
        }
    }

    /// The object this response reads, if any.
    pub fn object(&self) -> Option<ObjectId> {
        match self {
            Stage::AwaitMeta(o) => Some(o.id()),
            Stage::Head { body, .. } => body.as_ref().map(|b| b.object.id()),
            Stage::Body(b) => Some(b.object.id()),
        }
    }
}

/// What the bytes last handed out were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastOut {
    /// Nothing (or already accounted for).
    Nothing,
    /// Head bytes from `pos` of a head of `len` bytes.
    Head {
        /// Offset of the piece in the head (heads are kilobytes: 4 bytes
        /// each, in every session, issue 19).
        pos: u32,
        /// The head's length.
        len: u32,
    },
    /// Body bytes.
    Body,
    /// An interim `100 Continue`: not part of any response's bytes.
    Interim,
}

/// One step of a response.
pub enum Step {
    /// Bytes to send, and what they are.
    Out(Bytes, LastOut),
    /// Nothing now: the object has no new bytes yet.
    Wait,
    /// The object's metadata arrived: plan the answer (or resume it).
    Meta(Arc<Object>, Arc<ObjectMeta>),
    /// The object failed before its metadata.
    Failed(FetchError),
    /// The response is complete.
    Done,
    /// The object ended or failed mid-body: the connection must be reset.
    Abort,
}

/// The next piece of `head` from `pos`, at most `capacity` bytes (a
/// zero-copy slice); `pos` moves past it.
pub fn piece(head: &Bytes, pos: &mut usize, capacity: usize) -> Bytes {
    let n = capacity.min(head.len() - *pos);
    let out = head.slice(*pos..*pos + n);
    *pos += n;
    out
}

/// Advances a response by one output piece of at most `capacity` bytes;
/// waits register `notifier` with the object.
pub fn step(stage: &mut Stage, notifier: &Arc<Notifier>, capacity: usize) -> Step {
    loop {
        match stage {
            Stage::AwaitMeta(object) => {
                let object = Arc::clone(object);
                return match object.meta_or_subscribe(Some(notifier)) {
                    Some(meta) => Step::Meta(object, meta),
                    None => match object.failure() {
                        Some(err) => Step::Failed(err),
                        None => Step::Wait,
                    },
                };
            }
            Stage::Head { head, pos, body } => {
                if *pos < head.len() {
                    let last = LastOut::Head {
                        pos: *pos as u32,
                        len: head.len() as u32,
                    };
                    return Step::Out(piece(head, pos, capacity), last);
                }
                match body.take() {
                    Some(b) => *stage = Stage::Body(b),
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
                return match b.object.read(at, max, Some(notifier)) {
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

/// A response decided for a request and an object.
pub struct Planned {
    /// The status.
    pub status: u16,
    /// The head.
    pub head: Bytes,
    /// The body, if one is sent.
    pub body: Option<BodyPlan>,
    /// The connection stays open after it.
    pub persistent: bool,
    /// Its checkpoint (the sequence number is stamped when the head is sent).
    pub cp: ResponseCheckpoint,
}

/// Decides status, head and body for `req` from an object with `meta`
/// (RFC 9110 §13.2.2 order: If-None-Match, else If-Modified-Since, then
/// If-Range and Range).
pub fn plan(req: &Request, object: &Arc<Object>, meta: &ObjectMeta, request_count: u32) -> Planned {
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
    let oh = ObjectHead {
        status,
        meta,
        content_length,
        content_range,
        persistent,
        minor: req.minor,
    };
    // The head is a function of these and of the object's metadata, set
    // once: with the length known, the common answer's head is the same
    // every time.
    let common = status == 200
        && content_range.is_none()
        && persistent
        && req.minor == 1
        && meta.length.is_some()
        && content_length == meta.length;
    let head = if common {
        object.full_head(|| response::object_head(&oh))
    } else {
        response::object_head(&oh)
    };
    let range = match content_range {
        Some(ContentRange::Bytes { first, last, .. }) => Some((first, last)),
        _ => None,
    };
    // No body is sent (HEAD, 304, 412, 416): the client has it whole
    // once it has the head.
    let body_len = if body.is_some() {
        content_length
    } else {
        Some(0)
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
            body_len,
            upload: None,
        },
    }
}
