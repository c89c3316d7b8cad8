//! Cache tests against the lab's origin on loopback, serving objects from
//! memory with faults injected per path: budget and LRU, coalescing, error
//! mapping without poisoning, revalidation, purge, disk spill and ranged
//! resume fetches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::*;
use super::fetch::*;
use super::object::*;
use super::store::*;
use baton_lab::origin::{Fault, Memory, NOT_FOUND_BODY};

/// Deterministic bytes of length `n` (not all equal, so offsets matter).
pub(crate) fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// The lab's origin on loopback over objects held in memory, and those
/// objects.
pub(crate) fn start_origin() -> (baton_lab::origin::Origin, Memory) {
    let store = Memory::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let origin = baton_lab::origin::Origin::start(listener, store.clone()).expect("origin starts");
    (origin, store)
}

fn cache_for(origin: &baton_lab::origin::Origin, budget: u64) -> (Arc<Cache>, FetcherPool) {
    cache_with(origin.addr(), budget, None, Duration::from_secs(2))
}

fn cache_with(
    addr: std::net::SocketAddr,
    budget: u64,
    disk: Option<std::path::PathBuf>,
    timeout: Duration,
) -> (Arc<Cache>, FetcherPool) {
    Cache::start(
        CacheSettings {
            memory_bytes: budget,
            disk_dir: disk,
            max_fetches: 64,
        },
        Origin::new(addr, timeout),
        2,
    )
    .expect("fetchers start")
}

