//! Authentication of replication datagrams: the HMAC-SHA256 tag (RFC 2104)
//! under the cluster key, and the per-sender anti-replay window (RFC 4303
//! §3.4.3).
//!
//! Whoever can inject a checkpoint can hijack a connection, so nothing of a
//! datagram is believed before [`Auth::open`] accepted it. `open` runs the
//! framing checks (`wire::parse_header`: size bounds, magic, version,
//! lengths) before the tag, so a flood of garbage costs no HMAC; the source
//! address and channel checks, which need the peer list, run even earlier
//! in the receiver. This module knows the header layout only through
//! `wire`, and nothing of replicas or sockets.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::wire::{self, Header, Malformed, HDR};

/// Sliding anti-replay window, in datagrams (RFC 4303 §3.4.3).
pub const REPLAY_WINDOW: u64 = 64;

/// Why a datagram was refused before anything in it was believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Its framing is wrong (checked before the tag).
    Malformed(Malformed),
    /// The tag did not verify: forged or corrupted.
    Forged,
}

/// The cluster key, ready to tag and check datagrams.
#[derive(Clone)]
pub(super) struct Auth {
    mac: Hmac<Sha256>,
}

impl Auth {
    /// `None` only if the HMAC refuses the key, which it never does for
    /// HMAC-SHA256 (any key length is accepted, RFC 2104 §3); the caller
    /// checks the length it requires.
    pub(super) fn new(key: &[u8]) -> Option<Self> {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
        Some(Auth { mac })
    }

    /// Completes the datagram being built in `out`: writes its body length
    /// and appends the tag over header and body.
    pub(super) fn seal(&self, out: &mut Vec<u8>) {
        wire::finish_body(out);
        let mut m = self.mac.clone();
        m.update(out);
        let tag = m.finalize().into_bytes();
        out.extend_from_slice(&tag);
    }

    /// The header of `d` if `d` is well-formed and its tag verifies (in
    /// constant time).
    pub(super) fn open(&self, d: &[u8]) -> Result<Header, Rejected> {
        let h = wire::parse_header(d).map_err(Rejected::Malformed)?;
        let signed = &d[..HDR + h.body_len];
        let tag = &d[HDR + h.body_len..];
        let mut m = self.mac.clone();
        m.update(signed);
        m.verify_slice(tag).map_err(|_| Rejected::Forged)?;
        Ok(h)
    }
}

/// Which counters of one sender's current epoch were already accepted
/// (also the membership Raft's, whose datagrams are framed the same way).
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayWindow {
    max_counter: u64,
    /// Bit i set: counter `max_counter - i` was seen.
    window: u64,
}

impl ReplayWindow {
    /// Sliding-window replay check (RFC 4303 §3.4.3): accepts each counter
    /// once, and nothing older than the window.
    pub fn accept(&mut self, c: u64) -> bool {
        if c > self.max_counter {
            let shift = c - self.max_counter;
            self.window = if shift >= REPLAY_WINDOW {
                1
            } else {
                (self.window << shift) | 1
            };
            self.max_counter = c;
            return true;
        }
        let back = self.max_counter - c;
        if back >= REPLAY_WINDOW || self.window & (1 << back) != 0 {
            return false;
        }
        self.window |= 1 << back;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::wire::{begin, Outgoing, K_HEARTBEAT};

    fn datagram(auth: &Auth, counter: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let h = Outgoing {
            kind: K_HEARTBEAT,
            sender: 2,
            epoch: 7,
            target: 1,
            target_epoch: 3,
            counter,
            data_seq: 0,
        };
        begin(&mut out, &h);
        out.push(0);
        auth.seal(&mut out);
        out
    }

    #[test]
    fn a_sealed_datagram_opens_and_any_flipped_bit_is_forged() {
        let auth = Auth::new(b"0123456789abcdef").unwrap_or_else(|| unreachable!());
        let d = datagram(&auth, 5);
        let h = auth
            .open(&d)
            .unwrap_or_else(|_| panic!("refused its own datagram"));
        assert_eq!((h.sender, h.epoch, h.target, h.counter), (2, 7, 1, 5));
        for byte in [6, 16, HDR] {
            let mut bad = d.clone();
            bad[byte] ^= 1;
            assert!(
                matches!(auth.open(&bad), Err(Rejected::Forged)),
                "byte {byte}"
            );
        }
        let other = Auth::new(b"fedcba9876543210").unwrap_or_else(|| unreachable!());
        assert!(matches!(other.open(&d), Err(Rejected::Forged)));
        assert!(matches!(
            auth.open(&d[..d.len() - 1]),
            Err(Rejected::Malformed(Malformed::Truncated))
        ));
        let mut big = d.clone();
        big.resize(wire::MAX_DATAGRAM + 1, 0);
        assert!(matches!(
            auth.open(&big),
            Err(Rejected::Malformed(Malformed::Oversized))
        ));
        let mut alien = d.clone();
        alien[0] ^= 0x20;
        assert!(matches!(
            auth.open(&alien),
            Err(Rejected::Malformed(Malformed::BadMagic))
        ));
    }

    /// RFC 4303 §3.4.3: each counter is accepted once, late ones within the
    /// window are still accepted, older ones never.
    #[test]
    fn the_replay_window_accepts_each_counter_once_and_nothing_older_than_it() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(1));
        assert!(!w.accept(1));
        assert!(w.accept(10));
        assert!(w.accept(3), "late but within the window");
        assert!(!w.accept(3));
        assert!(w.accept(10 + REPLAY_WINDOW));
        assert!(!w.accept(10), "now older than the window");
    }
}
