//! Traffic keys of one direction of a TLS connection, and the AEAD that
//! seals and opens records with them (through `ring`).
//!
//! TLS 1.3 keys come from a traffic secret (RFC 8446 §7.3) and are renewed
//! by KeyUpdate (§7.2, label "traffic upd"); TLS 1.2 keys come as key and
//! IV from rustls and never change. This module knows nothing of record
//! framing, alerts or checkpoints: it turns (seq, aad, bytes) into sealed or
//! opened bytes. Secrets never reach `Debug` output.

use std::fmt;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

use crate::error::TlsError;

/// The AEAD length of a tag, for the three suites Baton serves.
pub const TAG_LEN: usize = 16;
/// Nonce and IV length (RFC 8446 §5.3, RFC 5288, RFC 7905).
pub const IV_LEN: usize = 12;
/// Longest key (AES-256).
pub const MAX_KEY_LEN: usize = 32;
/// Longest TLS 1.3 traffic secret (SHA-384).
pub const MAX_SECRET_LEN: usize = 48;

/// The protocol version of a connection's record layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// TLS 1.2 (RFC 5246): explicit nonce for GCM, seq in the AAD.
    Tls12,
    /// TLS 1.3 (RFC 8446): inner content type, header as AAD.
    Tls13,
}

impl Version {
    /// The wire value (0x0303, 0x0304).
    pub fn wire(self) -> u16 {
        match self {
            Version::Tls12 => 0x0303,
            Version::Tls13 => 0x0304,
        }
    }

    /// From the wire value, if Baton's record layer knows it.
    pub fn from_wire(v: u16) -> Option<Self> {
        match v {
            0x0303 => Some(Version::Tls12),
            0x0304 => Some(Version::Tls13),
            _ => None,
        }
    }
}

/// The AEAD of a cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aead {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    Chacha20Poly1305,
}

impl Aead {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::Chacha20Poly1305 => 32,
        }
    }

    fn ring(self) -> &'static aead::Algorithm {
        match self {
            Aead::Aes128Gcm => &aead::AES_128_GCM,
            Aead::Aes256Gcm => &aead::AES_256_GCM,
            Aead::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    /// The TLS 1.3 suite hash: SHA-384 for AES-256-GCM, else SHA-256.
    fn hkdf(self) -> hkdf::Algorithm {
        match self {
            Aead::Aes256Gcm => hkdf::HKDF_SHA384,
            _ => hkdf::HKDF_SHA256,
        }
    }

    /// Length of a TLS 1.3 traffic secret for this suite.
    pub fn secret_len(self) -> usize {
        match self {
            Aead::Aes256Gcm => 48,
            _ => 32,
        }
    }

    /// Bytes a TLS 1.2 record carries before its ciphertext besides the
    /// header: the explicit nonce of GCM (RFC 5288 §3), none for ChaCha20
    /// (RFC 7905 §2).
    pub fn tls12_explicit_len(self) -> usize {
        match self {
            Aead::Chacha20Poly1305 => 0,
            _ => 8,
        }
    }

    /// The AEAD of an IANA cipher suite id among those Baton serves.
    pub fn from_suite(suite: u16) -> Option<Self> {
        match suite {
            // TLS 1.3
            0x1301 => Some(Aead::Aes128Gcm),
            0x1302 => Some(Aead::Aes256Gcm),
            0x1303 => Some(Aead::Chacha20Poly1305),
            // TLS 1.2 ECDHE_{ECDSA,RSA}_WITH_…
            0xc02b | 0xc02f => Some(Aead::Aes128Gcm),
            0xc02c | 0xc030 => Some(Aead::Aes256Gcm),
            0xcca9 | 0xcca8 => Some(Aead::Chacha20Poly1305),
            _ => None,
        }
    }
}

/// Secret bytes that must not be printed: `Debug` shows the length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// The secret bytes, for sealing into a checkpoint.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {}])", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Key bytes do not linger in freed heap memory (ring's expanded
        // key schedules are ring's to keep).
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
pub fn expand_label(
    aead: Aead,
    secret: &[u8],
    label: &[u8],
    len: usize,
) -> Result<Vec<u8>, TlsError> {
    let prk = hkdf::Prk::new_less_safe(aead.hkdf(), secret);
    let full_len = (6 + label.len()) as u8;
    let out_len = (len as u16).to_be_bytes();
    let info: [&[u8]; 5] = [&out_len, &[full_len], b"tls13 ", label, &[0u8]];
    let mut out = vec![0u8; len];
    prk.expand(&info, Len(len))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| TlsError::Crypto("hkdf expand"))?;
    Ok(out)
}

/// The keys of one direction: key, IV, record sequence number, and for
/// TLS 1.3 the traffic secret they come from and how many KeyUpdates made
/// it.
pub struct DirectionKeys {
    aead: Aead,
    key: LessSafeKey,
    key_bytes: Secret,
    iv: [u8; IV_LEN],
    /// TLS 1.3 only: the current application traffic secret.
    secret: Option<Secret>,
    /// Sequence number of the next record in this direction.
    pub seq: u64,
    /// KeyUpdates applied since the handshake (TLS 1.3).
    pub generation: u32,
}

impl fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectionKeys")
            .field("aead", &self.aead)
            .field("seq", &self.seq)
            .field("generation", &self.generation)
            .field("keys", &"[redacted]")
            .finish()
    }
}

