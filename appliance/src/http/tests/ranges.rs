//! Ranges and conditionals, and how the origin's behaviour reaches clients.

use super::*;

// ---- ranges and conditionals ----

pub(super) fn ranged(h: &Harness, header: &str) -> Resp {
    let mut c = h.conn();
    c.send(&get_with("/r", header));
    c.run();
    responses(&c.out, &[]).remove(0)
}

#[test]
fn single_ranges_get_206_with_content_range() {
    let h = Harness::new();
    let body = pattern(1000);
    h.store.put("/r", body.clone());
    let r = ranged(&h, "Range: bytes=100-199");
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), Some("bytes 100-199/1000"));
    assert_eq!(r.body, &body[100..200]);
    let r = ranged(&h, "Range: bytes=900-");
    assert_eq!(r.h("content-range"), Some("bytes 900-999/1000"));
    assert_eq!(r.body, &body[900..]);
    let r = ranged(&h, "Range: bytes=-500");
    assert_eq!(r.h("content-range"), Some("bytes 500-999/1000"));
    assert_eq!(r.body, &body[500..]);
    let r = ranged(&h, "Range: bytes=990-5000");
    assert_eq!(r.body, &body[990..]);
}

#[test]
fn range_beyond_the_end_gets_416_with_the_length() {
    let h = Harness::new();
    h.store.put("/r", pattern(1000));
    let r = ranged(&h, "Range: bytes=1000-");
    assert_eq!(r.status, 416);
    assert_eq!(r.h("content-range"), Some("bytes */1000"));
    assert!(r.body.is_empty());
}

#[test]
fn several_ranges_get_the_whole_object() {
    let h = Harness::new();
    h.store.put("/r", pattern(1000));
    let r = ranged(&h, "Range: bytes=0-1,5-6");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1000);
}

#[test]
fn if_range_with_an_old_etag_gets_the_whole_object() {
    let h = Harness::new();
    h.store.put("/r", pattern(1000));
    let r = ranged(&h, "Range: bytes=0-9\r\nIf-Range: \"old\"");
    assert_eq!(r.status, 200);
    let r = ranged(&h, "Range: bytes=0-9\r\nIf-Range: \"v1\"");
    assert_eq!(r.status, 206);
}

#[test]
fn matching_validators_get_304_without_a_body() {
    let h = Harness::new();
    h.store.put("/r", pattern(1000));
    let r = ranged(&h, "If-None-Match: \"v1\"");
    assert_eq!(r.status, 304);
    assert_eq!(r.h("etag"), Some("\"v1\""));
    assert!(r.h("content-length").is_none());
    let r = ranged(&h, "If-None-Match: \"other\"");
    assert_eq!(r.status, 200);
}

#[test]
fn failed_if_match_or_if_unmodified_since_gets_412_before_anything_else() {
    let h = Harness::new();
    h.store.put("/r", pattern(1000));
    let r = ranged(&h, "If-Match: \"other\"\r\nRange: bytes=0-9");
    assert_eq!(r.status, 412);
    assert!(r.body.is_empty());
    let r = ranged(&h, "If-Match: \"v1\"\r\nRange: bytes=0-9");
    assert_eq!(r.status, 206);
    let r = ranged(&h, "If-Unmodified-Since: Wed, 31 Dec 2025 00:00:00 GMT");
    assert_eq!(r.status, 412);
    let r = ranged(&h, &format!("If-Unmodified-Since: {LAST_MODIFIED}"));
    assert_eq!(r.status, 200);
}

#[test]
fn if_modified_since_at_or_after_last_modified_gets_304() {
    let h = Harness::new();
    h.store.put("/r", pattern(10));
    // The test origin's Last-Modified is LAST_MODIFIED.
    let r = ranged(&h, &format!("If-Modified-Since: {LAST_MODIFIED}"));
    assert_eq!(r.status, 304);
    let r = ranged(&h, "If-Modified-Since: Wed, 31 Dec 2025 00:00:00 GMT");
    assert_eq!(r.status, 200);
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let r = ranged(
        &h,
        &format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {LAST_MODIFIED}"),
    );
    assert_eq!(r.status, 200);
}

