//! Normal play time ranges (RFC 2326 §3.6, §12.29): `Range: npt=a-b` in,
//! milliseconds out, and back. Knows nothing of sessions.

/// A requested range in milliseconds of normal play time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NptRange {
    /// Start; `None` for `npt=-b` or `npt=now-`.
    pub start_ms: Option<u64>,
    /// End, if given.
    pub end_ms: Option<u64>,
}

/// Parses a `Range` header value; `None` when it is not an npt range Baton
/// understands (answered 457 or 456 by the caller).
pub fn parse_range(value: &str) -> Option<NptRange> {
    let v = value.split(';').next()?.trim();
    let spec = v.strip_prefix("npt=")?;
    let (a, b) = spec.split_once('-')?;
    let start_ms = match a.trim() {
        "" | "now" => None,
        t => Some(parse_time(t)?),
    };
    let end_ms = match b.trim() {
        "" => None,
        t => Some(parse_time(t)?),
    };
    if let (Some(s), Some(e)) = (start_ms, end_ms) {
        if e < s {
            return None;
        }
    }
    Some(NptRange { start_ms, end_ms })
}

/// `npt-sec` (`12.5`) or `npt-hhmmss` (`0:01:02.5`) in milliseconds.
fn parse_time(t: &str) -> Option<u64> {
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ms: u64 = 0;
    let fields: Vec<&str> = whole.split(':').collect();
    let secs: u64 = match fields.as_slice() {
        [s] => s.parse().ok()?,
        [h, m, s] => {
            let (h, m, s): (u64, u64, u64) = (h.parse().ok()?, m.parse().ok()?, s.parse().ok()?);
            if m > 59 || s > 59 {
                return None;
            }
            h.checked_mul(3600)?.checked_add(m * 60 + s)?
        }
        _ => return None,
    };
    for (i, d) in frac.bytes().take(3).enumerate() {
        ms += u64::from(d - b'0') * [100, 10, 1][i];
    }
    secs.checked_mul(1000)?.checked_add(ms)
}

/// `npt=a-b` with seconds to three decimals.
pub fn format_range(start_ms: u64, end_ms: Option<u64>) -> String {
    match end_ms {
        Some(e) => format!("npt={}-{}", secs(start_ms), secs(e)),
        None => format!("npt={}-", secs(start_ms)),
    }
}

fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_clock_forms() {
        assert_eq!(
            parse_range("npt=10.5-"),
            Some(NptRange {
                start_ms: Some(10_500),
                end_ms: None
            })
        );
        assert_eq!(
            parse_range("npt=0:01:02.25-0:02:00"),
            Some(NptRange {
                start_ms: Some(62_250),
                end_ms: Some(120_000)
            })
        );
        assert_eq!(
            parse_range("npt=now-"),
            Some(NptRange {
                start_ms: None,
                end_ms: None
            })
        );
    }

    #[test]
    fn other_units_and_garbage_are_none() {
        for v in [
            "smpte=0:10:00-",
            "clock=19961108T142300Z-",
            "npt=abc-",
            "npt=5-2",
            "npt=1:99:00-",
            "npt=",
            "npt=99999999999999999999-",
        ] {
            assert_eq!(parse_range(v), None, "{v}");
        }
    }

    #[test]
    fn formats_three_decimals() {
        assert_eq!(format_range(1500, Some(30_000)), "npt=1.500-30.000");
        assert_eq!(format_range(0, None), "npt=0.000-");
    }
}
