//! Requests, keep-alive and pipelining, and the limits that protect the box.

use super::*;

// ---- requests, keep-alive, pipelining ----

#[test]
fn miss_then_hit_on_one_keep_alive_connection_return_the_same_bytes() {
    let h = Harness::new();
    h.store.put("/a", pattern(200_000));
    let mut c = h.conn();
    c.send(&get("/a"));
    c.run();
    c.send(&get("/a"));
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(r.len(), 2);
    for resp in &r {
        assert_eq!(resp.status, 200);
        assert!(resp.body == pattern(200_000), "bytes differ");
        assert_eq!(resp.h("etag"), Some("\"v1\""));
        assert_eq!(resp.h("accept-ranges"), Some("bytes"));
    }
    assert_eq!(r[0].h("date"), r[1].h("date"), "the origin's Date, kept");
    assert_eq!(h.origin.requests_for("/a"), 1);
    assert_eq!(c.s.should_close(), None);
    assert_eq!(c.s.request_count(), 2);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let h = Harness::new();
    h.store.put("/a", pattern(3000));
    h.store.put("/b", pattern(10));
    let mut c = h.conn();
    c.send(&format!(
        "{}{}HEAD /a HTTP/1.1\r\nHost: t\r\n\r\n{}",
        get("/b"),
        get("/a"),
        get("/nothing")
    ));
    c.run();
    let r = responses(&c.out, &[false, false, true, false]);
    let statuses: Vec<u16> = r.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 404]);
    assert_eq!(r[0].body, pattern(10));
    assert!(r[1].body == pattern(3000), "bytes differ");
    assert_eq!(r[2].h("content-length"), Some("3000"));
    assert!(r[2].body.is_empty());
    assert_eq!(
        r[3].body,
        NOT_FOUND_BODY.as_bytes(),
        "origin 404 passed through"
    );
}

#[test]
fn request_split_across_many_reads_is_reassembled() {
    let h = Harness::new();
    h.store.put("/a", pattern(10));
    let mut c = h.conn();
    for b in get("/a").bytes() {
        c.s.on_bytes(&[b], Instant::now());
    }
    c.run();
    assert!(
        responses(&c.out, &[])[0].body == pattern(10),
        "bytes differ"
    );
}

#[test]
fn http10_closes_after_one_response_unless_keep_alive() {
    let h = Harness::new();
    h.store.put("/a", pattern(10));
    let mut c = h.conn();
    c.send("GET /a HTTP/1.0\r\n\r\n");
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(r[0].h("connection"), Some("close"));
    assert_eq!(c.s.should_close(), Some(Close::Graceful));

    let mut k = h.conn();
    k.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    k.run();
    let r = responses(&k.out, &[]);
    assert_eq!(r[0].h("connection"), Some("keep-alive"));
    assert_eq!(k.s.should_close(), None);
}

#[test]
fn connection_close_is_honoured_and_later_pipelined_requests_ignored() {
    let h = Harness::new();
    h.store.put("/a", pattern(10));
    let mut c = h.conn();
    c.send(&format!(
        "GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n{}",
        get("/a")
    ));
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].h("connection"), Some("close"));
    assert_eq!(c.s.should_close(), Some(Close::Graceful));
}

#[test]
fn client_half_close_still_gets_its_answers_then_fin() {
    let h = Harness::new();
    h.store.put("/a", pattern(10));
    let mut c = h.conn();
    c.send(&get("/a"));
    c.s.on_eof();
    assert_eq!(c.s.should_close(), None, "an answer is owed");
    c.run();
    assert_eq!(responses(&c.out, &[])[0].status, 200);
    assert_eq!(c.s.should_close(), Some(Close::Graceful));
}

// ---- limits ----

pub(super) fn small_limits() -> Limits {
    Limits {
        max_request_line: 100,
        max_header_bytes: 200,
        idle_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(5),
        max_upload_bytes: 1000,
    }
}

#[test]
fn oversized_and_malformed_requests_get_their_status_then_close() {
    let h = Harness::new();
    for (req, status) in [
        (format!("GET /{} HTTP/1.1\r\n", "x".repeat(200)), 414),
        (
            format!("GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n", "y".repeat(300)),
            431,
        ),
        ("\x16\x03\x01 garbage\r\n\r\n".to_string(), 400),
        // RFC 9112 §6.1: a transfer coding the box does not implement.
        (
            "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: foo\r\n\r\n".to_string(),
            501,
        ),
        // RFC 9112 §6.3: both framings (request smuggling), a length that
        // only a lenient number parser reads, a folded line.
        (
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_string(),
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc".to_string(),
            400,
        ),
        (
            "GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n 2\r\n\r\n".to_string(),
            400,
        ),
    ] {
        let mut c = h.conn_with(small_limits());
        c.send(&req);
        c.run();
        let r = responses(&c.out, &[]);
        assert_eq!(r.len(), 1, "{req:?}");
        assert_eq!(r[0].status, status);
        assert_eq!(r[0].h("connection"), Some("close"));
        assert_eq!(c.s.should_close(), Some(Close::Graceful));
        // Further input is ignored.
        c.send(&get("/a"));
        assert_eq!(c.drain(1 << 16), 0);
    }
}

