//! Whether a session's latest checkpoint covers every client byte it took
//! (issue 13): the worker then commits, and TCP acknowledges, all it
//! received; until then requests and a FIN stay unacknowledged, so a
//! survivor of this box's death gets them again from the client.
//!
//! And what such a checkpoint covers without naming it: requests read but
//! not answered yet (pipelining), which an HTTPS checkpoint carries in its
//! TLS block ([`HttpSession::unanswered_input`]).
//!
//! And what heap a session holds ([`HttpSession::heap_bytes`]), and the
//! latest response's checkpoint its records carry
//! ([`HttpSession::checkpoint`]: a marker once the client has it all),
//! and whether the session could be dropped for its checkpoint alone
//! ([`HttpSession::rest_since`]).
//!
//! It knows nothing of TCP or checkpoints' bytes: only the session's state.

use std::borrow::Cow;
use std::time::Instant;

use baton_dataplane::tcp::SeqNum;

use super::super::checkpoint::ResponseCheckpoint;
use super::super::request::{Method, Request, RequestBody};
use super::intake::Pending;
use super::{HttpSession, Phase, Stage};

impl HttpSession {
    /// True when the session rests between requests: no response under
    /// way, no request read and waiting, no partial one buffered.
    pub fn at_rest(&self) -> bool {
        self.active.is_none() && self.intake.queue().is_empty() && self.intake.buffered().is_empty()
    }

    /// When the session came to rest, if nothing of it outlives its
    /// connection's checkpoint: at rest ([`Self::at_rest`]), still reading
    /// (no close decided), no upload nor spool write under way. A new idle
    /// session serves such a connection as well (parking, issue 19).
    pub fn rest_since(&self) -> Option<Instant> {
        (self.at_rest()
            && self.reading
            && !self.reset
            && !self.uploads.receiving()
            && !self.spool_pending())
        .then_some(self.last_activity)
    }

    /// True when every request read so far has its answer under way and
    /// no partial one waits: the latest checkpoint ([`Self::checkpoint`])
    /// then covers every client byte taken (a FIN too), so the worker may
    /// commit, and TCP acknowledge, all it received. False while an answer
    /// waits for its object or body, whose response checkpoint will name
    /// the request (a survivor must get that request again).
    pub fn answered_all(&self) -> bool {
        let pending = self.active.as_ref().is_some_and(|a| {
            a.cp.is_some()
                || matches!(
                    a.phase,
                    Phase::AwaitBody { .. } | Phase::Answer(Stage::AwaitMeta(_))
                )
        });
        // Input left unread after a close decision is never answered
        // (RFC 9112 §9.6): covering it loses nothing.
        !pending
            && self.intake.queue().is_empty()
            && (!self.reading || self.intake.buffered().is_empty())
    }
}

impl HttpSession {
    /// Heap bytes this session holds beyond its own size (its input, its
    /// queue, the response under way and the last one's checkpoint, the
    /// connection's spool name), so tests can hold an idle one to its last
    /// response's checkpoint and nothing else (issue 19: a drain's final
    /// record needs that checkpoint, see BENCHMARKS.md).
    pub fn heap_bytes(&self) -> usize {
        let checkpoint = self.last.heap_bytes();
        let active = self
            .active
            .as_ref()
            .map_or(0, |_| std::mem::size_of::<super::Active>());
        self.intake.heap_bytes() + checkpoint + active + self.uploads.heap_bytes()
    }

    /// The requests this session read but has not started to answer
    /// (pipelined behind the one being answered), then any partial head
    /// after them, as bytes that parse to the same requests: what a
    /// survivor's session must read before anything the client sends next,
    /// when a checkpoint covers (acknowledges) them but names only the
    /// request being answered. Requests are written back from what the
    /// session kept of them (method, target, version, the validators and
    /// `Range` it serves by, persistence; `Host` a placeholder, since the
    /// cache key is the target), not copied as received: nothing is kept
    /// per request on the hot path. `None` when they cannot be: an upload
    /// in progress or queued, a refused request, a body still being
    /// skipped. Empty, without allocating, when nothing waits.
    pub fn unanswered_input(&self) -> Option<Vec<u8>> {
        let buffered = if self.reading {
            self.intake.buffered()
        } else {
            &[]
        };
        if self.intake.queue().is_empty() && buffered.is_empty() {
            return Some(Vec::new());
        }
        if self.uploads.current().is_some() || self.intake.skipping() {
            return None;
        }
        let mut out = Vec::new();
        for p in self.intake.queue() {
            match p {
                Pending::Request(r) => write_request(r, &mut out)?,
                Pending::Reject(_) => return None,
            }
        }
        out.extend_from_slice(buffered);
        Some(out)
    }
}

/// `r` as a request head the parser reads back to the same `Request`
/// (GET and HEAD without a body only).
fn write_request(r: &Request, out: &mut Vec<u8>) -> Option<()> {
    let method = match (r.method, &r.body) {
        (Method::Get, RequestBody::None | RequestBody::Length(_)) => "GET",
        (Method::Head, RequestBody::None | RequestBody::Length(_)) => "HEAD",
        _ => return None,
    };
    let mut head = format!(
        "{method} {} HTTP/1.{}\r\nHost: baton.pending\r\n",
        r.url, r.minor
    );
    let fields = [
        ("Range", &r.range),
        ("If-None-Match", &r.if_none_match),
        ("If-Modified-Since", &r.if_modified_since),
        ("If-Range", &r.if_range),
        ("If-Match", &r.if_match),
        ("If-Unmodified-Since", &r.if_unmodified_since),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    match (r.minor, r.persistent) {
        (1, false) => head.push_str("Connection: close\r\n"),
        (0, true) => head.push_str("Connection: keep-alive\r\n"),
        _ => {}
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
    Some(())
}

impl HttpSession {
    /// The checkpoint of the latest response (stamped with its sequence
    /// number), for the worker to write with every checkpoint of this
    /// connection.
    pub fn checkpoint(&self) -> Option<Cow<'_, ResponseCheckpoint>> {
        self.last.checkpoint()
    }

    /// The latest response's whole record, while the client may lack
    /// some of it (what [`HttpSession::on_sent`] just recorded).
    pub fn recorded(&self) -> Option<&ResponseCheckpoint> {
        self.last.recorded()
    }

    /// The client acknowledged every byte before `acked` and the session
    /// rests ([`Self::at_rest`]): a last response it has whole is kept as
    /// a marker from now on. True when it was (the next checkpoint write
    /// then frees the record's strings in the segment too).
    pub fn settle(&mut self, acked: SeqNum) -> bool {
        self.at_rest() && self.last.settle(acked)
    }

    /// The application block for this connection's next checkpoint write
    /// while the whole record is kept (`None`: nothing a survivor could
    /// resume, or a marker).
    #[cfg(test)]
    pub fn app_block(&self) -> Option<baton_shmem::AppBlock<'_>> {
        self.last.recorded()?.to_app_block(self.body_sent)
    }
}
