//! Storability and freshness of an origin response (RFC 9111 §3, §4.2).
//!
//! Baton is a shared cache in front of one origin, so `private` responses
//! are not stored (§5.2.2.7) and `s-maxage` wins over `max-age`
//! (§5.2.2.10). Without explicit freshness, the heuristic of §4.2.2 is used
//! with a floor: 10 % of the time since Last-Modified, but at least
//! [`HEURISTIC_FLOOR`] and at most [`HEURISTIC_CAP`] — freshly generated
//! objects would otherwise be revalidated on nearly every hit.
//!
//! Pure: times come in as arguments; it knows nothing of objects or fetches.

use std::time::{Duration, SystemTime};

/// Shortest heuristic freshness lifetime.
pub const HEURISTIC_FLOOR: Duration = Duration::from_secs(60);
/// Longest heuristic freshness lifetime (RFC 9111 §4.2.2's "typical" bound
/// is 10 % of the age; one day keeps old objects from living forever).
pub const HEURISTIC_CAP: Duration = Duration::from_secs(86_400);

/// What the cache may do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// May be stored (RFC 9111 §3).
    pub storable: bool,
    /// Remaining freshness lifetime at reception (lifetime minus age); zero
    /// means every use must be revalidated (`no-cache`, §5.2.2.4).
    pub fresh_for: Duration,
}

/// The Cache-Control directives Baton acts on (RFC 9111 §5.2.2).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (the unqualified form; a field-name list is treated the
    /// same, which is stricter than needed).
    pub no_cache: bool,
    /// `private`.
    pub private: bool,
    /// `max-age=N`.
    pub max_age: Option<u64>,
    /// `s-maxage=N`.
    pub s_maxage: Option<u64>,
}

impl CacheControl {
    /// Parses one or more Cache-Control field values; unknown directives
    /// are ignored (§5.2.3), malformed ages make the response stale
    /// (§1.2.2: an invalid delta-seconds is treated as 0 — conservative).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in values {
            for directive in value.split(',') {
                let directive = directive.trim();
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                let secs = || arg.and_then(|a| a.parse::<u64>().ok()).or(Some(0));
                if name.eq_ignore_ascii_case("no-store") {
                    cc.no_store = true;
                } else if name.eq_ignore_ascii_case("no-cache") {
                    cc.no_cache = true;
                } else if name.eq_ignore_ascii_case("private") {
                    cc.private = true;
                } else if name.eq_ignore_ascii_case("max-age") {
                    cc.max_age = secs();
                } else if name.eq_ignore_ascii_case("s-maxage") {
                    cc.s_maxage = secs();
                }
            }
        }
        cc
    }
}

/// The response headers freshness depends on, as the origin sent them.
#[derive(Debug, Default, Clone, Copy)]
pub struct FreshnessInput<'a> {
    /// Status code.
    pub status: u16,
    /// Parsed Cache-Control.
    pub cache_control: CacheControl,
    /// `Date`.
    pub date: Option<&'a str>,
    /// `Expires`.
    pub expires: Option<&'a str>,
    /// `Last-Modified`.
    pub last_modified: Option<&'a str>,
    /// `Age` (§5.1).
    pub age: Option<&'a str>,
}

