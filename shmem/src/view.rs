//! The membership view cell: one agreed view (a number and its members) in
//! the segment header's spare bytes, changed only by compare-and-swap.
//!
//! Every box that maps a shared segment reads the same cell, so a death or
//! a join is one view change that all boxes see alike: the view number
//! names it, and a takeover that acts on view *n* acts on the same members
//! on every box. This module owns the bytes and the atomic protocol; it
//! does not know why a view changes (that is `baton-membership`), nor
//! heartbeats, nor connections. In replicated mode each box maps its own
//! file, so the cell is not shared and agreement needs consensus instead
//! (`docs/MEMBERSHIP.md`).
//!
//! # Protocol
//!
//! A view is larger than one atomic word, so it is published through one:
//!
//! - `current` (u64) = view number (bits 63..32) | proposer id (31..24) |
//!   tag (23..0), the tag being 24 bits of a hash of the view's contents.
//!   All zeros is view 0, the empty view before the first proposal.
//! - Each possible proposer owns two staging records, one per parity of
//!   the view number. To propose view *n + 1* over the current view *n*,
//!   box `p` writes its proposal into its record `(p, (n + 1) % 2)` under
//!   that record's seqlock, then CASes `current` from the exact word it
//!   read to `(n + 1, p, tag)`. The CAS is the commit: at most one proposal
//!   per number wins, and the losers learn the winner's view.
//! - A reader loads `current`, then copies the named record under its
//!   seqlock, and accepts it only if the record carries the same number
//!   and hashes to the same tag; otherwise it starts again from `current`.
//!
//! Why this is safe without locks: a proposer never writes the record the
//! current view lives in (its own views are numbered at most *n*, and the
//! one it may write is *n + 1*'s parity), so the committed record is stable
//! while it is current. A reader that was overtaken sees another number or
//! a moved seqlock and retries. A proposer that dies while staging leaves
//! only its own record half-written (never named by `current`); one that
//! dies after its CAS has committed a complete view. Like a region, a
//! proposer id must have one writer at a time; should a stale incarnation
//! of a box still scribble on its records after a new one committed, the
//! tag turns that into [`ViewError::Unreadable`], never into a wrong view,
//! and the next proposal (which needs only the number) repairs the cell.
//!
//! Layout (offsets from the start of the segment, little-endian; also in
//! `docs/CHECKPOINT_FORMAT.md`):
//!
//! ```text
//! 64                       current (u64)
//! 72 .. 128                reserved (zero)
//! 128 + (2p + k) * 112     staging record of proposer p, parity k:
//!     +0   u64   seqlock (odd while written)
//!     +8   u32   view number
//!     +12  4 × u8 placement of views number, number − 1, …, number − 3:
//!                   0 = no loads committed with it, else 0x80 | the id
//!                   of its proposer, whose region's ring holds them
//!                   (`crate::loads`, issue 20)
//!     +16  4 × u64  reasons of views number, number − 1, …, number − 3
//!                   (opaque to this crate; 0 = unknown)
//!     +48  16 × u32 epoch of member id i (0 = not a member)
//! ```
//!
//! The reasons of the last few views travel with each view so that a box
//! that polled too slowly to see view *n* can still learn what changed
//! from *n − 1* to *n* (its caller encodes the change in the reason).

use std::sync::atomic::{fence, AtomicU64, Ordering};

use crate::loads::{ChangeLoads, CommittedLoads};
use crate::segment::{Segment, H_VIEW};

/// Highest number of members a view can hold; member ids are `0..MAX_MEMBERS`.
/// The cell must fit the header page: 2 records × 112 bytes per id.
pub const MAX_MEMBERS: usize = 16;
/// How many views' reasons a view carries: its own and its predecessors'.
pub const REASON_HISTORY: usize = 4;

// The loads ring holds one entry per view of a reason history, and loads
// for every member id.
const _: () = assert!(crate::loads::RING_ENTRIES == REASON_HISTORY);
const _: () = assert!(crate::loads::MAX_MEMBERS == MAX_MEMBERS);

/// Bytes of one staging record: seqlock, number, reasons, one u32 epoch per id.
const RECORD_SIZE: usize = 16 + 8 * REASON_HISTORY + 4 * MAX_MEMBERS;
/// Offset of the epochs inside a record.
const EPOCHS: usize = 16 + 8 * REASON_HISTORY;
/// Offset of the `current` word.
const CURRENT: usize = H_VIEW;
/// Offset of the first staging record (a cache line after `current`).
const RECORDS: usize = H_VIEW + 64;
/// Bytes of the cell, from `H_VIEW`.
pub(crate) const VIEW_CELL_SIZE: usize = 64 + 2 * MAX_MEMBERS * RECORD_SIZE;
/// A reader gives up on a record that never matches `current` after this
/// many attempts (its proposer was stopped for good while writing it).
const READ_ATTEMPTS: u32 = 10_000;

