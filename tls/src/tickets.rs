//! Session tickets every box of the cluster can open (issue 14): the
//! ticket key is derived from `cluster.key` and the current period, so a
//! client that resumes on another box (a new connection after a takeover,
//! or a load balancer's other choice) gets an abbreviated handshake.
//!
//! Key rolling, not a lifetime in the ticket, bounds what a stolen key
//! reveals (rustls' `ProducesTickets` contract): period `p` is
//! `unix_time / lifetime`, its key HKDF-SHA256(salt "baton-tls tickets",
//! `cluster.key`, info "baton-tls ticket key v1" ‖ p). A ticket sealed in
//! period `p` opens in periods `p` and `p + 1` only, so it lives at most two
//! lifetimes. Boxes need clocks within a lifetime of each other.
//!
//! Ticket: `period (u32 LE) ‖ nonce (12) ‖ AES-256-GCM(plain, aad = the
//! first 4 bytes) ‖ tag (16)`. Knows nothing of connections or sessions.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

/// Longest ticket plaintext rustls hands us (its session value with a
/// certificate chain fits well below); longer input is refused.
const MAX_PLAIN: usize = 16 * 1024;
const PERIOD_LEN: usize = 4;
const TAG_LEN: usize = 16;

/// Where "now" comes from: the system clock, or a fixed time in tests.
type Clock = fn() -> u64;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Tickets sealed under keys derived from the cluster key.
pub struct ClusterTicketer {
    /// The HKDF pseudo-random key from the cluster key (the cluster key
    /// itself is not kept).
    prk: hkdf::Prk,
    lifetime_secs: u32,
    rng: SystemRandom,
    clock: Clock,
}

impl fmt::Debug for ClusterTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterTicketer")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl ClusterTicketer {
    /// A ticketer for `cluster_key`, each key used for `lifetime_secs`
    /// (at least 1).
    pub fn new(cluster_key: &[u8], lifetime_secs: u32) -> Self {
        Self::with_clock(cluster_key, lifetime_secs, unix_now)
    }

    fn with_clock(cluster_key: &[u8], lifetime_secs: u32, clock: Clock) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"baton-tls tickets").extract(cluster_key);
        ClusterTicketer {
            prk,
            lifetime_secs: lifetime_secs.max(1),
            rng: SystemRandom::new(),
            clock,
        }
    }

    fn period_now(&self) -> u32 {
        ((self.clock)() / u64::from(self.lifetime_secs)) as u32
    }

    fn key(&self, period: u32) -> Option<LessSafeKey> {
        let mut key = [0u8; 32];
        let period = period.to_le_bytes();
        self.prk
            .expand(&[b"baton-tls ticket key v1", &period], &aead::AES_256_GCM)
            .and_then(|okm| okm.fill(&mut key))
            .ok()?;
        let unbound = UnboundKey::new(&aead::AES_256_GCM, &key).ok()?;
        Some(LessSafeKey::new(unbound))
    }

    fn seal(&self, period: u32, plain: &[u8]) -> Option<Vec<u8>> {
        if plain.len() > MAX_PLAIN {
            return None;
        }
        let key = self.key(period)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let head = period.to_le_bytes();
        let mut out = Vec::with_capacity(PERIOD_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&head);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(head),
            &mut body,
        )
        .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }
}

impl ProducesTickets for ClusterTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime_secs
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal(self.period_now(), plain)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let head: [u8; PERIOD_LEN] = ticket.get(..PERIOD_LEN)?.try_into().ok()?;
        let nonce: [u8; NONCE_LEN] = ticket
            .get(PERIOD_LEN..PERIOD_LEN + NONCE_LEN)?
            .try_into()
            .ok()?;
        let sealed = ticket.get(PERIOD_LEN + NONCE_LEN..)?;
        if sealed.len() < TAG_LEN || sealed.len() > MAX_PLAIN + TAG_LEN {
            return None;
        }
        let period = u32::from_le_bytes(head);
        let now = self.period_now();
        // This period's key or the one before: older keys are gone.
        if period != now && period.checked_add(1) != Some(now) {
            return None;
        }
        let key = self.key(period)?;
        let mut body = sealed.to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(head),
                &mut body,
            )
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// A box of the cluster whose clock is in period `n` after the
    /// first (fn pointers cannot capture, so each time is a function).
    fn at(n: u8) -> ClusterTicketer {
        let clock: Clock = match n {
            0 => || 10_000,
            1 => || 10_000 + 7_200,
            _ => || 10_000 + 2 * 7_200,
        };
        ClusterTicketer::with_clock(KEY, 7_200, clock)
    }

    #[test]
    fn a_ticket_from_one_box_opens_on_another() {
        let (box_a, box_b) = (at(0), at(0));
        let t = box_a.encrypt(b"session state").expect("sealed");
        assert_eq!(box_b.decrypt(&t).as_deref(), Some(&b"session state"[..]));
        // Nonces are fresh: the same state gives another ticket.
        assert_ne!(box_a.encrypt(b"session state"), Some(t));
    }

    #[test]
    fn a_ticket_lives_two_periods_at_most() {
        let t = at(0).encrypt(b"s").expect("sealed");
        assert!(
            at(1).decrypt(&t).is_some(),
            "the next period still opens it"
        );
        assert!(at(2).decrypt(&t).is_none(), "its key is gone");
        // A ticket from the future (a box whose clock runs ahead) too.
        let ahead = at(1).encrypt(b"s").expect("sealed");
        assert!(at(0).decrypt(&ahead).is_none());
    }

    #[test]
    fn another_cluster_or_a_changed_byte_does_not_open() {
        let t = at(0).encrypt(b"session state").expect("sealed");
        let other =
            ClusterTicketer::with_clock(b"another cluster key, 32 bytes...", 7_200, || 10_000);
        assert!(other.decrypt(&t).is_none());
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 1;
            assert!(at(0).decrypt(&bad).is_none(), "byte {i} changed");
        }
        for len in 0..t.len() {
            assert!(at(0).decrypt(&t[..len]).is_none(), "cut to {len}");
        }
    }
}
