//! Value rules: one TOML value to one Rust value (or the message saying
//! what was expected and what was found), and back ([`ToToml`]).
//!
//! Each function here judges a single value, so it knows neither lines nor
//! dotted keys (`crate::read` adds them) nor which key it serves (the
//! tables in `crate::tables` pick a rule per key).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use toml_edit::Value;

use crate::model::*;
use crate::read::{describe, quote};

/// How a Rust value is written back into a TOML file.
pub(crate) trait ToToml {
    /// The TOML value [`crate::parse`] reads back as `self`.
    fn to_toml(&self) -> Value;
}

macro_rules! to_toml_as {
    (int: $($t:ty),*) => {$(
        impl ToToml for $t {
            /// TOML integers are i64; values beyond it (never sensible
            /// here) saturate.
            fn to_toml(&self) -> Value {
                Value::from(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
    (display: $($t:ty),*) => {$(
        impl ToToml for $t {
            fn to_toml(&self) -> Value {
                Value::from(self.to_string())
            }
        }
    )*};
    (spelling: $($t:ty),*) => {$(
        impl ToToml for $t {
            fn to_toml(&self) -> Value {
                Value::from(self.as_str())
            }
        }
    )*};
}

to_toml_as!(int: u16, u32, u64, usize);
to_toml_as!(display: IpAddr, SocketAddr, MacAddr);
to_toml_as!(spelling: Assignment, Backend, PollMode, SegmentMode, String);

/// An enum whose values are written as fixed words (`"afpacket"`): the
/// same spelling is read by [`choice`] and written by [`ToToml`].
pub(crate) trait Spelled: Copy {
    /// The word the file uses for this value.
    fn spelling(self) -> &'static str;
}

macro_rules! spelled {
    ($($t:ty),*) => {$(
        impl Spelled for $t {
            fn spelling(self) -> &'static str {
                self.as_str()
            }
        }
    )*};
}

spelled!(Assignment, Backend, PollMode, SegmentMode);

impl ToToml for bool {
    fn to_toml(&self) -> Value {
        Value::from(*self)
    }
}

impl ToToml for PathBuf {
    fn to_toml(&self) -> Value {
        Value::from(self.to_string_lossy().into_owned())
    }
}

fn integer(v: &Value, expected: &str) -> Result<i64, String> {
    v.as_integer()
        .ok_or_else(|| format!("expected {expected}, found {}", describe(v)))
}

pub(crate) fn int_in<T: TryFrom<i64>>(lo: i64, hi: i64) -> impl Fn(&Value) -> Result<T, String> {
    move |v| {
        let expected = format!("an integer in {lo}..={hi}");
        let n = integer(v, &expected)?;
        if (lo..=hi).contains(&n) {
            T::try_from(n).map_err(|_| format!("expected {expected}, found integer {n}"))
        } else {
            Err(format!("expected {expected}, found integer {n}"))
        }
    }
}

pub(crate) fn positive<T: TryFrom<i64>>(v: &Value) -> Result<T, String> {
    let n = integer(v, "a positive integer")?;
    if n < 1 {
        return Err(format!("expected a positive integer, found integer {n}"));
    }
    T::try_from(n).map_err(|_| format!("expected a smaller positive integer, found integer {n}"))
}

pub(crate) fn non_negative<T: TryFrom<i64>>(v: &Value) -> Result<T, String> {
    let n = integer(v, "an integer >= 0")?;
    T::try_from(n).map_err(|_| format!("expected an integer >= 0, found integer {n}"))
}

pub(crate) fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected true or false, found {}", describe(v)))
}

pub(crate) fn string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a string, found {}", describe(v)))
}

pub(crate) fn non_empty(v: &Value) -> Result<String, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected a non-empty string, found {}", describe(v)))?;
    if s.trim().is_empty() {
        return Err(format!("expected a non-empty string, found string {:?}", s));
    }
    Ok(s.to_string())
}

/// The cluster key of `baton.example.toml`: anyone has it, so a box
/// refuses it.
pub const EXAMPLE_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The admin token of `baton.example.toml`, refused for the same reason.
pub const EXAMPLE_TOKEN: &str = "change-me";

/// The admin token: a non-empty string other than the example's.
pub(crate) fn admin_token(v: &Value) -> Result<String, String> {
    let s = non_empty(v)?;
    if s.trim() == EXAMPLE_TOKEN {
        return Err(
            "this is the example's token, published with Baton: choose a secret one (openssl rand -hex 16)"
                .to_string(),
        );
    }
    Ok(s)
}

/// A tracing `EnvFilter` directive list (`info`, `warn,baton=debug`). Only
/// the level after `target=` is checked: a bare word is a valid target, and
/// span/field filters (`[..]`, `{..}`) are left to tracing itself.
pub(crate) fn log_filter(v: &Value) -> Result<String, String> {
    const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
    let s = non_empty(v)?;
    for directive in s.split(',').map(str::trim) {
        if directive.contains(['[', '{']) {
            continue;
        }
        if let Some((_, level)) = directive.rsplit_once('=') {
            let known = LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level.trim()))
                || matches!(level.trim(), "0" | "1" | "2" | "3" | "4" | "5");
            if !known {
                return Err(format!(
                    "expected a log filter like \"info\" or \"warn,baton=debug\" (levels: {}), found level {:?} in {:?}",
                    LEVELS.join(", "),
                    quote(level),
                    quote(&s)
                ));
            }
        }
    }
    Ok(s)
}

