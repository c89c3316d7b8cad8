//! The objects the server lists and serves, as the caller gives them
//! (the origin's index through the cache), and their LIST, NLST and MLSD
//! (RFC 3659 §7) lines and MDTM times (RFC 3659 §2.3). One flat root
//! directory. Knows nothing of where the objects come from.

/// One object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name in the root (no `/`).
    pub name: String,
    /// Length in bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch (UTC).
    pub modified: u64,
}

/// What the session may ask of the caller about objects. Sans-IO: the
/// caller answers from what it already holds (the origin's index).
pub trait Catalog {
    /// The object of that name in the root, if any.
    fn get(&self, name: &str) -> Option<Entry>;
    /// All objects in the root.
    fn list(&self) -> Vec<Entry>;
}

/// A catalog that is a vector: tests, fuzzing and small fixed indexes.
impl Catalog for Vec<Entry> {
    fn get(&self, name: &str) -> Option<Entry> {
        self.iter().find(|e| e.name == name).cloned()
    }
    fn list(&self) -> Vec<Entry> {
        self.clone()
    }
}

/// Resolves a client path against the single root: `/a`, `a` and `./a`
/// name object `a`; anything with another directory component does not
/// exist here.
pub fn object_name(path: &str) -> Option<&str> {
    let p = path.trim_start_matches('/');
    let p = p.strip_prefix("./").unwrap_or(p);
    if p.is_empty() || p.contains('/') || p == "." || p == ".." {
        None
    } else {
        Some(p)
    }
}

/// Names that cannot be sent on a control or listing line (CR, LF, NUL)
/// are left out of listings rather than mangled.
fn listable(e: &Entry) -> bool {
    !e.name.is_empty() && !e.name.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// `ls -l` style, the format clients parse for LIST.
pub fn list_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut out = String::new();
    for e in entries.iter().filter(|e| listable(e)) {
        let (y, m, d, _, _, _) = civil(e.modified);
        out.push_str(&format!(
            "-r--r--r--   1 ftp      ftp      {:>12} {} {:>2} {:>5} {}\r\n",
            e.size,
            MONTHS[(m - 1) as usize],
            d,
            y,
            e.name
        ));
    }
    out.into_bytes()
}

/// Bare names for NLST.
pub fn nlst_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut out = String::new();
    for e in entries.iter().filter(|e| listable(e)) {
        out.push_str(&e.name);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// MLSD facts lines: `type=file;size=N;modify=T; name`.
pub fn mlsd_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut out = String::new();
    for e in entries.iter().filter(|e| listable(e)) {
        out.push_str(&format!(
            "type=file;size={};modify={};perm=r; {}\r\n",
            e.size,
            time_val(e.modified),
            e.name
        ));
    }
    out.into_bytes()
}

/// RFC 3659 time-val: `YYYYMMDDHHMMSS`, UTC.
pub fn time_val(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Civil UTC date and time of a Unix time (days-from-civil inverse,
/// H. Hinnant's algorithm), without a date crate.
fn civil(unix: u64) -> (u64, u64, u64, u64, u64, u64) {
    // Clamp to year 9999 so the time-val keeps four year digits.
    let unix = unix.min(253_402_300_799);
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}
