//! Continuing, on a survivor, what a dead box's checkpoint describes
//! (ARCHITECTURE.md, Takeover step 6; seed Fig. 6): a response from the
//! byte after the client's acknowledgement, or an upload from what its
//! spool holds.
//!
//! Pure decisions: [`start`] locates the next byte of a response before
//! its object is found, [`stage`] rebuilds the response's stage once the
//! object's metadata is known, [`upload`] says how a taken-over upload
//! goes on. The session does what they say; this module knows nothing of
//! sessions, caches or files.

use baton_dataplane::tcp::SeqNum;
use bytes::Bytes;

use super::super::checkpoint::{NotResumable, ResponseCheckpoint};
use super::super::request::{Method, Request, RequestBody};
use super::super::upload::UploadState;
use super::answer::{Planned, Stage};
use crate::cache::ObjectMeta;

/// A response being resumed, until its object's metadata is known.
#[derive(Debug)]
pub struct Resume {
    /// The dead box's checkpoint.
    pub cp: ResponseCheckpoint,
    /// Acknowledged sequence minus the body's first sequence: body bytes
    /// the client has, or (negative) head bytes it still lacks.
    pub delta: i64,
}

/// How a resumed response starts.
// Made once per takeover: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Start {
    /// The client has the whole response: the connection carries on as an
    /// idle one.
    Finished,
    /// The next byte cannot be located.
    Refuse(NotResumable),
    /// Find the object and continue: from the cache if it holds the same
    /// version, else from the origin. Holds the rebuilt request, the
    /// object byte the client needs next, the validator to fetch with
    /// (`None`: only the cache's copy will do), and what to check the
    /// object against.
    Object(Request, u64, Option<String>, Resume),
}

/// Locates where the response `cp` continues after `acked_seq`.
pub fn start(cp: &ResponseCheckpoint, acked_seq: SeqNum) -> Start {
    if cp.is_unrecorded() {
        // A response was in flight and nothing says what it was: resetting
        // now beats a client waiting for bytes that will never come.
        return Start::Refuse(NotResumable::Unrecorded);
    }
    // Sequence numbers wrap (RFC 9293 §3.4): the signed 32-bit
    // difference is the distance.
    let delta = i64::from(acked_seq - cp.object_start_seq);
    // The checkpoint comes from the shared segment: check its range
    // rather than trust it.
    let body_len = match (cp.method, cp.range) {
        (Method::Head, _) => Some(0),
        (_, Some((a, b))) => match b.checked_sub(a) {
            Some(d) => Some(d.saturating_add(1)),
            None => return Start::Refuse(NotResumable::Position),
        },
        // Otherwise the announced length tells whether the client has it
        // whole: all a response this box cannot rebuild (404, 304, …) has,
        // and for one it can, no reason to look for the object (a mass
        // takeover's idle connections would each peek the cache, or fetch
        // from the origin, to send nothing).
        _ => cp.body_len,
    };
    match body_len {
        // The client has the whole response: carry on as an idle
        // connection.
        Some(l) if delta >= 0 && delta as u64 == l => return Start::Finished,
        // It acknowledged bytes of a later response this checkpoint does
        // not describe: nothing here says what it still needs.
        Some(l) if delta >= 0 && delta as u64 > l => return Start::Refuse(NotResumable::Position),
        _ => {}
    }
    if !cp.rebuildable() {
        return Start::Refuse(NotResumable::Position);
    }
    let req = Request {
        range: cp.range.map(|(a, b)| format!("bytes={a}-{b}")),
        ..Request::bare(cp.method, cp.minor, cp.url.clone(), cp.persistent)
    };
    let from = cp.body_offset.saturating_add(delta.max(0) as u64);
    let validator = cp.etag.clone().or_else(|| cp.last_modified.clone());
    let resume = Resume {
        cp: cp.clone(),
        delta,
    };
    Start::Object(req, from, validator, resume)
}

/// How a taken-over upload goes on.
#[derive(Debug)]
pub enum UploadStart {
    /// It cannot: the checkpoint says more than this box accepts.
    Lost,
    /// A POST the origin may have acted on already: a proxy must not send
    /// a non-idempotent request again (RFC 9110 §9.2.2); the client learns
    /// that the answer was lost (502).
    Lost502(Request),
    /// Receive the rest: the spool keeps `have` bytes.
    Continue {
        /// The request, rebuilt.
        req: Request,
        /// Spooled bytes to keep (the whole body once forwarded).
        have: u64,
        /// The upload's state from here.
        state: UploadState,
    },
}

/// Decides how the upload `u` of checkpoint `cp` continues on a box that
/// accepts bodies up to `max_upload_bytes`.
pub fn upload(cp: &ResponseCheckpoint, u: &UploadState, max_upload_bytes: u64) -> UploadStart {
    if u.content_length > max_upload_bytes {
        // The segment says more than this box would ever accept.
        return UploadStart::Lost;
    }
    let have = if u.forwarded {
        u.content_length
    } else {
        u.received
    };
    let req = Request {
        body: RequestBody::Length(u.content_length),
        content_type: u.content_type.clone(),
        ..Request::bare(cp.method, cp.minor, cp.url.clone(), cp.persistent)
    };
    if u.forwarded && !cp.method.is_idempotent() {
        return UploadStart::Lost502(req);
    }
    UploadStart::Continue {
        req,
        have,
        state: UploadState {
            received: have,
            forwarded: false,
            ..u.clone()
        },
    }
}

/// Where a resumed response continues, given the object found for it.
pub fn stage(r: &Resume, meta: &ObjectMeta, p: Planned) -> Result<Stage, NotResumable> {
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
