//! Hostile HTTP against a box (issue 13): request smuggling shapes
//! (CL.TE, TE.CL, TE.TE), conflicting lengths, obs-fold, bare CR and LF,
//! huge targets and header sections, control bytes, other HTTP versions,
//! absolute-form with a foreign host, range amplification, and a slowloris
//! of thousands of connections while a legitimate client is served.
//!
//! Raw requests go from sockets opened in the lab's client namespace by a
//! thread of this test (setns moves only the calling thread). Every
//! refusal is checked on the wire (status, the connection closed, and no
//! second answer: nothing was smuggled behind it) and in the box's own
//! counters (/metrics). Needs root; serialized with the other lab tests
//! (tests/common).
mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// Box 1's service address.
const BOX1: &str = "198.18.0.11:80";

fn box1() -> SocketAddr {
    BOX1.parse().expect("box address")
}

/// Moves the calling thread into the lab's client namespace.
fn enter_client(prefix: &str) {
    let path = format!("/run/netns/{prefix}-client");
    let ns = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: setns(2) on a descriptor we own; CLONE_NEWNET changes the
    // namespace of this thread only.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// One answer read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// What one connection got back for its bytes.
#[derive(Debug)]
struct Exchange {
    answers: Vec<Answer>,
    /// The box closed the connection (FIN or RST) within the wait.
    closed: bool,
}

/// Splits what the box sent into answers (status and Content-Length
/// framed body; without a length, the body runs to the end).
fn answers(mut raw: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {head:?}"));
        let len = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(raw.len() - end - 4);
        let rest = &raw[end + 4..];
        let take = len.min(rest.len());
        out.push(Answer {
            status,
            body: rest[..take].to_vec(),
        });
        raw = &rest[take..];
    }
    out
}

/// Sends `request` on a new connection (without half-closing it, which
/// would make every connection look closed by the box) and reads until
/// the box closes or stays silent for `quiet`.
fn exchange(request: &[u8], quiet: Duration) -> Exchange {
    let mut s = TcpStream::connect_timeout(&box1(), Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(quiet)).expect("read timeout");
    let mut w = s.try_clone().expect("clone");
    w.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("write timeout");
    let request = request.to_vec();
    // A writer of its own: the box stops reading a refused request, so a
    // long one may never be taken whole.
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&request);
    });
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            Err(_) => break true,
        }
    };
    drop(s);
    let _ = writer.join();
    Exchange {
        answers: answers(&raw),
        closed,
    }
}

/// A request hidden behind the one under test: answered only if the box
/// read the framing as a hop in front of it might not.
const SMUGGLED: &str = "GET /1K.bin HTTP/1.1\r\nHost: x\r\n\r\n";