/// A string parsed with `FromStr`; `what` says what it should look like.
pub(crate) fn parsed<T: FromStr>(what: &'static str) -> impl Fn(&Value) -> Result<T, String> {
    move |v| {
        let s = v
            .as_str()
            .ok_or_else(|| format!("expected {what}, found {}", describe(v)))?;
        s.trim()
            .parse::<T>()
            .map_err(|_| format!("expected {what}, found string {:?}", quote(s)))
    }
}

/// One of `options`, written as its spelling.
pub(crate) fn choice<T: Spelled>(options: &'static [T]) -> impl Fn(&Value) -> Result<T, String> {
    move |v| {
        let names: Vec<String> = options
            .iter()
            .map(|o| format!("{:?}", o.spelling()))
            .collect();
        let expected = format!("one of {}", names.join(", "));
        let s = v
            .as_str()
            .ok_or_else(|| format!("expected {expected}, found {}", describe(v)))?;
        options
            .iter()
            .find(|o| o.spelling() == s)
            .copied()
            .ok_or_else(|| format!("expected {expected}, found string {:?}", quote(s)))
    }
}

/// An EAL log level name (`--log-level=notice`); per-component levels go
/// in `eal_args`.
pub(crate) fn dpdk_log_level(v: &Value) -> Result<String, String> {
    let expected = format!(
        "one of {}",
        DPDK_LOG_LEVELS
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match v.as_str() {
        Some(s) if DPDK_LOG_LEVELS.contains(&s) => Ok(s.to_string()),
        _ => Err(format!("expected {expected}, found {}", describe(v))),
    }
}

/// Linux interface names: 1..=15 bytes, no `/`, `:` or whitespace, and
/// not `.` or `..` (the kernel's `dev_valid_name`).
pub(crate) fn interface_name(v: &Value) -> Result<String, String> {
    let expected = "an interface name of 1 to 15 characters without '/', ':' or spaces";
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected {expected}, found {}", describe(v)))?;
    let bad = s.is_empty()
        || s.len() > MAX_INTERFACE_NAME
        || s == "."
        || s == ".."
        || s.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(format!("expected {expected}, found string {:?}", quote(s)));
    }
    Ok(s.to_string())
}

/// A MAC the box may send from: a multicast (group) address, bit 0 of the
/// first octet (IEEE 802-2014 §8.2), or all zeros cannot be a source.
pub(crate) fn unicast_mac(v: &Value) -> Result<MacAddr, String> {
    let mac: MacAddr = parsed::<MacAddr>("a MAC address like 02:ba:70:00:00:01")(v)?;
    if mac.0[0] & 1 == 1 {
        return Err(format!(
            "expected a unicast MAC address, found multicast {mac}"
        ));
    }
    if mac.0 == [0; 6] {
        return Err("expected a unicast MAC address, found 00:00:00:00:00:00".to_string());
    }
    Ok(mac)
}

