//! The TLS block of a connection checkpoint: what a survivor needs to
//! continue a connection's record layer, as a fixed little-endian layout,
//! and its sealing under a key derived from the cluster key.
//!
//! Layout (version 2: [`BLOCK_LEN`] fixed bytes, then the pending input;
//! all integers little-endian):
//!
//! | off | len | field |
//! |----:|----:|-------|
//! | 0 | 4 | magic `BTLS` |
//! | 4 | 2 | block format version (2; 1 is read too: no pending input) |
//! | 6 | 2 | protocol version (0x0303, 0x0304) |
//! | 8 | 2 | cipher suite (IANA id) |
//! | 10 | 2 | flags: 1 peer closed, 2 close_notify sent, 4 body anchor present, 8 pending input lost |
//! | 12 | 106 | write direction (below) |
//! | 118 | 106 | read direction |
//! | 224 | 8 | stream offset of the next byte to write |
//! | 232 | 8 | body length |
//! | 240 | 8 | anchor: plaintext offset of the anchored record |
//! | 248 | 8 | anchor: its write sequence number |
//! | 256 | 8 | anchor: its stream offset |
//! | 264 | 4 | anchor: record size |
//! | 268 | 8 | next body record to seal |
//! | 276 | 2 | pending input length *n* (version 2) |
//! | 278 | *n* | pending input: the peer's decrypted application data the
//! application had taken but not answered yet (pipelined requests), at
//! most [`MAX_PENDING_INPUT`] bytes |
//!
//! A direction: seq u64, key-update generation u32, key length u8, key
//! (32, zero-padded), IV (12), traffic secret length u8 (0 for TLS 1.2),
//! secret (48, zero-padded).
//!
//! Sealed under the cluster key by [`crate::seal`]. This module knows
//! nothing of where the block is stored or replicated.

use std::fmt;

use crate::body::BodyAnchor;
use crate::error::TlsError;
use crate::keys::{Aead, DirectionKeys, Secret, Version, IV_LEN, MAX_KEY_LEN, MAX_SECRET_LEN};
use crate::seal::{self, CheckpointSealer};

/// Length of a block's fixed part (all of a version 1 block).
pub const BLOCK_LEN: usize = 276;
/// Length of a sealed block without pending input; each pending byte
/// adds one (and version 2 two for its length).
pub const SEALED_LEN: usize = BLOCK_LEN + seal::SEALED_OVERHEAD;
/// Most pending input a block carries: a sealed block stays within the
/// 1,024 bytes a segment record keeps for it (`MAX_TLS_BLOCK_LEN`).
pub const MAX_PENDING_INPUT: usize = 704;
const MAGIC: &[u8; 4] = b"BTLS";
const FORMAT_VERSION: u16 = 2;
const DIRECTION_LEN: usize = 8 + 4 + 1 + MAX_KEY_LEN + IV_LEN + 1 + MAX_SECRET_LEN;
const FLAG_PEER_CLOSED: u16 = 1;
const FLAG_SENT_CLOSE: u16 = 2;
const FLAG_BODY: u16 = 4;
const FLAG_PENDING_LOST: u16 = 8;

/// One direction's record state.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectionState {
    /// Next record sequence number.
    pub seq: u64,
    /// KeyUpdates since the handshake.
    pub generation: u32,
    /// AEAD key.
    pub key: Secret,
    /// AEAD IV.
    pub iv: [u8; IV_LEN],
    /// TLS 1.3 traffic secret (none for TLS 1.2).
    pub secret: Option<Secret>,
}

impl fmt::Debug for DirectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectionState")
            .field("seq", &self.seq)
            .field("generation", &self.generation)
            .field("keys", &"[redacted]")
            .finish()
    }
}

impl DirectionState {
    /// The state of live keys.
    pub fn of(k: &DirectionKeys) -> Self {
        DirectionState {
            seq: k.seq,
            generation: k.generation,
            key: k.key_bytes().clone(),
            iv: *k.iv(),
            secret: k.secret().cloned(),
        }
    }