pub(crate) fn wait_finished(o: &Object) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !o.is_finished() {
        assert!(
            Instant::now() < deadline,
            "fill of {} never finished",
            o.url()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn body_of(o: &Object) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match o.read(out.len() as u64, usize::MAX, None) {
            Read::Data(b) => out.extend_from_slice(&b),
            Read::End => return out,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Waits until `f` holds (the index is updated just after an object
/// completes, by the fetcher thread).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn fetch_fully(cache: &Cache, url: &str) -> Lookup {
    let l = cache.lookup(url, Instant::now());
    wait_finished(l.object());
    l
}

#[test]
fn miss_fetches_from_origin_then_hits_without_asking_it_again() {
    let (origin, store) = start_origin();
    store.put("/a", pattern(5000));
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    let l = fetch_fully(&cache, "/a");
    assert!(matches!(l, Lookup::Miss(_)));
    assert!(body_of(l.object()) == pattern(5000), "bytes differ");
    let meta = l.object().meta().unwrap();
    assert_eq!(meta.etag.as_deref(), Some("\"v1\""));
    assert_eq!(meta.length, Some(5000));
    eventually("stored", || cache.stats().objects == 1);
    assert!(matches!(cache.lookup("/a", Instant::now()), Lookup::Hit(_)));
    assert_eq!(origin.requests_for("/a"), 1);
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.bytes), (1, 1, 5000));
}

#[test]
fn least_recently_used_object_is_evicted_to_stay_under_budget() {
    let (origin, store) = start_origin();
    for p in ["/a", "/b", "/c"] {
        store.put(p, pattern(100));
    }
    let (cache, _pool) = cache_for(&origin, 250);
    fetch_fully(&cache, "/a");
    eventually("a stored", || cache.stats().objects == 1);
    fetch_fully(&cache, "/b");
    eventually("b stored", || cache.stats().objects == 2);
    // Touch /a so /b is the least recently used.
    assert!(matches!(cache.lookup("/a", Instant::now()), Lookup::Hit(_)));
    fetch_fully(&cache, "/c");
    eventually("c stored", || cache.stats().stored == 3);
    let s = cache.stats();
    assert_eq!(s.evictions, 1);
    assert_eq!(s.bytes, 200, "never above the 250-byte budget");
    assert!(matches!(cache.lookup("/a", Instant::now()), Lookup::Hit(_)));
    assert!(matches!(cache.lookup("/c", Instant::now()), Lookup::Hit(_)));
    assert!(matches!(
        cache.lookup("/b", Instant::now()),
        Lookup::Miss(_)
    ));
}

#[test]
fn object_larger_than_the_budget_is_served_but_not_stored() {
    let (origin, store) = start_origin();
    store.put("/big", pattern(1000));
    let (cache, _pool) = cache_for(&origin, 500);
    let l = fetch_fully(&cache, "/big");
    assert_eq!(body_of(l.object()).len(), 1000);
    eventually("refused", || cache.stats().too_big == 1);
    assert_eq!(cache.stats().bytes, 0);
}

#[test]
fn concurrent_misses_for_one_url_make_one_origin_request() {
    let (origin, store) = start_origin();
    store.put("/slow", pattern(100_000));
    origin.set_fault("/slow", Fault::Hold(1000));
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    let first = cache.lookup("/slow", Instant::now());
    let second = cache.lookup("/slow", Instant::now());
    assert!(matches!(first, Lookup::Miss(_)));
    assert!(matches!(second, Lookup::Coalesced(_)));
    assert!(Arc::ptr_eq(first.object(), second.object()));
    // The first bytes are readable before the origin has sent the rest.
    eventually("first bytes", || first.object().filled() >= 1000);
    assert!(!first.object().is_finished());
    origin.release();
    wait_finished(first.object());
    assert!(body_of(second.object()) == pattern(100_000), "bytes differ");
    assert_eq!(origin.requests_for("/slow"), 1);
    assert_eq!(cache.stats().coalesced, 1);
}

#[test]
fn refused_origin_fails_with_502_and_the_next_request_tries_again() {
    // A port nobody listens on: bind, note it, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (cache, _pool) = cache_with(addr, 1 << 20, None, Duration::from_secs(1));
    let l = fetch_fully(&cache, "/a");
    let err = l.object().failure().expect("failed");
    assert_eq!(err.client_status(), 502);
    eventually("forgotten", || cache.peek("/a").is_none());
    let again = cache.lookup("/a", Instant::now());
    assert!(matches!(again, Lookup::Miss(_)), "no poisoned entry");
    assert!(!Arc::ptr_eq(again.object(), l.object()));
    wait_finished(again.object());
    assert_eq!(cache.stats().errors_connect, 2);
}

#[test]
fn origin_that_never_answers_times_out_with_504() {
    let (origin, store) = start_origin();
    store.put("/hang", pattern(10));
    origin.set_fault("/hang", Fault::Hang);
    let (cache, _pool) = cache_with(origin.addr(), 1 << 20, None, Duration::from_millis(200));
    let t = Instant::now();
    let l = fetch_fully(&cache, "/hang");
    assert_eq!(l.object().failure().map(|e| e.client_status()), Some(504));
    assert!(t.elapsed() < Duration::from_secs(3));
    eventually("counted", || cache.stats().errors_timeout == 1);
}

#[test]
fn origin_5xx_and_truncated_bodies_fail_with_502_and_are_not_kept() {
    let (origin, store) = start_origin();
    store.put("/e", pattern(10));
    origin.set_fault("/e", Fault::Status(503));
    store.put("/t", pattern(1000));
    origin.set_fault("/t", Fault::Truncate(300));
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    let e = fetch_fully(&cache, "/e");
    assert_eq!(e.object().failure(), Some(FetchError::OriginStatus(503)));
    let t = fetch_fully(&cache, "/t");
    assert!(matches!(
        t.object().failure(),
        Some(FetchError::BadResponse(_))
    ));
    // The bytes that did arrive stay readable for sessions mid-stream.
    assert_eq!(t.object().filled(), 300);
    eventually("both forgotten", || {
        cache.peek("/e").is_none() && cache.peek("/t").is_none()
    });
    // The origin recovers: the next request is served.
    origin.clear_fault("/t");
    let ok = fetch_fully(&cache, "/t");
    assert!(body_of(ok.object()) == pattern(1000), "bytes differ");
}

#[test]
fn not_found_is_passed_through_and_not_stored() {
    let (origin, _store) = start_origin();
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    let l = fetch_fully(&cache, "/missing");
    assert_eq!(l.object().meta().map(|m| m.status), Some(404));
    assert!(
        body_of(l.object()) == NOT_FOUND_BODY.as_bytes(),
        "bytes differ"
    );
    eventually("forgotten", || cache.peek("/missing").is_none());
    assert!(matches!(
        cache.lookup("/missing", Instant::now()),
        Lookup::Miss(_)
    ));
}

#[test]
fn stale_object_is_revalidated_and_a_304_reuses_the_stored_body() {
    let (origin, store) = start_origin();
    store.put("/r", pattern(3000));
    store.set_etag("/r", "\"abc\"");
    store.set_cache_control("/r", "max-age=0");
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    let first = fetch_fully(&cache, "/r");
    eventually("stored", || cache.stats().objects == 1);
    let second = fetch_fully(&cache, "/r");
    assert!(matches!(second, Lookup::Miss(_)), "stale: not a hit");
    assert!(body_of(second.object()) == pattern(3000), "bytes differ");
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].contains("If-None-Match: \"abc\""), "{}", reqs[1]);
    // Same memory: the 304 shares the first copy's chunks.
    let a = first.object().body().unwrap();
    let b = second.object().body().unwrap();
    assert_eq!(a.chunks()[0].as_ptr(), b.chunks()[0].as_ptr());
    assert_eq!(cache.stats().revalidations, 1);
}

