//! The lab's built-in origin server (`baton lab serve-origin`): plain
//! HTTP/1.1 over kernel sockets, one thread per connection, serving the
//! files of one folder.
//!
//! It does what a cache needs from an origin to resume an object on another
//! box (ARCHITECTURE.md, Takeover step 6), per RFC 9110:
//! - validators: a strong `ETag` ("mtime-size" in hex, as nginx makes them)
//!   and `Last-Modified` (§8.8);
//! - `If-None-Match` / `If-Modified-Since` answered with 304 (§13.1.2,
//!   §13.1.3, evaluated in the order of §13.2.2);
//! - a single byte `Range` answered with 206 and `Content-Range`, an
//!   unsatisfiable one with 416 and `Content-Range: bytes */LEN` (§14.2,
//!   §15.5.17); several ranges are ignored and the whole object sent, which
//!   §14.2 allows;
//! - `If-Range` with an entity tag or a date: a mismatch sends the whole
//!   object with 200 (§13.1.5).
//!
//! Files are streamed from disk (the kernel's sendfile through `io::copy`),
//! never loaded whole.
//!
//! Uploads (POST and PUT, with `Content-Length`) to any path are read
//! whole and answered `201 Created` with `sha256=HEX bytes=N copies=K`: the
//! body's digest and length, and how many uploads of that path this origin
//! has received so far, so a test sees both the bytes and whether an
//! upload reached the origin twice. Bodies are not stored.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tracing::{debug, info, warn};

/// Arguments of the hidden `baton lab serve-origin`.
#[derive(clap::Args, Debug)]
pub struct OriginArgs {
    /// Folder whose files are served.
    #[arg(long)]
    pub root: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "198.19.0.2:80")]
    pub listen: SocketAddr,
    /// File created once the server listens.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// The largest request head we accept; real clients send a few hundred
/// bytes.
const MAX_HEAD: usize = 16 * 1024;

/// How long an idle keep-alive connection is kept.
const IDLE: Duration = Duration::from_secs(120);

/// Runs the origin until killed.
pub fn serve(args: OriginArgs) -> Result<()> {
    let listener = TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    info!("origin serves {} on {}", args.root.display(), args.listen);
    if let Some(ready) = &args.ready_file {
        std::fs::write(ready, b"listening\n")
            .with_context(|| format!("cannot write {}", ready.display()))?;
    }
    serve_on(listener, args.root)
}

/// Accepts connections on `listener` forever, one thread each.
pub fn serve_on(listener: TcpListener, root: PathBuf) -> Result<()> {
    let root = Arc::new(root);
    let uploads = Uploads::default();
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let root = Arc::clone(&root);
        let uploads = uploads.clone();
        std::thread::spawn(move || {
            if let Err(e) = Conn::new(stream).serve(&root, &uploads) {
                debug!("connection from {peer}: {e}");
            }
        });
    }
}

/// Uploads received per path.
type Uploads = Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>;

/// One request as the server needs it.
#[derive(Debug, Default)]
struct Request {
    method: String,
    path: String,
    /// HTTP/1.x minor version.
    minor: u8,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Persistent per RFC 9112 §9.3: HTTP/1.1 unless "close", HTTP/1.0 only
    /// with "keep-alive".
    fn keep_alive(&self) -> bool {
        let tokens: Vec<String> = self
            .header("connection")
            .unwrap_or("")
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        if self.minor >= 1 {
            !tokens.iter().any(|t| t == "close")
        } else {
            tokens.iter().any(|t| t == "keep-alive")
        }
    }
}

/// The file behind a request, as validators see it.
#[derive(Debug, Clone)]
struct Meta {
    len: u64,
    mtime: SystemTime,
}

impl Meta {
    fn etag(&self) -> String {
        let secs = self
            .mtime
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("\"{:x}-{:x}\"", secs, self.len)
    }

    fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.mtime)
    }

    /// Modification time at the one-second resolution of HTTP dates.
    fn mtime_secs(&self) -> u64 {
        self.mtime
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// What to send back.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    status: u16,
    headers: Vec<(&'static str, String)>,
    /// Byte range of the file to send as the body (start, length).
    body: Option<(u64, u64)>,
    /// A short text body for errors.
    text: Option<&'static str>,
}

impl Plan {
    fn error(status: u16, text: &'static str) -> Plan {
        Plan {
            status,
            headers: vec![("Content-Type", "text/plain".into())],
            body: None,
            text: Some(text),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

/// Maps a request target to a file under `root`, refusing anything that
/// could leave it: only plain names of [A-Za-z0-9._-] joined by '/', no
/// empty, "." or ".." segment.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let rel = path.strip_prefix('/')?;
    let mut out = root.to_path_buf();
    for seg in rel.split('/') {
        let plain = seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if seg.is_empty() || seg == "." || seg == ".." || !plain {
            return None;
        }
        out.push(seg);
    }
    Some(out)
}

/// Splits an entity-tag list ("*" or `"a", W/"b"`) into its tags.
fn etag_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// Weak comparison (RFC 9110 §8.8.3.2): opaque tags equal, W/ ignored.
fn weak_match(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

/// Strong comparison: neither weak, opaque tags equal.
fn strong_match(a: &str, b: &str) -> bool {
    !a.starts_with("W/") && !b.starts_with("W/") && a == b
}

/// The outcome of parsing a Range header against a length.
#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// Serve the whole object (no header, syntax we ignore, several ranges).
    Whole,
    /// One satisfiable range: first byte and length.
    Part(u64, u64),
    /// Well-formed but nothing of it lies within the object.
    Unsatisfiable,
}

/// Parses a `Range` value (RFC 9110 §14.1.2) for an object of `len` bytes.
fn parse_range(value: &str, len: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    let specs: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.len() != 1 {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = specs[0].split_once('-') else {
        return RangeAsk::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    if first.is_empty() {
        // suffix-range: the last N bytes.
        let Some(n) = num(last) else {
            return RangeAsk::Whole;
        };
        if n == 0 || len == 0 {
            return RangeAsk::Unsatisfiable;
        }
        let n = n.min(len);
        return RangeAsk::Part(len - n, n);
    }
    let Some(a) = num(first) else {
        return RangeAsk::Whole;
    };
    let b = if last.is_empty() {
        u64::MAX
    } else {
        match num(last) {
            Some(b) if b >= a => b,
            _ => return RangeAsk::Whole,
        }
    };
    if a >= len {
        return RangeAsk::Unsatisfiable;
    }
    let end = b.min(len - 1);
    RangeAsk::Part(a, end - a + 1)
}

/// Decides the response to `req` for a file with `meta` (None: no such
/// file). Pure, so the rules are tested without sockets.
fn plan(req: &Request, meta: Option<&Meta>) -> Plan {
    if req.method != "GET" && req.method != "HEAD" {
        let mut p = Plan::error(405, "method not allowed\n");
        p.headers.push(("Allow", "GET, HEAD, POST, PUT".into()));
        return p;
    }
    let Some(meta) = meta else {
        return Plan::error(404, "not found\n");
    };
    let etag = meta.etag();
    let validators = vec![
        ("ETag", etag.clone()),
        ("Last-Modified", meta.last_modified()),
    ];

    // RFC 9110 §13.2.2 step 1: If-Match.
    if let Some(im) = req.header("if-match") {
        let tags = etag_list(im);
        if !tags.iter().any(|t| *t == "*" || strong_match(t, &etag)) {
            return Plan::error(412, "precondition failed\n");
        }
    }
    // Step 3: If-None-Match; step 4 only without it: If-Modified-Since.
    let not_modified = if let Some(inm) = req.header("if-none-match") {
        etag_list(inm)
            .iter()
            .any(|t| *t == "*" || weak_match(t, &etag))
    } else if let Some(ims) = req.header("if-modified-since") {
        match httpdate::parse_http_date(ims) {
            Ok(since) => {
                let since = since
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                meta.mtime_secs() <= since
            }
            // An invalid date is ignored (§13.1.3).
            Err(_) => false,
        }
    } else {
        false
    };
    if not_modified {
        return Plan {
            status: 304,
            headers: validators,
            body: None,
            text: None,
        };
    }

    let mut headers = validators;
    headers.push(("Accept-Ranges", "bytes".into()));
    headers.push(("Content-Type", "application/octet-stream".into()));

    // Step 5: Range, only for GET (§14.2), only if If-Range holds.
    let range_header = if req.method == "GET" {
        req.header("range")
    } else {
        None
    };
    let if_range_holds = match req.header("if-range") {
        None => true,
        Some(v) => {
            let v = v.trim();
            if v.starts_with('"') || v.starts_with("W/") {
                strong_match(v, &etag)
            } else {
                v == meta.last_modified()
            }
        }
    };
    let ask = match range_header {
        Some(r) if if_range_holds => parse_range(r, meta.len),
        _ => RangeAsk::Whole,
    };
    match ask {
        RangeAsk::Whole => Plan {
            status: 200,
            headers,
            body: Some((0, meta.len)),
            text: None,
        },
        RangeAsk::Part(start, len) => {
            headers.push((
                "Content-Range",
                format!("bytes {}-{}/{}", start, start + len - 1, meta.len),
            ));
            Plan {
                status: 206,
                headers,
                body: Some((start, len)),
                text: None,
            }
        }
        RangeAsk::Unsatisfiable => {
            let mut p = Plan::error(416, "range not satisfiable\n");
            p.headers
                .push(("Content-Range", format!("bytes */{}", meta.len)));
            p
        }
    }
}

/// One client connection with its read buffer (requests may be
/// pipelined).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// What reading a request head gave.
enum Head {
    Request(Request, usize),
    Closed,
    Bad(u16),
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    fn read_head(&mut self) -> io::Result<Head> {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let r = Request {
                            method: req.method.unwrap_or("").to_string(),
                            path: req.path.unwrap_or("").to_string(),
                            minor: req.version.unwrap_or(1),
                            headers: req
                                .headers
                                .iter()
                                .map(|h| {
                                    (
                                        h.name.to_string(),
                                        String::from_utf8_lossy(h.value).into_owned(),
                                    )
                                })
                                .collect(),
                        };
                        return Ok(Head::Request(r, n));
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() >= MAX_HEAD => {
                        return Ok(Head::Bad(431))
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Ok(Head::Bad(431)),
                    Err(_) => return Ok(Head::Bad(400)),
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(Head::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Drops `n` bytes of request body, from the buffer first.
    fn discard(&mut self, mut n: u64) -> io::Result<()> {
        let from_buf = (self.buf.len() as u64).min(n) as usize;
        self.buf.drain(..from_buf);
        n -= from_buf as u64;
        if n > 0 {
            let copied = io::copy(&mut (&self.stream).take(n), &mut io::sink())?;
            if copied < n {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    }

    /// Reads an upload's body, digesting it; the answer's text.
    fn receive_upload(&mut self, req: &Request, len: u64, uploads: &Uploads) -> io::Result<String> {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        let from_buf = (self.buf.len() as u64).min(len) as usize;
        digest.update(&self.buf[..from_buf]);
        self.buf.drain(..from_buf);
        let mut left = len - from_buf as u64;
        let mut chunk = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = (chunk.len() as u64).min(left) as usize;
            let n = self.stream.read(&mut chunk[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            digest.update(&chunk[..n]);
            left -= n as u64;
        }
        let copies = {
            let mut u = uploads.lock().unwrap_or_else(|p| p.into_inner());
            let c = u.entry(req.path.clone()).or_insert(0);
            *c += 1;
            *c
        };
        let hex: String = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        info!(
            "{} {}: {len} bytes, upload #{copies} of this path",
            req.method, req.path
        );
        Ok(format!("sha256={hex} bytes={len} copies={copies}\n"))
    }

    fn serve(mut self, root: &Path, uploads: &Uploads) -> io::Result<()> {
        self.stream.set_read_timeout(Some(IDLE))?;
        let _ = self.stream.set_nodelay(true);
        loop {
            let (req, used) = match self.read_head()? {
                Head::Closed => return Ok(()),
                Head::Bad(status) => {
                    let text = if status == 431 {
                        "request head too large\n"
                    } else {
                        "bad request\n"
                    };
                    self.send(&Plan::error(status, text), "GET", false, None)?;
                    return Ok(());
                }
                Head::Request(r, n) => (r, n),
            };
            self.buf.drain(..used);
            // Bodies are neither expected nor kept; chunked ones we cannot
            // skip safely, so they end the connection (RFC 9112 §6.3).
            if req.header("transfer-encoding").is_some() {
                self.send(
                    &Plan::error(400, "request bodies are not accepted\n"),
                    "GET",
                    false,
                    None,
                )?;
                return Ok(());
            }
            let body_len = match req
                .header("content-length")
                .map(|v| v.trim().parse::<u64>())
            {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    self.send(
                        &Plan::error(400, "bad Content-Length\n"),
                        "GET",
                        false,
                        None,
                    )?;
                    return Ok(());
                }
            };
            if req.method == "POST" || req.method == "PUT" {
                let text = self.receive_upload(&req, body_len, uploads)?;
                let keep = req.keep_alive();
                let head = format!(
                    "HTTP/1.1 201 Created\r\nDate: {}\r\nServer: baton-lab-origin\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
                    httpdate::fmt_http_date(SystemTime::now()),
                    text.len(),
                    if keep { "keep-alive" } else { "close" }
                );
                self.stream.write_all(head.as_bytes())?;
                self.stream.write_all(text.as_bytes())?;
                if !keep {
                    return Ok(());
                }
                continue;
            }
            self.discard(body_len)?;

            let file = resolve(root, &req.path).and_then(|p| {
                let f = File::open(&p).ok()?;
                let m = f.metadata().ok()?;
                if !m.is_file() {
                    return None;
                }
                Some((
                    f,
                    Meta {
                        len: m.len(),
                        mtime: m.modified().unwrap_or(UNIX_EPOCH),
                    },
                ))
            });
            let p = plan(&req, file.as_ref().map(|(_, m)| m));
            let keep = req.keep_alive();
            debug!("{} {} -> {}", req.method, req.path, p.status);
            self.send(&p, &req.method, keep, file.map(|(f, _)| f))?;
            if !keep {
                return Ok(());
            }
        }
    }

    fn send(&mut self, p: &Plan, method: &str, keep: bool, file: Option<File>) -> io::Result<()> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", p.status, reason(p.status));
        head.push_str(&format!(
            "Date: {}\r\nServer: baton-lab-origin\r\n",
            httpdate::fmt_http_date(SystemTime::now())
        ));
        for (n, v) in &p.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        let content_length = match (p.body, p.text) {
            (Some((_, len)), _) => Some(len),
            (None, Some(t)) => Some(t.len() as u64),
            // 304 carries no Content-Length (RFC 9110 §8.6).
            (None, None) => None,
        };
        if let Some(len) = content_length {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str(if keep {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        self.stream.write_all(head.as_bytes())?;
        if method == "HEAD" {
            return Ok(());
        }
        if let Some(t) = p.text {
            self.stream.write_all(t.as_bytes())?;
        }
        if let (Some((start, len)), Some(mut f)) = (p.body, file) {
            f.seek(SeekFrom::Start(start))?;
            let sent = io::copy(&mut f.take(len), &mut self.stream)?;
            if sent < len {
                // The file shrank under us: the length we promised is a lie
                // now, so the connection must end (RFC 9112 §6.3).
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn get(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/1K.bin".into(),
            minor: 1,
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn meta() -> Meta {
        Meta {
            len: 1000,
            mtime: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    fn header<'a>(p: &'a Plan, name: &str) -> Option<&'a str> {
        p.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn single_range_is_answered_206_with_content_range() {
        let p = plan(&get(&[("Range", "bytes=100-199")]), Some(&meta()));
        assert_eq!(p.status, 206);
        assert_eq!(p.body, Some((100, 100)));
        assert_eq!(header(&p, "Content-Range"), Some("bytes 100-199/1000"));
    }

    #[test]
    fn open_and_suffix_ranges_are_clamped_to_the_object() {
        assert_eq!(parse_range("bytes=900-", 1000), RangeAsk::Part(900, 100));
        assert_eq!(
            parse_range("bytes=900-5000", 1000),
            RangeAsk::Part(900, 100)
        );
        assert_eq!(parse_range("bytes=-10", 1000), RangeAsk::Part(990, 10));
        assert_eq!(parse_range("bytes=-5000", 1000), RangeAsk::Part(0, 1000));
    }

    #[test]
    fn range_past_the_end_is_416_with_the_length() {
        let p = plan(&get(&[("Range", "bytes=1000-")]), Some(&meta()));
        assert_eq!(p.status, 416);
        assert_eq!(header(&p, "Content-Range"), Some("bytes */1000"));
        assert_eq!(parse_range("bytes=-0", 1000), RangeAsk::Unsatisfiable);
    }

    #[test]
    fn several_ranges_or_bad_syntax_send_the_whole_object() {
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=5-1", 1000), RangeAsk::Whole);
        assert_eq!(parse_range("items=0-1", 1000), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=a-b", 1000), RangeAsk::Whole);
    }

    #[test]
    fn if_range_with_current_etag_or_date_honours_range() {
        let m = meta();
        let p = plan(
            &get(&[("Range", "bytes=0-9"), ("If-Range", &m.etag())]),
            Some(&m),
        );
        assert_eq!(p.status, 206);
        let p = plan(
            &get(&[("Range", "bytes=0-9"), ("If-Range", &m.last_modified())]),
            Some(&m),
        );
        assert_eq!(p.status, 206);
    }

    #[test]
    fn if_range_mismatch_sends_whole_object_200() {
        let m = meta();
        let p = plan(
            &get(&[("Range", "bytes=0-9"), ("If-Range", "\"other\"")]),
            Some(&m),
        );
        assert_eq!(p.status, 200);
        assert_eq!(p.body, Some((0, 1000)));
        let p = plan(
            &get(&[
                ("Range", "bytes=0-9"),
                ("If-Range", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ]),
            Some(&m),
        );
        assert_eq!(p.status, 200);
        // A weak tag never matches for If-Range (strong comparison).
        let weak = format!("W/{}", m.etag());
        let p = plan(
            &get(&[("Range", "bytes=0-9"), ("If-Range", &weak)]),
            Some(&m),
        );
        assert_eq!(p.status, 200);
    }

    #[test]
    fn if_none_match_current_etag_is_304_without_body() {
        let m = meta();
        let p = plan(
            &get(&[("If-None-Match", &format!("\"x\", {}", m.etag()))]),
            Some(&m),
        );
        assert_eq!(p.status, 304);
        assert_eq!(p.body, None);
        assert_eq!(header(&p, "ETag"), Some(m.etag().as_str()));
        let p = plan(&get(&[("If-None-Match", "\"x\"")]), Some(&m));
        assert_eq!(p.status, 200);
    }

    #[test]
    fn if_modified_since_later_date_is_304_and_earlier_is_200() {
        let m = meta();
        let p = plan(&get(&[("If-Modified-Since", &m.last_modified())]), Some(&m));
        assert_eq!(p.status, 304);
        let p = plan(
            &get(&[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            Some(&m),
        );
        assert_eq!(p.status, 200);
        // If-None-Match takes precedence over If-Modified-Since (§13.2.2).
        let p = plan(
            &get(&[
                ("If-None-Match", "\"x\""),
                ("If-Modified-Since", &m.last_modified()),
            ]),
            Some(&m),
        );
        assert_eq!(p.status, 200);
    }

    #[test]
    fn if_match_mismatch_is_412() {
        let p = plan(&get(&[("If-Match", "\"x\"")]), Some(&meta()));
        assert_eq!(p.status, 412);
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        let mut r = get(&[]);
        r.method = "DELETE".into();
        let p = plan(&r, Some(&meta()));
        assert_eq!(p.status, 405);
        assert_eq!(header(&p, "Allow"), Some("GET, HEAD, POST, PUT"));
    }

    #[test]
    fn head_ignores_range() {
        let mut r = get(&[("Range", "bytes=0-9")]);
        r.method = "HEAD".into();
        assert_eq!(plan(&r, Some(&meta())).status, 200);
    }

    #[test]
    fn paths_that_could_leave_the_root_are_refused() {
        let root = Path::new("/srv");
        assert_eq!(
            resolve(root, "/1K.bin?x=1"),
            Some(PathBuf::from("/srv/1K.bin"))
        );
        assert_eq!(
            resolve(root, "/a/b.bin"),
            Some(PathBuf::from("/srv/a/b.bin"))
        );
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/./x",
            "//x",
            "/",
            "x",
            "/%2e%2e/x",
            "/a\\b",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }

    /// Starts the server on loopback over a folder with one 100 000-byte
    /// file; returns its address.
    fn start() -> (SocketAddr, Vec<u8>) {
        let dir = std::env::temp_dir().join(format!("baton-origin-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.join("obj.bin"), &data).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve_on(listener, dir));
        (addr, data)
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
        let (addr, data) = start();
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
        w.write_all(
            b"HEAD /obj.bin HTTP/1.1\r\nHost: o\r\n\r\nGET /nope HTTP/1.1\r\nHost: o\r\n\r\n",
        )
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
        let (addr, _) = start();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"\x01\x02 nonsense\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    }
}
