//! The hit path (speed is measured by the benchmarks, not here).

use super::*;

// ---- the hit path (speed is measured by the benchmarks, not here) ----

#[test]
fn one_session_answers_twenty_thousand_pipelined_hits() {
    let h = Harness::new();
    h.store.put("/1K.bin", pattern(1024));
    let mut c = h.conn();
    c.send(&get("/1K.bin"));
    c.run();
    let req = get("/1K.bin");
    let n = 20_000;
    let t = Instant::now();
    let mut bytes = 0;
    for i in 0..n {
        c.s.on_bytes(req.as_bytes(), t);
        while let Some(b) = c.s.poll_send(1 << 20, t) {
            c.s.on_sent(SeqNum(i));
            bytes += b.len();
        }
    }
    assert!(bytes > n as usize * 1024);
    assert_eq!(c.s.request_count(), n + 1);
    assert_eq!(
        h.origin.requests_for("/1K.bin"),
        1,
        "hits never reach the origin"
    );
}

#[test]
fn a_large_hit_body_is_handed_out_as_slices_of_the_cached_chunks() {
    let h = Harness::new();
    // 50 MB: the harness cache holds 64 MiB.
    let size = 50_000_000;
    h.store.put("/50M.bin", vec![7u8; size]);
    let mut warm = h.conn();
    warm.send(&get("/50M.bin"));
    warm.run();
    let object = h.cache.peek("/50M.bin").expect("cached");
    // The last byte can reach the client a moment before the fetcher
    // marks the object complete.
    let deadline = Instant::now() + Duration::from_secs(5);
    while object.body().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let chunks: Vec<(usize, usize)> = object
        .body()
        .expect("complete")
        .chunks()
        .iter()
        .map(|c| (c.as_ptr() as usize, c.len()))
        .collect();
    let mut c = h.conn();
    c.send(&get("/50M.bin"));
    let t = Instant::now();
    let mut total = 0;
    let mut first = true;
    while let Some(b) = c.s.poll_send(256 * 1024, t) {
        total += b.len();
        if first {
            // The head is the session's own bytes.
            first = false;
            continue;
        }
        let p = b.as_ptr() as usize;
        assert!(
            chunks
                .iter()
                .any(|&(start, len)| p >= start && p + b.len() <= start + len),
            "a body slice was copied"
        );
    }
    assert!(total > size);
}

#[test]
fn worker_on_ready_resumes_a_restored_connection_through_its_transport() {
    let h = Harness::new();
    h.store.put("/big", pattern(200_000));
    let (first, cp) = first_response(&h, &get("/big"));
    let mut w: HttpWorker<u8> = HttpWorker::new(
        Arc::clone(&h.cache),
        1,
        Arc::new(NoWake),
        Limits::default(),
        10,
    );
    let mut t = Recorder::default();
    let acked = cp.object_start_seq.0.wrapping_add(150_000);
    w.on_ready(7, Some(&cp), acked, &[], &mut t, Instant::now());
    assert!(t.sent == rest_from(&first, acked), "bytes differ");
    let s = w.session(7).expect("kept");
    assert_eq!(
        s.checkpoint().as_deref(),
        Some(&cp),
        "the same record goes on"
    );
    assert_eq!(s.app_block().map(|b| b.bytes_sent), Some(200_000));
    assert_eq!(w.context().counters.snapshot().resumed, 1);
}

#[test]
fn resume_of_a_whole_object_the_client_already_holds_is_an_idle_connection_even_from_the_origin() {
    // A slow-reading client's kernel acknowledges the whole body into its
    // receive buffer; the survivor lacks the object, asks the origin for
    // the rest and gets 416 (`bytes */length`): nothing is left to send.
    let h = Harness::new();
    h.store.put("/big", pattern(300_000));
    let (_first, cp) = first_response(&h, &get("/big"));
    assert!(h.cache.purge("/big"), "the survivor lacks the object");
    let mut r = resumed(&h, &cp, cp.object_start_seq.0.wrapping_add(300_000));
    assert!(r.out.is_empty(), "no byte is sent again");
    assert_eq!(r.s.should_close(), None, "no reset: the client has it all");
    r.send(&get("/big"));
    r.run();
    assert!(
        responses(&r.out, &[])[0].body == pattern(300_000),
        "the next request is served"
    );
}

#[test]
fn the_common_head_is_made_once_per_object_and_the_others_as_asked() {
    let h = Harness::new();
    h.store.put("/1K.bin", pattern(1024));
    let mut warm = h.conn();
    warm.send(&get("/1K.bin"));
    warm.run();
    // Two keep-alive GETs on two connections: the same head, the same bytes.
    let head_of = |req: &str| {
        let mut c = h.conn();
        c.send(req);
        c.run();
        let head = c.pieces.first().expect("a head").clone();
        assert!(head.starts_with(b"HTTP/1.1 "), "{head:?}");
        (head, c.text())
    };
    let (a, text) = head_of(&get("/1K.bin"));
    let (b, _) = head_of(&get("/1K.bin"));
    assert_eq!(a, b);
    assert_eq!(
        a.as_ptr(),
        b.as_ptr(),
        "the second head is the first one's bytes"
    );
    assert!(text.contains("Content-Length: 1024\r\n"), "{text}");
    // Heads that differ are not taken from it: a range, a closing request,
    // an HTTP/1.0 one.
    let (r, text) = head_of(&get_with("/1K.bin", "Range: bytes=0-9"));
    assert!(text.starts_with("HTTP/1.1 206 "), "{text}");
    assert_ne!(r.as_ptr(), a.as_ptr());
    let (c, text) = head_of(&get_with("/1K.bin", "Connection: close"));
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert_ne!(c.as_ptr(), a.as_ptr());
    let (d, text) = head_of("GET /1K.bin HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n");
    assert!(text.contains("Connection: keep-alive\r\n"), "{text}");
    assert_ne!(d.as_ptr(), a.as_ptr());
}
