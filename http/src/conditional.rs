//! Conditional requests (RFC 9110 §13): If-None-Match, If-Modified-Since
//! and If-Range, evaluated against the cached object's validators.

use std::time::SystemTime;

fn opaque(tag: &str) -> &str {
    tag.trim().strip_prefix("W/").unwrap_or(tag.trim())
}

/// If-None-Match (§13.1.2) with the weak comparison: true when the object
/// matches, i.e. the answer is 304 for GET and HEAD.
pub fn none_match_hits(header: &str, etag: Option<&str>) -> bool {
    if header.trim() == "*" {
        return true; // the object exists
    }
    let Some(etag) = etag else {
        return false;
    };
    header
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .any(|t| opaque(t) == opaque(etag))
}

/// If-Match (§13.1.1) with the strong comparison: true when the
/// condition holds (else the answer is 412).
pub fn match_hits(header: &str, etag: Option<&str>) -> bool {
    if header.trim() == "*" {
        return true; // the object exists
    }
    let Some(etag) = etag.filter(|e| !e.trim().starts_with("W/")) else {
        return false;
    };
    header
        .split(',')
        .map(str::trim)
        .any(|t| !t.starts_with("W/") && t == etag.trim())
}

/// If-Unmodified-Since (§13.1.4): true when the condition holds (the
/// object has not changed since the date). An unparsable date, or an
/// object without Last-Modified, is ignored (true).
pub fn unmodified_since(header: &str, last_modified: Option<&str>) -> bool {
    match (date(header), last_modified.and_then(date)) {
        (Some(since), Some(lm)) => lm <= since,
        _ => true,
    }
}

fn date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

/// If-Modified-Since (§13.1.3): true when the object has not changed since
/// the given date (answer 304). An unparsable date is ignored.
pub fn not_modified_since(header: &str, last_modified: Option<&str>) -> bool {
    match (date(header), last_modified.and_then(date)) {
        (Some(since), Some(lm)) => lm <= since,
        _ => false,
    }
}

/// If-Range (§13.1.5): true when the Range may be honoured. An entity tag
/// must match strongly (a weak tag never does); a date must equal the
/// Last-Modified exactly.
pub fn range_allowed(header: &str, etag: Option<&str>, last_modified: Option<&str>) -> bool {
    let h = header.trim();
    if h.starts_with('"') || h.starts_with("W/") {
        return match etag {
            Some(e) => !h.starts_with("W/") && !e.starts_with("W/") && h == e.trim(),
            None => false,
        };
    }
    match (date(h), last_modified.and_then(date)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_uses_the_weak_comparison_and_lists() {
        assert!(none_match_hits("\"a\"", Some("\"a\"")));
        assert!(none_match_hits("W/\"a\"", Some("\"a\"")));
        assert!(none_match_hits("\"x\", \"a\"", Some("W/\"a\"")));
        assert!(none_match_hits("*", None));
        assert!(!none_match_hits("\"b\"", Some("\"a\"")));
        assert!(!none_match_hits("\"a\"", None));
    }

    #[test]
    fn if_modified_since_at_or_after_last_modified_is_not_modified() {
        let lm = Some("Thu, 01 Jan 2026 00:00:00 GMT");
        assert!(not_modified_since("Thu, 01 Jan 2026 00:00:00 GMT", lm));
        assert!(not_modified_since("Fri, 02 Jan 2026 00:00:00 GMT", lm));
        assert!(!not_modified_since("Wed, 31 Dec 2025 00:00:00 GMT", lm));
        assert!(!not_modified_since("yesterday", lm));
        assert!(!not_modified_since("Fri, 02 Jan 2026 00:00:00 GMT", None));
    }

    #[test]
    fn if_match_needs_a_strong_match_and_if_unmodified_since_an_older_change() {
        assert!(match_hits("\"a\", \"b\"", Some("\"b\"")));
        assert!(match_hits("*", None));
        assert!(!match_hits("W/\"a\"", Some("\"a\"")));
        assert!(!match_hits("\"a\"", Some("W/\"a\"")));
        assert!(!match_hits("\"a\"", None));
        let lm = Some("Thu, 01 Jan 2026 00:00:00 GMT");
        assert!(unmodified_since("Fri, 02 Jan 2026 00:00:00 GMT", lm));
        assert!(!unmodified_since("Wed, 31 Dec 2025 00:00:00 GMT", lm));
        assert!(unmodified_since("garbage", lm));
    }

    #[test]
    fn if_range_needs_a_strong_etag_match_or_the_exact_date() {
        let (e, lm) = (Some("\"v1\""), Some("Thu, 01 Jan 2026 00:00:00 GMT"));
        assert!(range_allowed("\"v1\"", e, lm));
        assert!(!range_allowed("\"v2\"", e, lm));
        assert!(!range_allowed("W/\"v1\"", e, lm));
        assert!(!range_allowed("\"v1\"", Some("W/\"v1\""), lm));
        assert!(range_allowed("Thu, 01 Jan 2026 00:00:00 GMT", e, lm));
        assert!(!range_allowed("Fri, 02 Jan 2026 00:00:00 GMT", e, lm));
    }
}
