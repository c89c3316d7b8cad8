//! One cached object: its response metadata and its body as a list of
//! `Bytes` chunks, shared (`Arc`) by every session that reads it and by the
//! fetcher that fills it.
//!
//! An object is created empty by the cache on a miss, then filled by one
//! fetcher thread: first [`Object::set_meta`] (the origin's status and
//! headers), then [`Object::push`] for each chunk as it arrives, then
//! [`Object::complete`] or [`Object::fail`]. Readers (sessions on worker
//! threads) call [`Object::read`] at any time: a session streams a large
//! object to its client while the origin is still sending it. Once
//! complete, the body is frozen into an immutable [`Body`] and read without
//! taking the lock. Sessions that find no bytes yet subscribe their worker's
//! [`Notifier`], which the fetcher pokes on every change.
//!
//! An object knows its bytes and who waits for them, not the index it is in
//! nor who fills it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::Sender;

use super::budget::FillAccount;
use super::error::FetchError;

/// Identifies one object (one fill) for the life of the process; a refetch
/// of the same URL is a new object with a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u64);

/// The response metadata an object was stored with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Origin status: 200 for a cacheable object, 206 for a ranged (resume)
    /// fetch, anything else for a passed-through answer such as 404.
    pub status: u16,
    /// Complete length of the representation, when the origin told it
    /// (Content-Length, or Content-Range's complete-length).
    pub length: Option<u64>,
    /// Object offset of the first byte this object holds: 0, except for a
    /// ranged fetch made to resume a response (RFC 9110 §14.4).
    pub base: u64,
    /// Entity tag (RFC 9110 §8.8.3), verbatim with quotes.
    pub etag: Option<String>,
    /// Last-Modified (RFC 9110 §8.8.2), verbatim.
    pub last_modified: Option<String>,
    /// Content-Type, verbatim.
    pub content_type: Option<String>,
    /// The origin's Date (RFC 9110 §6.6.1), or the fetch time when it sent
    /// none; sent to clients unchanged so a response head is a pure function
    /// of the object (a survivor can rebuild it byte for byte).
    pub date: String,
    /// Until when the object may be served without revalidation
    /// (RFC 9111 §4.2).
    pub fresh_until: Instant,
    /// Whether the cache may keep it (RFC 9111 §3: no `no-store`/`private`).
    pub storable: bool,
}

/// The body of a completed object: immutable chunks with their offsets.
#[derive(Debug, Default)]
pub struct Body {
    chunks: Vec<Bytes>,
    starts: Vec<u64>,
    len: u64,
}

impl Body {
    /// Builds a body from chunks (empty ones are dropped).
    pub fn from_chunks(chunks: impl IntoIterator<Item = Bytes>) -> Body {
        let mut b = Body::default();
        for c in chunks {
            b.append(c);
        }
        b
    }

    fn append(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.starts.push(self.len);
        self.len += chunk.len() as u64;
        self.chunks.push(chunk);
    }

    /// Total bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in order (cheap clones for a refreshed copy).
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// Up to `max` bytes starting at `offset`, as a slice of one chunk
    /// (zero-copy); `None` at or past the end.
    pub fn slice(&self, offset: u64, max: usize) -> Option<Bytes> {
        if offset >= self.len || max == 0 {
            return None;
        }
        // The chunk whose start is the last one <= offset.
        let i = self
            .starts
            .partition_point(|&s| s <= offset)
            .checked_sub(1)?;
        let chunk = self.chunks.get(i)?;
        let from = usize::try_from(offset - self.starts.get(i)?).ok()?;
        let to = chunk.len().min(from.saturating_add(max));
        Some(chunk.slice(from..to))
    }
}

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Bytes at the requested offset (at least one).
    Data(Bytes),
    /// Nothing there yet; the object is still filling (the reader's
    /// notifier, if given, is subscribed).
    Pending,
    /// The offset is at or past the end of a complete object.
    End,
    /// The fill failed before reaching the offset.
    Failed(FetchError),
}

/// Tells a worker that an object it waits for has changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchProgress {
    /// The object that got metadata, bytes, completed or failed.
    pub object: ObjectId,
}

/// Wakes a worker thread from its idle wait (the integrator implements it
/// with an eventfd the worker polls).
pub trait Waker: Send + Sync {
    /// Called by a fetcher thread after it queued a [`FetchProgress`].
    fn wake(&self);
}

/// The dataplane worker's eventfd waker is the one the integrator hands
/// over.
impl Waker for baton_dataplane::worker::Waker {
    fn wake(&self) {
        baton_dataplane::worker::Waker::wake(self);
    }
}

