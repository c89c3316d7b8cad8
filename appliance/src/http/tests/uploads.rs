//! Uploads (POST, PUT).

use super::*;

// ---- uploads (POST, PUT) ----

pub(super) fn upload_head(method: &str, path: &str, len: usize, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-test\r\nContent-Length: {len}\r\n{extra}\r\n"
    )
}

/// The checkpoint of an upload (as a survivor reads it from the segment).
pub(super) fn upload_checkpoint(
    method: Method,
    url: &str,
    state: crate::http::upload::UploadState,
) -> ResponseCheckpoint {
    ResponseCheckpoint {
        object_start_seq: SeqNum(0),
        status: 0,
        method,
        minor: 1,
        url: url.into(),
        etag: None,
        last_modified: None,
        range: None,
        persistent: true,
        request_count: 1,
        body_offset: 0,
        body_len: None,
        upload: Some(state),
    }
}

/// A spool file name no other test uses.
pub(super) fn spool_name(tag: &str) -> String {
    format!("test-{tag}-{}", std::process::id())
}

pub(super) fn spooled(name: &str) -> bool {
    crate::spool::Spool::shared_private().path(name).exists()
}

#[test]
fn an_upload_reaches_the_origin_whole_and_its_answer_comes_back() {
    let h = Harness::new();
    let mut c = h.conn();
    let name = spool_name("whole");
    c.s.set_conn_name(Some(name.clone()));
    let body = pattern(100_000);
    let head = upload_head("POST", "/up", body.len(), "");
    c.send(&head);
    for piece in body.chunks(7_000) {
        c.send_bytes(piece);
        c.drain(64 * 1024);
    }
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 201);
    assert_eq!(r[0].body, upload_answer(&body, 1).as_bytes());
    let ups = h.origin.uploads();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].0, "POST /up");
    assert!(ups[0].1 == body, "the origin got other bytes");
    assert!(h.origin.requests()[0].contains("Content-Type: application/x-test"));
    // Checkpointed as the body came, each one covering exactly the bytes
    // spooled, the last one saying the origin has it.
    let states: Vec<_> = c
        .commits
        .iter()
        .filter_map(|cp| cp.upload.clone())
        .collect();
    assert!(states.len() >= 15, "one checkpoint per piece at least");
    assert!(states.windows(2).all(|w| w[0].received <= w[1].received));
    let last = states.last().unwrap();
    assert_eq!((last.received, last.forwarded), (100_000, true));
    assert_eq!(
        last.body_start_seq,
        SeqNum(CLIENT_ISN.wrapping_add(1 + head.len() as u32))
    );
    assert_eq!(
        last.covered_seq(),
        SeqNum(CLIENT_ISN.wrapping_add(1 + (head.len() + body.len()) as u32)),
        "the checkpoint covers head and body"
    );
    assert!(!spooled(&name), "the spool file is removed once answered");
    assert_eq!(c.s.should_close(), None, "keep-alive goes on");
}

#[test]
fn an_upload_taken_over_mid_body_is_finished_by_the_survivor() {
    let h = Harness::new();
    let body = pattern(50_000);
    let name = spool_name("takeover");
    let mut c = h.conn();
    c.s.set_conn_name(Some(name.clone()));
    c.send(&upload_head("PUT", "/doc", body.len(), ""));
    c.send_bytes(&body[..20_000]);
    c.drain(64 * 1024);
    let cp = c.commits.last().cloned().expect("an upload checkpoint");
    assert_eq!(cp.upload.as_ref().map(|u| u.received), Some(20_000));
    // The box writes more to its spool, then dies before its next
    // checkpoint: the survivor must not trust those bytes.
    c.send_bytes(&body[20_000..30_000]);
    drop(c);
    assert!(spooled(&name));

    let (ctx, rx) = h.worker(Limits::default());
    let s = HttpSession::resume(
        Arc::clone(&ctx),
        &cp,
        SeqNum(1000),
        Some(name.clone()),
        Instant::now(),
    );
    let mut r = Conn::new(s, rx);
    r.client_seq = cp.upload.as_ref().unwrap().covered_seq().0;
    r.drain(64 * 1024);
    r.send_bytes(&body[20_000..]);
    r.run();
    let resp = responses(&r.out, &[]);
    assert_eq!(resp.len(), 1);
    assert_eq!(resp[0].status, 201);
    assert_eq!(resp[0].body, upload_answer(&body, 1).as_bytes());
    let ups = h.origin.uploads();
    assert_eq!(ups.len(), 1, "the origin got the upload once");
    assert!(ups[0].1 == body, "the origin got other bytes");
    assert_eq!(ctx.counters.snapshot().uploads_resumed, 1);
    assert!(!spooled(&name));
}

