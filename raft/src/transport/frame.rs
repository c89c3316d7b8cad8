//! The datagram frame: header, body, HMAC-SHA256 tag (RFC 2104) under the
//! cluster key, and the per-sender anti-replay window (RFC 4303 §3.4.3).
//!
//! The same scheme as `baton_shmem::replication`'s datagrams, whose replay
//! window it uses; the tag is computed here because the header differs.
//! Header, 36 bytes, little-endian:
//!
//! | bytes  | field |
//! |--------|-------|
//! | 0..4   | magic `BRFT` |
//! | 4      | version (2) |
//! | 5      | kind (`Message::kind`, or [`KIND_HELLO`]) |
//! | 6..8   | sender box id |
//! | 8..10  | target box id |
//! | 10..18 | sender's boot (its incarnation: greater at every start) |
//! | 18..26 | sender's counter (from 1, +1 per datagram) |
//! | 26..28 | body length |
//! | 28..36 | target's boot, as the sender last heard it (0: none yet) |
//!
//! A receiver accepts only datagrams addressed to its own current boot, so
//! one captured before it restarted is refused after the restart, although
//! its replay windows live in memory; and none of an older boot of the
//! sender than the newest it heard.
//! then the body, then the 32-byte tag over header and body. Nothing of a
//! datagram is believed before [`Auth::open`] accepted it. This module
//! knows nothing of messages' contents or of sockets.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header bytes.
pub const HDR: usize = 36;
/// The kind of a hello: an empty body that only makes its receiver learn
/// the sender's boot (sent at start, and in answer to a datagram addressed
/// to another boot of the receiver).
pub const KIND_HELLO: u8 = 0xff;
/// Tag bytes.
pub const TAG: usize = 32;
/// The largest datagram sent or accepted.
pub const MAX_DATAGRAM: usize = 8192;
const MAGIC: &[u8; 4] = b"BRFT";
const VERSION: u8 = 2;

/// A datagram's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message kind.
    pub kind: u8,
    /// Sending box.
    pub sender: u16,
    /// Box it is meant for.
    pub target: u16,
    /// Sender's incarnation (its replay windows begin again).
    pub boot: u64,
    /// Sender's datagram counter.
    pub counter: u64,
    /// The target's incarnation the sender believes current (0: unknown).
    pub target_boot: u64,
}

/// Why a datagram was refused before anything in it was believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Too short, lengths that disagree, or wrong magic or version.
    Malformed,
    /// The tag did not verify: forged or corrupted.
    Forged,
}

/// The cluster key, ready to seal and open datagrams.
#[derive(Clone)]
pub struct Auth {
    mac: Hmac<Sha256>,
}

impl Auth {
    /// The key's MAC; `None` only if the HMAC refused the key, which
    /// HMAC-SHA256 never does (any length, RFC 2104 §3).
    pub fn new(key: &[u8]) -> Option<Auth> {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
        Some(Auth { mac })
    }

    /// The datagram with header `h`, `body` and its tag; `None` if the body
    /// would not fit one datagram.
    pub fn seal(&self, h: &Header, body: &[u8]) -> Option<Vec<u8>> {
        if HDR + body.len() + TAG > MAX_DATAGRAM {
            return None;
        }
        let mut out = Vec::with_capacity(HDR + body.len() + TAG);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(h.kind);
        out.extend_from_slice(&h.sender.to_le_bytes());
        out.extend_from_slice(&h.target.to_le_bytes());
        out.extend_from_slice(&h.boot.to_le_bytes());
        out.extend_from_slice(&h.counter.to_le_bytes());
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(&h.target_boot.to_le_bytes());
        out.extend_from_slice(body);
        let mut m = self.mac.clone();
        m.update(&out);
        out.extend_from_slice(&m.finalize().into_bytes());
        Some(out)
    }

