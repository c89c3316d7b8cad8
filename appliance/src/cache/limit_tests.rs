//! The cache's memory limits: the fetch queue cap, bytes of objects in
//! flight counted in the budget (eviction, then pass-through), and paced
//! fills, against a fake fetcher (a channel nobody reads) or the lab's
//! origin on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::budget::PACE_LAG;
use super::error::FetchError;
use super::fetch::{FetchJob, FetchReport, Origin};
use super::object::{Object, ObjectMeta, Read};
use super::store::{Cache, CacheSettings, FetchQueueFull, Lookup};
use super::tests::{pattern, start_origin, wait_finished};

/// A cache whose fetch jobs pile up in a channel the test holds.
fn fake(
    memory_bytes: u64,
    max_fetches: usize,
) -> (Arc<Cache>, crossbeam_channel::Receiver<FetchJob>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let settings = CacheSettings {
        memory_bytes,
        disk_dir: None,
        max_fetches,
    };
    (Cache::new(settings, tx), rx)
}

fn meta() -> ObjectMeta {
    ObjectMeta {
        status: 200,
        length: None,
        base: 0,
        etag: None,
        last_modified: None,
        content_type: None,
        date: String::new(),
        fresh_until: Instant::now() + Duration::from_secs(3600),
        storable: true,
    }
}

/// What a fetcher does for a whole object: head, `n` bytes, end, report.
fn fill(cache: &Cache, o: &Arc<Object>, n: usize) {
    o.set_meta(meta());
    o.push(Bytes::from(pattern(n)));
    o.complete();
    cache.finished(o, None);
}

#[test]
fn misses_beyond_max_fetches_are_refused_until_a_fetch_ends() {
    let now = Instant::now();
    let (cache, _jobs) = fake(1 << 20, 2);
    let a = cache.try_lookup("/a", now).expect("room");
    cache.try_lookup("/b", now).expect("room");
    assert_eq!(cache.try_lookup("/c", now).err(), Some(FetchQueueFull));
    // Joining a running fill costs no fetch: never refused.
    assert!(matches!(
        cache.try_lookup("/a", now),
        Ok(Lookup::Coalesced(_))
    ));
    let s = cache.stats();
    assert_eq!((s.fetches_outstanding, s.fetches_refused), (2, 1));
    // A fetch ends (failed, here): the next miss gets in.
    a.object().fail(FetchError::Timeout);
    cache.finished(a.object(), Some(&FetchError::Timeout));
    assert!(matches!(cache.try_lookup("/c", now), Ok(Lookup::Miss(_))));
    assert_eq!(cache.stats().fetches_outstanding, 2);
}

#[test]
fn bytes_in_flight_evict_stored_objects_then_make_the_fill_pass_through() {
    let now = Instant::now();
    let (cache, _jobs) = fake(10_000, 8);
    let old = cache.try_lookup("/old", now).expect("room");
    fill(&cache, old.object(), 6000);
    assert_eq!(cache.stats().bytes, 6000);

    let big = cache.try_lookup("/big", now).expect("room");
    let o = Arc::clone(big.object());
    o.set_meta(meta());
    o.push(Bytes::from(pattern(3000)));
    assert_eq!(cache.stats().filling_bytes, 3000);
    assert_eq!(cache.stats().evictions, 0, "6000 + 3000 fit");
    o.push(Bytes::from(pattern(3000)));
    // 12,000 would not fit: the stored object makes room.
    let s = cache.stats();
    assert_eq!((s.bytes, s.filling_bytes, s.evictions), (0, 6000, 1));
    assert!(!o.passthrough() && !o.over_budget());
    o.push(Bytes::from(pattern(6000)));
    // Nothing left to evict: the fill passes the budget and is not kept.
    assert!(o.passthrough() && o.over_budget());
    // Others asking meanwhile still share it (no second fetch).
    assert!(matches!(
        cache.try_lookup("/big", now),
        Ok(Lookup::Coalesced(_))
    ));
    o.complete();
    cache.finished(&o, None);
    let s = cache.stats();
    assert_eq!((s.bytes, s.filling_bytes, s.objects), (0, 0, 0));
    assert_eq!(s.passthrough, 1);
    assert!(!o.over_budget());
    // Its readers still get every byte.
    assert_eq!(o.filled(), 12_000);
    // And the next request fetches it again.
    assert!(matches!(cache.try_lookup("/big", now), Ok(Lookup::Miss(_))));
}

/// Reads `o` to the end as a slow but steady client would.
fn read_all(o: &Object) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    loop {
        match o.read(out.len() as u64, 256 * 1024, None) {
            Read::Data(b) => out.extend_from_slice(&b),
            Read::End => return out,
            Read::Pending => {
                assert!(Instant::now() < deadline, "fill stalled at {}", out.len());
                std::thread::sleep(Duration::from_millis(1));
            }
            Read::Failed(e) => panic!("fill failed at {}: {e}", out.len()),
        }
    }
}

fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn over_the_budget_a_fill_follows_its_reader_and_is_given_up_without_one() {
    let (origin, store) = start_origin();
    let size = 6 * PACE_LAG as usize;
    store.put("/read", pattern(size));
    store.put("/unread", pattern(size));
    let settings = CacheSettings {
        memory_bytes: 1 << 20,
        disk_dir: None,
        max_fetches: 8,
    };
    let timeout = Duration::from_millis(500);
    let (cache, _pool) =
        Cache::start(settings, Origin::new(origin.addr(), timeout), 2).expect("fetchers");

    // Nobody reads: the fill stops about PACE_LAG ahead, then is given up.
    let unread = cache.try_lookup("/unread", Instant::now()).expect("room");
    eventually("paced", || cache.stats().fills_paced >= 1);
    let held = unread.object().filled();
    assert!(
        held <= PACE_LAG + (512 << 10),
        "{held} bytes held for no reader"
    );
    wait_finished(unread.object());
    assert_eq!(unread.object().failure(), Some(FetchError::Timeout));
    assert_eq!(cache.stats().fills_abandoned, 1);

    // A reader that keeps reading gets every byte, and the object is not
    // kept (it passed the budget).
    let read = cache.try_lookup("/read", Instant::now()).expect("room");
    assert!(read_all(read.object()) == pattern(size), "bytes differ");
    eventually("finished", || cache.stats().fetches_outstanding == 0);
    let s = cache.stats();
    assert_eq!((s.objects, s.filling_bytes), (0, 0));
    assert!(s.passthrough >= 2, "{s:?}");
}