    /// Live keys from this state.
    pub fn keys(&self, aead: Aead, version: Version) -> Result<DirectionKeys, TlsError> {
        match (&self.secret, version) {
            (Some(s), Version::Tls13) => {
                let k = DirectionKeys::from_secret(aead, s.expose(), self.seq, self.generation)?;
                if k.key_bytes() != &self.key || k.iv() != &self.iv {
                    return Err(TlsError::Checkpoint("key does not follow from the secret"));
                }
                Ok(k)
            }
            (None, Version::Tls12) => {
                DirectionKeys::from_key_iv(aead, self.key.expose(), &self.iv, self.seq)
            }
            _ => Err(TlsError::Checkpoint("traffic secret and version disagree")),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        put_padded(out, self.key.expose(), MAX_KEY_LEN);
        out.extend_from_slice(&self.iv);
        put_padded(
            out,
            self.secret.as_ref().map_or(&[][..], |s| s.expose()),
            MAX_SECRET_LEN,
        );
    }

    fn read(b: &[u8]) -> Result<Self, TlsError> {
        let mut r = Reader(b);
        let seq = r.u64()?;
        let generation = r.u32()?;
        let key = r.padded(MAX_KEY_LEN)?;
        let iv = r
            .take(IV_LEN)?
            .try_into()
            .map_err(|_| TlsError::Checkpoint("iv"))?;
        let secret = r.padded(MAX_SECRET_LEN)?;
        if key.is_empty() {
            return Err(TlsError::Checkpoint("empty key"));
        }
        Ok(DirectionState {
            seq,
            generation,
            key: Secret::new(key),
            iv,
            secret: (!secret.is_empty()).then(|| Secret::new(secret)),
        })
    }
}

/// The TLS block of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Protocol version.
    pub version: Version,
    /// IANA cipher suite id.
    pub suite: u16,
    /// Our sending direction.
    pub write: DirectionState,
    /// The peer's sending direction.
    pub read: DirectionState,
    /// Stream offset of the next byte to write.
    pub write_stream_offset: u64,
    /// The peer sent close_notify.
    pub peer_closed: bool,
    /// We sent close_notify.
    pub sent_close_notify: bool,
    /// The body in flight, if any.
    pub body: Option<BodyAnchor>,
    /// Next body record to seal.
    pub next_body_record: u64,
    /// The peer's application data, decrypted and taken by the
    /// application but not answered yet (pipelined requests behind the
    /// one being answered): a survivor hands it to the application
    /// before anything the peer sends next. The session itself leaves it
    /// empty; the caller fills it (at most [`MAX_PENDING_INPUT`] bytes).
    pub pending_input: PendingInput,
    /// The application had taken input it could not put in
    /// `pending_input` (too much, or not writable back): a survivor must
    /// not wait for it, but end the connection after the response in
    /// flight (a client retries what a closed connection left unanswered).
    pub pending_lost: bool,
}

/// Decrypted client bytes a checkpoint carries: requests, so their
/// `Debug` shows the length only (they may hold cookies or credentials).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PendingInput(pub Vec<u8>);

impl fmt::Debug for PendingInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PendingInput({} bytes, redacted)", self.0.len())
    }
}

