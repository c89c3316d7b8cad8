//! Hash maps keyed by connection ids ([`ConnMap`]): a multiplicative hash
//! instead of the standard library's SipHash, which took 4.7 % of a
//! worker's samples under 64 HTTPS keep-alive connections (several map
//! lookups per request).
//!
//! SipHash is there to keep an attacker who chooses keys from filling one
//! bucket; a worker assigns connection ids itself (slab index and
//! generation), so nothing a client sends picks them. Maps keyed by what
//! clients choose (4-tuples, addresses) keep SipHash.
//!
//! And [`ConnSlab`]: a value for (nearly) every connection, in a `Vec`
//! indexed by the id's slab index. A hash map keeps its values in its
//! buckets, empty ones included: at 15,000 connections a 48-byte entry
//! cost ~107 bytes a connection there (issue 19), one slot here.
//!
//! Knows nothing of connections beyond their ids being small integers
//! ([`DenseKey`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by worker-assigned ids (e.g. [`crate::flow::ConnId`]).
pub type ConnMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// The hasher of [`ConnMap`]: each word folded in and multiplied by an odd
/// constant (the "Fx" hash), whose high bits, which the table's control
/// bytes use, depend on every input bit.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// An id whose slab index is small and dense (reused once freed), and
/// which tells apart the successive holders of one index.
pub trait DenseKey: Copy + Eq {
    /// The slab index.
    fn index(&self) -> usize;
}

// Integers are their own index (tests and simple drivers number their
// connections).
impl DenseKey for u8 {
    fn index(&self) -> usize {
        usize::from(*self)
    }
}

impl DenseKey for u64 {
    fn index(&self) -> usize {
        *self as usize
    }
}

/// Values keyed by [`DenseKey`]s, stored at their slab index (see the
/// module doc). Use it for state most connections have; a [`ConnMap`]
/// for state few have.
#[derive(Debug, Clone)]
pub struct ConnSlab<K, V> {
    slots: Vec<Option<(K, V)>>,
    len: usize,
}

impl<K, V> Default for ConnSlab<K, V> {
    fn default() -> Self {
        ConnSlab {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<K: DenseKey, V> ConnSlab<K, V> {
    /// `key`'s value (not an earlier holder's of the same index).
    pub fn get(&self, key: &K) -> Option<&V> {
        match self.slots.get(key.index())? {
            Some((k, v)) if k == key => Some(v),
            _ => None,
        }
    }

    /// `key`'s value, mutable.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.slots.get_mut(key.index())? {
            Some((k, v)) if k == key => Some(v),
            _ => None,
        }
    }

    /// Sets `key`'s value, replacing whatever its index held (a value
    /// left by an earlier holder the caller forgot is dropped).
    pub fn insert(&mut self, key: K, value: V) -> &mut V {
        let i = key.index();
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        let slot = &mut self.slots[i];
        if slot.is_none() {
            self.len += 1;
        }
        &mut slot.insert((key, value)).1
    }

    /// Takes `key`'s value out.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.slots.get_mut(key.index())?;
        if !slot.as_ref().is_some_and(|(k, _)| k == key) {
            return None;
        }
        self.len -= 1;
        slot.take().map(|(_, v)| v)
    }

    /// Keys with a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no key has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key holding slab index `index`, if any (what a timer keyed by
    /// index fired for).
    pub fn key_at(&self, index: usize) -> Option<K> {
        self.slots.get(index)?.as_ref().map(|(k, _)| *k)
    }

    /// Every key and its value, by slab index.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots.iter().flatten().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn dense_ids_spread_over_the_high_bits() {
        // hashbrown takes its 7-bit control tag from the top bits: dense
        // slab indices must not share them.
        let b = BuildHasherDefault::<IdHasher>::default();
        let tags: std::collections::HashSet<u64> =
            (0u32..1024).map(|i| b.hash_one((i, 1u32)) >> 57).collect();
        assert!(tags.len() > 100, "{} tags", tags.len());
        let mut m: ConnMap<(u32, u32), u32> = ConnMap::default();
        for i in 0..10_000u32 {
            m.insert((i, i / 7), i);
        }
        assert!((0..10_000u32).all(|i| m[&(i, i / 7)] == i));
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    struct Id(u32, u32);

    impl DenseKey for Id {
        fn index(&self) -> usize {
            self.0 as usize
        }
    }

    #[test]
    fn a_slab_keeps_one_value_per_index_and_never_an_earlier_holders() {
        let mut s: ConnSlab<Id, &str> = ConnSlab::default();
        assert_eq!(s.get(&Id(5, 0)), None, "beyond its end");
        *s.insert(Id(5, 0), "a") = "b";
        s.insert(Id(1, 0), "c");
        assert_eq!((s.get(&Id(5, 0)), s.len()), (Some(&"b"), 2));
        assert_eq!(s.get(&Id(5, 1)), None, "another generation");
        assert_eq!(s.remove(&Id(5, 1)), None, "not the holder's");
        assert_eq!(s.remove(&Id(5, 0)), Some("b"));
        assert_eq!((s.get(&Id(5, 0)), s.len()), (None, 1));
        // A new holder of index 1 whose predecessor was never removed.
        s.insert(Id(1, 1), "d");
        assert_eq!(
            (s.get(&Id(1, 0)), s.get(&Id(1, 1)), s.len()),
            (None, Some(&"d"), 1)
        );
        if let Some(v) = s.get_mut(&Id(1, 1)) {
            *v = "e";
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), [(&Id(1, 1), &"e")]);
    }
}
