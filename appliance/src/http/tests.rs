//! Session tests: sans-IO, with a simulated TCP sequence counter, against
//! the lab's origin on loopback (`baton_lab::origin`); then the same
//! sessions over real kernel TCP on 127.0.0.1 through a tiny std::net
//! adapter, with curl as the client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::context::WorkerContext;
use super::request::Method;
use super::session::{Close, HttpSession};
use super::worker::{HttpWorker, Transport};
use super::*;
use crate::cache::fetch::FetcherPool;
use crate::cache::tests::{pattern, start_origin};
use crate::cache::{Cache, CacheSettings, FetchProgress, Notifier, Origin, Waker};
use baton_dataplane::tcp::SeqNum;
use baton_lab::origin::{upload_answer, Fault, Memory, FAULT_BODY, LAST_MODIFIED, NOT_FOUND_BODY};

struct NoWake;
impl Waker for NoWake {
    fn wake(&self) {}
}

struct Harness {
    origin: baton_lab::origin::Origin,
    store: Memory,
    cache: Arc<Cache>,
    _pool: FetcherPool,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_timeout(Duration::from_secs(2))
    }

    fn with_timeout(t: Duration) -> Harness {
        let (origin, store) = start_origin();
        let (cache, pool) = Cache::start(
            CacheSettings {
                memory_bytes: 64 << 20,
                disk_dir: None,
                max_fetches: 64,
            },
            Origin::new(origin.addr(), t),
            2,
        )
        .expect("fetchers");
        Harness {
            origin,
            store,
            cache,
            _pool: pool,
        }
    }

    fn worker(&self, limits: Limits) -> (Arc<WorkerContext>, Receiver<FetchProgress>) {
        worker_for(&self.cache, limits)
    }

    fn conn(&self) -> Conn {
        self.conn_with(Limits::default())
    }

    fn conn_with(&self, limits: Limits) -> Conn {
        let (ctx, rx) = self.worker(limits);
        Conn::new(HttpSession::new(ctx, Instant::now()), rx)
    }
}

fn worker_for(cache: &Arc<Cache>, limits: Limits) -> (Arc<WorkerContext>, Receiver<FetchProgress>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let notifier = Arc::new(Notifier::new(0, tx, Arc::new(NoWake)));
    (
        WorkerContext::new(Arc::clone(cache), notifier, limits, 1000),
        rx,
    )
}

/// What a transport with sequence numbers does: tells the session where
/// the bytes sit in the client's sequence space, then gives them.
trait BytesAt {
    fn on_bytes_at(&mut self, data: &[u8], seq: Option<SeqNum>, now: Instant);
}

impl BytesAt for HttpSession {
    fn on_bytes_at(&mut self, data: &[u8], seq: Option<SeqNum>, now: Instant) {
        self.set_input_seq(seq);
        self.on_bytes(data, now);
    }
}

/// A session plus the client's view: the bytes it received and a TCP
/// sequence counter standing in for the send API.
struct Conn {
    s: HttpSession,
    rx: Receiver<FetchProgress>,
    seq: u32,
    out: Vec<u8>,
    pieces: Vec<bytes::Bytes>,
    cps: Vec<ResponseCheckpoint>,
    /// The client's sequence number of its next byte.
    client_seq: u32,
    /// Upload checkpoints the session asked to commit, in order.
    commits: Vec<ResponseCheckpoint>,
    /// The spool writer, done in line.
    spool: super::spool_writer::SpoolFiles,
}

/// The client's initial sequence number in these tests (its first byte
/// is CLIENT_ISN + 1).
const CLIENT_ISN: u32 = 4_294_960_000;

impl Conn {
    fn new(s: HttpSession, rx: Receiver<FetchProgress>) -> Conn {
        Conn {
            s,
            rx,
            seq: 1000,
            out: Vec::new(),
            pieces: Vec::new(),
            cps: Vec::new(),
            client_seq: CLIENT_ISN.wrapping_add(1),
            commits: Vec::new(),
            spool: super::spool_writer::SpoolFiles::new(crate::spool::Spool::shared_private()),
        }
    }

