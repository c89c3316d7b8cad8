//! The SACK scoreboard (RFC 6675 §3): what the peer told us it holds
//! above `snd_una`. Knows sequence numbers only, not segments or timers.

use super::seq::SeqNum;

/// SACK blocks remembered from the peer (RFC 6675 scoreboard).
pub(crate) const SCOREBOARD_MAX: usize = 8;

type Blocks = [(SeqNum, SeqNum); SCOREBOARD_MAX];

/// The peer's SACK blocks above `snd_una`, sorted and merged (RFC 6675 §3
/// scoreboard, in ranges rather than per-segment bits).
///
/// The blocks live on the heap only while there are any: every TCB has a
/// scoreboard, few ever hold a block, and 300,000 idle connections would
/// otherwise carry 64 unused bytes each (issue 19).
#[derive(Debug, Default, Clone)]
pub(crate) struct Scoreboard {
    blocks: Option<Box<Blocks>>,
    n: u8,
}

impl Scoreboard {
    pub(crate) fn blocks(&self) -> &[(SeqNum, SeqNum)] {
        match &self.blocks {
            Some(b) => &b[..usize::from(self.n)],
            None => &[],
        }
    }

    pub(crate) fn clear(&mut self) {
        self.set_len(0);
    }

    /// Keeps the first `n` blocks; gives the storage back when none is left.
    fn set_len(&mut self, n: usize) {
        self.n = n as u8;
        if n == 0 {
            self.blocks = None;
        }
    }

    /// Heap bytes held (0 without blocks).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.blocks
            .as_ref()
            .map_or(0, |_| std::mem::size_of::<Blocks>())
    }

    /// True when the peer reported no block above `snd_una`.
    pub(crate) fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub(crate) fn sacked_bytes(&self) -> u32 {
        self.blocks()
            .iter()
            .map(|(l, r)| (*r - *l).max(0) as u32)
            .sum()
    }

    pub(crate) fn highest(&self) -> Option<SeqNum> {
        self.blocks().last().map(|b| b.1)
    }

    /// Add `[l, r)`; true when it told us something new.
    pub(crate) fn insert(&mut self, l: SeqNum, r: SeqNum) -> bool {
        if !l.lt(r) {
            return false;
        }
        let before = self.sacked_bytes();
        let mut tmp = [(SeqNum(0), SeqNum(0)); SCOREBOARD_MAX + 1];
        let mut k = 0;
        let mut placed = false;
        for &b in self.blocks() {
            if !placed && l.lt(b.0) {
                tmp[k] = (l, r);
                k += 1;
                placed = true;
            }
            tmp[k] = b;
            k += 1;
        }
        if !placed {
            tmp[k] = (l, r);
            k += 1;
        }
        let mut m = 0;
        for i in 0..k {
            let b = tmp[i];
            if m > 0 && b.0.le(tmp[m - 1].1) {
                tmp[m - 1].1 = tmp[m - 1].1.max(b.1);
            } else {
                tmp[m] = b;
                m += 1;
            }
        }
        // Keep the lowest blocks: they decide the next retransmission.
        let m = m.min(SCOREBOARD_MAX);
        let blocks = self
            .blocks
            .get_or_insert_with(|| Box::new([(SeqNum(0), SeqNum(0)); SCOREBOARD_MAX]));
        blocks[..m].copy_from_slice(&tmp[..m]);
        self.set_len(m);
        self.sacked_bytes() > before
    }

    /// Forget everything below the cumulative ACK.
    pub(crate) fn trim_below(&mut self, una: SeqNum) {
        let n = usize::from(self.n);
        let Some(blocks) = self.blocks.as_mut() else {
            return;
        };
        let mut m = 0;
        for i in 0..n {
            let (l, r) = blocks[i];
            if r.gt(una) {
                blocks[m] = (l.max(una), r);
                m += 1;
            }
        }
        self.set_len(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_merged_kept_sorted_and_their_storage_freed_once_acknowledged() {
        let mut sb = Scoreboard::default();
        assert_eq!(sb.heap_bytes(), 0);
        assert!(sb.insert(SeqNum(300), SeqNum(400)));
        assert!(sb.insert(SeqNum(100), SeqNum(200)));
        assert!(sb.insert(SeqNum(200), SeqNum(250)));
        assert!(!sb.insert(SeqNum(120), SeqNum(180)), "nothing new");
        assert_eq!(
            sb.blocks(),
            &[(SeqNum(100), SeqNum(250)), (SeqNum(300), SeqNum(400))]
        );
        assert_eq!(sb.sacked_bytes(), 250);
        assert!(sb.heap_bytes() > 0);
        sb.trim_below(SeqNum(350));
        assert_eq!(sb.blocks(), &[(SeqNum(350), SeqNum(400))]);
        sb.trim_below(SeqNum(400));
        assert!(sb.is_empty());
        assert_eq!(sb.heap_bytes(), 0, "an empty scoreboard holds no heap");
        sb.insert(SeqNum(500), SeqNum(600));
        sb.clear();
        assert_eq!((sb.blocks().len(), sb.heap_bytes()), (0, 0));
    }

    #[test]
    fn a_scoreboard_without_blocks_is_two_words() {
        assert!(std::mem::size_of::<Scoreboard>() <= 16);
    }

    #[test]
    fn at_most_the_lowest_blocks_are_kept() {
        let mut sb = Scoreboard::default();
        for i in (0..2 * SCOREBOARD_MAX as u32).rev() {
            sb.insert(SeqNum(i * 100), SeqNum(i * 100 + 10));
        }
        assert_eq!(sb.blocks().len(), SCOREBOARD_MAX);
        assert_eq!(sb.blocks()[0], (SeqNum(0), SeqNum(10)));
    }
}