/// A view's number. Views are totally ordered by it; each number is
/// committed at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ViewNumber(pub u32);

impl ViewNumber {
    /// The number after this one, `None` when the numbers are used up.
    pub fn next(self) -> Option<ViewNumber> {
        self.0.checked_add(1).map(ViewNumber)
    }
}

impl std::fmt::Display for ViewNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One member of a view: a box and the incarnation (epoch) of it that the
/// view admits. A restarted box has a new epoch and is a new member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// Box id (region index).
    pub id: u16,
    /// The box's epoch (+1 at each start; never 0 for a member).
    pub epoch: u32,
}

/// A committed view: its number, who committed it, why, and its members
/// sorted by id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// The view's number; 0 is the empty view before the first commit.
    pub number: ViewNumber,
    /// The box that committed this view.
    pub proposer: u16,
    /// Why this view and its predecessors were proposed, in the proposers'
    /// code (opaque here): `reasons[i]` belongs to view `number − i`; 0 is
    /// unknown (before view 1, or lost when a view was proposed over an
    /// unreadable one).
    pub reasons: [u64; REASON_HISTORY],
    /// The members, sorted by id, at most one per id.
    pub members: Vec<Member>,
    /// The survivors' loads committed with this view and its predecessors
    /// (issue 20), indexed as `reasons`: what a load-aware split of each
    /// change is computed from. Boxed: most views carry none, and a view
    /// travels in every conflict error.
    pub loads: Box<[CommittedLoads; REASON_HISTORY]>,
}

impl View {
    /// Why this view was proposed (the proposer's code; 0 = unknown).
    pub fn reason(&self) -> u64 {
        self.reasons[0]
    }

    /// The reason code of view `number`, if this view still carries it.
    pub fn reason_of(&self, number: ViewNumber) -> Option<u64> {
        let back = self.number.0.checked_sub(number.0)? as usize;
        self.reasons.get(back).copied().filter(|&r| r != 0)
    }

    /// The loads committed with view `number`, if this view still carries
    /// its history ([`CommittedLoads::None`] otherwise).
    pub fn loads_of(&self, number: ViewNumber) -> &CommittedLoads {
        static NONE: CommittedLoads = CommittedLoads::None;
        self.number
            .0
            .checked_sub(number.0)
            .and_then(|back| self.loads.get(back as usize))
            .unwrap_or(&NONE)
    }

    /// The epoch at which box `id` is a member, if it is one.
    pub fn epoch_of(&self, id: u16) -> Option<u32> {
        self.members.iter().find(|m| m.id == id).map(|m| m.epoch)
    }

    /// Whether this exact incarnation is a member.
    pub fn contains(&self, member: Member) -> bool {
        self.epoch_of(member.id) == Some(member.epoch)
    }

    /// The member ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.members.iter().map(|m| m.id)
    }
}

/// Why the committed view could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// The `current` word is not one a proposer writes (foreign or corrupt
    /// bytes in the header).
    #[error("view cell: current word {word:#018x} is invalid")]
    Corrupt {
        /// The word as found.
        word: u64,
    },
    /// `current` names a record that never holds that view: its proposer
    /// was stopped while rewriting it, or a stale writer overwrote it. The
    /// next proposal over this number repairs the cell.
    #[error("view cell: view {number} (proposed by box {proposer}) is unreadable")]
    Unreadable {
        /// The number `current` names.
        number: ViewNumber,
        /// The proposer it names.
        proposer: u16,
    },
}

/// A proposal the cell refuses before trying it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProposal {
    /// The proposer id has no staging records.
    #[error("proposer {0} is not below {MAX_MEMBERS}")]
    Proposer(u16),
    /// A member id beyond the cell's capacity.
    #[error("member id {0} is not below {MAX_MEMBERS}")]
    MemberId(u16),
    /// Epoch 0 means "not a member" in the cell.
    #[error("member {0} has epoch 0")]
    ZeroEpoch(u16),
    /// Two members with one id.
    #[error("member {0} appears twice")]
    Duplicate(u16),
    /// View numbers are used up.
    #[error("no view number after {0}")]
    Exhausted(ViewNumber),
}