    /// What the worker's spool writer does: the session's file operations,
    /// in order, each answered. True if there were any.
    fn pump_spool(&mut self) -> bool {
        let mut any = false;
        loop {
            let writes: Vec<_> = self.s.spool_writes().collect();
            if writes.is_empty() {
                return any;
            }
            any = true;
            for w in writes {
                let done = self.spool.apply(w);
                self.s.on_spooled(&done, Instant::now());
            }
        }
    }

    fn send(&mut self, req: &str) {
        self.send_bytes(req.as_bytes());
    }

    fn send_bytes(&mut self, b: &[u8]) {
        self.s
            .on_bytes_at(b, Some(SeqNum(self.client_seq)), Instant::now());
        self.client_seq = self.client_seq.wrapping_add(b.len() as u32);
        self.commit();
    }

    /// What the worker does when the session asks: write its checkpoint.
    fn commit(&mut self) -> bool {
        let spooled = self.pump_spool();
        if !self.s.take_commit_due() {
            return spooled;
        }
        if let Some(cp) = self.s.checkpoint() {
            self.commits.push(cp.clone());
        }
        true
    }

    /// Sends whatever the session has now, `cap` bytes at most per piece.
    fn drain(&mut self, cap: usize) -> usize {
        let mut n = 0;
        loop {
            while let Some(b) = self.s.poll_send(cap, Instant::now()) {
                assert!(!b.is_empty() && b.len() <= cap);
                if let Some(cp) = self.s.on_sent(SeqNum(self.seq)) {
                    self.cps.push(cp);
                }
                self.seq = self.seq.wrapping_add(b.len() as u32);
                self.out.extend_from_slice(&b);
                n += b.len();
                self.pieces.push(b);
            }
            if !self.commit() {
                return n;
            }
        }
    }

