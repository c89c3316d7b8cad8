//! Checkpoints and resumes, what a checkpoint covers, and robustness.

use super::*;
use crate::http::checkpoint::FinishedResponse;

// ---- checkpoints and resume ----

#[test]
fn checkpoint_names_the_sequence_of_the_first_body_byte_across_wraparound() {
    let h = Harness::new();
    h.store.put("/a", pattern(1000));
    let mut c = h.conn();
    c.seq = u32::MAX - 50; // the head straddles the wrap
    c.send(&get("/a"));
    c.run();
    assert_eq!(c.cps.len(), 1);
    let cp = &c.cps[0];
    let head_len = c.out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        cp.object_start_seq,
        SeqNum((u32::MAX - 50).wrapping_add(head_len as u32))
    );
    assert_eq!(
        (cp.status, cp.url.as_str(), cp.etag.as_deref()),
        (200, "/a", Some("\"v1\""))
    );
    assert_eq!((cp.persistent, cp.request_count, cp.range), (true, 1, None));
    assert_eq!(c.s.checkpoint().as_deref(), Some(cp));
}

#[test]
fn checkpoint_is_stamped_even_when_the_head_goes_out_in_pieces() {
    let h = Harness::new();
    h.store.put("/a", pattern(1000));
    let mut c = h.conn();
    c.send(&get_with("/a", "Range: bytes=10-19"));
    // Warm the object so the head is ready, then send 7 bytes at a time.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.s.waiting_on().is_some() && c.out.is_empty() {
        c.drain(7);
        assert!(Instant::now() < deadline);
        let _ = c.rx.recv_timeout(Duration::from_millis(50));
    }
    c.run();
    let head_len = c.out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(c.cps[0].object_start_seq, SeqNum(1000 + head_len as u32));
    assert_eq!(c.cps[0].range, Some((10, 19)));
    assert!(c.out[head_len..] == pattern(1000)[10..20], "bytes differ");
}

/// Runs a first session to completion and returns it with its checkpoint.
pub(super) fn first_response(h: &Harness, req: &str) -> (Conn, ResponseCheckpoint) {
    let mut c = h.conn();
    c.send(req);
    c.run();
    let cp = c.cps.first().expect("checkpoint").clone();
    (c, cp)
}

/// What the client still expects from byte `acked` of the first stream.
pub(super) fn rest_from(c: &Conn, acked_seq: u32) -> Vec<u8> {
    let off = acked_seq.wrapping_sub(1000) as usize;
    c.out[off..].to_vec()
}

pub(super) fn resumed(h: &Harness, cp: &ResponseCheckpoint, acked: u32) -> Conn {
    let (ctx, rx) = h.worker(Limits::default());
    let mut c = Conn::new(
        HttpSession::resume(ctx, cp, SeqNum(acked), None, Instant::now()),
        rx,
    );
    c.run();
    c
}

#[test]
fn resume_from_cache_continues_at_the_acknowledged_byte() {
    let h = Harness::new();
    h.store.put("/big", pattern(300_000));
    let (first, cp) = first_response(&h, &get("/big"));
    let acked = cp.object_start_seq.0.wrapping_add(123_457);
    let r = resumed(&h, &cp, acked);
    assert!(r.out == rest_from(&first, acked), "bytes differ");
    assert!(r.out[..] == pattern(300_000)[123_457..], "bytes differ");
    assert_eq!(
        r.s.should_close(),
        None,
        "keep-alive goes on after the resume"
    );
    assert_eq!(r.s.request_count(), 1);
    assert_eq!(
        h.origin.requests_for("/big"),
        1,
        "served from this box's cache"
    );
}

#[test]
fn resume_with_the_head_partly_unacknowledged_resends_its_tail() {
    let h = Harness::new();
    h.store.put("/big", pattern(5000));
    let (first, cp) = first_response(&h, &get_with("/big", "Range: bytes=100-"));
    let acked = cp.object_start_seq.0.wrapping_sub(20);
    let r = resumed(&h, &cp, acked);
    assert!(r.out == rest_from(&first, acked), "bytes differ");
}

