//! Sealing a checkpoint's TLS block under the cluster key: what keeps the
//! traffic secrets useless to anyone who reads the segment or the back LAN
//! without `cluster.key`.
//!
//! Sealed form (version 2): `BTS2` ‖ key id (12) ‖ counter (4, LE) ‖
//! AES-256-GCM(block) ‖ tag, under HKDF-SHA256(salt = key id, cluster key,
//! "baton-tls checkpoint v2"), the nonce being the counter (8 zero bytes ‖
//! counter LE), the caller's AAD (the connection's name) and the head
//! bound in. A [`CheckpointSealer`] draws its key id at random once and
//! counts seals under it, so a checkpoint costs one AES-GCM seal, not a
//! key derivation and a `getrandom` call (SHA-256 and `getrandom` were 6.2
//! and 2.4 % of a worker's samples under 64 HTTPS keep-alive connections,
//! BENCHMARKS.md); after 2³² seals it draws a new id.
//! Two sealers share a key only if they draw the same 96-bit id.
//!
//! Version 1 (`BTS1` ‖ salt (16) ‖ …, a key per salt, zero nonce), written
//! by boxes before this one, still opens: a survivor takes over from an
//! older box. This module knows the block as bytes only (not
//! `checkpoint`, which uses it).

use std::cell::RefCell;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::TlsError;

/// What sealing adds to a block (both versions): the head and the tag.
pub const SEALED_OVERHEAD: usize = HEAD_LEN + 16;
const MAGIC_V1: &[u8; 4] = b"BTS1";
const MAGIC_V2: &[u8; 4] = b"BTS2";
const INFO_V1: &[u8] = b"baton-tls checkpoint v1";
const INFO_V2: &[u8] = b"baton-tls checkpoint v2";
const KEY_ID_LEN: usize = 12;
/// Magic and the 16 bytes after it (v1's salt; v2's key id and counter).
const HEAD_LEN: usize = 4 + 16;

/// Seals blocks for one worker (not shared between threads: it counts).
pub struct CheckpointSealer {
    cluster_key: Vec<u8>,
    rng: SystemRandom,
    current: RefCell<Current>,
}

struct Current {
    key_id: [u8; KEY_ID_LEN],
    key: LessSafeKey,
    /// The next nonce's counter; `None` once all 2³² were used.
    next: Option<u32>,
}

impl std::fmt::Debug for CheckpointSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointSealer(redacted)")
    }
}

impl CheckpointSealer {
    /// A sealer under `cluster_key`, with a fresh random key id.
    pub fn new(cluster_key: &[u8]) -> Result<CheckpointSealer, TlsError> {
        let rng = SystemRandom::new();
        let current = Current::draw(cluster_key, &rng)?;
        Ok(CheckpointSealer {
            cluster_key: cluster_key.to_vec(),
            rng,
            current: RefCell::new(current),
        })
    }

    /// `block` sealed, bound to `aad`.
    pub fn seal(&self, block: &[u8], aad: &[u8]) -> Result<Vec<u8>, TlsError> {
        let mut current = self.current.borrow_mut();
        let counter = match current.next {
            Some(n) => n,
            None => {
                *current = Current::draw(&self.cluster_key, &self.rng)?;
                0
            }
        };
        current.next = counter.checked_add(1);
        let mut head = [0u8; HEAD_LEN];
        head[..4].copy_from_slice(MAGIC_V2);
        head[4..4 + KEY_ID_LEN].copy_from_slice(&current.key_id);
        head[4 + KEY_ID_LEN..].copy_from_slice(&counter.to_le_bytes());
        let full_aad = [&head[..], aad].concat();
        let mut out = Vec::with_capacity(HEAD_LEN + block.len() + 16);
        out.extend_from_slice(&head);
        out.extend_from_slice(block);
        let tag = current
            .key
            .seal_in_place_separate_tag(
                nonce_v2(counter),
                Aad::from(&full_aad),
                &mut out[HEAD_LEN..],
            )
            .map_err(|_| TlsError::Crypto("seal checkpoint"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }
}

impl Current {
    fn draw(cluster_key: &[u8], rng: &SystemRandom) -> Result<Current, TlsError> {
        let mut key_id = [0u8; KEY_ID_LEN];
        rng.fill(&mut key_id)
            .map_err(|_| TlsError::Crypto("random key id"))?;
        Ok(Current {
            key: derive(cluster_key, &key_id, INFO_V2)?,
            key_id,
            next: Some(0),
        })
    }
}

/// The block inside `sealed`, if `cluster_key` and `aad` open it.
pub fn open(sealed: &[u8], cluster_key: &[u8], aad: &[u8]) -> Result<Vec<u8>, TlsError> {
    if sealed.len() < SEALED_OVERHEAD {
        return Err(TlsError::CheckpointSeal);
    }
    let (head, body) = sealed.split_at(HEAD_LEN);
    let (key, nonce) = match &head[..4] {
        m if m == MAGIC_V2 => {
            let counter = u32::from_le_bytes([head[16], head[17], head[18], head[19]]);
            (
                derive(cluster_key, &head[4..4 + KEY_ID_LEN], INFO_V2)?,
                nonce_v2(counter),
            )
        }
        m if m == MAGIC_V1 => (
            derive(cluster_key, &head[4..], INFO_V1)?,
            Nonce::assume_unique_for_key([0; 12]),
        ),
        _ => return Err(TlsError::CheckpointSeal),
    };
    let full_aad = [head, aad].concat();
    let mut buf = body.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(&full_aad), &mut buf)
        .map_err(|_| TlsError::CheckpointSeal)?;
    let len = plain.len();
    buf.truncate(len);
    Ok(buf)
}

/// Seals `block` the version-1 way (a key per random salt, zero nonce):
/// for tests that a survivor still opens an older box's blocks.
#[cfg(test)]
pub(crate) fn seal_v1(block: &[u8], cluster_key: &[u8], aad: &[u8]) -> Result<Vec<u8>, TlsError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| TlsError::Crypto("random salt"))?;
    let key = derive(cluster_key, &salt, INFO_V1)?;
    let mut out = [&MAGIC_V1[..], &salt].concat();
    let full_aad = [&out[..], aad].concat();
    let mut buf = block.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0; 12]),
        Aad::from(&full_aad),
        &mut buf,
    )
    .map_err(|_| TlsError::Crypto("seal checkpoint"))?;
    out.extend_from_slice(&buf);
    Ok(out)
}

fn nonce_v2(counter: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[8..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

fn derive(cluster_key: &[u8], salt: &[u8], info: &[u8]) -> Result<LessSafeKey, TlsError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(cluster_key);
    let mut key = [0u8; 32];
    let infos = [info];
    prk.expand(&infos, &aead::AES_256_GCM)
        .and_then(|okm| okm.fill(&mut key))
        .map_err(|_| TlsError::Crypto("hkdf"))?;
    let unbound = UnboundKey::new(&aead::AES_256_GCM, &key).map_err(|_| TlsError::Crypto("key"))?;
    Ok(LessSafeKey::new(unbound))
}
