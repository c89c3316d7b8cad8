//! The fetch queue cap as a client sees it: a miss beyond
//! `cache.max_fetches` is answered 503 with `Retry-After`, on a connection
//! that stays open, while a hit or a coalesced request is still served.

use std::sync::Arc;
use std::time::Instant;

use baton_dataplane::tcp::SeqNum;

use super::context::WorkerContext;
use super::request::Limits;
use super::session::HttpSession;
use crate::cache::{Cache, CacheSettings, Notifier, Waker};

struct NoWake;
impl Waker for NoWake {
    fn wake(&self) {}
}

fn session(cache: &Arc<Cache>, now: Instant) -> HttpSession {
    let (tx, _rx) = crossbeam_channel::unbounded();
    let notifier = Arc::new(Notifier::new(0, tx, Arc::new(NoWake)));
    let ctx = WorkerContext::new(Arc::clone(cache), notifier, Limits::default(), 1000);
    HttpSession::new(ctx, now)
}

/// Everything the session has to send now.
fn sent(s: &mut HttpSession, now: Instant) -> String {
    let mut out = Vec::new();
    let mut seq = 1;
    while let Some(b) = s.poll_send(64 * 1024, now) {
        out.extend_from_slice(&b);
        s.on_sent(SeqNum(seq));
        seq += b.len() as u32;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_miss_beyond_the_fetch_queue_cap_is_a_503_with_retry_after_on_a_kept_connection() {
    let now = Instant::now();
    // Jobs pile up in a channel nobody reads: the one allowed fetch stays.
    let (tx, _jobs) = crossbeam_channel::unbounded();
    let settings = CacheSettings {
        memory_bytes: 1 << 20,
        disk_dir: None,
        max_fetches: 1,
    };
    let cache = Cache::new(settings, tx);
    let mut first = session(&cache, now);
    first.on_bytes(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", now);
    assert_eq!(sent(&mut first, now), "", "waiting for the origin");

    let mut second = session(&cache, now);
    second.on_bytes(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", now);
    let answer = sent(&mut second, now);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("\r\nRetry-After: 1\r\n"), "{answer}");
    assert_eq!(
        second.should_close(),
        None,
        "the client may ask again on it"
    );
    // Joining the running fill costs no fetch: not refused.
    let mut third = session(&cache, now);
    third.on_bytes(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", now);
    assert_eq!(sent(&mut third, now), "");
    let s = cache.stats();
    assert_eq!(
        (s.fetches_refused, s.coalesced, s.fetches_outstanding),
        (1, 1, 1)
    );
}
