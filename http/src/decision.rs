//! The answer to a GET or HEAD for an object that exists, from its
//! validators and the request's conditional and range headers, in RFC 9110
//! §13.2.2's order: If-Match, else If-Unmodified-Since (412); If-None-Match,
//! else If-Modified-Since (304); then If-Range and Range (206, 416 or 200).

use crate::conditional;
use crate::range::{self, RangeOutcome};

/// The request's conditional and range headers, as sent (trimmed or not).
#[derive(Debug, Clone, Copy, Default)]
pub struct Preconditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
    /// `Range`.
    pub range: Option<&'a str>,
}

/// What the server knows of the selected representation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Validators<'a> {
    /// Its entity tag, quotes included (`"abc"` or `W/"abc"`).
    pub etag: Option<&'a str>,
    /// Its `Last-Modified` as an HTTP date.
    pub last_modified: Option<&'a str>,
    /// Its length in bytes, when known (a body still arriving chunked has
    /// none yet, and then Range is not evaluated).
    pub length: Option<u64>,
}

/// The status to answer with, and which bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 412: If-Match or If-Unmodified-Since failed.
    PreconditionFailed,
    /// 304: If-None-Match or If-Modified-Since says the client has it.
    NotModified,
    /// 206 with bytes `first..=last` of an object of `length` bytes.
    Partial {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: u64,
        /// The whole object's length.
        length: u64,
    },
    /// 416: the range matches no byte of an object of `length` bytes.
    Unsatisfiable {
        /// The whole object's length (for `Content-Range: bytes */N`).
        length: u64,
    },
    /// 200 with the whole object.
    Full,
}

impl Decision {
    /// The HTTP status code of this decision.
    pub fn status(&self) -> u16 {
        match self {
            Decision::PreconditionFailed => 412,
            Decision::NotModified => 304,
            Decision::Partial { .. } => 206,
            Decision::Unsatisfiable { .. } => 416,
            Decision::Full => 200,
        }
    }
}

/// Decides the answer to a GET (`is_get`) or HEAD for a representation with
/// `validators`. Range is honoured for GET only (§14.2), and only if
/// If-Range holds.
pub fn decide(is_get: bool, pre: &Preconditions<'_>, validators: &Validators<'_>) -> Decision {
    let etag = validators.etag;
    let lm = validators.last_modified;
    // §13.2.2 steps 1–2: If-Match, else If-Unmodified-Since.
    let failed = match (pre.if_match, pre.if_unmodified_since) {
        (Some(im), _) => !conditional::match_hits(im, etag),
        (None, Some(ius)) => !conditional::unmodified_since(ius, lm),
        (None, None) => false,
    };
    if failed {
        return Decision::PreconditionFailed;
    }
    // Steps 3–4: If-None-Match, else If-Modified-Since.
    let not_modified = match (pre.if_none_match, pre.if_modified_since) {
        (Some(inm), _) => conditional::none_match_hits(inm, etag),
        (None, Some(ims)) => conditional::not_modified_since(ims, lm),
        (None, None) => false,
    };
    if not_modified {
        return Decision::NotModified;
    }
    // Step 5: If-Range and Range.
    let (Some(r), Some(length), true) = (pre.range, validators.length, is_get) else {
        return Decision::Full;
    };
    if !pre
        .if_range
        .is_none_or(|ir| conditional::range_allowed(ir, etag, lm))
    {
        return Decision::Full;
    }
    match range::evaluate(r, length) {
        RangeOutcome::Full => Decision::Full,
        RangeOutcome::Partial { first, last } => Decision::Partial {
            first,
            last,
            length,
        },
        RangeOutcome::Unsatisfiable => Decision::Unsatisfiable { length },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &str = "\"v1\"";
    const LM: &str = "Tue, 01 Dec 2026 10:00:00 GMT";

    fn object() -> Validators<'static> {
        Validators {
            etag: Some(ETAG),
            last_modified: Some(LM),
            length: Some(1000),
        }
    }

    #[test]
    fn if_match_failure_wins_over_everything_else() {
        // RFC 9110 §13.2.2: "When If-Match is present … if the field value
        // is false, respond 412".
        let pre = Preconditions {
            if_match: Some("\"other\""),
            if_none_match: Some(ETAG),
            range: Some("bytes=0-9"),
            ..Default::default()
        };
        assert_eq!(decide(true, &pre, &object()), Decision::PreconditionFailed);
    }

    #[test]
    fn if_none_match_hit_is_304_even_with_a_range() {
        let pre = Preconditions {
            if_none_match: Some(ETAG),
            range: Some("bytes=0-9"),
            ..Default::default()
        };
        assert_eq!(decide(true, &pre, &object()), Decision::NotModified);
    }

    #[test]
    fn a_single_range_is_206_and_past_the_end_is_416() {
        let pre = Preconditions {
            range: Some("bytes=10-19"),
            ..Default::default()
        };
        assert_eq!(
            decide(true, &pre, &object()),
            Decision::Partial {
                first: 10,
                last: 19,
                length: 1000
            }
        );
        let pre = Preconditions {
            range: Some("bytes=5000-"),
            ..Default::default()
        };
        assert_eq!(
            decide(true, &pre, &object()),
            Decision::Unsatisfiable { length: 1000 }
        );
    }

    #[test]
    fn range_is_ignored_for_head_and_when_if_range_does_not_hold() {
        // §14.2: "A server MUST ignore a Range header field received with a
        // request method that is unrecognized or for which range handling
        // is not defined" (only GET defines it).
        let pre = Preconditions {
            range: Some("bytes=10-19"),
            ..Default::default()
        };
        assert_eq!(decide(false, &pre, &object()), Decision::Full);
        let pre = Preconditions {
            range: Some("bytes=10-19"),
            if_range: Some("\"stale\""),
            ..Default::default()
        };
        assert_eq!(decide(true, &pre, &object()), Decision::Full);
    }

    #[test]
    fn a_range_on_an_object_of_unknown_length_sends_the_whole_object() {
        let mut v = object();
        v.length = None;
        let pre = Preconditions {
            range: Some("bytes=10-19"),
            ..Default::default()
        };
        assert_eq!(decide(true, &pre, &v), Decision::Full);
    }
}
