//! The segment's geometry: how many regions, how many slots a region holds
//! and how large a slot is, and every size and offset that follows from
//! them. Pure arithmetic: it knows no file, mapping or record.

/// Version of the segment layout and record format (docs/CHECKPOINT_FORMAT.md).
pub const LAYOUT_VERSION: u32 = 7;
/// Bytes of the largest slot, and the default: a 16-byte seqlock header and
/// a 752-byte payload, room for an HTTPS connection's record (~650 bytes
/// with its sealed TLS block) or an FTP bundle. 768 is a multiple of the
/// 64-byte cache line, and 300,000 such slots take 219.7 MiB.
pub const SLOT_SIZE: usize = 768;
/// Bytes of the smallest slot: its 304-byte payload holds a plain HTTP
/// connection's record while it rests (~250 bytes once its last response
/// is finished, docs/CHECKPOINT_FORMAT.md), so an idle connection costs
/// 320 bytes of segment, not 768.
pub const MIN_SLOT_SIZE: usize = 320;
/// Slot sizes are multiples of this (a cache line), so every slot and its
/// payload stay 16-aligned (rkyv validates archives at their alignment).
pub const SLOT_SIZE_STEP: usize = 64;
/// Bytes of a slot's (and an overflow piece's) seqlock header.
pub const SLOT_HEADER: usize = 16;
/// Bytes of an overflow piece's own header, after the seqlock header:
/// generation u64, owner slot u32, bundle length u32.
pub(crate) const PIECE_HEADER: usize = 16;
/// Largest bundle archive a slot holds through the overflow area, whatever
/// the slot size: a record at the limits (an 8 KiB URL, two 1 KiB
/// validators and < 800 bytes around them; `overflow.rs` checks the sum).
pub const OVERFLOW_PAYLOAD: usize = 11_040;
/// Bytes of the global header.
pub const HEADER_SIZE: usize = 4096;
/// Bytes of a region's box table entry, which precedes its slots: the box
/// table proper (256) and the ring of loads committed with view changes
/// this box proposed (`crate::loads`, issue 20).
pub const BOX_ENTRY_SIZE: usize = 1024;
/// One overflow entry per this many slots (at least 16, or one per slot in
/// smaller regions): 300,000 slots get 2,344 entries, 25.8 MiB beside the
/// 768-byte slots' 219.7 MiB.
pub const SLOTS_PER_OVERFLOW_ENTRY: u32 = 128;
/// Bytes of one slot's ownership claim ([`crate::claim`]).
pub(crate) const CLAIM_SIZE: usize = 8;
/// Regions are padded to this alignment so each region starts on a page.
pub(crate) const REGION_ALIGN: usize = 4096;
/// New files are sized in multiples of a 2 MiB huge page.
pub(crate) const HUGE_PAGE: u64 = 2 * 1024 * 1024;

/// How many regions a segment has, how many slots each region holds and
/// how large a slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Number of regions, one per box (member id 0..regions).
    pub regions: u16,
    /// Slots in each region.
    pub slots_per_region: u32,
    /// Bytes of each slot and overflow piece: [`MIN_SLOT_SIZE`] to
    /// [`SLOT_SIZE`], a multiple of [`SLOT_SIZE_STEP`]. A bundle larger
    /// than the slot's payload lives in the overflow area.
    pub slot_size: u32,
}

/// Why a layout cannot be a segment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayoutProblem {
    /// No regions or no slots.
    Empty,
    /// Beyond what can be mapped.
    TooLarge,
    /// A slot size out of range or not a multiple of the step.
    SlotSize,
}

impl Layout {
    /// Payload bytes of one slot (its size less the seqlock header).
    pub fn slot_payload(&self) -> usize {
        (self.slot_size as usize).saturating_sub(SLOT_HEADER)
    }

    /// Entries in each region's overflow area, where bundles larger than a
    /// slot live (see [`SLOTS_PER_OVERFLOW_ENTRY`]).
    pub fn overflow_entries(&self) -> u32 {
        self.slots_per_region
            .div_ceil(SLOTS_PER_OVERFLOW_ENTRY)
            .max(self.slots_per_region.min(16))
    }

    /// Slot-sized pieces of one overflow entry: enough to carry
    /// [`OVERFLOW_PAYLOAD`] bytes (15 of 768 bytes, 39 of 320).
    pub fn overflow_pieces(&self) -> u32 {
        let per_piece = self.slot_payload().saturating_sub(PIECE_HEADER).max(1);
        OVERFLOW_PAYLOAD.div_ceil(per_piece) as u32
    }

    /// Slot-sized units of a region: its slots, then the pieces of its
    /// overflow entries. Each unit has the slot's seqlock header, and
    /// replication ships units.
    pub fn units_per_region(&self) -> u32 {
        // Saturates only for layouts `open_or_create` refuses as too large.
        self.slots_per_region.saturating_add(
            self.overflow_entries()
                .saturating_mul(self.overflow_pieces()),
        )
    }

