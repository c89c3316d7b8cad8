//! The receive side's buffers: in-order bytes waiting for the application,
//! and a small, bounded out-of-order queue (RFC 9293 §3.10.7.4 "seventh";
//! RFC 2018 §4 for the SACK blocks we report from it). What both hold is
//! counted in the worker's [`BufferBudget`], which its TCB passes in.

use super::budget::BufferBudget;
use super::seq::SeqNum;
use std::collections::VecDeque;

/// At most this many separate out-of-order runs are held; a segment that
/// would start another is dropped (the peer retransmits it). Keeps a flood of tiny
/// out-of-order segments from costing more than a few allocations.
pub(crate) const OOO_MAX: usize = 16;

/// In-order bytes plus out-of-order segments above `rcv_nxt`.
#[derive(Debug, Default)]
pub(crate) struct RecvQueue {
    /// In-order bytes not read yet, while there are any (boxed: 8 bytes
    /// where an empty `VecDeque` takes 32, in each of 300,000 TCBs).
    #[allow(clippy::box_collection)]
    buf: Option<Box<VecDeque<u8>>>,
    /// Out-of-order data, while there is some (boxed: a connection
    /// without losses never holds any, and 24 bytes of empty vector and
    /// marker in each of 300,000 TCBs add up; issue 19).
    ooo: Option<Box<OutOfOrder>>,
}

/// Out-of-order data and where the latest of it started.
#[derive(Debug, Default)]
struct OutOfOrder {
    /// Runs sorted by sequence number, possibly overlapping.
    runs: Vec<(SeqNum, Vec<u8>)>,
    /// Start of the most recently queued out-of-order segment (RFC 2018 §4:
    /// the first SACK block reports the most recent segment).
    last: Option<SeqNum>,
}

impl RecvQueue {
    /// Gives everything held back to `budget` (the connection is going
    /// away). The budget is passed in, not held (see `SendQueue::release`).
    pub(crate) fn release(&mut self, budget: &BufferBudget) {
        budget.sub(self.held());
        *self = RecvQueue::default();
    }

    /// Bytes held, in order and out of order (at most 16 runs to add up:
    /// cheaper than a field in each of 300,000 TCBs).
    fn held(&self) -> usize {
        self.len() + self.runs().iter().map(|(_, d)| d.len()).sum::<usize>()
    }

    /// The out-of-order runs held, in sequence order.
    fn runs(&self) -> &[(SeqNum, Vec<u8>)] {
        self.ooo.as_ref().map_or(&[], |o| &o.runs)
    }

    /// Tells `budget` how the queue changed since it held `before` bytes.
    fn recount(&self, before: usize, budget: &BufferBudget) {
        let held = self.held();
        if held > before {
            budget.add(held - before);
        } else {
            budget.sub(before - held);
        }
    }

    /// In-order bytes waiting for the application.
    pub(crate) fn len(&self) -> usize {
        self.buf.as_ref().map_or(0, |b| b.len())
    }

    /// The in-order buffer, made when bytes come.
    fn buf_mut(&mut self) -> &mut VecDeque<u8> {
        self.buf.get_or_insert_with(Box::default)
    }

    /// Whether out-of-order data is held.
    pub(crate) fn has_ooo(&self) -> bool {
        !self.runs().is_empty()
    }

    /// Number of separate out-of-order runs (SACK blocks to report).
    pub(crate) fn ooo_runs(&self) -> usize {
        let mut runs = 0;
        let mut end: Option<SeqNum> = None;
        for (s, d) in self.runs() {
            if end.is_none_or(|e| s.gt(e)) {
                runs += 1;
            }
            let e = *s + d.len() as u32;
            end = Some(end.map_or(e, |x| x.max(e)));
        }
        runs
    }

    /// Append in-order bytes, counted in `budget`.
    pub(crate) fn push_in_order(&mut self, data: &[u8], budget: &BufferBudget) {
        if !data.is_empty() {
            self.buf_mut().extend(data.iter().copied());
        }
        budget.add(data.len());
    }

    /// Hold `data` starting at `seq` (which is above `rcv_nxt`). Returns
    /// false when it was dropped because the queue is full.
    pub(crate) fn push_ooo(&mut self, seq: SeqNum, data: &[u8], budget: &BufferBudget) -> bool {
        let before = self.held();
        let kept = self.hold_ooo(seq, data);
        self.recount(before, budget);
        kept
    }