/// Why a proposal was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Another view was committed first (or the caller's expectation was
    /// stale): here it is.
    #[error("view {} is already committed", current.number)]
    Conflict {
        /// The committed view the proposal lost to.
        current: View,
    },
    /// The proposal lost, and the view it lost to cannot be read.
    #[error("lost to a view that cannot be read: {0}")]
    Unreadable(ViewError),
    /// The proposal is not a view the cell can hold.
    #[error(transparent)]
    Invalid(#[from] InvalidProposal),
}

/// The view cell of a mapped segment. Cheap to clone, `Send` and `Sync`;
/// any number of threads and processes may read and propose at once.
#[derive(Clone, Debug)]
pub struct ViewCell {
    seg: Segment,
}

/// The fields packed into `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Current {
    number: u32,
    proposer: u16,
    tag: u32,
}

impl Current {
    fn pack(self) -> u64 {
        ((self.number as u64) << 32)
            | ((self.proposer as u64 & 0xff) << 24)
            | (self.tag as u64 & 0xff_ffff)
    }

    fn unpack(word: u64) -> Result<Current, ViewError> {
        let c = Current {
            number: (word >> 32) as u32,
            proposer: ((word >> 24) & 0xff) as u16,
            tag: (word & 0xff_ffff) as u32,
        };
        let valid = if c.number == 0 {
            word == 0
        } else {
            (c.proposer as usize) < MAX_MEMBERS
        };
        if valid {
            Ok(c)
        } else {
            Err(ViewError::Corrupt { word })
        }
    }
}

/// The contents of a staging record, as words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Staged {
    number: u32,
    /// Placement bytes, one per view of `reasons` (byte i, least
    /// significant first).
    placed: u32,
    reasons: [u64; REASON_HISTORY],
    epochs: [u32; MAX_MEMBERS],
}

impl Staged {
    /// 24 bits of FNV-1a over the record's contents: a record rewritten
    /// under the same number (a stale writer) no longer matches `current`.
    fn tag(&self) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |v: u64| {
            for b in v.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        eat(self.number as u64);
        // Only when set, so a view committed without loads keeps the tag
        // an older build computes.
        if self.placed != 0 {
            eat(self.placed as u64);
        }
        self.reasons.iter().for_each(|&r| eat(r));
        self.epochs.iter().for_each(|&e| eat(e as u64));
        ((h >> 40) ^ (h >> 16) ^ h) as u32 & 0xff_ffff
    }

    fn view(&self, proposer: u16) -> View {
        View {
            number: ViewNumber(self.number),
            proposer,
            reasons: self.reasons,
            loads: Box::new(std::array::from_fn(|i| {
                let byte = (self.placed >> (8 * i)) as u8;
                if byte & 0x80 == 0 {
                    CommittedLoads::None
                } else {
                    CommittedLoads::Unread {
                        proposer: (byte & 0x7f) as u16,
                    }
                }
            })),
            members: self
                .epochs
                .iter()
                .enumerate()
                .filter(|(_, &e)| e != 0)
                .map(|(id, &epoch)| Member {
                    id: id as u16,
                    epoch,
                })
                .collect(),
        }
    }
}