// ---- origin behaviour seen by clients ----

#[test]
fn body_is_sliced_from_the_cached_chunks_without_copying() {
    let h = Harness::new();
    h.store.put("/z", pattern(100_000));
    let mut c = h.conn();
    c.send(&get("/z"));
    c.run();
    c.send(&get("/z"));
    c.run();
    let object = h.cache.peek("/z").expect("stored");
    let chunks = object.body().expect("complete").chunks().to_vec();
    let within = |p: *const u8| {
        chunks
            .iter()
            .any(|c| (c.as_ptr() as usize..c.as_ptr() as usize + c.len()).contains(&(p as usize)))
    };
    let body_pieces: Vec<_> = c
        .pieces
        .iter()
        .filter(|p| !p.starts_with(b"HTTP/1.1"))
        .collect();
    assert!(!body_pieces.is_empty());
    assert!(body_pieces.iter().all(|p| within(p.as_ptr())));
}

#[test]
fn large_object_flows_before_the_origin_has_sent_it_all() {
    let h = Harness::new();
    h.store.put("/big", pattern(2_000_000));
    h.origin.set_fault("/big", Fault::Hold(300_000));
    let mut c = h.conn();
    c.send(&get("/big"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.out.len() < 300_000 {
        c.drain(64 * 1024);
        assert!(Instant::now() < deadline, "first bytes never came");
        if let Ok(p) = c.rx.recv_timeout(Duration::from_millis(100)) {
            c.s.on_object_progress(p.object);
        }
    }
    assert!(c.text().starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(
        c.s.poll_send(65536, Instant::now()),
        None,
        "waits for the origin"
    );
    assert!(c.s.waiting_on().is_some());
    h.origin.release();
    c.run();
    assert!(
        responses(&c.out, &[])[0].body == pattern(2_000_000),
        "bytes differ"
    );
}

#[test]
fn two_sessions_missing_the_same_object_share_one_fetch() {
    let h = Harness::new();
    h.store.put("/s", pattern(500_000));
    h.origin.set_fault("/s", Fault::Hold(1000));
    let mut a = h.conn();
    let mut b = h.conn();
    a.send(&get("/s"));
    b.send(&get("/s"));
    a.drain(65536);
    b.drain(65536);
    h.origin.release();
    a.run();
    b.run();
    assert!(
        responses(&a.out, &[])[0].body == pattern(500_000),
        "bytes differ"
    );
    assert!(
        responses(&b.out, &[])[0].body == pattern(500_000),
        "bytes differ"
    );
    assert_eq!(h.origin.requests_for("/s"), 1);
}

#[test]
fn origin_errors_become_502_or_504_and_do_not_poison_the_cache() {
    let h = Harness::with_timeout(Duration::from_millis(200));
    h.store.put("/x", pattern(100));
    h.origin.set_fault("/x", Fault::Status(500));
    h.store.put("/hang", pattern(100));
    h.origin.set_fault("/hang", Fault::Hang);
    let mut c = h.conn();
    c.send(&get("/x"));
    c.run();
    c.send(&get("/hang"));
    c.run();
    h.origin.clear_fault("/x");
    c.send(&get("/x"));
    c.run();
    let r = responses(&c.out, &[]);
    let statuses: Vec<u16> = r.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 504, 200]);
    assert_eq!(r[2].body, pattern(100));
    assert_eq!(
        c.s.should_close(),
        None,
        "the box keeps serving this client"
    );
}

#[test]
fn object_failing_mid_body_resets_the_connection() {
    let h = Harness::new();
    h.store.put("/t", pattern(100_000));
    h.origin.set_fault("/t", Fault::Truncate(5000));
    let mut c = h.conn();
    c.send(&get("/t"));
    c.run();
    assert!(c.text().starts_with("HTTP/1.1 200 OK"));
    assert_eq!(c.s.should_close(), Some(Close::Reset));
}
