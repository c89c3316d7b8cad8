//! The SACK scoreboard (RFC 6675 §3): what the peer told us it holds
//! above `snd_una`. Knows sequence numbers only, not segments or timers.

use super::seq::SeqNum;

/// SACK blocks remembered from the peer (RFC 6675 scoreboard).
pub(crate) const SCOREBOARD_MAX: usize = 8;

/// The peer's SACK blocks above `snd_una`, sorted and merged (RFC 6675 §3
/// scoreboard, in ranges rather than per-segment bits).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Scoreboard {
    blocks: [(SeqNum, SeqNum); SCOREBOARD_MAX],
    n: usize,
}

impl Scoreboard {
    pub(crate) fn blocks(&self) -> &[(SeqNum, SeqNum)] {
        &self.blocks[..self.n]
    }

    pub(crate) fn clear(&mut self) {
        self.n = 0;
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
        self.blocks[..m].copy_from_slice(&tmp[..m]);
        self.n = m;
        self.sacked_bytes() > before
    }

    /// Forget everything below the cumulative ACK.
    pub(crate) fn trim_below(&mut self, una: SeqNum) {
        let mut m = 0;
        for i in 0..self.n {
            let (l, r) = self.blocks[i];
            if r.gt(una) {
                self.blocks[m] = (l.max(una), r);
                m += 1;
            }
        }
        self.n = m;
    }
}