#[test]
fn purge_forgets_the_object_and_the_next_request_goes_to_the_origin() {
    let (origin, store) = start_origin();
    store.put("/p", pattern(10));
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    fetch_fully(&cache, "/p");
    eventually("stored", || cache.stats().objects == 1);
    assert!(cache.purge("/p"));
    assert!(!cache.purge("/p"));
    assert_eq!(cache.stats().bytes, 0);
    fetch_fully(&cache, "/p");
    assert_eq!(origin.requests_for("/p"), 2);
}

#[test]
fn evicted_object_is_spilled_to_disk_and_read_back_without_the_origin() {
    let dir = std::env::temp_dir().join(format!("baton-cache-spill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(dir.clone());
    let (origin, store) = start_origin();
    store.put("/a", pattern(100));
    store.put("/b", pattern(100));
    let (cache, _pool) = cache_with(
        origin.addr(),
        150,
        Some(dir.clone()),
        Duration::from_secs(2),
    );
    fetch_fully(&cache, "/a");
    eventually("a stored", || cache.stats().objects == 1);
    fetch_fully(&cache, "/b");
    eventually("a spilled", || cache.stats().disk_spills == 1);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let back = fetch_fully(&cache, "/a");
    assert!(body_of(back.object()) == pattern(100), "bytes differ");
    assert_eq!(
        back.object().meta().unwrap().etag.as_deref(),
        Some("\"v1\"")
    );
    assert_eq!(
        origin.requests_for("/a"),
        1,
        "read from disk, not the origin"
    );
    assert_eq!(cache.stats().disk_loads, 1);
    assert!(cache.purge("/a"));
    eventually("file removed", || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .map(|e| e.path().extension().is_none())
                    .unwrap_or(false)
            })
            .count()
            <= 1
    });
}

#[test]
fn range_fetch_with_matching_if_range_returns_the_tail_only() {
    let (origin, store) = start_origin();
    store.put("/big", pattern(10_000));
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    let o = cache.fetch_range("/big", 6000, Some("\"v1\"".into()));
    wait_finished(&o);
    let m = o.meta().unwrap();
    assert_eq!((m.status, m.base, m.length), (206, 6000, Some(10_000)));
    assert!(
        body_of(&o) == pattern(10_000)[6000..].to_vec(),
        "bytes differ"
    );
    let req = &origin.requests()[0];
    assert!(req.contains("Range: bytes=6000-") && req.contains("If-Range: \"v1\""));
    assert!(cache.peek("/big").is_none(), "a resume fetch is private");
}

