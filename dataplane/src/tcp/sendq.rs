//! The send queue: the application's `Bytes` chunks, kept as they were given
//! (zero-copy), from the first unacknowledged byte to the last queued one.
//! Segments are built by slicing chunks (a refcount bump each), so a
//! retransmission re-reads the same memory the cache handed us. What it
//! holds is counted in the worker's [`BufferBudget`], which its TCB passes
//! in.

use super::budget::BufferBudget;
use bytes::{Buf, Bytes};
use std::collections::VecDeque;

/// Queued bytes, addressed by offset from the first unacknowledged byte:
/// nothing but a null pointer while nothing is queued (8 bytes where the
/// parts take 56, in each of 300,000 TCBs; issue 19).
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    queued: Option<Box<Queued>>,
}

/// What a send queue holds while it holds anything.
#[derive(Debug, Default)]
struct Queued {
    chunks: VecDeque<Bytes>,
    len: usize,
    /// Lookup cache: chunk index and the offset of that chunk's first byte,
    /// so that sending a long queue front to back stays O(1) per segment.
    cursor: (usize, usize),
}

impl SendQueue {
    /// Gives everything held back to `budget` (the connection is going
    /// away). The budget is passed in, not held: a handle in each queue of
    /// 300,000 TCBs would cost memory for a value the TCB's config holds.
    pub(crate) fn release(&mut self, budget: &BufferBudget) {
        budget.sub(self.len());
        self.queued = None;
    }

    /// Bytes queued (unacknowledged and unsent).
    pub(crate) fn len(&self) -> usize {
        self.queued.as_ref().map_or(0, |q| q.len)
    }

    /// Append a chunk (empty chunks are ignored), counted in `budget`.
    pub(crate) fn push(&mut self, data: Bytes, budget: &BufferBudget) {
        if data.is_empty() {
            return;
        }
        let q = self.queued.get_or_insert_with(Box::default);
        q.len += data.len();
        budget.add(data.len());
        q.chunks.push_back(data);
    }

    /// Drop `n` bytes from the front (they were acknowledged), given back
    /// to `budget`.
    pub(crate) fn consume(&mut self, n: usize, budget: &BufferBudget) {
        let Some(q) = self.queued.as_mut() else {
            return;
        };
        let n = n.min(q.len);
        q.len -= n;
        budget.sub(n);
        let mut left = n;
        let mut popped = 0;
        while left > 0 {
            let Some(front) = q.chunks.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                popped += 1;
                q.chunks.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
        let (ci, coff) = q.cursor;
        // A cursor chunk that starts at or after the consumed bytes survives,
        // shifted; otherwise restart from the front.
        q.cursor = if coff >= n && ci >= popped {
            (ci - popped, coff - n)
        } else {
            (0, 0)
        };
        if q.chunks.is_empty() {
            // Everything acknowledged: an idle connection keeps no chunk
            // list nor its parts (see `RecvQueue::read`).
            self.queued = None;
        }
    }

    /// Heap bytes the queue's own structure holds (the chunks' bytes are
    /// shared with the application, e.g. a cached object).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.queued.as_ref().map_or(0, |q| {
            std::mem::size_of::<Queued>() + q.chunks.capacity() * std::mem::size_of::<Bytes>()
        })
    }

    /// Append to `out` slices covering `[off, off + len)` (clamped to the
    /// queue). Returns the number of bytes covered.
    pub(crate) fn slice_into(&mut self, off: usize, len: usize, out: &mut Vec<Bytes>) -> usize {
        match self.queued.as_mut() {
            Some(q) => q.slice_into(off, len, out),
            None => 0,
        }
    }
}

impl Queued {
    fn slice_into(&mut self, off: usize, len: usize, out: &mut Vec<Bytes>) -> usize {
        if off >= self.len || len == 0 {
            return 0;
        }
        let end = (off + len).min(self.len);
        let (mut ci, mut cstart) = self.cursor;
        if ci >= self.chunks.len() || cstart > off {
            ci = 0;
            cstart = 0;
        }
        // Walk to the chunk containing `off`.
        while let Some(c) = self.chunks.get(ci) {
            if cstart + c.len() > off {
                break;
            }
            cstart += c.len();
            ci += 1;
        }
        self.cursor = (ci, cstart);
        let mut pos = off;
        while pos < end {
            let Some(c) = self.chunks.get(ci) else {
                break;
            };
            let from = pos - cstart;
            let to = (end - cstart).min(c.len());
            out.push(c.slice(from..to));
            pos = cstart + to;
            if to == c.len() {
                cstart += c.len();
                ci += 1;
            }
        }
        pos - off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(q: &mut SendQueue, off: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        q.slice_into(off, len, &mut out);
        out.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn slices_span_chunks_and_survive_partial_consume() {
        let budget = BufferBudget::new(1000);
        let mut q = SendQueue::default();
        q.push(Bytes::from_static(b"hello "), &budget);
        q.push(Bytes::from_static(b""), &budget);
        q.push(Bytes::from_static(b"wonderful "), &budget);
        q.push(Bytes::from_static(b"world"), &budget);
        assert_eq!(q.len(), 21);
        assert_eq!(budget.used(), 21);
        assert_eq!(collect(&mut q, 4, 8), b"o wonder");
        assert_eq!(collect(&mut q, 16, 100), b"world");
        q.consume(8, &budget);
        assert_eq!(q.len(), 13);
        assert_eq!(budget.used(), 13);
        assert_eq!(collect(&mut q, 0, 5), b"nderf");
        assert_eq!(collect(&mut q, 8, 5), b"world");
        q.consume(13, &budget);
        assert_eq!(q.len(), 0);
        assert_eq!(collect(&mut q, 0, 5), b"");
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_released_queue_gives_its_bytes_back_to_the_budget() {
        let budget = BufferBudget::new(1000);
        let mut q = SendQueue::default();
        q.push(Bytes::from_static(b"abcdef"), &budget);
        q.consume(2, &budget);
        assert_eq!(budget.used(), 4);
        q.release(&budget);
        assert_eq!((q.len(), budget.used()), (0, 0));
    }
}