    /// Drives the session until it has nothing left to do: drains, and
    /// waits for fetch progress while it waits for an object.
    fn run(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.drain(64 * 1024);
            if self.s.waiting_on().is_none() || self.s.should_close().is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "session stuck");
            if let Ok(p) = self.rx.recv_timeout(Duration::from_millis(500)) {
                self.s.on_object_progress(p.object);
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Resp {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Splits a byte stream into responses; `head_requests[i]` says whether
/// the i-th answered a HEAD (no body despite Content-Length).
fn responses(mut out: &[u8], head_requests: &[bool]) -> Vec<Resp> {
    let mut v = Vec::new();
    let mut i = 0;
    while !out.is_empty() {
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut hs);
        let n = match r.parse(out).expect("valid response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial head"),
        };
        let headers: HashMap<String, String> = r
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let status = r.code.unwrap();
        out = &out[n..];
        let len = if head_requests.get(i).copied().unwrap_or(false) || status == 304 {
            0
        } else {
            headers
                .get("content-length")
                .map_or(out.len(), |l| l.parse().unwrap())
        };
        v.push(Resp {
            status,
            headers,
            body: out[..len].to_vec(),
        });
        out = &out[len..];
        i += 1;
    }
    v
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

fn get_with(path: &str, header: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{header}\r\n\r\n")
}

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

fn small_limits() -> Limits {
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

// ---- ranges and conditionals ----

fn ranged(h: &Harness, header: &str) -> Resp {
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
    assert_eq!(c.s.checkpoint(), Some(cp));
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
fn first_response(h: &Harness, req: &str) -> (Conn, ResponseCheckpoint) {
    let mut c = h.conn();
    c.send(req);
    c.run();
    let cp = c.cps.first().expect("checkpoint").clone();
    (c, cp)
}

/// What the client still expects from byte `acked` of the first stream.
fn rest_from(c: &Conn, acked_seq: u32) -> Vec<u8> {
    let off = acked_seq.wrapping_sub(1000) as usize;
    c.out[off..].to_vec()
}

fn resumed(h: &Harness, cp: &ResponseCheckpoint, acked: u32) -> Conn {
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

// ---- over kernel TCP on loopback ----

/// A minimal std::net transport for the [`HttpWorker`] driver: the same
/// driver the dataplane glue uses, over nonblocking kernel sockets, in one
/// thread standing in for a worker.
struct StdConn {
    stream: std::net::TcpStream,
    seq: u32,
    eof: bool,
    eof_told: bool,
    closed: bool,
}

#[derive(Default)]
struct StdTransport {
    conns: HashMap<u64, StdConn>,
    checkpoints: usize,
}

impl Transport for StdTransport {
    type Conn = u64;

    fn recv(&mut self, conn: u64, buf: &mut [u8]) -> usize {
        use std::io::Read;
        let Some(c) = self.conns.get_mut(&conn) else {
            return 0;
        };
        match c.stream.read(buf) {
            Ok(0) => {
                c.eof = true;
                0
            }
            Ok(n) => n,
            Err(_) => 0,
        }
    }

    fn send_capacity(&self, conn: u64) -> usize {
        match self.conns.get(&conn) {
            Some(c) if !c.closed => 256 * 1024,
            _ => 0,
        }
    }

    fn send(&mut self, conn: u64, data: bytes::Bytes) -> Option<u32> {
        use std::io::Write;
        let c = self.conns.get_mut(&conn)?;
        let mut rest = &data[..];
        while !rest.is_empty() {
            match c.stream.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(_) => return None,
            }
        }
        let seq = c.seq;
        c.seq = c.seq.wrapping_add(data.len() as u32);
        Some(seq)
    }

    fn close(&mut self, conn: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            let _ = c.stream.shutdown(std::net::Shutdown::Write);
            c.closed = true;
        }
    }

    fn abort(&mut self, conn: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            c.closed = true;
        }
    }

    fn checkpoint(&mut self, _conn: u64, _cp: &ResponseCheckpoint) {
        self.checkpoints += 1;
    }
}

/// Stops the loopback server when dropped.
struct Server {
    addr: std::net::SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn serve_loopback(cache: Arc<Cache>) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut worker: HttpWorker<u64> =
            HttpWorker::new(cache, 0, Arc::new(NoWake), Limits::default(), 1000);
        let mut t = StdTransport::default();
        let mut next_id = 0u64;
        while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
            let now = Instant::now();
            while let Ok((stream, _)) = listener.accept() {
                stream.set_nonblocking(true).unwrap();
                next_id += 1;
                t.conns.insert(
                    next_id,
                    StdConn {
                        stream,
                        seq: 1,
                        eof: false,
                        eof_told: false,
                        closed: false,
                    },
                );
                worker.on_accept(next_id, &mut t, now);
            }
            let ids: Vec<u64> = t.conns.keys().copied().collect();
            for id in ids {
                worker.on_readable(id, &mut t, now);
                let c = &t.conns[&id];
                if c.eof && !c.eof_told {
                    t.conns.get_mut(&id).unwrap().eof_told = true;
                    worker.on_peer_closed(id, &mut t, now);
                }
                let c = &t.conns[&id];
                if c.eof && c.closed {
                    t.conns.remove(&id);
                    worker.on_closed(id);
                }
            }
            worker.poll(&mut t, now);
            std::thread::sleep(Duration::from_micros(500));
        }
    });
    Server { addr, stop }
}

fn curl(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl must be installed for the loopback tests");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn curl_posts_and_puts_over_loopback_through_the_worker() {
    // The worker driver over kernel sockets: no sequence numbers, no
    // checkpoints; 100-continue from curl for the 2 MB body.
    let h = Harness::new();
    let server = serve_loopback(Arc::clone(&h.cache));
    let body = pattern(2_000_000);
    let file = std::env::temp_dir().join(format!("baton-upload-{}.bin", std::process::id()));
    std::fs::write(&file, &body).unwrap();
    let data = format!("@{}", file.display());
    let url = format!("http://{}/up", server.addr);
    let out = curl(&["--data-binary", &data, "-w", " %{http_code}", &url]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{} 201", upload_answer(&body, 1))
    );
    let out = curl(&[
        "-T",
        &file.display().to_string(),
        "-w",
        " %{http_code}",
        &url,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{} 201", upload_answer(&body, 2))
    );
    let ups = h.origin.uploads();
    assert_eq!(ups.len(), 2);
    assert!(ups[0].0 == "POST /up" && ups[1].0 == "PUT /up");
    assert!(
        ups[0].1 == body && ups[1].1 == body,
        "the origin got other bytes"
    );
    let _ = std::fs::remove_file(file);
}

#[test]
fn curl_over_loopback_gets_identical_bytes_ranges_and_304() {
    let h = Harness::new();
    let body = pattern(3_000_000);
    h.store.put("/3M.bin", body.clone());
    let server = serve_loopback(Arc::clone(&h.cache));
    let url = format!("http://{}/3M.bin", server.addr);
    // Two downloads on one keep-alive connection: a miss, then a hit.
    let out = curl(&[&url, "-o", "/dev/stdout", &url, "-o", "/dev/stdout"]);
    assert_eq!(out.stdout.len(), 2 * body.len());
    assert!(out.stdout[..body.len()] == body[..] && out.stdout[body.len()..] == body[..]);
    let r = curl(&["-r", "1000-1999", &url]);
    assert_eq!(r.stdout, &body[1000..2000]);
    let code = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "If-None-Match: \"v1\"",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&code.stdout), "304");
    let head = curl(&["-I", &url]);
    let text = String::from_utf8_lossy(&head.stdout);
    assert!(text.contains("Content-Length: 3000000"), "{text}");
    assert_eq!(h.origin.requests_for("/3M.bin"), 1);
}

