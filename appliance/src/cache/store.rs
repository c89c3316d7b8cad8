//! The object index: URL → object, an LRU over stored objects, the memory
//! budget, coalescing of concurrent misses, purge, optional disk spill, and
//! the counters.
//!
//! The index is shared by every worker behind one mutex, taken once per
//! request lookup (O(1): a hash probe and an LRU touch), never per packet;
//! bodies are read without it (see [`super::object`]). Only complete 200
//! answers that RFC 9111 §3 allows to be stored count against the budget;
//! an object still filling is pinned (not evictable) and shared by every
//! session that asks for it meanwhile, so concurrent misses make one origin
//! request. An object larger than the whole budget is served to those who
//! asked and then forgotten.
//!
//! Memory limits (SECURITY.md): bytes of objects still filling count
//! against the same budget ([`super::budget`]: evict, then pass-through and
//! paced fills), and at most `max_fetches` fills are queued or running: a
//! miss beyond that is refused ([`FetchQueueFull`], a 503 for the client).
//!
//! The index knows objects, fetch jobs and the disk directory; it knows
//! nothing of sessions or connections.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crossbeam_channel::Sender;
use sha2::{Digest, Sha256};

use super::budget::FillAccount;
use super::error::FetchError;
use super::fetch::{FetchJob, FetchKind, FetchReport, FetcherPool, Origin, UploadRequest};
use super::lru::{Handle, Lru};
use super::object::{Object, ObjectId, ObjectMeta};

/// Cache sizing, from the `[cache]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Memory budget for stored bodies, bytes.
    pub memory_bytes: u64,
    /// Where evicted objects are spilled, if anywhere. The directory is
    /// scratch space for this process: its index lives in memory.
    pub disk_dir: Option<PathBuf>,
    /// Fills (origin fetches, disk loads) queued or running at once; a
    /// miss beyond it is refused.
    pub max_fetches: usize,
}

impl CacheSettings {
    /// From the `[cache]` section.
    pub fn from_config(c: &baton_config::CacheConfig) -> CacheSettings {
        CacheSettings {
            memory_bytes: c.memory_bytes,
            disk_dir: c.disk_dir.clone(),
            max_fetches: c.max_fetches,
        }
    }
}

/// A miss refused because `max_fetches` fills are queued or running: the
/// client is told to come back (503 with `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the origin fetch queue is full")]
pub struct FetchQueueFull;

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A fresh stored object.
    Hit(Arc<Object>),
    /// An object already being fetched for another request (coalesced).
    Coalesced(Arc<Object>),
    /// A fetch was started for this request (from the origin, or from the
    /// disk directory).
    Miss(Arc<Object>),
}

impl Lookup {
    /// The object to read, whatever the case.
    pub fn object(&self) -> &Arc<Object> {
        match self {
            Lookup::Hit(o) | Lookup::Coalesced(o) | Lookup::Miss(o) => o,
        }
    }
}

