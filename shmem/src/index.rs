//! The tuple index: which slot of a region holds the TCP connection with a
//! given (local, remote) pair, found in O(1) instead of a scan of the
//! region (issue 20, network-steered takeover: a box that receives a
//! segment for a connection it does not hold asks every region).
//!
//! Each region has an index area after the claims (`docs/CHECKPOINT_FORMAT.md`,
//! "Tuple index"): two *key* words per slot — the keys of the (up to two)
//! TCP connections indexed for that slot, 0 = none — then a table of
//! buckets, 8 entries (one cache line) each. A connection's key is a fixed
//! hash of its tuple (FNV-1a and MurmurHash3's finalizer, the same in every box and build) with the low
//! bit set; its low half is the entry's tag, its high half the home bucket.
//! An entry is `tag << 32 | (slot + 1)`, 0 = empty, in the first of
//! [`PROBE_BUCKETS`] buckets from the home with a free entry.
//!
//! The index is a hint, never the truth: a lookup re-reads the slot and
//! compares the tuple, so a stale or colliding entry costs a read, never a
//! wrong answer. It is kept by whoever publishes a slot's bundle — the
//! owner's writer ([`crate::SlotWriter`]) and, for a replica, the receiver
//! once it has applied the owner's units (between reads of its sockets:
//! reading a bundle back must not delay the datagrams behind it) — so
//! every box's copy of a region has one. Concurrent writers (a box's workers) only change entries by
//! compare-and-swap. A connection whose buckets are full is not indexed
//! ([`IndexStats::full`]): a lookup misses it, as before the index.
//!
//! This module knows tuples and slots, not why a box looks one up nor what
//! it does with the answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::{ArchivedBundle, ArchivedTransport, ConnRecord, Endpoint, Transport};
use crate::segment::{Layout, Region, Segment, REGION_ALIGN};
use crate::slot::{SlotId, ValidSlot};

/// Entries per bucket: 8 words, one 64-byte cache line.
pub const BUCKET_ENTRIES: usize = 8;
/// Buckets a connection may live in, from its home bucket on.
pub const PROBE_BUCKETS: usize = 4;
/// TCP connections indexed per slot (a bundle's first two: an FTP control
/// connection and its data connection).
pub const KEYS_PER_SLOT: usize = 2;

impl Layout {
    /// Buckets of one region's index table: at least two entries per slot,
    /// a power of two.
    pub fn index_buckets(&self) -> usize {
        (self.slots_per_region as usize * 2)
            .div_ceil(BUCKET_ENTRIES)
            .max(1)
            .next_power_of_two()
    }

    /// Bytes of one region's index: the slots' keys, then the buckets,
    /// padded to a page.
    pub fn index_stride(&self) -> usize {
        let raw = self.slots_per_region as usize * KEYS_PER_SLOT * 8
            + self.index_buckets() * BUCKET_ENTRIES * 8;
        raw.div_ceil(REGION_ALIGN) * REGION_ALIGN
    }

    /// Offset of the index area: after the claims.
    pub fn index_offset(&self) -> usize {
        self.claims_offset() + self.claims_len()
    }

    /// Bytes of the index area: one index per region.
    pub fn index_len(&self) -> usize {
        self.regions as usize * self.index_stride()
    }
}

/// The hash of a connection's tuple, from its fields as records hold them.
fn tuple_hash(local: (&[u8; 16], bool, u16), remote: (&[u8; 16], bool, u16)) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (addr, v6, port) in [local, remote] {
        eat(addr);
        eat(&[u8::from(v6)]);
        eat(&port.to_le_bytes());
    }
    // FNV's high half barely depends on the last bytes (the ports), and
    // the high half picks the bucket: mix (MurmurHash3's fmix64).
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A connection's key in the index: its tuple's hash with the low bit
/// set, so never 0. The low half is the entry's tag, the high half picks
/// the home bucket; a slot keeps its connections' keys so that removal
/// finds their entries without the tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u64);

impl Key {
    fn of(local: &Endpoint, remote: &Endpoint) -> Key {
        Key::from_hash(tuple_hash(
            (&local.addr, local.v6, local.port),
            (&remote.addr, remote.v6, remote.port),
        ))
    }

    fn from_hash(h: u64) -> Key {
        Key(h | 1)
    }

    fn tag(self) -> u32 {
        self.0 as u32
    }

    fn home(self) -> u32 {
        (self.0 >> 32) as u32
    }

    fn entry(self, slot: u32) -> u64 {
        (u64::from(self.tag()) << 32) | u64::from(slot + 1)
    }
}

/// Counts of index changes a writer could not make.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Connections not indexed: their probe buckets were full.
    pub full: u64,
}

impl Region {
    fn index_base(&self) -> usize {
        let layout = self.inner().layout;
        layout.index_offset() + self.id() as usize * layout.index_stride()
    }

