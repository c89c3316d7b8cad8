//! The survivors' loads committed with a view change (issue 20,
//! `takeover.assignment = "least_loaded"`), and the shared segment's
//! snapshot ring that carries them.
//!
//! The view cell has no room for loads (`docs/TAKEOVER.md`, "Load-aware
//! assignment"), so in shared mode the proposer of a removal writes the
//! loads it read into a ring in its own box table entry, tagged with the
//! view number it proposes, *before* its compare-and-swap on the cell's
//! `current` word; the staged view record names the proposer in its
//! placement byte. Whoever reads that view reads the proposer's ring entry
//! for that number: the loads were written before the commit, so every
//! reader of the commit finds them, and a proposal that lost its race
//! leaves an entry nobody's view names. In replicated mode the loads ride
//! in the Raft entry instead (`baton-raft`'s codec).
//!
//! Ring layout, from entry offset 256 (four entries of
//! 160 bytes, entry `number % 4`), little-endian words:
//!
//! ```text
//! +0    u64  seqlock (odd while written)
//! +8    u32  view number | u32 capacity
//! +16   u32  orphans     | u32 presence mask (bit i: member id i listed)
//! +24   16 × (u32 connections | u32 busy ppm), by member id
//! +152  u64  FNV-1a over the words from +8 to +152
//! ```
//!
//! This module knows no policy: what the loads mean is
//! `baton-membership`'s `placement`; who gathers them is the appliance's.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use crate::segment::Region;

/// One member's load as the proposer of a change read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberLoad {
    /// Member id.
    pub id: u16,
    /// Connections it owned (saturated at `u32::MAX`).
    pub connections: u32,
    /// Its workers' busy fraction, parts per million.
    pub busy_ppm: u32,
}

/// The loads committed with a removal: what every survivor feeds the
/// load-aware split, so that all compute the same one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeLoads {
    /// `takeover.capacity` of the proposer (connections a box is sized for).
    pub capacity: u32,
    /// Connections the removed box owned (its box table entry): the count
    /// the shares are computed for.
    pub orphans: u32,
    /// The survivors' loads, sorted by id, at most one per id, ids below
    /// 16 (the view cell's `MAX_MEMBERS`).
    pub members: Vec<MemberLoad>,
}

/// What a committed view says about loads for its change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CommittedLoads {
    /// None were committed: the change splits round-robin, for everyone.
    #[default]
    None,
    /// They were committed in shared mode and live in `proposer`'s ring,
    /// but could not be read (overwritten, torn, damaged). Never guessed at.
    Unread {
        /// The box whose ring holds them.
        proposer: u16,
    },
    /// They were committed, and here they are.
    Read(ChangeLoads),
}

impl CommittedLoads {
    /// Whether loads were committed with the change (read or not).
    pub fn committed(&self) -> bool {
        !matches!(self, CommittedLoads::None)
    }
}

/// Entry offset of the ring (after the 256 bytes of the box table proper).
pub(crate) const RING: usize = 256;
/// Bytes of one ring entry.
pub(crate) const ENTRY_SIZE: usize = 160;
/// Entries in the ring: one per view a committed view still names (the
/// view cell's `REASON_HISTORY`, asserted there).
pub(crate) const RING_ENTRIES: usize = 4;
/// Member ids the ring holds loads for (the view cell's `MAX_MEMBERS`,
/// asserted there).
pub(crate) const MAX_MEMBERS: usize = 16;
const WORDS: usize = 2 + MAX_MEMBERS;

const _: () = assert!(RING + RING_ENTRIES * ENTRY_SIZE <= crate::segment::BOX_ENTRY_SIZE);
const _: () = assert!(8 + 8 * WORDS + 8 <= ENTRY_SIZE);

fn checksum(words: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

impl ChangeLoads {
    fn words(&self, number: u32) -> Option<[u64; WORDS]> {
        let mut w = [0u64; WORDS];
        w[0] = number as u64 | (self.capacity as u64) << 32;
        let mut mask = 0u32;
        for m in &self.members {
            let id = m.id as usize;
            if id >= MAX_MEMBERS || mask & (1 << id) != 0 {
                return None;
            }
            mask |= 1 << id;
            w[2 + id] = m.connections as u64 | (m.busy_ppm as u64) << 32;
        }
        w[1] = self.orphans as u64 | (mask as u64) << 32;
        Some(w)
    }

    fn from_words(w: &[u64; WORDS]) -> ChangeLoads {
        let mask = (w[1] >> 32) as u32;
        ChangeLoads {
            capacity: (w[0] >> 32) as u32,
            orphans: w[1] as u32,
            members: (0..MAX_MEMBERS)
                .filter(|&id| mask & (1 << id) != 0)
                .map(|id| MemberLoad {
                    id: id as u16,
                    connections: w[2 + id] as u32,
                    busy_ppm: (w[2 + id] >> 32) as u32,
                })
                .collect(),
        }
    }
}

impl Region {
    fn ring_word(&self, entry: usize, off: usize) -> &AtomicU64 {
        debug_assert!(entry < RING_ENTRIES && off + 8 <= ENTRY_SIZE);
        // SAFETY: fixed, 8-aligned offsets inside this region's box table
        // entry (asserted against BOX_ENTRY_SIZE above).
        unsafe {
            self.inner()
                .u64_at(self.offset() + RING + entry * ENTRY_SIZE + off)
        }
    }

    /// Writes `loads` as the snapshot for view `number` into this region's
    /// ring (the proposer's own region, before it proposes that view).
    /// `false` when the loads cannot be held (an id beyond the ring, one
    /// listed twice): the proposal must then carry none.
    pub fn write_loads(&self, number: u32, loads: &ChangeLoads) -> bool {
        let Some(words) = loads.words(number) else {
            return false;
        };
        let entry = number as usize % RING_ENTRIES;
        let seq = self.ring_word(entry, 0);
        let s = seq.load(Ordering::Relaxed);
        let odd = if s % 2 == 1 {
            s.wrapping_add(2)
        } else {
            s.wrapping_add(1)
        };
        seq.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        for (i, &w) in words.iter().enumerate() {
            self.ring_word(entry, 8 + 8 * i).store(w, Ordering::Relaxed);
        }
        self.ring_word(entry, 8 + 8 * WORDS)
            .store(checksum(&words), Ordering::Relaxed);
        seq.store(odd.wrapping_add(1), Ordering::Release);
        true
    }

    /// The snapshot for view `number` in this region's ring, if it holds
    /// that number whole: `None` when it was overwritten by a later
    /// number, is being written, or does not check.
    pub fn loads_for(&self, number: u32) -> Option<ChangeLoads> {
        let entry = number as usize % RING_ENTRIES;
        let seq = self.ring_word(entry, 0);
        for _ in 0..64 {
            let s1 = seq.load(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mut words = [0u64; WORDS];
            for (i, w) in words.iter_mut().enumerate() {
                *w = self.ring_word(entry, 8 + 8 * i).load(Ordering::Relaxed);
            }
            let sum = self.ring_word(entry, 8 + 8 * WORDS).load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            if sum != checksum(&words) || words[0] as u32 != number {
                return None;
            }
            return Some(ChangeLoads::from_words(&words));
        }
        None
    }
}