    /// The header and body of `d` if it is well-formed and its tag
    /// verifies (in constant time).
    pub fn open<'a>(&self, d: &'a [u8]) -> Result<(Header, &'a [u8]), Rejected> {
        if d.len() < HDR + TAG || d.len() > MAX_DATAGRAM || &d[..4] != MAGIC || d[4] != VERSION {
            return Err(Rejected::Malformed);
        }
        let le16 = |i: usize| u16::from_le_bytes([d[i], d[i + 1]]);
        let le64 = |i: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&d[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let body_len = le16(26) as usize;
        if HDR + body_len + TAG != d.len() {
            return Err(Rejected::Malformed);
        }
        let (signed, tag) = d.split_at(HDR + body_len);
        let mut m = self.mac.clone();
        m.update(signed);
        m.verify_slice(tag).map_err(|_| Rejected::Forged)?;
        let h = Header {
            kind: d[5],
            sender: le16(6),
            target: le16(8),
            boot: le64(10),
            counter: le64(18),
            target_boot: le64(28),
        };
        Ok((h, &signed[HDR..]))
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(<cluster key>)")
    }
}

/// Which counters of one sender were already accepted, for its newest boot:
/// the replication's window (`baton_shmem::replication::ReplayWindow`),
/// begun again at each newer boot.
#[derive(Debug, Default)]
pub struct ReplayWindow {
    boot: u64,
    counters: baton_shmem::replication::ReplayWindow,
}

impl ReplayWindow {
    /// Whether `(boot, counter)` is new: each counter of the newest boot is
    /// accepted once, nothing older than the window, nothing of an older
    /// boot (RFC 4303 §3.4.3, with the boot as the epoch).
    pub fn accept(&mut self, boot: u64, c: u64) -> bool {
        if boot < self.boot {
            return false;
        }
        if boot > self.boot {
            *self = ReplayWindow {
                boot,
                counters: Default::default(),
            };
        }
        self.counters.accept(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(counter: u64) -> Header {
        Header {
            kind: 3,
            sender: 2,
            target: 1,
            boot: 77,
            counter,
            target_boot: 5,
        }
    }

    #[test]
    fn a_sealed_datagram_opens_and_any_flipped_bit_is_forged_or_malformed() {
        let auth = Auth::new(b"0123456789abcdef").unwrap_or_else(|| unreachable!());
        let d = auth
            .seal(&header(5), b"body")
            .unwrap_or_else(|| unreachable!());
        let (h, body) = auth
            .open(&d)
            .unwrap_or_else(|e| panic!("refused its own: {e:?}"));
        assert_eq!((h, body), (header(5), &b"body"[..]));
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 1;
            assert!(auth.open(&bad).is_err(), "byte {i}");
        }
        let other = Auth::new(b"fedcba9876543210").unwrap_or_else(|| unreachable!());
        assert_eq!(other.open(&d), Err(Rejected::Forged));
        assert_eq!(auth.open(&d[..d.len() - 1]), Err(Rejected::Malformed));
    }

    #[test]
    fn a_body_that_does_not_fit_one_datagram_is_not_sealed() {
        let auth = Auth::new(b"0123456789abcdef").unwrap_or_else(|| unreachable!());
        assert!(auth.seal(&header(1), &vec![0; MAX_DATAGRAM]).is_none());
    }

    /// RFC 4303 §3.4.3: each counter is accepted once, late ones within the
    /// window are still accepted, older ones never; a newer boot starts over.
    #[test]
    fn the_replay_window_accepts_each_counter_once_and_a_restart_starts_over() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(5, 1));
        assert!(!w.accept(5, 1));
        assert!(w.accept(5, 10));
        assert!(w.accept(5, 3), "late but within the window");
        assert!(!w.accept(5, 3));
        assert!(w.accept(5, 10 + baton_shmem::replication::REPLAY_WINDOW));
        assert!(!w.accept(5, 10), "now older than the window");
        assert!(w.accept(6, 1), "the sender restarted");
        assert!(!w.accept(5, 500), "its previous boot is over");
    }
}