/// A worker's mailbox for fetch progress: a channel plus its waker.
pub struct Notifier {
    worker: usize,
    tx: Sender<FetchProgress>,
    waker: Arc<dyn Waker>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("worker", &self.worker)
            .finish()
    }
}

impl Notifier {
    /// A notifier for worker `worker`, delivering into `tx` then calling
    /// `waker`.
    pub fn new(worker: usize, tx: Sender<FetchProgress>, waker: Arc<dyn Waker>) -> Notifier {
        Notifier { worker, tx, waker }
    }

    fn notify(&self, object: ObjectId) {
        // A worker that has gone away (receiver dropped) simply gets nothing.
        if self.tx.send(FetchProgress { object }).is_ok() {
            self.waker.wake();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Open,
    Complete,
    Failed(FetchError),
}

#[derive(Debug)]
struct Fill {
    body: Body,
    end: End,
    subscribers: Vec<Arc<Notifier>>,
}

/// A cached object (see the module doc for its life).
#[derive(Debug)]
pub struct Object {
    id: ObjectId,
    url: Arc<str>,
    meta: OnceLock<Arc<ObjectMeta>>,
    fill: Mutex<Fill>,
    done: OnceLock<Arc<Body>>,
    /// Where growth is counted (the cache's budget); none for objects
    /// made outside a cache.
    account: OnceLock<Weak<dyn FillAccount>>,
    /// Bytes reported to `account` and not yet taken back.
    counted: AtomicU64,
    /// The furthest object offset any reader has been given.
    read_mark: AtomicU64,
    /// Over the budget: served to its readers, not stored.
    passthrough: AtomicBool,
    /// The head of the answer most requests get (see [`Object::full_head`]).
    full_head: OnceLock<Bytes>,
}

impl Object {
    /// An empty object about to be filled.
    pub fn new(id: ObjectId, url: Arc<str>) -> Object {
        Object {
            id,
            url,
            meta: OnceLock::new(),
            fill: Mutex::new(Fill {
                body: Body::default(),
                end: End::Open,
                subscribers: Vec::new(),
            }),
            done: OnceLock::new(),
            account: OnceLock::new(),
            counted: AtomicU64::new(0),
            read_mark: AtomicU64::new(0),
            passthrough: AtomicBool::new(false),
            full_head: OnceLock::new(),
        }
    }

    /// Counts this object's growth in `account` from now on (set once, by
    /// the cache that made it).
    pub(crate) fn set_account(&self, account: Weak<dyn FillAccount>) {
        let _ = self.account.set(account);
    }

    fn account(&self) -> Option<Arc<dyn FillAccount>> {
        self.account.get().and_then(Weak::upgrade)
    }

    /// Takes back the bytes reported to the account (the fill ended).
    pub(crate) fn take_counted(&self) -> u64 {
        self.counted.swap(0, Ordering::Relaxed)
    }

    /// The furthest object offset any reader has been given.
    pub fn read_mark(&self) -> u64 {
        self.read_mark.load(Ordering::Relaxed)
    }

    /// True when the cache budget was passed while this object filled: it
    /// is served to those who asked and not stored.
    pub fn passthrough(&self) -> bool {
        self.passthrough.load(Ordering::Relaxed)
    }

    /// Whether the cache this object counts in is over its budget now.
    pub fn over_budget(&self) -> bool {
        self.account().is_some_and(|a| a.over())
    }

    /// The fetcher paced this fill (or gave it up): counted by the cache.
    pub fn paced(&self, abandoned: bool) {
        if let Some(a) = self.account() {
            a.paced(abandoned);
        }
    }

    /// Its id.
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// Its URL (the cache key: path and query).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The metadata, once the origin's response head has arrived.
    pub fn meta(&self) -> Option<&Arc<ObjectMeta>> {
        self.meta.get()
    }

    /// The head of a whole-object 200 answer to an HTTP/1.1 request that
    /// keeps the connection: `make` runs once, later answers share its
    /// bytes (formatting it was ~3 % of a request's CPU). The caller makes
    /// it only from the object's fixed metadata and a known length.
    pub fn full_head(&self, make: impl FnOnce() -> Bytes) -> Bytes {
        self.full_head.get_or_init(make).clone()
    }

    /// The frozen body once complete.
    pub fn body(&self) -> Option<&Arc<Body>> {
        self.done.get()
    }

    /// Bytes received so far.
    pub fn filled(&self) -> u64 {
        match self.done.get() {
            Some(b) => b.len(),
            None => self.lock().body.len(),
        }
    }

    /// The failure, if the fill failed.
    pub fn failure(&self) -> Option<FetchError> {
        match &self.lock().end {
            End::Failed(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// True once complete or failed.
    #[cfg(test)]
    pub fn is_finished(&self) -> bool {
        self.done.get().is_some() || self.lock().end != End::Open
    }

    fn lock(&self) -> MutexGuard<'_, Fill> {
        // A fetcher that panicked mid-push leaves a consistent Fill (every
        // mutation is a single push/assignment), so the data stays usable.
        self.fill.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes `who` to this object's changes unless it is finished;
    /// returns false when finished (nothing more will happen).
    #[cfg(test)]
    pub fn subscribe(&self, who: &Arc<Notifier>) -> bool {
        if self.done.get().is_some() {
            return false;
        }
        let mut f = self.lock();
        if f.end != End::Open {
            return false;
        }
        if !f.subscribers.iter().any(|s| s.worker == who.worker) {
            f.subscribers.push(Arc::clone(who));
        }
        true
    }

    /// Reads up to `max` bytes at body offset `offset` (relative to
    /// `meta.base`). When nothing is there yet and `who` is given, subscribes
    /// it under the same lock, so no progress can be missed between the read
    /// and the subscription.
    pub fn read(&self, offset: u64, max: usize, who: Option<&Arc<Notifier>>) -> Read {
        if let Some(b) = self.done.get() {
            return b.slice(offset, max).map_or(Read::End, Read::Data);
        }
        let mut f = self.lock();
        if let Some(d) = f.body.slice(offset, max) {
            // A paced fill follows its fastest reader (`super::budget`).
            self.read_mark
                .fetch_max(offset + d.len() as u64, Ordering::Relaxed);
            return Read::Data(d);
        }
        match &f.end {
            End::Complete => Read::End,
            End::Failed(e) => Read::Failed(e.clone()),
            End::Open => {
                if let Some(who) = who {
                    if !f.subscribers.iter().any(|s| s.worker == who.worker) {
                        f.subscribers.push(Arc::clone(who));
                    }
                }
                Read::Pending
            }
        }
    }

    /// Reports whether the metadata is there; subscribes `who` if not (same
    /// no-lost-wakeup rule as [`Object::read`]).
    pub fn meta_or_subscribe(&self, who: Option<&Arc<Notifier>>) -> Option<Arc<ObjectMeta>> {
        if let Some(m) = self.meta.get() {
            return Some(Arc::clone(m));
        }
        let mut f = self.lock();
        // Re-check under the lock: set_meta notifies after taking it.
        if let Some(m) = self.meta.get() {
            return Some(Arc::clone(m));
        }
        if f.end == End::Open {
            if let Some(who) = who {
                if !f.subscribers.iter().any(|s| s.worker == who.worker) {
                    f.subscribers.push(Arc::clone(who));
                }
            }
        }
        None
    }

    fn notify_all(&self, finished: bool) {
        let subs = {
            let mut f = self.lock();
            if finished {
                std::mem::take(&mut f.subscribers)
            } else {
                f.subscribers.clone()
            }
        };
        for s in &subs {
            s.notify(self.id);
        }
    }

    /// Fetcher: the origin's response head arrived. Only the first call
    /// counts.
    pub fn set_meta(&self, meta: ObjectMeta) {
        {
            let _f = self.lock();
            let _ = self.meta.set(Arc::new(meta));
        }
        self.notify_all(false);
    }

    /// Fetcher: more body bytes arrived.
    pub fn push(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        let n = chunk.len() as u64;
        {
            let mut f = self.lock();
            if f.end != End::Open {
                return;
            }
            f.body.append(chunk);
        }
        self.notify_all(false);
        // Counted after the fill lock is released: the account takes the
        // index lock, which is always taken before an object's.
        if let Some(a) = self.account() {
            self.counted.fetch_add(n, Ordering::Relaxed);
            if a.grew(n) {
                self.passthrough.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Fetcher: the body is complete; freezes it for lock-free reads.
    pub fn complete(&self) {
        {
            let mut f = self.lock();
            if f.end != End::Open {
                return;
            }
            f.end = End::Complete;
            let body = std::mem::take(&mut f.body);
            let body = Arc::new(body);
            // Keep a copy of the chunk list under the lock for readers that
            // raced the freeze (cheap: Bytes clones).
            f.body = Body::from_chunks(body.chunks().iter().cloned());
            let _ = self.done.set(body);
        }
        self.notify_all(true);
    }

    /// Fetcher: the fill failed; bytes already received stay readable.
    pub fn fail(&self, err: FetchError) {
        {
            let mut f = self.lock();
            if f.end != End::Open {
                return;
            }
            f.end = End::Failed(err);
        }
        self.notify_all(true);
    }

    /// Fails the fill and drops the bytes received so far: nobody read
    /// them for a long while, and a reader that never reads must not keep
    /// them alive (SECURITY.md, "Memory limits"). A reader gets the
    /// failure at its next read, wherever it was.
    pub fn abandon(&self, err: FetchError) {
        {
            let mut f = self.lock();
            if f.end != End::Open {
                return;
            }
            f.end = End::Failed(err);
            f.body = Body::default();
        }
        self.notify_all(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct CountWaker(std::sync::atomic::AtomicUsize);
    impl Waker for CountWaker {
        fn wake(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    pub(crate) fn meta(len: u64) -> ObjectMeta {
        ObjectMeta {
            status: 200,
            length: Some(len),
            base: 0,
            etag: Some("\"e1\"".into()),
            last_modified: None,
            content_type: None,
            date: "Thu, 01 Jan 2026 00:00:00 GMT".into(),
            fresh_until: Instant::now() + Duration::from_secs(60),
            storable: true,
        }
    }

    #[test]
    fn body_slice_stays_within_one_chunk_and_never_copies() {
        let a = Bytes::from_static(b"hello ");
        let b = Bytes::from_static(b"world");
        let body = Body::from_chunks([a.clone(), b.clone()]);
        assert_eq!(body.len(), 11);
        let s = body.slice(3, 100).unwrap();
        assert_eq!(&s[..], b"lo ");
        // Same memory as the chunk: a slice, not a copy.
        assert_eq!(s.as_ptr(), a[3..].as_ptr());
        assert_eq!(&body.slice(6, 2).unwrap()[..], b"wo");
        assert_eq!(&body.slice(10, 2).unwrap()[..], b"d");
        assert_eq!(body.slice(11, 2), None);
    }

    #[test]
    fn reader_waiting_for_bytes_is_woken_by_push_and_completion() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let waker = Arc::new(CountWaker(Default::default()));
        let n = Arc::new(Notifier::new(0, tx, waker.clone()));
        let o = Object::new(ObjectId(7), "/a".into());
        assert_eq!(o.meta_or_subscribe(Some(&n)), None);
        o.set_meta(meta(4));
        assert_eq!(
            rx.try_recv(),
            Ok(FetchProgress {
                object: ObjectId(7)
            })
        );
        assert_eq!(o.read(0, 10, Some(&n)), Read::Pending);
        o.push(Bytes::from_static(b"ab"));
        assert_eq!(
            rx.try_recv(),
            Ok(FetchProgress {
                object: ObjectId(7)
            })
        );
        assert_eq!(
            o.read(0, 10, Some(&n)),
            Read::Data(Bytes::from_static(b"ab"))
        );
        o.push(Bytes::from_static(b"cd"));
        o.complete();
        assert_eq!(o.read(2, 10, None), Read::Data(Bytes::from_static(b"cd")));
        assert_eq!(o.read(4, 10, None), Read::End);
        assert_eq!(waker.0.load(std::sync::atomic::Ordering::SeqCst), 4);
        assert!(
            !o.subscribe(&n),
            "a complete object has nothing left to tell"
        );
    }

    #[test]
    fn failed_fill_keeps_received_bytes_then_reports_failure() {
        let o = Object::new(ObjectId(1), "/a".into());
        o.set_meta(meta(10));
        o.push(Bytes::from_static(b"abc"));
        o.fail(FetchError::Timeout);
        assert_eq!(o.read(0, 10, None), Read::Data(Bytes::from_static(b"abc")));
        assert_eq!(o.read(3, 10, None), Read::Failed(FetchError::Timeout));
    }

    #[test]
    fn an_abandoned_fill_drops_its_bytes_and_reports_the_failure() {
        let o = Object::new(ObjectId(9), Arc::from("/x"));
        o.push(Bytes::from_static(b"0123456789"));
        o.abandon(FetchError::Timeout);
        assert_eq!(o.filled(), 0);
        assert_eq!(o.read(4, 100, None), Read::Failed(FetchError::Timeout));
        // Nothing comes after.
        o.push(Bytes::from_static(b"more"));
        o.complete();
        assert_eq!(o.read(0, 100, None), Read::Failed(FetchError::Timeout));
    }
}