/// The checkpoint segment: an absolute path, or `pci:DDDD:BB:DD.F` (a PCI
/// device whose BAR 2 is the segment, as in an ivshmem-plain device), read
/// as that device's sysfs resource file.
pub(crate) fn segment_location(v: &Value) -> Result<PathBuf, String> {
    let Some(addr) = v.as_str().and_then(|s| s.strip_prefix("pci:")) else {
        return absolute_path(v);
    };
    let b = addr.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    let well_formed = b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11]);
    if !well_formed {
        return Err(format!(
            "expected an absolute path or a PCI device like \"pci:0000:00:05.0\", found string {:?}",
            quote(addr)
        ));
    }
    Ok(PathBuf::from(format!(
        "/sys/bus/pci/devices/{}/resource2",
        addr.to_ascii_lowercase()
    )))
}

pub(crate) fn absolute_path(v: &Value) -> Result<PathBuf, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected an absolute path, found {}", describe(v)))?;
    // Every box and tool opens the segment by this path; a relative one
    // would depend on each process's working directory.
    if !s.starts_with('/') {
        return Err(format!(
            "expected an absolute path, found string {:?}",
            quote(s)
        ));
    }
    Ok(PathBuf::from(s))
}

pub(crate) fn origin_url(v: &Value) -> Result<String, String> {
    let s = v.as_str().ok_or_else(|| {
        format!(
            "expected an http://host[:port][/path] URL, found {}",
            describe(v)
        )
    })?;
    OriginUrl::parse(s).map_err(|e| e.0)?;
    Ok(s.to_string())
}

/// Hex-encoded cluster key of at least [`MIN_KEY_BYTES`] bytes. The
/// messages never quote the key: it is a secret.
pub(crate) fn hex_key(v: &Value) -> Result<Vec<u8>, String> {
    let min_digits = 2 * MIN_KEY_BYTES;
    let expected = format!("at least {min_digits} hex digits ({MIN_KEY_BYTES} bytes)");
    let Some(s) = v.as_str() else {
        return Err(format!(
            "expected a string of {expected}, found {}",
            v.type_name()
        ));
    };
    if let Some(pos) = s.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "expected {expected}, found a non-hex character at position {}",
            pos + 1
        ));
    }
    if s.len() < min_digits {
        return Err(format!("expected {expected}, found {} hex digits", s.len()));
    }
    if s.eq_ignore_ascii_case(EXAMPLE_KEY) {
        return Err(
            "this is the example's key, published with Baton: generate a secret one (openssl rand -hex 32)"
                .to_string(),
        );
    }
    if s.len() % 2 != 0 {
        return Err(format!(
            "expected an even number of hex digits (two per byte), found {}",
            s.len()
        ));
    }
    // All ASCII hex digits (checked above), so every 2-byte slice is a
    // valid `str` and parses.
    (0..s.len() / 2)
        .map(|i| {
            s.get(2 * i..2 * i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("expected {expected}"))
        })
        .collect()
}

/// `memory_bytes`: an integer, or a string with a unit suffix.
pub(crate) fn byte_size(v: &Value) -> Result<u64, String> {
    let expected = "a positive byte count: an integer or a string like \"512MiB\" (units B, K, M, G, T = 1000^n, KiB, MiB, GiB, TiB = 1024^n)";
    let n = match v {
        Value::Integer(i) => {
            let n = *i.value();
            u64::try_from(n).ok().filter(|&n| n > 0)
        }
        Value::String(s) => parse_size(s.value()),
        other => return Err(format!("expected {expected}, found {}", describe(other))),
    };
    n.ok_or_else(|| format!("expected {expected}, found {}", describe(v)))
}

/// Parses `"1GiB"`, `"512 MB"`, `"100000"`; `None` if malformed, zero or
/// overflowing.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let num: String = num.chars().filter(|&c| c != '_').collect();
    if num.is_empty() {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult).filter(|&b| b > 0)
}
