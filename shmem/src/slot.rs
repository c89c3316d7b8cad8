//! Slots: the per-connection cells of a region, their per-worker free
//! lists and writers, and the reader API the control core uses at takeover.
//!
//! A slot is a seqlocked unit ([`crate::unit`]) whose payload is one rkyv
//! archive of a [`crate::Bundle`], or a 24-byte link to an overflow entry
//! (`crate::overflow`) when the bundle is larger than the slot's payload.
//! Each slot has exactly one writer: the worker whose [`SlotAllocator`]
//! range contains it. A writer serializes into its own aligned scratch
//! buffer first (so a record that does not fit never touches the slot), then
//! publishes. A reader validates only a stable copy (bytecheck, then the
//! bundle rules), following a link transparently; a torn copy is retried,
//! never validated, and a corrupt slot is an error for that slot alone.

use rkyv::ser::allocator::SubAllocator;
use rkyv::ser::writer::Buffer;
use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use crate::overflow::{Assemble, BigPayload, Link, OVERFLOW_PAYLOAD};
use crate::record::{check_bundle, check_records, ArchivedBundle, Bundle, ConnRecord};
use crate::segment::{Region, SegmentError};
pub(crate) use crate::unit::{Payload, Raw};
pub use crate::unit::{ReadError, SLOT_HEADER, SLOT_PAYLOAD};

/// Scratch space rkyv may use for resolvers while serializing a bundle.
const SER_SCRATCH: usize = 2048;
/// Entries a rewrite of a linked slot tries for a fresh one before it
/// rewrites its current entry in place (bounds the search on a nearly full
/// area, where it costs two unit reads per entry).
const COW_PROBES: u32 = 64;
/// Reads of a linked slot before its overflow entry, still not matching
/// the link, is reported: a replica that never received the entry's pieces.
const LINK_ATTEMPTS: u32 = 1_000;

/// Index of a slot within its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub u32);

/// Why a bundle was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The slot is outside the writer's range (another worker owns it, or
    /// it is beyond the region).
    #[error("slot {0} is not owned by this writer")]
    NotOwned(u32),
    /// The archived bundle is larger than an overflow entry.
    #[error("bundle does not fit {OVERFLOW_PAYLOAD} bytes")]
    TooLarge,
    /// The bundle needs an overflow entry and every entry of the writer's
    /// share is in use.
    #[error("overflow area full")]
    OverflowFull,
    /// The records break a bundle rule (count, string bounds, transport).
    #[error("invalid bundle: {0}")]
    Invalid(&'static str),
    /// A record names another box as its owner than the region's.
    #[error("record owner {found} written into region of box {region}")]
    WrongOwner {
        /// Owner named in the record.
        found: u16,
        /// The region's box id.
        region: u16,
    },
}

/// A [`ReadError`] with the slot it happened in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region {region} slot {}: {error}", slot.0)]
pub struct SlotError {
    /// Region (box id).
    pub region: u16,
    /// The slot.
    pub slot: SlotId,
    /// What was wrong.
    pub error: ReadError,
}

/// Where a validated copy lives: inline for a slot's own payload, boxed
/// for a bundle read from the overflow area.
// Inline on purpose: reading a slot must not allocate (a takeover scans
// 300,000 of them, and the checkpoint path is allocation-free).
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Held {
    Inline(Payload),
    Big(Box<BigPayload>),
}

/// A validated copy of one slot: the bundle stays readable after the
/// writer moves on, and no pointer into the shared segment is kept.
#[derive(Clone)]
pub struct ValidSlot {
    slot: SlotId,
    seq: u64,
    len: usize,
    buf: Held,
}

impl std::fmt::Debug for ValidSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidSlot")
            .field("slot", &self.slot)
            .field("seq", &self.seq)
            .field("bundle", self.bundle())
            .finish()
    }
}

impl ValidSlot {
    /// The slot this copy came from.
    pub fn slot(&self) -> SlotId {
        self.slot
    }