#[test]
fn range_fetch_with_a_changed_validator_gets_the_new_whole_object() {
    let (origin, store) = start_origin();
    store.put("/big", pattern(10_000));
    store.set_etag("/big", "\"v2\"");
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    let o = cache.fetch_range("/big", 6000, Some("\"v1\"".into()));
    wait_finished(&o);
    let m = o.meta().unwrap();
    assert_eq!((m.status, m.base), (200, 0));
    assert_eq!(m.etag.as_deref(), Some("\"v2\""));
}

#[test]
fn chunked_origin_body_is_decoded_into_the_object() {
    let (origin, store) = start_origin();
    store.put("/c", pattern(100_000));
    origin.set_fault("/c", Fault::Chunked(7000));
    origin.release();
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    let l = fetch_fully(&cache, "/c");
    assert_eq!(l.object().failure(), None);
    assert!(body_of(l.object()) == pattern(100_000), "bytes differ");
    // The length was unknown until the end.
    assert_eq!(l.object().meta().unwrap().length, None);
    eventually("stored", || cache.stats().objects == 1);
}

#[test]
fn close_delimited_origin_body_is_read_to_the_end() {
    let (origin, store) = start_origin();
    store.put("/d", pattern(50_000));
    origin.set_fault("/d", Fault::CloseDelimited);
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    let l = fetch_fully(&cache, "/d");
    assert!(body_of(l.object()) == pattern(50_000), "bytes differ");
}

#[test]
fn unreachable_origin_during_revalidation_serves_the_stale_copy() {
    let (origin, store) = start_origin();
    store.put("/s", pattern(2000));
    store.set_etag("/s", "\"s1\"");
    store.set_cache_control("/s", "max-age=0");
    let (cache, _pool) = cache_with(origin.addr(), 1 << 20, None, Duration::from_millis(200));
    fetch_fully(&cache, "/s");
    eventually("stored", || cache.stats().objects == 1);
    // The origin stops answering (RFC 9111 §4.2.4: disconnected).
    origin.set_fault("/s", Fault::Hang);
    let l = fetch_fully(&cache, "/s");
    assert_eq!(l.object().failure(), None);
    assert!(body_of(l.object()) == pattern(2000), "bytes differ");
    eventually("stored again", || cache.stats().objects == 1);
    let s = cache.stats();
    assert_eq!((s.stale_served, s.errors_timeout), (1, 1));
    // Fresh for a short while: the next request is a hit, not the origin.
    assert!(matches!(cache.lookup("/s", Instant::now()), Lookup::Hit(_)));
}

#[test]
fn origin_error_answer_during_revalidation_is_not_hidden_by_a_stale_copy() {
    let (origin, store) = start_origin();
    store.put("/s", pattern(2000));
    store.set_etag("/s", "\"s1\"");
    store.set_cache_control("/s", "max-age=0");
    let (cache, _pool) = cache_for(&origin, 1 << 20);
    fetch_fully(&cache, "/s");
    eventually("stored", || cache.stats().objects == 1);
    origin.set_fault("/s", Fault::Status(500));
    let l = fetch_fully(&cache, "/s");
    assert_eq!(l.object().failure(), Some(FetchError::OriginStatus(500)));
}

#[test]
fn object_larger_than_memory_goes_to_disk_and_comes_back_from_there() {
    let dir = std::env::temp_dir().join(format!("baton-cache-big-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(dir.clone());
    let (origin, store) = start_origin();
    store.put("/big", pattern(1000));
    let (cache, _pool) = cache_with(origin.addr(), 500, Some(dir), Duration::from_secs(2));
    fetch_fully(&cache, "/big");
    eventually("spilled", || cache.stats().disk_spills == 1);
    let back = fetch_fully(&cache, "/big");
    assert!(body_of(back.object()) == pattern(1000), "bytes differ");
    assert_eq!(origin.requests_for("/big"), 1, "served from disk");
    assert_eq!(cache.stats().bytes, 0, "memory stays under budget");
}