impl ViewCell {
    /// The view cell of `segment` (the header of a shared segment).
    pub fn new(segment: &Segment) -> ViewCell {
        ViewCell {
            seg: segment.clone(),
        }
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off >= H_VIEW && off + 8 <= H_VIEW + VIEW_CELL_SIZE);
        // SAFETY: every offset used here is a constant inside the header
        // page (checked at compile time below), 8-aligned, and the mapping
        // is at least one header long (checked at open).
        unsafe { self.seg.inner.u64_at(off) }
    }

    fn record_offset(proposer: u16, number: u32) -> usize {
        RECORDS + (2 * proposer as usize + (number % 2) as usize) * RECORD_SIZE
    }

    /// The committed view.
    ///
    /// Never blocks on a proposer: a record that changes under the reader
    /// means a newer view was committed, and the reader starts again from
    /// it. Bytes that no proposer writes give an error, not a guess.
    pub fn read(&self) -> Result<View, ViewError> {
        let mut last = None;
        for _ in 0..READ_ATTEMPTS {
            let word = self.word(CURRENT).load(Ordering::Acquire);
            let cur = Current::unpack(word)?;
            if cur.number == 0 {
                return Ok(View::default());
            }
            if let Some(staged) = self.copy_record(cur.proposer, cur.number) {
                if staged.number == cur.number && staged.tag() == cur.tag {
                    return Ok(self.with_loads(staged.view(cur.proposer)));
                }
            }
            last = Some(cur);
            std::hint::spin_loop();
        }
        let cur = last.unwrap_or(Current {
            number: 0,
            proposer: 0,
            tag: 0,
        });
        Err(ViewError::Unreadable {
            number: ViewNumber(cur.number),
            proposer: cur.proposer,
        })
    }

    /// A stable copy of a record under its seqlock, `None` if it was being
    /// written.
    fn copy_record(&self, proposer: u16, number: u32) -> Option<Staged> {
        let base = Self::record_offset(proposer, number);
        let seq = self.word(base);
        let s1 = seq.load(Ordering::Acquire);
        if s1 % 2 == 1 {
            return None;
        }
        let head = self.word(base + 8).load(Ordering::Relaxed);
        let mut reasons = [0u64; REASON_HISTORY];
        for (i, r) in reasons.iter_mut().enumerate() {
            *r = self.word(base + 16 + 8 * i).load(Ordering::Relaxed);
        }
        let mut epochs = [0u32; MAX_MEMBERS];
        for (i, pair) in epochs.chunks_mut(2).enumerate() {
            let w = self.word(base + EPOCHS + 8 * i).load(Ordering::Relaxed);
            pair[0] = w as u32;
            if let Some(hi) = pair.get_mut(1) {
                *hi = (w >> 32) as u32;
            }
        }
        fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) != s1 {
            return None;
        }
        Some(Staged {
            number: head as u32,
            placed: (head >> 32) as u32,
            reasons,
            epochs,
        })
    }

    fn write_record(&self, proposer: u16, staged: &Staged) {
        let base = Self::record_offset(proposer, staged.number);
        let seq = self.word(base);
        // An odd value left by a proposer that died mid-write is moved past.
        let s = seq.load(Ordering::Relaxed);
        let odd = if s % 2 == 1 {
            s.wrapping_add(2)
        } else {
            s.wrapping_add(1)
        };
        seq.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        self.word(base + 8).store(
            staged.number as u64 | (staged.placed as u64) << 32,
            Ordering::Relaxed,
        );
        for (i, &r) in staged.reasons.iter().enumerate() {
            self.word(base + 16 + 8 * i).store(r, Ordering::Relaxed);
        }
        for (i, pair) in staged.epochs.chunks(2).enumerate() {
            let w = pair[0] as u64 | (pair.get(1).copied().unwrap_or(0) as u64) << 32;
            self.word(base + EPOCHS + 8 * i).store(w, Ordering::Relaxed);
        }
        seq.store(odd.wrapping_add(1), Ordering::Release);
    }

    /// Proposes `members` as the view after `expected`, on behalf of box
    /// `proposer`, with an opaque `reason` code (0 reads as unknown).
    /// The reasons of the views before are carried over from `expected`'s
    /// record when it is readable.
    ///
    /// Commits only if `expected` is still the committed view's number;
    /// otherwise returns the view that is committed now
    /// ([`ProposeError::Conflict`]), and the caller decides whether its
    /// change is still needed. Only one proposal per number ever commits.
    /// A proposal over an unreadable view succeeds if its number is right:
    /// that is how a cell spoiled by a stale writer is repaired.
    ///
    /// Each proposer id must be used by one thread at a time.
    pub fn propose(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: u64,
    ) -> Result<View, ProposeError> {
        self.propose_with_loads(proposer, expected, members, reason, None)
    }

    /// [`ViewCell::propose`], committing `loads` with the view: they are
    /// written into the proposer's own region's ring (`crate::loads`)
    /// before the compare-and-swap, and the view's placement byte names
    /// the proposer. Loads that cannot be written (the proposer has no
    /// region, an id beyond the ring) are left out: the view then carries
    /// none, and every box splits its change round-robin.
    pub fn propose_with_loads(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: u64,
        loads: Option<&ChangeLoads>,
    ) -> Result<View, ProposeError> {
        let (number, epochs) = checked(proposer, expected, members)?;
        let old = self.word(CURRENT).load(Ordering::Acquire);
        if (old >> 32) as u32 != expected.0 {
            return Err(self.conflict());
        }
        let written = loads.is_some_and(|l| {
            self.seg
                .region(proposer)
                .is_ok_and(|r| r.write_loads(number.0, l))
        });
        let mut placed = if written { 0x80 | proposer as u32 } else { 0 };
        let mut reasons = [0u64; REASON_HISTORY];
        reasons[0] = reason;
        if let Ok(cur) = Current::unpack(old) {
            if cur.number != 0 {
                if let Some(prev) = self
                    .copy_record(cur.proposer, cur.number)
                    .filter(|p| p.number == cur.number && p.tag() == cur.tag)
                {
                    reasons[1..].copy_from_slice(&prev.reasons[..REASON_HISTORY - 1]);
                    placed |= prev.placed << 8;
                }
            }
        }
        let staged = Staged {
            number: number.0,
            placed,
            reasons,
            epochs,
        };
        self.write_record(proposer, &staged);
        let new = Current {
            number: number.0,
            proposer,
            tag: staged.tag(),
        }
        .pack();
        match self
            .word(CURRENT)
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(self.with_loads(staged.view(proposer))),
            Err(_) => Err(self.conflict()),
        }
    }

    /// `view` with the loads its placement bytes name read from their
    /// proposers' rings; those that cannot be read stay
    /// [`CommittedLoads::Unread`].
    fn with_loads(&self, mut view: View) -> View {
        for (back, slot) in view.loads.iter_mut().enumerate() {
            let CommittedLoads::Unread { proposer } = *slot else {
                continue;
            };
            let Some(number) = view.number.0.checked_sub(back as u32) else {
                continue;
            };
            if let Some(l) = self
                .seg
                .region(proposer)
                .ok()
                .and_then(|r| r.loads_for(number))
            {
                *slot = CommittedLoads::Read(l);
            }
        }
        view
    }

    fn conflict(&self) -> ProposeError {
        match self.read() {
            Ok(current) => ProposeError::Conflict { current },
            Err(e) => ProposeError::Unreadable(e),
        }
    }
}