    /// The slot's sequence value at the time of the copy (bumps by 2 on
    /// every publish; useful to tell a newer checkpoint from an older).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The validated bundle.
    pub fn bundle(&self) -> &ArchivedBundle<'static> {
        // SAFETY: `bytes()` passed `rkyv::access` (bytecheck) when this
        // value was built and is never mutated afterwards; both buffers
        // keep the 16-byte alignment the archive was validated at.
        unsafe { rkyv::access_unchecked::<ArchivedBundle<'static>>(self.bytes()) }
    }

    /// The archived bundle's bytes (from the overflow entry for a linked
    /// slot).
    pub fn bytes(&self) -> &[u8] {
        match &self.buf {
            Held::Inline(p) => &p.0[..self.len],
            Held::Big(b) => &b.0[..self.len],
        }
    }
}

/// Validates `bytes` as the bundle archive of a slot of region `region`:
/// bytecheck, then the bundle rules. Never panics on any input; `bytes`
/// must start 16-aligned (as slot copies do) or validation fails. The entry
/// point for fuzzing what a segment or a replica may hold.
pub fn check_archive(bytes: &[u8], region: u16) -> Result<&ArchivedBundle<'_>, ReadError> {
    let b = rkyv::api::low::access::<ArchivedBundle<'_>, rkyv::rancor::Error>(bytes)
        .map_err(|e| ReadError::Invalid(e.to_string()))?;
    check_bundle(b, region).map_err(ReadError::Rule)?;
    Ok(b)
}

impl Region {
    /// Reads and validates one slot, following its link to the overflow
    /// area if it has one: `Ok(None)` if it is empty.
    pub fn read(&self, slot: SlotId) -> Result<Option<ValidSlot>, ReadError> {
        if slot.0 >= self.slot_count() {
            return Err(ReadError::OutOfRange);
        }
        let mut buf = Payload::zeroed();
        let mut big: Option<Box<BigPayload>> = None;
        for attempt in 0..LINK_ATTEMPTS {
            if attempt > 0 {
                std::thread::yield_now();
            }
            let (seq, len) = match self.read_raw(slot.0, &mut buf)? {
                Raw::Empty { .. } => return Ok(None),
                Raw::Data { seq, len } => (seq, len),
            };
            let Some(link) = Link::parse(&buf.0[..len]) else {
                check_archive(&buf.0[..len], self.id)?;
                return Ok(Some(ValidSlot {
                    slot,
                    seq,
                    len,
                    buf: Held::Inline(buf),
                }));
            };
            let out = big.get_or_insert_with(BigPayload::boxed);
            match self.read_overflow(slot.0, &link, out) {
                Ok(()) => {
                    let len = link.len as usize;
                    check_archive(&out.0[..len], self.id)?;
                    return Ok(Some(ValidSlot {
                        slot,
                        seq,
                        len,
                        buf: Held::Big(big.unwrap_or_else(BigPayload::boxed)),
                    }));
                }
                Err(Assemble::Corrupt(why)) => return Err(ReadError::Overflow(why)),
                Err(Assemble::Stale) => continue,
            }
        }
        Err(ReadError::Overflow(
            "the entry never matched its slot's link (not replicated, or its writer died)",
        ))
    }