#[test]
fn refusals_are_counted_by_kind() {
    let h = Harness::new();
    let (ctx, rx) = h.worker(small_limits());
    for req in [
        format!("GET /{} HTTP/1.1\r\n", "x".repeat(200)),
        "BREW / HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        "nonsense\r\n\r\n".to_string(),
    ] {
        let mut c = Conn::new(
            HttpSession::new(Arc::clone(&ctx), Instant::now()),
            rx.clone(),
        );
        c.send(&req);
        c.run();
    }
    let s = ctx.counters.snapshot();
    assert_eq!(
        (s.uri_too_long, s.method_not_allowed, s.bad_request),
        (1, 1, 1)
    );
    assert_eq!(s.responses_4xx, 3);
}

#[test]
fn other_methods_get_405_with_allow_and_the_connection_goes_on() {
    let h = Harness::new();
    h.store.put("/a", pattern(10));
    let mut c = h.conn();
    c.send(&format!(
        "DELETE /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello{}",
        get("/a")
    ));
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(r[0].status, 405);
    assert_eq!(r[0].h("allow"), Some("GET, HEAD, POST, PUT"));
    assert_eq!(r[1].status, 200, "the DELETE body was skipped, not parsed");
    assert_eq!(
        h.origin.requests().len(),
        1,
        "nothing but the GET reached the origin"
    );
}

#[test]
fn slow_request_gets_408_and_idle_connection_is_closed_silently() {
    let h = Harness::new();
    let limits = Limits {
        request_timeout: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let mut c = h.conn_with(limits);
    let t0 = Instant::now();
    c.s.on_bytes(b"GET / HT", t0);
    let due = c.s.poll_timeout().expect("slow-request timer");
    assert_eq!(due, t0 + Duration::from_millis(100));
    c.s.on_timeout(t0 + Duration::from_millis(50));
    assert_eq!(c.drain(4096), 0, "not yet");
    c.s.on_timeout(due);
    c.run();
    assert_eq!(responses(&c.out, &[])[0].status, 408);
    assert_eq!(c.s.should_close(), Some(Close::Graceful));

    let mut idle = h.conn_with(limits);
    let due = idle.s.poll_timeout().expect("idle timer");
    idle.s.on_timeout(due);
    assert_eq!(idle.drain(4096), 0, "closed without an answer");
    assert_eq!(idle.s.should_close(), Some(Close::Graceful));
}

#[test]
fn blank_lines_trickled_before_a_request_get_408_at_the_head_deadline() {
    // RFC 9112 §2.2 asks a server to ignore "at least one empty line
    // (CRLF) received prior to the request-line"; ignored, they still
    // count toward the head's deadline (slowloris with blank lines).
    let h = Harness::new();
    let limits = Limits {
        request_timeout: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (ctx, rx) = h.worker(limits);
    let t0 = Instant::now();
    let mut c = Conn::new(HttpSession::new(Arc::clone(&ctx), t0), rx);
    for i in 0..5u32 {
        c.s.on_bytes(b"\r\n", t0 + Duration::from_millis(20) * i);
        c.s.on_timeout(t0 + Duration::from_millis(20) * i);
    }
    let due = c.s.poll_timeout().expect("head timer");
    assert_eq!(
        due,
        t0 + Duration::from_millis(100),
        "from the first blank line"
    );
    c.s.on_timeout(due);
    c.run();
    assert_eq!(responses(&c.out, &[])[0].status, 408);
    assert_eq!(c.s.should_close(), Some(Close::Graceful));
    assert_eq!(ctx.counters.snapshot().request_timeouts, 1);
}

#[test]
fn a_get_body_trickled_after_the_answer_gets_408_at_the_head_deadline() {
    // RFC 9112 §6.3: the body of a GET is read (and dropped here) by its
    // Content-Length; it must arrive as a head must, or the connection
    // would be held one byte per idle timeout (slow body).
    let h = Harness::new();
    h.store.put("/a", pattern(10));
    let limits = Limits {
        request_timeout: Duration::from_millis(100),
        idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let mut c = h.conn_with(limits);
    c.send("GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
    c.run();
    assert_eq!(responses(&c.out, &[])[0].status, 200);
    let due = c.s.poll_timeout().expect("body timer");
    assert!(
        due <= Instant::now() + Duration::from_millis(100),
        "the head deadline, not the 30 s idle one"
    );
    c.s.on_timeout(due);
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].status, 408);
    assert_eq!(c.s.should_close(), Some(Close::Graceful));

    // The whole body in time: the connection goes on, no timer but idle.
    let mut c = h.conn_with(limits);
    c.send("GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    c.run();
    let due = c.s.poll_timeout().expect("idle timer");
    assert!(due > Instant::now() + Duration::from_secs(20), "idle");
}

#[test]
fn connection_cap_answers_503() {
    let h = Harness::new();
    let (tx, _rx) = crossbeam_channel::unbounded();
    let n = Arc::new(Notifier::new(0, tx, Arc::new(NoWake)));
    let ctx = WorkerContext::new(Arc::clone(&h.cache), n, Limits::default(), 1);
    let first = HttpSession::accept(&ctx, Instant::now()).expect("under the cap");
    let refused = HttpSession::accept(&ctx, Instant::now()).expect_err("at the cap");
    assert!(refused.starts_with(b"HTTP/1.1 503 "));
    drop(first);
    assert!(
        HttpSession::accept(&ctx, Instant::now()).is_ok(),
        "a slot came free"
    );
}