/// Decides storability and remaining freshness; `received` is the wall
/// clock when the response arrived (used when Date is absent or bad).
pub fn policy(input: &FreshnessInput<'_>, received: SystemTime) -> Policy {
    let cc = input.cache_control;
    // Only complete 200 answers are stored: other statuses are passed
    // through to the clients that asked and forgotten.
    let storable = input.status == 200 && !cc.no_store && !cc.private;
    if !storable || cc.no_cache {
        return Policy {
            storable,
            fresh_for: Duration::ZERO,
        };
    }
    let date = input
        .date
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or(received);
    let lifetime = if let Some(s) = cc.s_maxage.or(cc.max_age) {
        Duration::from_secs(s)
    } else if let Some(exp) = input.expires {
        // §5.3: an invalid Expires (e.g. "0") means already expired.
        match httpdate::parse_http_date(exp) {
            Ok(e) => e.duration_since(date).unwrap_or(Duration::ZERO),
            Err(_) => Duration::ZERO,
        }
    } else {
        let since_modified = input
            .last_modified
            .and_then(|lm| httpdate::parse_http_date(lm).ok())
            .and_then(|lm| date.duration_since(lm).ok())
            .unwrap_or(Duration::ZERO);
        (since_modified / 10).clamp(HEURISTIC_FLOOR, HEURISTIC_CAP)
    };
    // §4.2.3, simplified: the age is what the origin says plus how long the
    // response has been on its way since its Date.
    let age_value = input
        .age
        .and_then(|a| a.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    let apparent = received.duration_since(date).unwrap_or(Duration::ZERO);
    let age = age_value.max(apparent);
    Policy {
        storable,
        fresh_for: lifetime.saturating_sub(age),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        httpdate::parse_http_date(s).unwrap()
    }

    const NOW: &str = "Thu, 01 Jan 2026 12:00:00 GMT";

    fn input(cc: &str) -> FreshnessInput<'static> {
        FreshnessInput {
            status: 200,
            cache_control: CacheControl::parse([cc].into_iter().filter(|s| !s.is_empty())),
            date: Some(NOW),
            ..Default::default()
        }
    }

    #[test]
    fn max_age_sets_the_lifetime_and_s_maxage_wins() {
        assert_eq!(
            policy(&input("public, max-age=300"), at(NOW)).fresh_for,
            Duration::from_secs(300)
        );
        assert_eq!(
            policy(&input("max-age=300, s-maxage=30"), at(NOW)).fresh_for,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn no_store_and_private_are_not_stored_no_cache_is_stored_stale() {
        assert!(!policy(&input("no-store"), at(NOW)).storable);
        assert!(!policy(&input("private, max-age=60"), at(NOW)).storable);
        let p = policy(&input("no-cache, max-age=60"), at(NOW));
        assert!(p.storable);
        assert_eq!(p.fresh_for, Duration::ZERO);
    }

    #[test]
    fn expires_minus_date_is_the_lifetime_and_a_bad_expires_is_stale() {
        let mut i = input("");
        i.expires = Some("Thu, 01 Jan 2026 12:10:00 GMT");
        assert_eq!(policy(&i, at(NOW)).fresh_for, Duration::from_secs(600));
        i.expires = Some("0");
        assert_eq!(policy(&i, at(NOW)).fresh_for, Duration::ZERO);
    }

    #[test]
    fn age_is_subtracted_from_the_lifetime() {
        let mut i = input("max-age=100");
        i.age = Some("40");
        assert_eq!(policy(&i, at(NOW)).fresh_for, Duration::from_secs(60));
        // Received 30 s after the origin's Date, no Age: 70 s left.
        i.age = None;
        let later = at(NOW) + Duration::from_secs(30);
        assert_eq!(policy(&i, later).fresh_for, Duration::from_secs(70));
    }

    #[test]
    fn heuristic_is_a_tenth_of_the_modification_age_within_bounds() {
        let mut i = input("");
        i.last_modified = Some("Mon, 01 Dec 2025 12:00:00 GMT"); // 31 days
        assert_eq!(policy(&i, at(NOW)).fresh_for, HEURISTIC_CAP);
        i.last_modified = Some("Thu, 01 Jan 2026 02:00:00 GMT"); // 10 h
        assert_eq!(policy(&i, at(NOW)).fresh_for, Duration::from_secs(3600));
        i.last_modified = None;
        assert_eq!(policy(&i, at(NOW)).fresh_for, HEURISTIC_FLOOR);
    }

    #[test]
    fn non_200_statuses_are_not_stored() {
        let mut i = input("max-age=60");
        i.status = 404;
        assert!(!policy(&i, at(NOW)).storable);
    }
}