impl DirectionKeys {
    /// Keys from a key and IV (TLS 1.2, or TLS 1.3 without KeyUpdate).
    pub fn from_key_iv(aead: Aead, key: &[u8], iv: &[u8], seq: u64) -> Result<Self, TlsError> {
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| TlsError::BadKeyMaterial)?;
        let unbound = UnboundKey::new(aead.ring(), key).map_err(|_| TlsError::BadKeyMaterial)?;
        Ok(DirectionKeys {
            aead,
            key: LessSafeKey::new(unbound),
            key_bytes: Secret::new(key.to_vec()),
            iv,
            secret: None,
            seq,
            generation: 0,
        })
    }

    /// TLS 1.3 keys from a traffic secret (RFC 8446 §7.3).
    pub fn from_secret(
        aead: Aead,
        secret: &[u8],
        seq: u64,
        generation: u32,
    ) -> Result<Self, TlsError> {
        if secret.len() != aead.secret_len() {
            return Err(TlsError::BadKeyMaterial);
        }
        let key = expand_label(aead, secret, b"key", aead.key_len())?;
        let iv = expand_label(aead, secret, b"iv", IV_LEN)?;
        let mut k = Self::from_key_iv(aead, &key, &iv, seq)?;
        k.secret = Some(Secret::new(secret.to_vec()));
        k.generation = generation;
        Ok(k)
    }

    /// The AEAD in use.
    pub fn aead(&self) -> Aead {
        self.aead
    }

    /// The key bytes (for a checkpoint).
    pub fn key_bytes(&self) -> &Secret {
        &self.key_bytes
    }

    /// The IV (for a checkpoint).
    pub fn iv(&self) -> &[u8; IV_LEN] {
        &self.iv
    }

    /// The TLS 1.3 traffic secret, if any (for a checkpoint).
    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// Moves to the next traffic secret (RFC 8446 §7.2): the sequence
    /// number restarts at zero.
    pub fn update(&mut self) -> Result<(), TlsError> {
        let secret = self
            .secret
            .as_ref()
            .ok_or(TlsError::KeyUpdateWithoutSecret)?;
        let next = expand_label(
            self.aead,
            secret.expose(),
            b"traffic upd",
            self.aead.secret_len(),
        )?;
        let generation = self.generation.wrapping_add(1);
        *self = Self::from_secret(self.aead, &next, 0, generation)?;
        Ok(())
    }

    /// The per-record nonce: IV XOR the 64-bit sequence number, left-padded
    /// (RFC 8446 §5.3; RFC 7905 §2; and rustls' GCM explicit nonce).
    pub fn nonce(&self, seq: u64) -> [u8; IV_LEN] {
        let mut n = self.iv;
        for (i, b) in seq.to_be_bytes().iter().enumerate() {
            n[4 + i] ^= b;
        }
        n
    }

    /// Seals `in_out` in place with `nonce` and `aad`, appending the tag.
    pub fn seal_with(
        &self,
        nonce: [u8; IV_LEN],
        aad: &[u8],
        in_out: &mut Vec<u8>,
    ) -> Result<(), TlsError> {
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map_err(|_| TlsError::Crypto("seal"))
    }

    /// Seals `out[from..]` in place and appends the tag to `out`: a record
    /// is sealed where it will be sent from, with no buffer of its own.
    pub fn seal_tail(
        &self,
        nonce: [u8; IV_LEN],
        aad: &[u8],
        out: &mut Vec<u8>,
        from: usize,
    ) -> Result<(), TlsError> {
        let tail = out.get_mut(from..).ok_or(TlsError::Crypto("seal"))?;
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), tail)
            .map_err(|_| TlsError::Crypto("seal"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens `in_out` (ciphertext ‖ tag) in place; returns the plaintext
    /// length. A wrong tag is `BadRecordMac`.
    pub fn open_with(
        &self,
        nonce: [u8; IV_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, TlsError> {
        self.key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map(|p| p.len())
            .map_err(|_| TlsError::BadRecordMac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8448 §3 (simple 1-RTT): the server application traffic secret
    /// and the key and IV derived from it.
    #[test]
    fn rfc8448_server_application_keys() {
        let secret = hex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643");
        let k = DirectionKeys::from_secret(Aead::Aes128Gcm, &secret, 0, 0).unwrap();
        assert_eq!(
            k.key_bytes().expose(),
            hex("9f02283b6c9c07efc26bb9f2ac92e356")
        );
        assert_eq!(k.iv().to_vec(), hex("cf782b88dd83549aadf1e984"));
    }

    #[test]
    fn key_update_changes_keys_restarts_seq_and_counts_generation() {
        let mut k = DirectionKeys::from_secret(Aead::Chacha20Poly1305, &[7u8; 32], 41, 0).unwrap();
        let before = k.key_bytes().clone();
        k.update().unwrap();
        assert_ne!(k.key_bytes(), &before);
        assert_eq!((k.seq, k.generation), (0, 1));
    }

    #[test]
    fn tls12_keys_cannot_key_update() {
        let mut k = DirectionKeys::from_key_iv(Aead::Aes128Gcm, &[1; 16], &[2; 12], 0).unwrap();
        assert!(matches!(k.update(), Err(TlsError::KeyUpdateWithoutSecret)));
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let k = DirectionKeys::from_key_iv(Aead::Aes128Gcm, &[0xab; 16], &[0xcd; 12], 0).unwrap();
        let s = format!("{k:?} {:?}", Secret::new(vec![0xab; 4]));
        assert!(
            !s.contains("171") && !s.to_lowercase().contains("ab, "),
            "{s}"
        );
        assert!(s.contains("redacted"));
    }

    #[test]
    fn open_rejects_a_flipped_bit() {
        let k = DirectionKeys::from_key_iv(Aead::Aes256Gcm, &[1; 32], &[2; 12], 0).unwrap();
        let mut buf = b"hello".to_vec();
        k.seal_with(k.nonce(3), b"aad", &mut buf).unwrap();
        buf[0] ^= 1;
        assert!(matches!(
            k.open_with(k.nonce(3), b"aad", &mut buf),
            Err(TlsError::BadRecordMac)
        ));
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
