//! Seqlocked units: the slot-sized cells a region is made of — its slots,
//! then the pieces of its overflow entries. One writer per unit publishes
//! under the unit's sequence; readers copy a stable snapshot; replication
//! ships and applies units by index.
//!
//! Unit layout (the layout's `slot_size` bytes, [`SLOT_SIZE`] = 768 at
//! most, little-endian):
//!
//! | off | field |
//! |---|---|
//! | 0 | sequence (u64): odd while a write is in progress, +2 per publish |
//! | 8 | payload length (u32); 0 = empty |
//! | 12 | record format (u32) = [`LAYOUT_VERSION`] |
//! | 16 | payload, up to `slot_size - 16` bytes ([`SLOT_PAYLOAD`] at most) |
//!
//! A reader copies the unit into its own aligned buffer between two reads
//! of the sequence and accepts the copy only if both reads are the same even
//! value (the classic seqlock, as in Linux's `seqcount_t`). It knows the
//! bytes of a unit, not what a payload means (slots and overflow pieces do).

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

pub use crate::segment::SLOT_HEADER;
use crate::segment::{Region, LAYOUT_VERSION, SLOT_SIZE};

/// Bytes available for the archived bundle in the largest slot: what a
/// unit copy buffer holds. A region's own slots may be smaller
/// ([`Region::slot_payload`]).
pub const SLOT_PAYLOAD: usize = SLOT_SIZE - SLOT_HEADER;

/// Reader attempts before a slot whose sequence never settles is reported
/// as busy (its writer died mid-write, or is descheduled for very long).
const READ_ATTEMPTS: u32 = 10_000;

/// Why one slot could not be read. The rest of the region is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The slot index is beyond the region.
    #[error("slot index out of range")]
    OutOfRange,
    /// The sequence never settled on an even value: the writer died
    /// mid-write or is stalled. The connection in this slot is lost.
    #[error("slot is being written (sequence never settled)")]
    Busy,
    /// The length word is larger than the payload area.
    #[error("slot length {0} exceeds the payload area")]
    BadLength(u32),
    /// The record format word is not this build's.
    #[error("slot record format {0} is not {LAYOUT_VERSION}")]
    BadFormat(u32),
    /// bytecheck rejected the archive.
    #[error("archive fails validation: {0}")]
    Invalid(String),
    /// The archive is well-formed but breaks a bundle rule.
    #[error("bundle breaks a rule: {0}")]
    Rule(&'static str),
    /// The slot links to an overflow entry that does not hold the linked
    /// bundle (never replicated, or contradicting its link).
    #[error("overflow entry: {0}")]
    Overflow(&'static str),
}

#[repr(C, align(16))]
#[derive(Clone)]
pub(crate) struct Payload(pub(crate) [u8; SLOT_PAYLOAD]);

impl Payload {
    pub(crate) fn zeroed() -> Self {
        Payload([0u8; SLOT_PAYLOAD])
    }
}

/// What a stable seqlock read saw.
pub(crate) enum Raw {
    Empty { seq: u64 },
    Data { seq: u64, len: usize },
}

/// Copies `src` into shared slot memory with relaxed atomic word stores, so
/// a concurrent reader's copy is a race the memory model defines (a seqlock
/// reader may see a mix of old and new words, and then retries) rather than
/// undefined behaviour. The seqlock's fences order these words against the
/// sequence (Boehm, "Can seqlocks get along with programming language
/// memory models?", 2012).
///
/// # Safety
/// `dst` is 8-aligned and valid for `src.len()` rounded up to 8 bytes.
unsafe fn store_words(dst: *mut u8, src: &[u8]) {
    let words = src.chunks_exact(8);
    let tail = words.remainder();
    let full = src.len() / 8;
    let dst = dst as *const AtomicU64;
    for (i, w) in words.enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        // SAFETY: in bounds and aligned per the function contract.
        unsafe { (*dst.add(i)).store(u64::from_ne_bytes(b), Ordering::Relaxed) };
    }
    if !tail.is_empty() {
        let mut b = [0u8; 8];
        b[..tail.len()].copy_from_slice(tail);
        // SAFETY: as above; the contract rounds the length up to a word.
        unsafe { (*dst.add(full)).store(u64::from_ne_bytes(b), Ordering::Relaxed) };
    }
}

/// Copies `n` bytes (rounded up to words, `n <= SLOT_PAYLOAD`) out of shared
/// slot memory with relaxed atomic word loads; see [`store_words`].
///
/// # Safety
/// `src` is 8-aligned and valid for `n` rounded up to 8 bytes.
unsafe fn load_words(src: *const u8, buf: &mut Payload, n: usize) {
    let src = src as *const AtomicU64;
    let words = n.div_ceil(8).min(SLOT_PAYLOAD / 8);
    for i in 0..words {
        // SAFETY: in bounds and aligned per the function contract.
        let w = unsafe { (*src.add(i)).load(Ordering::Relaxed) };
        // SAFETY: `buf` is 16-aligned and holds SLOT_PAYLOAD / 8 words.
        unsafe { (buf.0.as_mut_ptr() as *mut u64).add(i).write(w) };
    }
}

impl Region {
    /// Bytes of each of this region's slots (and overflow pieces).
    pub fn slot_size(&self) -> usize {
        self.inner().layout.slot_size as usize
    }

    /// Payload bytes of each of this region's slots: a bundle archive
    /// longer than this lives in the overflow area.
    pub fn slot_payload(&self) -> usize {
        self.inner().layout.slot_payload()
    }

    fn slot_base(&self, slot: u32) -> usize {
        self.inner().layout.unit_offset(self.id, slot)
    }