    /// Reads one slot as [`Region::read`] does, but a slot whose writer is
    /// mid-write (`ReadError::Busy`) is read again, 1 ms after each busy
    /// read, until `deadline`: a live writer descheduled mid-write (a
    /// starved guest, a box judged dead while it still ran) finishes its
    /// write; a writer that died mid-write never does, and the slot is
    /// still `Busy` then. Each read is a whole [`Region::read`], itself up
    /// to 10,000 yielding attempts (20-70 ms here), and one started before
    /// `deadline` runs to its end: the wait can pass `deadline` by one read.
    pub fn read_by(&self, slot: SlotId, deadline: Instant) -> Result<Option<ValidSlot>, ReadError> {
        loop {
            match self.read(slot) {
                Err(ReadError::Busy) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }

    /// Iterates the region's validated bundles in slot order, skipping
    /// empty slots; a corrupt or busy slot yields an error and iteration
    /// goes on.
    pub fn records(&self) -> Records {
        Records {
            region: self.clone(),
            next: 0,
        }
    }

    /// Finds the bundle holding the connection `local` ↔ `remote` (lazy
    /// takeover: a packet arrived for an unknown connection). Returns the
    /// slot copy and the record's index in its bundle. Corrupt slots are
    /// skipped. Scans the region: meant for takeover, not the fast path.
    pub fn find(
        &self,
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
    ) -> Option<(ValidSlot, usize)> {
        let (l, r) = (crate::Endpoint::from(local), crate::Endpoint::from(remote));
        for item in self.records() {
            let Ok(v) = item else { continue };
            let hit = v
                .bundle()
                .records
                .iter()
                .position(|rec| rec.is_between(&l, &r));
            if let Some(i) = hit {
                return Some((v, i));
            }
        }
        None
    }

    /// Maps every checkpointed connection of the region, (local, remote),
    /// to its slot and index in the bundle: one scan at takeover, then O(1)
    /// lookups for packets of orphaned connections (lazy takeover).
    /// Corrupt slots are skipped, as in [`Region::records`]. The map is a
    /// snapshot: a slot may be rewritten after it was built, so re-read the
    /// slot before acting on it.
    pub fn index(
        &self,
    ) -> std::collections::HashMap<(std::net::SocketAddr, std::net::SocketAddr), (SlotId, usize)>
    {
        let mut map = std::collections::HashMap::new();
        for v in self.records().flatten() {
            for (i, rec) in v.bundle().records.iter().enumerate() {
                map.insert(
                    (rec.local.socket_addr(), rec.remote.socket_addr()),
                    (v.slot(), i),
                );
            }
        }
        map
    }

    /// The slots `worker` of `n_workers` owns, as a free list that worker
    /// alone uses. The region's slots are split into contiguous, disjoint
    /// ranges, so workers never contend. Every slot in the range is cleared
    /// (marked empty): build allocators when a box starts its epoch, after
    /// the survivors had their chance to take the previous epoch's
    /// connections over.
    pub fn worker_slots(
        &self,
        worker: usize,
        n_workers: usize,
    ) -> Result<SlotAllocator, SegmentError> {
        let slots = self.slot_count();
        if n_workers == 0 || worker >= n_workers || n_workers > slots as usize {
            return Err(SegmentError::BadWorkerSplit {
                worker,
                workers: n_workers,
                slots,
            });
        }
        let per = slots as usize / n_workers;
        let extra = slots as usize % n_workers;
        // The first `extra` workers get one slot more.
        let start = worker * per + worker.min(extra);
        let end = start + per + usize::from(worker < extra);
        let (start, end) = (start as u32, end as u32);
        for s in start..end {
            if self.len_of(s) != 0 {
                self.publish(s, &[], None);
            }
            self.unindex(s);
        }
        Ok(SlotAllocator {
            region: self.clone(),
            start,
            end,
            free: (start..end).rev().collect(),
            used: vec![false; (end - start) as usize],
            _not_sync: PhantomData,
        })
    }

    /// A writer for the whole region, for a single-threaded owner (tests,
    /// tools). Workers use [`SlotAllocator::writer`] instead.
    pub fn writer(&self) -> SlotWriter {
        SlotWriter::new(self.clone(), 0, self.slot_count())
    }

    /// Marks every slot of the region empty (and its tuple index).
    pub fn clear_all(&self) {
        for s in 0..self.slot_count() {
            if self.len_of(s) != 0 {
                self.publish(s, &[], None);
            }
        }
        self.clear_index();
    }
}

/// Iterator over a region's validated bundles; see [`Region::records`].
pub struct Records {
    region: Region,
    next: u32,
}

impl Iterator for Records {
    type Item = Result<ValidSlot, SlotError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.region.slot_count() {
            let slot = SlotId(self.next);
            self.next += 1;
            match self.region.read(slot) {
                Ok(None) => continue,
                Ok(Some(v)) => return Some(Ok(v)),
                Err(error) => {
                    return Some(Err(SlotError {
                        region: self.region.id,
                        slot,
                        error,
                    }))
                }
            }
        }
        None
    }
}

/// One worker's free list over its own range of slots. Owned by the worker
/// thread (`Send`, not `Sync`): no locks, no atomics on alloc/free.
pub struct SlotAllocator {
    region: Region,
    start: u32,
    end: u32,
    free: Vec<u32>,
    used: Vec<bool>,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for SlotAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotAllocator")
            .field("region", &self.region.id)
            .field("range", &(self.start..self.end))
            .field("free", &self.free.len())
            .finish()
    }
}