    /// Bytes between the start of one region and the next.
    pub fn region_stride(&self) -> usize {
        let raw = BOX_ENTRY_SIZE + self.units_per_region() as usize * self.slot_size as usize;
        raw.div_ceil(REGION_ALIGN) * REGION_ALIGN
    }

    /// Byte offset of region `region` in the segment file: after the
    /// global header and the regions before it.
    pub fn region_offset(&self, region: u16) -> usize {
        HEADER_SIZE + region as usize * self.region_stride()
    }

    /// Byte offset in the segment file of unit `unit` of region `region`,
    /// where its seqlock header (the sequence word first) starts. Units are
    /// the region's slots (slot `n` is unit `n`), then its overflow pieces
    /// ([`Layout::units_per_region`]). The one place this arithmetic lives:
    /// the segment addresses units by it, and tests that tear or corrupt a
    /// slot through the file find it by it.
    pub fn unit_offset(&self, region: u16, unit: u32) -> usize {
        self.region_offset(region) + BOX_ENTRY_SIZE + unit as usize * self.slot_size as usize
    }

    /// Offset of the claims area: after the last region.
    pub fn claims_offset(&self) -> usize {
        HEADER_SIZE + self.regions as usize * self.region_stride()
    }

    /// Bytes of the claims area: one u64 per slot of every region, padded
    /// to a page.
    pub fn claims_len(&self) -> usize {
        let raw = self.regions as usize * self.slots_per_region as usize * CLAIM_SIZE;
        raw.div_ceil(REGION_ALIGN) * REGION_ALIGN
    }

    /// Bytes of the segment (header, regions, claims, tuple indexes).
    pub fn segment_len(&self) -> usize {
        self.index_offset() + self.index_len()
    }

    /// Segment bytes each slot stands for: the segment's length over its
    /// slots (its slot, its share of the overflow area, its claim and its
    /// tuple index entry), what a box pays per connection it can hold.
    pub fn bytes_per_slot(&self) -> f64 {
        let slots = self.regions as f64 * self.slots_per_region as f64;
        self.segment_len() as f64 / slots.max(1.0)
    }

    /// Length a new segment file is given: the segment rounded up to 2 MiB,
    /// because hugetlbfs only accepts sizes that are a multiple of its page
    /// size (tmpfs files are sparse, so the padding costs nothing there).
    pub fn file_len(&self) -> u64 {
        (self.segment_len() as u64).div_ceil(HUGE_PAGE) * HUGE_PAGE
    }

    pub(crate) fn problem(&self) -> Option<LayoutProblem> {
        if self.regions == 0 || self.slots_per_region == 0 {
            return Some(LayoutProblem::Empty);
        }
        let size = self.slot_size as usize;
        if !(MIN_SLOT_SIZE..=SLOT_SIZE).contains(&size) || !size.is_multiple_of(SLOT_SIZE_STEP) {
            return Some(LayoutProblem::SlotSize);
        }
        // The segment must be addressable; 2^40 bytes is far beyond any
        // real deployment and keeps the arithmetic above overflow-free.
        let len = (HEADER_SIZE as u128)
            + self.regions as u128
                * (BOX_ENTRY_SIZE as u128
                    + self.slots_per_region as u128 * (size + CLAIM_SIZE) as u128
                    + self.slots_per_region as u128
                        * (self.overflow_pieces() as usize * size) as u128
                    // Tuple index: keys and buckets, at most 48 B a slot.
                    + self.slots_per_region as u128 * 48
                    + 3 * 4096);
        (len > (1u128 << 40)).then_some(LayoutProblem::TooLarge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(slot_size: u32) -> Layout {
        Layout {
            regions: 3,
            slots_per_region: 300_000,
            slot_size,
        }
    }

    /// The 768-byte layout has the geometry every earlier build of this
    /// version wrote (15 pieces an entry), which their header checks expect.
    #[test]
    fn the_default_slot_keeps_the_earlier_geometry() {
        assert_eq!(layout(SLOT_SIZE as u32).overflow_pieces(), 15);
        assert_eq!(layout(384).overflow_pieces(), 32);
        assert_eq!(layout(320).overflow_pieces(), 39);
    }

    /// Every slot size an entry carries a record at the limits, and a
    /// smaller slot makes a smaller segment.
    #[test]
    fn every_slot_size_carries_the_largest_record_and_smaller_slots_cost_less() {
        let mut last = f64::MAX;
        for size in (MIN_SLOT_SIZE..=SLOT_SIZE).rev().step_by(SLOT_SIZE_STEP) {
            let l = layout(size as u32);
            assert_eq!(l.problem(), None, "{size}");
            let carried = l.overflow_pieces() as usize * (l.slot_payload() - PIECE_HEADER);
            assert!(carried >= OVERFLOW_PAYLOAD, "{size}: {carried}");
            assert!(l.bytes_per_slot() < last, "{size}");
            last = l.bytes_per_slot();
        }
    }

    #[test]
    fn slot_sizes_off_the_steps_or_range_are_refused() {
        for size in [0, 256, 319, 321, 400, 832, u32::MAX] {
            assert_eq!(
                layout(size).problem(),
                Some(LayoutProblem::SlotSize),
                "{size}"
            );
        }
    }
}
