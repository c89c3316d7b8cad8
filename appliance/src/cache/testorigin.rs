//! A tiny origin for tests: std::net on 127.0.0.1 (loopback only), one
//! thread per connection, objects with Content-Length, and ways to be slow
//! or to fail. It honours `Range` + `If-Range` and `If-None-Match` the way
//! the lab origin does, and records every request head it gets.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How the origin answers one path.
#[derive(Debug, Clone)]
pub(crate) enum Behaviour {
    /// 200 with the body (206/304 as the request asks).
    Serve,
    /// This status with a short body.
    Status(u16),
    /// Accepts, reads the request, never answers.
    Hang,
    /// Closes without answering.
    Close,
    /// Sends the head and this many body bytes, then closes.
    Truncate(usize),
    /// Sends the head and this many body bytes, then waits for `release`.
    Hold(usize),
    /// Sends the body chunked (RFC 9112 §7.1) in pieces of this size, with
    /// a chunk extension and a trailer; waits for `release` after the
    /// first piece.
    Chunked(usize),
    /// Sends the body without a length and closes (RFC 9112 §6.3 rule 8).
    CloseDelimited,
}

#[derive(Debug, Clone)]
pub(crate) struct TestObject {
    pub body: Vec<u8>,
    pub etag: String,
    pub cache_control: Option<String>,
    pub behaviour: Behaviour,
}

#[derive(Default)]
struct State {
    objects: Mutex<HashMap<String, TestObject>>,
    requests: Mutex<Vec<String>>,
    /// Uploads received: method and path, body.
    uploads: Mutex<Vec<(String, Vec<u8>)>>,
    released: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
}

/// The running origin; stops when dropped.
pub(crate) struct TestOrigin {
    pub addr: SocketAddr,
    state: Arc<State>,
}

/// The Last-Modified every test object has.
pub(crate) const LAST_MODIFIED: &str = "Thu, 01 Jan 2026 00:00:00 GMT";

/// Deterministic bytes of length `n` (not all equal, so offsets matter).
pub(crate) fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

