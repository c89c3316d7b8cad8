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
            self.commits.push(cp.into_owned());
        }
        true
    }

    /// Sends whatever the session has now, `cap` bytes at most per piece.
    fn drain(&mut self, cap: usize) -> usize {
        let mut n = 0;
        loop {
            while let Some(b) = self.s.poll_send(cap, Instant::now()) {
                assert!(!b.is_empty() && b.len() <= cap);
                if let Some(cp) = self.s.on_sent(SeqNum(self.seq)).cloned() {
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

mod hit_path;
mod kernel_tcp;
mod ranges;
mod requests;
mod resume;
mod uploads;

#[allow(unused_imports)]
use self::{kernel_tcp::*, requests::*, resume::*, uploads::*};

/// Every idle keep-alive connection holds one session (300,000 a box):
/// what a request needs while it is answered lives in boxes (issue 19;
/// 1,208 bytes before). 264 once the finished response's marker was kept
/// inline (16 bytes more, for the ~280 of heap its record held); 144 since
/// the intake's parts (input, queue, head clock: 80 bytes) and the upload
/// side (40) live in boxes only while used, and a head's offsets are u32.
#[test]
fn an_idle_session_stays_small() {
    let size = std::mem::size_of::<HttpSession>();
    eprintln!("size_of::<HttpSession>() = {size}");
    assert!(size <= 144, "size_of::<HttpSession>() = {size}");
}

/// An idle keep-alive session, its responses delivered, holds no heap
/// but its last response's checkpoint: no input buffer, no room left in
/// its request queue (issue 19: the queue's room alone was ~860 bytes of
/// every idle connection); once the client acknowledged that response
/// whole, not even that: a marker says where it ended.
#[test]
fn an_idle_keep_alive_session_holds_no_heap() {
    let h = Harness::new();
    h.store.put("/1K.bin", pattern(1024));
    let mut c = h.conn();
    assert_eq!(c.s.heap_bytes(), 0, "a new session");
    // Two pipelined requests and a blank line after them.
    c.send(&format!("{}{}\r\n", get("/1K.bin"), get("/1K.bin")));
    assert!(c.s.heap_bytes() > 0, "requests waiting");
    c.run();
    assert_eq!(c.s.request_count(), 2);
    let cp = c.s.checkpoint().expect("the last response's").into_owned();
    assert_eq!(c.s.heap_bytes(), cp.heap_bytes(), "idle: {:#?}", c.s);
    assert!(!c.s.settle(SeqNum(c.seq - 1)), "the client lacks a byte");
    assert!(c.s.settle(SeqNum(c.seq)), "acknowledged whole");
    assert_eq!(c.s.heap_bytes(), 0, "settled: {:#?}", c.s);
    let marker = c.s.checkpoint().expect("the marker's").into_owned();
    assert_eq!(
        (
            marker.object_start_seq,
            marker.body_len,
            marker.request_count
        ),
        (cp.object_start_seq, Some(1024), 2)
    );
    assert!(marker.url.is_empty() && marker.etag.is_none());
}

/// A session that settled is not settled again while a request waits: its
/// record is the one a survivor needs to answer that request's response.
#[test]
fn a_session_with_a_request_waiting_keeps_its_record() {
    let h = Harness::new();
    h.store.put("/1K.bin", pattern(1024));
    let mut c = h.conn();
    c.send(&get("/1K.bin"));
    c.run();
    c.send(&get("/1K.bin")[..10]);
    assert!(!c.s.settle(SeqNum(c.seq)), "a request half read");
    assert!(c.s.heap_bytes() > 0);
}