impl Checkpoint {
    /// The block's bytes ([`BLOCK_LEN`] and the pending input). Pending
    /// input over [`MAX_PENDING_INPUT`] is a caller's bug: refused.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TlsError> {
        let pending = &self.pending_input.0;
        if pending.len() > MAX_PENDING_INPUT {
            return Err(TlsError::Checkpoint("pending input over its limit"));
        }
        let mut out = Vec::with_capacity(BLOCK_LEN + 2 + pending.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.version.wire().to_le_bytes());
        out.extend_from_slice(&self.suite.to_le_bytes());
        let flags = if self.peer_closed {
            FLAG_PEER_CLOSED
        } else {
            0
        } | if self.sent_close_notify {
            FLAG_SENT_CLOSE
        } else {
            0
        } | if self.body.is_some() { FLAG_BODY } else { 0 }
            | if self.pending_lost {
                FLAG_PENDING_LOST
            } else {
                0
            };
        out.extend_from_slice(&flags.to_le_bytes());
        self.write.write(&mut out);
        self.read.write(&mut out);
        out.extend_from_slice(&self.write_stream_offset.to_le_bytes());
        let a = self.body.unwrap_or(BodyAnchor {
            body_len: 0,
            body_offset: 0,
            write_seq: 0,
            stream_offset: 0,
            record_size: 0,
        });
        for v in [a.body_len, a.body_offset, a.write_seq, a.stream_offset] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&a.record_size.to_le_bytes());
        out.extend_from_slice(&self.next_body_record.to_le_bytes());
        debug_assert_eq!(out.len(), BLOCK_LEN);
        out.extend_from_slice(&(pending.len() as u16).to_le_bytes());
        out.extend_from_slice(pending);
        Ok(out)
    }

    /// Parses a block; any garbage is an error.
    pub fn from_bytes(b: &[u8]) -> Result<Self, TlsError> {
        if b.len() < BLOCK_LEN {
            return Err(TlsError::Checkpoint("block length"));
        }
        let mut r = Reader(b);
        if r.take(4)? != MAGIC {
            return Err(TlsError::Checkpoint("magic"));
        }
        let format = r.u16()?;
        if format != 1 && format != FORMAT_VERSION {
            return Err(TlsError::Checkpoint("unknown block format version"));
        }
        let version =
            Version::from_wire(r.u16()?).ok_or(TlsError::Checkpoint("protocol version"))?;
        let suite = r.u16()?;
        let aead = Aead::from_suite(suite).ok_or(TlsError::Checkpoint("cipher suite"))?;
        let flags = r.u16()?;
        if flags & !(FLAG_PEER_CLOSED | FLAG_SENT_CLOSE | FLAG_BODY | FLAG_PENDING_LOST) != 0 {
            return Err(TlsError::Checkpoint("unknown flags"));
        }
        let write = DirectionState::read(r.take(DIRECTION_LEN)?)?;
        let read = DirectionState::read(r.take(DIRECTION_LEN)?)?;
        for d in [&write, &read] {
            // Rebuilding the keys checks lengths and secret/key agreement.
            d.keys(aead, version)?;
        }
        let write_stream_offset = r.u64()?;
        let body_len = r.u64()?;
        let body_offset = r.u64()?;
        let write_seq = r.u64()?;
        let stream_offset = r.u64()?;
        let record_size = r.u32()?;
        let next_body_record = r.u64()?;
        let body = (flags & FLAG_BODY != 0).then_some(BodyAnchor {
            body_len,
            body_offset,
            write_seq,
            stream_offset,
            record_size,
        });
        if let Some(a) = body {
            if a.record_size == 0
                || a.body_offset % u64::from(a.record_size) != 0
                || a.body_offset > a.body_len
            {
                return Err(TlsError::Checkpoint("body anchor"));
            }
        }
        let pending_input = if format == 1 {
            Vec::new()
        } else {
            let n = r.u16()? as usize;
            if n > MAX_PENDING_INPUT {
                return Err(TlsError::Checkpoint("pending input over its limit"));
            }
            r.take(n)?.to_vec()
        };
        if !r.0.is_empty() {
            return Err(TlsError::Checkpoint("block length"));
        }
        Ok(Checkpoint {
            version,
            suite,
            write,
            read,
            write_stream_offset,
            peer_closed: flags & FLAG_PEER_CLOSED != 0,
            sent_close_notify: flags & FLAG_SENT_CLOSE != 0,
            body,
            next_body_record,
            pending_input: PendingInput(pending_input),
            pending_lost: flags & FLAG_PENDING_LOST != 0,
        })
    }

    /// The block sealed by `sealer` (under the cluster key), bound to
    /// `aad`.
    pub fn seal(&self, sealer: &CheckpointSealer, aad: &[u8]) -> Result<Vec<u8>, TlsError> {
        sealer.seal(&self.to_bytes()?, aad)
    }

    /// Opens a sealed block: fails without the right cluster key and AAD.
    pub fn open(sealed: &[u8], cluster_key: &[u8], aad: &[u8]) -> Result<Self, TlsError> {
        if sealed.len() < SEALED_LEN || sealed.len() > SEALED_LEN + 2 + MAX_PENDING_INPUT {
            return Err(TlsError::CheckpointSeal);
        }
        Self::from_bytes(&seal::open(sealed, cluster_key, aad)?)
    }
}

fn put_padded(out: &mut Vec<u8>, bytes: &[u8], width: usize) {
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
    out.resize(out.len() + width - bytes.len(), 0);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TlsError> {
        if self.0.len() < n {
            return Err(TlsError::Checkpoint("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, TlsError> {
        Ok(u16::from_le_bytes(
            self.take(2)?
                .try_into()
                .map_err(|_| TlsError::Checkpoint("u16"))?,
        ))
    }
    fn u32(&mut self) -> Result<u32, TlsError> {
        Ok(u32::from_le_bytes(
            self.take(4)?
                .try_into()
                .map_err(|_| TlsError::Checkpoint("u32"))?,
        ))
    }
    fn u64(&mut self) -> Result<u64, TlsError> {
        Ok(u64::from_le_bytes(
            self.take(8)?
                .try_into()
                .map_err(|_| TlsError::Checkpoint("u64"))?,
        ))
    }
    fn padded(&mut self, width: usize) -> Result<Vec<u8>, TlsError> {
        let len = self.take(1)?[0] as usize;
        let field = self.take(width)?;
        let bytes = field
            .get(..len)
            .ok_or(TlsError::Checkpoint("length over its field"))?;
        if field[len..].iter().any(|&b| b != 0) {
            return Err(TlsError::Checkpoint("padding not zero"));
        }
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
