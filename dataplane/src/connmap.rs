//! Hash maps keyed by connection ids ([`ConnMap`]): a multiplicative hash
//! instead of the standard library's SipHash, which took 4.7 % of a
//! worker's samples under 64 HTTPS keep-alive connections (several map
//! lookups per request).
//!
//! SipHash is there to keep an attacker who chooses keys from filling one
//! bucket; a worker assigns connection ids itself (slab index and
//! generation), so nothing a client sends picks them. Maps keyed by what
//! clients choose (4-tuples, addresses) keep SipHash. Knows nothing of
//! connections beyond their ids being small integers.

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
}