    fn slot_seq(&self, slot: u32) -> &AtomicU64 {
        // SAFETY: callers check `slot < slot_count()`; offsets are aligned.
        unsafe { self.inner().u64_at(self.slot_base(slot)) }
    }

    fn slot_len(&self, slot: u32) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.inner().u32_at(self.slot_base(slot) + 8) }
    }

    fn slot_fmt(&self, slot: u32) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.inner().u32_at(self.slot_base(slot) + 12) }
    }

    /// Payload length of a unit as its writer sees it (0 = empty); for the
    /// unit's own writer, which needs no snapshot.
    pub(crate) fn len_of(&self, slot: u32) -> u32 {
        self.slot_len(slot).load(Ordering::Relaxed)
    }

    /// Current sequence value of a slot (0 = never written).
    pub(crate) fn seq_of(&self, slot: u32) -> u64 {
        self.slot_seq(slot).load(Ordering::Acquire)
    }

    /// Publishes `bytes` into `slot` under its seqlock. With `seq` given
    /// (replication), the slot ends at exactly that even sequence value.
    pub(crate) fn publish(&self, slot: u32, bytes: &[u8], seq: Option<u64>) {
        // Callers check both; this guards the unsafe copy below regardless.
        if slot >= self.unit_count() || bytes.len() > self.slot_payload() {
            debug_assert!(false, "publish out of bounds");
            return;
        }
        let seq_w = self.slot_seq(slot);
        let cur = seq_w.load(Ordering::Relaxed);
        // Odd while writing; if a previous writer died mid-write the value
        // is already odd and we move past it.
        let odd = match seq {
            Some(target) => target.wrapping_sub(1) | 1,
            None => cur.wrapping_add(1) | 1,
        };
        seq_w.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        // SAFETY: the payload area lies inside this slot and is 8-aligned
        // (regions are page-aligned, slots and the header multiples of 16);
        // `bytes` fits it, rounded up to words.
        unsafe {
            let dst = self.inner().base().add(self.slot_base(slot) + SLOT_HEADER);
            store_words(dst, bytes);
        }
        self.slot_len(slot)
            .store(bytes.len() as u32, Ordering::Relaxed);
        self.slot_fmt(slot).store(LAYOUT_VERSION, Ordering::Relaxed);
        seq_w.store(odd.wrapping_add(1), Ordering::Release);
        // Tell the replicator (after the publish, so it never ships a
        // slot before the bit that makes it ship it again is set).
        if let Some(w) = self.inner().dirty_words(self.id).get(slot as usize / 64) {
            w.fetch_or(1 << (slot % 64), Ordering::Release);
        }
    }

    /// Takes (and clears) word `i` of this region's dirty bitmap: bit `b`
    /// set means slot `64 * i + b` was published since the last take.
    pub(crate) fn take_dirty(&self, i: usize) -> u64 {
        self.inner()
            .dirty_words(self.id)
            .get(i)
            .map_or(0, |w| w.swap(0, Ordering::AcqRel))
    }

    /// Words in this region's dirty bitmap.
    pub(crate) fn dirty_len(&self) -> usize {
        self.inner().dirty_words(self.id).len()
    }

    /// Copies a stable snapshot of unit `slot` (a slot or an overflow
    /// piece) into `buf`.
    pub(crate) fn read_raw(&self, slot: u32, buf: &mut Payload) -> Result<Raw, ReadError> {
        if slot >= self.unit_count() {
            return Err(ReadError::OutOfRange);
        }
        let seq = self.slot_seq(slot);
        for attempt in 0..READ_ATTEMPTS {
            if attempt > 16 {
                // On a shared core the writer may be descheduled mid-write.
                std::thread::yield_now();
            }
            let s1 = seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let len = self.slot_len(slot).load(Ordering::Relaxed);
            let fmt = self.slot_fmt(slot).load(Ordering::Relaxed);
            let n = (len as usize).min(self.slot_payload());
            // SAFETY: `n` is clamped to the payload area of this slot,
            // which is 8-aligned. The copy may race with a writer (atomic
            // word loads make that race defined); the sequence check below
            // discards such a copy before it is interpreted.
            unsafe {
                let src = self.inner().base().add(self.slot_base(slot) + SLOT_HEADER);
                load_words(src, buf, n);
            }
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            if len == 0 {
                return Ok(Raw::Empty { seq: s1 });
            }
            if len as usize > self.slot_payload() {
                return Err(ReadError::BadLength(len));
            }
            if fmt != LAYOUT_VERSION {
                return Err(ReadError::BadFormat(fmt));
            }
            return Ok(Raw::Data {
                seq: s1,
                len: len as usize,
            });
        }
        Err(ReadError::Busy)
    }

    /// Writes a replica slot shipped by its owner if `seq` is newer than
    /// what the replica holds; returns whether it was applied.
    pub(crate) fn apply_replica(&self, slot: u32, seq: u64, bytes: &[u8]) -> bool {
        if slot >= self.unit_count() || bytes.len() > self.slot_payload() || seq & 1 == 1 {
            return false;
        }
        if seq <= self.seq_of(slot) {
            return false;
        }
        self.publish(slot, bytes, Some(seq));
        true
    }

    /// Empties a replica slot and sets its sequence back to 0 ("never
    /// written"), for a replica whose owner started a new incarnation.
    pub(crate) fn reset_slot(&self, slot: u32) {
        if slot < self.unit_count() && self.seq_of(slot) != 0 {
            self.publish(slot, &[], Some(0));
        }
    }

    /// [`Region::reset_slot`] for every unit (slots and overflow pieces).
    pub(crate) fn reset_all(&self) {
        for s in 0..self.unit_count() {
            self.reset_slot(s);
        }
    }
}