/// A snapshot of the cache counters (for the admin API and Prometheus).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups served by a fresh stored object.
    pub hits: u64,
    /// Lookups that started an origin fetch (revalidations excluded).
    pub misses: u64,
    /// Lookups that joined a fetch already running.
    pub coalesced: u64,
    /// Stale objects revalidated with the origin.
    pub revalidations: u64,
    /// Stale copies served because the origin was unreachable.
    pub stale_served: u64,
    /// Objects brought back from the disk directory.
    pub disk_loads: u64,
    /// Objects written to the disk directory.
    pub disk_spills: u64,
    /// Objects evicted from memory to stay under budget.
    pub evictions: u64,
    /// Objects stored since start.
    pub stored: u64,
    /// Objects larger than the whole memory budget (served, then kept on
    /// disk if there is a directory, else forgotten).
    pub too_big: u64,
    /// Fetches failed by timeout (clients got 504).
    pub errors_timeout: u64,
    /// Fetches failed to connect (502).
    pub errors_connect: u64,
    /// Malformed or truncated origin answers (502).
    pub errors_bad_response: u64,
    /// Origin 5xx answers (502).
    pub errors_origin_status: u64,
    /// Other I/O failures (502).
    pub errors_io: u64,
    /// Objects in memory now.
    pub objects: u64,
    /// Body bytes in memory now.
    pub bytes: u64,
    /// Body bytes of objects still filling now (counted in the budget).
    pub filling_bytes: u64,
    /// Fills queued or running now.
    pub fetches_outstanding: u64,
    /// Misses refused because `max_fetches` fills were queued or running.
    pub fetches_refused: u64,
    /// Objects served without being stored because the budget was passed
    /// while they filled.
    pub passthrough: u64,
    /// Pauses of fills the budget held back until a reader caught up.
    pub fills_paced: u64,
    /// Paced fills given up because no reader read for the origin timeout.
    pub fills_abandoned: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    revalidations: AtomicU64,
    stale_served: AtomicU64,
    disk_loads: AtomicU64,
    disk_spills: AtomicU64,
    evictions: AtomicU64,
    stored: AtomicU64,
    too_big: AtomicU64,
    errors_timeout: AtomicU64,
    errors_connect: AtomicU64,
    errors_bad_response: AtomicU64,
    errors_origin_status: AtomicU64,
    errors_io: AtomicU64,
    fetches_refused: AtomicU64,
    passthrough: AtomicU64,
    fills_paced: AtomicU64,
    fills_abandoned: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug)]
enum Entry {
    Filling(Arc<Object>),
    Stored {
        object: Arc<Object>,
        handle: Handle,
        size: u64,
    },
}

#[derive(Debug)]
struct DiskEntry {
    path: PathBuf,
    meta: ObjectMeta,
    ready: bool,
}

#[derive(Debug, Default)]
struct Index {
    map: HashMap<Arc<str>, Entry>,
    lru: Lru<Arc<str>>,
    bytes: u64,
    disk: HashMap<Arc<str>, DiskEntry>,
}

/// The shared object cache (see the module doc).
#[derive(Debug)]
pub struct Cache {
    settings: CacheSettings,
    index: Mutex<Index>,
    jobs: Sender<FetchJob>,
    next_id: AtomicU64,
    counters: Counters,
    /// Ourselves, for the objects' accounts.
    me: Weak<Cache>,
    /// Bytes pushed into objects still filling (their `take_counted`).
    filling: AtomicU64,
    /// Fill jobs queued or running.
    outstanding: AtomicUsize,
}

impl Cache {
    /// A cache whose fetch jobs go to `jobs`.
    pub fn new(settings: CacheSettings, jobs: Sender<FetchJob>) -> Arc<Cache> {
        Arc::new_cyclic(|me| Cache {
            settings,
            index: Mutex::new(Index::default()),
            jobs,
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
            me: me.clone(),
            filling: AtomicU64::new(0),
            outstanding: AtomicUsize::new(0),
        })
    }