    fn hold_ooo(&mut self, seq: SeqNum, data: &[u8]) -> bool {
        if data.is_empty() {
            return true;
        }
        let end = seq + data.len() as u32;
        let o = self.ooo.get_or_insert_with(Box::default);
        // Already fully held (a duplicate)? Nothing to do.
        if o.runs
            .iter()
            .any(|(s, d)| s.le(seq) && end.le(*s + d.len() as u32))
        {
            o.last = Some(seq);
            return true;
        }
        // The common case, a run of segments after one loss: extend the
        // entry this segment continues, so the run stays one entry.
        if let Some(i) = o.runs.iter().position(|(s, d)| *s + d.len() as u32 == seq) {
            o.runs[i].1.extend_from_slice(data);
            o.last = Some(seq);
            // Absorb a following entry the extension now reaches.
            if let Some((ns, nd)) = o.runs.get(i + 1) {
                let (ns, new_end) = (*ns, seq + data.len() as u32);
                if ns.le(new_end) {
                    let skip = (new_end - ns) as usize;
                    let tail = nd.get(skip..).map(<[u8]>::to_vec).unwrap_or_default();
                    o.runs.remove(i + 1);
                    o.runs[i].1.extend_from_slice(&tail);
                }
            }
            return true;
        }
        let pos = o
            .runs
            .iter()
            .position(|(s, _)| seq.lt(*s))
            .unwrap_or(o.runs.len());
        if o.runs.len() >= OOO_MAX {
            // Full: drop the newcomer. Evicting held data would renege on
            // SACK blocks already reported (RFC 2018 §8 allows it, but a
            // sender that trusts them would then stall until a timeout).
            return false;
        }
        o.runs.insert(pos, (seq, data.to_vec()));
        o.last = Some(seq);
        true
    }

    /// Move out-of-order data that became in-order (given the new
    /// `rcv_nxt`) to the in-order buffer; returns the new `rcv_nxt`.
    pub(crate) fn drain_ooo(&mut self, mut rcv_nxt: SeqNum, budget: &BufferBudget) -> SeqNum {
        let before = self.held();
        if let Some(o) = self.ooo.as_mut() {
            while let Some((s, _)) = o.runs.first() {
                if s.gt(rcv_nxt) {
                    break;
                }
                let (s, d) = o.runs.remove(0);
                let end = s + d.len() as u32;
                if end.gt(rcv_nxt) {
                    let skip = (rcv_nxt - s) as usize;
                    if let Some(tail) = d.get(skip..) {
                        if !tail.is_empty() {
                            self.buf
                                .get_or_insert_with(Box::default)
                                .extend(tail.iter().copied());
                        }
                    }
                    rcv_nxt = end;
                }
            }
            if o.runs.is_empty() {
                self.ooo = None;
            }
        }
        self.recount(before, budget);
        rcv_nxt
    }

    /// Copy up to `out.len()` in-order bytes out; returns how many.
    pub(crate) fn read(&mut self, out: &mut [u8], budget: &BufferBudget) -> usize {
        let Some(buf) = self.buf.as_mut() else {
            return 0;
        };
        let n = out.len().min(buf.len());
        let (a, b) = buf.as_slices();
        let na = n.min(a.len());
        out[..na].copy_from_slice(&a[..na]);
        out[na..n].copy_from_slice(&b[..n - na]);
        buf.drain(..n);
        budget.sub(n);
        if buf.is_empty() {
            // An idle keep-alive connection holds no receive buffer: one
            // allocation per request is cheaper than its bytes kept in
            // each of 300,000 idle TCBs (issue 19).
            self.buf = None;
        }
        n
    }