#[test]
fn many_keep_alive_requests_over_loopback_all_succeed() {
    use std::io::{Read, Write};
    let h = Harness::new();
    h.store.put("/1K.bin", pattern(1024));
    let server = serve_loopback(Arc::clone(&h.cache));
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    let n = 500;
    // Pipelined in batches of 10, as ab -k or wrk would keep the line busy.
    let mut buf = vec![0u8; 65536];
    for batch in 1..=n / 10 {
        let reqs: String = (0..10).map(|_| get("/1K.bin")).collect();
        s.write_all(reqs.as_bytes()).unwrap();
        while responses_complete(&all) < batch * 10 {
            let k = s.read(&mut buf).unwrap();
            assert!(k > 0, "server closed");
            all.extend_from_slice(&buf[..k]);
        }
    }
    let r = responses(&all, &[]);
    assert_eq!(r.len(), n);
    assert!(r.iter().all(|r| r.status == 200 && r.body == pattern(1024)));
}

/// How many complete 1K responses the stream holds.
fn responses_complete(all: &[u8]) -> usize {
    let mut count = 0;
    let mut rest = all;
    loop {
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            return count;
        };
        if rest.len() < end + 4 + 1024 {
            return count;
        }
        rest = &rest[end + 4 + 1024..];
        count += 1;
    }
}

#[test]
fn garbage_over_loopback_gets_400_and_other_clients_are_still_served() {
    use std::io::{Read, Write};
    let h = Harness::new();
    h.store.put("/1K.bin", pattern(1024));
    let server = serve_loopback(Arc::clone(&h.cache));
    for (req, status) in [
        (
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec(),
            "400",
        ),
        (
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000)).into_bytes(),
            "414",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
                "c".repeat(20_000)
            )
            .into_bytes(),
            "431",
        ),
    ] {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&req).unwrap();
        let mut answer = Vec::new();
        // The box answers, then closes: read to EOF.
        let _ = s.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
    }
    let url = format!("http://{}/1K.bin", server.addr);
    assert_eq!(curl(&[&url]).stdout, pattern(1024));
}

#[test]
fn origin_down_over_loopback_gives_502_and_the_box_keeps_serving() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (cache, _pool) = Cache::start(
        CacheSettings {
            memory_bytes: 1 << 20,
            disk_dir: None,
            max_fetches: 64,
        },
        Origin::new(closed_port, Duration::from_secs(1)),
        1,
    )
    .unwrap();
    let server = serve_loopback(cache);
    let url = format!("http://{}/1K.bin", server.addr);
    for _ in 0..3 {
        let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "502");
    }
}

#[test]
fn parallel_curl_downloads_of_one_slow_object_make_one_origin_request() {
    let h = Harness::new();
    let body = pattern(1_500_000);
    h.store.put("/slow.bin", body.clone());
    h.origin.set_fault("/slow.bin", Fault::Hold(100_000));
    let server = serve_loopback(Arc::clone(&h.cache));
    let url = format!("http://{}/slow.bin", server.addr);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || curl(&[&url]).stdout)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    h.origin.release();
    for c in clients {
        assert!(
            c.join().unwrap() == body,
            "every client gets the whole object"
        );
    }
    assert_eq!(h.origin.requests_for("/slow.bin"), 1);
}

