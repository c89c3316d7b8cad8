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

/// Input not yet consumed and requests not yet answered: nothing but a
/// null pointer while a keep-alive connection waits for its next request
/// (8 bytes where the parts take 80, in each of 300,000 sessions; issue
/// 19). The parts come back with the next byte and go once all are empty.
#[derive(Debug, Default)]
pub struct Intake {
    busy: Option<Box<Busy>>,
}

/// What an intake holds between a request's first byte and its answer.
#[derive(Debug, Default)]
struct Busy {
    inbuf: Vec<u8>,
    /// Request body bytes still to drop from the input.
    discard: u64,
    /// When the incomplete request head in the input began.
    partial_since: Option<Instant>,
    /// Parsed requests in arrival order.
    queue: VecDeque<Pending>,
}

impl Busy {
    fn is_empty(&self) -> bool {
        self.inbuf.is_empty()
            && self.queue.is_empty()
            && self.discard == 0
            && self.partial_since.is_none()
    }
}

/// An empty queue to read from while nothing is held.
static NO_PENDING: VecDeque<Pending> = VecDeque::new();

impl Intake {
    fn busy(&mut self) -> &mut Busy {
        self.busy.get_or_insert_with(Box::default)
    }

    /// Gives the parts back once nothing is held.
    fn settle(&mut self) {
        if self.busy.as_ref().is_some_and(|b| b.is_empty()) {
            self.busy = None;
        }
    }

    /// Adds bytes the client sent.
    pub fn push_bytes(&mut self, data: &[u8]) {
        if !data.is_empty() {
            self.busy().inbuf.extend_from_slice(data);
        }
    }

    /// The request to answer next; the parts go back once nothing is held
    /// (four parsed requests' room alone, ~860 bytes, would otherwise stay
    /// with every idle keep-alive connection; issue 19).
    pub fn pop_pending(&mut self) -> Option<Pending> {
        let next = self.busy.as_mut()?.queue.pop_front();
        self.settle();
        next
    }

    /// Parsed requests waiting, in arrival order.
    pub fn queue(&self) -> &VecDeque<Pending> {
        self.busy.as_ref().map_or(&NO_PENDING, |b| &b.queue)
    }

    /// Queues `p` after the requests read before it.
    pub fn push_pending(&mut self, p: Pending) {
        self.busy().queue.push_back(p);
    }

    /// The last request read becomes `with` (an upload refused while still
    /// queued).
    pub fn replace_last(&mut self, with: Pending) {
        if let Some(last) = self.busy.as_mut().and_then(|b| b.queue.back_mut()) {
            *last = with;
        }
    }

    /// Forgets every request not answered yet.
    pub fn clear_queue(&mut self) {
        if let Some(b) = self.busy.as_mut() {
            b.queue.clear();
        }
        self.settle();
    }

    /// Heap bytes held: the parts, the input buffer and the queue's room.
    pub fn heap_bytes(&self) -> usize {
        self.busy.as_ref().map_or(0, |b| {
            std::mem::size_of::<Busy>()
                + b.inbuf.capacity()
                + b.queue.capacity() * std::mem::size_of::<Pending>()
        })
    }

    /// Input not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        self.busy.as_ref().map_or(&[], |b| &b.inbuf)
    }

    /// Consumes the first `k` buffered bytes (an upload's body took them).
    pub fn consume(&mut self, k: usize) {
        if let Some(b) = self.busy.as_mut() {
            b.inbuf.drain(..k.min(b.inbuf.len()));
        }
        self.settle();
    }

    /// The next `len` input bytes are a body nobody wants: drop them.
    pub fn skip_body(&mut self, len: u64) {
        if len > 0 {
            self.busy().discard = len;
        }
    }

    /// No further input is read: forget what is buffered.
    pub fn stop(&mut self) {
        if let Some(b) = self.busy.as_mut() {
            b.inbuf = Vec::new();
            b.partial_since = None;
        }
        self.settle();
    }

    /// True while a request body nobody wants is still being dropped.
    pub fn skipping(&self) -> bool {
        self.busy.as_ref().is_some_and(|b| b.discard > 0)
    }

    /// When the incomplete request head began to arrive, if one is.
    pub fn partial_since(&self) -> Option<Instant> {
        self.busy.as_ref().and_then(|b| b.partial_since)
    }

    /// An answer is done: a pipelined head that arrived meanwhile is the
    /// one waited for from `now` on.
    pub fn restart_clock(&mut self, now: Instant) {
        if let Some(since) = self.busy.as_mut().and_then(|b| b.partial_since.as_mut()) {
            *since = now;
        }
    }

    /// Parses the next request head from the input.
    pub fn next(&mut self, limits: &Limits, now: Instant) -> Next {
        let Some(busy) = self.busy.as_mut() else {
            return Next::Stop;
        };
        let next = busy.next(limits, now);
        self.settle();
        next
    }
}

impl Busy {
    fn next(&mut self, limits: &Limits, now: Instant) -> Next {
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