#[test]
fn resume_without_the_object_fetches_the_rest_with_range_and_if_range() {
    let h = Harness::new();
    h.store.put("/big", pattern(300_000));
    let (first, cp) = first_response(&h, &get("/big"));
    assert!(h.cache.purge("/big"), "the survivor lacks the object");
    let acked = cp.object_start_seq.0.wrapping_add(200_000);
    let r = resumed(&h, &cp, acked);
    assert!(r.out == rest_from(&first, acked), "bytes differ");
    let reqs = h.origin.requests();
    let last = reqs.last().unwrap();
    assert!(last.contains("Range: bytes=200000-"), "{last}");
    assert!(last.contains("If-Range: \"v1\""), "{last}");
}

#[test]
fn resume_of_a_changed_object_is_refused_with_a_reset() {
    let h = Harness::new();
    h.store.put("/big", pattern(300_000));
    let (_first, cp) = first_response(&h, &get("/big"));
    h.cache.purge("/big");
    h.store.set_etag("/big", "\"v2\"");
    let r = resumed(&h, &cp, cp.object_start_seq.0.wrapping_add(1000));
    assert!(r.out.is_empty(), "not one byte of the new version");
    assert_eq!(r.s.should_close(), Some(Close::Reset));
}

#[test]
fn resume_after_the_whole_response_was_acknowledged_is_an_idle_connection() {
    let h = Harness::new();
    h.store.put("/a", pattern(100));
    let (_first, cp) = first_response(&h, &get_with("/a", "Range: bytes=0-49"));
    let mut r = resumed(&h, &cp, cp.object_start_seq.0.wrapping_add(50));
    assert!(r.out.is_empty());
    assert_eq!(r.s.should_close(), None);
    r.send(&get("/a"));
    r.run();
    assert!(
        responses(&r.out, &[])[0].body == pattern(100),
        "bytes differ"
    );
}

#[test]
fn resume_of_a_whole_response_the_client_has_needs_neither_cache_nor_origin() {
    let h = Harness::new();
    h.store.put("/a", pattern(100));
    let (_first, cp) = first_response(&h, &get("/a"));
    assert!(h.cache.purge("/a"), "the survivor lacks the object");
    let fetched = h.origin.requests().len();
    let mut r = resumed(&h, &cp, cp.object_start_seq.0.wrapping_add(100));
    assert!(r.out.is_empty());
    assert_eq!(r.s.should_close(), None);
    assert_eq!(
        h.origin.requests().len(),
        fetched,
        "no fetch to send nothing"
    );
    r.send(&get("/a"));
    r.run();
    assert!(
        responses(&r.out, &[])[0].body == pattern(100),
        "bytes differ"
    );
}

/// A range response the client had whole at the kill, recorded as its
/// marker (no URL, no validators, no range): the survivor finishes it
/// without looking for its object, keeps the marker (no heap), and
/// answers the next request.
#[test]
fn resume_of_a_settled_response_finishes_it_from_its_marker() {
    let h = Harness::new();
    h.store.put("/a", pattern(100));
    let (_first, cp) = first_response(&h, &get_with("/a", "Range: bytes=10-59"));
    let end = cp.object_start_seq + 50;
    let marker = FinishedResponse::of(&cp, end).expect("whole").checkpoint();
    let block = marker.to_app_block(50).expect("a marker is always written");
    let back = ResponseCheckpoint::from_app_block(&block);
    let mut r = resumed(&h, &back, end.0);
    assert!(r.out.is_empty());
    assert_eq!(r.s.should_close(), None);
    assert_eq!(r.s.heap_bytes(), 0, "the survivor keeps the marker");
    r.send(&get("/a"));
    r.run();
    assert!(
        responses(&r.out, &[])[0].body == pattern(100),
        "bytes differ"
    );
}

