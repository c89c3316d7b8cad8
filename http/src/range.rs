//! The `Range` request header for byte ranges (RFC 9110 §14.1.2, §14.2).
//!
//! One range is answered with 206; several are answered with the whole
//! object and 200 (§14.2 lets a server ignore Range, and multipart bodies
//! would break the one-to-one map from TCP sequence numbers to object bytes
//! that a takeover relies on). An invalid header is ignored (200), a valid
//! one that matches no byte is 416.

/// What a Range header asks of an object of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Send the whole object (no, several, or invalid ranges).
    Full,
    /// Send bytes `first..=last`.
    Partial {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: u64,
    },
    /// 416: no byte of the object is in the range.
    Unsatisfiable,
}

/// Evaluates `header` against an object of `len` bytes.
pub fn evaluate(header: &str, len: u64) -> RangeOutcome {
    let Some(set) = header
        .trim()
        .get(..6)
        .filter(|u| u.eq_ignore_ascii_case("bytes="))
        .map(|_| &header.trim()[6..])
    else {
        return RangeOutcome::Full; // another unit: ignored (§14.2)
    };
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeOutcome::Full;
    };
    let Some((a, b)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if len == 0 {
        // Nothing to cut: the (empty) whole object is the answer.
        return RangeOutcome::Full;
    }
    if a.is_empty() {
        // suffix-range: the last N bytes (§14.1.2); N = 0 selects nothing.
        return match num(b) {
            None => RangeOutcome::Full,
            Some(0) => RangeOutcome::Unsatisfiable,
            Some(n) => RangeOutcome::Partial {
                first: len.saturating_sub(n),
                last: len - 1,
            },
        };
    }
    let Some(first) = num(a) else {
        return RangeOutcome::Full;
    };
    let last = if b.is_empty() {
        len - 1
    } else {
        match num(b) {
            Some(l) if l >= first => l.min(len - 1),
            // last < first is an invalid range-spec: ignore the header.
            _ => return RangeOutcome::Full,
        }
    };
    if first >= len {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial { first, last }
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::*;
    use super::*;

    fn p(first: u64, last: u64) -> RangeOutcome {
        Partial { first, last }
    }

    #[test]
    fn closed_open_and_suffix_ranges_are_clamped_to_the_object() {
        assert_eq!(evaluate("bytes=0-99", 1000), p(0, 99));
        assert_eq!(evaluate("bytes=900-", 1000), p(900, 999));
        assert_eq!(evaluate("bytes=900-5000", 1000), p(900, 999));
        assert_eq!(evaluate("bytes=-500", 1000), p(500, 999));
        // A suffix longer than the object is the whole object, as 206.
        assert_eq!(evaluate("bytes=-5000", 1000), p(0, 999));
        assert_eq!(evaluate("BYTES=999-999", 1000), p(999, 999));
    }

    #[test]
    fn range_starting_at_or_beyond_the_end_is_416() {
        assert_eq!(evaluate("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(evaluate("bytes=5000-6000", 1000), Unsatisfiable);
        assert_eq!(evaluate("bytes=-0", 1000), Unsatisfiable);
    }

    #[test]
    fn several_ranges_or_invalid_syntax_send_the_whole_object() {
        assert_eq!(evaluate("bytes=0-1,5-6", 1000), Full);
        assert_eq!(evaluate("bytes=5-1", 1000), Full);
        assert_eq!(evaluate("bytes=a-b", 1000), Full);
        assert_eq!(evaluate("bytes=+1-2", 1000), Full);
        assert_eq!(evaluate("items=0-1", 1000), Full);
        assert_eq!(evaluate("bytes=", 1000), Full);
        assert_eq!(evaluate("bytes=0-1", 0), Full);
    }

    #[test]
    fn two_range_lines_joined_are_several_ranges() {
        // The request parser joins a second Range line with ", " (Range is
        // not a list, RFC 9110 §14.2): neither line wins.
        assert_eq!(evaluate("bytes=0-1, bytes=5-9", 1000), Full);
    }

    #[test]
    fn empty_list_elements_are_skipped() {
        // RFC 9110 §5.6.1: recipients accept empty list elements.
        assert_eq!(evaluate("bytes=, 10-19 ,", 1000), p(10, 19));
    }
}