/// Whether the cell can hold `members` as the view after `expected`,
/// proposed by `proposer`: what [`ViewCell::propose`] refuses before
/// touching the cell, for other stores that keep the same limits.
pub fn check_proposal(
    proposer: u16,
    expected: ViewNumber,
    members: &[Member],
) -> Result<(), InvalidProposal> {
    checked(proposer, expected, members).map(|_| ())
}

/// The proposal's number and its members as epochs by id.
fn checked(
    proposer: u16,
    expected: ViewNumber,
    members: &[Member],
) -> Result<(ViewNumber, [u32; MAX_MEMBERS]), InvalidProposal> {
    if proposer as usize >= MAX_MEMBERS {
        return Err(InvalidProposal::Proposer(proposer));
    }
    let number = expected
        .next()
        .ok_or(InvalidProposal::Exhausted(expected))?;
    let mut epochs = [0u32; MAX_MEMBERS];
    for m in members {
        let slot = epochs
            .get_mut(m.id as usize)
            .ok_or(InvalidProposal::MemberId(m.id))?;
        if m.epoch == 0 {
            return Err(InvalidProposal::ZeroEpoch(m.id));
        }
        if *slot != 0 {
            return Err(InvalidProposal::Duplicate(m.id));
        }
        *slot = m.epoch;
    }
    Ok((number, epochs))
}

// The cell must fit in the header page, after the segment's own fields.
const _: () = assert!(H_VIEW + VIEW_CELL_SIZE <= crate::segment::HEADER_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_word_round_trips_and_rejects_foreign_words() {
        let c = Current {
            number: 7,
            proposer: 15,
            tag: 0xab_cdef,
        };
        assert_eq!(Current::unpack(c.pack()), Ok(c));
        assert_eq!(Current::unpack(0).map(|c| c.number), Ok(0));
        // Number 0 with other bits set, and a proposer without records.
        assert!(Current::unpack(0x00ff).is_err());
        assert!(Current::unpack((1 << 32) | (16 << 24)).is_err());
    }

    #[test]
    fn a_record_with_the_same_number_but_other_members_has_another_tag() {
        let mut a = Staged {
            number: 3,
            placed: 0,
            reasons: [1, 0, 0, 0],
            epochs: [0; MAX_MEMBERS],
        };
        a.epochs[1] = 1;
        a.epochs[2] = 1;
        let mut b = a;
        b.epochs[2] = 2;
        assert_ne!(a.tag(), b.tag());
    }

    #[test]
    fn the_cell_fits_beside_the_header_fields() {
        assert_eq!(RECORD_SIZE, 112);
        assert_eq!(RECORDS % 64, 0);
        const { assert!(H_VIEW + VIEW_CELL_SIZE <= crate::segment::HEADER_SIZE) };
    }
}