/// A transport that records what the driver does, for timer tests.
#[derive(Default)]
struct Recorder {
    closed: Vec<u8>,
    sent: Vec<u8>,
}

impl Transport for Recorder {
    type Conn = u8;
    fn recv(&mut self, _: u8, _: &mut [u8]) -> usize {
        0
    }
    fn send_capacity(&self, _: u8) -> usize {
        1 << 20
    }
    fn send(&mut self, _: u8, data: bytes::Bytes) -> Option<u32> {
        self.sent.extend_from_slice(&data);
        Some(0)
    }
    fn close(&mut self, conn: u8) {
        self.closed.push(conn);
    }
    fn abort(&mut self, _: u8) {}
}

#[test]
fn worker_closes_idle_connections_when_their_timer_is_due() {
    let h = Harness::new();
    let limits = Limits {
        idle_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let mut w: HttpWorker<u8> =
        HttpWorker::new(Arc::clone(&h.cache), 0, Arc::new(NoWake), limits, 10);
    let mut t = Recorder::default();
    let t0 = Instant::now();
    w.on_accept(1, &mut t, t0);
    w.on_accept(2, &mut t, t0 + Duration::from_millis(60));
    w.poll(&mut t, t0 + Duration::from_millis(99));
    assert!(t.closed.is_empty());
    w.poll(&mut t, t0 + Duration::from_millis(100));
    assert_eq!(t.closed, [1]);
    w.poll(&mut t, t0 + Duration::from_millis(200));
    assert_eq!(t.closed, [1, 2]);
    assert!(t.sent.is_empty(), "an idle close says nothing");
    assert_eq!(w.context().counters.snapshot().idle_timeouts, 2);
}

#[test]
fn object_of_unknown_length_is_sent_close_delimited_then_with_a_length_once_stored() {
    let h = Harness::new();
    h.store.put("/c", pattern(30_000));
    h.origin.set_fault("/c", Fault::Chunked(4096));
    let mut c = h.conn();
    c.send(&get("/c"));
    // The head goes out while the origin still holds the rest back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.out.is_empty() {
        c.drain(1 << 16);
        assert!(Instant::now() < deadline, "no head");
        let _ = c.rx.recv_timeout(Duration::from_millis(20));
    }
    h.origin.release();
    c.run();
    let r = responses(&c.out, &[]);
    assert!(r[0].body == pattern(30_000), "body differs");
    assert_eq!(
        r[0].h("connection"),
        Some("close"),
        "the end of the body is the close"
    );
    assert!(r[0].h("content-length").is_none());
    assert_eq!(c.s.should_close(), Some(Close::Graceful));

    let mut again = h.conn();
    again.send(&get_with("/c", "Range: bytes=-100"));
    again.run();
    let r = responses(&again.out, &[]);
    assert_eq!(r[0].status, 206);
    assert_eq!(r[0].h("content-range"), Some("bytes 29900-29999/30000"));
    assert_eq!(again.s.should_close(), None, "known length: keep-alive");
}