#[test]
fn resume_acknowledged_beyond_the_response_is_refused() {
    let h = Harness::new();
    h.store.put("/a", pattern(100));
    let (_first, cp) = first_response(&h, &get_with("/a", "Range: bytes=0-49"));
    // 60 bytes acknowledged of a 50-byte body: a later response existed.
    let r = resumed(&h, &cp, cp.object_start_seq.0.wrapping_add(60));
    assert!(r.out.is_empty());
    assert_eq!(r.s.should_close(), Some(Close::Reset));
}

#[test]
fn resume_through_the_segment_block_gives_the_same_bytes() {
    let h = Harness::new();
    h.store.put("/big", pattern(100_000));
    let (first, cp) = first_response(&h, &get_with("/big", "Range: bytes=1000-60000"));
    let block = cp.to_app_block(0).expect("a 206 is rebuildable");
    let back = ResponseCheckpoint::from_app_block(&block);
    let acked = cp.object_start_seq.0.wrapping_add(777);
    let r = resumed(&h, &back, acked);
    assert!(r.out == rest_from(&first, acked), "bytes differ");
}

#[test]
fn resume_of_a_response_with_a_long_signed_url_goes_on_through_its_segment_block() {
    let h = Harness::new();
    let url = format!("/big?Expires=1790000000&Signature={}", "s".repeat(1_950));
    h.store.put(&url, pattern(100_000));
    let (first, cp) = first_response(&h, &get(&url));
    let block = cp.to_app_block(0).expect("a 2 KB URL fits the record");
    let back = ResponseCheckpoint::from_app_block(&block);
    assert_eq!(back.url, url);
    h.cache.purge(&url);
    let acked = cp.object_start_seq.0.wrapping_add(40_000);
    let r = resumed(&h, &back, acked);
    assert!(r.out == rest_from(&first, acked), "bytes differ");
    assert_eq!(r.s.should_close(), None);
}

#[test]
fn resume_of_a_404_goes_on_idle_if_the_client_has_it_whole_and_resets_if_not() {
    let h = Harness::new();
    let (first, cp) = first_response(&h, &get("/missing"));
    assert_eq!(cp.status, 404);
    let body = first.out.len() as u32 - cp.object_start_seq.0.wrapping_sub(1000);
    assert_eq!(cp.body_len, Some(u64::from(body)));
    let back = ResponseCheckpoint::from_app_block(&cp.to_app_block(0).expect("every status"));
    let whole = resumed(&h, &back, cp.object_start_seq.0.wrapping_add(body));
    assert_eq!(whole.s.should_close(), None, "the client has it: idle");
    let part = resumed(&h, &back, cp.object_start_seq.0.wrapping_add(body / 2));
    assert!(part.out.is_empty());
    assert_eq!(
        part.s.should_close(),
        Some(Close::Reset),
        "half a 404 cannot be rebuilt: reset, not a stall"
    );
}

#[test]
fn resume_of_a_response_its_box_could_not_record_is_reset_at_once() {
    let h = Harness::new();
    let r = resumed(&h, &ResponseCheckpoint::unrecorded(), 12_345);
    assert!(r.out.is_empty());
    assert_eq!(r.s.should_close(), Some(Close::Reset));
    assert_eq!(h.origin.requests().len(), 0, "nothing asked of the origin");
}