    /// Word `i` of `slot`'s keys: the key of the slot's `i`-th indexed
    /// connection, 0 = none.
    fn key_word(&self, slot: u32, i: usize) -> &AtomicU64 {
        debug_assert!(slot < self.slot_count() && i < KEYS_PER_SLOT);
        // SAFETY: callers check `slot < slot_count()` and `i <
        // KEYS_PER_SLOT`; the keys lie at the start of this region's
        // index, inside the mapping (its length is checked against
        // `segment_len` at open), 8-aligned.
        unsafe {
            self.inner()
                .u64_at(self.index_base() + (slot as usize * KEYS_PER_SLOT + i) * 8)
        }
    }

    fn bucket_entry(&self, bucket: usize, i: usize) -> &AtomicU64 {
        let layout = self.inner().layout;
        let off = self.index_base()
            + layout.slots_per_region as usize * KEYS_PER_SLOT * 8
            + (bucket * BUCKET_ENTRIES + i) * 8;
        // SAFETY: `bucket < index_buckets()` (callers mask with it) and
        // `i < BUCKET_ENTRIES`: inside this region's index, 8-aligned.
        unsafe { self.inner().u64_at(off) }
    }

    /// The buckets a key may live in, home first, each once.
    fn probe(&self, key: Key) -> impl Iterator<Item = usize> {
        let buckets = self.inner().layout.index_buckets();
        let first = key.home() as usize & (buckets - 1);
        (0..PROBE_BUCKETS.min(buckets)).map(move |i| (first + i) & (buckets - 1))
    }

    /// Makes the index say that `slot` holds the TCP connections of
    /// `records` (none: the slot is empty). Cheap when nothing changed (two
    /// loads), which is every rewrite of a connection's checkpoint.
    pub(crate) fn index_records(&self, slot: u32, records: &[ConnRecord<'_>]) -> IndexStats {
        let mut keys = [None; KEYS_PER_SLOT];
        let tcp = records.iter().filter(|r| r.transport == Transport::Tcp);
        for (k, r) in keys.iter_mut().zip(tcp) {
            *k = Some(Key::of(&r.local, &r.remote));
        }
        self.set_index(slot, keys)
    }

    /// [`Region::index_records`] from a bundle read out of the slot (a
    /// replica's receiver, which ships bytes, not records).
    pub(crate) fn index_bundle(
        &self,
        slot: u32,
        bundle: Option<&ArchivedBundle<'_>>,
    ) -> IndexStats {
        let mut keys = [None; KEYS_PER_SLOT];
        let tcp = bundle
            .into_iter()
            .flat_map(|b| b.records.iter())
            .filter(|r| r.transport == ArchivedTransport::Tcp);
        for (k, r) in keys.iter_mut().zip(tcp) {
            *k = Some(Key::from_hash(tuple_hash(
                (&r.local.addr, r.local.v6, r.local.port.to_native()),
                (&r.remote.addr, r.remote.v6, r.remote.port.to_native()),
            )));
        }
        self.set_index(slot, keys)
    }

    /// Re-reads `slot` and indexes what it holds now (a replica slot or
    /// overflow piece was applied). An unreadable slot is unindexed.
    pub(crate) fn reindex(&self, slot: u32) -> IndexStats {
        match self.read(SlotId(slot)) {
            Ok(Some(v)) => self.index_bundle(slot, Some(v.bundle())),
            _ => self.index_bundle(slot, None),
        }
    }

    /// Indexes again the slot that replica unit `unit` belongs to (the
    /// slot itself, or the slot an overflow piece's bundle is linked
    /// from), after a receiver applied it.
    pub(crate) fn reindex_unit(&self, unit: u32) {
        let slots = self.slot_count();
        if unit < slots {
            self.reindex(unit);
        } else if let Some(holder) =
            self.overflow_holder((unit - slots) / self.inner().layout.overflow_pieces())
        {
            self.reindex(holder);
        }
    }

    /// Removes `slot` from the index (the slot was emptied).
    pub(crate) fn unindex(&self, slot: u32) {
        if slot < self.slot_count() {
            self.set_index(slot, [None; KEYS_PER_SLOT]);
        }
    }

    fn set_index(&self, slot: u32, keys: [Option<Key>; KEYS_PER_SLOT]) -> IndexStats {
        let mut stats = IndexStats::default();
        if slot >= self.slot_count() {
            return stats;
        }
        let word = |k: Option<Key>| k.map_or(0, |k| k.0);
        let old: [Option<Key>; KEYS_PER_SLOT] = std::array::from_fn(|i| {
            Some(self.key_word(slot, i).load(Ordering::Acquire))
                .filter(|&w| w != 0)
                .map(Key)
        });
        if old == keys {
            return stats;
        }
        for k in old.iter().flatten().filter(|k| !keys.contains(&Some(**k))) {
            self.remove_entry(*k, slot);
        }
        for k in keys.iter().flatten().filter(|k| !old.contains(&Some(**k))) {
            if !self.insert_entry(*k, slot) {
                stats.full += 1;
            }
        }
        for (i, k) in keys.iter().enumerate() {
            self.key_word(slot, i).store(word(*k), Ordering::Release);
        }
        stats
    }

    fn insert_entry(&self, key: Key, slot: u32) -> bool {
        let entry = key.entry(slot);
        for b in self.probe(key) {
            for i in 0..BUCKET_ENTRIES {
                let e = self.bucket_entry(b, i);
                let cur = e.load(Ordering::Acquire);
                if cur == entry {
                    return true;
                }
                if cur == 0
                    && e.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    return true;
                }
            }
        }
        false
    }

