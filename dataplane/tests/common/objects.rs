//! The objects the lab serves: deterministic pseudo-random bytes, so a
//! download is checked against what was generated, not against a file.
//! Shared with `examples/responder.rs` (it includes this file by path).

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

/// The lab's objects: name, length, seed.
pub const LAB_OBJECTS: &[(&str, usize, u64)] = &[
    ("1K.bin", 1024, 1),
    ("1M.bin", 1 << 20, 2),
    ("50M.bin", 50 << 20, 3),
    ("100M.bin", 100 << 20, 4),
];

/// `len` deterministic pseudo-random bytes (xorshift64) from `seed`.
pub fn object(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// A map name → [`object`] for each (name, length, seed) in `list`.
pub fn objects(list: &[(&str, usize, u64)]) -> Arc<HashMap<String, Bytes>> {
    Arc::new(
        list.iter()
            .map(|&(name, len, seed)| (name.to_string(), object(len, seed)))
            .collect(),
    )
}