// ---- robustness ----

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    #[test]
    fn arbitrary_bytes_never_panic_the_session(
        chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..8),
        cap in 1usize..5000,
    ) {
        // No fetcher: every lookup fails at once (502), no network used.
        let (tx, rx) = crossbeam_channel::unbounded();
        drop(rx);
        let cache = Cache::new(CacheSettings { memory_bytes: 1 << 20, disk_dir: None, max_fetches: 64 }, tx);
        let (ctx, _rx) = worker_for(&cache, small_limits());
        let mut s = HttpSession::new(ctx, Instant::now());
        let mut prefix = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for c in &chunks {
            prefix.extend_from_slice(c);
            s.on_bytes(c, Instant::now());
            let mut guard = 0;
            while let Some(b) = s.poll_send(cap, Instant::now()) {
                proptest::prop_assert!(b.len() <= cap);
                s.on_sent(SeqNum(guard));
                guard += 1;
                proptest::prop_assert!(guard < 100_000);
            }
        }
        s.on_timeout(Instant::now() + Duration::from_secs(3600));
        s.on_eof();
        while s.poll_send(cap, Instant::now()).is_some() {}
    }

    #[test]
    fn arbitrary_upload_bodies_and_checkpoints_never_panic_the_session(
        len in 0u64..3000,
        chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..700), 0..6),
        method in 0u8..6,
        received in 0u64..4000,
        forwarded in proptest::bool::ANY,
        spool_len in 0usize..4000,
        seq in proptest::num::u32::ANY,
    ) {
        let (tx, rx) = crossbeam_channel::unbounded();
        drop(rx);
        let cache = Cache::new(CacheSettings { memory_bytes: 1 << 20, disk_dir: None, max_fetches: 64 }, tx);
        // A new upload fed arbitrary body bytes (and whatever follows).
        let (ctx, _rx) = worker_for(&cache, small_limits());
        let mut s = HttpSession::new(Arc::clone(&ctx), Instant::now());
        s.on_bytes_at(format!("PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").as_bytes(), Some(SeqNum(seq)), Instant::now());
        for c in &chunks {
            s.on_bytes_at(c, Some(SeqNum(seq)), Instant::now());
            let _ = s.take_commit_due();
            while s.poll_send(1000, Instant::now()).is_some() {}
            let _ = s.take_commit_due();
        }
        s.on_timeout(Instant::now() + Duration::from_secs(3600));
        while s.poll_send(1000, Instant::now()).is_some() {}
        s.discard_upload();
        // A survivor given an arbitrary (validated: received <= length)
        // upload checkpoint and a spool of any length.
        let name = spool_name(&format!("fuzz-{seq}"));
        let mut f = crate::spool::Spool::shared_private().create(&name).unwrap();
        f.append(&vec![1u8; spool_len]).unwrap();
        let cp = upload_checkpoint(
            Method::from_code(method),
            "/p",
            crate::http::upload::UploadState {
                body_start_seq: SeqNum(seq),
                content_length: received.max(len),
                received: received.min(len),
                forwarded,
                content_type: None,
            },
        );
        let mut r = HttpSession::resume(ctx, &cp, SeqNum(seq), Some(name.clone()), Instant::now());
        for c in &chunks {
            r.on_bytes_at(c, Some(SeqNum(seq)), Instant::now());
            let _ = r.take_commit_due();
            while r.poll_send(1000, Instant::now()).is_some() {}
        }
        r.discard_upload();
        let _ = std::fs::remove_file(crate::spool::Spool::shared_private().path(&name));
    }
}

// ---- what a checkpoint covers (issue 13: client bytes acknowledged only then) ----

#[test]
fn a_session_has_answered_all_only_once_each_request_read_has_its_response_started() {
    let h = Harness::new();
    h.store.put("/a", pattern(1_000));
    let mut c = h.conn();
    assert!(c.s.answered_all(), "a new connection owes nothing");
    // Half a request: the bytes must stay unacknowledged.
    c.send_bytes(b"GET /a HTTP/1.1\r\nHo");
    c.drain(64 * 1024);
    assert!(!c.s.answered_all(), "a partial request is not covered");
    // Complete, its object not there yet: no record names it.
    c.send_bytes(b"st: x\r\n\r\n");
    assert!(
        !c.s.answered_all(),
        "a request waiting for its object is not covered"
    );
    c.run();
    assert_eq!(c.cps.len(), 1, "the response start was checkpointed");
    assert!(c.s.answered_all(), "its response started: covered");
    // An answer the box makes up has no checkpoint of its own: covered
    // as soon as it is under way.
    c.send("DELETE /a HTTP/1.1\r\nHost: x\r\n\r\n");
    c.drain(64 * 1024);
    assert!(c.text().contains("405"), "{}", c.text());
    assert!(c.s.answered_all());
    // The client's FIN after all that: covered too.
    c.s.on_eof();
    assert!(c.s.answered_all());
}