    fn remove_entry(&self, key: Key, slot: u32) {
        let entry = key.entry(slot);
        for b in self.probe(key) {
            for i in 0..BUCKET_ENTRIES {
                let e = self.bucket_entry(b, i);
                if e.load(Ordering::Acquire) == entry {
                    // Only this slot's writer removes this slot's entries.
                    let _ = e.compare_exchange(entry, 0, Ordering::AcqRel, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// Empties this region's whole index (the region was cleared: a new
    /// epoch, or a replica whose owner restarted).
    pub(crate) fn clear_index(&self) {
        for s in 0..self.slot_count() {
            for i in 0..KEYS_PER_SLOT {
                self.key_word(s, i).store(0, Ordering::Release);
            }
        }
        for b in 0..self.inner().layout.index_buckets() {
            for i in 0..BUCKET_ENTRIES {
                self.bucket_entry(b, i).store(0, Ordering::Release);
            }
        }
    }

    /// Every slot of this region holding a record of the TCP connection
    /// `local` ↔ `remote` (more than one while a connection taken back is
    /// re-recorded: its old slot and its new one), through the index.
    pub fn slots_of(&self, local: SocketAddr, remote: SocketAddr) -> Vec<SlotId> {
        let mut out: Vec<SlotId> = Vec::new();
        for (v, _) in self.holders(local, remote) {
            if !out.contains(&v.slot()) {
                out.push(v.slot());
            }
        }
        out
    }

    /// The slot holding the TCP connection `local` ↔ `remote`, and the
    /// record's index in its bundle, through the index (a few cache lines,
    /// then one validated read per candidate). `None` when no slot of this
    /// region holds it (or it was not indexed: its buckets were full).
    pub fn locate(&self, local: SocketAddr, remote: SocketAddr) -> Option<(ValidSlot, usize)> {
        self.holders(local, remote).next()
    }

    /// The slots the index names for the TCP connection `local` ↔
    /// `remote` whose record really is of it (the index is a hint: each
    /// candidate is read, validated and compared), each with the record's
    /// index in its bundle, in probe order.
    fn holders(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> impl Iterator<Item = (ValidSlot, usize)> + '_ {
        let (l, r) = (Endpoint::from(local), Endpoint::from(remote));
        let key = Key::of(&l, &r);
        self.probe(key)
            .flat_map(|b| (0..BUCKET_ENTRIES).map(move |i| (b, i)))
            .filter_map(move |(b, i)| {
                let cur = self.bucket_entry(b, i).load(Ordering::Acquire);
                if cur == 0 || (cur >> 32) as u32 != key.tag() {
                    return None;
                }
                let v = self.read(SlotId((cur as u32).wrapping_sub(1))).ok()??;
                let at = v.bundle().records.iter().position(|rec| {
                    rec.transport == ArchivedTransport::Tcp && rec.is_between(&l, &r)
                })?;
                Some((v, at))
            })
    }
}

/// Where a record of a connection was found: the region (box id), the
/// slot, and the record's index in the slot's bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The region, i.e. the box id that wrote the record.
    pub region: u16,
    /// The slot in that region.
    pub slot: SlotId,
    /// The record's index in the slot's bundle.
    pub index: usize,
    /// The writer's epoch when it wrote the record (which incarnation of
    /// the region's box holds the connection).
    pub epoch: u32,
}

impl Segment {
    /// Every region's record of the TCP connection `local` ↔ `remote`
    /// (more than one while a connection moves: the dead or handing-over
    /// box's copy and the new owner's), through each region's index.
    pub fn locate(&self, local: SocketAddr, remote: SocketAddr) -> Vec<Located> {
        (0..self.layout().regions)
            .filter_map(|id| {
                let region = self.region(id).ok()?;
                let (v, index) = region.locate(local, remote)?;
                let epoch = v.bundle().records.get().get(index)?.epoch.to_native();
                Some(Located {
                    region: id,
                    slot: v.slot(),
                    index,
                    epoch,
                })
            })
            .collect()
    }
}