impl SlotAllocator {
    /// Takes a free slot, lowest index first; `None` when the range is full.
    pub fn alloc(&mut self) -> Option<SlotId> {
        let s = self.free.pop()?;
        if let Some(u) = self.used.get_mut((s - self.start) as usize) {
            *u = true;
        }
        Some(SlotId(s))
    }

    /// Returns a slot to the free list and marks it empty, so readers no
    /// longer see its connection.
    pub fn free(&mut self, slot: SlotId) -> Result<(), WriteError> {
        if !(self.start..self.end).contains(&slot.0) {
            return Err(WriteError::NotOwned(slot.0));
        }
        let Some(u) = self.used.get_mut((slot.0 - self.start) as usize) else {
            return Err(WriteError::NotOwned(slot.0));
        };
        if !*u {
            // Double free: the slot is already on the list.
            return Err(WriteError::NotOwned(slot.0));
        }
        *u = false;
        self.region.publish(slot.0, &[], None);
        self.free.push(slot.0);
        Ok(())
    }

    /// Free slots left.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// The slot range this allocator owns.
    pub fn range(&self) -> std::ops::Range<u32> {
        self.start..self.end
    }

    /// A writer restricted to this allocator's slots, for the same worker.
    pub fn writer(&self) -> SlotWriter {
        SlotWriter::new(self.region.clone(), self.start, self.end)
    }
}

/// Serializes bundles and publishes them into slots of one range. Holds its
/// own aligned scratch and serializer space, so writing never allocates.
pub struct SlotWriter {
    region: Region,
    start: u32,
    end: u32,
    /// The overflow entries this writer may use: the share of the area
    /// proportional to its slot range, so writers of disjoint slot ranges
    /// never share an entry.
    entries: std::ops::Range<u32>,
    /// Where the next search for a free entry starts.
    next_entry: u32,
    /// Connections not indexed ([`SlotWriter::index_full`]).
    index_full: u64,
    scratch: Box<BigPayload>,
    ser: Box<[MaybeUninit<u8>; SER_SCRATCH]>,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for SlotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotWriter")
            .field("region", &self.region.id)
            .field("range", &(self.start..self.end))
            .finish()
    }
}

impl SlotWriter {
    fn new(region: Region, start: u32, end: u32) -> Self {
        let (slots, n) = (
            u64::from(region.slot_count()),
            u64::from(region.overflow_entries()),
        );
        // ceil(slot * n / slots) splits the entries like the slots: the
        // ranges of adjacent slot ranges meet, and the whole region gets all.
        let share = |slot: u32| (u64::from(slot) * n).div_ceil(slots.max(1)) as u32;
        let entries = share(start)..share(end);
        SlotWriter {
            region,
            start,
            end,
            next_entry: entries.start,
            entries,
            index_full: 0,
            scratch: BigPayload::boxed(),
            ser: Box::new([MaybeUninit::uninit(); SER_SCRATCH]),
            _not_sync: PhantomData,
        }
    }

    fn check_slot(&self, slot: SlotId) -> Result<(), WriteError> {
        if (self.start..self.end).contains(&slot.0) {
            Ok(())
        } else {
            Err(WriteError::NotOwned(slot.0))
        }
    }

