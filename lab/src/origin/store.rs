//! Where the origin's objects come from: the [`Store`] trait, which maps a
//! request target to an [`Entry`] (length, validators, body), and its two
//! kinds — [`Dir`], the files of one folder (the lab's origin process), and
//! [`Memory`], objects a test puts in and changes while the origin runs.
//!
//! A store only says what an object is; what to answer is
//! [`plan`](crate::origin::plan)'s decision and sending it is `conn`'s. It
//! must not know sockets or HTTP rules.
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::origin::plan::{file_etag, resolve};

/// The `Last-Modified` of every [`Memory`] object, as the origin sends it.
pub const LAST_MODIFIED: &str = "Thu, 01 Jan 2026 00:00:00 GMT";

/// [`LAST_MODIFIED`] as a time: 2026-01-01T00:00:00Z.
const MEMORY_MTIME_SECS: u64 = 1_767_225_600;

/// The entity tag a [`Memory`] object has until [`Memory::set_etag`].
pub const DEFAULT_ETAG: &str = "\"v1\"";

/// One object as the origin serves it.
#[derive(Debug)]
pub struct Entry {
    /// Length of the body in bytes.
    pub len: u64,
    /// Strong entity tag, quotes included.
    pub etag: String,
    /// When it last changed (sent as `Last-Modified`).
    pub last_modified: SystemTime,
    /// A `Cache-Control` value to send, if any.
    pub cache_control: Option<String>,
    /// The bytes.
    pub body: Body,
}

/// Where an entry's bytes are.
#[derive(Debug)]
pub enum Body {
    /// An open file, streamed from disk (sendfile through `io::copy`).
    File(File),
    /// Bytes in memory, shared with the store.
    Bytes(Arc<Vec<u8>>),
}

/// Maps a request target to the object it names.
pub trait Store: Send + Sync + 'static {
    /// The object at `target` (the request line's target), or None: 404.
    fn lookup(&self, target: &str) -> Option<Entry>;
}

/// The files under one folder; targets that could leave it are refused.
/// Validators come from the file: `ETag` "mtime-size" in hex as nginx
/// makes them, `Last-Modified` its mtime.
#[derive(Debug, Clone)]
pub struct Dir(pub PathBuf);

impl Store for Dir {
    fn lookup(&self, target: &str) -> Option<Entry> {
        let path = resolve(&self.0, target)?;
        let file = File::open(path).ok()?;
        let m = file.metadata().ok()?;
        if !m.is_file() {
            return None;
        }
        let mtime = m.modified().unwrap_or(UNIX_EPOCH);
        Some(Entry {
            len: m.len(),
            etag: file_etag(mtime, m.len()),
            last_modified: mtime,
            cache_control: None,
            body: Body::File(file),
        })
    }
}

/// One object of a [`Memory`] store.
#[derive(Debug, Clone)]
struct Object {
    body: Arc<Vec<u8>>,
    etag: String,
    cache_control: Option<String>,
}

/// Objects held in memory, keyed by the exact request target. Cloning
/// gives another handle on the same objects, so a test keeps one and
/// changes them while an origin serves the other.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    objects: Arc<Mutex<HashMap<String, Object>>>,
}

impl Memory {
    fn objects(&self) -> std::sync::MutexGuard<'_, HashMap<String, Object>> {
        // A panicking test thread cannot leave the map half-changed: every
        // change is one insert or one field store.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `body` at `target` with [`DEFAULT_ETAG`], [`LAST_MODIFIED`]
    /// and no `Cache-Control`, replacing what was there.
    pub fn put(&self, target: &str, body: Vec<u8>) {
        self.objects().insert(
            target.to_string(),
            Object {
                body: Arc::new(body),
                etag: DEFAULT_ETAG.to_string(),
                cache_control: None,
            },
        );
    }

    /// Gives the object at `target` another entity tag (a new version for
    /// validators; the bytes stay). Does nothing if there is none.
    pub fn set_etag(&self, target: &str, etag: &str) {
        if let Some(o) = self.objects().get_mut(target) {
            o.etag = etag.to_string();
        }
    }

    /// Sends `Cache-Control: value` with the object at `target`.
    pub fn set_cache_control(&self, target: &str, value: &str) {
        if let Some(o) = self.objects().get_mut(target) {
            o.cache_control = Some(value.to_string());
        }
    }
}

impl Store for Memory {
    fn lookup(&self, target: &str) -> Option<Entry> {
        let o = self.objects().get(target).cloned()?;
        Some(Entry {
            len: o.body.len() as u64,
            etag: o.etag,
            last_modified: UNIX_EPOCH + Duration::from_secs(MEMORY_MTIME_SECS),
            cache_control: o.cache_control,
            body: Body::Bytes(o.body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_objects_carry_the_documented_validators() {
        let m = Memory::default();
        m.put("/a", vec![1, 2, 3]);
        let e = m.lookup("/a").unwrap();
        assert_eq!(httpdate::fmt_http_date(e.last_modified), LAST_MODIFIED);
        assert_eq!((e.len, e.etag.as_str()), (3, DEFAULT_ETAG));
        m.set_etag("/a", "\"v2\"");
        m.set_cache_control("/a", "max-age=0");
        let e = m.lookup("/a").unwrap();
        assert_eq!(e.etag, "\"v2\"");
        assert_eq!(e.cache_control.as_deref(), Some("max-age=0"));
        assert!(m.lookup("/b").is_none());
    }
}