    /// A cache with `fetchers` fetcher threads for `origin`.
    pub fn start(
        settings: CacheSettings,
        origin: Origin,
        fetchers: usize,
    ) -> std::io::Result<(Arc<Cache>, FetcherPool)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let cache = Cache::new(settings, tx);
        let report: std::sync::Weak<dyn FetchReport> = Arc::downgrade(&cache) as _;
        let pool = FetcherPool::spawn(fetchers, rx, report, origin)?;
        Ok((cache, pool))
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // Every index mutation keeps it consistent at each step; a panic
        // elsewhere while holding the lock leaves nothing half-done.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_object(&self, url: Arc<str>) -> Arc<Object> {
        let id = ObjectId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let object = Arc::new(Object::new(id, url));
        let account: Weak<dyn FillAccount> = self.me.clone();
        object.set_account(account);
        object
    }

    /// Queues a job; without fetchers the object fails at once (and is
    /// not left in the index).
    fn submit(&self, ix: &mut Index, object: &Arc<Object>, kind: FetchKind) {
        // Every fill job ends in one `on_finished`, which gives this back.
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        let job = FetchJob {
            object: Arc::clone(object),
            kind,
        };
        if self.jobs.send(job).is_err() {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
            object.fail(FetchError::Io("no fetcher running".into()));
            bump(&self.counters.errors_io);
            if let Some(Entry::Filling(o)) = ix.map.get(object.url()) {
                if Arc::ptr_eq(o, object) {
                    ix.map.remove(object.url());
                }
            }
        }
    }

    /// [`Cache::try_lookup`] for tests, which never fill the fetch queue.
    #[cfg(test)]
    pub fn lookup(&self, url: &str, now: Instant) -> Lookup {
        match self.try_lookup(url, now) {
            Ok(l) => l,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    /// Finds the object for `url` (path and query), starting a fetch when
    /// it is missing or stale (conditional, RFC 9111 §4.3.1); refused when
    /// that fetch would pass `max_fetches` (joining a running fill, or a
    /// hit, never is).
    pub fn try_lookup(&self, url: &str, now: Instant) -> Result<Lookup, FetchQueueFull> {
        let mut ix = self.lock();
        let ix = &mut *ix;
        match ix.map.get(url) {
            Some(Entry::Filling(o)) => {
                bump(&self.counters.coalesced);
                return Ok(Lookup::Coalesced(Arc::clone(o)));
            }
            Some(Entry::Stored { object, handle, .. })
                if object.meta().is_some_and(|m| m.fresh_until > now) =>
            {
                let (object, handle) = (Arc::clone(object), *handle);
                ix.lru.touch(handle);
                bump(&self.counters.hits);
                return Ok(Lookup::Hit(object));
            }
            _ => {}
        }
        // Checked before the stale copy is taken out: a refusal changes
        // nothing in the index.
        if self.outstanding.load(Ordering::Relaxed) >= self.settings.max_fetches {
            bump(&self.counters.fetches_refused);
            return Err(FetchQueueFull);
        }
        // Stale or absent.
        let key: Arc<str> = Arc::from(url);
        let stale = match ix.map.remove(url) {
            Some(Entry::Stored {
                object,
                handle,
                size,
            }) => {
                ix.lru.remove(handle);
                ix.bytes -= size;
                Some(object)
            }
            _ => None,
        };
        let object = self.new_object(Arc::clone(&key));
        ix.map
            .insert(Arc::clone(&key), Entry::Filling(Arc::clone(&object)));
        let kind = match (stale, ix.disk.get(url)) {
            (Some(old), _) => {
                bump(&self.counters.revalidations);
                FetchKind::Full {
                    revalidate: Some(old),
                }
            }
            (None, Some(d)) if d.ready && d.meta.fresh_until > now => {
                bump(&self.counters.disk_loads);
                FetchKind::Load {
                    path: d.path.clone(),
                    meta: d.meta.clone(),
                }
            }
            (None, _) => {
                bump(&self.counters.misses);
                FetchKind::Full { revalidate: None }
            }
        };
        self.submit(ix, &object, kind);
        Ok(Lookup::Miss(object))
    }

    /// Any version of `url` in memory (stored, stale or filling), without
    /// counting or fetching: what a resumed response looks for first.
    pub fn peek(&self, url: &str) -> Option<Arc<Object>> {
        match self.lock().map.get(url)? {
            Entry::Filling(o) => Some(Arc::clone(o)),
            Entry::Stored { object, .. } => Some(Arc::clone(object)),
        }
    }

    /// Starts a ranged fetch of `url` from object byte `from` with
    /// `If-Range: if_range`, for a resumed response (RFC 9110 §13.1.5). The
    /// object is private to the caller: not indexed, not stored.
    pub fn fetch_range(&self, url: &str, from: u64, if_range: Option<String>) -> Arc<Object> {
        let object = self.new_object(Arc::from(url));
        let mut ix = self.lock();
        self.submit(&mut ix, &object, FetchKind::Range { from, if_range });
        object
    }

    /// Sends an upload to the origin (POST or PUT with the spooled body);
    /// its answer fills the returned object, which, like a ranged fetch's,
    /// is private to the caller: never indexed, never stored.
    pub fn upload(&self, url: &str, upload: UploadRequest) -> Arc<Object> {
        let object = self.new_object(Arc::from(url));
        let mut ix = self.lock();
        self.submit(&mut ix, &object, FetchKind::Upload(upload));
        object
    }

    /// Drops `url` from memory and disk; an ongoing fetch goes on for the
    /// sessions already waiting but its result is not stored. True if
    /// anything was there.
    pub fn purge(&self, url: &str) -> bool {
        let mut ix = self.lock();
        let mut found = false;
        match ix.map.remove(url) {
            Some(Entry::Stored { handle, size, .. }) => {
                ix.lru.remove(handle);
                ix.bytes -= size;
                found = true;
            }
            Some(Entry::Filling(_)) => found = true,
            None => {}
        }
        if let Some(d) = ix.disk.remove(url) {
            // The file may not be written yet; a later spill of this URL is
            // refused in `spilled` because the entry is gone.
            let _ = std::fs::remove_file(&d.path);
            found = true;
        }
        found
    }

    /// Fetcher: revalidation could not reach the origin and the stale copy
    /// is served (see `fetch::serve_stale`).
    fn on_stale_served(&self, err: &FetchError) {
        self.count_error(err);
        bump(&self.counters.stale_served);
    }

    fn count_error(&self, e: &FetchError) {
        bump(match e {
            FetchError::Timeout => &self.counters.errors_timeout,
            FetchError::Connect(_) => &self.counters.errors_connect,
            FetchError::BadResponse(_) => &self.counters.errors_bad_response,
            FetchError::OriginStatus(_) => &self.counters.errors_origin_status,
            FetchError::Io(_) => &self.counters.errors_io,
        });
    }

    /// Fetcher: a fill ended (`err` is `None` on success). Stores the
    /// object if it may be kept, else forgets it — a failed fetch never
    /// stays in the index.
    fn on_finished(&self, object: &Arc<Object>, err: Option<&FetchError>) {
        if let Some(e) = err {
            self.count_error(e);
        }
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
        let mut ix = self.lock();
        let ix = &mut *ix;
        // Its bytes leave the in-flight count under the index lock, so
        // they are counted once as they become stored (or are dropped).
        self.filling
            .fetch_sub(object.take_counted(), Ordering::Relaxed);
        if object.passthrough() {
            bump(&self.counters.passthrough);
        }
        let key = match ix.map.get_key_value(object.url()) {
            Some((k, Entry::Filling(o))) if Arc::ptr_eq(o, object) => Arc::clone(k),
            // Purged, replaced, or a private ranged fetch: not ours to store.
            _ => return,
        };
        let keep = err.is_none()
            && object.body().is_some()
            && object.meta().is_some_and(|m| m.status == 200 && m.storable);
        let size = object.filled();
        if !keep {
            ix.map.remove(&key);
            return;
        }
        if size > self.settings.memory_bytes {
            // Larger than memory: kept on disk when there is a directory,
            // so the origin is not asked again on every request.
            bump(&self.counters.too_big);
            ix.map.remove(&key);
            self.spill(ix, key, object);
            return;
        }
        if object.passthrough() {
            // Filled past the budget: served to those who asked, not kept.
            ix.map.remove(&key);
            return;
        }
        let handle = ix.lru.push_front(Arc::clone(&key));
        ix.map.insert(
            key,
            Entry::Stored {
                object: Arc::clone(object),
                handle,
                size,
            },
        );
        ix.bytes += size;
        bump(&self.counters.stored);
        self.evict_while_over(ix);
    }

    /// Evicts stored objects, least recently used first, until stored and
    /// filling bytes together fit the budget (or nothing stored is left).
    fn evict_while_over(&self, ix: &mut Index) {
        while ix.bytes + self.filling.load(Ordering::Relaxed) > self.settings.memory_bytes {
            let Some(victim) = ix.lru.pop_back() else {
                break;
            };
            if let Some(Entry::Stored { object, size, .. }) = ix.map.remove(&victim) {
                ix.bytes -= size;
                bump(&self.counters.evictions);
                self.spill(ix, victim, &object);
            }
        }
    }

    /// Queues a write of an evicted object to the disk directory.
    fn spill(&self, ix: &mut Index, url: Arc<str>, object: &Arc<Object>) {
        let (Some(dir), Some(meta)) = (&self.settings.disk_dir, object.meta()) else {
            return;
        };
        if ix.disk.contains_key(&url) {
            return; // already on disk (it was loaded from there)
        }
        let path = dir.join(disk_name(&url));
        ix.disk.insert(
            url,
            DiskEntry {
                path: path.clone(),
                meta: ObjectMeta::clone(meta),
                ready: false,
            },
        );
        let job = FetchJob {
            object: Arc::clone(object),
            kind: FetchKind::Spill { path },
        };
        // No fetcher: the entry simply never becomes ready.
        let _ = self.jobs.send(job);
    }

    /// Fetcher: a spill ended.
    fn on_spilled(&self, object: &Arc<Object>, ok: bool) {
        let mut ix = self.lock();
        if ok {
            bump(&self.counters.disk_spills);
            match ix.disk.get_mut(object.url()) {
                Some(d) => d.ready = true,
                // Purged while being written: remove the file we just made.
                None => {
                    let _ = std::fs::remove_file(self.disk_path(object.url()));
                }
            }
        } else {
            bump(&self.counters.errors_io);
            ix.disk.remove(object.url());
        }
    }

    fn disk_path(&self, url: &str) -> PathBuf {
        self.settings
            .disk_dir
            .clone()
            .unwrap_or_default()
            .join(disk_name(url))
    }

    /// The counters now.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (objects, bytes) = {
            let ix = self.lock();
            (ix.lru.len() as u64, ix.bytes)
        };
        CacheStats {
            hits: get(&c.hits),
            misses: get(&c.misses),
            coalesced: get(&c.coalesced),
            revalidations: get(&c.revalidations),
            stale_served: get(&c.stale_served),
            disk_loads: get(&c.disk_loads),
            disk_spills: get(&c.disk_spills),
            evictions: get(&c.evictions),
            stored: get(&c.stored),
            too_big: get(&c.too_big),
            errors_timeout: get(&c.errors_timeout),
            errors_connect: get(&c.errors_connect),
            errors_bad_response: get(&c.errors_bad_response),
            errors_origin_status: get(&c.errors_origin_status),
            errors_io: get(&c.errors_io),
            objects,
            bytes,
            filling_bytes: self.filling.load(Ordering::Relaxed),
            fetches_outstanding: self.outstanding.load(Ordering::Relaxed) as u64,
            fetches_refused: get(&c.fetches_refused),
            passthrough: get(&c.passthrough),
            fills_paced: get(&c.fills_paced),
            fills_abandoned: get(&c.fills_abandoned),
        }
    }
}