#[test]
fn a_post_the_origin_may_have_is_not_sent_again_after_a_takeover_but_a_put_is() {
    let h = Harness::new();
    let body = pattern(3_000);
    for (method, expect_status, expect_uploads) in [("POST", 502, 0), ("PUT", 201, 1)] {
        let name = spool_name(&format!("forwarded-{method}"));
        let mut spool = crate::spool::Spool::shared_private().create(&name).unwrap();
        spool.append(&body).unwrap();
        let cp = upload_checkpoint(
            if method == "POST" {
                Method::Post
            } else {
                Method::Put
            },
            &format!("/{method}"),
            crate::http::upload::UploadState {
                body_start_seq: SeqNum(7),
                content_length: body.len() as u64,
                received: body.len() as u64,
                forwarded: true,
                content_type: None,
            },
        );
        let (ctx, rx) = h.worker(Limits::default());
        let s = HttpSession::resume(ctx, &cp, SeqNum(1000), Some(name.clone()), Instant::now());
        let mut r = Conn::new(s, rx);
        r.run();
        let resp = responses(&r.out, &[]);
        assert_eq!(resp[0].status, expect_status, "{method}");
        let sent = h
            .origin
            .uploads()
            .iter()
            .filter(|(m, _)| m.starts_with(method))
            .count();
        assert_eq!(sent, expect_uploads, "{method} sent to the origin again?");
        assert!(!spooled(&name), "{method}: spool file left behind");
    }
}

#[test]
fn the_origins_error_answer_to_an_upload_is_passed_through() {
    let h = Harness::new();
    h.origin.set_fault("/fail", Fault::Status(507));
    let mut c = h.conn();
    c.send(&upload_head("POST", "/fail", 4, ""));
    c.send_bytes(b"data");
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(r[0].status, 507, "the origin's verdict, not a 502");
    assert_eq!(r[0].body, FAULT_BODY.as_bytes());
}

#[test]
fn oversized_and_chunked_uploads_are_refused_before_any_byte_is_kept() {
    let h = Harness::new();
    let mut c = h.conn_with(small_limits());
    c.send(&upload_head("POST", "/big", 1001, ""));
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(r[0].status, 413);
    assert_eq!(c.s.should_close(), Some(Close::Graceful));
    let mut c = h.conn();
    c.send(
        "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    c.run();
    assert_eq!(responses(&c.out, &[])[0].status, 411);
    assert!(h.origin.uploads().is_empty());
}

#[test]
fn expect_100_continue_gets_the_interim_answer_then_the_origins() {
    let h = Harness::new();
    let mut c = h.conn();
    c.send(&upload_head("POST", "/e", 5, "Expect: 100-continue\r\n"));
    c.drain(64 * 1024);
    assert_eq!(c.text(), "HTTP/1.1 100 Continue\r\n\r\n");
    assert!(c.cps.is_empty(), "an interim answer is no response");
    c.send_bytes(b"hello");
    c.run();
    let rest = &c.out["HTTP/1.1 100 Continue\r\n\r\n".len()..];
    let r = responses(rest, &[]);
    assert_eq!(r[0].status, 201);
    assert_eq!(h.origin.uploads()[0].1, b"hello");
}

#[test]
fn a_stalled_upload_is_answered_408_and_its_spool_removed() {
    let h = Harness::new();
    let mut limits = small_limits();
    limits.idle_timeout = Duration::from_millis(50);
    let mut c = h.conn_with(limits);
    let name = spool_name("stalled");
    c.s.set_conn_name(Some(name.clone()));
    c.send(&upload_head("POST", "/s", 100, ""));
    c.send_bytes(b"only a little");
    c.drain(64 * 1024);
    assert!(spooled(&name));
    let due = c.s.poll_timeout().expect("a stalled body has a deadline");
    c.s.on_timeout(due + Duration::from_millis(1));
    c.run();
    assert_eq!(responses(&c.out, &[])[0].status, 408);
    assert_eq!(c.s.should_close(), Some(Close::Graceful));
    assert!(!spooled(&name));
    assert!(h.origin.uploads().is_empty());
}

#[test]
fn an_upload_checkpoint_covers_only_bytes_the_spool_writer_answered() {
    let h = Harness::new();
    let (ctx, _rx) = h.worker(Limits::default());
    let mut s = HttpSession::new(ctx, Instant::now());
    let name = spool_name("answered");
    s.set_conn_name(Some(name.clone()));
    let head = upload_head("PUT", "/a", 10, "");
    s.on_bytes_at(head.as_bytes(), Some(SeqNum(100)), Instant::now());
    s.on_bytes(b"0123456789", Instant::now());
    let _ = s.poll_send(1000, Instant::now());
    let writes: Vec<_> = s.spool_writes().collect();
    assert_eq!(writes.len(), 2, "create, then one append");
    // Nothing answered yet: the checkpoint (which, with ack_after_commit,
    // is what acknowledges) covers no body byte.
    let _ = s.take_commit_due();
    assert_eq!(
        s.checkpoint()
            .and_then(|c| c.upload.as_ref().map(|u| u.received)),
        Some(0)
    );
    assert_eq!(
        s.poll_send(1000, Instant::now()),
        None,
        "not forwarded before it is spooled"
    );
    let mut files = super::spool_writer::SpoolFiles::new(crate::spool::Spool::shared_private());
    let mut writes = writes.into_iter();
    let created = files.apply(writes.next().unwrap());
    s.on_spooled(&created, Instant::now());
    assert!(!s.take_commit_due(), "a created file covers nothing new");
    let appended = files.apply(writes.next().unwrap());
    s.on_spooled(&appended, Instant::now());
    assert!(
        s.take_commit_due(),
        "spooled bytes are checkpointed at once"
    );
    let u = s.checkpoint().and_then(|c| c.upload.clone()).unwrap();
    assert_eq!(u.received, 10);
    assert_eq!(u.covered_seq(), SeqNum(100) + (head.len() + 10) as u32);
    s.discard_upload();
    for w in s.spool_writes().collect::<Vec<_>>() {
        files.apply(w);
    }
    assert!(!spooled(&name));
}