/// `name`, the bytes sent, the statuses answered in order, and whether the
/// box must have closed the connection.
fn cases() -> Vec<(&'static str, Vec<u8>, Vec<u16>, bool)> {
    let s = |t: &str| format!("{t}{SMUGGLED}").into_bytes();
    let post = |fields: &str, body: &str| {
        s(&format!(
            "POST /up HTTP/1.1\r\nHost: x\r\n{fields}\r\n{body}"
        ))
    };
    let get = |fields: &str| s(&format!("GET /1K.bin HTTP/1.1\r\nHost: x\r\n{fields}\r\n"));
    let mut many = String::new();
    for i in 0..150 {
        many.push_str(&format!("X-{i}: 1\r\n"));
    }
    vec![
        // Positive controls: the harness sees a second answer when there
        // is one, so "one answer" below means nothing was smuggled.
        ("pipelined", get(""), vec![200, 200], false),
        ("leading blank lines", s("\r\n\r\n"), vec![200], false),
        (
            "GET body hiding a request",
            get(&format!("Content-Length: {}\r\n", SMUGGLED.len())),
            vec![200],
            false,
        ),
        // Smuggling: both framings, in either order (RFC 9112 §6.3 rule 3).
        (
            "CL.TE",
            post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\nG",
            ),
            vec![400],
            true,
        ),
        (
            "TE.CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                "5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
            ),
            vec![400],
            true,
        ),
        // TE.TE: an obfuscated Transfer-Encoding one hop ignores.
        (
            "TE.TE second coding",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-encoding: cow\r\nContent-Length: 4\r\n",
                "0\r\n\r\n",
            ),
            vec![501],
            true,
        ),
        (
            "TE.TE xchunked",
            post(
                "Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n",
                "0\r\n\r\n",
            ),
            vec![501],
            true,
        ),
        (
            "TE.TE space before colon",
            post(
                "Transfer-Encoding : chunked\r\nContent-Length: 4\r\n",
                "0\r\n\r\n",
            ),
            vec![400],
            true,
        ),
        (
            "TE.TE vertical tab",
            post(
                "Transfer-Encoding:\x0bchunked\r\nContent-Length: 4\r\n",
                "0\r\n\r\n",
            ),
            vec![400],
            true,
        ),
        (
            "TE.TE chunked, identity",
            post(
                "Transfer-Encoding: chunked, identity\r\nContent-Length: 4\r\n",
                "0\r\n\r\n",
            ),
            vec![501],
            true,
        ),
        (
            "TE.TE folded",
            post(
                "Transfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n",
                "0\r\n\r\n",
            ),
            vec![400],
            true,
        ),
        (
            "Content_Length with an underscore",
            get("Content_Length: 34\r\n"),
            vec![400],
            true,
        ),
        // Lengths: digits only, and duplicates agree (RFC 9110 §8.6).
        (
            "conflicting Content-Length",
            post("Content-Length: 6\r\nContent-Length: 7\r\n", "abcdef"),
            vec![400],
            true,
        ),
        (
            "Content-Length +6",
            post("Content-Length: +6\r\n", "abcdef"),
            vec![400],
            true,
        ),
        (
            "Content-Length -1",
            post("Content-Length: -1\r\n", ""),
            vec![400],
            true,
        ),
        (
            "Content-Length 6 6",
            post("Content-Length: 6 6\r\n", "abcdef"),
            vec![400],
            true,
        ),
        (
            "Content-Length 6,6",
            post("Content-Length: 6,6\r\n", "abcdef"),
            vec![400],
            true,
        ),
        // Chunked bodies are not decoded: an upload must carry a length
        // (411), a GET is answered and its connection closed, so chunk
        // sizes nobody parsed cannot hide a request.
        (
            "chunked upload, bad size",
            post("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"),
            vec![411],
            true,
        ),
        (
            "chunked GET, bad size and extension",
            get("Transfer-Encoding: chunked\r\n\r\n-1;ext=\"a\r\nx\r\n0\r\n"),
            vec![200],
            true,
        ),
        // Line ends (RFC 9112 §2.2).
        (
            "bare LF",
            s("GET /1K.bin HTTP/1.1\nHost: x\n\n"),
            vec![400],
            true,
        ),
        (
            "bare LF hiding a field",
            get("X: 1\nContent-Length: 34\r\n"),
            vec![400],
            true,
        ),
        (
            "bare CR hiding a field",
            get("X: 1\rContent-Length: 34\r\n"),
            vec![400],
            true,
        ),
        // Field syntax (RFC 9112 §5.1, §5.2).
        (
            "space before colon",
            s("GET /1K.bin HTTP/1.1\r\nHost : x\r\n\r\n"),
            vec![400],
            true,
        ),
        ("obs-fold", get("X-A: 1\r\n 2\r\n"), vec![400], true),
        ("NUL in target", s("GET /1K\0.bin HTTP/1.1\r\nHost: x\r\n\r\n"), vec![400], true),
        ("control byte in a field", get("X: a\x01b\r\n"), vec![400], true),
        ("NUL in a field", get("X: a\0b\r\n"), vec![400], true),
        ("DEL in a field name", get("X\x7f: 1\r\n"), vec![400], true),
        // Sizes (RFC 9110 §15.5.15, RFC 6585 §5).
        (
            "9 KB target",
            s(&format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000))),
            vec![414],
            true,
        ),
        (
            "100 KB target",
            s(&format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000))),
            vec![414],
            true,
        ),
        (
            "20 KB field",
            get(&format!("X-Big: {}\r\n", "b".repeat(20_000))),
            vec![431],
            true,
        ),
        ("150 fields", get(&many), vec![431], true),
        // Versions (RFC 9112 §2.3, RFC 9110 §2.5, §15.6.6).
        ("HTTP/0.9", s("GET /1K.bin\r\n\r\n"), vec![400], true),
        ("HTTP/2.0", s("GET /1K.bin HTTP/2.0\r\nHost: x\r\n\r\n"), vec![505], true),
        ("h2 preface", s("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), vec![505], true),
        ("HTTP/1.2 as 1.1", s("GET /1K.bin HTTP/1.2\r\nHost: x\r\n\r\n"), vec![200, 200], false),
        ("HTTP/1.10", s("GET /1K.bin HTTP/1.10\r\nHost: x\r\n\r\n"), vec![400], true),
        ("lower-case version", s("GET /1K.bin http/1.1\r\nHost: x\r\n\r\n"), vec![400], true),
        // Targets and Host (RFC 9112 §3.2).
        (
            "absolute-form, foreign host",
            s("GET http://evil.example/1K.bin HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"),
            vec![200],
            true,
        ),
        (
            "fragment in target",
            s("GET /1K.bin#x HTTP/1.1\r\nHost: x\r\n\r\n"),
            vec![400],
            true,
        ),
        (
            "non-ASCII target",
            s("GET /1K.bin\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n"),
            vec![400],
            true,
        ),
        (
            "absolute-form https",
            s("GET https://evil.example/1K.bin HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
            vec![400],
            true,
        ),
        (
            "invalid Host",
            s("GET /1K.bin HTTP/1.1\r\nHost: evil.example/x\r\n\r\n"),
            vec![400],
            true,
        ),
        (
            "two Hosts",
            get("Host: evil.example\r\n"),
            vec![400],
            true,
        ),
    ]
}

#[test]
fn lab_hostile_request_heads_are_refused_exactly_and_nothing_is_smuggled() {
    let g = LabGuard::up("bthh1", &["--boxes", "1"]);
    download_identical(&g, 1, "1K.bin");
    let k1 = fs::read(g.file("objects/1K.bin")).expect("the origin's 1K.bin");
    let refused = |m: &str, status: u16| {
        metric_value(
            m,
            &format!("baton_http_refused_total{{status=\"{status}\"}}"),
        )
    };
    let before = box_metrics(&g, 1);
    let cases = cases();
    let results: Vec<Exchange> = std::thread::scope(|scope| {
        let threads: Vec<_> = cases
            .iter()
            .map(|(_, bytes, _, _)| {
                let prefix = g.prefix.clone();
                scope.spawn(move || {
                    enter_client(&prefix);
                    exchange(bytes, Duration::from_secs(3))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("case thread"))
            .collect()
    });
    let mut failures = Vec::new();
    let mut expected_refusals = std::collections::BTreeMap::<u16, u64>::new();
    for ((name, _, statuses, closed), got) in cases.iter().zip(&results) {
        let seen: Vec<u16> = got.answers.iter().map(|a| a.status).collect();
        if &seen != statuses || got.closed != *closed {
            failures.push(format!(
                "{name}: answered {seen:?} closed={} (expected {statuses:?} closed={closed})",
                got.closed
            ));
        }
        for a in got.answers.iter().filter(|a| a.status == 200) {
            if a.body != k1 {
                failures.push(format!("{name}: a 200 whose body is not 1K.bin"));
            }
        }
        for s in statuses
            .iter()
            .filter(|s| [400, 414, 431, 501, 505].contains(s))
        {
            *expected_refusals.entry(*s).or_default() += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let after = box_metrics(&g, 1);
    for (status, n) in expected_refusals {
        assert_eq!(
            refused(&after, status) - refused(&before, status),
            n,
            "baton_http_refused_total{{status=\"{status}\"}}"
        );
    }
    download_identical(&g, 1, "1M.bin");
}

#[test]
fn lab_many_ranges_in_one_header_get_the_whole_object_once_never_amplified() {
    let g = LabGuard::up("bthh2", &["--boxes", "1"]);
    download_identical(&g, 1, "1M.bin");
    let whole = fs::read(g.file("objects/1M.bin")).expect("the origin's 1M.bin");
    let bytes_before = metric_value(&box_metrics(&g, 1), "baton_http_body_bytes_total");
    let overlapping = vec!["0-"; 2000].join(",");
    let tiny: Vec<String> = (0..1500).map(|i| format!("{i}-{i}")).collect();
    let suffixes = vec!["-1048576"; 1000].join(",");
    for ranges in [overlapping, tiny.join(","), suffixes] {
        let (code, headers, body) =
            curl_box(&g, 1, "/1M.bin", &["-H", &format!("Range: bytes={ranges}")]);
        assert_eq!(
            code, 200,
            "several ranges: RFC 9110 §14.2 lets a server ignore Range"
        );
        assert_eq!(header(&headers, "content-range"), None);
        assert!(
            body == whole,
            "the object itself, once ({} bytes)",
            body.len()
        );
    }
    // Two Range lines: not a list (RFC 9110 §14.2), so neither one wins.
    let (code, _, body) = curl_box(
        &g,
        1,
        "/1M.bin",
        &["-H", "Range: bytes=0-1", "-H", "Range: bytes=5-9"],
    );
    assert_eq!(code, 200, "two Range lines");
    assert!(body == whole, "two Range lines: the object itself");
    let sent = metric_value(&box_metrics(&g, 1), "baton_http_body_bytes_total") - bytes_before;
    assert_eq!(
        sent,
        4 * whole.len() as u64,
        "body bytes the box handed to TCP"
    );
}

/// What a slow client trickles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A request head that never ends.
    Head,
    /// Only the blank lines a server ignores before a request line (RFC
    /// 9112 §2.2).
    Blank,
    /// A whole GET head at once, then its Content-Length body (which the
    /// box drops) byte by byte.
    Body,
}

/// The kind of slow connection `i`: a quarter trickle blank lines, a
/// quarter a body.
fn kind_of(i: usize) -> Kind {
    match i % 4 {
        0 => Kind::Blank,
        1 => Kind::Body,
        _ => Kind::Head,
    }
}

/// What a `Body` connection sends at once.
const BODY_HEAD: &[u8] =
    b"GET /1K.bin HTTP/1.1\r\nHost: 198.18.0.11\r\nContent-Length: 1000000\r\n\r\n";

/// Byte `i` a slow client trickles.
fn slow_byte(kind: Kind, i: usize) -> u8 {
    const HEAD: &[u8] = b"GET /1K.bin HTTP/1.1\r\nHost: 198.18.0.11\r\nX-Slow: ";
    match kind {
        Kind::Blank => b"\r\n"[i % 2],
        Kind::Head => HEAD.get(i).copied().unwrap_or(b'a'),
        Kind::Body => b'a',
    }
}

/// How many slow connections are kept open at once.
const SLOW: usize = 3000;

/// One slow connection.
struct Slow {
    stream: TcpStream,
    kind: Kind,
    sent: usize,
    next_write: Instant,
    got: Vec<u8>,
}

/// What the slow clients saw.
#[derive(Debug, Default)]
struct SlowReport {
    connects: usize,
    answered_408: usize,
    /// Of those, connections that sent blank lines only.
    answered_408_blank: usize,
    /// Of those, connections that trickled a GET's body (after its 200).
    answered_408_body: usize,
    closed_otherwise: Vec<String>,
}

fn open_slow(now: Instant, stagger: Duration, kind: Kind) -> Option<Slow> {
    let mut stream = TcpStream::connect_timeout(&box1(), Duration::from_secs(5)).ok()?;
    if kind == Kind::Body {
        stream.write_all(BODY_HEAD).ok()?;
    }
    stream.set_nonblocking(true).ok()?;
    Some(Slow {
        stream,
        kind,
        sent: 0,
        next_write: now + stagger,
        got: Vec::new(),
    })
}

/// Keeps [`SLOW`] connections open, each sending one byte of a request
/// head (or of blank lines, or of a GET's body: see [`kind_of`]) every 2 s, reopening those the box closes, until `stop`. `ready`
/// is set once all are open.
fn slowloris(stop: &AtomicBool, ready: &AtomicBool, seen_408: &AtomicUsize) -> SlowReport {
    let mut report = SlowReport::default();
    let start = Instant::now();
    let mut conns: Vec<Option<Slow>> = (0..SLOW)
        .map(|i| {
            open_slow(
                start,
                Duration::from_millis(500 * (i % 4) as u64),
                kind_of(i),
            )
        })
        .collect();
    report.connects = conns.iter().flatten().count();
    assert_eq!(report.connects, SLOW, "slow connections opened");
    ready.store(true, Ordering::SeqCst);
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        for (i, slot) in conns.iter_mut().enumerate() {
            let mut done = false;
            if let Some(c) = slot.as_mut() {
                loop {
                    match c.stream.read(&mut buf) {
                        Ok(0) => {
                            done = true;
                            break;
                        }
                        Ok(n) => c.got.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            done = true;
                            break;
                        }
                    }
                }
                if !done && now >= c.next_write {
                    match c.stream.write(&[slow_byte(c.kind, c.sent)]) {
                        Ok(_) => c.sent += 1,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => done = true,
                    }
                    c.next_write = now + Duration::from_secs(2);
                }
                if done {
                    // What arrived between the read and a failed write.
                    if let Ok(n) = c.stream.read(&mut buf) {
                        c.got.extend_from_slice(&buf[..n]);
                    }
                    // A Body connection's 408 follows the 200 of its GET.
                    let answered_408 = match c.kind {
                        Kind::Body => {
                            c.got.starts_with(b"HTTP/1.1 200 ")
                                && c.got.windows(13).any(|w| w == b"HTTP/1.1 408 ")
                        }
                        _ => c.got.starts_with(b"HTTP/1.1 408 "),
                    };
                    if answered_408 {
                        report.answered_408 += 1;
                        seen_408.fetch_add(1, Ordering::SeqCst);
                        report.answered_408_blank += usize::from(c.kind == Kind::Blank);
                        report.answered_408_body += usize::from(c.kind == Kind::Body);
                    } else if report.closed_otherwise.len() < 5 {
                        report.closed_otherwise.push(format!(
                            "after {} bytes sent: {:?}",
                            c.sent,
                            String::from_utf8_lossy(&c.got)
                        ));
                    }
                }
            }
            if done || slot.is_none() {
                *slot = open_slow(now, Duration::ZERO, kind_of(i));
                report.connects += usize::from(slot.is_some());
            }
        }
        sleep(Duration::from_millis(200));
    }
    report
}

/// A legitimate client: a 50 MB download byte-exact, then 20 small
/// requests on one keep-alive connection.
fn legitimate_client(g: &LabGuard) {
    download_identical(g, 1, "50M.bin");
    let url = "http://198.18.0.11/1K.bin";
    let mut args = vec![
        "curl",
        "-sS",
        "--max-time",
        "60",
        "-w",
        "%{http_code} %{num_connects}\\n",
    ];
    for _ in 0..20 {
        args.extend(["-o", "/dev/null", url]);
    }
    let out = ok(g.exec("client", &args));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 20, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("200 ")), "{out}");
    let connects: u32 = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
        .sum();
    assert_eq!(connects, 1, "20 requests on one connection:\n{out}");
}

#[test]
fn lab_slowloris_of_thousands_of_connections_times_out_and_a_legitimate_client_is_served() {
    let g = LabGuard::up("bthh3", &["--boxes", "1"]);
    download_identical(&g, 1, "50M.bin");
    // SAFETY: setrlimit on this process: room for the slow sockets.
    let raised = unsafe {
        let lim = libc::rlimit {
            rlim_cur: 16_384,
            rlim_max: 16_384,
        };
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim)
    };
    assert_eq!(raised, 0, "setrlimit: {}", std::io::Error::last_os_error());
    let timeouts = "baton_http_request_timeouts_total";
    let before = metric_value(&box_metrics(&g, 1), timeouts);
    let (stop, ready) = (AtomicBool::new(false), AtomicBool::new(false));
    let seen_408 = AtomicUsize::new(0);
    let report = std::thread::scope(|scope| {
        let attack = scope.spawn(|| {
            enter_client(&g.prefix);
            slowloris(&stop, &ready, &seen_408)
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let deadline = Instant::now() + Duration::from_secs(90);
            while !ready.load(Ordering::SeqCst) {
                assert!(!attack.is_finished(), "the slow clients stopped early");
                assert!(
                    Instant::now() < deadline,
                    "slow connections not open in 90 s"
                );
                sleep(Duration::from_millis(100));
            }
            // Attack in full: the box holds every slow connection.
            let m = box_metrics(&g, 1);
            assert!(
                metric_value(&m, "baton_connections") >= SLOW as u64,
                "the box holds the slow connections: baton_connections {}",
                metric_value(&m, "baton_connections")
            );
            legitimate_client(&g);
            // Until the box has timed out a whole wave of slow heads
            // (each reopened at once, so the attack goes on)...
            wait_for_metric_within(
                &g,
                1,
                timeouts,
                before + SLOW as u64,
                Duration::from_secs(90),
            );
            let deadline = Instant::now() + Duration::from_secs(30);
            while seen_408.load(Ordering::SeqCst) < SLOW && Instant::now() < deadline {
                sleep(Duration::from_millis(100));
            }
            // ... and again while the reopened ones trickle.
            legitimate_client(&g);
        }));
        stop.store(true, Ordering::SeqCst);
        let report = attack.join();
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
        report.unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    eprintln!("slowloris: {report:?}");
    assert!(
        report.answered_408 >= SLOW,
        "every slow head of the first wave got its 408: {report:?}"
    );
    assert!(
        report.answered_408_blank >= SLOW / 4,
        "blank lines alone do not hold a connection past the head deadline: {report:?}"
    );
    assert!(
        report.answered_408_body >= SLOW / 4,
        "a trickled GET body does not hold a connection past the head deadline: {report:?}"
    );
    assert!(
        metric_value(&box_metrics(&g, 1), timeouts) - before >= SLOW as u64,
        "{timeouts}"
    );
    download_identical(&g, 1, "1M.bin");
}
