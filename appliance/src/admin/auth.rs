//! Bearer-token authentication (RFC 6750 §2.1 over RFC 9110 §11): every admin
//! request carries `Authorization: Bearer <token>`.

use sha2::{Digest, Sha256};

/// What the `Authorization` header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The right token.
    Granted,
    /// No `Authorization` header, or another scheme.
    Missing,
    /// A Bearer token, but not ours.
    Invalid,
}

/// Checks the `Authorization` header value `header` against `token`.
///
/// The scheme name is case-insensitive (RFC 9110 §11.1). The token comparison
/// runs in time independent of where the two differ, and of the presented
/// token's length: both sides are hashed first and the digests compared
/// without an early exit, so a network attacker cannot find the token byte by
/// byte from response times.
pub fn check(header: Option<&[u8]>, token: &str) -> Auth {
    let Some(value) = header else {
        return Auth::Missing;
    };
    let value = trim(value);
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return Auth::Missing;
    };
    let (scheme, credentials) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Auth::Missing;
    }
    if constant_time_eq(trim(credentials), token.as_bytes()) {
        Auth::Granted
    } else {
        Auth::Invalid
    }
}

/// The token box `box_id` accepts on `/adopt` from its peers, derived from
/// the cluster key (HMAC-SHA256, hex): every member can compute it, so
/// `migrate` needs no other box's admin token, and it opens `/adopt` on that
/// one box only — never `drain`, `migrate` or `purge`. Whoever holds the
/// cluster key can already forge checkpoints, so it grants nothing new.
pub fn adopt_token(cluster_key: &[u8], box_id: u16) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(cluster_key) else {
        return String::new();
    };
    mac.update(b"baton admin adopt\0");
    mac.update(&box_id.to_be_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equality of `a` and `b` whose time depends on neither content.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let da = Sha256::digest(a);
    let db = Sha256::digest(b);
    let mut diff = 0u8;
    for (x, y) in da.iter().zip(db.iter()) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
