//! The reading side of a connection: bytes from the client become queued
//! requests. It buffers input, drops request bodies nobody wants, skips
//! blank lines between requests (RFC 9112 §2.2), parses heads under the
//! box's limits, and keeps the parsed requests in order until they are
//! answered (pipelining), at most [`MAX_PIPELINE`] of them.
//!
//! It knows nothing of answers, uploads or the cache.

use std::collections::VecDeque;
use std::time::Instant;

use super::super::request::{self, Limits, Parsed, Request};

/// Most parsed requests waiting for their turn; further input stays
/// unparsed (and the session stops wanting input) until earlier answers
/// are done.
pub const MAX_PIPELINE: usize = 32;

/// A request waiting for its answer.
// Made once per request and moved once: boxing would cost an allocation
// per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Pending {
    /// A parsed request.
    Request(Request),
    /// A refused request (400, 408, 411, 413, 414, 431, 500): answered,
    /// then closed.
    Reject(u16),
}

/// What the input holds next.
// Made once per request and moved once, like `Pending`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Next {
    /// Nothing more now: input incomplete, or the queue is full.
    Stop,
    /// A request head (its body, if any, follows in the input).
    Request(Request),
    /// A head that cannot be served, with the status to answer.
    Refused(u16),
}

/// Input not yet consumed and requests not yet answered.
#[derive(Debug, Default)]
pub struct Intake {
    inbuf: Vec<u8>,
    /// Request body bytes still to drop from the input.
    discard: u64,
    /// When the incomplete request head in the input began.
    partial_since: Option<Instant>,
    /// Parsed requests in arrival order.
    pub queue: VecDeque<Pending>,
}

impl Intake {
    /// Adds bytes the client sent.
    pub fn push_bytes(&mut self, data: &[u8]) {
        self.inbuf.extend_from_slice(data);
    }

    /// The request to answer next; the queue gives its storage back once
    /// empty (four parsed requests' room, ~860 bytes, would otherwise stay
    /// with every idle keep-alive connection; issue 19).
    pub fn pop_pending(&mut self) -> Option<Pending> {
        let next = self.queue.pop_front();
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
        next
    }

    /// Heap bytes held: the input buffer and the queue's room.
    pub fn heap_bytes(&self) -> usize {
        self.inbuf.capacity() + self.queue.capacity() * std::mem::size_of::<Pending>()
    }

    /// Input not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.inbuf
    }

    /// Consumes the first `k` buffered bytes (an upload's body took them).
    pub fn consume(&mut self, k: usize) {
        self.inbuf.drain(..k);
    }

    /// The next `len` input bytes are a body nobody wants: drop them.
    pub fn skip_body(&mut self, len: u64) {
        self.discard = len;
    }

    /// No further input is read: forget what is buffered.
    pub fn stop(&mut self) {
        self.inbuf.clear();
        self.partial_since = None;
    }

    /// True while a request body nobody wants is still being dropped.
    pub fn skipping(&self) -> bool {
        self.discard > 0
    }

    /// When the incomplete request head began to arrive, if one is.
    pub fn partial_since(&self) -> Option<Instant> {
        self.partial_since
    }

    /// An answer is done: a pipelined head that arrived meanwhile is the
    /// one waited for from `now` on.
    pub fn restart_clock(&mut self, now: Instant) {
        if self.partial_since.is_some() {
            self.partial_since = Some(now);
        }
    }

    /// Parses the next request head from the input.
    pub fn next(&mut self, limits: &Limits, now: Instant) -> Next {
        if self.discard > 0 {
            let k = (self.discard.min(self.inbuf.len() as u64)) as usize;
            self.inbuf.drain(..k);
            self.discard -= k as u64;
            if self.discard > 0 {
                // A body nobody wants is held to the head's deadline: else
                // a byte now and then (each resets the idle timer) would
                // hold the connection for ever (slow body).
                self.partial_since.get_or_insert(now);
                return Next::Stop;
            }
            self.partial_since = None;
        }
        // RFC 9112 §2.2: empty lines before a request line are ignored.
        let skip = self
            .inbuf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        self.inbuf.drain(..skip);
        if skip > 0 {
            // Blank lines start a head's clock like any other byte of it:
            // else a client sending CRLF now and then (each byte resets
            // the idle timer) would hold its connection for ever.
            self.partial_since.get_or_insert(now);
        }
        if self.inbuf.is_empty() {
            if skip == 0 {
                self.partial_since = None;
            }
            // An idle keep-alive connection keeps no input buffer: the next
            // request allocates one again (issue 19).
            self.inbuf = Vec::new();
            return Next::Stop;
        }
        if self.queue.len() >= MAX_PIPELINE {
            return Next::Stop;
        }
        match request::parse(&self.inbuf, limits) {
            Ok(Parsed::Partial) => {
                self.partial_since.get_or_insert(now);
                Next::Stop
            }
            Ok(Parsed::Complete(req, n)) => {
                self.inbuf.drain(..n);
                self.partial_since = None;
                Next::Request(req)
            }
            Err(e) => {
                tracing::debug!("request refused: {e}");
                Next::Refused(e.status())
            }
        }
    }
}
