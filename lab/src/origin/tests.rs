//! The origin over real loopback sockets: the lab's folder origin as the
//! `baton lab` process runs it, and the in-process [`Origin`] with a
//! [`Memory`] store and its faults.
use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::origin::{
    serve_on, upload_answer, Fault, Memory, Origin, FAULT_BODY, LAST_MODIFIED, NOT_FOUND_BODY,
};

/// A folder removed when the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts the lab's folder origin on loopback over a folder with one
/// 100 000-byte file; returns its address, the file's bytes and the folder.
fn start() -> (SocketAddr, Vec<u8>, TempDir) {
    let dir = std::env::temp_dir().join(format!("baton-origin-test-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("obj.bin"), &data).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let root = dir.clone();
    std::thread::spawn(move || serve_on(listener, root));
    (addr, data, TempDir(dir))
}

/// Reads one response: status, headers (lowercased names), body.
fn read_response(
    r: &mut io::BufReader<TcpStream>,
    head_only: bool,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; if head_only { 0 } else { len }];
    r.read_exact(&mut body).unwrap();
    (status, headers, body)
}

#[test]
fn keep_alive_connection_serves_range_then_head_then_404() {
    let (addr, data, _dir) = start();
    let s = TcpStream::connect(addr).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = io::BufReader::new(s);
    w.write_all(b"GET /obj.bin HTTP/1.1\r\nHost: o\r\nRange: bytes=1000-1999\r\n\r\n")
        .unwrap();
    let (st, h, body) = read_response(&mut r, false);
    assert_eq!(st, 206);
    assert_eq!(body, &data[1000..2000]);
    assert!(h
        .iter()
        .any(|(n, v)| n == "content-range" && v == "bytes 1000-1999/100000"));
    // Pipelined: both requests in one write.
    w.write_all(b"HEAD /obj.bin HTTP/1.1\r\nHost: o\r\n\r\nGET /nope HTTP/1.1\r\nHost: o\r\n\r\n")
        .unwrap();
    let (st, h, _) = read_response(&mut r, true);
    assert_eq!(st, 200);
    assert!(h
        .iter()
        .any(|(n, v)| n == "content-length" && v == "100000"));
    let (st, _, _) = read_response(&mut r, false);
    assert_eq!(st, 404);
    w.write_all(b"GET /obj.bin HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (st, _, body) = read_response(&mut r, false);
    assert_eq!(st, 200);
    assert_eq!(body, data);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "server closes after Connection: close");
}

#[test]
fn garbage_request_is_400_and_closed() {
    let (addr, _, _dir) = start();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"\x01\x02 nonsense\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
}

#[test]
fn uploads_are_answered_with_their_digest_and_counted_per_path() {
    let (addr, _, _dir) = start();
    let s = TcpStream::connect(addr).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = io::BufReader::new(s);
    for copies in 1..=2 {
        w.write_all(b"PUT /up/a HTTP/1.1\r\nHost: o\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap();
        let (st, _, body) = read_response(&mut r, false);
        assert_eq!(st, 201);
        // sha256("abc"), FIPS 180-2 appendix B.1.
        let want = format!(
            "sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad bytes=3 copies={copies}\n"
        );
        assert_eq!(String::from_utf8_lossy(&body), want);
    }
    w.write_all(b"DELETE /obj.bin HTTP/1.1\r\nHost: o\r\n\r\n")
        .unwrap();
    let (st, h, _) = read_response(&mut r, false);
    assert_eq!(st, 405, "the origin refuses DELETE");
    assert!(h
        .iter()
        .any(|(n, v)| n == "allow" && v == "GET, HEAD, POST, PUT"));
}

/// An in-process origin over a memory store with one object, `/m`.
fn memory_origin() -> (Origin, Memory, Vec<u8>) {
    let store = Memory::default();
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 31 % 251) as u8).collect();
    store.put("/m", data.clone());
    let origin = Origin::start(TcpListener::bind("127.0.0.1:0").unwrap(), store.clone()).unwrap();
    (origin, store, data)
}

/// One request on a fresh connection; the whole answer, read to EOF.
fn exchange(addr: SocketAddr, req: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: o\r\nConnection: close\r\n{extra}\r\n")
}

fn split(answer: &[u8]) -> (String, &[u8]) {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (
        String::from_utf8_lossy(&answer[..end]).into_owned(),
        &answer[end..],
    )
}