/// nginx serving a folder on 127.0.0.1, stopped (by its pid) when dropped.
struct Nginx {
    child: std::process::Child,
    dir: std::path::PathBuf,
    addr: std::net::SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: nginx's master then stops its worker before
        // exiting, where a killed master would leave the worker orphaned.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the pid of a child we spawned and have not
            // reaped yet; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_nginx(files: &[(&str, &[u8])]) -> Nginx {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("baton-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    for d in [&dir, &dir.join("www")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for (name, data) in files {
        std::fs::write(dir.join("www").join(name), data).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = format!(
        "worker_processes 1;\nerror_log {d}/logs/error.log;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off;\n\
         client_body_temp_path {d}/cb; proxy_temp_path {d}/pt; fastcgi_temp_path {d}/ft;\n\
         uwsgi_temp_path {d}/ut; scgi_temp_path {d}/st;\n\
         server {{ listen 127.0.0.1:{port}; root {d}/www; }} }}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = std::process::Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx must be installed for the nginx-origin test");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let n = Nginx { child, dir, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    n
}

#[test]
fn nginx_as_origin_fills_the_cache_and_a_resume_uses_range_with_if_range() {
    let body = pattern(1_000_000);
    let nginx = start_nginx(&[("1M.bin", &body)]);
    let (cache, _pool) = Cache::start(
        CacheSettings {
            memory_bytes: 8 << 20,
            disk_dir: None,
            max_fetches: 64,
        },
        Origin::new(nginx.addr, Duration::from_secs(5)),
        1,
    )
    .unwrap();
    let (ctx, rx) = worker_for(&cache, Limits::default());
    let mut c = Conn::new(HttpSession::new(ctx, Instant::now()), rx);
    c.send(&get("/1M.bin"));
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(r[0].status, 200);
    assert!(r[0].body == body);
    let etag = r[0].h("etag").expect("nginx sends an ETag").to_string();
    assert!(r[0].h("last-modified").is_some());
    let cp = c.cps[0].clone();
    assert_eq!(cp.etag.as_deref(), Some(etag.as_str()));

    // A survivor without the object: nginx answers the Range + If-Range.
    assert!(cache.purge("/1M.bin"));
    let (ctx, rx) = worker_for(&cache, Limits::default());
    let acked = cp.object_start_seq.0.wrapping_add(654_321);
    let mut r = Conn::new(
        HttpSession::resume(ctx, &cp, SeqNum(acked), None, Instant::now()),
        rx,
    );
    r.run();
    assert!(r.out == body[654_321..], "resumed bytes differ");
    assert_eq!(r.s.should_close(), None);
}

#[test]
fn slow_request_clock_does_not_run_while_answers_are_owed() {
    let h = Harness::new();
    h.store.put("/big", pattern(1_000_000));
    let limits = Limits {
        request_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let mut c = h.conn_with(limits);
    let t0 = Instant::now();
    // A download and, pipelined behind it, half of the next request.
    c.s.on_bytes(format!("{}GET /big HT", get("/big")).as_bytes(), t0);
    assert_eq!(c.s.poll_timeout(), None, "busy answering");
    c.s.on_timeout(t0 + Duration::from_secs(5));
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(
        (r.len(), r[0].status),
        (1, 200),
        "no 408 for a busy connection"
    );
    let due = c.s.poll_timeout().expect("now the head is awaited");
    assert!(due > t0 + Duration::from_millis(100));
}

#[test]
fn app_block_carries_the_body_bytes_sent_so_far() {
    let h = Harness::new();
    h.store.put("/a", pattern(10_000));
    let mut warm = h.conn();
    warm.send(&get("/a"));
    warm.run();

    let mut c = h.conn();
    assert!(c.s.app_block().is_none(), "no response yet");
    c.send(&get("/a"));
    let head =
        c.s.poll_send(100_000, Instant::now())
            .expect("head of a hit");
    assert!(head.ends_with(b"\r\n\r\n"));
    c.s.on_sent(SeqNum(500));
    let body = c.s.poll_send(1000, Instant::now()).expect("body");
    c.s.on_sent(SeqNum(500 + head.len() as u32));
    assert_eq!(body.len(), 1000);
    let b = c.s.app_block().expect("a 200 is rebuildable");
    assert_eq!((b.bytes_sent, b.name), (1000, "/a"));
    assert_eq!(b.object_start_seq, 500 + head.len() as u32);
    // Finished, the block still describes the last response in full.
    c.drain(1 << 20);
    assert_eq!(c.s.app_block().unwrap().bytes_sent, 10_000);
}

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
    w.on_ready(7, Some(&cp), acked, &mut t, Instant::now());
    assert!(t.sent == rest_from(&first, acked), "bytes differ");
    let s = w.session(7).expect("kept");
    assert_eq!(s.checkpoint(), Some(&cp), "the same record goes on");
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

// ---- uploads (POST, PUT) ----

fn upload_head(method: &str, path: &str, len: usize, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-test\r\nContent-Length: {len}\r\n{extra}\r\n"
    )
}

/// The checkpoint of an upload (as a survivor reads it from the segment).
fn upload_checkpoint(
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
fn spool_name(tag: &str) -> String {
    format!("test-{tag}-{}", std::process::id())
}

fn spooled(name: &str) -> bool {
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
            .and_then(|c| c.upload.as_ref())
            .map(|u| u.received),
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