    /// Serializes `records` as one bundle and publishes it into `slot`:
    /// readers see the previous bundle or this one, never a mix. A bundle
    /// larger than a slot goes to an overflow entry, which the slot links
    /// to. On error the slot keeps its previous content.
    pub fn write(&mut self, slot: SlotId, records: &[ConnRecord<'_>]) -> Result<(), WriteError> {
        self.check_slot(slot)?;
        let len = self.serialize(records)?;
        if len <= self.region.slot_payload() {
            self.region.publish(slot.0, &self.scratch.0[..len], None);
            self.index(slot, records);
            return Ok(());
        }
        let entry = self.entry_for(slot.0).ok_or(WriteError::OverflowFull)?;
        // The slot's sequence once the link below is published (one
        // writer per slot): unique to this write of this slot.
        let gen = (self.region.seq_of(slot.0).wrapping_add(1) | 1).wrapping_add(1);
        self.region
            .write_overflow(slot.0, entry, gen, &self.scratch.0[..len]);
        let link = Link {
            entry,
            len: len as u32,
            gen,
        };
        self.region.publish(slot.0, &link.encode(), None);
        self.index(slot, records);
        Ok(())
    }

    /// Keeps the region's tuple index ([`crate::index`]) in step with what
    /// `slot` now holds.
    fn index(&mut self, slot: SlotId, records: &[ConnRecord<'_>]) {
        self.index_full += self.region.index_records(slot.0, records).full;
    }

    /// Connections this writer could not index (their index buckets were
    /// full): a box looking them up misses them.
    pub fn index_full(&self) -> u64 {
        self.index_full
    }

    /// The overflow entry `slot` writes into. Preferably a free one of this
    /// writer's share other than the one the slot links to now
    /// (copy-on-write): if the box dies in the middle of writing the pieces,
    /// the slot still links to its previous entry, whole, and a survivor
    /// reads the previous checkpoint instead of losing the connection. With
    /// no free entry within [`COW_PROBES`] tries, the current entry is
    /// rewritten in place; a slot with no entry yet searches the whole share.
    fn entry_for(&mut self, slot: u32) -> Option<u32> {
        let mut buf = Payload::zeroed();
        let current = match self.region.read_raw(slot, &mut buf) {
            Ok(Raw::Data { len, .. }) => Link::parse(&buf.0[..len])
                .map(|l| l.entry)
                .filter(|e| self.entries.contains(e))
                .filter(|&e| self.region.overflow_holder(e) == Some(slot)),
            _ => None,
        };
        let n = self.entries.len() as u32;
        let probes = if current.is_some() {
            COW_PROBES.min(n)
        } else {
            n
        };
        for i in 0..probes {
            let e = self.entries.start + (self.next_entry - self.entries.start + i) % n;
            if self.region.overflow_holder(e).is_none() {
                self.next_entry = if e + 1 >= self.entries.end {
                    self.entries.start
                } else {
                    e + 1
                };
                return Some(e);
            }
        }
        current
    }

    /// Serializes a bundle into this writer's scratch buffer and returns its
    /// length, without publishing (exposed for benchmarks and replication
    /// tests).
    pub fn serialize(&mut self, records: &[ConnRecord<'_>]) -> Result<usize, WriteError> {
        check_records(records).map_err(WriteError::Invalid)?;
        if let Some(r) = records.iter().find(|r| r.owner != self.region.id) {
            return Err(WriteError::WrongOwner {
                found: r.owner,
                region: self.region.id,
            });
        }
        let bundle = Bundle { records };
        let out = rkyv::api::low::to_bytes_in_with_alloc::<_, _, rkyv::rancor::Failure>(
            &bundle,
            Buffer::from(&mut self.scratch.0[..]),
            SubAllocator::new(&mut self.ser[..]),
        )
        .map_err(|_| WriteError::TooLarge)?;
        Ok(out.len())
    }

    /// Marks `slot` empty.
    pub fn clear(&mut self, slot: SlotId) -> Result<(), WriteError> {
        self.check_slot(slot)?;
        self.region.publish(slot.0, &[], None);
        self.region.unindex(slot.0);
        Ok(())
    }
}