/// Objects filling report their growth here (`super::budget`).
impl FillAccount for Cache {
    fn grew(&self, n: u64) -> bool {
        let filling = self.filling.fetch_add(n, Ordering::Relaxed) + n;
        let limit = self.settings.memory_bytes;
        let mut ix = self.lock();
        if ix.bytes + filling <= limit {
            return false;
        }
        self.evict_while_over(&mut ix);
        ix.bytes + self.filling.load(Ordering::Relaxed) > limit
    }

    fn over(&self) -> bool {
        self.lock().bytes + self.filling.load(Ordering::Relaxed) > self.settings.memory_bytes
    }

    fn paced(&self, abandoned: bool) {
        bump(if abandoned {
            &self.counters.fills_abandoned
        } else {
            &self.counters.fills_paced
        });
    }
}

/// The fetchers' reports land in the index.
impl FetchReport for Cache {
    fn finished(&self, object: &Arc<Object>, err: Option<&FetchError>) {
        self.on_finished(object, err);
    }

    fn spilled(&self, object: &Arc<Object>, ok: bool) {
        self.on_spilled(object, ok);
    }

    fn stale_served(&self, err: &FetchError) {
        self.on_stale_served(err);
    }
}

/// The file name of a URL in the disk directory: its SHA-256 in hex, so any
/// URL maps to a safe, fixed-length name.
fn disk_name(url: &str) -> String {
    Sha256::digest(url.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