impl TestOrigin {
    pub fn start() -> TestOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = Arc::clone(&st);
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        TestOrigin { addr, state }
    }

    pub fn put(&self, path: &str, body: Vec<u8>, behaviour: Behaviour) {
        self.put_object(
            path,
            TestObject {
                body,
                etag: "\"v1\"".into(),
                cache_control: None,
                behaviour,
            },
        );
    }

    pub fn put_object(&self, path: &str, o: TestObject) {
        self.state.objects.lock().unwrap().insert(path.into(), o);
    }

    pub fn set_behaviour(&self, path: &str, b: Behaviour) {
        if let Some(o) = self.state.objects.lock().unwrap().get_mut(path) {
            o.behaviour = b;
        }
    }

    pub fn set_etag(&self, path: &str, etag: &str) {
        if let Some(o) = self.state.objects.lock().unwrap().get_mut(path) {
            o.etag = etag.into();
        }
    }

    /// Lets every `Hold` answer go on.
    pub fn release(&self) {
        *self.state.released.lock().unwrap() = true;
        self.state.cv.notify_all();
    }

    /// Request heads received so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Every upload (POST/PUT) received: "METHOD path" and its body.
    pub fn uploads(&self) -> Vec<(String, Vec<u8>)> {
        self.state.uploads.lock().unwrap().clone()
    }

    pub fn requests_for(&self, path: &str) -> usize {
        let line = format!("GET {path} ");
        self.requests()
            .iter()
            .filter(|r| r.starts_with(&line))
            .count()
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.release();
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn serve(mut conn: TcpStream, st: &State) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    st.requests.lock().unwrap().push(head.clone());
    let path = head.split(' ').nth(1).unwrap_or("").to_string();
    let method = head.split(' ').next().unwrap_or("").to_string();
    if method == "POST" || method == "PUT" {
        // Uploads: the body (Content-Length), then 201 naming its size.
        let len: usize = header(&head, "Content-Length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = buf[end..].to_vec();
        while body.len() < len {
            match conn.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&tmp[..n]),
            }
        }
        if path.starts_with("/fail") {
            let _ = write!(
                conn,
                "HTTP/1.1 507 Insufficient Storage\r\nContent-Length: 5\r\n\r\nfull\n"
            );
            return;
        }
        let answer = format!("stored {} bytes\n", body.len());
        st.uploads
            .lock()
            .unwrap()
            .push((format!("{method} {path}"), body));
        let _ = write!(
            conn,
            "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        return;
    }
    let obj = st.objects.lock().unwrap().get(&path).cloned();
    let Some(obj) = obj else {
        let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
        return;
    };
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let mut extra = format!(
        "Date: {date}\r\nETag: {}\r\nLast-Modified: {LAST_MODIFIED}\r\n",
        obj.etag
    );
    if let Some(cc) = &obj.cache_control {
        extra.push_str(&format!("Cache-Control: {cc}\r\n"));
    }
    match obj.behaviour {
        Behaviour::Status(s) => {
            let _ = write!(
                conn,
                "HTTP/1.1 {s} Whatever\r\nContent-Length: 3\r\n{extra}\r\nerr"
            );
            return;
        }
        Behaviour::Hang => {
            std::thread::sleep(Duration::from_secs(5));
            return;
        }
        Behaviour::Close => return,
        _ => {}
    }
    if header(&head, "If-None-Match") == Some(obj.etag.as_str()) {
        let _ = write!(conn, "HTTP/1.1 304 Not Modified\r\n{extra}\r\n");
        return;
    }
    let len = obj.body.len();
    let mut from = 0;
    let mut status = "200 OK".to_string();
    if let Some(r) = header(&head, "Range").and_then(|r| r.strip_prefix("bytes=")) {
        let if_range_ok = header(&head, "If-Range").is_none_or(|v| v == obj.etag);
        if let (true, Some(f)) = (
            if_range_ok,
            r.strip_suffix('-').and_then(|f| f.parse().ok()),
        ) {
            if f < len {
                from = f;
                status = "206 Partial Content".into();
                extra.push_str(&format!("Content-Range: bytes {f}-{}/{len}\r\n", len - 1));
            } else {
                // RFC 9110 §15.5.17, as nginx and the lab's origin answer.
                let _ = write!(
                    conn,
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n{extra}\r\n"
                );
                return;
            }
        }
    }
    let body = &obj.body[from..];
    match obj.behaviour {
        Behaviour::Chunked(piece) => {
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{extra}\r\n"
            );
            for (i, c) in body.chunks(piece.max(1)).enumerate() {
                let _ = write!(conn, "{:x};ext=1\r\n", c.len());
                let _ = conn.write_all(c);
                let _ = conn.write_all(b"\r\n");
                if i == 0 {
                    wait_release(st);
                }
            }
            let _ = conn.write_all(b"0\r\nX-Trailer: yes\r\n\r\n");
            return;
        }
        Behaviour::CloseDelimited => {
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nConnection: close\r\n{extra}\r\n");
            let _ = conn.write_all(body);
            return;
        }
        _ => {}
    }
    if write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .is_err()
    {
        return;
    }
    match obj.behaviour {
        Behaviour::Truncate(n) => {
            let _ = conn.write_all(&body[..n.min(body.len())]);
        }
        Behaviour::Hold(n) => {
            let n = n.min(body.len());
            let _ = conn.write_all(&body[..n]);
            wait_release(st);
            let _ = conn.write_all(&body[n..]);
        }
        _ => {
            let _ = conn.write_all(body);
        }
    }
}

fn wait_release(st: &State) {
    let mut released = st.released.lock().unwrap();
    while !*released {
        released = st.cv.wait(released).unwrap();
    }
}