#[test]
fn memory_objects_are_served_with_their_validators_and_ranges() {
    let (origin, store, data) = memory_origin();
    let (head, body) = split_owned(&exchange(
        origin.addr(),
        &get("/m", "Range: bytes=100-\r\n"),
    ));
    assert!(head.starts_with("HTTP/1.1 206 "), "{head}");
    assert!(head.contains("ETag: \"v1\"\r\n"), "{head}");
    assert!(head.contains(&format!("Last-Modified: {LAST_MODIFIED}\r\n")));
    assert_eq!(body, &data[100..]);
    store.set_etag("/m", "\"v2\"");
    store.set_cache_control("/m", "max-age=0");
    let answer = exchange(origin.addr(), &get("/m", "If-None-Match: \"v2\"\r\n"));
    let (head, _) = split(&answer);
    assert!(head.starts_with("HTTP/1.1 304 "), "{head}");
    assert!(head.contains("Cache-Control: max-age=0\r\n"), "{head}");
    let answer = exchange(origin.addr(), &get("/none", ""));
    assert_eq!(split(&answer).1, NOT_FOUND_BODY.as_bytes());
    assert_eq!(origin.requests_for("/m"), 2);
    assert!(origin.requests()[1].contains("If-None-Match: \"v2\"\r\n"));
}

fn split_owned(answer: &[u8]) -> (String, Vec<u8>) {
    let (h, b) = split(answer);
    (h, b.to_vec())
}

#[test]
fn faults_spoil_answers_until_cleared() {
    let (origin, _store, data) = memory_origin();
    origin.set_fault("/m", Fault::Status(503));
    let answer = exchange(origin.addr(), &get("/m", ""));
    assert!(answer.starts_with(b"HTTP/1.1 503 "));
    assert_eq!(split(&answer).1, FAULT_BODY.as_bytes());
    origin.set_fault("/m", Fault::Close);
    assert!(exchange(origin.addr(), &get("/m", "")).is_empty());
    origin.set_fault("/m", Fault::Truncate(300));
    let answer = exchange(origin.addr(), &get("/m", ""));
    let (head, body) = split(&answer);
    assert!(head.contains("Content-Length: 50000\r\n"), "{head}");
    assert_eq!(body, &data[..300]);
    origin.set_fault("/m", Fault::CloseDelimited);
    let answer = exchange(origin.addr(), &get("/m", ""));
    let (head, body) = split(&answer);
    assert!(!head.contains("Content-Length"), "{head}");
    assert_eq!(body, &data[..]);
    origin.clear_fault("/m");
    let answer = exchange(origin.addr(), &get("/m", ""));
    assert_eq!(split(&answer).1, &data[..]);
}

#[test]
fn held_and_chunked_answers_wait_for_release() {
    let (origin, _store, data) = memory_origin();
    origin.set_fault("/m", Fault::Chunked(20_000));
    let mut s = TcpStream::connect(origin.addr()).unwrap();
    s.write_all(get("/m", "").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    // Until the read times out: the first piece, then nothing.
    while let Ok(n) = s.read(&mut buf) {
        assert!(n > 0, "closed before release");
        got.extend_from_slice(&buf[..n]);
    }
    let (head, first) = split_owned(&got);
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert!(first.starts_with(b"4e20;ext=1\r\n"));
    assert_eq!(first.len(), "4e20;ext=1\r\n".len() + 20_000 + 2);
    origin.release();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let mut all = first;
    all.extend_from_slice(&rest);
    let mut decoded = Vec::new();
    let mut at = &all[..];
    loop {
        let line_end = at.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&at[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap(), 16).unwrap();
        at = &at[line_end + 2..];
        if size == 0 {
            assert_eq!(at, b"X-Trailer: yes\r\n\r\n");
            break;
        }
        decoded.extend_from_slice(&at[..size]);
        at = &at[size + 2..];
    }
    assert_eq!(decoded, data);
    // Released for good: a held answer now goes straight through.
    origin.set_fault("/m", Fault::Hold(10));
    assert_eq!(split(&exchange(origin.addr(), &get("/m", ""))).1, &data[..]);
}

#[test]
fn dropping_the_origin_ends_hung_answers_and_closes_the_listener() {
    let (origin, _store, _) = memory_origin();
    origin.set_fault("/m", Fault::Hang);
    let addr = origin.addr();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(get("/m", "").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(origin);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert!(out.is_empty(), "a hung answer says nothing");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still listening");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn uploads_are_kept_and_a_status_fault_refuses_them() {
    let (origin, _store, _) = memory_origin();
    let req = "POST /up HTTP/1.1\r\nHost: o\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
    let answer = exchange(origin.addr(), req);
    assert!(answer.starts_with(b"HTTP/1.1 201 "));
    assert_eq!(split(&answer).1, upload_answer(b"hello", 1).as_bytes());
    origin.set_fault("/fail", Fault::Status(507));
    let answer = exchange(origin.addr(), &req.replace("/up", "/fail"));
    assert!(answer.starts_with(b"HTTP/1.1 507 Insufficient Storage\r\n"));
    assert_eq!(
        origin.uploads(),
        vec![("POST /up".to_string(), b"hello".to_vec())]
    );
    assert_eq!(origin.requests().len(), 2);
}
