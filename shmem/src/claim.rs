//! Slot ownership claims: which box restores the connection in a dead
//! box's slot, decided by compare-and-swap so that two boxes never restore
//! the same connection.
//!
//! Each slot of every region has one claim word in the claims area after
//! the regions (`docs/CHECKPOINT_FORMAT.md`): the box that claimed the
//! slot's connection and the number of the committed membership view it
//! claimed it in ([`crate::view`]). A survivor claims each orphan's slot
//! before restoring it; the claim succeeds only over a claim from an older
//! view, so the survivors of one view change (one number) claim each slot
//! once between them, whatever plan each of them computed, while a later
//! death of the region's next incarnation (a newer view) claims afresh.
//! Zero is "never claimed": the region's own box owns its slots.
//!
//! This module knows slots and view numbers, not why a view changed nor
//! what a slot holds. It does not change how a region's owner writes its
//! slots: keeping an owner that the view excluded from writing them is
//! fencing's job (see `docs/MEMBERSHIP.md` for folding the claim into the
//! slot's seqlock later).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::segment::{Region, CLAIM_SIZE};
use crate::slot::SlotId;
use crate::view::ViewNumber;

/// A claim on a slot: box `by` restores its connection, as decided in
/// view `view`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The claiming box.
    pub by: u16,
    /// The committed view the claim was made in (never 0).
    pub view: ViewNumber,
}

impl Claim {
    fn word(self) -> u64 {
        ((self.view.0 as u64) << 32) | self.by as u64
    }

    /// The claim in a word; `Ok(None)` for 0, an error for bytes no
    /// claimer writes (reserved bits set, or a box id without a view).
    fn from_word(word: u64) -> Result<Option<Claim>, u64> {
        if word == 0 {
            return Ok(None);
        }
        let view = ViewNumber((word >> 32) as u32);
        if word & 0xffff_0000 != 0 || view.0 == 0 {
            return Err(word);
        }
        Ok(Some(Claim {
            by: word as u16,
            view,
        }))
    }
}

/// Why a claim was not made or not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Another box claimed the slot in this view or a newer one.
    #[error("slot already claimed by box {} in view {}", .0.by, .0.view)]
    Taken(Claim),
    /// The slot index is beyond the region.
    #[error("slot {slot} is outside the region's {slots} slots")]
    NoSuchSlot {
        /// The slot asked for.
        slot: u32,
        /// Slots in the region.
        slots: u32,
    },
    /// Claims are made in a committed view, whose number is at least 1.
    #[error("a claim needs a committed view (number ≥ 1)")]
    NoView,
    /// The claim word holds bytes no claimer writes: that connection is
    /// not restored (as for a corrupt slot), the others are unaffected.
    #[error("claim word {0:#018x} is invalid")]
    Corrupt(u64),
}

impl Region {
    fn claim_word(&self, slot: SlotId) -> Result<&AtomicU64, ClaimError> {
        let slots = self.slot_count();
        if slot.0 >= slots {
            return Err(ClaimError::NoSuchSlot {
                slot: slot.0,
                slots,
            });
        }
        let index = self.id() as usize * slots as usize + slot.0 as usize;
        let off = self.inner().layout.claims_offset() + index * CLAIM_SIZE;
        // SAFETY: the index is below regions × slots (both checked), the
        // claims area holds that many aligned words, and the mapping is at
        // least `segment_len` long (checked at open).
        Ok(unsafe { self.inner().u64_at(off) })
    }

    /// Claims the connection in `slot` of this (dead) region for box `by`,
    /// in committed view `view`. Succeeds over no claim or a claim from an
    /// older view, and again for the same claim (a retry); fails with
    /// [`ClaimError::Taken`] when this view or a newer one already gave the
    /// slot to another box.
    pub fn claim(&self, slot: SlotId, by: u16, view: ViewNumber) -> Result<(), ClaimError> {
        if view.0 == 0 {
            return Err(ClaimError::NoView);
        }
        let word = self.claim_word(slot)?;
        let mine = Claim { by, view };
        let mut current = word.load(Ordering::Acquire);
        loop {
            match Claim::from_word(current).map_err(ClaimError::Corrupt)? {
                Some(c) if c == mine => return Ok(()),
                Some(c) if c.view >= view => return Err(ClaimError::Taken(c)),
                _ => {}
            }
            match word.compare_exchange_weak(
                current,
                mine.word(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => current = now,
            }
        }
    }

    /// The claim on `slot`, `None` if it was never claimed.
    pub fn claim_of(&self, slot: SlotId) -> Result<Option<Claim>, ClaimError> {
        let word = self.claim_word(slot)?.load(Ordering::Acquire);
        Claim::from_word(word).map_err(ClaimError::Corrupt)
    }

    /// Forgets every claim on this region's slots: its new incarnation,
    /// once the survivors took the previous one's connections over and it
    /// emptied its slots, owns them again. A claim left behind would name
    /// the survivor as the holder of whatever connection this box writes
    /// into that slot next (a survivor that dies takes the slots it
    /// claimed and had not restored along, `takeover::inherited`).
    pub fn clear_claims(&self) {
        for s in 0..self.slot_count() {
            if let Ok(word) = self.claim_word(SlotId(s)) {
                word.store(0, Ordering::Release);
            }
        }
    }
}