    /// Heap bytes the queue holds (capacities, not contents).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buf
            .as_ref()
            .map_or(0, |b| std::mem::size_of::<VecDeque<u8>>() + b.capacity())
            + self.ooo.as_ref().map_or(0, |o| {
                std::mem::size_of::<OutOfOrder>()
                    + o.runs.capacity() * std::mem::size_of::<(SeqNum, Vec<u8>)>()
                    + o.runs.iter().map(|(_, d)| d.capacity()).sum::<usize>()
            })
    }

    /// The SACK blocks describing held out-of-order data, the block with
    /// the most recently received segment first (RFC 2018 §4), at most `max`.
    pub(crate) fn sack_blocks(&self, max: usize, out: &mut [Option<(SeqNum, SeqNum)>]) {
        for o in out.iter_mut() {
            *o = None;
        }
        let mut merged: [(SeqNum, SeqNum); OOO_MAX] = [(SeqNum(0), SeqNum(0)); OOO_MAX];
        let mut n = 0;
        for (s, d) in self.runs() {
            let e = *s + d.len() as u32;
            if n > 0 && s.le(merged[n - 1].1) {
                merged[n - 1].1 = merged[n - 1].1.max(e);
            } else if n < OOO_MAX {
                merged[n] = (*s, e);
                n += 1;
            }
        }
        let max = max.min(out.len());
        let mut k = 0;
        let first = self
            .ooo
            .as_ref()
            .and_then(|o| o.last)
            .and_then(|l| merged[..n].iter().position(|(s, e)| s.le(l) && l.lt(*e)));
        if let Some(i) = first {
            if k < max {
                out[k] = Some(merged[i]);
                k += 1;
            }
        }
        for (i, b) in merged[..n].iter().enumerate() {
            if k >= max {
                break;
            }
            if Some(i) != first {
                out[k] = Some(*b);
                k += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_data_joins_when_the_hole_fills() {
        let b = BufferBudget::default();
        let mut q = RecvQueue::default();
        let base = SeqNum(u32::MAX - 2);
        assert!(q.push_ooo(base + 6, b"ghi", &b));
        assert!(q.push_ooo(base + 3, b"def", &b));
        assert!(q.push_ooo(base + 4, b"ef", &b)); // duplicate, ignored
        let mut blocks = [None; 4];
        q.sack_blocks(4, &mut blocks);
        // The most recent segment's block first; the two held ones merged.
        assert_eq!(blocks[0], Some((base + 3, base + 9)));
        assert_eq!(blocks[1], None);
        q.push_in_order(b"abc", &b);
        let nxt = q.drain_ooo(base + 3, &b);
        assert_eq!(nxt, base + 9);
        let mut out = [0u8; 16];
        let n = q.read(&mut out, &b);
        assert_eq!(&out[..n], b"abcdefghi");
        assert!(!q.has_ooo());
        // Nothing held, nothing kept: not even the out-of-order part.
        assert_eq!(q.heap_bytes(), 0);
    }

    #[test]
    fn a_run_of_out_of_order_segments_is_one_entry() {
        let b = BufferBudget::default();
        let mut q = RecvQueue::default();
        for i in 0..100u32 {
            assert!(q.push_ooo(SeqNum(1000 + 10 * i), &[i as u8; 10], &b));
        }
        assert_eq!(q.runs().len(), 1);
        let nxt = q.drain_ooo(SeqNum(1000), &b);
        assert_eq!(nxt, SeqNum(2000));
        assert_eq!(q.len(), 1000);
    }

    #[test]
    fn out_of_order_queue_is_bounded() {
        let b = BufferBudget::default();
        let mut q = RecvQueue::default();
        for i in 0..OOO_MAX as u32 {
            assert!(q.push_ooo(SeqNum(100 + 10 * i), b"x", &b));
        }
        // A new run is dropped, wherever it falls: what was reported in
        // SACK blocks stays held.
        assert!(!q.push_ooo(SeqNum(10_000), b"y", &b));
        assert!(!q.push_ooo(SeqNum(95), b"z", &b));
        assert_eq!(q.runs().len(), OOO_MAX);
        // Extending a held run still works.
        assert!(q.push_ooo(SeqNum(101), b"w", &b));
    }

    #[test]
    fn the_budget_counts_in_order_and_out_of_order_bytes() {
        let b = BufferBudget::new(1000);
        let mut q = RecvQueue::default();
        q.push_in_order(b"abc", &b);
        assert!(q.push_ooo(SeqNum(10), b"klm", &b));
        assert!(q.push_ooo(SeqNum(11), b"lm", &b)); // duplicate: not counted twice
        assert_eq!(b.used(), 6);
        q.push_in_order(b"defghij", &b);
        assert_eq!(q.drain_ooo(SeqNum(10), &b), SeqNum(13));
        assert_eq!(b.used(), 13);
        let mut out = [0u8; 5];
        assert_eq!(q.read(&mut out, &b), 5);
        assert_eq!(b.used(), 8);
        q.release(&b);
        assert_eq!((q.len(), b.used()), (0, 0));
    }
}