/// Requests pipelined behind the one being answered (issue 14, HTTPS):
/// the response's checkpoint covers them without naming them, so
/// `unanswered_input` writes them back, and a survivor that reads them
/// after resuming answers the rest of the first response, then the
/// others, in order and byte-exact.
#[test]
fn pipelined_requests_behind_a_resumed_response_are_answered_in_order_by_a_survivor() {
    let h = Harness::new();
    h.store.put("/big", pattern(300_000));
    h.store.put("/b", pattern(1000));
    h.store.put("/c", pattern(10));
    for path in ["/big", "/b", "/c"] {
        first_response(&h, &get(path));
    }
    let mut c = h.conn();
    assert_eq!(c.s.unanswered_input(), Some(Vec::new()), "nothing waits");
    c.send(&format!(
        "{}{}{}",
        get("/big"),
        get_with("/b", "Range: bytes=10-19"),
        get("/c")
    ));
    // The first response's head and some of its body go out; the box dies.
    let now = Instant::now();
    let mut cp = None;
    while c.out.len() < 50_000 {
        let b = c.s.poll_send(16_384, now).expect("a hit flows");
        cp = cp.or(c.s.on_sent(SeqNum(c.seq)).cloned());
        c.seq = c.seq.wrapping_add(b.len() as u32);
        c.out.extend_from_slice(&b);
    }
    let cp = cp.expect("the first response's checkpoint");
    assert_eq!(cp.url, "/big");
    let pending = c.s.unanswered_input().expect("GETs are written back");
    let text = String::from_utf8_lossy(&pending).to_string();
    assert!(
        text.starts_with("GET /b HTTP/1.1\r\n")
            && text.contains("Range: bytes=10-19\r\n")
            && text.ends_with("GET /c HTTP/1.1\r\nHost: baton.pending\r\n\r\n"),
        "{text}"
    );

    let acked = cp.object_start_seq.0.wrapping_add(20_000);
    let (ctx, rx) = h.worker(Limits::default());
    let mut r = Conn::new(HttpSession::resume(ctx, &cp, SeqNum(acked), None, now), rx);
    r.send_bytes(&pending);
    r.run();
    let rest = 300_000 - 20_000;
    assert!(
        r.out.len() > rest && r.out[..rest] == pattern(300_000)[20_000..],
        "the first body's rest"
    );
    let after = responses(&r.out[rest..], &[]);
    let got: Vec<(u16, &[u8])> = after.iter().map(|x| (x.status, &x.body[..])).collect();
    assert_eq!(
        got,
        [(206, &pattern(1000)[10..20]), (200, &pattern(10)[..])],
        "the pipelined answers, in order"
    );
    assert_eq!(r.s.should_close(), None, "still keep-alive");
}

/// What cannot be written back is said so: a refused request queued.
#[test]
fn unanswered_input_is_none_behind_a_refused_request() {
    let h = Harness::new();
    h.store.put("/big", pattern(300_000));
    first_response(&h, &get("/big"));
    let mut c = h.conn();
    c.send(&format!("{}GET /x HTTP/1.1\r\n\r\n", get("/big")));
    let b = c.s.poll_send(16_384, Instant::now()).expect("a hit");
    assert!(!b.is_empty());
    assert_eq!(c.s.unanswered_input(), None, "a 400 (no Host) is queued");
}
